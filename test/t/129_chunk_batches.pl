# Streamed chunks written in batches (src/state/chunk_rows.c): one flush
# that holds several batches of one run -- the chunks of parallel steps of
# that run, or of two attempts of one step (a fallback) -- writes them all,
# numbered one after another, with one update of the run's counter:
#   - four parallel llm steps of one run, streaming at once: each step's
#     tokens are its reply, every one of them;
#   - a step whose model breaks off after three tokens and falls back: the
#     run succeeds with the fallback's text, the broken attempt's tokens,
#     the reset and the fallback status are all in the stream;
#   - the same in run_sync, inside the caller's statement;
#   - seq numbers of each run are 1..n without a gap, last_chunk_seq is n;
#   - the C writer and the SQL one (agentorch.state_sql_only) write the same
#     rows.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('chunk_batches.json');
# a long flush interval and one executor: many chunks of one run wait in the same flush
my $node = llm_start(llm_node('chunk_batches', 'agentorch.max_workers = 1', "agentorch.flush_interval = '300ms'"));
register_model($node, 'gpt', 'openai', $mock, { model => 'mock-gpt' });
register_model($node, 'B', 'openai', $mock, { model => 'model-b' });
# one model A per writer: A's failures open its breaker after a few
register_model($node, "A_$_", 'openai', $mock, { model => 'model-a', fallback => ['B'] }) for qw(C SQL);
sql($node, "SELECT agentorch.register_workflow('four', "
	  . json_in({ steps => [ map { { id => $_, type => 'llm', model => 'gpt', prompt => "long-stream $_" } } qw(a b c d) ] })
	  . ')');
sql($node, "SELECT agentorch.register_workflow('falls_back_$_', "
	  . json_in({ steps => [ { id => 'ask', type => 'llm', model => "A_$_", prompt => 'please answer', retry => { max_attempts => 1 } } ] })
	  . ')') for qw(C SQL);
my $words = join(' ', map { "w$_" } 1 .. 60);

# seq numbers 1..n, and the run's counter at n
sub seqs_whole
{
	my ($run) = @_;
	return sql($node, "SELECT count(*) = max(seq) AND min(seq) = 1 AND max(seq) = (SELECT last_chunk_seq FROM agentorch.runs WHERE id = $run)
		FROM agentorch.chunks WHERE run_id = $run");
}

# the tokens of a step's last attempt, concatenated
sub step_tokens
{
	my ($run, $step) = @_;
	return sql($node, "SELECT string_agg(content, '' ORDER BY seq) FROM agentorch.chunks
		WHERE run_id = $run AND step_id = '$step' AND kind = 'token'
		  AND attempt = (SELECT max(attempt) FROM agentorch.chunks WHERE run_id = $run AND step_id = '$step')");
}

for my $writer ('C', 'SQL')
{
	sql($node, "ALTER SYSTEM SET agentorch.state_sql_only = " . ($writer eq 'SQL' ? 'on' : 'off'));
	sql($node, 'SELECT pg_reload_conf()');

	my $log_from = -s $node->logfile;
	my $run = start_run($node, {}, { workflow => 'four' });
	is(wait_status($node, $run), 'succeeded', "$writer: the run of four parallel streaming steps succeeds");
	is(step_tokens($run, $_), $words, "$writer: step $_ streamed every token") for qw(a b c d);
	is(seqs_whole($run), 't', "$writer: the run's seq numbers have no gap and end at last_chunk_seq");

	$run = start_run($node, {}, { workflow => "falls_back_$writer" });
	is(wait_status($node, $run), 'succeeded', "$writer: the step that falls back succeeds");
	is(run_field($node, $run, "output->>'ask'"), 'B answers in full.', "$writer: with the fallback's text");
	is(sql($node, "SELECT string_agg(content, '' ORDER BY seq) FROM agentorch.chunks WHERE run_id = $run AND kind = 'token'
		AND attempt = (SELECT min(attempt) FROM agentorch.chunks WHERE run_id = $run AND kind = 'token')"),
		'a1 a2 a3', "$writer: the broken attempt's tokens are in the stream");
	is(sql($node, "SELECT count(*) FROM agentorch.chunks WHERE run_id = $run AND kind = 'status'
		AND (data->>'reset' = 'true' OR data->>'fallback' = 'true')"), '2',
		"$writer: and the reset and the fallback status");
	is(seqs_whole($run), 't', "$writer: seq numbers without a gap");

	my $out = sql($node, "SELECT string_agg(kind::text || ':' || COALESCE(content, ''), '|' ORDER BY seq)
		FROM agentorch.run_sync('{\"prompt\": \"please answer\"}', '{\"model\": \"A_$writer\"}')");
	like($out, qr/token:a1 a2 a3.*status:reset.*B answers in full\./, "$writer: run_sync streams both attempts and the fallback's text");

	unlike(slurp_file($node->logfile, $log_from), qr/could not lock a row/, "$writer: no flush failed");
}
ok(!crashed($node), 'no server process crashed');

done_testing();
