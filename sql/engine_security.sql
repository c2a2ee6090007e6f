-- Execution engine and privileges: runs run as their owner, not as the
-- (superuser) executor; row-level security hides one role's runs from
-- another, in every API function; idempotency keys, purge() and work()
-- are per role. Nothing printed depends on run ids or timestamps.

CREATE ROLE eng_alice;
CREATE ROLE eng_bob;
CREATE SCHEMA eng_x;
GRANT USAGE ON SCHEMA eng_x TO eng_alice, eng_bob;
CREATE TABLE eng_x.secret (v text);
INSERT INTO eng_x.secret VALUES ('the recipe');
CREATE TABLE eng_x.shared (v text);
INSERT INTO eng_x.shared VALUES ('the menu');
GRANT SELECT ON eng_x.shared TO eng_alice, eng_bob;
CREATE TABLE eng_x.journal (id int GENERATED ALWAYS AS IDENTITY, who text, what text);
GRANT SELECT, INSERT ON eng_x.journal TO eng_alice, eng_bob;
-- the message of the error a statement raises (run ids masked), or 'ok'
CREATE FUNCTION eng_x.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'run -?\d+', 'run <id>', 'g');
END
$$;
CREATE FUNCTION eng_x.whoami(input jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT jsonb_build_object('current_user', current_user::text) $$;
SELECT agentorch.register_tool('eng_x.read_secret', 'sql', '{"sql": "SELECT v FROM eng_x.secret"}');
SELECT agentorch.register_tool('eng_x.whoami', 'function', '{"function": "eng_x.whoami"}');
SELECT agentorch.register_tool('eng_x.log', 'sql',
  '{"sql": "INSERT INTO eng_x.journal (who, what) VALUES (current_user, $1)", "params": ["what"]}');
-- tools are owned: the superuser lets alice and bob use these
SELECT agentorch.grant_tool(t, r::regrole)
  FROM unnest(ARRAY['eng_x.read_secret', 'eng_x.whoami', 'eng_x.log']) t, unnest(ARRAY['eng_alice', 'eng_bob']) r;
SELECT agentorch.register_workflow('eng_x-secret', '{"steps": [
  {"id": "read", "type": "tool", "tool": "eng_x.read_secret"}]}');
SELECT agentorch.register_workflow('eng_x-who', '{"steps": [
  {"id": "who", "type": "tool", "tool": "eng_x.whoami"},
  {"id": "log", "type": "tool", "tool": "eng_x.log", "depends_on": ["who"], "input": {"what": "${input.what}"}}]}');
-- database.query runs only literal queries: one workflow per query
CREATE FUNCTION eng_x.query_workflow(q text) RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT x.n FROM (SELECT 'eng_x-q-' || left(md5(q), 8) AS n) x,
         LATERAL agentorch.register_workflow(x.n, jsonb_build_object('steps', jsonb_build_array(
             '{"id": "q", "type": "tool", "tool": "database.query"}'::jsonb
             || jsonb_build_object('input', jsonb_build_object('query', q))))) v
$$;
SELECT agentorch.register_workflow('eng_x-ask', '{"steps": [
  {"id": "ask", "type": "user_input", "prompt": "secret question for ${input.who}"},
  {"id": "log", "type": "tool", "tool": "eng_x.log", "depends_on": ["ask"], "input": {"what": "${ask.output}"}}]}');

