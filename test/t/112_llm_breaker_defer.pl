# LLM layer: policies keep their promises. A step deferred by an open
# circuit breaker (or by a full bulkhead) waits without spending an
# attempt; only a request that was sent spends one.
#   - 20 runs queue on a model with a bulkhead of 1 and a breaker that
#     opens after 2 failures; its first 2 requests fail. Every run
#     succeeds: the runs that met the open breaker waited for the cooldown
#     and the probe, and the attempts spent are exactly the requests sent
#     (before, 19 of 20 such runs failed without a request of their own);
#   - a step whose run deadline comes before the breaker's cooldown ends
#     fails at once with a clear message, without a request.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('breaker.json');
my $node = llm_start(llm_node('llm_breaker_defer'));
register_model($node, 'D', 'openai', $mock,
	{ model => 'model-d', max_concurrency => 1, circuit_breaker => { failure_threshold => 2, cooldown => '1s' } });
register_model($node, 'E', 'openai', $mock,
	{ model => 'model-e', circuit_breaker => { failure_threshold => 1, cooldown => '20s' } });
sql($node, q{SELECT agentorch.register_workflow('ask_d', '{"steps": [
  {"id": "ask", "type": "llm", "model": "D", "prompt": "${input.q}", "retry": {"max_attempts": 3}}]}')});

sub requests_for
{
	my ($model) = @_;
	return scalar grep { ($_->{model} // '') eq $model } @{ mock_requests($mock) };
}

my @runs = map { start_run($node, { q => "question $_" }, { workflow => 'ask_d' }) } 1 .. 20;
my %status;
$status{ wait_status($node, $_) }++ for @runs;
is_deeply(\%status, { succeeded => 20 }, 'queued behind an open breaker: all 20 runs succeed')
  or diag(sql($node, "SELECT string_agg(row_to_json(s)::text, E'\\n') FROM (SELECT run_id, status, attempt, error "
		  . "FROM agentorch.steps WHERE status <> 'succeeded') s"));
is(requests_for('model-d'), 22, 'queued behind an open breaker: 22 requests (2 failed, 20 answered)');
my $ids = join(',', @runs);
is(sql($node, "SELECT sum(attempt) FROM agentorch.steps WHERE run_id IN ($ids)"), '22',
	'the steps spent 22 attempts: one per request sent, none on a deferral');
is(sql($node, "SELECT count(*) FROM agentorch.events WHERE run_id IN ($ids) AND kind = 'step_retrying'"),
	'2', 'two retries, both after a failed request');
cmp_ok(metric($node, 'model:D.rejected_total'), '>=', 1, 'the open breaker turned requests away (and they waited)');
is(metric($node, 'model:D.breaker_open'), '0', 'the probe closed the breaker');
is(metric($node, 'model:D.in_flight'), '0', 'model:D.in_flight is 0');

# ------------------------------------------------ a long line behind a bulkhead
# 40 runs behind one slot (300 ms a request): the steps that find it full
# wait in a line, one coming back every 50 ms, instead of all being
# claimed, deferred and written again every 50 ms (thousands of deferrals
# a second, a core and megabytes of WAL, while one request runs)
register_model($node, 'Q', 'openai', $mock, { model => 'model-q', max_concurrency => 1 });
my @queued = map { start_run($node, { prompt => "queued $_" }, { model => 'Q' }) } 1 .. 40;
%status = ();
$status{ wait_status($node, $_) }++ for @queued;
is_deeply(\%status, { succeeded => 40 }, 'a line of 40 behind one slot: all runs succeed');
is(requests_for('model-q'), 40, 'one request each');
my $deferred = metric($node, 'model:Q.deferred_total');
cmp_ok($deferred, '<=', 20 * 40, "deferrals stay bounded: $deferred for 40 requests (one per 50 ms of waiting, not every step every 50 ms)");

# ------------------------------------------------ the run deadline comes first
sql($node, q{SELECT agentorch.register_workflow('ask_e', '{"steps": [
  {"id": "ask", "type": "llm", "model": "E", "prompt": "${input.q}", "retry": {"max_attempts": 1}}]}')});
my $run = start_run($node, { q => 'first' }, { workflow => 'ask_e' });
is(wait_status($node, $run), 'failed', 'deadline: the first run fails (503) and opens the breaker');
is(metric($node, 'model:E.breaker_open'), '1', "deadline: model:E's breaker is open");
my $before = requests_for('model-e');
$run = start_run($node, { prompt => 'second' }, { model => 'E', timeout => '5 seconds' });
is(wait_status($node, $run), 'failed', 'deadline: a run whose deadline is before the cooldown fails');
my $s = step_row($node, $run, 'main');
like($s->{error}{message}, qr/circuit breaker of model:E is open/, 'deadline: the message names the open breaker');
like($s->{error}{detail}, qr/deadline comes before the cooldown ends/, 'deadline: the detail says why it did not wait');
is(requests_for('model-e') - $before, 0, 'deadline: no request was sent');

$node->stop;
done_testing();
