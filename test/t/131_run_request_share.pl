# One run cannot take every request slot of an executor
# (agentorch.max_requests_per_run): a run with many slow requests -- a
# fan-out of calls to a server that answers slowly -- leaves slots for
# other runs, whose llm steps go at once instead of waiting for the slow
# requests to end. Before, the first run's requests filled every slot.
#   - one executor with 4 request slots, at most 2 per run;
#   - run A: a parallel step of 6 llm calls that take 2 s each;
#   - run B (another role's question) finishes before any of A's calls
#     has answered, and A never had more than 2 requests in flight.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('fairness.json');
my $node = llm_start(llm_node('run_request_share', 'agentorch.max_workers = 1', 'agentorch.max_requests = 4',
	'agentorch.max_requests_per_run = 2'));
register_model($node, 'm', 'openai', $mock, { model => 'mock-fair' });
sql($node, q{CREATE ROLE bob LOGIN; GRANT USAGE ON SCHEMA agentorch TO bob;});
sql($node, "SELECT agentorch.register_workflow('fan', "
	  . json_in({ steps => [ { id => 'p', type => 'parallel',
		steps => [ map { { id => "c$_", type => 'llm', model => 'm', prompt => "slow-fan $_" } } 1 .. 6 ] } ] }) . ')');

my $a = start_run($node, {}, { workflow => 'fan' });
ok(mock_poll($mock, sub { $_[0]->{concurrent_current} >= 2 }), "A: its slow requests are in flight");
my $b = start_run($node, { prompt => 'a quick question' }, { model => 'm' }, 'bob');
is(wait_status($node, $b), 'succeeded', "B: another role's run succeeds");
is(sql($node, "SELECT count(*) FROM agentorch.steps WHERE run_id = $a AND status = 'succeeded' AND kind = 'llm'"), '0',
	"B finished before any of A's slow calls had answered (it did not wait for a slot)");
is(wait_status($node, $a), 'succeeded', 'A: all six calls succeed, two at a time');
is(sql($node, "SELECT count(*) FROM agentorch.steps WHERE run_id = $a AND status = 'succeeded' AND kind = 'llm'"), '6',
	'A: six answers');
is(mock_get($mock, '/stats')->{concurrent_max}, 3, 'at most 2 of A\'s requests were in flight at once (plus B\'s)');
is(sql($node, "SELECT max(attempt) FROM agentorch.steps WHERE run_id = $a AND kind = 'llm'"), '1',
	'waiting for its share spent no attempt');

$node->stop;
done_testing();
