# The launcher serves databases created after start-up (CREATE EXTENSION
# wakes it: the launcher's own rescan interval is set far beyond the test),
# DROP EXTENSION makes a database's executors exit, and DROP DATABASE
# succeeds while that database's executors are running a step, leaving the
# server healthy.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentorchTest;

my $node = ao_node('dbs', "agentorch.launcher_naptime = '10min'");
$node->start;
ao_setup_tools($node, 'postgres');

# "SELECT count(*) ..." of a database's executors; with a number, "= n?"
sub executors
{
	my ($db, $n) = @_;
	return "SELECT count(*)" . (defined $n ? " = $n" : '')
	  . " FROM pg_stat_activity WHERE backend_type = 'agentorch executor' AND datname = '$db'";
}

my $one_step = q{{"steps": [
  {"id": "rec", "type": "tool", "tool": "t.record", "input": {"tag": "${input.tag}", "step": "rec"}}]}};
my $slow = q{{"steps": [
  {"id": "slow", "type": "tool", "tool": "t.slow", "input": {"seconds": 30}},
  {"id": "rec", "type": "tool", "tool": "t.record", "depends_on": ["slow"], "input": {"tag": "x", "step": "rec"}}]}};

ok($node->poll_query_until('postgres', executors('postgres', 2)),
	'two executors serve the database present at start-up');

# --- a database created after start-up
$node->safe_psql('postgres', 'CREATE DATABASE second');
ao_setup_tools($node, 'second');
ao_register($node, 'second', 'one', $one_step);
my $run = $node->safe_psql('second', q{SELECT agentorch.run_workflow('one', '{"tag": "s1"}')});
is(ao_wait_run($node, 'second', $run, '20s'), 'succeeded',
	'a run in a database created after start-up finishes');
is($node->safe_psql('second', q{SELECT count(*) FROM effects WHERE tag = 's1'}), '1',
	'its step took effect once');
ok($node->poll_query_until('second', executors('second', 2)),
	'the new database gets its executors');

# --- DROP EXTENSION: the database's executors exit, the others stay
$node->safe_psql('second', 'DROP EXTENSION agentorch CASCADE');
ok($node->poll_query_until('postgres', executors('second', 0)),
	'DROP EXTENSION makes the executors of that database exit');
is($node->safe_psql('postgres', executors('postgres')), '2',
	'the executors of other databases keep running');
$node->safe_psql('second', 'CREATE EXTENSION agentorch');
ok($node->poll_query_until('postgres', executors('second', 2)),
	'CREATE EXTENSION again brings them back');

# --- DROP DATABASE while its executors are busy
$node->safe_psql('postgres', 'CREATE DATABASE third');
ao_setup_tools($node, 'third');
ao_register($node, 'third', 'slow', $slow);
my $run3 = $node->safe_psql('third', q{SELECT agentorch.run_workflow('slow')});
ok($node->poll_query_until('postgres', qq{SELECT count(*) = 1 FROM pg_stat_activity
 WHERE backend_type = 'agentorch executor' AND datname = 'third'
   AND query LIKE 'agentorch: run $run3 step slow%'}),
	'an executor of the database to drop is running a 30 s step');
ok($node->poll_query_until('postgres', executors('third', 2)),
	'and its second executor is connected');

my $log_offset = -s $node->logfile;
my ($out, $err) = ('', '');
my $rc = $node->psql('postgres', 'DROP DATABASE third', stdout => \$out, stderr => \$err);
is($rc, 0, 'DROP DATABASE succeeds while executors are connected to it');
unlike($err, qr/being accessed by other users/, 'no "being accessed by other users" error');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_database WHERE datname = 'third'}),
	'0', 'the database is gone');
is($node->safe_psql('postgres', executors('third')), '0',
	'no executor is connected to the dropped database');

# --- the server stays healthy
ao_register($node, 'postgres', 'one', $one_step);
my $run4 = $node->safe_psql('postgres', q{SELECT agentorch.run_workflow('one', '{"tag": "p1"}')});
is(ao_wait_run($node, 'postgres', $run4, '20s'), 'succeeded', 'runs in the remaining database still finish');
is($node->safe_psql('postgres', executors('postgres')), '2',
	'the remaining database keeps its executors');
my $log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/terminated by signal|reinitializing|PANIC/, 'no backend crashed');

$node->stop;
done_testing();
