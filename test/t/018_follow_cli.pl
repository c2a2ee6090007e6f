# agentorch-follow, the command-line follower, and the executors' log:
# --help prints the usage (exit 0); an unknown option prints it and fails;
# a run that does not exist (or is another role's) fails at once (exit 2)
# instead of waiting; a run waiting for input shows its question; a
# succeeded run exits 0 after its final output; executors log their start
# at agentorch.log_level.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use AgentorchTest;

my $bin = `pg_config --bindir`;
chomp $bin;
my $follow = "$bin/agentorch-follow";
ok(-x $follow, "agentorch-follow is installed ($follow)");

sub follow_run
{
	my (@args) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $follow, @args ], '<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(60));
	return ($? >> 8, $out, $err);
}

my ($rc, $out, $err) = follow_run('--help');
is($rc, 0, '--help exits 0');
like($out, qr/Usage:\s+agentorch-follow \[-q\] \[-t SECONDS\] RUN_ID \[CONNINFO\]/, '--help prints the usage');
($rc, $out, $err) = follow_run('--bogus');
is($rc, 2, 'an unknown option fails (exit 2)');
like($err, qr/Usage:/, 'and prints the usage');

my $node = ao_node('follow_cli');
$node->start;
ao_setup_tools($node, 'postgres');
$node->safe_psql('postgres', 'CREATE ROLE mallory LOGIN');
my $conn = $node->connstr('postgres');

ok($node->poll_query_until('postgres', "SELECT true"), 'server up');
like(slurp_file($node->logfile), qr/agentorch: executor \d+ started for database \d+/,
	'executors log their start (agentorch.log_level = log)');

($rc, $out, $err) = follow_run('-t', '30', '424242', $conn);
is($rc, 2, 'a run that does not exist fails at once (exit 2)');
like($err, qr/run 424242 does not exist/, 'saying so');

ao_register($node, 'postgres', 'ask', q{{"steps": [
  {"id": "ask", "type": "user_input", "prompt": "Ship order 7 today?"},
  {"id": "fin", "type": "tool", "tool": "t.record", "depends_on": ["ask"], "input": {"tag": "cli", "step": "fin"}}]}});
my $run = $node->safe_psql('postgres', "SELECT agentorch.run_workflow('ask')");
ok($node->poll_query_until('postgres', "SELECT status = 'waiting' FROM agentorch.runs WHERE id = $run"),
	'the run waits for input');

($rc, $out, $err) = follow_run('-t', '30', $run, "$conn user=mallory");
is($rc, 2, "another role's run is not shown (exit 2)");
like($err, qr/does not exist \(or belongs to another role\)/, 'the same answer as for a run that does not exist');

# follow in the background; answer the question; it ends with the output
my ($bout, $berr) = ('', '');
my $h = IPC::Run::start([ $follow, '-t', '60', $run, $conn ], '<', \undef, '>', \$bout, '2>', \$berr,
	IPC::Run::timeout(90));
$h->pump until $bout =~ /waits for input/ || !$h->pumpable;
like($bout, qr/\[ask waits for input: Ship order 7 today\?\]/, 'the question of the waiting step is shown');
like($bout, qr/submit_input\($run, 'ask'/, 'with how to answer it');
$node->safe_psql('postgres', "SELECT agentorch.submit_input($run, 'ask', '\"yes\"')");
$h->finish;
is($h->result(0), 0, 'agentorch-follow exits 0 for a succeeded run');
like($bout, qr/== succeeded: /, 'and prints the final output');

$node->stop;
done_testing();
