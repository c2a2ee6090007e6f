# External workers (agentorch-worker): real worker processes on loopback
# claim llm steps from the database and stream them from the mock LLM.
#
#   * agentorch.network_steps = workers: two workers serve 500 concurrent
#     streamed runs; every llm step was claimed by one of them (its
#     worker_claimed event), none by an executor;
#   * one worker is killed with SIGKILL mid-stream: its steps finish on the
#     other, announced by a reset chunk, with no duplicated tokens;
#   * a worker whose session is terminated reconnects and goes on;
#   * SIGTERM releases what a worker holds and it exits 0;
#   * runs that record or replay (options.llm_mode) are the executors' even
#     under network_steps = workers;
#   * network_steps = executors: workers claim nothing;
#   * an ordinary role cannot call the worker functions.
# Every wait is a poll of the server; none is a fixed sleep.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;
use IPC::Run;

$PostgreSQL::Test::Utils::timeout_default = 60;
$ENV{AO_LLM_TEST_BUDGET} ||= 150;

my $mock = mock_start('workers.json');
my $node = llm_node('ext_workers',
	"agentorch.network_steps = 'workers'",
	'max_connections = 60',
	"agentorch.lease = '20s'");
llm_start($node);
my $bin = $node->config_data('--bindir');
my $worker_bin = "$bin/agentorch-worker";
ok(-x $worker_bin, "agentorch-worker is installed ($worker_bin)");

register_model($node, 'm', 'openai', $mock, { model => 'mock-gpt' });

# The worker's role: LOGIN, EXECUTE on the worker-facing functions only.
create_worker_role($node, 'aow_worker');
sql($node, 'CREATE ROLE aow_plain LOGIN');

# ---------------------------------------------------------------- privileges
for my $f ("agentorch._worker_claim(1, 'x', 1, false)", "agentorch._worker_settle('[]')",
	"agentorch._worker_register('x', 'h', 1)")
{
	my $r = psql_result($node, 'postgres', 'aow_plain', "SELECT $f");
	is($r->{sqlstate}, '42501', "an ordinary role cannot call $f");
}

# ---------------------------------------------------------------- a claim that rolls back holds nothing
# (a statement timeout, a cancel, ROLLBACK: the slots, step locks and probe
# tickets its steps took go with it; before, the session held them until
# it ended, and every other claimer deferred those steps meanwhile)
register_model($node, 'lim', 'openai', $mock, { model => 'mock-gpt', max_concurrency => 1 });
sql($node, q{SELECT agentorch.register_workflow('rb_locked', '{"steps": [{"id": "ask", "type": "llm", "model": "lim", "prompt": "hello", "lock": "RB"}]}')});
my $rb = sql($node, "SELECT agentorch.run_workflow('rb_locked')");
for my $how ('ROLLBACK', 'ROLLBACK TO SAVEPOINT')
{
	# all in the claiming session: its exit would give everything back anyway
	my $after = "SELECT string_agg(value::text, ',' ORDER BY name) FROM agentorch.metrics() "
	  . "WHERE name IN ('step_locks_held', 'model:lim.in_flight');";
	my $q = $how eq 'ROLLBACK'
	  ? "BEGIN;\nSELECT jsonb_array_length(agentorch._worker_claim(1, 'rb', 10, false));\nROLLBACK;\n$after"
	  : "BEGIN;\nSAVEPOINT s;\nSELECT jsonb_array_length(agentorch._worker_claim(1, 'rb', 10, false));\n"
	  . "ROLLBACK TO SAVEPOINT s;\n$after\nCOMMIT;";
	is(sql_as($node, 'aow_worker', $q), "1\n0,0",
		"$how: the claim took the locked step, and its bulkhead slot and step lock went with the claim");
	is(sql($node, "SELECT status FROM agentorch.steps WHERE run_id = $rb"), 'ready', "$how: the step is ready again");
}
sql($node, "SELECT agentorch.cancel($rb)");

my %workers;
my $connstr = $node->connstr('postgres') . ' user=aow_worker';

# start_worker(name, extra args...): a worker process, its stderr in the log directory.
sub start_worker
{
	my ($name, @args) = @_;
	my $log = "$PostgreSQL::Test::Utils::log_path/122_worker_$name.log";
	my $h = IPC::Run::start([ $worker_bin, $connstr, '--name', $name, @args ],
		'<', \undef, '>>', $log, '2>>', $log);
	$workers{$name} = { h => $h, log => $log, pid => $h->{KIDS}[0]{PID} };
	ok($node->poll_query_until('postgres',
			"SELECT count(*) > 0 FROM agentorch.workers WHERE name = '$name' AND pid = $workers{$name}{pid}"),
		"worker $name registered in agentorch.workers");
	return $workers{$name};
}

