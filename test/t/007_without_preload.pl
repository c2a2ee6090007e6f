# Without shared_preload_libraries there are no background workers, but the
# extension installs and works: runs wait (ready) until a session calls
# agentorch.work(), which executes them in that session.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentorchTest;

my $node = ao_node('nopreload', "shared_preload_libraries = ''");
$node->start;
ao_setup_tools($node, 'postgres');

is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'agentorch%'}),
	'0', 'no agentorch background workers');
is($node->safe_psql('postgres', q{SELECT value FROM agentorch.metrics() WHERE name = 'executors'}),
	'0', 'metrics() reports no executors');

ao_register($node, 'postgres', 'two', q{{"steps": [
  {"id": "a", "type": "tool", "tool": "t.record", "input": {"tag": "w1", "step": "a"}},
  {"id": "b", "type": "tool", "tool": "t.record", "depends_on": ["a"], "input": {"tag": "w1", "step": "b"}}
]}});
my $run = $node->safe_psql('postgres', q{SELECT agentorch.run_workflow('two')});

# Nothing runs it: a bounded wait returns the run unfinished.
is($node->safe_psql('postgres', "SELECT status FROM agentorch.wait($run, '500ms')"), 'running',
	'the run is not executed by anyone');
is($node->safe_psql('postgres',
	"SELECT string_agg(step_id || '=' || status, ',' ORDER BY ord) FROM agentorch.steps WHERE run_id = $run"),
	'a=ready,b=pending', 'its first step is ready, the next pending');
is($node->safe_psql('postgres', 'SELECT count(*) FROM effects'), '0', 'no step took effect');

# A session executes it.
is($node->safe_psql('postgres', 'SELECT agentorch.work()'), '2', 'agentorch.work() runs both steps');
is($node->safe_psql('postgres', "SELECT status FROM agentorch.runs WHERE id = $run"), 'succeeded',
	'the run succeeded');
is($node->safe_psql('postgres', q{SELECT string_agg(step, ',' ORDER BY step) FROM effects WHERE tag = 'w1'}),
	'a,b', 'each step took effect once');
is($node->safe_psql('postgres', 'SELECT agentorch.work()'), '0', 'a second work() finds nothing to do');
ao_check_seqs($node, 'postgres', "r.id = $run", 'work() in a session');

# wait() also works without shared memory, for a finished run at once.
is($node->safe_psql('postgres', "SELECT status FROM agentorch.wait($run, '5s')"), 'succeeded',
	'wait() returns the finished run');

$node->stop;
done_testing();
