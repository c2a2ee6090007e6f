# LLM layer: provider faults. Retryable ones (500, a stream dropped after
# a few tokens, 429 with Retry-After, a hang past the step timeout,
# malformed SSE, an error event mid-stream) are retried with a clear
# error on the step_retrying event, after the step's own backoff or the
# provider's Retry-After; a dropped stream's tokens are followed by a
# {"reset": true} status chunk and the complete text of the next attempt,
# and the output never mixes attempts; a stream that stays broken fails
# with a clear message after its attempts; permanent errors (400, 401)
# fail at once with the provider's message. Both providers where the
# wire differs.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('faults.json');
my $locked = mock_start('faults.json', env => { MOCK_LLM_REQUIRE_KEY => 'sk-only-the-right-key' });
my $node = llm_start(llm_node('llm_faults'));

register_model($node, 'gpt', 'openai', $mock, { model => 'mock-gpt' });
register_model($node, 'claude', 'anthropic', $mock, { model => 'mock-claude' });
register_model($node, 'gpt_nokey', 'openai', $locked, { model => 'mock-gpt' });
register_model($node, 'claude_nokey', 'anthropic', $locked, { model => 'mock-claude' });

sub events_of
{
	my ($run, $kind) = @_;
	return [ grep { $_->{kind} eq $kind } @{ event_list($node, $run) } ];
}

sub requests_for
{
	my ($m, $rule) = @_;
	return scalar grep { $_->{rule} eq $rule } @{ mock_requests($m) };
}

# ------------------------------------------------ 500 once, then success
{
	my $run = start_run($node, { prompt => 'fault-500-once' }, { model => 'gpt' });
	is(wait_status($node, $run), 'succeeded', '500 once: the run succeeds');
	my $s = step_row($node, $run, 'main');
	is($s->{attempt}, 2, '500 once: the step succeeded on attempt 2');
	my $retries = events_of($run, 'step_retrying');
	is(scalar @$retries, 1, '500 once: one step_retrying event');
	like($retries->[0]{data}{error}{message}, qr/HTTP 500.*server had an error/,
		'500 once: the retry records the status and the provider message');
	is(token_text($node, $run), 'Recovered after one server error.', '500 once: the text of the successful attempt');
	is(run_field($node, $run, "output #>> '{}'"), 'Recovered after one server error.', '500 once: output');
	is(requests_for($mock, 'once_500'), 2, '500 once: the mock saw two requests');
}

