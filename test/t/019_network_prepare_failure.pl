# A network step whose request cannot be prepared (its input renders a
# value nested deeper than the limit) fails on its own; it does not abort
# the claim transaction, which would hold up every network step of the
# database, again on every claim. Other llm runs go on.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('simple.json');
my $node = llm_start(llm_node('net_prepare'));
register_model($node, 'gpt', 'openai', $mock, { model => 'mock-gpt' });
sql($node, q{SELECT agentorch.register_workflow('deep-llm', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query",
   "input": {"query": "SELECT (repeat(''['', 12000) || ''1'' || repeat('']'', 12000))::jsonb AS v"}},
  {"id": "ask", "type": "llm", "model": "gpt", "depends_on": ["q"], "prompt": "What is this?",
   "input": {"context": "${q.output}"}}]}')});

my $deep = sql($node, q{SELECT agentorch.run_workflow('deep-llm')});
my $other = start_run($node, { prompt => 'Say hello' }, { model => 'gpt' });
is(wait_status($node, $deep), 'failed', 'the run whose llm step cannot be prepared fails');
like(sql($node, "SELECT error->>'message' FROM agentorch.steps WHERE run_id = $deep AND step_id = 'ask'"),
	qr/could not prepare the request: nesting too deep/, 'the llm step says why');
is(wait_status($node, $other), 'succeeded', 'another llm run succeeds meanwhile');
my $later = start_run($node, { prompt => 'Say hello again' }, { model => 'gpt' });
is(wait_status($node, $later), 'succeeded', 'and later ones too');
is(sql($node, "SELECT value FROM agentorch.metrics() WHERE name = 'model:gpt.in_flight'"), '0',
	'no slot of the model is left held');

$node->stop;
done_testing();
