# kill -9 of an executor while it runs a slow function-tool step: the
# postmaster reinitialises (crash recovery), the restarted executors finish
# the run, the transactional steps' effects exist exactly once, and chunk
# and event seqs stay gap-free.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentorchTest;

my $node = ao_node('kill9');
$node->start;
ao_setup_tools($node, 'postgres');

# record "before" -> sleep 2 s -> record "after"
ao_register($node, 'postgres', 'crashy', q{{"steps": [
  {"id": "before", "type": "tool", "tool": "t.record", "input": {"tag": "${input.tag}", "step": "before"}},
  {"id": "slow", "type": "tool", "tool": "t.slow", "depends_on": ["before"], "input": {"seconds": 2}},
  {"id": "after", "type": "tool", "tool": "t.record", "depends_on": ["slow"], "input": {"tag": "${input.tag}", "step": "after"}}
]}});

my $run = $node->safe_psql('postgres',
	q{SELECT agentorch.run_workflow('crashy', '{"tag": "k9"}')});

# The executor running the slow step shows it as its activity.
my $find = qq{SELECT pid FROM pg_stat_activity
 WHERE backend_type = 'agentorch executor' AND application_name = 'agentorch executor'
   AND query LIKE 'agentorch: run $run step slow%'};
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($find) x"),
	'an executor is running the slow step');
my $pid = $node->safe_psql('postgres', $find);
like($pid, qr/^\d+$/, "executor pid $pid found");

my $log_offset = -s $node->logfile;
is(kill('KILL', $pid), 1, 'executor killed with SIGKILL');

# The postmaster notices, kills everything and reinitialises.
$node->wait_for_log(qr/terminated by signal 9/, $log_offset);
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
ok($node->poll_query_until('postgres', 'SELECT true'), 'server accepts connections after crash recovery');

is(ao_wait_run($node, 'postgres', $run), 'succeeded', 'the run finishes after the crash');
is($node->safe_psql('postgres', q{SELECT count(*) FROM effects WHERE tag = 'k9' AND step = 'before'}),
	'1', 'the step before the crash point took effect exactly once');
is($node->safe_psql('postgres', q{SELECT count(*) FROM effects WHERE tag = 'k9' AND step = 'after'}),
	'1', 'the step after the crash point took effect exactly once');
is($node->safe_psql('postgres',
	"SELECT string_agg(step_id || '=' || status, ',' ORDER BY ord) FROM agentorch.steps WHERE run_id = $run"),
	'before=succeeded,slow=succeeded,after=succeeded', 'every step succeeded');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM agentorch.events WHERE run_id = $run AND kind = 'step_succeeded'"),
	'3', 'one step_succeeded event per step (no duplicate from the lost attempt)');
is($node->safe_psql('postgres', "SELECT max(crashes) FROM agentorch.steps WHERE run_id = $run"),
	'0', 'crash counters are reset once the steps complete');
ao_check_seqs($node, 'postgres', "r.id = $run", 'after kill -9');

# The executors are back (the launcher restarted them).
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'agentorch executor' AND datname = 'postgres'"),
	'two executors run again');

$node->stop;
done_testing();
