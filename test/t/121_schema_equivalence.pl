# Upgrade scripts are honest: for every version the extension can still be
# installed at (today 0.1.0), a database that ran CREATE EXTENSION agentorch
# VERSION 'X' and then ALTER EXTENSION agentorch UPDATE has the same
# catalog as one that installed the default version fresh: functions
# (signature, result, body, language, volatility, strictness, security
# definer, parallel safety, SET options, ACL), relations (kind, options,
# row-level security, ACL), columns in order (type, collation, default, not
# null, identity, column ACL), indexes, constraints, types and enum labels,
# sequences, views, triggers, policies, the schema's ACL, event triggers,
# the extension's members and their comments, the initial privileges
# pg_dump restores (pg_init_privs), the configuration tables
# pg_extension_config_dump registered, and the rows of every table (after
# install only the seeded ones: agentorch._schemas). A mismatch prints a
# unified diff of the two catalogs, "fresh" against "updated".
#
# When this fails after a change of sql/agentorch*.sql or schemas/: the
# change is missing from the newest sql/agentorch--A--B.sql (read its
# header).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchTest qw(ao_node);

# Without executors: nothing but the install and update scripts writes to
# the databases compared.
my $node = ao_node('equivalence', "shared_preload_libraries = ''");
$node->start;

my $default = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'agentorch'});
my @old = split /\n/, $node->safe_psql('postgres', qq{
SELECT version FROM pg_available_extension_versions
 WHERE name = 'agentorch' AND version <> '$default' ORDER BY string_to_array(version, '.')::int[]});
ok(scalar(grep { $_ eq '0.1.0' } @old), "0.1.0 is still installable (versions: @old $default)");

