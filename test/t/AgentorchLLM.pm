# AgentorchLLM.pm -- helpers of the LLM-layer TAP tests (t/1xx_llm_*.pl).
#
# A node with agentorch preloaded and short retry backoffs, the bundled
# mock LLM server (test/mock_llm) started from the test on a free
# 127.0.0.1 port with a script from t/llm_scripts/, and small SQL helpers.
# Every wait is agentorch.wait() or a poll of the server; none is a fixed
# sleep.
package AgentorchLLM;

use strict;
use warnings;
use Exporter 'import';
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();

# A wait that fails should fail well within the test's minute, and a test
# file whose runs never finish still ends within about a minute.
$PostgreSQL::Test::Utils::timeout_default = $ENV{PG_TEST_TIMEOUT_DEFAULT} || 30;
my $BUDGET_END = time() + ($ENV{AO_LLM_TEST_BUDGET} || 55);

sub deadline
{
	my $d = time() + $PostgreSQL::Test::Utils::timeout_default;
	return $d < $BUDGET_END ? $d : $BUDGET_END;
}

our @EXPORT = qw(create_worker_role llm_node llm_start mock_start mock_get mock_post mock_poll mock_requests
  mock_reset sql sql_as register_model start_run wait_status crashed run_field
  token_text chunk_list event_list step_row json_in jdec jenc metric
  script_path psql_result settle_run);

my $TDIR = dirname(abs_path(__FILE__));
my @MOCKS;

# The path of a script in t/llm_scripts/ (or of a mock_llm script when the
# name has a slash, e.g. "../mock_llm/scripts/demo.json").
sub script_path
{
	my ($name) = @_;
	return $name =~ m{/} ? "$TDIR/$name" : "$TDIR/llm_scripts/$name";
}

sub jdec { return JSON::PP->new->allow_nonref->decode($_[0]); }
sub jenc { return JSON::PP->new->canonical->allow_nonref->encode($_[0]); }

# A JSON value as a dollar-quoted jsonb literal.
sub json_in
{
	my ($v) = @_;
	my $text = ref $v ? jenc($v) : $v;
	die "json_in: text contains the quote tag" if $text =~ /\$J\$/;
	return "\$J\$$text\$J\$::jsonb";
}

# llm_node(name, conf lines...): an initialised (not started) node with
# agentorch preloaded and fast retries.
sub llm_node
{
	my ($name, @conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', join("\n",
		"shared_preload_libraries = 'agentorch'",
		"fsync = off",
		# a crashing executor fails the test instead of taking the server
		# (and with it every later test file) down
		"restart_after_crash = on",
		"agentorch.retry_initial_backoff = '50ms'",
		"agentorch.retry_max_backoff = '200ms'",
		"agentorch.flush_interval = '10ms'",
		@conf) . "\n");
	return $node;
}

# llm_start(node): start it and create the extension in postgres.
sub llm_start
{
	my ($node) = @_;
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION agentorch');
	return $node;
}

# mock_start(script, env => {...}, args => [...]): the mock server on a free
# port; returns {port, url (http://127.0.0.1:PORT), handle}. It is stopped
# when the test ends.
sub mock_start
{
	my ($script, %opt) = @_;
	my $out = '';
	# stderr goes to a file in the test's log directory (a pipe nobody
	# reads could fill up and stall the server)
	my $err = sprintf('%s/%s_mock_llm_%d.log', $PostgreSQL::Test::Utils::log_path,
		(File::Basename::fileparse($0, '.pl'))[0], scalar @MOCKS);
	my @cmd = ('python3', "$TDIR/../mock_llm/mock_llm.py", '--port', '0',
		($script ? ('--script', script_path($script)) : ()), @{ $opt{args} || [] });
	my $h;
	my $t = IPC::Run::timeout(20, exception => 'mock_llm did not print its banner within 20 s');
	{
		local %ENV = (%ENV, %{ $opt{env} || {} });
		$h = IPC::Run::start(\@cmd, '<', \undef, '>', \$out, '2>', $err, $t);
	}
	$h->pump while $out !~ /listening on 127\.0\.0\.1:(\d+)/ && $h->pumpable;
	$t->reset;
	die "mock_llm did not start: $out " . (-f $err ? slurp_file($err) : '') unless $out =~ /listening on 127\.0\.0\.1:(\d+)/;
	my $m = { port => $1, url => "http://127.0.0.1:$1", handle => $h, err => $err };
	push @MOCKS, $m;
	return $m;
}

