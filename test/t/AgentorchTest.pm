# AgentorchTest.pm -- small helpers shared by agentorch's TAP tests.
#
# Every wait here is a poll against the server (poll_query_until) or a
# call of agentorch.wait(); none is a fixed sleep.
package AgentorchTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# Waits that fail should fail within a minute, not the framework's three.
$PostgreSQL::Test::Utils::timeout_default = $ENV{PG_TEST_TIMEOUT_DEFAULT} || 60;

our @EXPORT = qw(ao_node ao_setup_tools ao_register ao_wait_run ao_executor_pids
  ao_check_seqs ao_poll ao_query_retry);

# ao_node(name, conf lines...): an initialised (not started) node with
# agentorch preloaded unless a conf line says otherwise, restarting after
# a backend crash (the framework turns that off), listening only on its
# unix socket (the framework's default).
sub ao_node
{
	my ($name, @conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my $preload = (grep { /shared_preload_libraries/ } @conf) ? '' :
	  "shared_preload_libraries = 'agentorch'\n";
	$node->append_conf('postgresql.conf',
		$preload . "fsync = off\nrestart_after_crash = on\n" . join("\n", @conf) . "\n");
	return $node;
}

# ao_setup_tools(node, db): the extension plus the tables and tools the
# crash tests use, all in public:
#   effects(tag, step)  -- one row per execution of a recording step
#   tool "t.record"     -- inserts (input.tag, input.step) into effects
#   tool "t.slow"       -- sleeps input.seconds (default 2), then returns
#   tool "t.record_slow"-- records, then sleeps input.seconds
sub ao_setup_tools
{
	my ($node, $db) = @_;
	$node->safe_psql($db, q{
CREATE EXTENSION IF NOT EXISTS agentorch;
CREATE TABLE public.effects (tag text NOT NULL, step text NOT NULL, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION public.t_record(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.effects (tag, step) VALUES (input->>'tag', input->>'step');
    RETURN jsonb_build_object('recorded', input->>'step');
END $$;
CREATE FUNCTION public.t_slow(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(COALESCE((input->>'seconds')::float8, 2));
    RETURN jsonb_build_object('slept', COALESCE((input->>'seconds')::float8, 2));
END $$;
CREATE FUNCTION public.t_record_slow(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.effects (tag, step) VALUES (input->>'tag', input->>'step');
    PERFORM pg_sleep(COALESCE((input->>'seconds')::float8, 0.05));
    RETURN jsonb_build_object('recorded', input->>'step');
END $$;
SELECT agentorch.register_tool('t.record', 'function', '{"function": "public.t_record"}');
SELECT agentorch.register_tool('t.slow', 'function', '{"function": "public.t_slow"}');
SELECT agentorch.register_tool('t.record_slow', 'function', '{"function": "public.t_record_slow"}');
});
	return;
}

# ao_register(node, db, name, definition-as-JSON-text): register a workflow.
sub ao_register
{
	my ($node, $db, $name, $json) = @_;
	$json =~ s/'/''/g;
	return $node->safe_psql($db,
		"SELECT agentorch.register_workflow('$name', '$json'::jsonb)");
}

# ao_wait_run(node, db, run, timeout): the run's status once it has
# finished (agentorch.wait), asking again when the server restarted under
# the call; after timeout_default seconds, whatever status it has.
sub ao_wait_run
{
	my ($node, $db, $run, $timeout) = @_;
	$timeout ||= '30s';
	my $status = '';
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		my ($out, $err) = ('', '');
		my $rc = $node->psql($db,
			"SELECT status FROM agentorch.wait($run, '$timeout')",
			stdout => \$out, stderr => \$err);
		$status = $out if $rc == 0;
		last if $rc == 0 && $status ne 'running' && $status ne 'pending';
		# the server is restarting: poll until it answers again
		usleep(100_000) if $rc != 0;
	}
	return $status;
}

# ao_query_retry(node, db, sql): safe_psql that asks again while the
# server is restarting (connection refused or lost), up to timeout_default.
sub ao_query_retry
{
	my ($node, $db, $sql) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	my ($out, $err) = ('', '');
	while (time() < $deadline)
	{
		($out, $err) = ('', '');
		my $rc = $node->psql($db, $sql, stdout => \$out, stderr => \$err,
			on_error_stop => 1);
		return $out if $rc == 0;
		last if $rc == 3;    # an error of the statement itself
		usleep(100_000);
	}
	die "query failed: $sql\n$err";
}

# ao_executor_pids(node, db): pids of the executors connected to db.
sub ao_executor_pids
{
	my ($node, $db) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ' ' ORDER BY pid) FROM pg_stat_activity "
		  . "WHERE backend_type = 'agentorch executor' AND datname = '$db'");
	return split / /, $out;
}

# ao_check_seqs(node, db, where, label): chunk and event seqs of the runs
# selected by where (a condition on agentorch.runs r) are 1..n without gaps
# and end at the run's counters.
sub ao_check_seqs
{
	my ($node, $db, $where, $label) = @_;
	for my $t ('chunks', 'events')
	{
		my $counter = $t eq 'chunks' ? 'last_chunk_seq' : 'last_event_seq';
		my $bad = $node->safe_psql($db, qq{
SELECT count(*) FROM agentorch.runs r
  LEFT JOIN LATERAL (SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi
                       FROM agentorch.$t x WHERE x.run_id = r.id) s ON true
 WHERE ($where) AND NOT (s.n > 0 AND s.lo = 1 AND s.hi = s.n AND s.hi = r.$counter)});
		is($bad, '0', "$label: $t seqs are 1..n without gaps");
	}
	return;
}

# ao_poll(node, db, query, expected, label): poll_query_until as a test.
sub ao_poll
{
	my ($node, $db, $query, $expected, $label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok($node->poll_query_until($db, $query, $expected), $label);
	return;
}

1;
