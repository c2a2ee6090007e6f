-- Execution engine: every step kind, run by the background executors.
-- Runs are awaited with agentorch.wait(); nothing printed depends on run
-- ids, timestamps or on which executor ran what.

-- fixtures
CREATE SCHEMA eng_s;
CREATE TABLE eng_s.items (id int PRIMARY KEY, name text, price numeric, ok boolean, ratio float8,
                          big bigint, meta jsonb, doc json, born date);
INSERT INTO eng_s.items VALUES
  (1, 'apple', 1.50, true, 0.25, 9007199254740993, '{"tags": ["red"]}', '{"a": [1, 2]}', '2026-01-02'),
  (2, 'pear', 2, false, -1.5, 2, NULL, NULL, NULL),
  (3, 'plum', 3.10, NULL, 1e20, 3, '[1, "two", null]', '"text"', '2026-12-31');
CREATE TABLE eng_s.log (id int GENERATED ALWAYS AS IDENTITY, note text);
CREATE FUNCTION eng_s.echo(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
CREATE FUNCTION eng_s.upper_name(input jsonb) RETURNS text LANGUAGE sql
  AS $$ SELECT upper(input->>'name') $$;
CREATE FUNCTION eng_s.whoami(input jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT jsonb_build_object('current_user', current_user) $$;
-- wait until a run has finished (wait() also returns for runs waiting for input)
CREATE FUNCTION eng_s.finish(r bigint, t interval DEFAULT '20s') RETURNS agentorch.run_status
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    until timestamptz := clock_timestamp() + t;
    s agentorch.run_status;
BEGIN
    LOOP
        s := (agentorch.wait(r, '1s')).status;
        EXIT WHEN s IN ('succeeded', 'failed', 'cancelled') OR clock_timestamp() > until;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN s;
END
$$;
-- a step's row without what varies between runs
CREATE VIEW eng_s.steps AS
  SELECT run_id, step_id, kind, status, attempt, parent_step_id, iteration, output, error
    FROM agentorch.steps;

SELECT agentorch.register_tool('eng_s.items', 'sql',
  '{"sql": "SELECT * FROM eng_s.items WHERE id <= $1 ORDER BY id", "params": ["max"]}');
SELECT agentorch.register_tool('eng_s.by_name', 'sql',
  '{"sql": "SELECT id, name FROM eng_s.items WHERE name = $1 OR $2::boolean", "params": ["name", "all"]}');
SELECT agentorch.register_tool('eng_s.note', 'sql',
  '{"sql": "INSERT INTO eng_s.log (note) VALUES ($1)", "params": ["note"]}');
SELECT agentorch.register_tool('eng_s.reprice', 'sql',
  '{"sql": "UPDATE eng_s.items SET price = price * $1 WHERE id >= $2", "params": ["factor", "from"]}');
SELECT agentorch.register_tool('eng_s.echo', 'function', '{"function": "eng_s.echo"}');
SELECT agentorch.register_tool('eng_s.upper', 'function', '{"function": "eng_s.upper_name"}');
SELECT agentorch.register_tool('eng_s.whoami', 'function', '{"function": "eng_s.whoami"}');

-------------------------------------------------------------------------------
-- tool, kind sql: parameters bound from the input; rows become an array of
-- objects with typed numbers, booleans and JSON; other values as text
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_s-sql', '{"steps": [
  {"id": "rows", "type": "tool", "tool": "eng_s.items", "input": {"max": "${input.max}"}},
  {"id": "one", "type": "tool", "tool": "eng_s.by_name", "input": {"name": "${input.name}", "all": false}},
  {"id": "none", "type": "tool", "tool": "eng_s.by_name", "input": {"name": "nobody", "all": "false"}}]}');
SELECT agentorch.run_workflow('eng_s-sql', '{"max": 3, "name": "pear"}') AS r \gset
SELECT status, error FROM agentorch.wait(:r, '20s');
SELECT jsonb_pretty(output->'rows') AS typed_rows FROM agentorch.runs WHERE id = :r;
SELECT step_id, input, output FROM agentorch.steps WHERE run_id = :r AND step_id <> 'rows' ORDER BY step_id;
SELECT jsonb_typeof(e->'id') AS id, jsonb_typeof(e->'price') AS price, jsonb_typeof(e->'ok') AS ok,
       jsonb_typeof(e->'ratio') AS ratio, jsonb_typeof(e->'big') AS big, jsonb_typeof(e->'meta') AS meta,
       jsonb_typeof(e->'doc') AS doc, jsonb_typeof(e->'born') AS born
  FROM agentorch.runs, jsonb_array_elements(output->'rows') e WHERE id = :r;
-- the bigint keeps every digit (no float rounding)
SELECT (output->'rows'->0->>'big') = '9007199254740993' AS exact_bigint FROM agentorch.runs WHERE id = :r;

-- DML: {"rows_affected": n}
SELECT agentorch.register_workflow('eng_s-dml', '{"steps": [
  {"id": "note", "type": "tool", "tool": "eng_s.note", "input": {"note": "${input.note}"}},
  {"id": "reprice", "type": "tool", "tool": "eng_s.reprice", "input": {"factor": 2, "from": 2}}]}');
SELECT agentorch.run_workflow('eng_s-dml', '{"note": "hello"}') AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');
SELECT note FROM eng_s.log ORDER BY id;
SELECT id, price FROM eng_s.items ORDER BY id;

-------------------------------------------------------------------------------
-- templating binds values, it never splices them into SQL
-------------------------------------------------------------------------------
CREATE TABLE eng_s.victim (id int);
SELECT agentorch.register_workflow('eng_s-inject', '{"steps": [
  {"id": "store", "type": "tool", "tool": "eng_s.note", "input": {"note": "${input.evil}"}},
  {"id": "embedded", "type": "tool", "tool": "eng_s.note", "depends_on": ["store"],
   "input": {"note": "name=${input.evil}"}},
  {"id": "lookup", "type": "tool", "tool": "eng_s.by_name", "depends_on": ["embedded"],
   "input": {"name": "${input.evil}", "all": false}}]}');
