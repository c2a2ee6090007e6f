# LLM layer: replies PostgreSQL cannot store as they are, and provider
# edge cases from recorded streams.
#   - \u0000 in a reply's text or in a tool call's arguments becomes U+FFFD
#     (the step neither hangs nor crashes), and the model's bulkhead slot is
#     released (metrics() in_flight back to 0);
#   - usage and cost are recorded for every request sent, also when the
#     step fails for good (a refusal, a structured reply cut off by
#     max_tokens, an error chunk that carries usage);
#   - a structured reply cut off by max_tokens fails at once, without a
#     repair request; a reply cut off inside a tool call says so;
#   - an error chunk coded 400 is not retried;
#   - a fallback after a broken stream is an attempt of its own in the
#     chunks, announced by a reset chunk, so the tokens after the last
#     reset are exactly the fallback's answer.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('edge.json');
my $node = llm_start(llm_node('llm_edge'));
my $prices = { input_per_mtok => 1, output_per_mtok => 2 };
# (the \u0000 cases have a model of their own: a slot they held would stall the others)
register_model($node, 'nul', 'openai', $mock, { model => 'mock-nul', max_concurrency => 2 });
register_model($node, 'gpt', 'openai', $mock, { model => 'mock-gpt', max_concurrency => 4, prices => $prices });
register_model($node, 'claude', 'anthropic', $mock, { model => 'mock-claude', prices => $prices });
register_model($node, 'A', 'openai', $mock, { model => 'model-a', fallback => ['B'] });
register_model($node, 'B', 'openai', $mock, { model => 'model-b' });
sql($node, q{
CREATE FUNCTION public.t_note(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT jsonb_build_object('seen', input->>'note') $$;
SELECT agentorch.register_tool('t.note', 'function', '{"function": "public.t_note"}',
    '{"type": "object", "properties": {"x": {"type": "integer"}, "note": {"type": "string"}}}');
});

my %seen;
# API requests whose last user message contains $text, since the last call
sub new_requests
{
	my ($text) = @_;
	my $n = grep { index(JSON::PP->new->canonical->encode($_->{body} // {}), $text) >= 0 } @{ mock_requests($mock) };
	my $new = $n - ($seen{$text} // 0);
	$seen{$text} = $n;
	return $new;
}

sub in_flight_released
{
	my ($model) = @_;
	return $node->poll_query_until('postgres',
		"SELECT value = 0 FROM agentorch.metrics() WHERE name = 'model:$model.in_flight'");
}

# ------------------------------------------------ \u0000 in the text
my $run = start_run($node, { prompt => 'nul-text please' }, { model => 'nul' });
is(wait_status($node, $run), 'succeeded', 'nul text: the run succeeds (not stuck running)');
is(run_field($node, $run, "output #>> '{}'"), "before\xef\xbf\xbdafter", 'nul text: U+FFFD in place of the NUL');
is(token_text($node, $run), "before\xef\xbf\xbdafter", 'nul text: the token chunks too');
ok(in_flight_released('nul'), 'nul text: model:nul.in_flight is back to 0');

# ------------------------------------------------ \u0000 in tool call arguments
$run = start_run($node, { prompt => 'nul-args please', tools => ['t.note'] }, { model => 'nul' });
is(wait_status($node, $run), 'succeeded', 'nul args: the run succeeds');
like(run_field($node, $run, "output #>> '{}'"), qr/a\xef\xbf\xbdb/, 'nul args: the tool saw U+FFFD in place of the NUL');
ok(in_flight_released('nul'), 'nul args: model:nul.in_flight is back to 0');

# ------------------------------------------------ a reply jsonb refuses
$run = start_run($node, { prompt => 'huge-number please' }, { model => 'nul' });
is(wait_status($node, $run), 'failed', 'a number jsonb cannot hold: the run fails (not stuck running)');
like(step_row($node, $run, 'main')->{error}{message}, qr/could not process the response: .*numeric/,
	'a number jsonb cannot hold: the message says why');
ok(in_flight_released('nul'), 'a number jsonb cannot hold: model:nul.in_flight is back to 0');

# ------------------------------------------------ a refusal: fails, usage recorded
$run = start_run($node, { prompt => 'refuse-me now' }, { model => 'gpt' });
is(wait_status($node, $run), 'failed', 'refusal: the run fails');
my $s = step_row($node, $run, 'main');
like($s->{error}{message}, qr/refused/, 'refusal: the message says so');
is_deeply([ $s->{attempt}, $s->{prompt_tokens}, $s->{completion_tokens} ], [ 1, 9, 4 ],
	'refusal: one attempt, its usage recorded');
is(run_field($node, $run, 'prompt_tokens + completion_tokens'), '13', 'refusal: the run counts the tokens too');
is(sql($node, "SELECT cost = 0.000017 FROM agentorch.steps WHERE run_id = $run"), 't', 'refusal: the cost is recorded');

# ------------------------------------------------ an error chunk coded 400 that carries usage
$run = start_run($node, { prompt => 'error-with-usage here' }, { model => 'gpt' });
is(wait_status($node, $run), 'failed', 'error chunk 400: the run fails');
$s = step_row($node, $run, 'main');
is($s->{attempt}, 1, 'error chunk 400: not retried');
is(new_requests('error-with-usage'), 1, 'error chunk 400: one request');
like($s->{error}{message}, qr/400.*Provider returned error/, 'error chunk 400: the message');
is_deeply([ $s->{prompt_tokens}, $s->{completion_tokens} ], [ 12, 3 ], "error chunk 400: the chunk's usage is recorded");

# ------------------------------------------------ structured reply cut off by max_tokens
my $schema = { type => 'object', required => ['city'], properties => { city => { type => 'string' } } };
$run = start_run($node, { prompt => 'cut-structured reply', response_schema => $schema }, { model => 'gpt' });
is(wait_status($node, $run), 'failed', 'structured cut off: the run fails');
$s = step_row($node, $run, 'main');
like($s->{error}{message}, qr/cut off by max_tokens/, 'structured cut off: the message says cut off by max_tokens');
is(new_requests('cut-structured'), 1, 'structured cut off: no repair request');
is($s->{attempt}, 1, 'structured cut off: not retried');
is_deeply([ $s->{prompt_tokens}, $s->{completion_tokens} ], [ 20, 16 ], 'structured cut off: usage recorded');
is(scalar(grep { $_->{kind} eq 'status' && $_->{data}{repair} } @{ chunk_list($node, $run) }), 0,
	'structured cut off: no repair chunk');

# ------------------------------------------------ tool call cut off by max_tokens
sql($node, q{CREATE TABLE public.cut_calls (n int); CREATE FUNCTION public.t_cut(input jsonb) RETURNS jsonb
LANGUAGE sql AS $$ INSERT INTO public.cut_calls VALUES (1) RETURNING '{}'::jsonb $$;
SELECT agentorch.register_tool('t.cut', 'function', '{"function": "public.t_cut"}');});
$run = start_run($node, { prompt => 'cut-tool call', tools => ['t.cut'] }, { model => 'gpt' });
is(wait_status($node, $run), 'failed', 'tool call cut off: the run fails');
$s = step_row($node, $run, 'main');
like($s->{error}{message}, qr/cut off by max_tokens inside a tool call/, 'tool call cut off: the message says so');
unlike($s->{error}{message}, qr/could not build/, 'tool call cut off: not a request-building error');
is(sql($node, 'SELECT count(*) FROM public.cut_calls'), '0', 'tool call cut off: the tool did not run');
is(new_requests('cut-tool'), 1, 'tool call cut off: one request');
is_deeply([ $s->{prompt_tokens}, $s->{completion_tokens} ], [ 21, 17 ], 'tool call cut off: usage recorded');
ok(in_flight_released('gpt'), 'model:gpt.in_flight is back to 0 after all of them');

# ------------------------------------------------ the same cut-off replies from anthropic
$run = start_run($node, { prompt => 'cut-structured from claude', response_schema => $schema }, { model => 'claude' });
is(wait_status($node, $run), 'failed', 'anthropic structured cut off: the run fails');
$s = step_row($node, $run, 'main');
like($s->{error}{message}, qr/cut off by max_tokens/, 'anthropic structured cut off: the message');
is(new_requests('cut-structured from claude'), 1, 'anthropic structured cut off: no repair request');
is_deeply([ $s->{prompt_tokens}, $s->{completion_tokens} ], [ 20, 16 ], 'anthropic structured cut off: usage recorded');
$run = start_run($node, { prompt => 'cut-tool from claude', tools => ['t.cut'] }, { model => 'claude' });
is(wait_status($node, $run), 'failed', 'anthropic tool call cut off: the run fails');
$s = step_row($node, $run, 'main');
like($s->{error}{message}, qr/cut off by max_tokens inside a tool call/, 'anthropic tool call cut off: the message');
is(new_requests('cut-tool from claude'), 1, 'anthropic tool call cut off: one request');
is(sql($node, 'SELECT count(*) FROM public.cut_calls'), '0', 'anthropic tool call cut off: the tool did not run');

# ------------------------------------------------ fallback after a broken stream
sql($node, q{SELECT agentorch.register_workflow('ask_a', '{"steps": [
  {"id": "ask", "type": "llm", "model": "A", "prompt": "${input.q}", "retry": {"max_attempts": 1}}]}')});
$run = start_run($node, { q => 'tell me' }, { workflow => 'ask_a' });
is(wait_status($node, $run), 'succeeded', 'fallback after a broken stream: the run succeeds');
is(run_field($node, $run, "output->>'ask'"), 'B answers cleanly.', "fallback after a broken stream: B's text");
my $chunks = chunk_list($node, $run);
my @resets = grep { $_->{kind} eq 'status' && $_->{data} && $_->{data}{reset} } @$chunks;
is(scalar @resets, 1, 'fallback after a broken stream: one reset chunk');
my @a_tokens = grep { $_->{kind} eq 'token' && $_->{seq} < ($resets[0]{seq} // 0) } @$chunks;
ok(@a_tokens > 0, "fallback after a broken stream: A's tokens came before the reset");
is(join('', map { $_->{attempt} } @a_tokens) =~ /^1+$/ ? 1 : 0, 1, "fallback after a broken stream: A's chunks are attempt 1");
is($resets[0]{attempt}, 2, 'fallback after a broken stream: the reset chunk is attempt 2');
is($resets[0]{data}{attempt}, 2, 'fallback after a broken stream: the reset names attempt 2');
my @after = grep { $_->{seq} > ($resets[0]{seq} // 0) } @$chunks;
is(join('', map { $_->{content} } grep { $_->{kind} eq 'token' } @after), 'B answers cleanly.',
	'fallback after a broken stream: the tokens after the last reset are exactly B\'s answer');
is(scalar(grep { $_->{kind} eq 'token' && $_->{attempt} != 2 } @after), 0,
	'fallback after a broken stream: every token after the reset is attempt 2');
ok(scalar(grep { $_->{kind} eq 'status' && $_->{data} && $_->{data}{fallback} } @after) == 1,
	'fallback after a broken stream: the fallback chunk follows the reset');

ok(!crashed($node), 'no server process crashed');
$node->stop;
done_testing();
