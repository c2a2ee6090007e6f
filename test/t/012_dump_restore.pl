# pg_dump and pg_restore keep agentorch's definitions and run history
# (its tables are extension configuration tables, pg_extension_config_dump),
# with the id sequences' positions; a run that waited for input in the
# dumped database finishes in the restored one, and new runs get new ids.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentorchTest;

my $node = ao_node('dump');
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE src');
ao_setup_tools($node, 'src');
$node->safe_psql('src', q{
CREATE ROLE dumper_alice LOGIN;
SELECT agentorch.grant_tool('t.record', 'dumper_alice');
SELECT agentorch.register_model('fast', 'openai', '{"base_url": "http://127.0.0.1:9/v1", "model": "m"}');
});
ao_register($node, 'src', 'quick', q{{"steps": [
  {"id": "a", "type": "tool", "tool": "t.record", "input": {"tag": "q", "step": "a"}}]}});
ao_register($node, 'src', 'ask', q{{"steps": [
  {"id": "ask", "type": "user_input", "prompt": "go?"},
  {"id": "fin", "type": "tool", "tool": "t.record", "depends_on": ["ask"], "input": {"tag": "restored", "step": "fin"}}]}});

my @done = map { $node->safe_psql('src', "SELECT agentorch.run_workflow('quick')") } 1 .. 3;
is(ao_wait_run($node, 'src', $_), 'succeeded', "run $_ succeeded before the dump") for @done;
my $waiting = $node->safe_psql('src', "SELECT agentorch.run_workflow('ask')");
ok($node->poll_query_until('src', "SELECT status = 'waiting' FROM agentorch.runs WHERE id = $waiting"),
	'a run waits for input');

my $counts_sql = q{SELECT (SELECT count(*) FROM agentorch.workflows) || '/' || (SELECT count(*) FROM agentorch.tools)
  || '/' || (SELECT count(*) FROM agentorch.tool_grants) || '/' || (SELECT count(*) FROM agentorch.models)
  || '/' || (SELECT count(*) FROM agentorch.runs) || '/' || (SELECT count(*) FROM agentorch.steps)
  || '/' || (SELECT count(*) FROM agentorch.events) || '/' || (SELECT count(*) FROM agentorch.chunks)
  || '/' || (SELECT count(*) FROM agentorch.checkpoints)};
my $before = $node->safe_psql('src', $counts_sql);
my $schemas_before = $node->safe_psql('src', 'SELECT count(*) FROM agentorch._schemas');

# dump, then restore into a new database
my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src') ], 'pg_dump succeeds');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst'), $dump ],
	'pg_restore succeeds without errors');

is($node->safe_psql('dst', $counts_sql), $before,
	'workflows, tools, grants, models, runs, steps, events, chunks and checkpoints are all restored');
is($node->safe_psql('dst', 'SELECT count(*) FROM agentorch._schemas'), $schemas_before,
	'the stored JSON Schemas are there once');
is($node->safe_psql('dst', "SELECT string_agg(status::text, ',' ORDER BY id) FROM agentorch.runs"),
	'succeeded,succeeded,succeeded,waiting', 'run statuses are kept');

# the waiting run goes on in the restored database
is($node->safe_psql('dst', "SELECT agentorch.submit_input($waiting, 'ask', '{\"ok\": true}')"), 't',
	'input submitted to the restored run');
is(ao_wait_run($node, 'dst', $waiting), 'succeeded', 'the restored run finishes');
is($node->safe_psql('dst', "SELECT count(*) FROM public.effects WHERE tag = 'restored'"), '1',
	'its last step ran once, in the restored database');

# new runs get ids after the restored ones
my $new = $node->safe_psql('dst', "SELECT agentorch.run_workflow('quick')");
cmp_ok($new, '>', $waiting, 'a new run gets an id after the restored ones');
is(ao_wait_run($node, 'dst', $new), 'succeeded', 'and runs');
isnt($node->safe_psql('dst', "SELECT agentorch.channel($new)"), '', 'with a private channel');

$node->stop;
done_testing();