-------------------------------------------------------------------------------
-- tools run as the run's owner
-------------------------------------------------------------------------------
-- the superuser may read the secret table ...
SELECT agentorch.run_workflow('eng_x-secret') AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');
-- ... alice may not: her run fails although the executor is a superuser
SET ROLE eng_alice;
SELECT agentorch.run_workflow('eng_x-secret') AS r \gset
SELECT status, error->>'message' AS message FROM agentorch.wait(:r, '20s');
SELECT step_id, status, attempt, output, error FROM agentorch.steps WHERE run_id = :r;
-- database.query runs as the owner too
SELECT eng_x.query_workflow('SELECT v FROM eng_x.secret') AS wf \gset
SELECT agentorch.run_workflow(:'wf') AS r \gset
SELECT status, error->>'message' AS message FROM agentorch.wait(:r, '20s');
SELECT eng_x.query_workflow('SELECT v FROM eng_x.shared') AS wf \gset
SELECT agentorch.run_workflow(:'wf') AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');
-- tools see current_user = the owner
SELECT agentorch.run_workflow('eng_x-who', '{"what": "alice was here"}') AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');
SELECT step_id, output FROM agentorch.steps WHERE run_id = :r ORDER BY step_id;
RESET ROLE;
SET ROLE eng_bob;
SELECT agentorch.run_workflow('eng_x-who', '{"what": "bob was here"}') AS r \gset
SELECT status FROM agentorch.wait(:r, '20s');
SELECT output AS who FROM agentorch.steps WHERE run_id = :r AND step_id = 'who';
RESET ROLE;
SELECT who, what FROM eng_x.journal ORDER BY id;

-------------------------------------------------------------------------------
-- row-level security: bob cannot see or touch alice's run -- for him it does
-- not exist
-------------------------------------------------------------------------------
SET ROLE eng_alice;
SELECT agentorch.run_workflow('eng_x-ask', '{"who": "alice"}') AS ra \gset
SELECT status FROM agentorch.wait(:ra, '20s');
SELECT count(*) AS alice_events FROM agentorch.events WHERE run_id = :ra \gset
RESET ROLE;
SET ROLE eng_bob;
SELECT count(*) AS runs FROM agentorch.runs WHERE id = :ra;
SELECT (SELECT count(*) FROM agentorch.steps WHERE run_id = :ra) AS steps,
       (SELECT count(*) FROM agentorch.events WHERE run_id = :ra) AS events,
       (SELECT count(*) FROM agentorch.chunks WHERE run_id = :ra) AS chunks,
       (SELECT count(*) FROM agentorch.checkpoints WHERE run_id = :ra) AS checkpoints;
SELECT eng_x.try(format($$SELECT agentorch.wait(%s, '1s')$$, :ra)) AS wait;
SELECT eng_x.try(format($$SELECT agentorch.cancel(%s)$$, :ra)) AS cancel;
SELECT eng_x.try(format($$SELECT agentorch.submit_input(%s, 'ask', '"bob answers"')$$, :ra)) AS submit_input;
SELECT eng_x.try(format($$SELECT agentorch.resume(%s)$$, :ra)) AS resume;
SELECT eng_x.try(format($$SELECT agentorch.graph(%s)$$, :ra)) AS graph;
SELECT eng_x.try(format($$SELECT * FROM agentorch.follow(%s, 0, '1s')$$, :ra)) AS follow;
SELECT count(*) AS stream_rows FROM agentorch.stream(:ra);
SELECT * FROM agentorch.progress(:ra);
RESET ROLE;
-- nothing changed; alice answers, her run goes on
SET ROLE eng_alice;
SELECT status, (SELECT count(*) FROM agentorch.events WHERE run_id = :ra) - :alice_events AS new_events
  FROM agentorch.runs WHERE id = :ra;
SELECT step_id, status FROM agentorch.steps WHERE run_id = :ra ORDER BY step_id;
SELECT agentorch.submit_input(:ra, 'ask', '"alice answers"') AS submitted;
SELECT status FROM agentorch.wait(:ra, '20s');
SELECT seq, kind, content FROM agentorch.stream(:ra, 2);
RESET ROLE;
SELECT who, what FROM eng_x.journal WHERE what LIKE '%answers%' ORDER BY id;

-- a superuser may act on anyone's run
SET ROLE eng_alice;
SELECT agentorch.run_workflow('eng_x-ask', '{"who": "alice again"}') AS ra2 \gset
SELECT status FROM agentorch.wait(:ra2, '20s');
RESET ROLE;
SELECT status FROM agentorch.wait(:ra2, '20s');
SELECT agentorch.cancel(:ra2, 'by the administrator') AS cancelled;
SET ROLE eng_alice;
SELECT status, error FROM agentorch.runs WHERE id = :ra2;
RESET ROLE;

