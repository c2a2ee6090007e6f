# LLM layer: cancelling a run while its llm step streams. The run ends
# cancelled with a final chunk, no chunk follows the final one, the
# executor stops reading the stream (the mock sees the client go away)
# and releases the model's bulkhead slot, and it keeps working: a later
# run succeeds. Resumed, the step's new chunks are a new attempt
# announced by a reset chunk.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('cancel.json');
# a short lease: the executor looks at its running steps every lease/3
my $node = llm_start(llm_node('llm_cancel', "agentorch.lease = '3s'"));
register_model($node, 'slow', 'openai', $mock, { model => 'mock-slow', max_concurrency => 4 });

my $run = start_run($node, { prompt => 'a slow stream please' }, { model => 'slow' });
ok($node->poll_query_until('postgres',
		"SELECT count(*) >= 3 FROM agentorch.chunks WHERE run_id = $run AND kind = 'token'"),
	'the stream is under way (3 token chunks)');
is(sql($node, "SELECT agentorch.cancel($run, 'stop it')"), 't', 'cancel() returns true');
is(wait_status($node, $run), 'cancelled', 'the run is cancelled');
is(run_field($node, $run, "error->>'reason'"), 'stop it', 'the reason is recorded');
is(sql($node, "SELECT status FROM agentorch.steps WHERE run_id = $run AND step_id = 'main'"), 'cancelled',
	'the llm step is cancelled');

# the executor notices and drops the stream long before it would end
ok($node->poll_query_until('postgres',
		"SELECT value = 0 FROM agentorch.metrics() WHERE name = 'model:slow.in_flight'"),
	'the bulkhead slot of the model is released');
ok(mock_poll($mock, sub { $_[0]{client_disconnects} >= 1 }),
	'the executor closed the stream (the mock saw the client go away)');
is(mock_get($mock, '/stats')->{streams_completed}, 0, 'the slow stream was not read to its end');

my $final = sql($node, "SELECT seq FROM agentorch.chunks WHERE run_id = $run AND kind = 'final'");
like($final, qr/^\d+$/, 'one final chunk');
is(sql($node, "SELECT count(*) FROM agentorch.chunks WHERE run_id = $run AND seq > $final"), '0',
	'no chunk after the final chunk');
is(run_field($node, $run, 'last_chunk_seq'), $final, 'the final chunk is the last seq of the run');
is(sql($node, "SELECT data->>'status' FROM agentorch.chunks WHERE run_id = $run AND seq = $final"), 'cancelled',
	'the final chunk says cancelled');
my $tokens = token_text($node, $run);
ok(length($tokens) > 0 && index("Once upon a time a very slow model", substr($tokens, 0, 20)) == 0,
	"the tokens before the cancel are kept ('" . substr($tokens, 0, 30) . "...')");
is(sql($node, "SELECT kind FROM agentorch.events WHERE run_id = $run ORDER BY seq DESC LIMIT 1"), 'run_cancelled',
	'the last event is run_cancelled');
is(sql($node, "SELECT count(*) FROM agentorch.events WHERE run_id = $run AND kind IN ('step_succeeded', 'step_failed', 'step_retrying')"),
	'0', 'the abandoned request recorded no outcome');

# the executor keeps working
my $next = start_run($node, { prompt => 'something quick' }, { model => 'slow' });
is(wait_status($node, $next), 'succeeded', 'a later run succeeds');
is(run_field($node, $next, "output #>> '{}'"), 'Quick answer after the cancel.', 'with its own text');
is(sql($node, "SELECT count(*) FROM agentorch.chunks WHERE run_id = $run AND seq > $final"), '0',
	'still no chunk after the final chunk of the cancelled run');

# ------------------------------------------------ resume after the cancel
# The step starts over (its attempt count too); its chunks continue as a
# new attempt announced by a reset chunk, so a reader that drops what
# precedes the last reset sees exactly the new answer.
is(sql($node, "SELECT agentorch.resume($run)"), 't', 'resume: resume() returns true');
is(wait_status($node, $run), 'succeeded', 'resume: the resumed run succeeds');
my $chunks = chunk_list($node, $run);
my @resets = grep { $_->{kind} eq 'status' && $_->{step_id} && $_->{data} && $_->{data}{reset} } @$chunks;
is(scalar @resets, 1, 'resume: one reset chunk');
is($resets[0]{data}{reason}, 'resume', 'resume: the reset says why');
my $first_attempt = (map { $_->{attempt} } grep { $_->{kind} eq 'token' && $_->{seq} < $final } @$chunks)[0];
is($resets[0]{attempt}, $first_attempt + 1, 'resume: the reset starts a new attempt number in the chunks');
my $after = join('', map { $_->{content} } grep { $_->{kind} eq 'token' && $_->{seq} > $resets[0]{seq} } @$chunks);
is($after, run_field($node, $run, "output #>> '{}'"), 'resume: the tokens after the last reset are exactly the answer');
is(scalar(grep { $_->{kind} eq 'token' && $_->{seq} > $resets[0]{seq} && $_->{attempt} != $resets[0]{attempt} } @$chunks), 0,
	'resume: every token after the reset carries its attempt');

$node->stop;
done_testing();