SELECT agentorch.run_workflow('eng_s-inject', jsonb_build_object('evil', $$x'); DROP TABLE eng_s.victim; --$$)) AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');
SELECT to_regclass('eng_s.victim') IS NOT NULL AS victim_still_exists;
SELECT note, note = $$x'); DROP TABLE eng_s.victim; --$$ AS exact FROM eng_s.log WHERE id > 1 ORDER BY id;

-- a value that is exactly one reference keeps its JSON type; inside a longer string it is text
SELECT agentorch.register_workflow('eng_s-types', '{"steps": [
  {"id": "t", "type": "tool", "tool": "eng_s.echo",
   "input": {"n": "${input.n}", "b": "${input.b}", "o": "${input.o}", "a": "${input.a}", "s": "n=${input.n} o=${input.o}",
             "deep": "${input.o.k}", "lit": [1, "${input.n}"]}}]}');
SELECT agentorch.run_workflow('eng_s-types', '{"n": 42, "b": true, "o": {"k": [1, 2]}, "a": ["x"]}') AS r \gset
SELECT status, jsonb_pretty(output) AS output FROM agentorch.wait(:r, '20s');

-------------------------------------------------------------------------------
-- tool, kind function: called with the input, its result converted to jsonb;
-- it runs as the run's owner
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_s-fn', '{"steps": [
  {"id": "up", "type": "tool", "tool": "eng_s.upper", "input": {"name": "${input.name}"}},
  {"id": "who", "type": "tool", "tool": "eng_s.whoami"}]}');
SELECT agentorch.run_workflow('eng_s-fn', '{"name": "ada"}') AS r \gset
SELECT status, output->'up' AS up, output->'who'->>'current_user' = current_user AS ran_as_me
  FROM agentorch.wait(:r, '20s');

-------------------------------------------------------------------------------
-- built-in database.query: read-only, as the owner, at most
-- agentorch.max_result_rows rows (10000 by default)
-------------------------------------------------------------------------------
-- the query is a literal of the definition: a ${...} inside it is refused,
-- values reach it only as bound parameters
SELECT agentorch.register_workflow('eng_s-query-templated', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query", "input": {"query": "${input.query}"}}]}');
SELECT agentorch.register_workflow('eng_s-query', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query",
   "input": {"query": "SELECT name FROM eng_s.items WHERE id = $1", "params": ["${input.id}"]},
   "retry": {"max_attempts": 1}}]}');
