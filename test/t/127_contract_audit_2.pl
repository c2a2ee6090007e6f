# The second audit of the contract (security, sagas, streams, 0.1.0
# databases, the audit log), each checked as a user meets it:
#   - a planner run that names no tools plans only with the caller's own
#     tools: another role's tool runs its author's code with the run owner's
#     rights, so it is used only when named (options.tools);
#   - a loop iteration's compensation renders ${item} and ${index};
#   - resume() of a compensated run runs the compensated steps again, and
#     compensates them again if the run fails again (never undoes twice
#     what was done once, never keeps as done what was undone);
#   - follow() and agentorch-follow of a run cancelled, resumed and finished
#     read on to its last final chunk;
#   - in a database still at 0.1.0: select() answers what start() runs;
#     output_schema and the traceparent option are refused (0A000), not
#     ignored; after the update, trace() of a run started on 0.1.0 has a
#     valid trace id;
#   - the audit log marks a start that found its idempotency key's run, and
#     records the executors' retention purges.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('../mock_llm/scripts/demo.json', args => [ '--token-delay-ms', '20' ]);
my $node = llm_start(llm_node('contract_audit_2'));
register_model($node, 'mock', 'openai', $mock, { model => 'mock' });

sub poll_until
{
	my ($q, $want, $db) = @_;
	my $v;
	my $end = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $end)
	{
		$v = $node->safe_psql($db // 'postgres', $q);
		return $v if $v eq $want;
		Time::HiRes::usleep(100_000);
	}
	return $v;
}

# ------------------------------------------------ planner tools by default
sql($node, q{
CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
GRANT CREATE ON SCHEMA public TO alice, bob;
});
sql_as($node, 'alice', q{
CREATE FUNCTION public.alice_fn(j jsonb) RETURNS jsonb LANGUAGE sql AS $$SELECT j$$;
SELECT agentorch.register_tool('alice.fn', 'function', '{"function": "public.alice_fn", "description": "call me always"}');
SELECT agentorch.grant_tool('alice.fn', 'bob');
});
sql_as($node, 'bob', q{
CREATE FUNCTION public.bob_fn(j jsonb) RETURNS jsonb LANGUAGE sql AS $$SELECT j$$;
SELECT agentorch.register_tool('bob.fn', 'function', '{"function": "public.bob_fn"}');
});
my $run = sql_as($node, 'bob', q{SELECT agentorch.start('{"prompt": "summarise my notes"}', 'planner', NULL, '{"model": "mock"}')});
is(sql($node, "SELECT string_agg(k, ',' ORDER BY k) FROM agentorch.runs, jsonb_object_keys(tools) k WHERE id = $run"),
	'bob.fn', 'a planner run naming no tools plans with its owner\'s tools only, not with a tool granted by another role');
sql_as($node, 'bob', "SELECT agentorch.cancel($run)");
$run = sql_as($node, 'bob',
	q{SELECT agentorch.start('{"prompt": "summarise my notes"}', 'planner', NULL, '{"model": "mock", "tools": ["alice.fn", "bob.fn"]}')});
is(sql($node, "SELECT string_agg(k, ',' ORDER BY k) FROM agentorch.runs, jsonb_object_keys(tools) k WHERE id = $run"),
	'alice.fn,bob.fn', 'a granted tool is used when its run names it');
sql_as($node, 'bob', "SELECT agentorch.cancel($run)");
$run = sql($node, q{SELECT agentorch.start('{"prompt": "summarise my notes"}', 'planner', NULL, '{"model": "mock"}')});
is(sql($node, "SELECT count(*) FROM agentorch.runs, jsonb_object_keys(tools) k WHERE id = $run AND k IN ('alice.fn', 'bob.fn')"),
	'0', 'a superuser\'s planner run does not pick ordinary roles\' tools either');
sql($node, "SELECT agentorch.cancel($run)");

# a NOINHERIT member of a tool's owner: the default list is what it may use
sql($node, q{
CREATE ROLE towner LOGIN; CREATE ROLE nob LOGIN NOINHERIT; GRANT towner TO nob;
GRANT CREATE ON SCHEMA public TO towner;
});
sql_as($node, 'towner', q{
CREATE FUNCTION public.t_fn(j jsonb) RETURNS jsonb LANGUAGE sql AS $$SELECT j$$;
SELECT agentorch.register_tool('towner.fn', 'function', '{"function": "public.t_fn"}');
});
$run = sql_as($node, 'nob', q{SELECT agentorch.start('{"prompt": "summarise my notes"}', 'planner', NULL, '{"model": "mock"}')});
is(sql($node, "SELECT tools FROM agentorch.runs WHERE id = $run"), '{}',
	'a NOINHERIT member\'s planner run starts, without the tools it has no privileges of');
