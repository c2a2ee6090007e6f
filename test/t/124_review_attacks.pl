# What a role granted the external workers' functions (README, "External
# workers") can and cannot make the server do. Nothing here runs the worker
# program: one session of the worker's role calls the functions with the
# payloads a lying or broken worker could send.
#
#   * _worker_call_tools runs only tools the claimed llm step offers its
#     model: another tool the run pinned (for a tool step of its own) is
#     "unknown", and is not run;
#   * _worker_settle checks a structured reply against response_schema itself;
#   * _worker_settle writes a step's streamed chunks into that step only,
#     whatever run or step a batch names (no chunks in another role's run);
#   * _worker_fallback gives only the fallbacks of the step's model, not any
#     model's spec (which PUBLIC cannot read) to switch the step to;
#   * usage a worker reports never makes a run's tokens or cost go down;
#   * malformed jsonb arguments are errors, never a crashed backend;
#   * a claim skips the steps of a run someone holds locked (it waited for
#     the run while holding the step: a deadlock with a cancel or a settle).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

$PostgreSQL::Test::Utils::timeout_default = 60;

# network_steps = workers: the executors leave llm steps to workers, so the
# steps below stay ready until this test's "worker" claims them (and no
# request is ever sent: nothing listens at the model's URL)
my $node = llm_node('review_attacks', "agentorch.network_steps = 'workers'");
llm_start($node);

create_worker_role($node, 'aor_worker');
sql($node, q{
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE TABLE public.tool_calls (id serial PRIMARY KEY, tool text, who text);
GRANT INSERT ON public.tool_calls TO alice;
GRANT USAGE ON SEQUENCE public.tool_calls_id_seq TO alice;
CREATE FUNCTION public.t_offered(input jsonb) RETURNS jsonb LANGUAGE sql AS
  $$ INSERT INTO public.tool_calls (tool, who) VALUES ('offered', current_user) RETURNING jsonb_build_object('ok', true) $$;
CREATE FUNCTION public.t_hidden(input jsonb) RETURNS jsonb LANGUAGE sql AS
  $$ INSERT INTO public.tool_calls (tool, who) VALUES ('hidden', current_user) RETURNING jsonb_build_object('ok', true) $$;
SELECT agentorch.register_tool('t.offered', 'function', '{"function": "public.t_offered"}');
SELECT agentorch.register_tool('t.hidden', 'function', '{"function": "public.t_hidden"}');
SELECT agentorch.grant_tool(t, 'alice') FROM unnest(ARRAY['t.offered', 't.hidden']) t;
SELECT agentorch.register_model('m2', 'openai', '{"base_url": "http://127.0.0.1:9/v1", "model": "x2"}');
SELECT agentorch.register_model('other', 'openai', '{"base_url": "http://10.1.2.3/v1", "model": "secret-internal"}');
SELECT agentorch.register_model('m', 'openai', '{"base_url": "http://127.0.0.1:9/v1", "model": "x", "fallback": ["m2"]}');
});

