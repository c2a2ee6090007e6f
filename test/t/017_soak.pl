# A bounded soak: mixed runs -- workflows whose steps record effects, and
# streamed llm runs against a mock where a quarter of the requests drop
# mid-stream or fail with 500 -- while executors are killed with SIGKILL
# a few times. Afterwards: every run succeeded, every transactional effect
# exists exactly once, every llm output is the complete answer once (no
# duplicated tokens), and chunk and event seqs are gap-free.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;
use AgentorchTest qw(ao_setup_tools ao_register ao_wait_run ao_executor_pids ao_check_seqs ao_query_retry);

my $answer = 'one two three four five six seven eight nine ten eleven twelve';
my $mock = mock_start('soak.json');
my $node = llm_start(llm_node('soak', "agentorch.retry_max_attempts = 8", "agentorch.lease = '5s'"));
ao_setup_tools($node, 'postgres');
register_model($node, 'gpt', 'openai', $mock, { model => 'mock-gpt' });
register_model($node, 'claude', 'anthropic', $mock, { model => 'mock-claude' });
ao_register($node, 'postgres', 'effects', q{{"steps": [
  {"id": "a", "type": "tool", "tool": "t.record", "input": {"tag": "${input.tag}", "step": "a"}},
  {"id": "pause", "type": "tool", "tool": "t.slow", "depends_on": ["a"], "input": {"seconds": 0.1}},
  {"id": "b", "type": "tool", "tool": "t.record", "depends_on": ["pause"], "input": {"tag": "${input.tag}", "step": "b"}}]}});

my (@wf, @llm);
for my $i (1 .. 30)
{
	push @wf, ao_query_retry($node, 'postgres', "SELECT agentorch.run_workflow('effects', '{\"tag\": \"soak$i\"}')");
	my $model = $i % 2 ? 'gpt' : 'claude';
	my $fault = $i % 3 ? 'soak-drop' : 'soak-500';
	push @llm, ao_query_retry($node, 'postgres',
		"SELECT agentorch.start('{\"prompt\": \"$fault $i\"}', 'simple', NULL, '{\"model\": \"$model\"}')");
	# now and then, kill an executor with SIGKILL (the postmaster restarts them all)
	if ($i % 8 == 0)
	{
		my @pids = ao_executor_pids($node, 'postgres');
		kill 'KILL', $pids[0] if @pids;
		ok($node->poll_query_until('postgres', 'SELECT true'), "server back after kill at run $i");
	}
}

my $ok = 0;
$ok += ao_wait_run($node, 'postgres', $_, '30s') eq 'succeeded' ? 1 : 0 for (@wf, @llm);
is($ok, @wf + @llm, 'every run succeeded (' . scalar(@wf + @llm) . ' runs)');
is(ao_query_retry($node, 'postgres',
		"SELECT count(*) FROM (SELECT tag, step FROM public.effects WHERE tag LIKE 'soak%' GROUP BY 1, 2 HAVING count(*) <> 1) x"),
	'0', 'no effect is missing or doubled');
is(ao_query_retry($node, 'postgres', "SELECT count(*) FROM public.effects WHERE tag LIKE 'soak%'"),
	2 * @wf, 'two effects per workflow run');
my $ids = join(',', @llm);
is(ao_query_retry($node, 'postgres',
		"SELECT count(*) FROM agentorch.runs WHERE id IN ($ids) AND output #>> '{}' <> '$answer'"),
	'0', 'every llm output is the complete answer, once');
cmp_ok(mock_get($mock, '/stats')->{requests_total} // scalar(@{ mock_requests($mock) }), '>', scalar(@llm),
	'faults made the executors send more requests than runs');
ao_check_seqs($node, 'postgres', "r.id IN (" . join(',', @wf, @llm) . ")", 'soak');

$node->stop;
done_testing();
