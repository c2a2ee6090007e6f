-- Execution engine: large tool results. A sql tool or database.query may
-- return up to agentorch.max_result_rows rows (10000 by default); more fail
-- the step. Last in the schedule: a result of this size once crashed the
-- executor (the row array outlived the memory it was built in).

CREATE SCHEMA eng_r;
CREATE TABLE eng_r.numbers AS SELECT g AS n, 'row ' || g AS label FROM generate_series(1, 10001) g;
CREATE FUNCTION eng_r.big(input jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT jsonb_agg(jsonb_build_object('n', g, 'label', 'row ' || g)) FROM generate_series(1, (input->>'n')::int) g $$;
SELECT agentorch.register_tool('eng_r.first', 'sql',
  '{"sql": "SELECT n, label FROM eng_r.numbers WHERE n <= $1 ORDER BY n", "params": ["n"]}');
SELECT agentorch.register_tool('eng_r.big', 'function', '{"function": "eng_r.big"}');
SELECT agentorch.register_workflow('eng_r-sql', '{"steps": [
  {"id": "rows", "type": "tool", "tool": "eng_r.first", "input": {"n": "${input.n}"}, "retry": {"max_attempts": 1}}]}');
-- database.query runs only literal queries: one workflow per query
CREATE FUNCTION eng_r.query_workflow(q text) RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT x.n FROM (SELECT 'eng_r-q-' || left(md5(q), 8) AS n) x,
         LATERAL agentorch.register_workflow(x.n, jsonb_build_object('steps', jsonb_build_array(
             '{"id": "rows", "type": "tool", "tool": "database.query", "retry": {"max_attempts": 1}}'::jsonb
             || jsonb_build_object('input', jsonb_build_object('query', q))))) v
$$;
SELECT agentorch.register_workflow('eng_r-function', '{"steps": [
  {"id": "rows", "type": "tool", "tool": "eng_r.big", "input": {"n": "${input.n}"}}]}');
SELECT current_setting('agentorch.max_result_rows') AS max_result_rows;

-- 10000 rows: at the limit, accepted (first a wide result of some megabytes)
SELECT eng_r.query_workflow('SELECT g, repeat(''x'', 200) AS pad FROM generate_series(1, 10000) g') AS wf \gset
SELECT agentorch.run_workflow(:'wf') AS r \gset
SELECT status, jsonb_array_length(output->'rows') AS rows, error FROM agentorch.wait(:r, '30s');
SELECT sum((e->>'g')::int) AS sum_g, min(length(e->>'pad')) AS min_pad, max(length(e->>'pad')) AS max_pad
  FROM agentorch.runs, jsonb_array_elements(output->'rows') e WHERE id = :r;
SELECT eng_r.query_workflow('SELECT g FROM generate_series(1, 10000) g') AS wf \gset
SELECT agentorch.run_workflow(:'wf') AS r \gset
SELECT status, jsonb_array_length(output->'rows') AS rows, output->'rows'->9999 AS last, error
  FROM agentorch.wait(:r, '30s');
SELECT (SELECT sum((e->>'g')::int) FROM jsonb_array_elements(output->'rows') e) AS sum_g
  FROM agentorch.runs WHERE id = :r;
SELECT agentorch.run_workflow('eng_r-sql', '{"n": 10000}') AS r \gset
SELECT status, jsonb_array_length(output->'rows') AS rows, output->'rows'->0 AS first, output->'rows'->9999 AS last
  FROM agentorch.wait(:r, '30s');
SELECT (SELECT sum((e->>'n')::int) FROM jsonb_array_elements(output->'rows') e) AS sum_n
  FROM agentorch.runs WHERE id = :r;
SELECT eng_r.query_workflow('SELECT n, label FROM eng_r.numbers WHERE n <= 10000 ORDER BY n') AS wf \gset
SELECT agentorch.run_workflow(:'wf') AS r \gset
SELECT status, jsonb_array_length(output->'rows') AS rows, output->'rows'->9999 AS last
  FROM agentorch.wait(:r, '30s');

-- a function tool's large result (no row limit)
SELECT agentorch.run_workflow('eng_r-function', '{"n": 20000}') AS r \gset
SELECT status, jsonb_array_length(output->'rows') AS rows, output->'rows'->19999 AS last
  FROM agentorch.wait(:r, '30s');

-- 10001 rows: over the limit, the step fails
SELECT agentorch.run_workflow('eng_r-sql', '{"n": 10001}') AS r \gset
SELECT status, error->>'message' AS message FROM agentorch.wait(:r, '30s');
SELECT eng_r.query_workflow('SELECT n FROM eng_r.numbers') AS wf \gset
SELECT agentorch.run_workflow(:'wf') AS r \gset
SELECT status, error->>'message' AS message FROM agentorch.wait(:r, '30s');

-- deeply nested values: 40 levels are rendered into the next step's input;
-- past the nesting limit the step that renders it fails (its own failure,
-- under its retry contract) and other runs are not held up
SELECT agentorch.register_workflow('eng_r-deep', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query",
   "input": {"query": "SELECT (repeat(''['', $1::int) || ''1'' || repeat('']'', $1::int))::jsonb AS v", "params": ["${input.depth}"]}},
  {"id": "use", "type": "tool", "tool": "database.query", "depends_on": ["q"], "retry": {"max_attempts": 2},
   "input": {"query": "SELECT jsonb_typeof($1::jsonb) AS t", "params": ["${q.output}"]}}]}');
SELECT agentorch.run_workflow('eng_r-deep', '{"depth": 40}') AS d40 \gset
SELECT agentorch.run_workflow('eng_r-deep', '{"depth": 12000}') AS d12k \gset
SELECT agentorch.run_workflow('eng_r-sql', '{"n": 3}') AS other \gset
SELECT status, output FROM agentorch.wait(:d40, '30s');
SELECT status, error->>'message' AS message, error->'error'->>'sqlstate' AS sqlstate FROM agentorch.wait(:d12k, '30s');
SELECT step_id, status, attempt FROM agentorch.steps WHERE run_id = :d12k ORDER BY step_id;
SELECT status, jsonb_array_length(output->'rows') AS rows FROM agentorch.wait(:other, '30s');

-- clean up
DELETE FROM agentorch.runs WHERE workflow_name LIKE 'eng\_r-%';
DELETE FROM agentorch.workflows WHERE name LIKE 'eng\_r-%';
DELETE FROM agentorch.tools WHERE name LIKE 'eng\_r.%';
DROP SCHEMA eng_r CASCADE;