sub mock_http
{
	my ($m, $method, $path) = @_;
	my $r = HTTP::Tiny->new(timeout => 10)->request($method, "$m->{url}$path");
	die "mock $method $path: $r->{status} $r->{content}" unless $r->{success};
	return $r->{content} =~ /^\s*[\[{]/ ? jdec($r->{content}) : $r->{content};
}

sub mock_get { return mock_http($_[0], 'GET', $_[1]); }

# mock_poll(mock, code): poll GET /stats until code->(stats) is true, up to
# timeout_default; returns whether it became true.
sub mock_poll
{
	my ($m, $code) = @_;
	my $deadline = deadline();
	while (time() < $deadline)
	{
		return 1 if $code->(mock_get($m, '/stats'));
		Time::HiRes::usleep(50_000);
	}
	return 0;
}
sub mock_post { return mock_http($_[0], 'POST', $_[1]); }
sub mock_reset { return mock_http($_[0], 'POST', '/reset'); }
# The API requests the mock received (oldest first).
sub mock_requests { return mock_get($_[0], '/requests')->{requests}; }

END
{
	local $?;    # keep the test's exit status
	for my $m (@MOCKS)
	{
		# SIGTERM stops the mock cleanly; KILL if it has not within 5 s
		eval { $m->{handle}->kill_kill(grace => 5); };
		my $err = -f $m->{err} ? slurp_file($m->{err}) : '';
		diag("mock_llm stderr ($m->{err}):\n$err") if $err =~ /Traceback/;
	}
}

# sql(node, query): safe_psql in database postgres.
sub sql { return $_[0]->safe_psql('postgres', $_[1]); }

# sql_as(node, role, query): the same, connected as role.
sub sql_as
{
	my ($node, $role, $q) = @_;
	return $node->safe_psql('postgres', $q, extra_params => [ '-U', $role ]);
}

# register_model(node, name, provider, mock, {spec...}): base_url points at
# the mock (with /v1 for openai).
# create_worker_role(node, role): a LOGIN role with EXECUTE on the
# worker-facing functions only, as the README tells administrators to make
# the role agentorch-worker connects as.
sub create_worker_role
{
	my ($node, $role) = @_;
	sql($node, qq{
CREATE ROLE $role LOGIN;
DO \$\$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'agentorch'::regnamespace AND p.proname IN
                    ('_worker_register', '_worker_claim', '_worker_heartbeat', '_worker_flush',
                     '_worker_settle', '_worker_call_tools', '_worker_fallback', '_worker_exit')
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO $role', f);
    END LOOP;
END \$\$;
});
	return;
}

sub register_model
{
	my ($node, $name, $provider, $m, $spec) = @_;
	my %s = (base_url => $provider eq 'openai' ? "$m->{url}/v1" : $m->{url}, %$spec);
	return sql($node, "SELECT agentorch.register_model('$name', '$provider', " . json_in(\%s) . ")");
}

# start_run(node, input-hashref, options-hashref, role): a simple run's id
# (a fixed run when options has workflow => name).
sub start_run
{
	my ($node, $input, $options, $role) = @_;
	my %o = %{ $options || {} };
	my $wf = delete $o{workflow};
	my $q = defined $wf
	  ? "SELECT agentorch.run_workflow('$wf', " . json_in($input) . ', ' . json_in(\%o) . ')'
	  : 'SELECT agentorch.start(' . json_in($input) . ", 'simple', NULL, " . json_in(\%o) . ')';
	return $role ? sql_as($node, $role, $q) : sql($node, $q);
}

# crashed(node): the server log shows a process that died of a signal.
sub crashed
{
	my ($node) = @_;
	return slurp_file($node->logfile) =~ /terminated by signal \d+/;
}

# wait_status(node, run): the run's status once it has finished; "crashed"
# when a server process crashed meanwhile.
sub wait_status
{
	my ($node, $run) = @_;
	my $deadline = deadline();
	my $status = '';
	while (time() < $deadline)
	{
		if (crashed($node))
		{
			diag('a server process crashed: ' . join(' | ', slurp_file($node->logfile) =~ /^.*(?:terminated by signal|Failed process was running).*$/mg));
			return 'crashed';
		}
		my ($out, $err) = ('', '');
		my $rc = $node->psql('postgres', "SELECT status FROM agentorch.wait($run, '2s')",
			stdout => \$out, stderr => \$err);
		$status = $out if $rc == 0;
		last if $rc == 0 && $status ne 'running' && $status ne 'pending';
	}
	return $status;
}

# run_field(node, run, expression over agentorch.runs r).
sub run_field
{
	my ($node, $run, $expr) = @_;
	return sql($node, "SELECT $expr FROM agentorch.runs r WHERE id = $run");
}

# step_row(node, run, step): a hashref of the step's row (json).
sub step_row
{
	my ($node, $run, $step) = @_;
	return jdec(sql($node,
		"SELECT row_to_json(s) FROM agentorch.steps s WHERE run_id = $run AND step_id = '$step'"));
}

# token_text(node, run, step?): the run's token chunks concatenated in seq order.
sub token_text
{
	my ($node, $run, $step) = @_;
	my $w = defined $step ? " AND step_id = '$step'" : '';
	return sql($node, "SELECT COALESCE(string_agg(content, '' ORDER BY seq), '') FROM agentorch.chunks "
		  . "WHERE run_id = $run AND kind = 'token'$w");
}

# chunk_list(node, run): arrayref of {seq, kind, attempt, step_id, content, data}.
sub chunk_list
{
	my ($node, $run) = @_;
	return jdec(sql($node, "SELECT COALESCE(json_agg(json_build_object('seq', seq, 'kind', kind, "
		  . "'attempt', attempt, 'step_id', step_id, 'content', content, 'data', data, 'at', at) ORDER BY seq), '[]') "
		  . "FROM agentorch.chunks WHERE run_id = $run"));
}

# event_list(node, run): arrayref of {seq, kind, step_id, data, ms (epoch ms of at)}.
sub event_list
{
	my ($node, $run) = @_;
	return jdec(sql($node, "SELECT COALESCE(json_agg(json_build_object('seq', seq, 'kind', kind, "
		  . "'step_id', step_id, 'data', data, 'ms', extract(epoch FROM at) * 1000) ORDER BY seq), '[]') "
		  . "FROM agentorch.events WHERE run_id = $run"));
}

# psql_result(node, db, role, sql): run sql connected as role (the
# superuser when role is undef), stopping at the first error; never dies.
# Returns {rc, out, err, sqlstate, message, detail}: the error's SQLSTATE
# (psql's VERBOSITY=verbose prints it), message and DETAIL text.
sub psql_result
{
	my ($node, $db, $role, $q) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql($db, $q, stdout => \$out, stderr => \$err, on_error_stop => 1,
		extra_params => [ ($role ? ('-U', $role) : ()), '-v', 'VERBOSITY=verbose' ]);
	my %r = (rc => $rc, out => $out, err => $err, sqlstate => '', message => '', detail => '');
	if ($err =~ /ERROR:\s+([0-9A-Z]{5}):\s+(.*)/)
	{
		($r{sqlstate}, $r{message}) = ($1, $2);
	}
	$r{detail} = $1 if $err =~ /^DETAIL:\s+(.*?)(?=^(?:HINT|CONTEXT|LOCATION|STATEMENT):|\z)/ms;
	return \%r;
}

# settle_run(node, db, run, prefix): the run's status once it has finished
# or waits for input (agentorch.wait() as the superuser, after the SQL
# prefix, e.g. a SET search_path), asking again up to timeout_default;
# 'error: ...' when wait() fails, 'no run' for an id that is not one.
sub settle_run
{
	my ($node, $db, $run, $prefix) = @_;
	return 'no run' unless defined $run && $run =~ /^[1-9]\d*$/;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	my $st = '';
	while (time() < $deadline)
	{
		my $r = psql_result($node, $db, undef, ($prefix // '') . "SELECT status FROM agentorch.wait($run, '5s')");
		$st = $r->{rc} == 0 ? $r->{out} : "error: $r->{err}";
		last unless $st eq 'running' || $st eq 'pending';
	}
	return $st;
}

# metric(node, name): the value of agentorch.metrics() named name ('' if none).
sub metric
{
	my ($node, $name) = @_;
	return sql($node, "SELECT value FROM agentorch.metrics() WHERE name = '$name'");
}

1;
