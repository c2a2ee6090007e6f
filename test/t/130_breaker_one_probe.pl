# Policy: a half-open circuit breaker lets exactly one request probe, and
# only the probe's own end lets another request go. Before, any request
# given back as neutral (the client's own timeout) ended the half-open
# state, so a request let through before the breaker opened could admit a
# second probe while the first was still in flight.
#   - A (let through while closed) waits past its step timeout (neutral);
#   - B fails with a 500: the breaker (threshold 1, cooldown 1 s) opens;
#   - after the cooldown C probes and stays in flight for 12 s;
#   - A times out while C is in flight; then D is started;
#   - D must not reach the model until C has answered (and closed the
#     breaker); it waits without spending an attempt and then succeeds.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('breaker_probe.json');
my $node = llm_start(llm_node('breaker_one_probe'));
register_model($node, 'P', 'openai', $mock,
	{ model => 'model-p', circuit_breaker => { failure_threshold => 1, cooldown => '1s' } });

sql($node, q{SELECT agentorch.register_workflow('ask_p', '{"steps": [
  {"id": "ask", "type": "llm", "model": "P", "prompt": "${input.q}", "timeout": "6s", "retry": {"max_attempts": 1}}]}')});
sql($node, q{SELECT agentorch.register_workflow('ask_p_long', '{"steps": [
  {"id": "ask", "type": "llm", "model": "P", "prompt": "${input.q}", "timeout": "60s", "retry": {"max_attempts": 1}}]}')});

sub arrived
{
	my ($text) = @_;
	return scalar grep { (JSON::PP->new->canonical->encode($_->{body} // {})) =~ /\Q$text\E/ }
	  @{ mock_requests($mock) };
}

sub poll_until
{
	my ($code) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		return 1 if $code->();
		Time::HiRes::usleep(50_000);
	}
	return 0;
}

my $a = start_run($node, { q => 'slow-neutral' }, { workflow => 'ask_p' });
ok(poll_until(sub { arrived('slow-neutral') }), 'A: its request is in flight (the breaker is closed)');

my $b = start_run($node, { q => 'fail-now' }, { workflow => 'ask_p' });
is(wait_status($node, $b), 'failed', 'B: its 500 fails the run');
ok(poll_until(sub { metric($node, 'model:P.consecutive_failures') eq '1' }), 'B: the breaker counted the failure');

# after the 1 s cooldown the next request probes, and stays in flight
my $c = start_run($node, { q => 'probe-slow' }, { workflow => 'ask_p_long' });
ok(poll_until(sub { arrived('probe-slow') }), 'C: the probe reached the model');
is(run_field($node, $a, 'r.status'), 'running', 'A is still in flight while C probes (the scenario holds)');

# A's own timeout: a neutral outcome, given back while C probes
is(wait_status($node, $a), 'failed', 'A: fails on its step timeout');
like(step_row($node, $a, 'ask')->{error}{message} // '', qr/time/i, 'A: the error is the timeout');
is(run_field($node, $c, 'r.status'), 'running', 'C is still probing after A gave its slot back');
ok(mock_poll($mock, sub { $_[0]->{concurrent_current} == 1 }), "the mock serves only C now (A's handler ended)");
mock_reset($mock);    # concurrent_max counts from here: C is in flight

my $d = start_run($node, { q => 'after the probe' }, { workflow => 'ask_p_long' });
is(wait_status($node, $c), 'succeeded', 'C: the probe answers');
is(wait_status($node, $d), 'succeeded', 'D: succeeds once the probe has closed the breaker');
my $stats = mock_get($mock, '/stats');
is($stats->{concurrent_max}, 1, 'D did not reach the model while the probe was in flight (one request at a time)');
is(step_row($node, $d, 'ask')->{attempt}, 1, 'D: waiting for the probe spent no attempt');
cmp_ok(metric($node, 'model:P.rejected_total'), '>=', 1, 'D was turned away while the probe was out');
is(metric($node, 'model:P.breaker_open'), '0', 'the breaker is closed');
is(metric($node, 'model:P.in_flight'), '0', 'model:P.in_flight is 0');

$node->stop;
done_testing();