SELECT agentorch.run_workflow('eng_s-query', '{"id": 1}') AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');
SELECT agentorch.register_workflow('eng_s-query-write', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query",
   "input": {"query": "INSERT INTO eng_s.log (note) VALUES (''sneaky'')"}, "retry": {"max_attempts": 1}}]}');
SELECT agentorch.run_workflow('eng_s-query-write') AS r \gset
SELECT status, error->>'message' AS message FROM agentorch.wait(:r, '20s');
SELECT step_id, status, attempt, error->>'message' AS message, error->>'sqlstate' AS sqlstate
  FROM agentorch.steps WHERE run_id = :r;
SELECT count(*) AS sneaky_rows FROM eng_s.log WHERE note = 'sneaky';
-- more than agentorch.max_result_rows (10000) rows fail the step (results of
-- exactly 10000 rows are in engine_results, last in the schedule)
SELECT agentorch.register_workflow('eng_s-query-many', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query",
   "input": {"query": "SELECT g FROM generate_series(1, 10001) g"}, "retry": {"max_attempts": 1}}]}');
SELECT agentorch.run_workflow('eng_s-query-many') AS r \gset
SELECT status FROM agentorch.wait(:r, '20s');
SELECT step_id, status, error->>'message' AS message, error->>'hint' AS hint, error->>'sqlstate' AS sqlstate
  FROM agentorch.steps WHERE run_id = :r;
SELECT agentorch.register_workflow('eng_s-query-two', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query",
   "input": {"query": "SELECT 1; SELECT 2"}, "retry": {"max_attempts": 1}}]}');
SELECT agentorch.run_workflow('eng_s-query-two') AS r \gset
SELECT status FROM agentorch.wait(:r, '20s');
SELECT error->>'message' AS message FROM agentorch.steps WHERE run_id = :r;
-- a wrong number of parameters is the step's clear failure
SELECT agentorch.register_workflow('eng_s-query-params', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query",
   "input": {"query": "SELECT $1::int + $2::int AS n", "params": [1]}, "retry": {"max_attempts": 1}}]}');
SELECT agentorch.run_workflow('eng_s-query-params') AS r \gset
SELECT status FROM agentorch.wait(:r, '20s');
SELECT error->>'message' AS message FROM agentorch.steps WHERE run_id = :r;

-------------------------------------------------------------------------------
-- branch: the first matching case, else; skipping propagates down a chain;
-- a join after the branch runs with whichever side was taken
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_s-branch', '{"steps": [
  {"id": "route", "type": "branch",
   "cases": [{"when": "$.input.amount > 1000", "then": ["big"]},
             {"when": "$.input.amount > 100", "then": ["medium"]}],
   "else": ["small"]},
  {"id": "big", "type": "tool", "tool": "eng_s.echo", "input": {"size": "big"}},
  {"id": "big_more", "type": "tool", "tool": "eng_s.echo", "depends_on": ["big"], "input": {"after": "${big.output.size}"}},
  {"id": "big_end", "type": "tool", "tool": "eng_s.echo", "depends_on": ["big_more"], "input": {}},
  {"id": "medium", "type": "tool", "tool": "eng_s.echo", "input": {"size": "medium"}},
  {"id": "small", "type": "tool", "tool": "eng_s.echo", "input": {"size": "small"}},
  {"id": "join", "type": "tool", "tool": "eng_s.echo", "depends_on": ["big_end", "medium", "small"],
   "input": {"joined": true}}]}');
SELECT agentorch.run_workflow('eng_s-branch', '{"amount": 5000}') AS r1 \gset
SELECT agentorch.run_workflow('eng_s-branch', '{"amount": 500}') AS r2 \gset
SELECT agentorch.run_workflow('eng_s-branch', '{"amount": 5}') AS r3 \gset
SELECT (agentorch.wait(:r1, '20s')).status AS r1, (agentorch.wait(:r2, '20s')).status AS r2,
       (agentorch.wait(:r3, '20s')).status AS r3;
SELECT CASE run_id WHEN :r1 THEN 'amount 5000' WHEN :r2 THEN 'amount 500' ELSE 'amount 5' END AS run,
       step_id, status, output
  FROM agentorch.steps WHERE run_id IN (:r1, :r2, :r3) ORDER BY run_id, step_id;
