# Bounded work: no run can hold an executor without bound.
# - a loop past agentorch.max_iterations_per_run fails with 54000;
# - a transactional step past its timeout fails (statement timeout);
# - agentorch.batch_time_limit: with one executor, a trivial run started
#   after a long loop finishes before the loop does (it gets a turn);
# - cancel() interrupts a transactional step that is running: it returns
#   true, the run is cancelled, and the step never got to its end.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentorchTest;

my $node = ao_node('bounded', "agentorch.max_workers = 1", "agentorch.batch_size = 200",
	"agentorch.max_iterations_per_run = 100", "agentorch.batch_time_limit = '200ms'");
$node->start;
ao_setup_tools($node, 'postgres');
$node->safe_psql('postgres', q{
CREATE FUNCTION public.t_nap(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep((input->>'seconds')::float8);
    INSERT INTO public.effects (tag, step) VALUES (input->>'tag', 'napped');
    RETURN '{}';
END $$;
SELECT agentorch.register_tool('t.nap', 'function', '{"function": "public.t_nap"}');
});
ao_register($node, 'postgres', 'many', q{{"steps": [
  {"id": "l", "type": "loop", "for_each": "${input.items}", "max_iterations": 1000,
   "step": {"id": "it", "type": "tool", "tool": "t.record", "input": {"tag": "many", "step": "${item}"}}}]}});
ao_register($node, 'postgres', 'long', q{{"steps": [
  {"id": "l", "type": "loop", "for_each": "${input.items}", "max_iterations": 1000,
   "step": {"id": "it", "type": "tool", "tool": "t.nap", "input": {"tag": "long", "seconds": 0.02}}}]}});
ao_register($node, 'postgres', 'trivial', q{{"steps": [
  {"id": "a", "type": "tool", "tool": "t.record", "input": {"tag": "trivial", "step": "a"}}]}});
ao_register($node, 'postgres', 'sleepy', q{{"steps": [
  {"id": "nap", "type": "tool", "tool": "t.nap", "retry": {"max_attempts": 1}, "input": {"tag": "${input.tag}", "seconds": "${input.seconds}"}}]}});
ao_register($node, 'postgres', 'timed', q{{"steps": [
  {"id": "nap", "type": "tool", "tool": "t.nap", "timeout": "300ms", "retry": {"max_attempts": 1},
   "input": {"tag": "timed", "seconds": 30}}]}});

# the loop cap
my $json_items = sub { '{"items": [' . join(',', 1 .. $_[0]) . ']}' };
my $over = $node->safe_psql('postgres', "SELECT agentorch.run_workflow('many', '" . $json_items->(150) . "')");
is(ao_wait_run($node, 'postgres', $over), 'failed', 'a loop of 150 iterations fails with the cap at 100');
like($node->safe_psql('postgres', "SELECT error->>'message' FROM agentorch.steps WHERE run_id = $over AND step_id = 'l'"),
	qr/more than agentorch.max_iterations_per_run \(100\)/, 'naming the setting');
is($node->safe_psql('postgres', "SELECT error->>'sqlstate' FROM agentorch.steps WHERE run_id = $over AND step_id = 'l'"),
	'54000', 'with SQLSTATE 54000');
my $under = $node->safe_psql('postgres', "SELECT agentorch.run_workflow('many', '" . $json_items->(40) . "')");
is(ao_wait_run($node, 'postgres', $under), 'succeeded', 'a loop of 40 iterations runs');

# a step's timeout
my $timed = $node->safe_psql('postgres', "SELECT agentorch.run_workflow('timed')");
is(ao_wait_run($node, 'postgres', $timed), 'failed', 'a step past its timeout fails');
like($node->safe_psql('postgres', "SELECT error->>'message' FROM agentorch.steps WHERE run_id = $timed"),
	qr/statement timeout/, 'with the statement timeout');

# fair turns: a trivial run started after a long loop finishes first
my $long = $node->safe_psql('postgres', "SELECT agentorch.run_workflow('long', '" . $json_items->(90) . "')");
ok($node->poll_query_until('postgres', "SELECT count(*) > 0 FROM public.effects WHERE tag = 'long'"),
	'the long loop is running');
my $trivial = $node->safe_psql('postgres', "SELECT agentorch.run_workflow('trivial')");
is(ao_wait_run($node, 'postgres', $trivial), 'succeeded', 'the trivial run succeeds');
is(ao_wait_run($node, 'postgres', $long), 'succeeded', 'the long loop succeeds');
is($node->safe_psql('postgres',
		"SELECT (SELECT finished_at FROM agentorch.runs WHERE id = $trivial) < (SELECT finished_at FROM agentorch.runs WHERE id = $long)"),
	't', 'the trivial run finished before the long loop (one executor, batches end after agentorch.batch_time_limit)');

# cancel interrupts a running transactional step
my $sleepy = $node->safe_psql('postgres', "SELECT agentorch.run_workflow('sleepy', '{\"tag\": \"cancelled-nap\", \"seconds\": 20}')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'agentorch executor' AND wait_event = 'PgSleep'"),
	'the executor sleeps in the step');
is($node->safe_psql('postgres', "SELECT agentorch.cancel($sleepy, 'enough')"), 't', 'cancel() returns true');
is(ao_wait_run($node, 'postgres', $sleepy), 'cancelled', 'the run is cancelled');
is($node->safe_psql('postgres', "SELECT count(*) FROM public.effects WHERE tag = 'cancelled-nap'"), '0',
	'the step was interrupted (it never reached its end)');
my $after = $node->safe_psql('postgres', "SELECT agentorch.run_workflow('trivial')");
is(ao_wait_run($node, 'postgres', $after), 'succeeded', 'the executor goes on with other runs');

$node->stop;
done_testing();