# Each query returns the text of one part of the catalog, in a stable
# order, with names schema-qualified (search_path is pg_catalog only).
my %catalog = (
	functions => q{
SELECT string_agg(format(E'%s\n  returns %s\n  args %s\n  kind=%s lang=%s volatile=%s strict=%s secdef=%s '
                         'leakproof=%s parallel=%s retset=%s cost=%s rows=%s\n  config=%s\n  acl=%s\n  '
                         'probin=%s\n  src:\n%s',
                         p.oid::regprocedure, pg_get_function_result(p.oid),
                         pg_get_function_arguments(p.oid), p.prokind, l.lanname, p.provolatile,
                         p.proisstrict, p.prosecdef, p.proleakproof, p.proparallel, p.proretset,
                         p.procost, p.prorows, p.proconfig, p.proacl, p.probin, p.prosrc),
                  E'\n' ORDER BY p.oid::regprocedure::text)
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'agentorch'::regnamespace},
	relations => q{
SELECT string_agg(format('%s kind=%s persistence=%s rls=%s force_rls=%s options=%s acl=%s owner_is_ext_owner=%s',
                         c.oid::regclass, c.relkind, c.relpersistence, c.relrowsecurity,
                         c.relforcerowsecurity, c.reloptions, c.relacl,
                         c.relowner = (SELECT extowner FROM pg_extension WHERE extname = 'agentorch')),
                  E'\n' ORDER BY c.relname)
  FROM pg_class c WHERE c.relnamespace = 'agentorch'::regnamespace AND c.relkind <> 'i'},
	columns => q{
SELECT string_agg(format('%s.%s %s collation=%s notnull=%s default=%s identity=%s generated=%s acl=%s',
                         c.oid::regclass, a.attname, format_type(a.atttypid, a.atttypmod),
                         CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation::text END,
                         a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity,
                         a.attgenerated, a.attacl),
                  E'\n' ORDER BY c.relname, a.attnum)
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'agentorch'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'c', 'f')
   AND a.attnum > 0 AND NOT a.attisdropped},
	indexes => q{
SELECT string_agg(pg_get_indexdef(i.indexrelid), E'\n' ORDER BY pg_get_indexdef(i.indexrelid))
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relnamespace = 'agentorch'::regnamespace},
	constraints => q{
SELECT string_agg(format('%s on %s%s: %s %s deferrable=%s deferred=%s validated=%s',
                         co.conname, co.conrelid::regclass, co.contypid::regtype, co.contype,
                         pg_get_constraintdef(co.oid), co.condeferrable, co.condeferred, co.convalidated),
                  E'\n' ORDER BY co.conrelid::regclass::text, co.contypid::regtype::text, co.conname)
  FROM pg_constraint co WHERE co.connamespace = 'agentorch'::regnamespace},
	types => q{
SELECT string_agg(format('%s type=%s base=%s notnull=%s default=%s acl=%s labels=%s',
                         t.oid::regtype, t.typtype,
                         CASE WHEN t.typbasetype <> 0 THEN format_type(t.typbasetype, t.typtypmod) END,
                         t.typnotnull, t.typdefault, t.typacl,
                         (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e
                           WHERE e.enumtypid = t.oid)),
                  E'\n' ORDER BY t.typname)
  FROM pg_type t
 WHERE t.typnamespace = 'agentorch'::regnamespace
   AND NOT (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c'))
   AND NOT (t.typcategory = 'A' AND t.typelem <> 0 AND t.typname LIKE '\_%')},
	sequences => q{
SELECT string_agg(format('%s type=%s start=%s inc=%s min=%s max=%s cache=%s cycle=%s owned_by=%s',
                         s.seqrelid::regclass, s.seqtypid::regtype, s.seqstart, s.seqincrement,
                         s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
                         (SELECT format('%s.%s', d.refobjid::regclass, a.attname)
                            FROM pg_depend d JOIN pg_attribute a
                              ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                           WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                             AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))),
                  E'\n' ORDER BY s.seqrelid::regclass::text)
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
 WHERE c.relnamespace = 'agentorch'::regnamespace},
	views => q{
SELECT string_agg(format(E'%s:\n%s', c.oid::regclass, pg_get_viewdef(c.oid)), E'\n' ORDER BY c.relname)
  FROM pg_class c WHERE c.relnamespace = 'agentorch'::regnamespace AND c.relkind IN ('v', 'm')},
	triggers => q{
SELECT string_agg(format('%s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled),
                  E'\n' ORDER BY t.tgrelid::regclass::text, t.tgname)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'agentorch'::regnamespace AND NOT t.tgisinternal},
	policies => q{
SELECT string_agg(format('%s on %s permissive=%s roles=%s cmd=%s using=%s check=%s',
                         p.polname, p.polrelid::regclass, p.polpermissive,
                         ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END
                                 FROM unnest(p.polroles) r ORDER BY 1),
                         p.polcmd, pg_get_expr(p.polqual, p.polrelid),
                         pg_get_expr(p.polwithcheck, p.polrelid)),
                  E'\n' ORDER BY p.polrelid::regclass::text, p.polname)
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
 WHERE c.relnamespace = 'agentorch'::regnamespace},
	schema_and_extension => q{
SELECT format(E'schema %s acl=%s\nextension relocatable=%s schema=%s\nconfig:\n%s',
              n.nspname, n.nspacl, e.extrelocatable, e.extnamespace::regnamespace,
              (SELECT string_agg(format('  %s where=%L', c.r::regclass, c.cond), E'\n' ORDER BY c.r::regclass::text)
                 FROM unnest(e.extconfig, e.extcondition) AS c(r, cond)))
  FROM pg_extension e JOIN pg_namespace n ON n.nspname = 'agentorch'
 WHERE e.extname = 'agentorch'},
	event_triggers => q{
SELECT string_agg(format('%s on %s calls %s tags=%s enabled=%s', evtname, evtevent, evtfoid::regproc,
                         evttags, evtenabled), E'\n' ORDER BY evtname)
  FROM pg_event_trigger},
	members => q{
SELECT string_agg(format('%s%s', pg_describe_object(d.classid, d.objid, d.objsubid),
                         ': ' || obj_description(d.objid, d.classid::regclass::name)),
                  E'\n' ORDER BY pg_describe_object(d.classid, d.objid, d.objsubid))
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'agentorch')},
	init_privs => q{
SELECT string_agg(format('%s type=%s %s', pg_describe_object(i.classoid, i.objoid, i.objsubid),
                         i.privtype, i.initprivs),
                  E'\n' ORDER BY pg_describe_object(i.classoid, i.objoid, i.objsubid))
  FROM pg_init_privs i
 WHERE i.privtype = 'e'
   AND (i.objoid = 'agentorch'::regnamespace
        OR EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = i.classoid AND d.objid = i.objoid AND d.deptype = 'e'
                      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'agentorch'))
        OR EXISTS (SELECT 1 FROM pg_class c WHERE i.classoid = 'pg_class'::regclass AND c.oid = i.objoid
                      AND c.relnamespace = 'agentorch'::regnamespace))},
);