SELECT CASE run_id WHEN :r1 THEN 'amount 5000' WHEN :r2 THEN 'amount 500' ELSE 'amount 5' END AS run,
       step_id, data
  FROM agentorch.events WHERE run_id IN (:r1, :r2, :r3) AND kind = 'step_skipped' ORDER BY run_id, step_id;
SELECT output FROM agentorch.runs WHERE id = :r3;

-------------------------------------------------------------------------------
-- parallel: children run, the output is the array of their outputs in child order
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_s-parallel', '{"steps": [
  {"id": "fan", "type": "parallel", "steps": [
    {"id": "c3", "type": "tool", "tool": "eng_s.echo", "input": {"child": 1}},
    {"id": "c1", "type": "tool", "tool": "eng_s.upper", "input": {"name": "${input.name}"}},
    {"id": "c2", "type": "tool", "tool": "eng_s.by_name", "input": {"name": "plum", "all": false}}]},
  {"id": "after", "type": "tool", "tool": "eng_s.echo", "depends_on": ["fan"], "input": {"second": "${fan.output[1]}"}}]}');
SELECT agentorch.run_workflow('eng_s-parallel', '{"name": "bo"}') AS r \gset
SELECT status FROM agentorch.wait(:r, '20s');
SELECT step_id, kind, status, parent_step_id, output FROM eng_s.steps WHERE run_id = :r ORDER BY step_id;
SELECT output FROM agentorch.runs WHERE id = :r;

-------------------------------------------------------------------------------
-- loop for_each: one iteration per item with ${item} and ${index}
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_s-each', '{"steps": [
  {"id": "each", "type": "loop", "for_each": "${input.items}",
   "step": {"id": "body", "type": "tool", "tool": "eng_s.echo", "input": {"item": "${item}", "index": "${index}", "label": "#${index}: ${item}"}}}]}');
SELECT agentorch.run_workflow('eng_s-each', '{"items": ["a", {"b": 2}, 3]}') AS r \gset
SELECT status, jsonb_pretty(output) AS output FROM agentorch.wait(:r, '20s');
SELECT step_id, status, parent_step_id, iteration FROM eng_s.steps WHERE run_id = :r ORDER BY step_id;
-- an empty array: no iterations, output []
SELECT agentorch.run_workflow('eng_s-each', '{"items": []}') AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');
-- not an array: the loop step fails
SELECT agentorch.run_workflow('eng_s-each', '{"items": "abc"}') AS r \gset
SELECT status, error->>'message' AS message FROM agentorch.wait(:r, '20s');

-------------------------------------------------------------------------------
-- loop while: iterations while the condition holds, at most max_iterations
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_s-while', '{"steps": [
  {"id": "count", "type": "loop", "while": "$.index < $.input.n", "max_iterations": 5,
   "step": {"id": "tick", "type": "tool", "tool": "eng_s.echo", "input": {"i": "${index}"}}}]}');
SELECT agentorch.run_workflow('eng_s-while', '{"n": 3}') AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');
SELECT agentorch.run_workflow('eng_s-while', '{"n": 100}') AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');
SELECT agentorch.run_workflow('eng_s-while', '{"n": 0}') AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');

-------------------------------------------------------------------------------
-- when guard: false skips the step (and what depends only on it)
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_s-when', '{"steps": [
  {"id": "always", "type": "tool", "tool": "eng_s.echo", "input": {"x": 1}},
  {"id": "guarded", "type": "tool", "tool": "eng_s.note", "when": "$.input.flag == true", "input": {"note": "guarded ran"}},
  {"id": "after_guarded", "type": "tool", "tool": "eng_s.echo", "depends_on": ["guarded"], "input": {}},
  {"id": "uses_output", "type": "tool", "tool": "eng_s.echo", "depends_on": ["always"],
   "when": "$.steps.always.output.x == 1", "input": {"seen": "${always.output.x}"}}]}');
SELECT agentorch.run_workflow('eng_s-when', '{"flag": false}') AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');
SELECT step_id, status, output FROM eng_s.steps WHERE run_id = :r ORDER BY step_id;
SELECT step_id FROM agentorch.events WHERE run_id = :r AND kind = 'step_skipped' ORDER BY step_id;
SELECT count(*) AS guarded_notes FROM eng_s.log WHERE note = 'guarded ran';
SELECT agentorch.run_workflow('eng_s-when', '{"flag": true}') AS r \gset
SELECT status FROM agentorch.wait(:r, '20s');
SELECT step_id, status FROM eng_s.steps WHERE run_id = :r ORDER BY step_id;
SELECT count(*) AS guarded_notes FROM eng_s.log WHERE note = 'guarded ran';