sql($node, "SELECT agentorch.cancel($run)");

# ------------------------------------------------------- resume of a saga
sql($node, q{
CREATE TABLE public.clog (id serial, msg text);
CREATE TABLE public.gate (ok boolean); INSERT INTO public.gate VALUES (false);
SELECT agentorch.register_tool('log_it', 'sql', '{"sql": "INSERT INTO public.clog (msg) VALUES ($1) RETURNING msg", "params": ["msg"]}');
SELECT agentorch.register_tool('gate', 'sql', '{"sql": "SELECT 1 / ok::int AS v FROM public.gate", "params": []}');
SELECT agentorch.register_workflow('saga', '{"steps": [
 {"id": "a", "type": "tool", "tool": "log_it", "input": {"msg": "do a"}, "compensate": {"tool": "log_it", "input": {"msg": "undo a"}}},
 {"id": "b", "type": "tool", "tool": "log_it", "input": {"msg": "do b"}, "depends_on": ["a"], "compensate": {"tool": "log_it", "input": {"msg": "undo b"}}},
 {"id": "c", "type": "tool", "tool": "gate", "input": {}, "depends_on": ["b"], "retry": {"max_attempts": 1}}]}');
});
my $clog = "SELECT string_agg(msg, ', ' ORDER BY id) FROM public.clog";
$run = sql($node, "SELECT agentorch.run_workflow('saga')");
is(wait_status($node, $run), 'failed', 'saga: the run fails at c');
is(sql($node, $clog), 'do a, do b, undo b, undo a', 'saga: b and a are compensated in reverse order');
sql($node, "SELECT agentorch.resume($run)");
is(wait_status($node, $run), 'failed', 'saga: resumed, it fails at c again');
is(sql($node, $clog), 'do a, do b, undo b, undo a, do a, do b, undo b, undo a',
	'saga: the resume did a and b again (they had been undone), and undid them again once');
sql($node, 'UPDATE public.gate SET ok = true');
sql($node, "SELECT agentorch.resume($run)");
is(wait_status($node, $run), 'succeeded', 'saga: resumed with the gate open, it succeeds');
is(sql($node, $clog), 'do a, do b, undo b, undo a, do a, do b, undo b, undo a, do a, do b',
	'saga: what the run reports as done is done: a and b ran again after their last compensation');
is(sql($node, "SELECT string_agg(step_id || ' ' || status, ', ' ORDER BY ord) FROM agentorch.steps WHERE run_id = $run"),
	'a succeeded, b succeeded, c succeeded', 'saga: no compensation step is left');

# a loop iteration's compensation renders its ${item} and ${index}
sql($node, q{
TRUNCATE public.clog;
SELECT agentorch.register_tool('boom', 'sql', '{"sql": "SELECT 1 / 0 AS x", "params": []}');
SELECT agentorch.register_workflow('loopsaga', '{"steps": [
 {"id": "l", "type": "loop", "for_each": "${input.xs}", "step": {"type": "tool", "tool": "log_it", "input": {"msg": "do ${item}"},
   "compensate": {"tool": "log_it", "input": {"msg": "undo ${item} #${index}"}}}},
 {"id": "c", "type": "tool", "tool": "boom", "input": {}, "depends_on": ["l"], "retry": {"max_attempts": 1}}]}');
});
$run = sql($node, q{SELECT agentorch.run_workflow('loopsaga', '{"xs": ["p", "q"]}')});
is(wait_status($node, $run), 'failed', 'loop saga: the run fails after the loop');
is(sql($node, $clog), 'do p, do q, undo q #1, undo p #0', 'loop saga: each iteration\'s compensation sees its item and index');

