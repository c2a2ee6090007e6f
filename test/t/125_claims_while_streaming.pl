# Executors that are busy streaming still pick up new work at once.
#
# An executor whose claims found nothing skips them while the database's
# work generation has not moved (src/worker/worker.c, src/shmem/shmem.c),
# at most until its next maintenance (once a second while it is busy) or
# poll_interval. With agentorch.poll_interval at its maximum (60 s), a
# commit that woke idle executors without moving the generation would
# leave its run waiting a minute, and the waits below would time out
# (30 s; without the commit's move, the long streams never start). Then
# two long paced streams keep both executors turning on socket events
# while other runs start, take input, promote steps of both kinds and
# retry after a backoff.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('streaming_claims.json');
my $node = llm_start(llm_node('claims_streaming', "agentorch.poll_interval = '60s'"));
register_model($node, 'gpt', 'openai', $mock, { model => 'mock-gpt' });

sql($node, q{
CREATE TABLE public.marks (run_id bigint, what text);
CREATE FUNCTION public.t_mark(input jsonb) RETURNS jsonb LANGUAGE sql AS
  $$ INSERT INTO public.marks VALUES ((input->>'run')::bigint, input->>'what') RETURNING jsonb_build_object('marked', what) $$;
SELECT agentorch.register_tool('t.mark', 'function', '{"function": "public.t_mark"}');
SELECT agentorch.register_workflow('tool_only', '{"steps": [
  {"id": "m", "type": "tool", "tool": "t.mark", "input": {"what": "tool_only"}}]}');
SELECT agentorch.register_workflow('asks', '{"steps": [
  {"id": "ask", "type": "user_input", "prompt": "go?"},
  {"id": "m", "type": "tool", "tool": "t.mark", "input": {"what": "${steps.ask.output.say}"}, "depends_on": ["ask"]}]}');
SELECT agentorch.register_workflow('mixed', '{"steps": [
  {"id": "a", "type": "llm", "model": "gpt", "prompt": "claims-quick one"},
  {"id": "m", "type": "tool", "tool": "t.mark", "input": {"what": "${steps.a.output}"}, "depends_on": ["a"]},
  {"id": "b", "type": "llm", "model": "gpt", "prompt": "claims-quick two", "depends_on": ["m"]}]}');
SELECT agentorch.register_workflow('retried', '{"steps": [
  {"id": "r", "type": "llm", "model": "gpt", "prompt": "claims-fails-once",
   "retry": {"max_attempts": 2, "backoff": {"initial": "300ms", "max": "1s", "jitter": 0}}}]}');
});

# two long streams: both executors busy with requests
my @long = map { start_run($node, { prompt => "claims-long-stream $_" }, { model => 'gpt' }) } 1 .. 2;
ok($node->poll_query_until('postgres',
	"SELECT count(DISTINCT run_id) = 2 FROM agentorch.chunks WHERE run_id IN ($long[0], $long[1]) AND kind = 'token'"),
	'the long streams are streaming');

# a transactional run started while they stream
my $tool_run = start_run($node, {}, { workflow => 'tool_only' });
is(wait_status($node, $tool_run), 'succeeded', 'a tool run started meanwhile succeeds');

# input submitted while they stream
my $ask_run = start_run($node, {}, { workflow => 'asks' });
ok($node->poll_query_until('postgres', "SELECT status = 'waiting' FROM agentorch.runs WHERE id = $ask_run"),
	'the user_input run waits for its input');
sql($node, "SELECT agentorch.submit_input($ask_run, 'ask', '{\"say\": \"submitted\"}')");
is(wait_status($node, $ask_run), 'succeeded', 'the input submitted meanwhile lets the run finish');
is(sql($node, "SELECT string_agg(what, ',') FROM public.marks WHERE what = 'submitted'"), 'submitted',
	'its tool step saw the input');

# llm -> tool -> llm: steps an executor's settling makes ready, of both kinds
my $mixed_run = start_run($node, {}, { workflow => 'mixed' });
is(wait_status($node, $mixed_run), 'succeeded', 'an llm -> tool -> llm run started meanwhile succeeds');
is(sql($node, "SELECT output #>> '{}' FROM agentorch.steps WHERE run_id = $mixed_run AND step_id = 'b'"),
	'quick reply', 'its last llm step ran');

# a retry due later (not_before): claimed when it comes due
my $retried_run = start_run($node, {}, { workflow => 'retried' });
is(wait_status($node, $retried_run), 'succeeded', 'a step retried after its backoff meanwhile succeeds');
is(step_row($node, $retried_run, 'r')->{attempt}, 2, 'it took two attempts');

# all of that happened while the long streams were still going
is(sql($node, "SELECT count(*) FROM agentorch.runs WHERE id IN ($long[0], $long[1]) "
	. "AND (finished_at IS NULL OR finished_at > (SELECT max(finished_at) FROM agentorch.runs "
	. "WHERE id IN ($tool_run, $ask_run, $mixed_run, $retried_run)))"),
	2, 'the long streams were still streaming when the other runs had finished');
is(wait_status($node, $_), 'succeeded', "long stream $_ succeeds") for @long;

# Idle executors (nothing streams now) still act on time: a run's deadline
# and an input timeout are due long before poll_interval (60 s) ends the
# idle sleep.
my $late_run = start_run($node, {}, { workflow => 'asks', timeout => '2s' });
ok($node->poll_query_until('postgres', "SELECT status FROM agentorch.runs WHERE id = $late_run", 'failed'),
	'idle executors: a run past its deadline fails');
is(run_field($node, $late_run, "error->>'message'"), 'run deadline exceeded', 'idle executors: ... as past its deadline');
sql($node, q{SELECT agentorch.register_workflow('asks_briefly', '{"steps": [
  {"id": "ask", "type": "user_input", "prompt": "go?", "timeout": "2s"}]}')});
my $timed_out = start_run($node, {}, { workflow => 'asks_briefly' });
ok($node->poll_query_until('postgres', "SELECT status FROM agentorch.runs WHERE id = $timed_out", 'failed'),
	'idle executors: a step past its input timeout fails the run');
is(run_field($node, $timed_out, "error->>'message'"), 'step ask failed: timed out waiting for input',
	'idle executors: ... as timed out waiting for input');

# A reload that lets the executors claim what they could not
# (network_steps: workers -> executors), shortly after another reload. The
# executors start in workers mode (a restart, so none can still be taking
# network steps when the run starts).
sql($node, "ALTER SYSTEM SET agentorch.network_steps = 'workers'");
$node->restart;
is(sql($node, 'SHOW agentorch.network_steps'), 'workers', 'network steps left to workers');
my $left = start_run($node, { prompt => 'claims-quick left for workers' }, { model => 'gpt' });
ok($node->poll_query_until('postgres', "SELECT status = 'ready' FROM agentorch.steps WHERE run_id = $left"),
	'its llm step waits for a worker');
sql($node, 'SELECT pg_reload_conf()');
sql($node, "ALTER SYSTEM SET agentorch.network_steps = 'executors'");
sql($node, 'SELECT pg_reload_conf()');
is(wait_status($node, $left), 'succeeded', 'after the reload the executors take it at once');

ok(!crashed($node), 'no server process crashed');
$node->stop;
done_testing();