-------------------------------------------------------------------------------
-- idempotency keys are per owner: the same key of another role makes a new run
-------------------------------------------------------------------------------
SET ROLE eng_alice;
SELECT agentorch.run_workflow('eng_x-who', '{"what": "keyed"}', '{"idempotency_key": "shared-key"}') AS ka1 \gset
SELECT agentorch.run_workflow('eng_x-who', '{"what": "keyed again"}', '{"idempotency_key": "shared-key"}') AS ka2 \gset
RESET ROLE;
SET ROLE eng_bob;
SELECT agentorch.run_workflow('eng_x-who', '{"what": "bob keyed"}', '{"idempotency_key": "shared-key"}') AS kb \gset
SELECT count(*) AS bob_sees_with_key FROM agentorch.runs WHERE idempotency_key = 'shared-key';
RESET ROLE;
SELECT :ka1 = :ka2 AS alice_same_run, :ka1 = :kb AS bob_same_as_alice;
SELECT (agentorch.wait(:ka1, '20s')).status AS alice_run, (agentorch.wait(:kb, '20s')).status AS bob_run;
SELECT owner::regrole::text AS owner, input FROM agentorch.runs WHERE idempotency_key = 'shared-key' ORDER BY 1;

-------------------------------------------------------------------------------
-- work() as an ordinary role runs only that role's steps (here of runs not
-- yet committed, so no executor interferes; bob's run first, as one
-- transaction takes run locks in run id order)
-------------------------------------------------------------------------------
BEGIN;
SET LOCAL ROLE eng_bob;
SELECT agentorch.run_workflow('eng_x-who', '{"what": "bob in session"}') AS wb \gset
SET LOCAL ROLE eng_alice;
SELECT agentorch.run_workflow('eng_x-who', '{"what": "alice in session"}') AS wa \gset
SET LOCAL ROLE eng_bob;
SELECT agentorch.work() AS bob_did;
SELECT status FROM agentorch.runs WHERE id = :wb;
SET LOCAL ROLE eng_alice;
SELECT step_id, status FROM agentorch.steps WHERE run_id = :wa ORDER BY step_id;
SELECT agentorch.work() AS alice_did;
SELECT status, output FROM agentorch.runs WHERE id = :wa;
COMMIT;
SELECT who, what FROM eng_x.journal WHERE what LIKE '%in session' ORDER BY id;

-------------------------------------------------------------------------------
-- purge() by an ordinary role deletes only that role's finished runs
-------------------------------------------------------------------------------
SELECT owner::regrole::text AS owner, status, count(*) FROM agentorch.runs
 WHERE owner IN ('eng_alice'::regrole, 'eng_bob'::regrole) GROUP BY 1, 2 ORDER BY 1, 2;
SET ROLE eng_alice;
SELECT agentorch.purge('1 hour') AS alice_purged_older_than_an_hour;
SELECT agentorch.purge('0 seconds') AS alice_purged;
SELECT count(*) AS alice_runs_left FROM agentorch.runs;
RESET ROLE;
SELECT owner::regrole::text AS owner, status, count(*) FROM agentorch.runs
 WHERE owner IN ('eng_alice'::regrole, 'eng_bob'::regrole) GROUP BY 1, 2 ORDER BY 1, 2;

-- clean up
DELETE FROM agentorch.runs WHERE owner IN ('eng_alice'::regrole, 'eng_bob'::regrole) OR workflow_name LIKE 'eng\_x-%';
DELETE FROM agentorch.workflows WHERE name LIKE 'eng\_x-%';
DELETE FROM agentorch.tools WHERE name LIKE 'eng\_x.%';
DROP SCHEMA eng_x CASCADE;
DROP ROLE eng_alice;
DROP ROLE eng_bob;