-------------------------------------------------------------------------------
-- user_input: the run waits; submit_input delivers the answer and the run
-- continues; an input timeout fails the step
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_s-ask', '{"steps": [
  {"id": "ask", "type": "user_input", "prompt": "Approve ${input.amount} EUR for ${input.who}?",
   "schema": {"type": "object", "required": ["approved"], "properties": {"approved": {"type": "boolean"}},
              "additionalProperties": false}},
  {"id": "decide", "type": "branch", "depends_on": ["ask"],
   "cases": [{"when": "$.steps.ask.output.approved == true", "then": ["yes"]}], "else": ["no"]},
  {"id": "yes", "type": "tool", "tool": "eng_s.echo", "input": {"approved_for": "${input.who}"}},
  {"id": "no", "type": "tool", "tool": "eng_s.echo", "input": {"rejected": "${input.who}"}}]}');
SELECT agentorch.run_workflow('eng_s-ask', '{"amount": 12.5, "who": "kim"}') AS r \gset
SELECT status FROM agentorch.wait(:r, '20s');
SELECT step_id, status, input FROM agentorch.steps WHERE run_id = :r ORDER BY step_id;
SELECT kind, step_id, data FROM agentorch.events WHERE run_id = :r ORDER BY seq;
SELECT agentorch.submit_input(:r, 'ask', '{"approved": true}');
SELECT status, output FROM agentorch.wait(:r, '20s');
SELECT step_id, status, output FROM agentorch.steps WHERE run_id = :r ORDER BY step_id;

SELECT agentorch.register_workflow('eng_s-ask-timeout', '{"steps": [
  {"id": "ask", "type": "user_input", "prompt": "quick!", "timeout": "1s"},
  {"id": "after", "type": "tool", "tool": "eng_s.echo", "depends_on": ["ask"], "input": {}}]}');
SELECT agentorch.run_workflow('eng_s-ask-timeout') AS r \gset
SELECT status FROM agentorch.wait(:r, '20s');
SELECT eng_s.finish(:r) AS status;
SELECT step_id, status, error FROM agentorch.steps WHERE run_id = :r ORDER BY step_id;
SELECT error->>'message' AS run_error FROM agentorch.runs WHERE id = :r;
SELECT agentorch.submit_input(:r, 'ask', '"too late"');

-------------------------------------------------------------------------------
-- every run of this file: chunk and event seqs are gap-free and strictly
-- increasing, and the last chunk is the final one
-------------------------------------------------------------------------------
SELECT count(*) AS runs,
       count(*) FILTER (WHERE c.n = c.max_seq AND c.min_seq = 1 AND c.max_seq = r.last_chunk_seq) AS chunks_gap_free,
       count(*) FILTER (WHERE e.n = e.max_seq AND e.min_seq = 1 AND e.max_seq = r.last_event_seq) AS events_gap_free,
       count(*) FILTER (WHERE f.kind = 'final') AS last_is_final
  FROM agentorch.runs r
  JOIN LATERAL (SELECT count(*) n, min(seq) min_seq, max(seq) max_seq FROM agentorch.chunks WHERE run_id = r.id) c ON true
  JOIN LATERAL (SELECT count(*) n, min(seq) min_seq, max(seq) max_seq FROM agentorch.events WHERE run_id = r.id) e ON true
  JOIN LATERAL (SELECT kind FROM agentorch.chunks WHERE run_id = r.id ORDER BY seq DESC LIMIT 1) f ON true
 WHERE r.workflow_name LIKE 'eng\_s-%';
SELECT status, count(*) FROM agentorch.runs WHERE workflow_name LIKE 'eng\_s-%' GROUP BY status ORDER BY status;

-- clean up
DELETE FROM agentorch.runs WHERE workflow_name LIKE 'eng\_s-%';
DELETE FROM agentorch.workflows WHERE name LIKE 'eng\_s-%';
DELETE FROM agentorch.tools WHERE name LIKE 'eng\_s.%';
DROP SCHEMA eng_s CASCADE;
