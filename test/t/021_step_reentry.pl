# A step whose code turns back on the engine, run by the executors, as an
# ordinary role (the regress suite covers the same inside work()):
#   * a tool that calls agentorch.work() fails with the reason; it had
#     re-claimed the steps its own batch held and crashed the executor, the
#     cluster restarting every few seconds for as long as the run existed;
#   * a tool that cancels its own run fails with the reason; the executor
#     had interrupted itself, so the batch rolled back and the step ran
#     again, forever (then the cancel's change of the step under the
#     executor made every batch fail).
# Both runs end failed, the server never restarts, other runs beside them
# finish, and their seqs stay gap-free.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentorchTest;

my $node = ao_node('step_reentry');
$node->start;
ao_setup_tools($node, 'postgres');
$node->safe_psql('postgres', q{CREATE ROLE alice LOGIN});
my $alice = sub { $node->safe_psql('postgres', "SET ROLE alice; $_[0]") };

$alice->(q{SELECT agentorch.register_tool('alice.nest', 'sql', '{"sql": "SELECT agentorch.work(5, ''1s'') AS n"}')});
$alice->(q{SELECT agentorch.register_tool('alice.cancel_own', 'sql',
  '{"sql": "SELECT agentorch.cancel(max(id)) AS c FROM agentorch.runs WHERE workflow_name = ''cancel_own'' AND status = ''running''"}')});
$alice->(q{SELECT agentorch.register_workflow('nest', '{"steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}},
  {"id": "n", "type": "tool", "tool": "alice.nest"},
  {"id": "f", "type": "tool", "tool": "alice.nest"}]}')});
$alice->(q{SELECT agentorch.register_workflow('cancel_own', '{"steps": [
  {"id": "c", "type": "tool", "tool": "alice.cancel_own"},
  {"id": "b", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}},
  {"id": "d", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 2"}, "depends_on": ["c"]}]}')});
$alice->(q{SELECT agentorch.register_workflow('plain', '{"steps": [
  {"id": "r", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}},
  {"id": "s", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 2"}, "depends_on": ["r"]}]}')});

my $nest = $alice->(q{SELECT agentorch.run_workflow('nest')});
my $cancel = $alice->(q{SELECT agentorch.run_workflow('cancel_own')});
$alice->(q{SELECT count(*) FROM agentorch.start_many(
  ARRAY(SELECT '{}'::jsonb FROM generate_series(1, 50) g), 'fixed', 'plain')});

is(ao_wait_run($node, 'postgres', $nest), 'failed', 'the run whose tool calls work() fails');
like($node->safe_psql('postgres', "SELECT error->>'message' FROM agentorch.runs WHERE id = $nest"),
	qr/agentorch steps cannot be run from inside a step/, '... and says why');
is(ao_wait_run($node, 'postgres', $cancel), 'failed', 'the run whose tool cancels it fails');
like($node->safe_psql('postgres', "SELECT error->>'message' FROM agentorch.runs WHERE id = $cancel"),
	qr/cannot cancel run $cancel from inside a step that runs with its steps/, '... and says why');
is($node->safe_psql('postgres', "SELECT max(attempt) FROM agentorch.steps WHERE run_id IN ($nest, $cancel)"),
	'3', 'their steps ran their three attempts, no more');
ao_poll($node, 'postgres',
	q{SELECT count(*) FROM agentorch.runs WHERE workflow_name = 'plain' AND status = 'succeeded'}, '50',
	'the runs beside them finish');
ao_check_seqs($node, 'postgres', q{r.workflow_name IN ('nest', 'cancel_own', 'plain')}, 'all of them');

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no process crashed');
unlike($log, qr/illegal step transition/, 'no batch failed on a step changed under it');

$node->stop;
done_testing();
