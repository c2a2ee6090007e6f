-- Orchestration selection: selector rules, load_selector_rules, select()
-- for each match feature and the default, start() with a NULL
-- orchestration storing its decision in runs.selection.

CREATE SCHEMA sel;
-- the message (and detail) of the error a statement raises, or 'ok'
CREATE FUNCTION sel.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || CASE WHEN d <> '' THEN E'\n' || d ELSE '' END;
END
$$;

SELECT agentorch.register_workflow('sel-report', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1 AS one"}}]}');

-------------------------------------------------------------------------------
-- the default, without rules
-------------------------------------------------------------------------------
SELECT count(*) AS rules FROM agentorch.selector_rules;
SELECT * FROM agentorch.select('{"prompt": "What is the capital of France?"}');
SELECT * FROM agentorch.select('{"prompt": "how do I reset my password"}');
SELECT * FROM agentorch.select('{"prompt": "Write a poem about the sea"}');
SELECT * FROM agentorch.select('{"n": 1}', '{"workflow": "sel-report"}');
SELECT * FROM agentorch.select('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "why?"}]}');
SELECT * FROM agentorch.select('{"question": "no prompt"}');
SELECT * FROM agentorch.select('{"prompt": "Why is the sky blue, and why are sunsets red, and what does scattering have to do with it; explain first the physics, then the history, next the poetry, and finally summarize?"}');
-- bad arguments
SELECT sel.try($$SELECT * FROM agentorch.select(NULL)$$);
SELECT sel.try($$SELECT * FROM agentorch.select('{}', '[]')$$);
SELECT sel.try($$SELECT * FROM agentorch.select('{}', '{"workflow": 3}')$$);

-------------------------------------------------------------------------------
-- load_selector_rules: YAML or JSON, replaces every rule
-------------------------------------------------------------------------------
SELECT agentorch.load_selector_rules($yaml$
rules:
  - name: refunds
    priority: 300
    match:
      keywords: {any: [refund, chargeback]}
    orchestration: simple
  - name: reports
    priority: 200
    match:
      keywords: {all: [monthly, report]}
    orchestration: fixed
    workflow: sel-report
  - name: order-numbers
    priority: 150
    match:
      regex: 'order #?[0-9]{4,}'
    orchestration: simple
  - name: conversations
    priority: 120
    match: {intent: conversation}
    orchestration: simple
  - name: charts
    priority: 110
    match:
      tools: [chart.create]
    orchestration: reactive
  - name: region-key
    priority: 105
    match: {keys: [region, quarter]}
    orchestration: fixed
    workflow: sel-report
  - name: complex-questions
    priority: 100
    match:
      intent: question
      complexity: {min: 30}
    orchestration: planner
  - name: disabled
    priority: 1000
    enabled: false
    match: {}
    orchestration: reactive
$yaml$);
SELECT priority, name, match, orchestration, workflow, enabled FROM agentorch.selector_rules ORDER BY id;

-- each match feature
SELECT * FROM agentorch.select('{"prompt": "I want a REFUND for the monthly report"}');      -- keywords any, priority
SELECT * FROM agentorch.select('{"prompt": "Send me the Monthly Report please"}');           -- keywords all
SELECT * FROM agentorch.select('{"prompt": "Send me the report"}');                          -- all: one missing
SELECT * FROM agentorch.select('{"prompt": "Where is order #12345"}');                       -- regex
SELECT * FROM agentorch.select('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "tell me more"}]}'); -- intent
SELECT * FROM agentorch.select('{"prompt": "Draw this with chart.create"}');                 -- tools mentioned
SELECT * FROM agentorch.select('{"prompt": "Draw the totals", "tools": ["chart.create"]}');   -- tools required
SELECT * FROM agentorch.select('{"region": "north", "quarter": 3}');                         -- keys
SELECT * FROM agentorch.select('{"region": "north"}');                                       -- keys: one missing
SELECT * FROM agentorch.select('{"prompt": "Why is the sky blue, and why are sunsets red, and what does scattering have to do with it; explain first the physics, then the history, next the poetry, and finally summarize?"}'); -- complexity
SELECT * FROM agentorch.select('{"prompt": "Is it raining?"}');                              -- no rule: default
SELECT * FROM agentorch.select('{"prompt": "Is it raining?"}', '{"workflow": "sel-report"}');

-- JSON works too, and replaces everything
SELECT agentorch.load_selector_rules('{"rules": [{"name": "all-simple", "match": {}, "orchestration": "simple"}]}');
SELECT priority, name, match, orchestration, workflow, enabled FROM agentorch.selector_rules ORDER BY id;
SELECT * FROM agentorch.select('{"prompt": "Write a poem about the sea"}');

-- an invalid document changes nothing and names every problem
SELECT sel.try($$SELECT agentorch.load_selector_rules($yaml$
rules:
  - name: a
    orchestration: fixed
  - name: a
    orchestration: sometimes
    match: {regex: '(', intent: shouting, colour: red, complexity: {min: 200}}
  - orchestration: simple
$yaml$)$$);
SELECT sel.try($$SELECT agentorch.load_selector_rules('rules: [')$$);
SELECT sel.try($$SELECT agentorch.load_selector_rules('[]')$$);
SELECT sel.try($$SELECT agentorch.load_selector_rules(NULL)$$);
SELECT name FROM agentorch.selector_rules ORDER BY id;
SELECT agentorch.load_selector_rules('rules: []');
SELECT count(*) AS rules FROM agentorch.selector_rules;
-- a priority written 1.0 is an integer (JSON Schema): stored as 1
SELECT agentorch.load_selector_rules('{"rules": [{"name": "a", "orchestration": "simple", "priority": 1.0}]}');
SELECT name, priority FROM agentorch.selector_rules;
SELECT agentorch.load_selector_rules('rules: []');

-- only superusers and the extension owner (or roles they grant it to)
CREATE ROLE sel_user;
GRANT USAGE ON SCHEMA sel TO sel_user;
SET ROLE sel_user;
SELECT sel.try($$SELECT agentorch.load_selector_rules('rules: []')$$);
SELECT orchestration, source FROM agentorch.select('{"prompt": "Is it raining?"}');  -- select is for everyone
RESET ROLE;

-------------------------------------------------------------------------------
-- start() with a NULL orchestration: the same decision, stored on the run
-- (rolled back, so no executor ever runs these)
-------------------------------------------------------------------------------
SELECT agentorch.load_selector_rules($yaml$
rules:
  - name: reports
    match: {keywords: [report]}
    orchestration: fixed
    workflow: sel-report
  - name: charts
    match: {tools: [chart.create]}
    orchestration: reactive
$yaml$);
BEGIN;
SELECT agentorch.start('{"prompt": "Is it raining?"}') AS r \gset
SELECT orchestration, workflow_name, selection FROM agentorch.runs WHERE id = :r;
SELECT agentorch.start('{"prompt": "The report, please"}') AS r \gset
SELECT orchestration, workflow_name, selection FROM agentorch.runs WHERE id = :r;
SELECT agentorch.start('{"prompt": "Write a poem about the sea"}') AS r \gset
SELECT orchestration, workflow_name, selection FROM agentorch.runs WHERE id = :r;
SELECT agentorch.start('{"prompt": "Plot it with chart.create"}') AS r \gset
SELECT orchestration, workflow_name, selection FROM agentorch.runs WHERE id = :r;
SELECT agentorch.start('{"n": 1}', workflow => 'sel-report') AS r \gset
SELECT orchestration, workflow_name, selection FROM agentorch.runs WHERE id = :r;
-- the caller's choice is kept
SELECT agentorch.start('{"prompt": "The report, please"}', 'simple') AS r \gset
SELECT orchestration, workflow_name, selection FROM agentorch.runs WHERE id = :r;
ROLLBACK;
-- planner chosen without a goal: refused; with one, a planner run starts
-- with one planner step forced through AgentPlan (rolled back here)
SELECT sel.try($$SELECT agentorch.start('{"question": "no prompt"}')$$);
BEGIN;
SELECT agentorch.start('{"prompt": "Write a poem about the sea"}') AS r \gset
SELECT orchestration, options->'max_replans' AS max_replans, selection->>'source' AS source FROM agentorch.runs WHERE id = :r;
SELECT step_id, kind, status, spec->'planner' AS planner, spec->'response_schema'->>'title' AS schema,
       spec->>'prompt' LIKE E'Task:\nWrite a poem about the sea\n%' AS prompt_ok
  FROM agentorch.steps WHERE run_id = :r;
ROLLBACK;

-- llm and hybrid selectors without a usable model: the rules decide, and say why
SET agentorch.selector = 'llm';
SELECT * FROM agentorch.select('{"prompt": "Is it raining?"}');
SELECT * FROM agentorch.select('{"prompt": "The report, please"}');
SET agentorch.selector_model = 'sel-no-such-model';
SELECT * FROM agentorch.select('{"prompt": "Is it raining?"}');
SET agentorch.selector = 'hybrid';
SELECT * FROM agentorch.select('{"prompt": "The report, please"}');   -- a rule matches: no model asked
SELECT * FROM agentorch.select('{"prompt": "Is it raining?"}');
SELECT sel.try($$SET agentorch.selector = 'magic'$$);
RESET agentorch.selector;
RESET agentorch.selector_model;
SELECT count(*) AS cached FROM agentorch.llm_cache;

SELECT agentorch.load_selector_rules('rules: []');
DROP SCHEMA sel CASCADE;
DROP ROLE sel_user;
