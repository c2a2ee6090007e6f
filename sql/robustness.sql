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
