-- Robustness of the SQL surface: bounded inputs, exact numbers, clear
-- errors for what a new user gets wrong. Nothing here may crash, hang or
-- exhaust memory.

-- a YAML alias bomb: 299 KB that would expand to about 200 MB is refused
SELECT agentorch.yaml_to_jsonb('a: &a ' || repeat('x', 2000) || E'\nb: [' || rtrim(repeat('*a,', 99000), ',') || ']');
-- ... while aliases within the limit expand
SELECT agentorch.yaml_to_jsonb(E'a: &a [1, 2]\nb: *a\nc: *a');

-- JSON Schema numbers are compared exactly (each of these is false)
SELECT agentorch.is_valid_json('100000000000000000000000', '{"maximum": 1e20}') AS big_over_max,
       agentorch.is_valid_json('1.5e300', '{"maximum": 1e300}') AS huge_over_max,
       agentorch.is_valid_json('18446744073709551617', '{"const": 18446744073709551616}') AS const_2_64,
       agentorch.is_valid_json('1e-400', '{"maximum": 0}') AS tiny_positive;
SELECT agentorch.is_valid_json('1.0', '{"const": 1}') AS one_is_one,
       agentorch.is_valid_json('[1, 1.0]', '{"uniqueItems": true}') AS one_twice;

-- validation stays fast where it was quadratic or exponential, and under a
-- statement_timeout it could not ignore
SET statement_timeout = '20s';
SELECT agentorch.is_valid_json(
         (SELECT jsonb_agg(g) FROM generate_series(1, 30000) g) || '[1]'::jsonb,
         '{"uniqueItems": true}') AS thirty_thousand_unique;
SELECT count(*) AS problems FROM agentorch.validate_json(
         (SELECT jsonb_object_agg(repeat('a', 30) || 'b' || g, g) FROM generate_series(1, 60) g),
         '{"patternProperties": {"^(a+)+$": {"type": "string"}}}');
RESET statement_timeout;

-- a misspelt run option or an unknown model is refused at start()
SELECT agentorch.start('{"prompt": "hi"}', options => '{"modle": "fast"}');
SELECT agentorch.start('{"prompt": "hi"}', options => '{"model": "no-such-model"}');
SELECT agentorch.start('{"prompt": "hi", "model": "no-such-model"}');
SELECT count(*) AS runs_started FROM agentorch.runs WHERE input->>'prompt' = 'hi';

-- an llm step without a prompt says what is missing
SELECT * FROM agentorch.validate_workflow('{"steps": [{"id": "a", "type": "llm"}]}');

-- a simple run's input is checked as its llm step is: no shape the
-- executor does not expect gets through (these used to crash it)
SELECT agentorch.register_model('robust-m', 'openai', '{"base_url": "http://127.0.0.1:9/v1", "model": "m"}');
SELECT agentorch.start('{"prompt": "x", "model": "robust-m", "tools": "zzz"}');
SELECT agentorch.start('{"prompt": "x", "model": "robust-m", "tools": [null]}');
SELECT agentorch.start('{"prompt": "x", "model": "robust-m", "tools": [123]}');
SELECT agentorch.start('{"prompt": "x", "model": "robust-m", "tools": ["database.query"]}');
SELECT agentorch.start('{"prompt": 5, "messages": "hi"}');
SELECT agentorch.start('{"prompt": "x"}', options => '{"model": "robust-m", "tools": [1]}');
SELECT agentorch.start('{"prompt": "x"}', options => '{"model": "robust-m", "parent_id": 1}');
SELECT count(*) AS runs_started FROM agentorch.runs WHERE input->>'model' = 'robust-m' OR options->>'model' = 'robust-m';

-- agentorch.default_model is the starting session's: the run records it
-- (the executors run in sessions of their own)
SET agentorch.default_model = 'no-such-model';
SELECT agentorch.start('{"prompt": "which model?"}');
SET agentorch.default_model = 'robust-m';
SELECT agentorch.start('{"prompt": "which model?"}') AS r \gset
SELECT options->>'model' AS recorded_model FROM agentorch.runs WHERE id = :r;
SELECT status FROM agentorch.wait(:r, '30s');
RESET agentorch.default_model;
DELETE FROM agentorch.runs WHERE id = :r;
DELETE FROM agentorch.models WHERE name = 'robust-m';