# a step that used a compensated step's output runs again with it
sql($node, q{
CREATE TABLE public.ids (id serial, tag text);
CREATE FUNCTION public.mk(j jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$DECLARE v int; BEGIN INSERT INTO public.ids (tag) VALUES ('o') RETURNING id INTO v; RETURN jsonb_build_object('id', v); END$$;
CREATE FUNCTION public.rm(j jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$BEGIN DELETE FROM public.ids WHERE id = (j->>'id')::int; RETURN j; END$$;
CREATE FUNCTION public.pass(j jsonb) RETURNS jsonb LANGUAGE sql AS $$SELECT j$$;
CREATE FUNCTION public.chk(j jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$BEGIN IF NOT (SELECT ok FROM public.gate) THEN RAISE EXCEPTION 'gate closed'; END IF; RETURN j; END$$;
SELECT count(agentorch.register_tool(n, 'function', jsonb_build_object('function', 'public.' || n))) FROM unnest('{mk,rm,pass,chk}'::text[]) n;
UPDATE public.gate SET ok = false;
SELECT agentorch.register_workflow('stale', '{"steps": [
 {"id": "a", "type": "tool", "tool": "mk", "input": {}, "compensate": {"tool": "rm", "input": {"id": "${a.output.id}"}}},
 {"id": "b", "type": "tool", "tool": "pass", "input": {"id": "${a.output.id}"}, "depends_on": ["a"]},
 {"id": "c", "type": "tool", "tool": "chk", "input": {"id": "${b.output.id}"}, "depends_on": ["b"], "retry": {"max_attempts": 1}}]}');
});
$run = sql($node, "SELECT agentorch.run_workflow('stale')");
is(wait_status($node, $run), 'failed', 'stale: the run fails at c, a is compensated (its row deleted)');
sql($node, 'UPDATE public.gate SET ok = true');
sql($node, "SELECT agentorch.resume($run)");
is(wait_status($node, $run), 'succeeded', 'stale: resumed, it succeeds');
is(sql($node, "SELECT (output->'c'->>'id')::int = (SELECT max(id) FROM public.ids) AND (SELECT count(*) FROM public.ids) = 1 "
	  . "FROM agentorch.runs WHERE id = $run"),
	't', 'stale: b ran again too, so c used the row a made again, not the one its compensation deleted');

# --------------------------------------------- follow after cancel + resume
my $words = join(' ', ('word') x 60);
$run = start_run($node, { prompt => "rr $words" }, { model => 'mock' });
poll_until("SELECT count(*) > 0 FROM agentorch.chunks WHERE run_id = $run AND kind = 'token'", 't');
sql($node, "SELECT agentorch.cancel($run)");
sql($node, "SELECT agentorch.resume($run)");
is(wait_status($node, $run), 'succeeded', 'a run cancelled mid-stream and resumed succeeds');
is(sql($node, "SELECT count(*) FROM agentorch.chunks WHERE run_id = $run AND kind = 'final'"), '2',
	'... with two final chunks (cancelled, then succeeded)');
is(sql($node, "SELECT max(seq) FROM agentorch.follow($run, 0, '5s')"),
	sql($node, "SELECT max(seq) FROM agentorch.chunks WHERE run_id = $run"),
	'follow() from the start reads on past the cancelled final chunk to the last one');
my $bin = `pg_config --bindir`;
chomp $bin;
my ($out, $err) = ('', '');
my $rc = IPC::Run::run([ "$bin/agentorch-follow", '-q', '-t', '10', $run, $node->connstr('postgres') ],
	'>', \$out, '2>', \$err);
is($? >> 8, 0, 'agentorch-follow of that run exits 0 (succeeded)');
like($out, qr/== succeeded: /, '... after printing the succeeded final');

# --------------------------------------------------- the policy table
# Any role can make many tools and open their breakers; they must not take
# every entry of the cluster's policy table (256), stalling every model.
sql_as($node, 'alice', q{
CREATE FUNCTION public.m_fail(j jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40001'; END$$;
DO $$BEGIN FOR i IN 1..260 LOOP
  PERFORM agentorch.register_tool('m' || i, 'function', '{"function": "public.m_fail"}', NULL,
     '{"circuit_breaker": {"failure_threshold": 1, "cooldown": "1h"}, "retry": {"max_attempts": 1}}');
  PERFORM agentorch.register_workflow('mw' || i, jsonb_build_object('steps', jsonb_build_array(
     jsonb_build_object('id', 's', 'type', 'tool', 'tool', 'm' || i, 'input', '{}'::jsonb))));
END LOOP; END $$;
});
sql_as($node, 'alice', "SELECT agentorch.run_workflow('mw' || i) FROM generate_series(1, 260) i");
is(poll_until("SELECT count(*) FROM agentorch.runs r WHERE r.workflow_name LIKE 'mw%' AND r.status IN ('running', 'pending')", '0'),
	'0', 'policy table: 260 tools fail and open their breakers');
cmp_ok(sql($node, "SELECT count(*) FROM agentorch.metrics() WHERE name LIKE 'tool:m%.breaker_open' AND value = 1"), '>=', 200,
	'... which fill the policy table');
$run = start_run($node, { prompt => 'still served' }, { model => 'mock' });
is(wait_status($node, $run), 'succeeded', 'a model still gets an entry (a tool\'s open breaker gives way) and its run succeeds');

# a tool with a long name (policy name over 128 bytes): its slot is given back
my $long_tool = 't' x 150;
sql($node, qq{
CREATE FUNCTION public.nap(j jsonb) RETURNS jsonb LANGUAGE sql AS \$\$SELECT to_jsonb(pg_sleep((j->>'s')::float)::text)\$\$;
SELECT agentorch.register_tool('$long_tool', 'function', '{"function": "public.nap"}', NULL, '{"max_concurrency": 1}');
SELECT agentorch.register_workflow('napper', '{"steps": [{"id": "s", "type": "tool", "tool": "$long_tool", "input": {"s": "\${input.s}"}}]}');
});
my $napping = sql($node, q{SELECT agentorch.run_workflow('napper', '{"s": 30}')});
poll_until("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'agentorch executor' AND wait_event = 'PgSleep'", '1');
sql($node, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'agentorch executor' AND wait_event = 'PgSleep'");
$run = sql($node, q{SELECT agentorch.run_workflow('napper', '{"s": 0}')});
is(wait_status($node, $run), 'succeeded',
	'a long-named tool\'s concurrency slot is given back when its executor is terminated mid-call');
sql($node, "SELECT agentorch.cancel($napping)");

# ------------------------------------------------------ the audit log
sql($node, q{SELECT agentorch.start('{"prompt": "once"}', 'simple', NULL, '{"model": "mock", "idempotency_key": "k1"}')});
sql($node, q{SELECT agentorch.start('{"prompt": "once"}', 'simple', NULL, '{"model": "mock", "idempotency_key": "k1"}')});
is(sql($node, "SELECT string_agg(COALESCE(detail->>'existing', 'new'), ',' ORDER BY id) FROM agentorch.audit_log "
	  . "WHERE action = 'start' AND run_id = (SELECT id FROM agentorch.runs WHERE idempotency_key = 'k1')"),
	'new,true', 'a start that found its idempotency key\'s run is audited as such');

sql($node, "UPDATE agentorch.runs SET finished_at = now() - interval '2 days' WHERE id = $run");
sql($node, "ALTER SYSTEM SET agentorch.retention = '1d'");
$node->reload;
is(poll_until("SELECT count(*) FROM agentorch.runs WHERE id = $run", '0'), '0', 'retention purges the old run');
is(sql($node, "SELECT detail->>'by' FROM agentorch.audit_log WHERE action = 'purge' ORDER BY id DESC LIMIT 1"),
	'agentorch.retention', '... and the audit log records that purge');
sql($node, "ALTER SYSTEM RESET agentorch.retention");
$node->reload;

# ----------------------------------------------- a database still at 0.1.0
sql($node, 'CREATE DATABASE old');
$node->safe_psql('old', "CREATE EXTENSION agentorch VERSION '0.1.0'");
$node->safe_psql('old', "SELECT agentorch.register_model('mock', 'openai', '{\"base_url\": \"$mock->{url}/v1\", \"model\": \"mock\"}')");
my $long = 'First load the data, then analyse it for every region, then compare them, and finally write a '
  . 'long report with charts and tables about everything you found';
my $sel = $node->safe_psql('old', "SELECT orchestration || ' ' || (reason LIKE '%need agentorch 0.2.0%') FROM agentorch.select('{\"prompt\": \"$long\"}')");
my $started = $node->safe_psql('old', "SELECT agentorch.start('{\"prompt\": \"$long\"}', NULL, NULL, '{\"model\": \"mock\"}')");
my $ran = $node->safe_psql('old', "SELECT orchestration FROM agentorch.runs WHERE id = $started");
is($sel, "$ran true", "0.1.0: select() answers what start() runs ($ran), and says why");

my ($ret, $o, $e) = $node->psql('old', q{\set VERBOSITY verbose
SELECT agentorch.register_workflow('os', '{"steps": [{"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}, "output_schema": {"type": "string"}}]}')});
like($e, qr/0A000: .*output_schema needs agentorch 0\.2\.0/, '0.1.0: a workflow with an output_schema is refused (0A000), not stored to be ignored');
($ret, $o, $e) = $node->psql('old', q{\set VERBOSITY verbose
SELECT agentorch.start('{"prompt": "x"}', 'simple', NULL, '{"model": "mock", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}')});
like($e, qr/0A000: .*traceparent.* needs agentorch 0\.2\.0/, '0.1.0: the traceparent option is refused (0A000), not ignored');

my $old_run = $node->safe_psql('old', q{SELECT agentorch.start('{"prompt": "trace me"}', 'simple', NULL, '{"model": "mock"}')});
$node->safe_psql('old', 'ALTER EXTENSION agentorch UPDATE');
is(poll_until("SELECT status FROM agentorch.runs WHERE id = $old_run", 'succeeded', 'old'), 'succeeded',
	'the run started on 0.1.0 finishes after the update');
is($node->safe_psql('old', "SELECT bool_and(s->>'traceId' ~ '^[0-9a-f]{32}\$' AND s->>'spanId' ~ '^[0-9a-f]{16}\$') "
	  . "FROM jsonb_array_elements(agentorch.trace($old_run)->'resourceSpans'->0->'scopeSpans'->0->'spans') s"),
	't', 'trace() of a run started on 0.1.0 has a valid trace id and span ids after the update');

$node->stop;
done_testing();
