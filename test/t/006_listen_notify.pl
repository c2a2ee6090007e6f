# A LISTENing session receives the notifications that executors emit when
# they commit: on the run's private channel (agentorch.channel(id),
# agentorch_run_<id>_<token>) a JSON payload with run_id, seq and kind whose
# last seq is the run's last chunk, and on agentorch_events the run's
# lifecycle ending with run_succeeded (ids, statuses and owners only).
use strict;
use warnings;
use JSON::PP;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentorchTest;

my $node = ao_node('listen');
$node->start;
ao_setup_tools($node, 'postgres');

# The run waits for input, so the listener can subscribe to its channel
# before the executor finishes it.
ao_register($node, 'postgres', 'ask', q{{"steps": [
  {"id": "ask", "type": "user_input", "prompt": "go?"},
  {"id": "fin", "type": "tool", "tool": "t.record", "depends_on": ["ask"], "input": {"tag": "n1", "step": "fin"}}
]}});

# Notifications psql printed after a statement of the listener.
my @notes;
sub collect
{
	my ($out) = @_;
	while ($out =~ /Asynchronous notification "([^"]+)" with payload "(.*)" received from server process with PID (\d+)\./g)
	{
		push @notes, { channel => $1, payload => decode_json($2), pid => $3 };
	}
	return;
}

my $listener = $node->background_psql('postgres');
collect($listener->query_safe('LISTEN agentorch_events'));

my $run = $node->safe_psql('postgres', q{SELECT agentorch.run_workflow('ask')});
ok($node->poll_query_until('postgres', "SELECT status = 'waiting' FROM agentorch.runs WHERE id = $run"),
	'the run waits for input');
my $channel = $node->safe_psql('postgres', "SELECT agentorch.channel($run)");
like($channel, qr/^agentorch_run_${run}_[a-z2-7]{26}$/, 'the run has a private channel with a 26-character token');
collect($listener->query_safe(qq{LISTEN "$channel"}));
collect($listener->query_safe(qq{LISTEN "agentorch_run_$run"}));   # the old, guessable name
is($node->safe_psql('postgres', "SELECT agentorch.submit_input($run, 'ask', '{\"ok\": true}')"),
	't', 'input submitted');
is(ao_wait_run($node, 'postgres', $run, '20s'), 'succeeded', 'the run succeeds');

# Collect notifications until the lifecycle channel reports the end of the
# run; psql prints them after each statement it runs.
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while (time() < $deadline)
{
	collect($listener->query_safe('SELECT 1'));
	last if grep { $_->{channel} eq 'agentorch_events' && ($_->{payload}{event} // '') eq 'run_succeeded' } @notes;
	usleep(100_000);
}
$listener->quit;

my %executor = map { $_ => 1 } ao_executor_pids($node, 'postgres');
my @life = grep { $_->{channel} eq 'agentorch_events' && $_->{payload}{run_id} == $run } @notes;
my @chan = grep { $_->{channel} eq $channel } @notes;
my @guessable = grep { $_->{channel} eq "agentorch_run_$run" } @notes;
note explain \@notes;

# lifecycle channel
is_deeply([ map { $_->{payload}{event} } @life ], [ 'run_started', 'input_requested', 'run_succeeded' ],
	'agentorch_events reports run_started, input_requested, run_succeeded');
ok(@life == 3 && $executor{ $life[1]{pid} }, 'input_requested was sent by an executor');
ok(@life && $executor{ $life[-1]{pid} }, 'run_succeeded was sent by an executor');
is(@life ? $life[-1]{payload}{status} : undef, 'succeeded', 'with status succeeded');
is_deeply([ map { join(',', sort keys %{ $_->{payload} }) } @life ], [ ('event,owner,run_id,status') x 3 ],
	'agentorch_events payloads carry only run_id, event, status and owner');
is(@life ? $life[0]{payload}{owner} : undef,
	$node->safe_psql('postgres', "SELECT owner FROM agentorch.runs WHERE id = $run"), 'owner is the run owner\'s oid');
is(scalar(@guessable), 0, 'nothing is sent on the guessable agentorch_run_<id>');

# the run's channel
ok(scalar(@chan) >= 2, 'the run channel got notifications (submit_input, then the executor)');
ok(!grep({ !defined $_->{payload}{run_id} || !defined $_->{payload}{seq} || !defined $_->{payload}{kind} } @chan),
	'every run-channel payload has run_id, seq and kind');
ok(!grep({ $_->{payload}{run_id} != $run } @chan), 'every run-channel payload names the run');
my @seqs = map { $_->{payload}{seq} } @chan;
is_deeply(\@seqs, [ sort { $a <=> $b } @seqs ], 'their seqs increase');
my $last = @chan ? $chan[-1] : { payload => {} };
ok($executor{ $last->{pid} // 0 }, 'the last run-channel notification was sent by an executor');
is($last->{payload}{kind}, 'final', 'the last one carries the final chunk');
is($last->{payload}{seq},
	$node->safe_psql('postgres', "SELECT max(seq) FROM agentorch.chunks WHERE run_id = $run"),
	"its seq is the run's last chunk seq");
is($node->safe_psql('postgres', "SELECT last_chunk_seq FROM agentorch.runs WHERE id = $run"),
	$last->{payload}{seq}, 'which is the run\'s chunk counter');

# start_many(): every run it creates is announced like start()'s, one
# run_started each, in the runs' order, by the session that started them
my $l2 = $node->background_psql('postgres');
@notes = ();
collect($l2->query_safe('LISTEN agentorch_events'));
my @many = split /\n/,
  $node->safe_psql('postgres', q{SELECT * FROM agentorch.start_many(ARRAY['{}', '{}', '{}']::jsonb[], 'fixed', 'ask')});
my %many = map { $_ => 1 } @many;
my @started;
$deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while (time() < $deadline)
{
	collect($l2->query_safe('SELECT 1'));
	@started = grep { $_->{channel} eq 'agentorch_events' && $_->{payload}{event} eq 'run_started'
		  && $many{ $_->{payload}{run_id} } } @notes;
	last if @started >= 3;
	usleep(100_000);
}
$l2->quit;
is_deeply([ map { $_->{payload}{run_id} } @started ], \@many, 'start_many: one run_started per run, in order');
ok(@started == 3 && !grep({ $executor{ $_->{pid} } } @started), 'sent by the starting session, not an executor');
is_deeply([ map { join(',', $_->{payload}{status}, $_->{payload}{owner}) } @started ],
	[ (join(',', 'running', $node->safe_psql('postgres', "SELECT oid FROM pg_roles WHERE rolname = current_user"))) x 3 ],
	'each with status running and the caller as owner');
$node->safe_psql('postgres', "SELECT agentorch.cancel(id) FROM unnest(ARRAY[" . join(',', @many) . "]::bigint[]) id");

$node->stop;
done_testing();
