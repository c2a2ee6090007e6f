-- Row-level security and privileges with two ordinary roles.
CREATE ROLE ao_alice LOGIN;
CREATE ROLE ao_bob LOGIN;
-- run rows as the worker would write them (the extension owner bypasses RLS)
INSERT INTO agentorch.runs (orchestration, owner, input) VALUES
  ('simple', 'ao_alice'::regrole, '{"prompt": "alice 1"}'),
  ('simple', 'ao_alice'::regrole, '{"prompt": "alice 2"}'),
  ('simple', 'ao_bob'::regrole, '{"prompt": "bob 1"}');
INSERT INTO agentorch.steps (run_id, step_id, kind, spec)
  SELECT id, 'main', 'llm', '{}' FROM agentorch.runs;
INSERT INTO agentorch.events (run_id, seq, kind) SELECT id, 1, 'run_started' FROM agentorch.runs;
INSERT INTO agentorch.chunks (run_id, seq, kind, content) SELECT id, 1, 'token', 'hi ' || id FROM agentorch.runs;
INSERT INTO agentorch.checkpoints (run_id, seq, state) SELECT id, 1, '{}' FROM agentorch.runs;
INSERT INTO agentorch.plans (run_id, version, plan, reason) SELECT id, 1, '{}', 'initial' FROM agentorch.runs;

SET ROLE ao_alice;
SELECT input->>'prompt' AS alice_sees FROM agentorch.runs ORDER BY id;
SELECT count(*) AS steps, (SELECT count(*) FROM agentorch.events) AS events,
       (SELECT count(*) FROM agentorch.chunks) AS chunks,
       (SELECT count(*) FROM agentorch.checkpoints) AS checkpoints,
       (SELECT count(*) FROM agentorch.plans) AS plans FROM agentorch.steps;
-- ordinary roles cannot write state tables
INSERT INTO agentorch.runs (orchestration, owner) VALUES ('simple', 'ao_alice'::regrole);
UPDATE agentorch.runs SET status = 'succeeded';
DELETE FROM agentorch.chunks;
INSERT INTO agentorch.workflows (name, version, definition, definition_hash, created_by) VALUES ('x', 1, '{}', '', 1);
-- nor read model specs (where the API key environment variable is named) or the LLM cache
SELECT name, provider FROM agentorch.models ORDER BY name;
SELECT spec FROM agentorch.models;
SELECT * FROM agentorch.llm_cache;
-- nor register models
SELECT agentorch.register_model('evil', 'openai', '{"base_url": "http://attacker.example", "model": "m"}');
-- but can register tools and workflows, owned by them
SELECT agentorch.register_tool('alice.echo', 'function', '{"function": "public.echo_tool"}');
SELECT agentorch.register_workflow('alice-flow', '{"steps": [{"id": "a", "type": "tool", "tool": "alice.echo"}]}');
RESET ROLE;

SET ROLE ao_bob;
SELECT input->>'prompt' AS bob_sees FROM agentorch.runs ORDER BY id;
SELECT count(*) AS bob_chunks FROM agentorch.chunks;
-- bob can read definitions, but cannot replace alice's tool or add versions to her workflow
SELECT name, kind FROM agentorch.tools WHERE name = 'alice.echo';
SELECT agentorch.register_tool('alice.echo', 'function', '{"function": "public.chart_create"}');
SELECT agentorch.register_workflow('alice-flow', '{"steps": [{"id": "b", "type": "tool", "tool": "alice.echo"}]}');
RESET ROLE;

-- a superuser sees everything
SELECT count(*) AS all_runs FROM agentorch.runs;
SELECT spec->>'function' AS alice_tool_unchanged FROM agentorch.tools WHERE name = 'alice.echo';
SELECT name, version FROM agentorch.workflows WHERE name = 'alice-flow';

DELETE FROM agentorch.runs;
DELETE FROM agentorch.tools WHERE name = 'alice.echo';
DELETE FROM agentorch.workflows WHERE name = 'alice-flow';
DROP ROLE ao_alice;
DROP ROLE ao_bob;
