# LLM layer: a model's rate limit delays requests instead of failing them.
# Model R allows 60 requests per minute (one per second); three runs
# started together all succeed on their first attempt, the limiter
# deferred some of them (deferred_total > 0), and the requests reached
# the provider spread out. A deferral is not an attempt and not a start.
# Then a bulkhead (max_concurrency 1) defers slow requests the same way, and
# a tokens-per-minute limit defers the request after one that used more than
# a minute's tokens.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('ratelimit.json');
my $node = llm_start(llm_node('llm_ratelimit'));
register_model($node, 'R', 'openai', $mock, { model => 'model-r', rate_limit => { rpm => 60 } });

my @runs = split /\n/, sql($node, q{
SELECT agentorch.start(jsonb_build_object('prompt', 'rate-limited question ' || i), 'simple', NULL, '{"model": "R"}')
  FROM generate_series(1, 3) AS i ORDER BY i});
is(scalar @runs, 3, 'three runs started in one transaction');

for my $i (0 .. 2)
{
	my $n = $i + 1;
	is(wait_status($node, $runs[$i]), 'succeeded', "run $n succeeded");
	is(run_field($node, $runs[$i], "output #>> '{}'"), "Answer rate-limited question $n", "run $n: its own answer");
	is(step_row($node, $runs[$i], 'main')->{attempt}, 1, "run $n: one attempt (a deferral spends none)");
}
is(sql($node, "SELECT count(*) FROM agentorch.events WHERE run_id IN (" . join(',', @runs) . ") "
	  . "AND kind IN ('step_failed', 'step_retrying', 'run_failed')"), '0', 'no failures and no retries');
cmp_ok(metric($node, 'model:R.deferred_total'), '>', 0, 'model:R.deferred_total > 0: the limiter deferred requests');
is(metric($node, 'model:R.failures_total'), '0', 'model:R.failures_total = 0');
is(metric($node, 'model:R.requests_total'), '3', 'model:R.requests_total = 3');

# When did the requests reach the provider?
my @times = sort { $a <=> $b } map { $_->{time} } grep { ($_->{model} // '') eq 'model-r' } @{ mock_requests($mock) };
is(scalar @times, 3, 'the mock received three requests');
cmp_ok(($times[2] - $times[0]) * 1000, '>=', 900, 'requests spread out: the third >= ~1 s after the first (60 rpm)');

# The step starts that led to the requests (the last step_started of each run)
my @starts = sort { $a <=> $b } map {
	my $ev = event_list($node, $_);
	(map { $_->{ms} } grep { $_->{kind} eq 'step_started' } @$ev)[-1]
} @runs;
cmp_ok($starts[2] - $starts[0], '>=', 900, 'step start events: the first and the third >= ~1 s apart');

# A deferral is not a start: every step_started event of a step is closed
# by another transition of that step before the next one.
for my $i (0 .. 2)
{
	my @kinds = map { $_->{kind} } grep { ($_->{step_id} // '') eq 'main' } @{ event_list($node, $runs[$i]) };
	my $bad = 0;
	for my $k (1 .. $#kinds) { $bad++ if $kinds[$k] eq 'step_started' && $kinds[ $k - 1 ] eq 'step_started'; }
	is($bad, 0, 'run ' . ($i + 1) . ': no step_started event without a transition in between (' . join(',', @kinds) . ')');
}

# ------------------------------------------------ bulkhead: max_concurrency 1
# Three slow requests (300 ms) to a model that allows one in flight: the
# others are deferred, never failed, and never overlap at the provider.
register_model($node, 'M', 'openai', $mock, { model => 'model-m', max_concurrency => 1 });
mock_reset($mock);
@runs = split /\n/, sql($node, q{
SELECT agentorch.start(jsonb_build_object('prompt', 'bulkhead question ' || i), 'simple', NULL, '{"model": "M"}')
  FROM generate_series(1, 3) AS i ORDER BY i});
for my $i (0 .. 2)
{
	my $n = $i + 1;
	is(wait_status($node, $runs[$i]), 'succeeded', "bulkhead: run $n succeeded");
	is(run_field($node, $runs[$i], "output #>> '{}'"), "Slow answer to bulkhead question $n", "bulkhead: run $n: its own answer");
	is(step_row($node, $runs[$i], 'main')->{attempt}, 1, "bulkhead: run $n: one attempt");
	my @kinds = map { $_->{kind} } grep { ($_->{step_id} // '') eq 'main' } @{ event_list($node, $runs[$i]) };
	my $bad = 0;
	for my $k (1 .. $#kinds) { $bad++ if $kinds[$k] eq 'step_started' && $kinds[ $k - 1 ] eq 'step_started'; }
	is($bad, 0, "bulkhead: run $n: no step_started event without a transition in between (" . join(',', @kinds) . ')');
}
is(mock_get($mock, '/stats')->{concurrent_max}, 1, 'bulkhead: never more than one request in flight at the provider');
cmp_ok(metric($node, 'model:M.deferred_total'), '>', 0, 'bulkhead: model:M.deferred_total > 0');
is(metric($node, 'model:M.failures_total'), '0', 'bulkhead: no failures');
is(metric($node, 'model:M.in_flight'), '0', 'bulkhead: nothing left in flight');

# ------------------------------------------------ tokens per minute
# Model T allows 60,000 tokens a minute; a reply that used 70,000 leaves the
# bucket 10,000 in debt, so the next request waits (deferred, not failed)
# until the minute has paid for them, although it declares no expected
# tokens. Counted by the limiter, not timed.
register_model($node, 'T', 'openai', $mock, { model => 'model-t', rate_limit => { tpm => 60000 } });
my $heavy = sql($node, q{SELECT agentorch.start('{"prompt": "token-heavy question 1"}', 'simple', NULL, '{"model": "T"}')});
is(wait_status($node, $heavy), 'succeeded', 'tpm: the first request went at once and succeeded');
is(metric($node, 'model:T.deferred_total'), '0', 'tpm: nothing deferred yet');
is(run_field($node, $heavy, 'prompt_tokens'), '70000', 'tpm: it used 70,000 tokens');
my $next = sql($node, q{SELECT agentorch.start('{"prompt": "token-heavy question 2"}', 'simple', NULL, '{"model": "T"}')});
is(wait_status($node, $next), 'succeeded', 'tpm: the next request succeeded');
cmp_ok(metric($node, 'model:T.deferred_total'), '>', 0, 'tpm: it was deferred while the bucket was in debt');
is(step_row($node, $next, 'main')->{attempt}, 1, 'tpm: one attempt (a deferral spends none)');
is(metric($node, 'model:T.failures_total'), '0', 'tpm: no failures');

$node->stop;
done_testing();