# Start n runs with prompts "<prefix> <i>"; returns their ids.
sub start_runs
{
	my ($n, $prefix) = @_;
	return [ split /\n/, sql($node,
			"SELECT agentorch.start(jsonb_build_object('prompt', '$prefix ' || g), 'simple', NULL, "
			  . "'{\"model\": \"m\"}') FROM generate_series(1, $n) g ORDER BY 1") ];
}

# Wait until every run of the list has finished.
sub wait_runs
{
	my ($ids, $label) = @_;
	my $list = join(',', @$ids);
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM agentorch.runs WHERE id IN ($list) AND status IN ('pending', 'running', 'waiting')"),
		$label);
}

# Runs of the list whose output is not what the tokens after their last reset
# chunk say, or whose output differs from the expected text (a SQL expression
# over the run's input prompt p).
sub bad_outputs
{
	my ($ids, $expected) = @_;
	my $list = join(',', @$ids);
	return sql($node, qq{
WITH r AS (SELECT id, output #>> '{}' AS out, input->>'prompt' AS p FROM agentorch.runs WHERE id IN ($list)),
     lr AS (SELECT r.id, COALESCE((SELECT max(seq) FROM agentorch.chunks c WHERE c.run_id = r.id AND c.kind = 'status'
                                    AND (c.data->>'reset')::boolean), 0) AS reset_seq FROM r),
     t AS (SELECT lr.id, COALESCE(string_agg(c.content, '' ORDER BY c.seq), '') AS toks
             FROM lr LEFT JOIN agentorch.chunks c ON c.run_id = lr.id AND c.kind = 'token' AND c.seq > lr.reset_seq
            GROUP BY lr.id)
SELECT count(*) FROM r JOIN t USING (id) WHERE r.out IS DISTINCT FROM t.toks OR r.out IS DISTINCT FROM ($expected)});
}

my $echo = q{'Echo: ' || p};
my @words = qw(one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
  sixteen seventeen eighteen nineteen twenty);
my $long = "'" . join(' ', (@words) x 3) . ".'";

my $wa = start_worker('wa', '--concurrency', '300');
my $wb = start_worker('wb', '--concurrency', '300');

# ---------------------------------------------------------------- 500 concurrent streamed runs
my $runs = start_runs(500, 'echo run');
is(scalar @$runs, 500, '500 runs started');
wait_runs($runs, '500 runs finished');
my $list = join(',', @$runs);
is(sql($node, "SELECT count(*) FROM agentorch.runs WHERE id IN ($list) AND status = 'succeeded'"), '500',
	'every run succeeded');
is(bad_outputs($runs, $echo), '0', 'every output is the streamed text (no token lost or repeated)');
is(sql($node, "SELECT count(*) FROM agentorch.events WHERE run_id IN ($list) AND kind = 'step_started'"),
	sql($node, "SELECT count(*) FROM agentorch.events WHERE run_id IN ($list) AND kind = 'worker_claimed'"),
	'every step start was a worker claim: no executor ran a step');
is(sql($node, "SELECT count(DISTINCT run_id) FROM agentorch.events WHERE run_id IN ($list) AND kind = 'worker_claimed' "
		  . "AND data->>'worker' IN ('wa', 'wb')"), '500', 'each run was served by wa or wb');
my $by = sql($node, "SELECT string_agg(w || '=' || n, ' ' ORDER BY w) FROM (SELECT data->>'worker' w, count(*) n "
	  . "FROM agentorch.events WHERE run_id IN ($list) AND kind = 'worker_claimed' GROUP BY 1) x");
like($by, qr/^wa=\d+ wb=\d+$/, "both workers served runs ($by)");
is(sql($node, "SELECT count(*) FROM agentorch.chunks WHERE run_id IN ($list) AND kind = 'status' AND (data->>'reset')::boolean"),
	'0', 'no reset chunk when nothing failed');

# ---------------------------------------------------------------- a templated prompt
# The claim builds the run's context only for a spec that holds a template:
# a worker's llm step still renders one.
sql($node, q{SELECT agentorch.register_workflow('wk_tmpl', '{"steps": [
  {"id": "a", "type": "llm", "model": "m", "prompt": "templated ${input.word}"}]}')});
my $tr = sql($node, q{SELECT agentorch.run_workflow('wk_tmpl', '{"word": "rendered"}')});
wait_runs([$tr], 'the templated run finished');
is(sql($node, "SELECT output #>> '{}' FROM agentorch.steps WHERE run_id = $tr AND step_id = 'a'"),
	'Echo: templated rendered', "a worker's llm step renders its prompt's template with the run's context");
is(sql($node, "SELECT count(*) FROM agentorch.events WHERE run_id = $tr AND kind = 'worker_claimed'"), '1',
	'... and a worker claimed it');

# ---------------------------------------------------------------- SIGKILL mid-stream
# wb is paused (SIGSTOP) while the runs start, so wa claims them; its
# session stays, so it loses nothing meanwhile.
kill 'STOP', $wb->{pid};
$runs = start_runs(40, 'long-stream');
$list = join(',', @$runs);
ok($node->poll_query_until('postgres', qq{
SELECT count(*) >= 3 FROM agentorch.steps s JOIN agentorch.workers w ON s.worker = w.backend_pid
 WHERE w.name = 'wa' AND s.status = 'running' AND s.run_id IN ($list)
   AND EXISTS (SELECT 1 FROM agentorch.chunks c WHERE c.run_id = s.run_id AND c.kind = 'token')}),
	'wa is streaming long replies');
kill 'CONT', $wb->{pid};
kill 'KILL', $wa->{pid};
$wa->{h}->finish;
pass('wa killed with SIGKILL mid-stream');
wait_runs($runs, 'the long runs finished');
is(sql($node, "SELECT count(*) FROM agentorch.runs WHERE id IN ($list) AND status = 'succeeded'"), '40',
	'every long run succeeded');
is(bad_outputs($runs, $long), '0', 'outputs are exactly one answer: no duplicated tokens');
my $moved = sql($node, qq{
SELECT count(*) FROM (SELECT run_id, array_agg(data->>'worker' ORDER BY seq) ws FROM agentorch.events
                       WHERE run_id IN ($list) AND kind = 'worker_claimed' GROUP BY run_id) x
 WHERE ws[1] = 'wa' AND ws[array_upper(ws, 1)] = 'wb'});
cmp_ok($moved, '>=', 3, "steps of the killed worker finished on the other ($moved)");
is(sql($node, qq{
SELECT count(*) FROM (SELECT run_id, array_agg(data->>'worker' ORDER BY seq) ws FROM agentorch.events
                       WHERE run_id IN ($list) AND kind = 'worker_claimed' GROUP BY run_id) x
 WHERE ws[1] = 'wa' AND ws[array_upper(ws, 1)] = 'wb'
   AND EXISTS (SELECT 1 FROM agentorch.chunks c WHERE c.run_id = x.run_id AND c.kind = 'token')
   AND NOT EXISTS (SELECT 1 FROM agentorch.chunks c WHERE c.run_id = x.run_id AND c.kind = 'status'
                     AND (c.data->>'reset')::boolean AND c.data->>'reason' = 'retry')}),
	'0', 'each of them has a reset chunk before the new attempt');

# ---------------------------------------------------------------- lost connection
$runs = start_runs(10, 'long-stream');
$list = join(',', @$runs);
my $old_backend = sql($node, "SELECT backend_pid FROM agentorch.workers WHERE name = 'wb' ORDER BY id DESC LIMIT 1");
ok($node->poll_query_until('postgres', qq{
SELECT count(*) >= 3 FROM agentorch.steps s WHERE s.worker = $old_backend AND s.status = 'running'
   AND s.run_id IN ($list)
   AND EXISTS (SELECT 1 FROM agentorch.chunks c WHERE c.run_id = s.run_id AND c.kind = 'token')}),
	'wb is streaming');
is(sql($node, "SELECT pg_terminate_backend($old_backend)"), 't', "wb's session terminated");
wait_runs($runs, 'the runs finished after the connection was lost');
is(sql($node, "SELECT count(*) FROM agentorch.runs WHERE id IN ($list) AND status = 'succeeded'"), '10',
	'every run succeeded');
is(bad_outputs($runs, $long), '0', 'outputs are exactly one answer');
my $new_backend = sql($node, "SELECT backend_pid FROM agentorch.workers WHERE name = 'wb' ORDER BY id DESC LIMIT 1");
isnt($new_backend, $old_backend, 'wb registered again with a new session');
cmp_ok(sql($node, "SELECT count(*) FROM agentorch.events WHERE run_id IN ($list) AND kind = 'worker_claimed' "
		  . "AND (data->>'backend_pid')::int = $new_backend"), '>=', 1, 'wb reconnected and claimed steps again');
ok($wb->{h}->pumpable, 'wb is still running');

# ---------------------------------------------------------------- SIGTERM
kill 'TERM', $wb->{pid};
$wb->{h}->finish;
is($wb->{h}->result(0), 0, 'an idle worker exits 0 on SIGTERM');
my $wd = start_worker('wd', '--grace-ms', '0');
$runs = start_runs(6, 'long-stream');
$list = join(',', @$runs);
ok($node->poll_query_until('postgres', qq{
SELECT count(*) = 6 AND bool_or(EXISTS (SELECT 1 FROM agentorch.chunks c WHERE c.run_id = s.run_id AND c.kind = 'token'))
  FROM agentorch.steps s JOIN agentorch.workers w ON s.worker = w.backend_pid
 WHERE w.name = 'wd' AND s.status = 'running' AND s.run_id IN ($list)}), 'wd holds the six steps and streams');
kill 'TERM', $wd->{pid};
$wd->{h}->finish;
is($wd->{h}->result(0), 0, 'a busy worker exits 0 on SIGTERM');
is(sql($node, "SELECT count(*) FROM agentorch.steps WHERE run_id IN ($list) AND status = 'ready' "
		  . "AND worker IS NULL AND lease_until IS NULL AND attempt = 0"), '6',
	'its steps were released: ready, no lease, the attempt given back');
is(sql($node, "SELECT count(*) FROM agentorch.workers WHERE name = 'wd'"), '0', 'its row is gone');

# ---------------------------------------------------------------- record/replay runs stay with the executors
# (workers do not record or replay LLM requests: a run with options.llm_mode
# is claimed by an executor even under network_steps = workers)
my $rec = sql($node, "SET agentorch.llm_mode = 'record'; "
	  . "SELECT agentorch.start('{\"prompt\": \"recorded run\"}', 'simple', NULL, '{\"model\": \"m\"}')");
wait_runs([$rec], 'a recording run finished under network_steps = workers');
is(sql($node, "SELECT status FROM agentorch.runs WHERE id = $rec"), 'succeeded', 'it succeeded');
is(sql($node, "SELECT count(*) FROM agentorch.events WHERE run_id = $rec AND kind = 'worker_claimed'"), '0',
	'no worker claimed it: an executor ran it');
cmp_ok(sql($node, "SELECT count(*) FROM agentorch.llm_cache WHERE request_hash LIKE 'llm:%'"), '>=', 1,
	'and its request was recorded');

# ---------------------------------------------------------------- network_steps = executors
sql($node, "ALTER SYSTEM SET agentorch.network_steps = 'executors'");
$node->reload;
ok($node->poll_query_until('postgres', "SELECT current_setting('agentorch.network_steps') = 'executors'"),
	'network_steps = executors');
my $we = start_worker('we');
my $released = $runs;
$runs = start_runs(5, 'echo later');
push @$runs, @$released;
$list = join(',', @$runs);
wait_runs($runs, 'the executors ran the released and the new steps');
is(sql($node, "SELECT count(*) FROM agentorch.runs WHERE id IN ($list) AND status = 'succeeded'"), '11',
	'they succeeded');
is(sql($node, "SELECT count(*) FROM agentorch.events WHERE run_id IN ($list) AND kind = 'worker_claimed' "
		  . "AND data->>'worker' = 'we'"), '0', 'the worker claimed nothing');
is(sql($node, "SELECT agentorch._worker_claim(999, 'x', 10, false)"), '[]',
	'_worker_claim gives no step under network_steps = executors');
is(bad_outputs($released, $long), '0', 'the released runs continued with one clean answer');
cmp_ok(sql($node, "SELECT count(*) FROM agentorch.chunks WHERE run_id IN (" . join(',', @$released)
		  . ") AND kind = 'status' AND (data->>'reset')::boolean AND data->>'reason' = 'resume'"), '>=', 1,
	'a released step that had streamed continues after a reset chunk');
kill 'TERM', $we->{pid};
$we->{h}->finish;
is($we->{h}->result(0), 0, 'we exits 0');

ok(!crashed($node), 'no server process crashed');
$node->stop;
done_testing();