# The contents of every table of the schema, row by row (as indented
# JSON, so a diff shows the key that differs).
sub table_rows
{
	my ($db) = @_;
	my @tables = split /\n/, $node->safe_psql($db, q{SET search_path = pg_catalog;
SELECT c.oid::regclass FROM pg_class c WHERE c.relnamespace = 'agentorch'::regnamespace
   AND c.relkind IN ('r', 'p') ORDER BY c.relname});
	my $out = '';
	for my $t (@tables)
	{
		$out .= "$t:\n" . $node->safe_psql($db, "SET search_path = pg_catalog;
SELECT string_agg(jsonb_pretty(to_jsonb(t)), E'\\n' ORDER BY to_jsonb(t)::text) FROM $t t") . "\n";
	}
	return $out;
}

# The catalog of db, part by part.
sub catalog_of
{
	my ($db) = @_;
	my %parts = map {
		$_ => $node->safe_psql($db, "SET search_path = pg_catalog;\n$catalog{$_}")
	} keys %catalog;
	$parts{table_rows} = table_rows($db);
	return \%parts;
}

# compare(part, fresh, updated, label): a test; on mismatch a unified diff.
sub compare
{
	my ($part, $fresh, $updated, $label) = @_;
	if ($fresh eq $updated)
	{
		pass("$label: $part");
		return;
	}
	my $dir = PostgreSQL::Test::Utils::tempdir();
	PostgreSQL::Test::Utils::append_to_file("$dir/fresh", "$fresh\n");
	PostgreSQL::Test::Utils::append_to_file("$dir/updated", "$updated\n");
	my $diff = `diff -u --label fresh --label updated '$dir/fresh' '$dir/updated'`;
	fail("$label: $part");
	diag("$part differs (- fresh install of $default, + updated):\n$diff");
	return;
}

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION agentorch');
is($node->safe_psql('fresh', q{SELECT extversion FROM pg_extension WHERE extname = 'agentorch'}),
	$default, "fresh install at $default");
my $fresh = catalog_of('fresh');
# the catalog queries see what they should (a query that matched nothing
# would make every comparison pass)
for my $part (qw(functions relations columns indexes constraints types sequences policies
	schema_and_extension members init_privs table_rows))
{
	isnt($fresh->{$part}, '', "the fresh catalog has $part");
}

for my $v (@old)
{
	(my $db = "from_$v") =~ s/\W/_/g;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE EXTENSION agentorch VERSION '$v'");
	$node->safe_psql($db, 'ALTER EXTENSION agentorch UPDATE');
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'agentorch'}),
		$default, "$v updated to $default");
	my $updated = catalog_of($db);
	compare($_, $fresh->{$_}, $updated->{$_}, "$v + update = fresh $default") for sort keys %$fresh;
}

$node->stop;
done_testing();
