# Settings reloaded with SIGHUP (ALTER SYSTEM + pg_reload_conf) reach the
# launcher and the executors: agentorch.max_workers grows and shrinks the
# executor pool, agentorch.poll_interval is visible to new sessions, and
# the executors use reloaded retry settings for the next failure.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentorchTest;

my $node = ao_node('sighup');
$node->start;
ao_setup_tools($node, 'postgres');

my $count = q{SELECT count(*) = %d FROM pg_stat_activity
 WHERE backend_type = 'agentorch executor' AND datname = 'postgres'};

ok($node->poll_query_until('postgres', sprintf($count, 2)), 'two executors with the default max_workers');
my @before = ao_executor_pids($node, 'postgres');

# --- max_workers 2 -> 3
$node->safe_psql('postgres', 'ALTER SYSTEM SET agentorch.max_workers = 3');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok($node->poll_query_until('postgres', sprintf($count, 3)), 'a third executor starts after the reload');
my @after = ao_executor_pids($node, 'postgres');
my %old = map { $_ => 1 } @before;
is(scalar(grep { $old{$_} } @after), 2, 'the two existing executors kept running');

# --- max_workers 3 -> 1: executors beyond the new limit stop
$node->safe_psql('postgres', 'ALTER SYSTEM SET agentorch.max_workers = 1');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
{
	# they have nothing to finish, so this takes about one poll_interval
	local $PostgreSQL::Test::Utils::timeout_default = 15;
	ok($node->poll_query_until('postgres', sprintf($count, 1)),
		'executors beyond a lowered max_workers stop after the reload');
}

# --- poll_interval in a new session
$node->safe_psql('postgres', q{ALTER SYSTEM SET agentorch.poll_interval = '250ms'});
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok($node->poll_query_until('postgres', 'SHOW agentorch.poll_interval', '250ms'),
	'a new session shows the reloaded poll_interval');

# --- the executors themselves reload: the delay of the next retry uses
# the reloaded initial backoff (no jitter, so it is exact)
$node->safe_psql('postgres', q{
ALTER SYSTEM SET agentorch.retry_initial_backoff = '777ms';
ALTER SYSTEM SET agentorch.retry_jitter = 0;
});
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok($node->poll_query_until('postgres', 'SHOW agentorch.retry_initial_backoff', '777ms'),
	'the retry setting is reloaded');
$node->safe_psql('postgres', q{
CREATE FUNCTION public.t_flaky(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'try again' USING ERRCODE = 'serialization_failure';
END $$;
SELECT agentorch.register_tool('t.flaky', 'function', '{"function": "public.t_flaky"}');
});
ao_register($node, 'postgres', 'flaky', q{{"steps": [
  {"id": "f", "type": "tool", "tool": "t.flaky", "retry": {"max_attempts": 2}}]}});
my $run = $node->safe_psql('postgres', q{SELECT agentorch.run_workflow('flaky')});
is(ao_wait_run($node, 'postgres', $run, '20s'), 'failed', 'the always-failing run fails after its retry');
is($node->safe_psql('postgres',
	"SELECT string_agg(data->>'delay_ms', ',') FROM agentorch.events WHERE run_id = $run AND kind = 'step_retrying'"),
	'777', 'the executor waited the reloaded initial backoff before the retry');

$node->stop;
done_testing();
