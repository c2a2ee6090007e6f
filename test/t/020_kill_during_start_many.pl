# kill -9 of a backend in the middle of a start_many() of many runs (the
# state layer writes their rows directly, in C): the server restarts, none
# of that call's runs exists -- it was one transaction, half-written rows
# and all -- and the runs started before it finish as usual, with
# gap-free seqs.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use AgentorchTest;

my $node = ao_node('kill_start_many');
$node->start;
ao_setup_tools($node, 'postgres');
ao_register($node, 'postgres', 'one',
	'{"steps": [{"id": "a", "type": "tool", "tool": "t.record", "input": {"tag": "${input.tag}", "step": "a"}}]}');

# runs started before the crash: some done, some in flight
$node->safe_psql('postgres', q{
SELECT count(*) FROM agentorch.start_many(
  ARRAY(SELECT jsonb_build_object('tag', 'before' || g) FROM generate_series(1, 200) g), 'fixed', 'one')});

# a start_many() big enough to be caught writing its rows
my $seq_before = $node->safe_psql('postgres', 'SELECT last_value FROM agentorch.runs_id_seq');
my ($out, $err) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c',
		q{SELECT count(*) FROM agentorch.start_many(
		    ARRAY(SELECT jsonb_build_object('tag', 'doomed' || g) FROM generate_series(1, 300000) g), 'fixed', 'one')} ],
	'<', \undef, '>', \$out, '2>', \$err);
my $find = q{SELECT pid FROM pg_stat_activity
              WHERE query LIKE '%doomed%' AND state = 'active' AND pid <> pg_backend_pid()};
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($find) a"), 'the big start_many() is running');
my $pid = $node->safe_psql('postgres', $find);
# caught writing: run ids (a sequence, not rolled back) are being taken
ok($node->poll_query_until('postgres', "SELECT last_value > $seq_before + 1000 FROM agentorch.runs_id_seq"),
	'it is writing its runs');
ok(kill('KILL', $pid), "backend $pid killed with SIGKILL while writing");
$h->finish;
like($err, qr/server closed the connection|terminated|connection to server was lost/,
	'the caller saw its connection end');

# the postmaster restarts the cluster; runs go on
ok($node->poll_query_until('postgres', 'SELECT true'), 'the server accepts connections again');
is($node->safe_psql('postgres', q{SELECT count(*) FROM agentorch.runs WHERE input->>'tag' LIKE 'doomed%'}),
	'0', 'none of the killed call\'s runs exists');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM agentorch.steps s
 WHERE NOT EXISTS (SELECT 1 FROM agentorch.runs r WHERE r.id = s.run_id)}),
	'0', 'no step without its run');
ao_poll($node, 'postgres',
	q{SELECT count(*) = 200 FROM agentorch.runs WHERE input->>'tag' LIKE 'before%' AND status = 'succeeded'},
	't', 'every run started before the crash succeeds');
is($node->safe_psql('postgres', q{SELECT count(*) FROM effects WHERE tag LIKE 'before%'}),
	'200', 'each of them took effect once');
ao_check_seqs($node, 'postgres', 'true', 'after the crash');

# and starting still works
my $id = $node->safe_psql('postgres', q{SELECT agentorch.run_workflow('one', '{"tag": "after"}')});
is($node->safe_psql('postgres', "SELECT (agentorch.wait($id, '60s')).status"), 'succeeded',
	'a run started after the restart succeeds');

$node->stop;
done_testing();