-- start_many: one run per input, in order, each as start() makes it
SELECT agentorch.register_workflow('robust-many', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query", "input": {"query": "SELECT $1::int * 2 AS doubled", "params": ["${input.n}"]}}]}');
SELECT array_agg(id ORDER BY id) = array_agg(id) AS in_order, count(*) AS runs
  FROM agentorch.start_many(ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[], 'fixed', 'robust-many') id;
SELECT w.status, w.output FROM agentorch.runs r, LATERAL agentorch.wait(r.id, '30s') w
 WHERE r.workflow_name = 'robust-many' ORDER BY r.id;
SELECT agentorch.start_many(ARRAY['{"n": 1}']::jsonb[], 'fixed', 'robust-many', '{"idempotency_key": "k"}');
SELECT agentorch.start_many(ARRAY['{"n": 1}', NULL]::jsonb[], 'fixed', 'robust-many');
DELETE FROM agentorch.runs WHERE workflow_name = 'robust-many';
DELETE FROM agentorch.workflows WHERE name = 'robust-many';

-- what a run is made of when it starts, start() or start_many() alike: its
-- steps (defaults merged, branch targets depending on their branch, retry
-- limits from the step, the tool's policy or the setting, what is network
-- work, ready when it depends on nothing), its first event and chunk, its
-- audit row. Read before commit, so no executor has touched them yet.
SELECT agentorch.register_tool('robust_many.http', 'http', '{"url": "http://127.0.0.1:9/x"}',
                               policy => '{"retry": {"max_attempts": 5}}');
SELECT agentorch.register_workflow('robust-shape', '{"defaults": {"timeout": "7s"}, "memory": {"k": 1}, "steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}, "retry": {"max_attempts": 2}},
  {"id": "b", "type": "branch", "depends_on": ["a"], "cases": [{"when": "$.steps.a.output.x == 1", "then": ["c"]}], "else": ["d"]},
  {"id": "c", "type": "tool", "tool": "robust_many.http"},
  {"id": "d", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 2"}},
  {"id": "e", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 3"}}]}');
BEGIN;
SELECT agentorch.start('{"n": 0}', 'fixed', 'robust-shape', '{"priority": 3}') AS one \gset
SELECT count(*) AS many FROM agentorch.start_many(ARRAY['{"n": 1}', '{"n": 2}']::jsonb[], 'fixed', 'robust-shape', '{"priority": 3}');
SELECT r.id - :one AS run, r.status, r.orchestration, r.workflow_version, r.input, r.memory, r.priority,
       r.last_event_seq, r.last_chunk_seq, r.tools ? 'robust_many.http' AS pinned, r.started_at IS NOT NULL AS started,
       length(r.trace_id) AS trace_len
  FROM agentorch.runs r WHERE r.workflow_name = 'robust-shape' ORDER BY r.id;
SELECT s.run_id - :one AS run, s.step_id, s.kind, s.status, s.depends_on, s.ord, s.priority, s.max_attempts, s.network,
       s.spec->>'timeout' AS timeout
  FROM agentorch.steps s JOIN agentorch.runs r ON r.id = s.run_id
 WHERE r.workflow_name = 'robust-shape' ORDER BY s.run_id, s.ord;
SELECT e.run_id - :one AS run, e.seq, e.kind, e.data FROM agentorch.events e JOIN agentorch.runs r ON r.id = e.run_id
 WHERE r.workflow_name = 'robust-shape' ORDER BY e.run_id, e.seq;
SELECT c.run_id - :one AS run, c.seq, c.kind, c.content, c.data FROM agentorch.chunks c JOIN agentorch.runs r ON r.id = c.run_id
 WHERE r.workflow_name = 'robust-shape' ORDER BY c.run_id, c.seq;
SELECT a.run_id - :one AS run, a.action, a.object, a.detail, a.actor = (SELECT oid FROM pg_roles WHERE rolname = current_user) AS by_caller
  FROM agentorch.audit_log a JOIN agentorch.runs r ON r.id = a.run_id
 WHERE r.workflow_name = 'robust-shape' ORDER BY a.run_id;
ROLLBACK;
-- simple runs started together each get their own step from their own input
BEGIN;
SELECT agentorch.register_model('robust-m2', 'openai', '{"base_url": "http://127.0.0.1:9/v1", "model": "m"}');
CREATE TEMP TABLE robust_many_ids AS
SELECT id, row_number() OVER () AS n
  FROM agentorch.start_many(ARRAY['{"prompt": "one", "model": "robust-m2"}', '{"prompt": "two", "system": "be brief", "model": "robust-m2"}']::jsonb[], 'simple') id;
SELECT m.n, s.step_id, s.kind, s.status, s.network, s.spec
  FROM robust_many_ids m JOIN agentorch.steps s ON s.run_id = m.id ORDER BY m.id;
-- an empty array starts nothing
SELECT count(*) FROM agentorch.start_many(ARRAY[]::jsonb[], 'simple');
ROLLBACK;
DELETE FROM agentorch.workflows WHERE name = 'robust-shape';
SELECT agentorch.drop_tool('robust_many.http');

-- siblings claimed together: a success before a sibling's failure is
-- recorded as a success (with its output, before the failure in the event
-- stream), the failure fails the run, and a later sibling is cancelled
SELECT agentorch.register_workflow('robust-siblings', '{"steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1 AS one"}},
  {"id": "b", "type": "tool", "tool": "database.query", "input": {"query": "SELECT * FROM no_such_table"}, "retry": {"max_attempts": 1}},
  {"id": "c", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 3 AS three"}}]}');
SELECT agentorch.run_workflow('robust-siblings') AS sib \gset
SELECT status FROM agentorch.wait(:sib, '30s');
SELECT step_id, status, attempt, output IS NOT NULL AS has_output, input IS NOT NULL AS has_input,
       started_at IS NOT NULL AS started
  FROM agentorch.steps WHERE run_id = :sib ORDER BY step_id;
SELECT seq, kind, step_id FROM agentorch.events WHERE run_id = :sib ORDER BY seq;
SELECT count(*) = max(seq) AS gap_free FROM agentorch.chunks WHERE run_id = :sib;
DELETE FROM agentorch.runs WHERE id = :sib;
DELETE FROM agentorch.workflows WHERE name = 'robust-siblings';

-- a claim takes a run's ready steps together (steps_ready's order): in the
-- transaction that started three fan-out runs (no executor can see them),
-- work(10) runs the first run's ten steps, not the first steps of all three
SELECT agentorch.register_workflow('robust-fan', jsonb_build_object('steps',
  (SELECT jsonb_agg(jsonb_build_object('id', 's' || i, 'type', 'tool', 'tool', 'database.query',
                                       'input', jsonb_build_object('query', 'SELECT ' || i || ' AS n')))
     FROM generate_series(1, 10) i)));
BEGIN;
SELECT min(id) AS fan FROM (SELECT agentorch.run_workflow('robust-fan') AS id FROM generate_series(1, 3)) x \gset
SELECT agentorch.work(10) AS steps_done;
SELECT r.id - :fan AS run, r.status, count(*) FILTER (WHERE s.status = 'succeeded') AS succeeded
  FROM agentorch.runs r JOIN agentorch.steps s ON s.run_id = r.id
 WHERE r.workflow_name = 'robust-fan' GROUP BY r.id, r.status ORDER BY r.id;
ROLLBACK;
DELETE FROM agentorch.workflows WHERE name = 'robust-fan';

-- selecting over messages whose role is not a string does not crash
SELECT orchestration, source FROM agentorch.select('{"messages": [{"role": null, "content": "x"}]}');
SELECT agentorch.start('{"messages": [{"role": null, "content": "x"}]}');
SELECT orchestration FROM agentorch.select('{"messages": [null, 5, {"role": 7}]}');

-- the state machines refuse a transition they do not have, whoever writes it
-- (an internal error naming it; nothing changes)
SELECT agentorch.register_workflow('robust-transitions', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1 AS one"}}]}');
SELECT agentorch.run_workflow('robust-transitions') AS tr \gset
SELECT status FROM agentorch.wait(:tr, '30s');
\set VERBOSITY terse
UPDATE agentorch.steps SET status = 'running' WHERE run_id = :tr AND step_id = 'q';
UPDATE agentorch.steps SET status = 'pending' WHERE run_id = :tr AND step_id = 'q';
UPDATE agentorch.runs SET status = 'running' WHERE id = :tr;
UPDATE agentorch.runs SET status = 'waiting' WHERE id = :tr;
\set VERBOSITY default
SELECT r.status, s.status AS step_status FROM agentorch.runs r JOIN agentorch.steps s ON s.run_id = r.id WHERE r.id = :tr;
-- an allowed one goes through (a succeeded step may become compensated)
BEGIN;
UPDATE agentorch.steps SET status = 'compensated' WHERE run_id = :tr AND step_id = 'q';
ROLLBACK;
DELETE FROM agentorch.runs WHERE id = :tr;
DELETE FROM agentorch.workflows WHERE name = 'robust-transitions';

-- a step's output_schema binds its output: a violation fails the step with the problems
SELECT agentorch.register_workflow('robust-output-schema', '{"steps": [
  {"id": "ok", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1 AS one"},
   "output_schema": {"type": "array", "items": {"type": "object", "required": ["one"]}}},
  {"id": "bad", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1 AS one"}, "depends_on": ["ok"],
   "output_schema": {"type": "array", "items": {"type": "object", "required": ["two"]}}}]}');
SELECT agentorch.run_workflow('robust-output-schema') AS os \gset
SELECT status, error->>'message' AS message FROM agentorch.wait(:os, '30s');
SELECT step_id, status, error->>'message' AS message, error->>'detail' AS detail, output
  FROM agentorch.steps WHERE run_id = :os ORDER BY step_id;
DELETE FROM agentorch.runs WHERE id = :os;
DELETE FROM agentorch.workflows WHERE name = 'robust-output-schema';

-- the state layer writes a new run's rows in C (create.c), and with an
-- idempotency key through _create_runs (plpgsql, for its ON CONFLICT):
-- both make the same rows, for every kind of run and option. Parts that
-- differ are listed (none expected).
BEGIN;
SELECT agentorch.register_tool('robust_eq.http', 'http', '{"url": "http://127.0.0.1:9/x"}',
                               policy => '{"retry": {"max_attempts": 5}}');
SELECT agentorch.register_workflow('robust-eq', '{"defaults": {"timeout": "7s"}, "memory": {"k": 1}, "steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}, "retry": {"max_attempts": 2}},
  {"id": "b", "type": "branch", "depends_on": ["a"], "cases": [{"when": "$.steps.a.output.x == 1", "then": ["c"]}], "else": ["d"]},
  {"id": "c", "type": "tool", "tool": "robust_eq.http"},
  {"id": "d", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 2"}},
  {"id": "e", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 3"},
   "compensate": {"tool": "database.query", "input": {"query": "SELECT 4"}}}]}');
SELECT agentorch.register_model('robust-m3', 'openai', '{"base_url": "http://127.0.0.1:9/v1", "model": "m"}');
CREATE FUNCTION pg_temp.robust_rows(p bigint) RETURNS jsonb LANGUAGE sql AS $$
SELECT jsonb_build_object(
  'run', (SELECT to_jsonb(r) - '{id,idempotency_key,channel_token,options,trace_id}'::text[]
                 || jsonb_build_object('options', r.options - 'idempotency_key',
                                       -- the caller's trace id, else a new one
                                       'trace_id', CASE WHEN r.options ? 'traceparent' THEN r.trace_id
                                                        ELSE (r.trace_id ~ '^[0-9a-f]{32}$')::text END)
            FROM agentorch.runs r WHERE r.id = p),
  'steps', (SELECT jsonb_agg(to_jsonb(s) - 'run_id' ORDER BY s.ord) FROM agentorch.steps s WHERE s.run_id = p),
  'events', (SELECT jsonb_agg(to_jsonb(e) - '{run_id,at}'::text[] ORDER BY e.seq) FROM agentorch.events e WHERE e.run_id = p),
  'chunks', (SELECT jsonb_agg(to_jsonb(c) - '{run_id,at}'::text[] ORDER BY c.seq) FROM agentorch.chunks c WHERE c.run_id = p),
  'checkpoints', (SELECT jsonb_agg(to_jsonb(c) - '{run_id,at}'::text[] ORDER BY c.seq) FROM agentorch.checkpoints c WHERE c.run_id = p),
  'audit', (SELECT jsonb_agg(to_jsonb(a) - '{id,at,run_id}'::text[] ORDER BY a.id) FROM agentorch.audit_log a WHERE a.run_id = p))
$$;
CREATE TEMP TABLE robust_pairs (what text, input jsonb, orchestration agentorch.orchestration_type, workflow text, options jsonb);
INSERT INTO robust_pairs VALUES
  ('fixed, branches and options', '{"n": 0}', 'fixed', 'robust-eq',
   '{"priority": 3, "timeout": "1h", "metadata": {"team": "t"}, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}'),
  ('fixed, no options', '{"n": 1}', 'fixed', 'robust-eq', '{}'),
  ('simple', '{"prompt": "p", "system": "s"}', 'simple', NULL, '{"model": "robust-m3"}'),
  ('simple, messages', '{"messages": [{"role": "user", "content": "hi"}], "model": "robust-m3"}', 'simple', NULL, '{}'),
  ('planner with a budget', '{"prompt": "plan it"}', 'planner', NULL, '{"model": "robust-m3", "budget": {"max_tokens": 1}}'),
  ('selected', '{"prompt": "choose"}', NULL, NULL, '{"model": "robust-m3"}');
SELECT p.what, d.part
  FROM robust_pairs p,
       LATERAL (SELECT agentorch.start(p.input, p.orchestration, p.workflow, p.options) AS c,
                       agentorch.start(p.input, p.orchestration, p.workflow,
                                       p.options || jsonb_build_object('idempotency_key', 'robust-' || p.what)) AS s) ids,
       LATERAL (SELECT a.k AS part FROM jsonb_each(pg_temp.robust_rows(ids.c)) a(k, v)
                  JOIN jsonb_each(pg_temp.robust_rows(ids.s)) b(k, v) ON a.k = b.k
                 WHERE a.v IS DISTINCT FROM b.v) d;
-- a run pins each tool as it is defined, with the md5 of that definition
SELECT bool_and(r.tools = (SELECT COALESCE(jsonb_object_agg(t.name, d || jsonb_build_object('hash', md5(d::text))), '{}')
                             FROM agentorch.tools t,
                                  LATERAL (SELECT jsonb_build_object('kind', t.kind, 'spec', t.spec, 'input_schema', t.input_schema,
                                                                     'policy', t.policy, 'owner', t.owner,
                                                                     'search_path', t.search_path) AS d) x
                            WHERE r.tools ? t.name)) AS pinned_as_defined,
       count(*) FILTER (WHERE r.tools ? 'robust_eq.http') AS with_the_http_tool
  FROM agentorch.runs r JOIN robust_pairs p ON r.input = p.input;
SELECT count(DISTINCT r.id) AS runs_compared, count(s.step_id) AS steps_compared,
       count(DISTINCT r.id) FILTER (WHERE r.idempotency_key IS NULL) AS written_in_c
  FROM agentorch.runs r JOIN robust_pairs p ON r.input = p.input
  LEFT JOIN agentorch.steps s ON s.run_id = r.id;
ROLLBACK;

-- the executors record what their steps did in C (finish.c: successes,
-- promotion, settling) and leave what is past the common case to the
-- plpgsql state functions; with agentorch.state_sql_only every outcome goes
-- through plpgsql. Both make the same rows. The runs are executed here by
-- work(), in this transaction (the executors cannot see them); parts that
-- differ are listed (none expected).
BEGIN;
SELECT agentorch.register_workflow('robust-done', '{"memory": {"k": 1}, "steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1 AS x"}},
  {"id": "b", "type": "tool", "tool": "database.query", "depends_on": ["a"],
   "input": {"query": "SELECT $1::int AS n", "params": ["${input.n}"]}},
  {"id": "c", "type": "tool", "tool": "database.query", "depends_on": ["a"], "input": {"query": "SELECT 3 AS c"}},
  {"id": "d", "type": "tool", "tool": "database.query", "depends_on": ["b", "c"], "input": {"query": "SELECT 4 AS d"}},
  {"id": "br", "type": "branch", "depends_on": ["d"],
   "cases": [{"when": "$.steps.b.output[0].n == 1", "then": ["e"]}], "else": ["f"]},
  {"id": "e", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 5 AS e"}},
  {"id": "f", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 6 AS f"}},
  {"id": "g", "type": "tool", "tool": "database.query", "depends_on": ["f"], "input": {"query": "SELECT 7 AS g"}},
  {"id": "h", "type": "tool", "tool": "database.query", "depends_on": ["e", "g"], "input": {"query": "SELECT 8 AS h"}},
  {"id": "o", "type": "tool", "tool": "database.query", "depends_on": ["h"], "input": {"query": "SELECT 9 AS o"},
   "output_schema": {"type": "array"}},
  {"id": "p", "type": "parallel", "depends_on": ["a"], "steps": [
    {"id": "p1", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 10 AS p"}},
    {"id": "p2", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 11 AS p"}}]},
  {"id": "l", "type": "loop", "depends_on": ["p"], "for_each": "${input.items}",
   "step": {"id": "body", "type": "tool", "tool": "database.query",
            "input": {"query": "SELECT $1::text AS item", "params": ["${item}"]}}},
  {"id": "z", "type": "tool", "tool": "database.query", "depends_on": ["o", "l"], "input": {"query": "SELECT 12 AS z"}}]}');
SELECT agentorch.register_workflow('robust-done-fail', '{"steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1 AS a"},
   "compensate": {"tool": "database.query", "input": {"query": "SELECT 2 AS undo"}}},
  {"id": "b", "type": "tool", "tool": "database.query", "depends_on": ["a"], "input": {"query": "SELECT 1 / 0"},
   "retry": {"max_attempts": 2, "backoff": {"initial": "1ms", "jitter": 0}}},
  {"id": "c", "type": "tool", "tool": "database.query", "depends_on": ["b"], "input": {"query": "SELECT 3"}}]}');
SELECT agentorch.register_workflow('robust-done-ask', '{"steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1 AS a"}},
  {"id": "ask", "type": "user_input", "depends_on": ["a"], "prompt": "go on?"},
  {"id": "b", "type": "tool", "tool": "database.query", "depends_on": ["ask"], "input": {"query": "SELECT 2 AS b"}}]}');
SELECT agentorch.register_workflow('robust-done-fan', jsonb_build_object('steps',
  (SELECT jsonb_agg(jsonb_build_object('id', 's' || i, 'type', 'tool', 'tool', 'database.query',
                                       'input', jsonb_build_object('query', 'SELECT ' || i || ' AS i')) ORDER BY i)
     FROM generate_series(1, 12) i)));
SELECT agentorch.register_workflow('robust-done-out', '{"output": {"first": "${a.output}", "n": "${input.n}"}, "steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1 AS a"}},
  {"id": "b", "type": "tool", "tool": "database.query", "depends_on": ["a"], "input": {"query": "SELECT 2 AS b"}}]}');
-- steps made ready together whose ids sort otherwise than their places
SELECT agentorch.register_workflow('robust-done-order', '{"steps": [
  {"id": "root", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 0 AS r"}},
  {"id": "z", "type": "tool", "tool": "database.query", "depends_on": ["root"], "input": {"query": "SELECT 1 AS z"}},
  {"id": "a2", "type": "tool", "tool": "database.query", "depends_on": ["root"], "input": {"query": "SELECT 2 AS a"}}]}');
-- a fan-out past sixteen places, started after a chain in the same transaction
-- (which then takes no step of the chain's again: runs are locked in id order)
SELECT agentorch.register_workflow('robust-done-fan20', jsonb_build_object('steps',
  jsonb_build_array(jsonb_build_object('id', 'root', 'type', 'tool', 'tool', 'database.query',
                                       'input', jsonb_build_object('query', 'SELECT 0 AS r')))
  || (SELECT jsonb_agg(jsonb_build_object('id', 'c' || lpad(i::text, 2, '0'), 'type', 'tool', 'tool', 'database.query',
                                          'depends_on', jsonb_build_array('root'),
                                          'input', jsonb_build_object('query', 'SELECT ' || i || ' AS i')) ORDER BY i)
        FROM generate_series(1, 20) i)
  || jsonb_build_array(jsonb_build_object('id', 'end', 'type', 'tool', 'tool', 'database.query',
                                          'depends_on', (SELECT jsonb_agg('c' || lpad(i::text, 2, '0')) FROM generate_series(1, 20) i),
                                          'input', jsonb_build_object('query', 'SELECT 21 AS e')))));
SELECT agentorch.register_workflow('robust-done-chain2', '{"steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1 AS a"}},
  {"id": "b", "type": "tool", "tool": "database.query", "depends_on": ["a"], "input": {"query": "SELECT 2 AS b"}}]}');
CREATE FUNCTION pg_temp.robust_done_rows(p bigint) RETURNS jsonb LANGUAGE sql AS $$
SELECT jsonb_build_object(
  'run', (SELECT to_jsonb(r) - '{id,channel_token,trace_id,finished_at}'::text[] FROM agentorch.runs r WHERE r.id = p),
  'steps', (SELECT jsonb_agg(to_jsonb(s) - '{run_id,finished_at,not_before}'::text[] ORDER BY s.step_id)
              FROM agentorch.steps s WHERE s.run_id = p),
  'events', (SELECT jsonb_agg(to_jsonb(e) - '{run_id,at}'::text[] ORDER BY e.seq) FROM agentorch.events e WHERE e.run_id = p),
  'chunks', (SELECT jsonb_agg(to_jsonb(c) - '{run_id,at}'::text[] ORDER BY c.seq) FROM agentorch.chunks c WHERE c.run_id = p),
  'checkpoints', (SELECT jsonb_agg(to_jsonb(c) - '{run_id,at}'::text[] ORDER BY c.seq)
                    FROM agentorch.checkpoints c WHERE c.run_id = p))
$$;
CREATE TEMP TABLE robust_done (ord int, what text, input jsonb, workflow text, sql_run bigint, c_run bigint,
                               also text, sql_also bigint, c_also bigint, cancel_after int);
INSERT INTO robust_done (ord, what, input, workflow) VALUES
  (1, 'every shape, the branch''s case', '{"n": 1, "items": ["x", "y", "z"]}', 'robust-done'),
  (2, 'every shape, the branch''s else', '{"n": 2, "items": []}', 'robust-done'),
  (3, 'a failure after retries, compensated', '{}', 'robust-done-fail'),
  (4, 'waiting for input, then going on', '{}', 'robust-done-ask'),
  (5, 'a fan-out of twelve', '{}', 'robust-done-fan'),
  (6, 'an output template', '{"n": 6}', 'robust-done-out'),
  (7, 'steps whose ids sort otherwise than their places', '{}', 'robust-done-order');
INSERT INTO robust_done (ord, what, input, workflow, also) VALUES
  (8, 'a chain, then a fan-out past sixteen places', '{}', 'robust-done-chain2', 'robust-done-fan20');
INSERT INTO robust_done (ord, what, input, workflow, cancel_after) VALUES
  (9, 'a fan-out cancelled after two steps', '{}', 'robust-done-fan20', 2);
-- each run (and the one started beside it) is worked to its end before the
-- next (a transaction claims runs in id order), first all through plpgsql,
-- then again
CREATE FUNCTION pg_temp.robust_done_runs(p_sql_only boolean) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    d record;
    r bigint;
    r2 bigint;
BEGIN
    PERFORM set_config('agentorch.state_sql_only', p_sql_only::text, true);
    FOR d IN SELECT * FROM robust_done ORDER BY ord LOOP
        r := agentorch.run_workflow(d.workflow, d.input);
        r2 := CASE WHEN d.also IS NOT NULL THEN agentorch.run_workflow(d.also) END;
        PERFORM agentorch.work(COALESCE(d.cancel_after, 1000), '5s');
        IF d.cancel_after IS NOT NULL THEN
            PERFORM agentorch.cancel(r);
        END IF;
        IF d.workflow = 'robust-done-ask' THEN
            PERFORM agentorch.submit_input(r, 'ask', '"yes"');
            PERFORM agentorch.work(1000, '5s');
        END IF;
        IF p_sql_only THEN
            UPDATE robust_done SET sql_run = r, sql_also = r2 WHERE ord = d.ord;
        ELSE
            UPDATE robust_done SET c_run = r, c_also = r2 WHERE ord = d.ord;
        END IF;
    END LOOP;
    PERFORM set_config('agentorch.state_sql_only', 'off', true);
END
$$;
SELECT pg_temp.robust_done_runs(true);
SELECT pg_temp.robust_done_runs(false);
SELECT d.what, r.workflow_name, r.status, count(s.step_id) AS steps,
       count(s.step_id) FILTER (WHERE s.status = 'succeeded') AS succeeded
  FROM robust_done d JOIN agentorch.runs r ON r.id IN (d.c_run, d.c_also)
  JOIN agentorch.steps s ON s.run_id = r.id GROUP BY d.ord, d.what, r.id, r.workflow_name, r.status ORDER BY d.ord, r.id;
SELECT d.what, p.sql_run = d.sql_also AS beside, x.part, x.sql_path, x.c_path
  FROM robust_done d,
       LATERAL (VALUES (d.sql_run, d.c_run), (d.sql_also, d.c_also)) p(sql_run, c_run),
       LATERAL (SELECT a.k AS part, a.v AS sql_path, b.v AS c_path
                  FROM jsonb_each(pg_temp.robust_done_rows(p.sql_run)) a(k, v)
                  JOIN jsonb_each(pg_temp.robust_done_rows(p.c_run)) b(k, v) ON a.k = b.k
                 WHERE a.v IS DISTINCT FROM b.v) x
 WHERE p.sql_run IS NOT NULL;
ROLLBACK;

-- a read-only transaction starts no run (as an INSERT would refuse)
SELECT agentorch.register_workflow('robust-ro', '{"steps": [{"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}}]}');
BEGIN READ ONLY;
SELECT agentorch.run_workflow('robust-ro');
ROLLBACK;
SELECT count(*) AS read_only_runs FROM agentorch.runs WHERE workflow_name = 'robust-ro';
DELETE FROM agentorch.workflows WHERE name = 'robust-ro';

-- run options a run could not hold are refused at start, clearly; a bad
-- input among many is named
SELECT agentorch.register_workflow('robust-opt', '{"steps": [{"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}}]}');
SELECT agentorch.run_workflow('robust-opt', options => '{"priority": 2147483648}');
SELECT agentorch.run_workflow('robust-opt', options => '{"timeout": "-5 minutes"}');
SELECT agentorch.run_workflow('robust-opt', options => '{"timeout": "178000000 years"}');
SELECT agentorch.start_many(ARRAY[['{"prompt": "a"}', '{"prompt": "b"}']]::jsonb[], 'simple');
SELECT agentorch.start_many(ARRAY['{"prompt": "a"}', '{"prompt": "b"}', '{"prompt": 3}']::jsonb[], 'simple');
SELECT count(*) AS refused_runs FROM agentorch.runs WHERE workflow_name = 'robust-opt' OR input->>'prompt' IN ('a', 'b');
DELETE FROM agentorch.workflows WHERE name = 'robust-opt';

-- what a start reads (its workflow, its tools) includes what the same
-- statement registered before it, as a query would
BEGIN;
SELECT agentorch.register_tool('robust_same.tool', 'sql', '{"sql": "SELECT 2 AS two"}') AS tool,
       agentorch.register_workflow('robust-same', '{"steps": [{"id": "a", "type": "tool", "tool": "robust_same.tool"}]}') AS version,
       agentorch.run_workflow('robust-same') > 0 AS started;
SELECT r.tools ? 'robust_same.tool' AS pinned, s.step_id, s.status FROM agentorch.runs r JOIN agentorch.steps s ON s.run_id = r.id
 WHERE r.workflow_name = 'robust-same';
ROLLBACK;

-- each run calls the tool as it pinned it, also when runs with another
-- definition of the same tool run in the same batch
BEGIN;
SELECT agentorch.register_tool('robust_pin.tool', 'sql', '{"sql": "SELECT 1 AS v"}') IS NOT NULL AS registered;
SELECT agentorch.register_workflow('robust-pin', '{"steps": [{"id": "a", "type": "tool", "tool": "robust_pin.tool"}]}') > 0 AS registered;
SELECT agentorch.run_workflow('robust-pin', '{"n": 1}') > 0 AS first_v1, agentorch.run_workflow('robust-pin', '{"n": 2}') > 0 AS second_v1;
SELECT agentorch.register_tool('robust_pin.tool', 'sql', '{"sql": "SELECT 2 AS v"}') IS NOT NULL AS redefined;
SELECT agentorch.run_workflow('robust-pin', '{"n": 3}') > 0 AS third_v2;
SELECT agentorch.work(10, '5s') AS steps;
SELECT r.input->>'n' AS n, r.status, s.output FROM agentorch.runs r JOIN agentorch.steps s ON s.run_id = r.id
 WHERE r.workflow_name = 'robust-pin' ORDER BY r.id;
ROLLBACK;

-- runs of several workflows closed together: each gets its own workflow's
-- output (a template, or its steps' outputs)
BEGIN;
SELECT agentorch.register_workflow('robust-close-plain', '{"steps": [{"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1 AS a"}}]}') AS v1,
       agentorch.register_workflow('robust-close-tmpl', '{"output": {"got": "${a.output}"}, "steps": [{"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 2 AS a"}}]}') AS v2;
SELECT agentorch.run_workflow('robust-close-plain') > 0 AS plain, agentorch.run_workflow('robust-close-tmpl') > 0 AS tmpl,
       agentorch.run_workflow('robust-close-plain') > 0 AS plain_again;
SELECT agentorch.work(10, '5s') AS steps;
SELECT workflow_name, status, output FROM agentorch.runs WHERE workflow_name LIKE 'robust-close-%' ORDER BY id;
ROLLBACK;

-- a step cannot run steps itself (work() from a tool: its own claim would
-- take the steps its batch holds, its own included, and run them inside
-- themselves), nor cancel, resume or give input to a run whose steps its
-- batch holds (its own run included): the step fails with the reason,
-- the run ends failed, nothing else changes and nothing crashes
BEGIN;
SELECT agentorch.register_tool('robust_nest.work', 'sql', '{"sql": "SELECT agentorch.work(5, ''1s'') AS n"}');
SELECT agentorch.register_tool('robust_nest.cancel', 'sql',
       '{"sql": "SELECT agentorch.cancel(max(id)) AS c FROM agentorch.runs WHERE workflow_name = ''robust-nest-cancel''"}');
SELECT agentorch.register_workflow('robust-nest-work', '{"steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}},
  {"id": "n", "type": "tool", "tool": "robust_nest.work", "retry": {"max_attempts": 1}}]}');
SELECT agentorch.register_workflow('robust-nest-cancel', '{"steps": [
  {"id": "c", "type": "tool", "tool": "robust_nest.cancel", "retry": {"max_attempts": 1}},
  {"id": "b", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}}]}');
SELECT agentorch.run_workflow('robust-nest-work') > 0 AS started, agentorch.run_workflow('robust-nest-cancel') > 0 AS started;
SELECT agentorch.work(20, '2s') > 0 AS worked;
SELECT r.workflow_name, r.status, pg_catalog.regexp_replace(r.error->>'message', '\d+', 'N') AS error
  FROM agentorch.runs r WHERE r.workflow_name LIKE 'robust-nest-%' ORDER BY 1;
SELECT r.workflow_name, s.step_id, s.status, s.attempt
  FROM agentorch.runs r JOIN agentorch.steps s ON s.run_id = r.id
 WHERE r.workflow_name LIKE 'robust-nest-%' ORDER BY 1, 2;
ROLLBACK;