# alice's workflow: the model is offered t.offered; t.hidden is a later tool
# step of the run's own (pinned by the run, never offered to the model)
sql_as($node, 'alice', q{SELECT agentorch.register_workflow('wf', '{"steps": [
  {"id": "ask", "type": "llm", "model": "m", "prompt": "hi", "tools": ["t.offered"]},
  {"id": "later", "type": "tool", "tool": "t.hidden", "depends_on": ["ask"], "input": {}}]}')});
my $arun = sql_as($node, 'alice', q{SELECT agentorch.run_workflow('wf', '{}', '{}')});

my $w = $node->background_psql('postgres', extra_params => [ '-U', 'aor_worker' ]);
my $wid = $w->query_safe(q{SELECT agentorch._worker_register('evil', 'h', 1)->>'worker_id'});
my $claimed = $w->query_safe(
	q{SELECT string_agg((e->>'run_id') || '/' || (e->>'step_id') || '/' || (e->>'attempt'), ',')
        FROM jsonb_array_elements(agentorch._worker_claim(} . $wid . q{, 'evil', 10, false)) e});
is($claimed, "$arun/ask/1", 'the worker claimed the llm step of alice\'s run');

# bob's run starts after the claim: its step stays ready, not the worker's
my $brun = start_run($node, { prompt => 'bob private' }, { model => 'm' }, 'bob');

# ------------------------------------------------------------- tool calls
my $res = $w->query_safe(qq{SELECT string_agg((r->>'name') || '=' || (r->>'ok'), ',' ORDER BY r->>'name')
  FROM jsonb_array_elements(agentorch._worker_call_tools($arun, 'ask', 1,
       '[{"id": "1", "name": "t.hidden", "arguments": {}}, {"id": "2", "name": "t.offered", "arguments": {}}]')) r});
is($res, 't.hidden=false,t.offered=true', 'tool calls: only the tool the step offers runs');
is(sql($node, q{SELECT string_agg(tool || ':' || who, ',' ORDER BY id) FROM public.tool_calls}), 'offered:alice',
	'tool calls: the pinned but not offered tool did not run; the offered one ran as the run\'s owner');

# ------------------------------------------------------------- fallbacks
is($w->query_safe(qq{SELECT agentorch._worker_fallback($arun, 'ask', 1, 'm2')->'model'->>'model'}), 'x2',
	'fallback: the step\'s model\'s fallback is given');
is($w->query_safe(qq{SELECT agentorch._worker_fallback($arun, 'ask', 1, 'other') IS NULL}), 't',
	'fallback: a model outside the step\'s fallbacks is not (nor its spec)');

# ------------------------------------------------------------- malformed arguments
for my $q (
	q{SELECT agentorch._worker_settle('[1, null, "x", {"run_id": "abc"}, {"run_id": 99999999999999999999}]')},
	q{SELECT agentorch._worker_settle('{"not": "an array"}')},
	q{SELECT agentorch._worker_heartbeat(1, '[[null, null, null], ["x"], 7]')},
	q{SELECT agentorch._worker_flush('[{"run_id": null}, {"run_id": "1", "step_id": {"a": 1}, "attempt": "z"}]')},
	qq{SELECT agentorch._worker_call_tools($arun, 'ask', 1, '[null, 1, "x", {"name": 5}, {"name": "t.offered", "arguments": [1]}]')},
	qq{SELECT agentorch._worker_call_tools($arun, 'ask', 1, '{"name": "t.offered"}')},
	qq{SELECT agentorch._worker_fallback($arun, 'ask', 1, repeat('x', 100000))},
	q{SELECT agentorch._worker_claim(2147483647, repeat('n', 100000), -5, true)},
	qq{SELECT agentorch._worker_call_tools($arun, 'ask', 1, jsonb_build_array(jsonb_build_object('name', 't.offered',
	   'arguments', (repeat('{"a": ', 5000) || '1' || repeat('}', 5000))::jsonb)))})
{
	my $r = psql_result($node, 'postgres', 'aor_worker', $q);
	ok(!crashed($node), "no crash: $q") or diag($r->{err});
}
ok($node->poll_query_until('postgres', 'SELECT true'), 'the server still answers');

# ------------------------------------------------------------- settle: chunks and usage
$res = $w->query_safe(qq{SELECT agentorch._worker_settle(jsonb_build_array(jsonb_build_object(
  'run_id', $arun, 'step_id', 'ask', 'attempt', 1, 'outcome', 'succeeded', 'output', 'done', 'policy', 1,
  'usage', '{"prompt_tokens": -1000000, "completion_tokens": -5, "cost": -99.5}'::jsonb,
  'chunks', jsonb_build_array(
     jsonb_build_object('run_id', $brun, 'step_id', 'evil', 'chunk_attempt', 1,
                        'kinds', '["token"]'::jsonb, 'contents', '["INJECTED"]'::jsonb, 'datas', '[null]'::jsonb)))))});
is($res, '{"lost": []}', 'settle: the step was the worker\'s');
is(sql($node, qq{SELECT count(*) FROM agentorch.chunks WHERE run_id = $brun AND content = 'INJECTED'}), '0',
	'settle: no chunk in another run');
is(sql($node, qq{SELECT string_agg(step_id, ',') FROM agentorch.chunks WHERE run_id = $arun AND content = 'INJECTED'}),
	'ask', 'settle: the batch went to the settled step');
is(sql($node, qq{SELECT prompt_tokens >= 0 AND completion_tokens >= 0 AND cost >= 0 FROM agentorch.runs WHERE id = $arun}),
	't', 'settle: negative usage does not lower the run\'s tokens or cost');
is(sql($node, qq{SELECT prompt_tokens >= 0 AND completion_tokens >= 0 AND cost >= 0 FROM agentorch.steps
                  WHERE run_id = $arun AND step_id = 'ask'}),
	't', 'settle: nor the step\'s');
is(sql($node, qq{SELECT status FROM agentorch.steps WHERE run_id = $brun}), 'ready', 'bob\'s step untouched');

# ------------------------------------------------------------- structured output is checked by the server
# A worker reporting success with output that does not match the step's
# response_schema does not make the step succeed.
sql_as($node, 'alice', q{SELECT agentorch.register_workflow('wfs', '{"steps": [
  {"id": "shape", "type": "llm", "model": "m", "prompt": "a number",
   "response_schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}}]}')});
my $srun = sql_as($node, 'alice', q{SELECT agentorch.run_workflow('wfs', '{}', '{}')});
is($w->query_safe(qq{SELECT count(*) FROM jsonb_array_elements(agentorch._worker_claim($wid, 'evil', 10, false)) e
                      WHERE (e->>'run_id')::bigint = $srun}), '1', 'structured: the worker claimed the step');
$w->query_safe(qq{SELECT agentorch._worker_settle(jsonb_build_array(jsonb_build_object(
  'run_id', $srun, 'step_id', 'shape', 'attempt', 1, 'outcome', 'succeeded', 'output', '{"n": "many"}'::jsonb)))});
is(sql($node, qq{SELECT status || ': ' || (error->>'message') FROM agentorch.steps WHERE run_id = $srun}),
	q{failed: the model's structured output does not match response_schema},
	'structured: an output that does not match response_schema fails the step');

# ------------------------------------------------------------- claim vs. a locked run
# Someone holds a run's lock (a cancel, a settle) and will update its steps:
# a claim must skip that run's steps, not hold one and wait for the run
# (a deadlock once the holder reaches the step).
my $arun2 = sql_as($node, 'alice', q{SELECT agentorch.run_workflow('wf', '{}', '{}')});
my $locker = $node->background_psql('postgres');
$locker->query_safe("BEGIN; SELECT agentorch._lock_run($arun2);");
my $out = eval { $w->query(qq{SET lock_timeout = '3s';
SELECT 'claimed:' || COALESCE(string_agg(e->>'run_id', ','), '')
  FROM jsonb_array_elements(agentorch._worker_claim($wid, 'evil', 10, false)) e}) };
like($out // '', qr/^claimed:/, 'claim: a locked run does not make the claim wait');
unlike($out // '', qr/\b$arun2\b/, 'claim: the locked run\'s step was skipped');
is($locker->query_safe("UPDATE agentorch.steps SET priority = priority WHERE run_id = $arun2 AND step_id = 'ask' RETURNING status"),
	'ready', 'claim: the lock holder updates the run\'s steps without waiting');
$locker->query_safe('ROLLBACK');
$locker->quit;

$w->quit;
ok(!crashed($node), 'no server process crashed');
$node->stop;
done_testing();
