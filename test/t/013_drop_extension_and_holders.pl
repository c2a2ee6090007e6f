# Workers clean up after themselves:
# - DROP EXTENSION agentorch with runs in flight (streaming llm steps that
#   hold a model's concurrency slots, slow transactional steps) succeeds at
#   the first try, leaves no agentorch schema, and CREATE EXTENSION again
#   works, with the model's slots free (in_flight 0) and new runs finishing;
# - a network step whose holder died (kill -9 of the executor) is taken
#   back as soon as the executors are back, not after its whole lease.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;
use AgentorchTest qw(ao_executor_pids ao_wait_run ao_query_retry);

my $mock = mock_start('cancel.json');
my $node = llm_start(llm_node('drop_ext', "agentorch.lease = '120s'", "restart_after_crash = on"));
my $setup = sub {
	register_model($node, 'slow', 'openai', $mock, { model => 'mock-slow', max_concurrency => 2 });
	sql($node, q{
CREATE OR REPLACE FUNCTION public.t_sleep(input jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT pg_catalog.jsonb_build_object('slept', pg_catalog.pg_sleep(0.5)::text) $$;
SELECT agentorch.register_tool('t.sleep', 'function', '{"function": "public.t_sleep"}');
SELECT agentorch.register_workflow('sleepy', '{"steps": [
  {"id": "a", "type": "tool", "tool": "t.sleep"}, {"id": "b", "type": "tool", "tool": "t.sleep", "depends_on": ["a"]},
  {"id": "c", "type": "tool", "tool": "t.sleep", "depends_on": ["b"]}]}');
});
};
$setup->();

# two streams hold both slots of the model, more runs queue behind them
my @streams = map { start_run($node, { prompt => "a slow stream please $_" }, { model => 'slow' }) } 1 .. 4;
my @sleepy = map { sql($node, "SELECT agentorch.run_workflow('sleepy')") } 1 .. 3;
ok($node->poll_query_until('postgres',
		"SELECT value = 2 FROM agentorch.metrics() WHERE name = 'model:slow.in_flight'"),
	'two streams hold the two slots of the model');
ok($node->poll_query_until('postgres',
		"SELECT count(*) >= 2 FROM agentorch.chunks c JOIN agentorch.runs r ON r.id = c.run_id WHERE c.kind = 'token'"),
	'tokens are streaming');

# a role that may not drop the extension (or the database) stops nothing
sql($node, 'CREATE ROLE bob LOGIN');
my @before = ao_executor_pids($node, 'postgres');
my ($bout, $berr) = ('', '');
isnt($node->psql('postgres', 'DROP EXTENSION agentorch', stdout => \$bout, stderr => \$berr,
		extra_params => [ '-U', 'bob' ]), 0, 'DROP EXTENSION by a role that does not own it fails');
like($berr, qr/must be owner of extension agentorch/, "with PostgreSQL's own error");
isnt($node->psql('template1', 'DROP DATABASE postgres', stdout => \$bout, stderr => \$berr,
		extra_params => [ '-U', 'bob' ]), 0, 'DROP DATABASE by a role that does not own it fails');
is(join(' ', ao_executor_pids($node, 'postgres')), join(' ', @before), 'and the executors were not touched');

my ($out, $err) = ('', '');
my $t0 = time();
my $rc = $node->psql('postgres', 'DROP EXTENSION agentorch', stdout => \$out, stderr => \$err);
is($rc, 0, 'DROP EXTENSION succeeds at the first try with runs in flight') or diag($err);
diag(sprintf('DROP EXTENSION took %.2f s', time() - $t0));
is(sql($node, "SELECT count(*) FROM pg_namespace WHERE nspname = 'agentorch'"), '0',
	'no agentorch schema is left behind');
is(sql($node, "SELECT count(*) FROM pg_extension WHERE extname = 'agentorch'"), '0', 'the extension is gone');

# and back again
is($node->psql('postgres', 'CREATE EXTENSION agentorch'), 0, 'CREATE EXTENSION works again');
$setup->();
ok($node->poll_query_until('postgres',
		"SELECT count(*) >= 1 FROM pg_stat_activity WHERE backend_type = 'agentorch executor' AND datname = 'postgres'"),
	'executors serve the database again');
is(sql($node, "SELECT COALESCE(max(value), 0) FROM agentorch.metrics() WHERE name = 'model:slow.in_flight'"), '0',
	'no slot of the model is left counted');
my $quick = start_run($node, { prompt => 'something quick' }, { model => 'slow' });
is(wait_status($node, $quick), 'succeeded', 'a new llm run succeeds');
my $again = sql($node, "SELECT agentorch.run_workflow('sleepy')");
is(wait_status($node, $again), 'succeeded', 'a new workflow run succeeds');

# a holder that dies: its step is taken back without waiting out the 120 s lease
my $stream = start_run($node, { prompt => 'a slow stream please, again' }, { model => 'slow' });
ok($node->poll_query_until('postgres',
		"SELECT count(*) >= 2 FROM agentorch.chunks WHERE run_id = $stream AND kind = 'token'"),
	'a stream is under way');
my $holder = sql($node, "SELECT worker FROM agentorch.steps WHERE run_id = $stream AND step_id = 'main'");
ok(grep({ $_ == $holder } ao_executor_pids($node, 'postgres')), 'an executor holds its lease');
my $lease = sql($node, "SELECT lease_until FROM agentorch.steps WHERE run_id = $stream AND step_id = 'main'");
kill 'KILL', $holder;
# (poll_query_until gives up after 60 s, half the lease)
ok($node->poll_query_until('postgres',
		"SELECT attempt >= 2 OR status::text IN ('succeeded', 'failed') FROM agentorch.steps WHERE run_id = $stream AND step_id = 'main'"),
	'the step of the killed holder is claimed again');
is(ao_query_retry($node, 'postgres',
		"SELECT min(at) < '$lease'::timestamptz FROM agentorch.events WHERE run_id = $stream AND kind = 'step_retrying'"),
	't', 'while the dead holder\'s lease still ran');
is(ao_wait_run($node, 'postgres', $stream), 'succeeded', 'and the run finishes');
like(ao_query_retry($node, 'postgres', "SELECT string_agg(DISTINCT attempt::text, ',') FROM agentorch.chunks WHERE run_id = $stream AND kind = 'token'"),
	qr/2/, 'the second attempt streamed its tokens');

$node->stop;
done_testing();
