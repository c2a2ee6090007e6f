-- simulate(): a workflow through the real state machine with mocked outputs; nothing is stored or run.
CREATE TABLE public.sim_effects (n int);
CREATE FUNCTION public.sim_write(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ INSERT INTO public.sim_effects VALUES (1) RETURNING '{}'::jsonb $$;
SELECT agentorch.register_tool('sim.write', 'function', '{"function": "public.sim_write"}');
\set triage '{"steps": [{"id": "load", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}}, {"id": "route", "type": "branch", "depends_on": ["load"], "cases": [{"when": "$.steps.load.output[0].amount > 1000", "then": ["review"]}], "else": ["write"]}, {"id": "review", "type": "user_input", "prompt": "ok?"}, {"id": "write", "type": "tool", "tool": "sim.write"}]}'
-- the large order waits for input (no mock for review), the small one takes the else branch
SELECT * FROM agentorch.simulate(:'triage', '{}', '{"load": [{"amount": 5000}]}');
SELECT * FROM agentorch.simulate(:'triage', '{}', '{"load": [{"amount": 5000}], "review": {"approved": true}}');
SELECT * FROM agentorch.simulate(:'triage', '{}', '{"load": [{"amount": 10}], "sim.write": {"written": true}}');
-- loops and llm steps take their mocks by step id or tool name
SELECT * FROM agentorch.simulate('{"steps": [
  {"id": "items", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}},
  {"id": "each", "type": "loop", "depends_on": ["items"], "for_each": "${items.output}",
   "step": {"id": "ask", "type": "llm", "prompt": "about ${item}"}}]}',
  '{}', '{"items": ["a", "b", "c"], "ask": "an answer"}');
-- nothing ran, nothing was stored
SELECT count(*) AS effects FROM public.sim_effects;
SELECT count(*) AS runs FROM agentorch.runs;
-- an invalid definition is refused like everywhere else
SELECT * FROM agentorch.simulate('{"steps": [{"id": "a", "type": "tool", "tool": "nope"}]}');
DROP TABLE public.sim_effects;
DROP FUNCTION public.sim_write(jsonb);
DELETE FROM agentorch.tools WHERE name = 'sim.write';
