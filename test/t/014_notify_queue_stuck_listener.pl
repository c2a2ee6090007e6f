# A LISTENing session that stops reading (here: idle in a transaction
# after LISTEN) holds PostgreSQL's cluster-wide notification queue. The
# engine must never stop because of it: above agentorch.notify_queue_limit
# (set tiny here, a page or two of the 8 GB queue, so the test does not
# have to fill gigabytes) it stops inlining content and then stops
# notifying, logs a warning naming the session, and runs go on finishing;
# clients read the rows.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentorchTest;

my $node = ao_node('notify_queue', "agentorch.notify_queue_limit = 0.0000015");
$node->start;
ao_setup_tools($node, 'postgres');
ao_register($node, 'postgres', 'chatty', q{{"steps": [
  {"id": "a", "type": "tool", "tool": "t.record", "input": {"tag": "chatty", "step": "a"}},
  {"id": "b", "type": "tool", "tool": "t.record", "depends_on": ["a"], "input": {"tag": "chatty", "step": "b"}},
  {"id": "c", "type": "tool", "tool": "t.record", "depends_on": ["b"], "input": {"tag": "chatty", "step": "c"}}]}});

# the stuck listener: LISTEN, then an open transaction it never ends
my $stuck = $node->background_psql('postgres');
$stuck->query_safe('LISTEN agentorch_events');
$stuck->query_safe('BEGIN');
$stuck->query_safe('SELECT 1');
my $stuck_pid = $stuck->query_safe('SELECT pg_backend_pid()');

# far more notifications than the limit lets through
my @runs = map { $node->safe_psql('postgres', "SELECT agentorch.run_workflow('chatty')") } 1 .. 150;
my $done = 0;
for my $r (@runs)
{
	$done++ if ao_wait_run($node, 'postgres', $r, '30s') eq 'succeeded';
}
is($done, scalar @runs, 'every run finishes while the listener holds the queue');
is($node->safe_psql('postgres', "SELECT count(*) FROM public.effects WHERE tag = 'chatty'"), 3 * @runs,
	'every step ran once');
cmp_ok($node->safe_psql('postgres', 'SELECT pg_notification_queue_usage()'), '>', 0,
	'the queue is held by the listener');
ok($node->poll_query_until('postgres',
		"SELECT pg_catalog.count(*) = 0 FROM pg_stat_activity WHERE state = 'idle in transaction (aborted)'"),
	'no transaction failed');
my $log = slurp_file($node->logfile);
like($log, qr/the NOTIFY queue is [0-9.]+% full: agentorch sends (no notifications|notifications without content)/,
	'a warning says agentorch holds back its notifications');
like($log, qr/holding the queue is probably the one with the oldest transaction: $stuck_pid /,
	'and names the stuck session');
unlike($log, qr/too many notifications in the NOTIFY queue/, 'no commit failed for a full queue');

# the stream is in the rows all the same
is($node->safe_psql('postgres',
		"SELECT count(*) FROM agentorch.chunks WHERE run_id = $runs[-1] AND kind = 'final'"), '1',
	'the last run has its final chunk');

$stuck->query_safe('ROLLBACK');
$stuck->quit;
$node->stop;
done_testing();