# ------------------------------------------------ the step's own retry backoff
{
	sql($node, q{SELECT agentorch.register_workflow('backoff_wf', '{"steps": [
	  {"id": "b", "type": "llm", "model": "gpt", "prompt": "fault-backoff-once",
	   "retry": {"max_attempts": 2, "backoff": {"initial": "600ms", "max": "2s", "jitter": 0}}}]}')});
	my $run = start_run($node, {}, { workflow => 'backoff_wf' });
	is(wait_status($node, $run), 'succeeded', 'step backoff: the run succeeds');
	my $ev = event_list($node, $run);
	my ($retry) = grep { $_->{kind} eq 'step_retrying' } @$ev;
	is($retry->{data}{delay_ms}, 600, "step backoff: the retry waits the step's backoff.initial (600 ms, no jitter)");
	my ($next) = grep { $_->{kind} eq 'step_started' && $_->{seq} > $retry->{seq} } @$ev;
	cmp_ok($next->{ms} - $retry->{ms}, '>=', 550, 'step backoff: the second attempt started after the backoff');
}

# ------------------------------------------------ a stream dropped after 3 tokens, then success (both providers)
for my $p ([ 'gpt', 'fault-drop-mid-stream' ], [ 'claude', 'fault-drop-anthropic' ])
{
	my ($model, $prompt) = @$p;
	my $full = 'alpha beta gamma delta epsilon zeta eta theta';
	my $run = start_run($node, { prompt => $prompt }, { model => $model });
	is(wait_status($node, $run), 'succeeded', "drop $model: the run succeeds");
	is(step_row($node, $run, 'main')->{attempt}, 2, "drop $model: the step succeeded on attempt 2");
	my $chunks = [ grep { ($_->{step_id} // '') eq 'main' } @{ chunk_list($node, $run) } ];
	my @t1 = grep { $_->{kind} eq 'token' && $_->{attempt} == 1 } @$chunks;
	my @t2 = grep { $_->{kind} eq 'token' && $_->{attempt} == 2 } @$chunks;
	my @reset = grep { $_->{kind} eq 'status' && $_->{data} && $_->{data}{reset} } @$chunks;
	my $t1 = join('', map { $_->{content} } @t1);
	ok(length($t1) > 0 && index($full, $t1) == 0 && length($t1) < length($full),
		"drop $model: attempt 1 streamed the beginning of the text ('$t1'), then broke");
	is(scalar @reset, 1, "drop $model: one reset status chunk");
	is_deeply([ $reset[0]{data}{step_id}, $reset[0]{data}{attempt} ], [ 'main', 2 ],
		"drop $model: the reset chunk names the step and the new attempt");
	ok(@t1 && @t2 && $t1[-1]{seq} < $reset[0]{seq} && $reset[0]{seq} < $t2[0]{seq},
		"drop $model: attempt 1 tokens, then the reset, then attempt 2 tokens");
	is(join('', map { $_->{content} } @t2), $full, "drop $model: attempt 2 streamed the full text");
	is(run_field($node, $run, "output #>> '{}'"), $full, "drop $model: the output is the full text, attempts not mixed");
	is(sql($node, "SELECT content FROM agentorch.chunks WHERE run_id = $run AND kind = 'final'"), $full,
		"drop $model: the final chunk holds only the second attempt");
	my $retries = events_of($run, 'step_retrying');
	is(scalar @$retries, 1, "drop $model: one step_retrying event");
	like($retries->[0]{data}{error}{message}, qr/transport error \d+|connection|stream ended|truncated/i,
		"drop $model: the retry says the stream broke");
	note('drop error: ' . $retries->[0]{data}{error}{message});
}

# ------------------------------------------------ 429 with Retry-After: 1
{
	my $run = start_run($node, { prompt => 'fault-429-once' }, { model => 'gpt' });
	is(wait_status($node, $run), 'succeeded', '429: the run succeeds');
	is(step_row($node, $run, 'main')->{attempt}, 2, '429: succeeded on attempt 2');
	my $ev = event_list($node, $run);
	my ($i) = grep { $ev->[$_]{kind} eq 'step_retrying' } 0 .. $#$ev;
	ok(defined $i, '429: a step_retrying event');
	like($ev->[$i]{data}{error}{message}, qr/HTTP 429.*Rate limit reached/, '429: the retry records the provider message');
	cmp_ok($ev->[$i]{data}{delay_ms}, '>=', 1000, '429: the retry delay honours Retry-After (>= 1000 ms, not the 50 ms backoff)');
	my ($next) = grep { $_->{kind} eq 'step_started' && $_->{seq} > $ev->[$i]{seq} } @$ev;
	ok($next, '429: the step started again');
	cmp_ok($next->{ms} - $ev->[$i]{ms}, '>=', 900, '429: the second attempt started >= 900 ms after the retry was scheduled');
}

# ------------------------------------------------ hang past the step timeout
{
	sql($node, q{SELECT agentorch.register_workflow('hang_wf', '{"steps": [
	  {"id": "h", "type": "llm", "model": "gpt", "prompt": "fault-hang", "timeout": "1s",
	   "retry": {"max_attempts": 2}}]}')});
	my $run = start_run($node, {}, { workflow => 'hang_wf' });
	is(wait_status($node, $run), 'failed', 'hang: the run fails');
	my $s = step_row($node, $run, 'h');
	is_deeply([ $s->{status}, $s->{attempt} ], [ 'failed', 2 ], 'hang: the step failed after its 2 attempts');
	like($s->{error}{message}, qr/time(d)?[ -]?out/i, 'hang: the step error says it timed out');
	note('hang error: ' . $s->{error}{message});
	my $ev = event_list($node, $run);
	my ($start) = grep { $_->{kind} eq 'step_started' } @$ev;
	my ($retry) = grep { $_->{kind} eq 'step_retrying' } @$ev;
	like($retry->{data}{error}{message}, qr/time(d)?[ -]?out/i, 'hang: the retry says timed out too');
	cmp_ok($retry->{ms} - $start->{ms}, '>=', 900, 'hang: the first attempt ran until the 1 s timeout');
	like(run_field($node, $run, "error->>'message'"), qr/^step h failed: .*time(d)?[ -]?out/i,
		'hang: the run error names the step and the timeout');
}

# ------------------------------------------------ malformed SSE once, then success
{
	my $run = start_run($node, { prompt => 'fault-malformed-once' }, { model => 'gpt' });
	is(wait_status($node, $run), 'succeeded', 'malformed SSE once: the run succeeds');
	is(step_row($node, $run, 'main')->{attempt}, 2, 'malformed SSE once: succeeded on attempt 2');
	is(run_field($node, $run, "output #>> '{}'"), 'one two three four five', 'malformed SSE once: output of attempt 2 only');
	my $retries = events_of($run, 'step_retrying');
	like($retries->[0]{data}{error}{message}, qr/json|sse|malformed|invalid|pars/i,
		'malformed SSE once: the retry says the stream was malformed');
	note('malformed error: ' . $retries->[0]{data}{error}{message});
	my $chunks = chunk_list($node, $run);
	my @t2 = grep { $_->{kind} eq 'token' && $_->{attempt} == 2 } @$chunks;
	is(join('', map { $_->{content} } @t2), 'one two three four five', 'malformed SSE once: attempt 2 tokens are the full text');
}

# ------------------------------------------------ invalid JSON in every stream: a clear failure
{
	my $run = start_run($node, { prompt => 'fault-invalid-json-always' }, { model => 'gpt' });
	is(wait_status($node, $run), 'failed', 'invalid JSON always: the run fails');
	my $s = step_row($node, $run, 'main');
	is_deeply([ $s->{status}, $s->{attempt} ], [ 'failed', 3 ], 'invalid JSON always: failed after its 3 attempts');
	like($s->{error}{message}, qr/json|sse|malformed|invalid|pars/i, 'invalid JSON always: the error says what is wrong');
	note('invalid json error: ' . $s->{error}{message});
	is(requests_for($mock, 'invalid_json_always'), 3, 'invalid JSON always: three requests');
}

# ------------------------------------------------ a provider error event mid-stream, then success
{
	my $run = start_run($node, { prompt => 'fault-stream-error' }, { model => 'gpt' });
	is(wait_status($node, $run), 'succeeded', 'stream error once: the run succeeds on retry');
	is(run_field($node, $run, "output #>> '{}'"), 'made it through the second time', 'stream error once: output');
	my $retries = events_of($run, 'step_retrying');
	ok(@$retries && $retries->[0]{data}{error}{message} =~ /\S/, 'stream error once: the retry records an error');
	note('stream error: ' . ($retries->[0]{data}{error}{message} // 'none'));
}

# ------------------------------------------------ permanent: 400
for my $m ([ 'gpt', 'openai' ], [ 'claude', 'anthropic' ])
{
	my ($model, $label) = @$m;
	my $before = requests_for($mock, 'bad_request');
	my $run = start_run($node, { prompt => 'fault-400 please' }, { model => $model });
	is(wait_status($node, $run), 'failed', "400 $label: the run fails");
	my $s = step_row($node, $run, 'main');
	is_deeply([ $s->{status}, $s->{attempt} ], [ 'failed', 1 ], "400 $label: failed at once, attempt 1");
	like($s->{error}{message}, qr/HTTP 400.*Mock fault injected: HTTP 400/, "400 $label: the provider's message");
	is(scalar @{ events_of($run, 'step_retrying') }, 0, "400 $label: no retry");
	is(requests_for($mock, 'bad_request') - $before, 1, "400 $label: one request");
	like(run_field($node, $run, "error->>'message'"), qr/^step main failed: HTTP 400/, "400 $label: run error");
}

# ------------------------------------------------ permanent: 401 (no key for a server that wants one)
for my $m ([ 'gpt_nokey', 'openai', qr/HTTP 401.*Incorrect API key provided/ ],
	[ 'claude_nokey', 'anthropic', qr/HTTP 401.*invalid x-api-key/ ])
{
	my ($model, $label, $re) = @$m;
	my $run = start_run($node, { prompt => 'hello' }, { model => $model });
	is(wait_status($node, $run), 'failed', "401 $label: the run fails");
	my $s = step_row($node, $run, 'main');
	is_deeply([ $s->{status}, $s->{attempt} ], [ 'failed', 1 ], "401 $label: failed at once, attempt 1");
	like($s->{error}{message}, $re, "401 $label: the provider's message");
}
is(mock_get($locked, '/stats')->{auth_failures}, 2, '401: the keyed mock refused exactly two requests');

$node->stop;
done_testing();
