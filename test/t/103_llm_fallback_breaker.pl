# LLM layer: model fallbacks and circuit breakers.
#   - model A always fails (500); on its last attempt the step falls back to
#     B and succeeds with B's text, announced by a {"fallback": true} chunk;
#   - A's failures count against A's breaker (threshold 2), which opens:
#     metrics() shows model:A.breaker_open = 1 and the next run goes
#     straight to B without asking A; after the cooldown a probe to A
#     succeeds and closes the breaker;
#   - a model without fallback: after 2 failures its breaker opens; the
#     third attempt waits for the cooldown (spending no attempt while it
#     waits), is sent as the probe, fails again (503) and fails the step;
#     a probe after the next cooldown closes the breaker.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('fallback.json');
my $node = llm_start(llm_node('llm_fallback'));

my $breaker = { failure_threshold => 2, cooldown => '2s' };
register_model($node, 'A', 'openai', $mock,
	{ model => 'model-a', fallback => ['B'], circuit_breaker => $breaker });
register_model($node, 'B', 'openai', $mock,
	{ model => 'model-b', prices => { input_per_mtok => 1, output_per_mtok => 2 } });
register_model($node, 'C', 'openai', $mock,
	{ model => 'model-c', circuit_breaker => { failure_threshold => 2, cooldown => '4s' } });

sql($node, q{SELECT agentorch.register_workflow('ask_a', '{"steps": [
  {"id": "ask", "type": "llm", "model": "A", "prompt": "${input.q}", "retry": {"max_attempts": 2}}]}')});

# requests the mock received for a model id since the last count
my %seen;
sub new_requests
{
	my ($model) = @_;
	my $n = grep { ($_->{model} // '') eq $model } @{ mock_requests($mock) };
	my $new = $n - ($seen{$model} // 0);
	$seen{$model} = $n;
	return $new;
}

# ------------------------------------------------ A fails twice, B answers
my $run = start_run($node, { q => 'first question' }, { workflow => 'ask_a' });
is(wait_status($node, $run), 'succeeded', 'fallback: the run succeeds');
is(run_field($node, $run, "output->>'ask'"), 'B answers instead.', "fallback: the output is B's text");
is(token_text($node, $run), 'B answers instead.', "fallback: the tokens are B's text only");
my @fb = grep { $_->{kind} eq 'status' && $_->{data} && $_->{data}{fallback} } @{ chunk_list($node, $run) };
is(scalar @fb, 1, 'fallback: one {"fallback": true} status chunk');
is($fb[0]{data}{model}, 'B', 'fallback: the chunk names the fallback model');
is(new_requests('model-a'), 2, 'fallback: A was asked on both attempts');
is(new_requests('model-b'), 1, 'fallback: B was asked once');
my $s = step_row($node, $run, 'ask');
is_deeply([ $s->{status}, $s->{attempt}, $s->{prompt_tokens}, $s->{completion_tokens} ],
	[ 'succeeded', 2, 11, 7 ], "fallback: succeeded on attempt 2 with B's usage");
is(sql($node, "SELECT cost = 0.000025 FROM agentorch.steps WHERE run_id = $run"), 't',
	"fallback: the cost uses B's prices");

# A failed twice in a row: its breaker (threshold 2) is open, and B's
# success is not counted as A's
is(metric($node, 'model:A.failures_total'), '2', 'breaker: both failures of A are counted');
is(metric($node, 'model:A.breaker_open'), '1', 'breaker: model:A.breaker_open = 1 after 2 consecutive failures');
is(metric($node, 'model:A.consecutive_failures'), '2', 'breaker: model:A.consecutive_failures = 2');

# ------------------------------------------------ the breaker is open: straight to B
$run = start_run($node, { q => 'second question' }, { workflow => 'ask_a' });
is(wait_status($node, $run), 'succeeded', 'open breaker: the run succeeds');
is(run_field($node, $run, "output->>'ask'"), 'B answers instead.', "open breaker: B's text");
is(new_requests('model-a'), 0, 'open breaker: A was not asked');
is(new_requests('model-b'), 1, 'open breaker: B was asked');
is(step_row($node, $run, 'ask')->{attempt}, 1, 'open breaker: one attempt');

# ------------------------------------------------ after the cooldown a probe closes it
ok($node->poll_query_until('postgres',
		"SELECT value = 0 FROM agentorch.metrics() WHERE name = 'model:A.breaker_open'"),
	'breaker: the cooldown of A passes');
$run = start_run($node, { q => 'probe question' }, { workflow => 'ask_a' });
is(wait_status($node, $run), 'succeeded', 'probe: the run succeeds');
is(run_field($node, $run, "output->>'ask'"), 'A is healthy again.', "probe: A's text (A was asked)");
is(new_requests('model-a'), 1, 'probe: one request to A');
is(new_requests('model-b'), 0, 'probe: B was not needed');
is(metric($node, 'model:A.breaker_open'), '0', 'probe: model:A.breaker_open = 0');
is(metric($node, 'model:A.consecutive_failures'), '0', 'probe: the success reset the failure count');

# ------------------------------------------------ no fallback: the breaker fails the step
$run = start_run($node, { prompt => 'question for C' }, { model => 'C' });
is(wait_status($node, $run), 'failed', 'no fallback: the run fails');
$s = step_row($node, $run, 'main');
is($s->{attempt}, 3, 'no fallback: all 3 attempts were made');
is(new_requests('model-c'), 3, 'no fallback: C was asked 3 times (the third after the cooldown)');
like($s->{error}{message}, qr/HTTP 503/, "no fallback: the last attempt's own failure, not the breaker");
my @started = grep { $_->{kind} eq 'step_started' } @{ event_list($node, $run) };
cmp_ok($started[2]{ms} - $started[1]{ms}, '>=', 3500, 'no fallback: the third attempt waited for the cooldown (4s)');
my @msgs = map { $_->{data}{error}{message} } grep { $_->{kind} eq 'step_retrying' } @{ event_list($node, $run) };
like($msgs[0], qr/HTTP 503/, 'no fallback: the first retry records the 503');
is(metric($node, 'model:C.breaker_open'), '1', 'no fallback: model:C.breaker_open = 1');
cmp_ok(metric($node, 'model:C.rejected_total'), '>=', 1, 'no fallback: the open breaker rejected a request');
ok($node->poll_query_until('postgres',
		"SELECT value = 0 FROM agentorch.metrics() WHERE name = 'model:C.breaker_open'"),
	'no fallback: the cooldown of C passes');
$run = start_run($node, { prompt => 'probe C' }, { model => 'C' });
is(wait_status($node, $run), 'succeeded', 'no fallback: the probe run succeeds');
is(run_field($node, $run, "output #>> '{}'"), 'C is healthy again.', "no fallback: C's text");
is(metric($node, 'model:C.consecutive_failures'), '0', 'no fallback: the probe closed the breaker');

$node->stop;
done_testing();
