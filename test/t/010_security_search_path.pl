# Security: no object an ordinary role creates ever runs with another
# role's rights (DESIGN.md section 9 "Immune to search_path",
# CONVENTIONS.md items 6, 15 and 22; the CVE-2018-1058 pattern).
#
# alice, an ordinary role, installs hostile objects in her own schema and in
# a writable public: operators (=, <>, <, ->, ->>, ||, +, ... on text,
# jsonb, json, int4/int8, bool, oid, name, timestamptz, arrays, and on every
# enum of the extension), functions named like pg_catalog's (to_jsonb,
# jsonb_path_match, now, pg_notify, set_config, ...; for the polymorphic
# ones a concrete-typed variant, which wins even when pg_catalog is searched
# first), domains named like core types (alice.text, public.jsonb, ...)
# whose CHECK calls a logging function, and, in her sessions, temp views
# named like catalogs and like the extension's tables. Every hostile object
# logs its call (a row in public.hostile_calls and a HOSTILE_CALL line in
# the server log, which survives a rollback) and, when it runs as a
# superuser, makes alice a superuser; then it returns the right answer.
#
# Then every SQL entry point is called by alice with
# search_path = alice, pg_catalog, public, and by the superuser with
# search_path = public, pg_catalog; the background executors run both
# roles' runs, also in a database whose default search_path is
# public, pg_catalog (set before the executors started). At the end no
# hostile object was ever called and alice is not a superuser.
#
# The tools alice registers use no operators (and pin their own
# search_path), so any logged call is the extension's doing. A sql tool
# runs with the search_path captured when it was registered: f_tool()
# (only in schema alice) and f_lib() (only in alice_lib) resolve when the
# executor runs them; alice_only() registered under pg_catalog does not.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

$PostgreSQL::Test::Utils::timeout_default = 30;

my $mock = mock_start('security.json');
my $node = llm_node('sec_path', 'log_min_messages = warning');
$node->start;

# ------------------------------------------------------------------ helpers

# try_sql(db, role, sql): psql_result() on this node.
sub try_sql { return psql_result($node, @_); }

# su_q(db, sql): the harness, as the superuser with only pg_catalog on its
# path, so the harness itself never touches a hostile object.
sub su_q
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db, "SET search_path = pg_catalog, pg_temp;\n$sql");
}

# as_alice_safe(db, sql): alice setting up her objects (pg_catalog only).
sub as_alice_safe
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db, "SET search_path = pg_catalog, pg_temp;\n$sql",
		extra_params => [ '-U', 'alice' ]);
}

# A dollar-quoted literal of unknown type: passed to a function it takes
# the parameter's type. (A cast like ::jsonb would resolve the type name
# through the hostile search_path and hit alice's domain.)
sub lit
{
	my ($text) = @_;
	die "lit: text contains the quote tag" if $text =~ /\$L\$/;
	return "\$L\$$text\$L\$";
}

# HOSTILE_CALL lines the server logged since the last look.
my $log_offset = 0;
sub new_hostile_log_lines
{
	my $size = -s $node->logfile;
	my $log = slurp_file($node->logfile, $log_offset);
	$log_offset = $size if $size > $log_offset;
	return $log =~ /^.*HOSTILE_CALL.*$/mg;
}

