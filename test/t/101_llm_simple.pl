# LLM layer: simple runs against the mock server, OpenAI and Anthropic.
# The concatenated token chunks equal the scripted text exactly; usage and
# cost (from the model's prices) are stored on the step and summed on the
# run; the mock received the model id and the prompt.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('simple.json');
my $node = llm_start(llm_node('llm_simple'));

register_model($node, 'gpt', 'openai', $mock,
	{ model => 'mock-gpt-4o-mini', prices => { input_per_mtok => 2.5, output_per_mtok => 10 } });
register_model($node, 'claude', 'anthropic', $mock,
	{ model => 'mock-claude-sonnet', prices => { input_per_mtok => 3, output_per_mtok => 15 } });

my $openai_text = "The quick brown fox, run #1, jumps over 2 lazy dogs; naïve café — done!";
my $anthropic_text = "Anthropic says: tokens   keep\ttheir whitespace.\nSecond line (ok).";

# Does a recorded request's user text contain $needle? (either provider's shape)
sub user_text
{
	my ($body) = @_;
	my @parts;
	for my $m (@{ $body->{messages} || [] })
	{
		next unless $m->{role} eq 'user';
		my $c = $m->{content};
		push @parts, ref $c ? map { $_->{text} // '' } @$c : $c;
	}
	return join("\n", @parts);
}

# ---------------------------------------------------------------- openai
my $run = start_run($node, { prompt => 'simple-openai: say the sentence' }, { model => 'gpt' });
is(wait_status($node, $run), 'succeeded', 'openai: simple run succeeded');
is(token_text($node, $run), $openai_text, 'openai: token chunks concatenate to exactly the scripted text');
cmp_ok(sql($node, "SELECT count(*) FROM agentorch.chunks WHERE run_id = $run AND kind = 'token'"),
	'>=', 1, 'openai: tokens were streamed as token chunks');
is(run_field($node, $run, 'output #>> \'{}\''), $openai_text, 'openai: run output is the text');
is(sql($node, "SELECT content FROM agentorch.chunks WHERE run_id = $run AND kind = 'final'"),
	$openai_text, 'openai: the final chunk carries the text');
my $s = step_row($node, $run, 'main');
is_deeply([ $s->{prompt_tokens}, $s->{completion_tokens}, $s->{attempt} ], [ 1200, 3400, 1 ],
	'openai: step usage is the reported usage, one attempt');
is(sql($node, "SELECT cost = 0.037 FROM agentorch.steps WHERE run_id = $run"), 't',
	'openai: step cost = 1200 * 2.5/1M + 3400 * 10/1M');
is(run_field($node, $run, 'prompt_tokens || \'/\' || completion_tokens || \'/\' || (cost = 0.037)'),
	'1200/3400/true', 'openai: run usage and cost');

my $reqs = mock_requests($mock);
my ($req) = grep { $_->{rule} eq 'openai_simple' } @$reqs;
ok($req, 'openai: the mock received the request');
is($req->{path}, '/v1/chat/completions', 'openai: chat completions endpoint');
is($req->{body}{model}, 'mock-gpt-4o-mini', 'openai: the request names the model id');
like(user_text($req->{body}), qr/simple-openai: say the sentence/, 'openai: the request carries the prompt');
ok($req->{body}{stream}, 'openai: the request streams');

# ---------------------------------------------------------------- anthropic
$run = start_run($node, { prompt => 'simple-anthropic please' }, { model => 'claude' });
is(wait_status($node, $run), 'succeeded', 'anthropic: simple run succeeded');
is(token_text($node, $run), $anthropic_text, 'anthropic: token chunks concatenate to exactly the scripted text');
is(run_field($node, $run, 'output #>> \'{}\''), $anthropic_text, 'anthropic: run output is the text');
$s = step_row($node, $run, 'main');
is_deeply([ $s->{prompt_tokens}, $s->{completion_tokens} ], [ 700, 300 ], 'anthropic: step usage');
is(sql($node, "SELECT cost = 0.0066 FROM agentorch.steps WHERE run_id = $run"), 't',
	'anthropic: step cost = 700 * 3/1M + 300 * 15/1M');
is(run_field($node, $run, 'prompt_tokens || \'/\' || completion_tokens || \'/\' || (cost = 0.0066)'),
	'700/300/true', 'anthropic: run usage and cost');
($req) = grep { $_->{rule} eq 'anthropic_simple' } @{ mock_requests($mock) };
ok($req, 'anthropic: the mock received the request');
is($req->{path}, '/v1/messages', 'anthropic: messages endpoint');
is($req->{body}{model}, 'mock-claude-sonnet', 'anthropic: the request names the model id');
like(user_text($req->{body}), qr/simple-anthropic please/, 'anthropic: the request carries the prompt');
ok($req->{body}{max_tokens} > 0, 'anthropic: max_tokens is sent');

# ---------------------------------------------------------------- a workflow of two llm steps
sql($node, q{SELECT agentorch.register_workflow('two_llm', '{"steps": [
  {"id": "s1", "type": "llm", "model": "gpt", "prompt": "workflow-openai-step"},
  {"id": "s2", "type": "llm", "model": "claude", "depends_on": ["s1"],
   "prompt": "workflow-anthropic-step after: ${s1.output}"}]}')});
$run = start_run($node, {}, { workflow => 'two_llm' });
is(wait_status($node, $run), 'succeeded', 'workflow: two llm steps succeeded');
is(token_text($node, $run, 's1'), 'first step text', 'workflow: tokens of s1');
is(token_text($node, $run, 's2'), 'second step saw: first step text', 'workflow: tokens of s2');
is(run_field($node, $run, 'output::text'), '{"s2": "second step saw: first step text"}',
	'workflow: output of the terminal step');
is(sql($node, "SELECT string_agg(step_id || '=' || prompt_tokens || '/' || completion_tokens || '/' || cost::float8, ',' ORDER BY step_id) FROM agentorch.steps WHERE run_id = $run"),
	's1=10/20/0.000225,s2=30/40/0.00069', 'workflow: each step has its own usage and cost');
is(run_field($node, $run, "prompt_tokens || '/' || completion_tokens || '/' || (cost = 0.000915)"),
	'40/60/true', 'workflow: the run sums its steps');
is(sql($node, "SELECT (SELECT sum(cost) FROM agentorch.steps WHERE run_id = $run) = cost FROM agentorch.runs WHERE id = $run"),
	't', 'workflow: run cost equals the sum of step costs');
($req) = grep { $_->{rule} eq 'anthropic_step' } @{ mock_requests($mock) };
like(user_text($req->{body}), qr/workflow-anthropic-step after: first step text/,
	'workflow: the second request carries the rendered reference to the first output');

$node->stop;
done_testing();
