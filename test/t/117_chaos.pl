# Chaos: 200 runs mixing transactional and llm steps under 20 % injected
# step failures, 20 % injected provider faults, random tool latency, and two
# executor kills (SIGKILL, so the postmaster reinitialises). Every run
# finishes per its retry contract -- succeeded, or failed with the failing
# step's attempts spent --, no transactional effect is applied twice, chunk
# and event seqs are gap-free, and no output repeats a token of a
# retried attempt.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;
use AgentorchTest;

my $mock = mock_start('simple.json', args => [ '--token-delay-ms', '2' ]);
my $node = llm_node('chaos', "agentorch.chaos_step_failure_rate = 0.2", "agentorch.chaos_provider_fault_rate = 0.2",
	"agentorch.chaos_latency = '20ms'", "agentorch.chaos_seed = 42", "agentorch.lease = '3s'");
llm_start($node);
register_model($node, 'default', 'openai', $mock, { model => 'mock-chaos' });
sql($node, q{
CREATE TABLE public.effects (run bigint, step text, n int NOT NULL DEFAULT 1, UNIQUE (run, step));
SELECT agentorch.register_tool('effect', 'sql',
  '{"sql": "INSERT INTO public.effects (run, step) VALUES ($1::bigint, $2) ON CONFLICT (run, step) DO UPDATE SET n = public.effects.n + 1 RETURNING n", "params": ["run", "step"]}');
SELECT agentorch.register_workflow('chaos', '{"steps": [
  {"id": "first", "type": "tool", "tool": "effect", "input": {"run": "${input.n}", "step": "first"}, "retry": {"max_attempts": 6, "backoff": {"initial": "10ms", "max": "50ms"}}},
  {"id": "ask", "type": "llm", "model": "default", "prompt": "simple-openai chaos ${input.n}", "depends_on": ["first"], "retry": {"max_attempts": 6, "backoff": {"initial": "10ms", "max": "50ms"}}},
  {"id": "last", "type": "tool", "tool": "effect", "input": {"run": "${input.n}", "step": "last"}, "depends_on": ["ask"], "retry": {"max_attempts": 6, "backoff": {"initial": "10ms", "max": "50ms"}}}]}');
});

my @runs = split /\n/, sql($node, q{SELECT agentorch.run_workflow('chaos', jsonb_build_object('n', g)) FROM generate_series(1, 200) g});
is(scalar @runs, 200, '200 runs started');

# two executor kills while the runs are in flight
for my $k (1, 2)
{
	my $done_before = ao_query_retry($node, 'postgres', q{SELECT count(*) FROM agentorch.runs WHERE status IN ('succeeded', 'failed')});
	last if $done_before >= 200;
	usleep(300_000);
	my @pids = ao_executor_pids($node, 'postgres');
	if (@pids)
	{
		my $off = -s $node->logfile;
		kill 'KILL', $pids[0];
		$node->wait_for_log(qr/all server processes terminated; reinitializing/, $off);
		note("kill $k: executor $pids[0] after $done_before runs had finished");
	}
}

my %status;
$status{ ao_wait_run($node, 'postgres', $_, '10s') }++ for @runs;
is(($status{succeeded} // 0) + ($status{failed} // 0), 200, 'every run finished (' . join(', ', map { "$_: $status{$_}" } sort keys %status) . ')');
cmp_ok($status{succeeded} // 0, '>=', 190, 'almost all runs succeeded despite the faults');

# the retry contract of the failed ones: the failing step spent its attempts (or met an unretryable error)
is(sql($node, q{SELECT count(*) FROM agentorch.runs r WHERE r.status = 'failed' AND NOT EXISTS (
    SELECT 1 FROM agentorch.steps s WHERE s.run_id = r.id AND s.status = 'failed' AND s.attempt >= s.max_attempts)}), '0',
	'a failed run has a step whose attempts are spent');
my $injected = sql($node, q{SELECT count(*) FROM agentorch.events WHERE kind = 'step_retrying' AND data->'error'->>'message' LIKE 'chaos:%'});
cmp_ok($injected, '>', 50, "faults were injected and retried ($injected)");
like(sql($node, q{SELECT string_agg(DISTINCT data->'error'->>'message', ' | ') FROM agentorch.events WHERE kind = 'step_retrying' AND data->'error'->>'message' LIKE 'chaos:%'}),
	qr/chaos: injected provider fault.*chaos: injected step failure|chaos: injected step failure.*chaos: injected provider fault/, 'both kinds of fault happened');

# effects exactly once for every step that succeeded
is(sql($node, q{SELECT count(*) FROM public.effects WHERE n <> 1}), '0', 'no transactional effect was applied twice');
is(sql($node, q{SELECT count(*) FROM agentorch.steps s JOIN agentorch.runs r ON r.id = s.run_id
                 WHERE r.workflow_name = 'chaos' AND s.kind = 'tool' AND s.status = 'succeeded'}),
   sql($node, q{SELECT count(*) FROM public.effects}), 'one effect per succeeded tool step');

ao_check_seqs($node, 'postgres', "r.workflow_name = 'chaos'", 'chaos');

# the outputs never mix attempts: each succeeded llm output is the scripted text exactly once
my $expected = 'The quick brown fox, run #1, jumps over 2 lazy dogs; naïve café — done!';
is(sql($node, qq{SELECT count(*) FROM agentorch.steps s JOIN agentorch.runs r ON r.id = s.run_id
                 WHERE r.workflow_name = 'chaos' AND s.step_id = 'ask' AND s.status = 'succeeded'
                   AND s.output #>> '{}' <> \$\$$expected\$\$}), '0', 'no llm output repeats a token of another attempt');
# a retried streaming step announced the reset of its earlier tokens
my $resets = sql($node, q{SELECT count(*) FROM agentorch.chunks WHERE kind = 'status' AND (data->>'reset')::boolean});
cmp_ok($resets, '>', 0, "retried streams were reset for readers ($resets reset markers)");

done_testing();