sub no_hostile_since_last
{
	my ($label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my @l = new_hostile_log_lines();
	is(scalar(@l), 0, "$label: no hostile object was called")
	  or diag(join("\n", @l[ 0 .. ($#l < 9 ? $#l : 9) ]));
	return;
}

# Sessions under test. alice first creates temp views that shadow catalogs
# and the extension's tables (with pg_catalog alone on her path, so that
# creating them calls nothing hostile), then puts her schema before
# pg_catalog. The superuser puts the writable public before pg_catalog.
my $ALICE_PRE = <<'SQL';
SET search_path = pg_catalog, pg_temp;
DO $tv$
DECLARE
    v text;
    src text;
    cols text;
BEGIN
    FOREACH v IN ARRAY ARRAY['pg_roles', 'pg_namespace', 'pg_proc', 'pg_type', 'pg_class', 'pg_database',
                             'pg_settings', 'pg_stat_activity', 'pg_operator', 'pg_attribute', 'pg_extension',
                             'pg_policy', 'pg_description', 'pg_enum', 'pg_auth_members', 'pg_user',
                             'runs', 'steps', 'events', 'chunks', 'checkpoints', 'plans', 'workflows',
                             'tools', 'tool_grants', 'models', 'workers', 'selector_rules'] LOOP
        src := CASE WHEN starts_with(v, 'pg_') THEN format('pg_catalog.%I', v) ELSE format('agentorch.%I', v) END;
        -- every column alice may read whose type a view can have
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
          FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = to_regclass(src) AND a.attnum > 0 AND NOT a.attisdropped AND t.typtype <> 'p'
           AND has_column_privilege(a.attrelid, a.attnum, 'SELECT');
        IF cols IS NULL THEN
            EXECUTE format('CREATE TEMP VIEW %I AS SELECT 1 AS x WHERE public.hostile_log(%L)',
                           v, format('temp view pg_temp.%s', v));
        ELSE
            EXECUTE format('CREATE TEMP VIEW %I AS SELECT %s FROM %s WHERE public.hostile_log(%L)',
                           v, cols, src, format('temp view pg_temp.%s', v));
        END IF;
    END LOOP;
END $tv$;
SET search_path = alice, pg_catalog, public;
SQL
my $SU_PRE = "SET search_path = public, pg_catalog;\n";

# call(who, db, label, sql, %opt): an entry point under test, as alice or
# as the superuser ('su') with the hostile search_path; passes when it
# succeeds (or fails like $opt{fails}) and no hostile object was called.
# Returns the output ($LAST holds the whole result).
our $LAST;
sub call
{
	my ($who, $db, $label, $sql, %opt) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $r = try_sql($db, $who eq 'alice' ? 'alice' : undef, ($who eq 'alice' ? $ALICE_PRE : $SU_PRE) . $sql);
	my $name = "$who\@$db: $label";
	if ($opt{fails})
	{
		ok($r->{rc} != 0 && $r->{err} =~ $opt{fails}, "$name fails as it should")
		  or diag("rc $r->{rc}, stderr: $r->{err}");
	}
	else
	{
		is($r->{rc}, 0, "$name works under the hostile search_path") or diag($r->{err});
	}
	no_hostile_since_last($name) unless $opt{no_check};
	$LAST = $r;
	return scalar $r->{out};
}

# The run's status once it has finished or waits for input (as the harness).
sub settle { return settle_run($node, $_[0], $_[1], "SET search_path = pg_catalog, pg_temp;\n"); }

# A step's column (as the harness), e.g. step_field(db, run, 'a', "output->>'user'").
sub step_field
{
	my ($db, $run, $step, $expr) = @_;
	my $r = try_sql($db, undef, "SET search_path = pg_catalog, pg_temp;\n"
		  . "SELECT $expr FROM agentorch.steps WHERE run_id = $run AND step_id = '$step'");
	return $r->{rc} == 0 ? $r->{out} : "error: $r->{err}";
}

sub entry_exists
{
	my ($db, $name) = @_;
	return su_q($db, "SELECT count(*) FROM pg_proc WHERE pronamespace = 'agentorch'::regnamespace AND proname = '$name'") > 0;
}

# ------------------------------------------------------------------ hostile objects

# Operators of pg_catalog that alice shadows: [name, left type, right type].
# The first groups have the same argument types as pg_catalog's (they win
# only when they come first on the path); the last ones are more specific
# than a polymorphic pg_catalog operator (they win even after pg_catalog).
my @OPS = (
	(map { [ $_, 'text', 'text' ] } qw(= <> < > <= >= || ~~ ~ ~*)),
	(map { [ $_, 'jsonb', 'jsonb' ] } qw(= <> < > <= >= || @> <@)),
	[ '->', 'jsonb', 'text' ], [ '->>', 'jsonb', 'text' ], [ '->', 'jsonb', 'integer' ],
	[ '->>', 'jsonb', 'integer' ], [ '#>', 'jsonb', 'text[]' ], [ '#>>', 'jsonb', 'text[]' ],
	[ '?', 'jsonb', 'text' ], [ '?|', 'jsonb', 'text[]' ], [ '?&', 'jsonb', 'text[]' ],
	[ '-', 'jsonb', 'text' ], [ '-', 'jsonb', 'integer' ], [ '#-', 'jsonb', 'text[]' ],
	[ '@?', 'jsonb', 'jsonpath' ], [ '@@', 'jsonb', 'jsonpath' ],
	[ '->', 'json', 'text' ], [ '->>', 'json', 'text' ], [ '->', 'json', 'integer' ], [ '->>', 'json', 'integer' ],
	(map { [ $_, 'integer', 'integer' ] } qw(= <> < > <= >= + - * / %)),
	(map { [ $_, 'bigint', 'bigint' ] } qw(= <> < > <= >= + - * /)),
	(map { [ $_, 'bigint', 'integer' ] } qw(= <> < > <= >= + - *)),
	(map { [ $_, 'integer', 'bigint' ] } qw(= <> < > + -)),
	(map { [ $_, 'smallint', 'smallint' ] } qw(= <)),
	(map { [ $_, 'boolean', 'boolean' ] } qw(= <>)),
	(map { [ $_, 'oid', 'oid' ] } qw(= <>)),
	(map { [ $_, 'name', 'name' ] } qw(= <>)), [ '=', 'name', 'text' ], [ '=', 'text', 'name' ],
	(map { [ $_, 'timestamp with time zone', 'timestamp with time zone' ] } qw(= <> < > <= >= -)),
	[ '+', 'timestamp with time zone', 'interval' ], [ '-', 'timestamp with time zone', 'interval' ],
	(map { [ $_, 'interval', 'interval' ] } qw(= < > <= >= + -)),
	[ '*', 'interval', 'double precision' ], [ '*', 'double precision', 'interval' ],
	(map { [ $_, 'double precision', 'double precision' ] } qw(= <> < > <= >= + - * /)),
	(map { [ $_, 'numeric', 'numeric' ] } qw(= <> < > <= >= + - * /)),
	# more specific than pg_catalog's polymorphic operators
	[ '||', 'text', 'bigint' ], [ '||', 'text', 'integer' ], [ '||', 'bigint', 'text' ],
	[ '||', 'integer', 'text' ], [ '||', 'text', 'jsonb' ], [ '||', 'text', 'boolean' ],
	[ '||', 'text', 'numeric' ], [ '||', 'text', 'double precision' ], [ '||', 'text', 'oid' ],
	[ '||', 'text', 'timestamp with time zone' ], [ '||', 'text', 'interval' ],
	[ '||', 'text[]', 'text' ], [ '||', 'text', 'text[]' ], [ '||', 'text[]', 'text[]' ],
	[ '||', 'jsonb[]', 'jsonb' ], [ '||', 'bigint[]', 'bigint' ],
	(map { [ $_, 'text[]', 'text[]' ] } qw(= <> @> <@ &&)),
	(map { [ $_, 'bigint[]', 'bigint[]' ] } qw(= @> <@ &&)),
	(map { [ $_, 'oid[]', 'oid[]' ] } qw(= @> &&)),
);

# Functions of pg_catalog that alice shadows: [name, "arg types", result
# type or undef (taken from pg_catalog's function)]. Arguments of a
# polymorphic function are given as concrete types (more specific).
my @FUNCS = (
	(map { [ 'to_jsonb', $_ ] } 'text', 'jsonb', 'bigint', 'integer', 'boolean', 'numeric',
		'double precision', 'timestamp with time zone', 'text[]', 'jsonb[]', 'name', 'oid'),
	[ 'to_jsonb', 'anyelement', 'jsonb' ],
	(map { [ 'to_json', $_ ] } 'text', 'jsonb', 'bigint'),
	[ 'to_json', 'anyelement', 'json' ],
	[ 'jsonb_typeof', 'jsonb' ], [ 'jsonb_array_length', 'jsonb' ], [ 'jsonb_build_object', '' ],
	[ 'jsonb_build_array', '' ], [ 'jsonb_strip_nulls', 'jsonb' ], [ 'jsonb_pretty', 'jsonb' ],
	[ 'jsonb_set', 'jsonb, text[], jsonb' ], [ 'jsonb_set', 'jsonb, text[], jsonb, boolean' ],
	[ 'jsonb_insert', 'jsonb, text[], jsonb' ], [ 'jsonb_set_lax', 'jsonb, text[], jsonb' ],
	[ 'jsonb_extract_path', 'jsonb, text[]', 'jsonb' ], [ 'jsonb_extract_path_text', 'jsonb, text[]', 'text' ],
	(map { ([ $_, 'jsonb, jsonpath' ], [ $_, 'jsonb, jsonpath, jsonb' ], [ $_, 'jsonb, jsonpath, jsonb, boolean' ]) }
		qw(jsonb_path_match jsonb_path_exists jsonb_path_query_first jsonb_path_query_array)),
	[ 'length', 'text' ], [ 'char_length', 'text' ], [ 'octet_length', 'text' ], [ 'lower', 'text' ],
	[ 'upper', 'text' ], [ 'btrim', 'text' ], [ 'btrim', 'text, text' ], [ 'replace', 'text, text, text' ],
	[ 'substr', 'text, integer' ], [ 'substr', 'text, integer, integer' ], [ 'left', 'text, integer' ],
	[ 'right', 'text, integer' ], [ 'strpos', 'text, text' ], [ 'starts_with', 'text, text' ],
	[ 'split_part', 'text, text, integer' ], [ 'md5', 'text' ], [ 'sha256', 'bytea' ],
	[ 'encode', 'bytea, text' ], [ 'decode', 'text, text' ], [ 'convert_to', 'text, name' ],
	[ 'string_to_array', 'text, text' ], [ 'regexp_replace', 'text, text, text' ],
	[ 'quote_ident', 'text' ], [ 'quote_literal', 'text' ], [ 'quote_nullable', 'text' ], [ 'format', 'text' ],
	[ 'now', '' ], [ 'clock_timestamp', '' ], [ 'statement_timestamp', '' ], [ 'transaction_timestamp', '' ],
	[ 'random', '' ], [ 'gen_random_uuid', '' ], [ 'txid_current', '' ], [ 'pg_backend_pid', '' ],
	[ 'current_setting', 'text' ], [ 'current_setting', 'text, boolean' ], [ 'set_config', 'text, text, boolean' ],
	[ 'pg_notify', 'text, text', 'void' ], [ 'pg_advisory_xact_lock', 'bigint', 'void' ],
	[ 'pg_try_advisory_xact_lock', 'bigint' ], [ 'pg_advisory_lock', 'bigint', 'void' ],
	[ 'pg_advisory_unlock', 'bigint' ], [ 'pg_sleep', 'double precision', 'void' ],
	[ 'to_regprocedure', 'text' ], [ 'to_regproc', 'text' ], [ 'to_regclass', 'text' ], [ 'to_regrole', 'text' ],
	[ 'to_regtype', 'text' ], [ 'to_regnamespace', 'text' ],
	[ 'has_function_privilege', 'text, text' ], [ 'has_table_privilege', 'text, text' ],
	[ 'has_schema_privilege', 'text, text' ], [ 'pg_has_role', 'name, text' ],
	[ 'array_length', 'text[], integer' ], [ 'array_length', 'jsonb[], integer' ],
	[ 'array_length', 'anyarray, integer', 'integer' ], [ 'cardinality', 'text[]' ],
	[ 'cardinality', 'anyarray', 'integer' ], [ 'array_to_string', 'text[], text' ],
	[ 'array_position', 'text[], text' ], [ 'array_append', 'text[], text' ],
	[ 'array_remove', 'text[], text' ], [ 'array_cat', 'text[], text[]' ], [ 'array_prepend', 'text, text[]' ],
	[ 'date_part', 'text, timestamp with time zone' ], [ 'to_char', 'timestamp with time zone, text' ],
	[ 'floor', 'double precision' ], [ 'round', 'numeric, integer' ], [ 'abs', 'integer' ],
	[ 'make_interval', 'integer, integer, integer, integer, integer, integer, double precision' ],
	[ 'to_timestamp', 'double precision' ], [ 'extract', 'text, timestamp with time zone' ],
);

# Domains named like core types: [name, base type].
my @DOMAINS = map { [ $_->[0], $_->[1] ] } (
	[ 'text', 'pg_catalog.text' ], [ 'jsonb', 'pg_catalog.jsonb' ], [ 'json', 'pg_catalog.json' ],
	[ 'jsonpath', 'pg_catalog.jsonpath' ], [ 'oid', 'pg_catalog.oid' ], [ 'name', 'pg_catalog.name' ],
	[ 'int4', 'pg_catalog.int4' ], [ 'int8', 'pg_catalog.int8' ], [ 'int2', 'pg_catalog.int2' ],
	[ 'float8', 'pg_catalog.float8' ], [ 'bool', 'pg_catalog.bool' ], [ 'timestamptz', 'pg_catalog.timestamptz' ],
	[ 'regclass', 'pg_catalog.regclass' ], [ 'regrole', 'pg_catalog.regrole' ],
	[ 'regprocedure', 'pg_catalog.regprocedure' ], [ 'regproc', 'pg_catalog.regproc' ],
	[ 'regtype', 'pg_catalog.regtype' ], [ 'regnamespace', 'pg_catalog.regnamespace' ],
	[ 'uuid', 'pg_catalog.uuid' ], [ 'bytea', 'pg_catalog.bytea' ], [ 'varchar', 'pg_catalog.varchar' ],
	[ 'bpchar', 'pg_catalog.bpchar' ], [ 'record', 'pg_catalog.text' ],
);

sub sql_str { my $s = shift; $s =~ s/'/''/g; return "'$s'"; }

my $ops_values = join(",\n", map { '(' . join(', ', map { sql_str($_) } @$_) . ')' } @OPS);
my $funcs_values = join(",\n", map {
	my ($name, $args, $ret) = @$_;
	my @a = grep { length } split /\s*,\s*/, $args;
	my $probe = join(', ', map { "NULL::$_" } @a);
	my $callargs = join(', ', map { '$' . $_ } 1 .. @a);
	'(' . join(', ', sql_str($name), sql_str($args), sql_str($probe), sql_str($callargs),
		defined $ret ? sql_str($ret) : 'NULL') . ')'
} @FUNCS);
my $domains_values = join(",\n", map { '(' . sql_str($_->[0]) . ', ' . sql_str($_->[1]) . ')' } @DOMAINS);

# The logging function and the generator of the hostile objects (run as
# alice, pg_catalog alone on the path). Returns the numbers created.
my $HOSTILE_SQL = <<'SQL';
CREATE FUNCTION public.hostile_log(op pg_catalog.text) RETURNS pg_catalog.bool
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    su bool;
    bt text;
BEGIN
    SELECT a.backend_type INTO bt FROM pg_stat_activity a WHERE a.pid = pg_backend_pid();
    RAISE LOG 'HOSTILE_CALL op=[%] current_user=% session_user=% backend=% path=[%] query=[%]',
        op, current_user, session_user, bt, current_setting('search_path'), left(current_query(), 300);
    BEGIN
        INSERT INTO public.hostile_calls (op, who, session_role, backend) VALUES (op, current_user, session_user, bt);
    EXCEPTION WHEN OTHERS THEN
        RAISE LOG 'HOSTILE_CALL (could not record: %)', SQLERRM;
    END;
    SELECT r.rolsuper INTO su FROM pg_roles r WHERE r.rolname = current_user;
    IF su THEN
        BEGIN
            EXECUTE 'ALTER ROLE alice SUPERUSER';
        EXCEPTION WHEN OTHERS THEN
            RAISE LOG 'HOSTILE_CALL (could not escalate: %)', SQLERRM;
        END;
    END IF;
    RETURN true;
END $f$;
GRANT EXECUTE ON FUNCTION public.hostile_log(pg_catalog.text) TO PUBLIC;

DO $do$
DECLARE
    s text;
    o record;
    f record;
    d record;
    e record;
    op text;
    res text;
    n int := 0;
    nops int := 0;
    nfuncs int := 0;
    ndomains int := 0;
BEGIN
    FOREACH s IN ARRAY ARRAY['alice', 'public'] LOOP
        FOR o IN SELECT * FROM (VALUES %OPS%) v(op, l, r) LOOP
            BEGIN
                EXECUTE format('CREATE TEMP VIEW hostile_probe AS SELECT NULL::%s OPERATOR(pg_catalog.%s) NULL::%s AS x',
                               o.l, o.op, o.r);
                SELECT format_type(a.atttypid, NULL) INTO res FROM pg_attribute a
                 WHERE a.attrelid = 'pg_temp.hostile_probe'::regclass AND a.attname = 'x';
                DROP VIEW pg_temp.hostile_probe;
            EXCEPTION WHEN OTHERS THEN
                RAISE NOTICE 'pg_catalog has no operator % (%, %): %', o.op, o.l, o.r, SQLERRM;
                CONTINUE;
            END;
            n := n + 1;
            EXECUTE format($c$CREATE FUNCTION %I.hostile_op_%s(%s, %s) RETURNS %s LANGUAGE plpgsql
                             SET search_path = pg_catalog, pg_temp
                             AS $b$BEGIN PERFORM public.hostile_log(%L); RETURN $1 OPERATOR(pg_catalog.%s) $2; END$b$$c$,
                           s, n, o.l, o.r, res, format('operator %s.%s(%s, %s)', s, o.op, o.l, o.r), o.op);
            EXECUTE format('CREATE OPERATOR %I.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %I.hostile_op_%s)',
                           s, o.op, o.l, o.r, s, n);
            nops := nops + 1;
        END LOOP;
        -- =, <>, <, >, <=, >= on every enum of the extension (more specific
        -- than pg_catalog's anyenum operators)
        FOR e IN SELECT format_type(t.oid, NULL) AS t FROM pg_type t
                  WHERE t.typnamespace = 'agentorch'::regnamespace AND t.typtype = 'e' LOOP
            FOREACH op IN ARRAY ARRAY['=', '<>', '<', '>', '<=', '>='] LOOP
                n := n + 1;
                EXECUTE format($c$CREATE FUNCTION %I.hostile_op_%s(%s, %s) RETURNS boolean LANGUAGE plpgsql
                                 SET search_path = pg_catalog, pg_temp
                                 AS $b$BEGIN PERFORM public.hostile_log(%L); RETURN $1 OPERATOR(pg_catalog.%s) $2; END$b$$c$,
                               s, n, e.t, e.t, format('operator %s.%s(%s, %s)', s, op, e.t, e.t), op);
                EXECUTE format('CREATE OPERATOR %I.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %I.hostile_op_%s)',
                               s, op, e.t, e.t, s, n);
                nops := nops + 1;
            END LOOP;
        END LOOP;
        FOR f IN SELECT * FROM (VALUES %FUNCS%) v(name, args, probe, callargs, ret) LOOP
            res := f.ret;
            IF res IS NULL THEN
                BEGIN
                    EXECUTE format('CREATE TEMP VIEW hostile_probe AS SELECT pg_catalog.%I(%s) AS x', f.name, f.probe);
                    SELECT format_type(a.atttypid, NULL) INTO res FROM pg_attribute a
                     WHERE a.attrelid = 'pg_temp.hostile_probe'::regclass AND a.attname = 'x';
                    DROP VIEW pg_temp.hostile_probe;
                EXCEPTION WHEN OTHERS THEN
                    RAISE NOTICE 'pg_catalog has no function %(%): %', f.name, f.args, SQLERRM;
                    CONTINUE;
                END;
            END IF;
            BEGIN
                IF res = 'void' THEN
                    EXECUTE format($c$CREATE FUNCTION %I.%I(%s) RETURNS void LANGUAGE plpgsql
                                     SET search_path = pg_catalog, pg_temp
                                     AS $b$BEGIN PERFORM public.hostile_log(%L); PERFORM pg_catalog.%I(%s); END$b$$c$,
                                   s, f.name, f.args, format('function %s.%s(%s)', s, f.name, f.args), f.name, f.callargs);
                ELSE
                    EXECUTE format($c$CREATE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE plpgsql
                                     SET search_path = pg_catalog, pg_temp
                                     AS $b$BEGIN PERFORM public.hostile_log(%L); RETURN pg_catalog.%I(%s); END$b$$c$,
                                   s, f.name, f.args, res, format('function %s.%s(%s)', s, f.name, f.args), f.name, f.callargs);
                END IF;
                nfuncs := nfuncs + 1;
            EXCEPTION WHEN OTHERS THEN
                RAISE NOTICE 'could not shadow %(%): %', f.name, f.args, SQLERRM;
            END;
        END LOOP;
    END LOOP;
    -- domains last: the objects above name pg_catalog's types
    FOREACH s IN ARRAY ARRAY['alice', 'public'] LOOP
        FOR d IN SELECT * FROM (VALUES %DOMAINS%) v(name, base) LOOP
            BEGIN
                EXECUTE format('CREATE DOMAIN %I.%I AS %s CHECK (public.hostile_log(%L))',
                               s, d.name, d.base, format('domain %s.%s', s, d.name));
                ndomains := ndomains + 1;
            EXCEPTION WHEN OTHERS THEN
                RAISE NOTICE 'could not create domain %.%: %', s, d.name, SQLERRM;
            END;
        END LOOP;
    END LOOP;
    RAISE NOTICE 'HOSTILE_COUNTS operators=% functions=% domains=%', nops, nfuncs, ndomains;
    PERFORM set_config('hostile.counts', format('%s %s %s', nops, nfuncs, ndomains), false);
END $do$;
SELECT current_setting('hostile.counts');
SQL
$HOSTILE_SQL =~ s/%OPS%/$ops_values/;
$HOSTILE_SQL =~ s/%FUNCS%/$funcs_values/;
$HOSTILE_SQL =~ s/%DOMAINS%/$domains_values/;

# ------------------------------------------------------------------ setup

$node->safe_psql('postgres', q{
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE DATABASE hostdb;
});
my $SUPERUSER = su_q('postgres', 'SELECT current_user');

# setup_db(db): the extension, the model, a writable public, alice's
# schemas, her tool functions and her hostile objects, and the
# superuser's tool functions in a schema nobody else can write.
sub setup_db
{
	my ($db) = @_;
	su_q($db, qq{
CREATE EXTENSION IF NOT EXISTS agentorch;
GRANT CREATE ON SCHEMA public TO PUBLIC;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE SCHEMA alice_lib AUTHORIZATION alice;
CREATE SCHEMA admin;
CREATE TABLE public.hostile_calls (op text, who text DEFAULT current_user,
    at timestamptz DEFAULT clock_timestamp(), session_role text, backend text);
GRANT SELECT, INSERT ON public.hostile_calls TO PUBLIC;
CREATE FUNCTION admin.su_echo(input jsonb) RETURNS jsonb LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS \$f\$
BEGIN
    RETURN pg_catalog.jsonb_build_object('echo', input, 'user', CURRENT_USER);
END \$f\$;
CREATE FUNCTION admin.su_sql_fn(x text) RETURNS text LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS \$f\$ SELECT pg_catalog.concat('su_sql:', x) \$f\$;
SELECT agentorch.register_model('m', 'openai', '{"base_url": "$mock->{url}/v1", "model": "mock-sec"}');
});
	as_alice_safe($db, q{
-- alice's tools: no operators, their own search_path
CREATE FUNCTION alice.tool_echo(input pg_catalog.jsonb) RETURNS pg_catalog.jsonb LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
    RETURN pg_catalog.jsonb_build_object('echo', input, 'user', CURRENT_USER);
END $f$;
-- only in schema alice / alice_lib: found by a sql tool only through the
-- search_path captured when the tool was registered
CREATE FUNCTION alice.f_tool(x pg_catalog.text) RETURNS pg_catalog.text LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $f$ SELECT pg_catalog.concat('f_tool:', x) $f$;
CREATE FUNCTION alice_lib.f_lib(x pg_catalog.text) RETURNS pg_catalog.text LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $f$ SELECT pg_catalog.concat('f_lib:', x) $f$;
CREATE FUNCTION alice.alice_only() RETURNS pg_catalog.text LANGUAGE sql
SET search_path = pg_catalog, pg_temp AS $f$ SELECT 'alice_only was found'::pg_catalog.text $f$;
});
	my $counts = as_alice_safe($db, $HOSTILE_SQL);
	my ($nops, $nfuncs, $ndomains) = split / /, $counts;
	note("$db: hostile operators $nops, functions $nfuncs, domains $ndomains");
	cmp_ok($nops, '>', 2 * 150, "$db: alice installed hostile operators in alice and public ($nops)");
	cmp_ok($nfuncs, '>', 2 * 100, "$db: alice installed hostile functions in alice and public ($nfuncs)");
	cmp_ok($ndomains, '>=', 2 * 10, "$db: alice installed hostile domains in alice and public ($ndomains)");
	# the hostile objects really bite a session with the hostile path (so
	# a clean result below means something), and log the call
	my $r = try_sql($db, 'alice', "SET search_path = alice, pg_catalog, public;\n"
		  . q{SELECT '{"a": "b"}'::jsonb ->> 'a', 1 = 1, 'x' || 'y'});
	is($r->{out}, 'b|t|xy', "$db: a hostile operator returns the right answer");
	cmp_ok(su_q($db, q{SELECT count(DISTINCT op) FROM public.hostile_calls}), '>=', 4,
		"$db: ... and logs its calls (domain alice.jsonb, ->>, =, ||)")
	  or diag(su_q($db, q{SELECT string_agg(op, ', ') FROM public.hostile_calls}));
	$r = try_sql($db, undef, "SET search_path = public, pg_catalog;\n"
		  . q{SELECT 'running'::agentorch.run_status = 'running'});
	is(su_q($db, q{SELECT count(*) FROM public.hostile_calls WHERE op LIKE '%run_status%' AND who = current_user}), '1',
		"$db: a hostile enum operator in public is called by the superuser when public comes first");
	su_q($db, q{ALTER ROLE alice NOSUPERUSER; TRUNCATE public.hostile_calls});
	new_hostile_log_lines();    # the probes above were expected
	return;
}

setup_db('postgres');
setup_db('hostdb');
is(su_q('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'}), 'f',
	'alice is an ordinary role before the tests');

# hostdb: every session and every executor starts with the writable public
# first; restart so that the executors pick it up.
su_q('postgres', q{ALTER DATABASE hostdb SET search_path = public, pg_catalog});
$node->restart;
is($node->safe_psql('hostdb', 'SHOW search_path'), 'public, pg_catalog',
	'hostdb: the default search_path is public, pg_catalog');
ok($node->poll_query_until('postgres',
	q{SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0 FROM pg_catalog.pg_stat_activity WHERE backend_type OPERATOR(pg_catalog.=) 'agentorch executor' AND datname OPERATOR(pg_catalog.=) 'hostdb'}),
	'hostdb: executors run (started after the search_path was set)');
new_hostile_log_lines();
my $LOG_AFTER_SETUP = -s $node->logfile;

# ------------------------------------------------------------------ definitions

# A workflow that makes the executor evaluate templates, conditions,
# branches, loops, a parallel step, sql and function tools, database.query,
# an llm step and an llm step that calls a tool.
sub wf_def
{
	my (%t) = @_;    # fn, sql, lib: tool names; llm: include llm steps
	my @steps = (
		{ id => 'a', type => 'tool', tool => $t{fn},
		  input => { n => '${input.n}', s => 'pre-${input.s}-post', items => '${input.items}' } },
		{ id => 'route', type => 'branch', depends_on => ['a'],
		  cases => [ { when => '$.steps.a.output.echo.n > 1 && $.steps.a.output.echo.s starts with "pre"', then => ['big'] } ],
		  else => ['small'] },
		{ id => 'big', type => 'tool', tool => $t{fn}, input => { which => 'big', prev => '${a.output.echo.s}' } },
		{ id => 'small', type => 'tool', tool => $t{fn}, input => { which => 'small' } },
		{ id => 'each', type => 'loop', depends_on => ['a'], for_each => '${input.items}',
		  step => { id => 'body', type => 'tool', tool => $t{fn},
			  input => { item => '${item}', index => '${index}', label => '#${index}: ${item}' } } },
		{ id => 'count', type => 'loop', depends_on => ['a'], while => '$.index < 2', max_iterations => 5,
		  step => { id => 'tick', type => 'tool', tool => $t{fn}, input => { i => '${index}' } } },
		{ id => 'fan', type => 'parallel', depends_on => ['a'], steps => [
			{ id => 'p_fn', type => 'tool', tool => $t{fn}, input => { p => 1 } },
			{ id => 'p_sql', type => 'tool', tool => $t{sql}, input => { x => '${input.s}' } },
			{ id => 'p_lib', type => 'tool', tool => $t{lib}, input => { x => 'lib' } },
			{ id => 'p_query', type => 'tool', tool => 'database.query', input => { query => 'SELECT 1 AS one' } } ] },
		{ id => 'guarded', type => 'tool', tool => $t{fn}, depends_on => ['a'], when => '$.input.flag == true',
		  input => { g => 1 } },
	);
	my @join = qw(big small each count fan guarded);
	if ($t{llm})
	{
		push @steps,
		  { id => 'think', type => 'llm', model => 'm', depends_on => ['a'],
			prompt => 'hostile check: summarise ${a.output.echo.s}', retry => { max_attempts => 1 } },
		  { id => 'call', type => 'llm', model => 'm', depends_on => ['a'],
			prompt => 'hostile check: please call the tool', tools => [ $t{fn} ], retry => { max_attempts => 1 } };
		push @join, qw(think call);
	}
	push @steps, { id => 'join', type => 'tool', tool => $t{fn}, depends_on => \@join,
		input => { fan => '${fan.output}', each => '${each.output}', label => 'joined ${a.output.echo.s}' } };
	return { steps => \@steps, output => { join => '${join.output.echo.label}', each => '${each.output}' } };
}

my $INPUT = jenc({ n => 2, s => 'hostile', items => [ 'x', 'y', 'z' ] });
my $WAIT_YAML = <<'YAML';
steps:
  - id: ask
    type: user_input
    prompt: "Continue with ${input.s}?"
    schema: {type: object, required: [ok], properties: {ok: {type: boolean}}}
  - id: decide
    type: branch
    depends_on: [ask]
    cases:
      - when: '$.steps.ask.output.ok == true'
        then: [approved]
    else: [rejected]
  - id: approved
    type: tool
    tool: TOOL
    input: {verdict: "approved ${input.s}", answer: "${ask.output}"}
  - id: rejected
    type: tool
    tool: TOOL
    input: {verdict: rejected}
YAML

# ------------------------------------------------------------------ entry points, database postgres

# register_fn_tool(who, db, name, extra args): register_tool of a function
# tool under the hostile search_path; when that fails, the same with
# pg_catalog alone on the path (not a test: so that one failure does not
# hide the results of the entry points that use the tool).
sub register_fn_tool
{
	my ($who, $db, $fn, $extra) = @_;
	my $q = "SELECT agentorch.register_tool('$fn', 'function', "
	  . lit(jenc({ function => $who eq 'alice' ? 'alice.tool_echo' : 'admin.su_echo' })) . "$extra)";
	call($who, $db, 'register_tool (function)', $q);
	return if $LAST->{rc} == 0;
	my $r = try_sql($db, $who eq 'alice' ? 'alice' : undef, "SET search_path = pg_catalog, pg_temp;\n$q");
	note("$who\@$db: registered $fn with pg_catalog alone on the path instead: " . ($r->{rc} == 0 ? 'ok' : $r->{err}));
	new_hostile_log_lines();
	return;
}

my %run;    # "$who/$db/$name" => run id

# every entry point, as alice (her schema first) and as the superuser
# (public first)
sub exercise
{
	my ($who, $db) = @_;
	my $me = $who eq 'alice' ? 'alice' : $SUPERUSER;
	my $p = $who eq 'alice' ? 'alice' : 'su';
	my ($fn, $sql, $lib) = ("t.${p}_fn", "t.${p}_sql", $who eq 'alice' ? 't.alice_lib_sql' : "t.${p}_sql");
	my $wf = "${p}_wf";
	my ($out, $r);

	# --- definitions
	register_fn_tool($who, $db, $fn, ', ' . lit('{"type": "object"}') . ', ' . lit('{"retry": {"max_attempts": 2}, "timeout": "10s"}'));
	if ($who eq 'alice')
	{
		# the statement names f_tool / f_lib / alice_only unqualified; the tool
		# keeps the search_path it was registered with
		call($who, $db, 'register_tool (sql, registered with search_path alice, pg_catalog)',
			"SET search_path = alice, pg_catalog;\n"
			  . "SELECT agentorch.register_tool('$sql', 'sql', " . lit('{"sql": "SELECT f_tool($1) AS r", "params": ["x"]}') . ')');
		call($who, $db, 'register_tool (sql, registered with search_path alice_lib, pg_catalog)',
			"SET search_path = alice_lib, pg_catalog;\n"
			  . "SELECT agentorch.register_tool('$lib', 'sql', " . lit('{"sql": "SELECT f_lib($1) AS r", "params": ["x"]}') . ')');
		# (refused here or failing at run time: both are right, checked below)
		my $nr = try_sql($db, 'alice', $ALICE_PRE . "SET search_path = pg_catalog;\n"
			  . "SELECT agentorch.register_tool('t.alice_nopath_sql', 'sql', " . lit('{"sql": "SELECT alice_only() AS r"}') . ')');
		no_hostile_since_last("alice\@$db: register_tool (sql, registered with search_path pg_catalog)");
		$run{"$db/nopath_registered"} = $nr->{rc} == 0;
		$run{"$db/nopath_error"} = $nr->{err};
	}
	else
	{
		call($who, $db, 'register_tool (sql)',
			"SELECT agentorch.register_tool('$sql', 'sql', " . lit('{"sql": "SELECT admin.su_sql_fn($1) AS r", "params": ["x"]}') . ')');
		call($who, $db, 'register_model',
			"SELECT agentorch.register_model('m_su', 'openai', " . lit(jenc({ base_url => "$mock->{url}/v1", model => 'mock-su' })) . ')');
	}
	my $def = jenc(wf_def(fn => $fn, sql => $sql, lib => $lib, llm => 1));
	my $txdef = jenc(wf_def(fn => $fn, sql => $sql, lib => $lib, llm => 0));
	call($who, $db, 'validate_workflow (valid)', 'SELECT count(*) FROM agentorch.validate_workflow(' . lit($def) . ')');
	$out = call($who, $db, 'validate_workflow (invalid)',
		'SELECT path, message FROM agentorch.validate_workflow('
		  . lit('{"steps": [{"id": "a", "type": "tool", "tool": "nope", "depends_on": ["zz"], "input": {"v": "${ghost.output}"}}, {"id": "b", "type": "branch", "cases": [{"when": "$.input.x ==", "then": ["q"]}]}]}') . ')');
	ok($out ne '', "$who\@$db: validate_workflow reports the problems of an invalid definition");
	call($who, $db, 'register_workflow', "SELECT agentorch.register_workflow('$wf', " . lit($def) . ')');
	call($who, $db, 'register_workflow (transactional)', "SELECT agentorch.register_workflow('${p}_tx', " . lit($txdef) . ')');
	(my $yaml = $WAIT_YAML) =~ s/TOOL/$fn/g;
	call($who, $db, 'register_workflow_yaml', "SELECT agentorch.register_workflow_yaml('${p}_wait', " . lit($yaml) . ')');
	call($who, $db, 'yaml_to_jsonb',
		'SELECT agentorch.yaml_to_jsonb(' . lit("a: &x {b: [1, 2, {c: d}]}\nb: *x\nc: 'text'\nd: 1.5\ne: null\nf: true\n") . ')');
	call($who, $db, 'validate_plan (valid)',
		'SELECT count(*) FROM agentorch.validate_plan('
		  . lit(jenc({ goal => 'g', steps => [ { id => 's1', type => 'tool', tool => $fn, input => { x => 1 } },
				{ id => 's2', type => 'llm', prompt => 'sum ${s1.output}', depends_on => ['s1'] } ] })) . ')');
	call($who, $db, 'validate_plan (invalid)',
		'SELECT count(*) FROM agentorch.validate_plan('
		  . lit('{"goal": "", "steps": [{"id": "s1", "type": "tool", "tool": "nope", "depends_on": ["s1"]}], "extra": 1}') . ')');
	my $schema = lit('{"type": "object", "required": ["a", "b"], "additionalProperties": false, "properties": {"a": {"type": "integer", "minimum": 3, "enum": [3, 4]}, "c": {"type": "string", "pattern": "^x+$", "maxLength": 3, "format": "date"}, "d": {"type": "array", "items": {"const": 1}, "uniqueItems": true}}, "patternProperties": {"^z": {"type": "null"}}, "if": {"required": ["c"]}, "then": {"required": ["d"]}}');
	call($who, $db, 'validate_json',
		'SELECT path, message FROM agentorch.validate_json(' . lit('{"a": 1, "c": "xyzw", "d": [1, 1], "z1": 2, "q": true}') . ", $schema)");
	call($who, $db, 'is_valid_json', 'SELECT agentorch.is_valid_json(' . lit('{"a": 3, "b": 1, "c": "xx", "d": [1]}') . ", $schema)");
	call($who, $db, 'workflow_graph (mermaid)', "SELECT agentorch.workflow_graph('$wf')");
	call($who, $db, 'workflow_graph (dot, version 1)', "SELECT agentorch.workflow_graph('$wf', 'dot', 1)");
	call($who, $db, 'simulate',
		'SELECT ord, step_id, status, output FROM agentorch.simulate(' . lit($txdef) . ', ' . lit($INPUT) . ', '
		  . lit(jenc({ $fn => { echo => { n => 2, s => 'pre-sim-post' } }, $sql => [ { r => 'x' } ], $lib => [ { r => 'y' } ],
				'database.query' => [ { one => 1 } ] })) . ')');

	# --- runs
	my $simple = call($who, $db, 'start (simple)',
		"SELECT agentorch.start('{\"prompt\": \"hostile check: simple run of $who\"}', 'simple', NULL, '{\"model\": \"m\"}')");
	my $w = call($who, $db, 'run_workflow', "SELECT agentorch.run_workflow('$wf', " . lit($INPUT) . ", '{\"priority\": 1}')");
	my $fixed = call($who, $db, 'start (fixed, by workflow name)',
		"SELECT agentorch.start(" . lit($INPUT) . ", 'fixed', '${p}_tx', '{\"idempotency_key\": \"k-$who\"}')");
	$run{"$who/$db/simple"} = $simple;
	$run{"$who/$db/wf"} = $w;
	$run{"$who/$db/fixed"} = $fixed;
	for my $id ($simple, $w, $fixed)
	{
		$id = 0 unless $id =~ /^[1-9]\d*$/;
	}
	is(call($who, $db, 'wait (simple)', "SELECT status FROM agentorch.wait($simple, '20s')"), 'succeeded',
		"$who\@$db: the simple run succeeded");
	is(call($who, $db, 'wait (workflow)', "SELECT status FROM agentorch.wait($w, '20s')"), 'succeeded',
		"$who\@$db: the workflow run succeeded");
	call($who, $db, 'stream', "SELECT seq, kind, content FROM agentorch.stream($simple)");
	call($who, $db, 'stream (after_seq)', "SELECT seq, kind FROM agentorch.stream($w, 2)");
	call($who, $db, 'follow', "SELECT seq, kind, content FROM agentorch.follow($simple, 0, '2s')");
	call($who, $db, 'progress', "SELECT total, succeeded, running, failed, skipped, percent FROM agentorch.progress($w)");
	call($who, $db, 'graph (mermaid)', "SELECT agentorch.graph($w)");
	call($who, $db, 'graph (dot)', "SELECT agentorch.graph($w, 'dot')");
	call($who, $db, 'channel', "SELECT agentorch.channel($w)");

	# cancel and resume, then submit_input
	my $wait = call($who, $db, 'run_workflow (user_input)',
		"SELECT agentorch.run_workflow('${p}_wait', '{\"s\": \"waiting run\"}')");
	$run{"$who/$db/wait"} = $wait;
	$wait = 0 unless $wait =~ /^[1-9]\d*$/;
	is(call($who, $db, 'wait (for input)', "SELECT status FROM agentorch.wait($wait, '20s')"), 'waiting',
		"$who\@$db: the user_input run waits");
	is(call($who, $db, 'cancel', "SELECT agentorch.cancel($wait, 'hostile check')"), 't', "$who\@$db: cancel() returns true");
	is(call($who, $db, 'resume', "SELECT agentorch.resume($wait)"), 't', "$who\@$db: resume() returns true");
	is(call($who, $db, 'wait (for input again)', "SELECT status FROM agentorch.wait($wait, '20s')"), 'waiting',
		"$who\@$db: the resumed run waits for input again");
	is(call($who, $db, 'submit_input', "SELECT agentorch.submit_input($wait, 'ask', '{\"ok\": true}')"), 't',
		"$who\@$db: submit_input() returns true");

	# in this session: run_sync, and work() on a run started in the same
	# transaction (the executors cannot see it before commit)
	$out = call($who, $db, 'run_sync',
		"SELECT kind, content FROM agentorch.run_sync('{\"prompt\": \"hostile check: run_sync of $who\"}', '{\"model\": \"m\"}')");
	like($out, qr/^final\|.*hostile check: run_sync/m, "$who\@$db: run_sync returned the final chunk");
	$out = call($who, $db, 'work (run started in the same transaction)',
		"BEGIN;\nSELECT agentorch.run_workflow('${p}_tx', " . lit($INPUT) . ");\nSELECT agentorch.work(200, '10s');\nCOMMIT;");
	my ($tx, $worked) = split /\n/, $out;
	cmp_ok($worked // 0, '>', 0, "$who\@$db: work() executed steps of the run ($worked)");
	$run{"$who/$db/tx"} = $tx;

	# --- the rest
	call($who, $db, 'metrics', 'SELECT name, value FROM agentorch.metrics()');
	call($who, $db, 'purge', "SELECT agentorch.purge('1000 years')");
	call($who, $db, 'grant_tool', "SELECT agentorch.grant_tool('$fn', 'bob')");
	call($who, $db, 'revoke_tool', "SELECT agentorch.revoke_tool('$fn', 'bob')");
	call($who, $db, 'run_workflow with options (timeout, metadata, version)',
		"SELECT agentorch.run_workflow('${p}_tx', " . lit($INPUT) . ", '{\"timeout\": \"1 minute\", \"metadata\": {\"a\": 1}, \"version\": 1}')");

	# entry points that a later version adds: tried when installed
	my %optional = (
		start_many => 'SELECT agentorch.start_many(ARRAY[' . lit('{"prompt": "hostile check: many 1"}') . ', '
		  . lit('{"prompt": "hostile check: many 2"}') . "]::pg_catalog.jsonb[], 'simple', NULL, '{\"model\": \"m\"}')",
		select => q{SELECT orchestration, workflow, confidence, source, reason FROM agentorch."select"('{"prompt": "what is 2 + 2?"}')},
		trace => "SELECT agentorch.trace($w)",
		metrics_prometheus => 'SELECT agentorch.metrics_prometheus()',
		drop_tool => "SELECT agentorch.drop_tool('t.${p}_doomed')",
	);
	for my $f (sort keys %optional)
	{
		SKIP:
		{
			skip "agentorch.$f() is not installed", 2 unless entry_exists($db, $f);
			if ($f eq 'drop_tool')
			{
				# the tool to drop, registered outside the test
				my $r = try_sql($db, $who eq 'alice' ? 'alice' : undef, "SET search_path = pg_catalog, pg_temp;\n"
					  . "SELECT agentorch.register_tool('t.${p}_doomed', 'function', "
					  . lit(jenc({ function => $who eq 'alice' ? 'alice.tool_echo' : 'admin.su_echo' })) . ')');
				note("t.${p}_doomed: $r->{err}") if $r->{rc};
			}
			call($who, $db, $f, $optional{$f});
		}
	}

	# selection: rules only for the superuser (EXECUTE revoked from PUBLIC),
	# then select() and start() without an orchestration read them
	SKIP:
	{
		skip 'agentorch.load_selector_rules() is not installed', ($who eq 'su' ? 8 : 6) unless entry_exists($db, 'load_selector_rules');
		my $rules = "SELECT agentorch.load_selector_rules("
		  . lit("rules:\n  - name: hostile-check\n    match: {keywords: [hostile], regex: 'check', intent: command, complexity: {max: 90}}\n    orchestration: simple\n") . ')';
		if ($who eq 'alice')
		{
			call($who, $db, 'load_selector_rules (refused)', $rules, fails => qr/permission denied/);
		}
		else
		{
			call($who, $db, 'load_selector_rules', $rules);
		}
		call($who, $db, 'select (after rules)',
			q{SELECT orchestration, source, reason FROM agentorch."select"('{"prompt": "hostile check: select"}')});
		$out = call($who, $db, 'start with a NULL orchestration',
			"SELECT agentorch.start('{\"prompt\": \"hostile check: selected run of $who\"}', NULL, NULL, '{\"model\": \"m\"}')");
		$run{"$who/$db/selected"} = $out;
		call($who, $db, 'load_selector_rules (empty)', "SELECT agentorch.load_selector_rules('rules: []')")
		  if $who eq 'su';
	}
	return;
}

exercise('alice', 'postgres');
exercise('su', 'postgres');

# ------------------------------------------------------------------ the executors finish the runs

# the runs started above, to completion
for my $k (sort grep { m{^(alice|su)/postgres/} } keys %run)
{
	next unless ($run{$k} // '') =~ /^[1-9]\d*$/;
	is(settle('postgres', $run{$k}), 'succeeded', "postgres: run $k ($run{$k}) succeeded");
}

# ------------------------------------------------------------------ hostdb: everything starts with public first

# definitions and runs in hostdb (the executors there have public first)
for my $who ('alice', 'su')
{
	my $p = $who eq 'alice' ? 'alice' : 'su';
	my ($fn, $sql, $lib) = ("t.${p}_fn", "t.${p}_sql", $who eq 'alice' ? 't.alice_lib_sql' : "t.${p}_sql");
	register_fn_tool($who, 'hostdb', $fn, '');
	if ($who eq 'alice')
	{
		call($who, 'hostdb', 'register_tool (sql, alice, pg_catalog)',
			"SET search_path = alice, pg_catalog;\n"
			  . "SELECT agentorch.register_tool('$sql', 'sql', " . lit('{"sql": "SELECT f_tool($1) AS r", "params": ["x"]}') . ')');
		call($who, 'hostdb', 'register_tool (sql, alice_lib, pg_catalog)',
			"SET search_path = alice_lib, pg_catalog;\n"
			  . "SELECT agentorch.register_tool('$lib', 'sql', " . lit('{"sql": "SELECT f_lib($1) AS r", "params": ["x"]}') . ')');
	}
	else
	{
		call($who, 'hostdb', 'register_tool (sql)',
			"SELECT agentorch.register_tool('$sql', 'sql', " . lit('{"sql": "SELECT admin.su_sql_fn($1) AS r", "params": ["x"]}') . ')');
	}
	call($who, 'hostdb', 'register_workflow',
		"SELECT agentorch.register_workflow('${p}_wf', " . lit(jenc(wf_def(fn => $fn, sql => $sql, lib => $lib, llm => 1))) . ')');
	(my $yaml = $WAIT_YAML) =~ s/TOOL/$fn/g;
	call($who, 'hostdb', 'register_workflow_yaml', "SELECT agentorch.register_workflow_yaml('${p}_wait', " . lit($yaml) . ')');
	$run{"$who/hostdb/wf"} = call($who, 'hostdb', 'run_workflow', "SELECT agentorch.run_workflow('${p}_wf', " . lit($INPUT) . ')');
	$run{"$who/hostdb/simple"} = call($who, 'hostdb', 'start (simple)',
		"SELECT agentorch.start('{\"prompt\": \"hostile check: hostdb simple run of $who\"}', 'simple', NULL, '{\"model\": \"m\"}')");
	my $wait = call($who, 'hostdb', 'run_workflow (user_input)', "SELECT agentorch.run_workflow('${p}_wait', '{\"s\": \"w\"}')");
	$run{"$who/hostdb/wait"} = $wait;
	$wait = 0 unless $wait =~ /^[1-9]\d*$/;
	is(settle('hostdb', $wait), 'waiting', "$who\@hostdb: the user_input run waits");
	call($who, 'hostdb', 'submit_input', "SELECT agentorch.submit_input($wait, 'ask', '{\"ok\": false}')");
}
for my $k (sort grep { m{/hostdb/} } keys %run)
{
	next unless ($run{$k} // '') =~ /^[1-9]\d*$/;
	is(settle('hostdb', $run{$k}), 'succeeded', "hostdb: run $k ($run{$k}) succeeded");
}

# ------------------------------------------------------------------ the runs did the right thing

for my $db ('postgres', 'hostdb')
{
	my $w = $run{"alice/$db/wf"};
	my $s = $run{"su/$db/wf"};
	next unless ($w // '') =~ /^\d+$/ && ($s // '') =~ /^\d+$/;
	is(step_field($db, $w, 'a', "output->>'user'"), 'alice', "$db: alice's tool ran as alice");
	is(step_field($db, $s, 'a', "output->>'user'"), $SUPERUSER, "$db: the superuser's tool ran as the superuser");
	is(step_field($db, $w, 'route', "status"), 'succeeded', "$db: the branch was evaluated");
	is(step_field($db, $w, 'big', "status") . '/' . step_field($db, $w, 'small', "status"), 'succeeded/skipped',
		"$db: the branch chose big (n = 2 > 1, s starts with pre)");
	is(step_field($db, $w, 'guarded', "status"), 'skipped', "$db: the when guard skipped its step");
	is(step_field($db, $w, 'each', "jsonb_array_length(output)"), '3', "$db: the for_each loop ran 3 iterations");
	is(step_field($db, $w, 'count', "jsonb_array_length(output)"), '2', "$db: the while loop ran 2 iterations");
	is(su_q($db, "SELECT output->>'join' FROM agentorch.runs WHERE id = $w"), 'joined pre-hostile-post',
		"$db: the output template was rendered");
	is(su_q($db, "SELECT output->1 FROM agentorch.steps WHERE run_id = $w AND step_id = 'fan'"), '[{"r": "f_tool:hostile"}]',
		"$db: the sql tool registered with search_path alice, pg_catalog found alice.f_tool()");
	is(su_q($db, "SELECT output->2 FROM agentorch.steps WHERE run_id = $w AND step_id = 'fan'"), '[{"r": "f_lib:lib"}]',
		"$db: the sql tool registered with search_path alice_lib, pg_catalog found alice_lib.f_lib()");
	is(su_q($db, "SELECT output->1 FROM agentorch.steps WHERE run_id = $s AND step_id = 'fan'"), '[{"r": "su_sql:hostile"}]',
		"$db: the superuser's sql tool ran");
	like(su_q($db, "SELECT output #>> '{}' FROM agentorch.steps WHERE run_id = $w AND step_id = 'call'"),
		qr/The tool said: .*"user": ?"alice"/, "$db: the tool the model called ran as alice");
}
is(step_field('postgres', $run{'alice/postgres/wait'} || 0, 'approved', "output->'echo'->>'verdict'"), 'approved waiting run',
	'postgres: the resumed user_input run took the approved branch');

# the sql tool registered with only pg_catalog on its path must not find
# alice.alice_only(): refused at registration, or failing when it runs
if ($run{'postgres/nopath_registered'})
{
	call('alice', 'postgres', 'register_workflow (tool registered with pg_catalog only)',
		q{SELECT agentorch.register_workflow('alice_nopath', '{"steps": [{"id": "q", "type": "tool", "tool": "t.alice_nopath_sql", "retry": {"max_attempts": 1}}]}')});
	my $np = call('alice', 'postgres', 'run_workflow (tool registered with pg_catalog only)',
		q{SELECT agentorch.run_workflow('alice_nopath')});
	$np = 0 unless $np =~ /^\d+$/;
	is(settle('postgres', $np), 'failed', 'a sql tool registered with search_path pg_catalog does not find alice.alice_only()');
	like(su_q('postgres', "SELECT error::text FROM agentorch.steps WHERE run_id = $np AND step_id = 'q'"),
		qr/alice_only\(\) does not exist/, '... the step fails with "function alice_only() does not exist"');
}
else
{
	like($run{'postgres/nopath_error'} // '', qr/alice_only\(\) does not exist/,
		'a sql tool registered with search_path pg_catalog that calls alice_only() is refused: "does not exist"');
	pass('(the tool was refused at registration, so no run)');
}

# ------------------------------------------------------------------ the verdict

for my $db ('postgres', 'hostdb')
{
	my $rows = su_q($db, q{SELECT count(*) FROM public.hostile_calls});
	is($rows, '0', "$db: public.hostile_calls is empty: no hostile object was ever called")
	  or diag(su_q($db, q{SELECT string_agg(format('%s | %s | %s | %s', op, who, session_role, backend), E'\n' ORDER BY at)
	    FROM (SELECT * FROM public.hostile_calls ORDER BY at LIMIT 40) h}));
	is(su_q($db, q{SELECT count(*) FROM public.hostile_calls WHERE who <> 'alice'}), '0',
		"$db: no hostile object ran as another role than alice");
}
my @after = slurp_file($node->logfile, $LOG_AFTER_SETUP) =~ /^.*HOSTILE_CALL.*$/mg;
is(scalar(@after), 0, 'the server log has no HOSTILE_CALL line after the setup probes')
  or diag(join("\n", @after[ 0 .. ($#after < 19 ? $#after : 19) ]));
is(su_q('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'}), 'f', 'alice is still not a superuser');

$node->stop;
done_testing();
