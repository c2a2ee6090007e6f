-- Execution engine: the run API (start, run_workflow, wait, stream, follow,
-- cancel, resume, submit_input, progress, graph, purge, metrics, work),
-- with the background executors running the steps. Nothing printed
-- depends on run ids, timestamps or on which executor ran what.

CREATE SCHEMA eng_a;
-- the message of the error a statement raises (run ids masked), or 'ok'
CREATE FUNCTION eng_a.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'run \d+', 'run <id>', 'g');
END
$$;
-- wait until a run has finished (wait() also returns for runs waiting for input)
CREATE FUNCTION eng_a.finish(r bigint, t interval DEFAULT '20s') RETURNS agentorch.run_status
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
-- wait until a condition holds (true), or give up after a while (false)
CREATE FUNCTION eng_a.until(cond text, t interval DEFAULT '20s') RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    until timestamptz := clock_timestamp() + t;
    ok boolean;
BEGIN
    LOOP
        EXECUTE 'SELECT ' || cond INTO ok;
        EXIT WHEN ok OR clock_timestamp() > until;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN ok;
END
$$;
CREATE TABLE eng_a.calls (id int GENERATED ALWAYS AS IDENTITY, step text, note text);
CREATE TABLE eng_a.gate (open boolean NOT NULL);
INSERT INTO eng_a.gate VALUES (false);
CREATE FUNCTION eng_a.echo(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
-- fails (not retryably: P0001) while the gate is closed
CREATE FUNCTION eng_a.check_gate(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (SELECT open FROM eng_a.gate) THEN
        RAISE EXCEPTION 'the gate is closed';
    END IF;
    RETURN '"passed"';
END
$$;
-- fails with a retryable error: its step goes back to ready with a backoff
CREATE FUNCTION eng_a.busy(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'busy, try later' USING ERRCODE = 'serialization_failure';
END
$$;
SELECT agentorch.register_tool('eng_a.record', 'sql',
  '{"sql": "INSERT INTO eng_a.calls (step, note) VALUES ($1, $2) RETURNING id > 0 AS recorded", "params": ["step", "note"]}');
SELECT agentorch.register_tool('eng_a.echo', 'function', '{"function": "eng_a.echo"}');
SELECT agentorch.register_tool('eng_a.check_gate', 'function', '{"function": "eng_a.check_gate"}');
SELECT agentorch.register_tool('eng_a.busy', 'function', '{"function": "eng_a.busy"}');

SELECT agentorch.register_workflow('eng_a-chain', '{"steps": [
  {"id": "one", "type": "tool", "tool": "eng_a.echo", "input": {"n": "${input.n}"}},
  {"id": "two", "type": "tool", "tool": "eng_a.echo", "depends_on": ["one"], "input": {"twice": ["${one.output.n}", "${one.output.n}"]}}]}');

-------------------------------------------------------------------------------
-- start(): a named workflow is fixed, with or without the orchestration argument
-------------------------------------------------------------------------------
SELECT agentorch.start('{"n": 1}', workflow => 'eng_a-chain') AS r \gset
SELECT status, orchestration, workflow_name, workflow_version, output, selection
  FROM agentorch.wait(:r, '20s');
SELECT agentorch.start('{"n": 2}', 'fixed', 'eng_a-chain', '{"priority": 5, "metadata": {"ticket": 7}}') AS r \gset
SELECT status, orchestration, priority, options, output, selection FROM agentorch.wait(:r, '20s');
SELECT step_id, priority FROM agentorch.steps WHERE run_id = :r ORDER BY step_id;

-- a prompt makes a simple run: one llm step (committed here already cancelled,
-- so no executor ever picks it up)
BEGIN;
SELECT agentorch.start('{"prompt": "What is agentorch?"}', options => '{"model": "fast"}') AS s \gset
SELECT status, orchestration, workflow_name, input, selection FROM agentorch.runs WHERE id = :s;
SELECT step_id, kind, status, spec, depends_on FROM agentorch.steps WHERE run_id = :s;
SELECT agentorch.cancel(:s, 'not calling a model in a test');
SELECT status, error FROM agentorch.runs WHERE id = :s;
SELECT step_id, status FROM agentorch.steps WHERE run_id = :s;
COMMIT;
BEGIN;
SELECT agentorch.start('{"messages": [{"role": "user", "content": "Hi"}]}', 'simple') AS s \gset
SELECT agentorch.cancel(:s);
COMMIT;
SELECT orchestration, status, (SELECT spec->'messages' FROM agentorch.steps WHERE run_id = :s) AS messages
  FROM agentorch.runs WHERE id = :s;

-- refused, and nothing is stored
SELECT count(*) AS runs_before FROM agentorch.runs \gset
SELECT eng_a.try($$SELECT agentorch.start('{"plan": "no goal"}', 'planner')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"prompt": 7}', 'reactive')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"prompt": "x"}', 'planner', NULL, '{"budget": {"max_tokens": 0}}')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"prompt": "x"}', 'reactive', NULL, '{"replan_when": ["@@ nonsense"]}')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"question": "no prompt"}')$$);
SELECT eng_a.try($$SELECT agentorch.start('"just text"')$$);
SELECT eng_a.try($$SELECT agentorch.start(NULL)$$);
SELECT eng_a.try($$SELECT agentorch.start('{"n": 1}', 'fixed')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"n": 1}', workflow => 'eng_a-ghost')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"prompt": "x"}', options => '[]')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"prompt": "x"}', options => '"fast"')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"prompt": "x"}', options => '{"priority": "high"}')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"prompt": "x"}', options => '{"priority": 1.5}')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"prompt": "x"}', options => '{"timeout": "soon"}')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"prompt": "x"}', options => '{"timeout": 30}')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"prompt": "x"}', options => '{"idempotency_key": ""}')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"prompt": "x"}', options => '{"idempotency_key": 42}')$$);
SELECT eng_a.try($$SELECT agentorch.start('{"prompt": "x"}', options => jsonb_build_object('idempotency_key', repeat('k', 201)))$$);
SELECT count(*) - :runs_before AS runs_added FROM agentorch.runs;

-------------------------------------------------------------------------------
-- run_workflow(): the latest version, or options.version; a running run
-- keeps the version it started on
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_a-versions', '{"output": {"version": 1, "answer": "${ask.output}"}, "steps": [
  {"id": "ask", "type": "user_input", "prompt": "v1 asks ${input.who}",
   "schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer", "minimum": 0}}}},
  {"id": "use", "type": "tool", "tool": "eng_a.echo", "depends_on": ["ask"], "input": {"got": "${ask.output.n}"}}]}') AS v1;
SELECT agentorch.run_workflow('eng_a-versions', '{"who": "ann"}') AS held \gset
SELECT status, workflow_version FROM agentorch.wait(:held, '20s');
-- version 2 is registered while the run waits for input
SELECT agentorch.register_workflow('eng_a-versions', '{"output": {"version": 2}, "steps": [
  {"id": "only", "type": "tool", "tool": "eng_a.echo", "input": {"v": 2}}]}') AS v2;
SELECT agentorch.run_workflow('eng_a-versions') AS latest \gset
SELECT status, workflow_version, output FROM agentorch.wait(:latest, '20s');
SELECT agentorch.run_workflow('eng_a-versions', '{"who": "old"}', '{"version": 1}') AS pinned \gset
SELECT status, workflow_version FROM agentorch.wait(:pinned, '20s');
SELECT eng_a.try($$SELECT agentorch.run_workflow('eng_a-versions', '{}', '{"version": 3}')$$);
SELECT eng_a.try($$SELECT agentorch.run_workflow('eng_a-ghost')$$);
SELECT eng_a.try($$SELECT agentorch.run_workflow(NULL)$$);

-------------------------------------------------------------------------------
-- submit_input(): a schema violation is an ERROR that changes nothing; wrong
-- step kind, unknown step, unknown run; a second submission returns false
-------------------------------------------------------------------------------
SELECT count(*) AS events_before FROM agentorch.events WHERE run_id = :held \gset
SELECT eng_a.try(format($$SELECT agentorch.submit_input(%s, 'ask', '{"n": "seven"}')$$, :held));
SELECT eng_a.try(format($$SELECT agentorch.submit_input(%s, 'ask', '{"n": -1}')$$, :held));
SELECT eng_a.try(format($$SELECT agentorch.submit_input(%s, 'ask', '[1]')$$, :held));
SELECT eng_a.try(format($$SELECT agentorch.submit_input(%s, 'use', '{"n": 1}')$$, :held));
SELECT eng_a.try(format($$SELECT agentorch.submit_input(%s, 'ghost', '{"n": 1}')$$, :held));
SELECT eng_a.try($$SELECT agentorch.submit_input(-1, 'ask', '{"n": 1}')$$);
SELECT step_id, status, output FROM agentorch.steps WHERE run_id = :held ORDER BY step_id;
SELECT count(*) - :events_before AS events_added, (SELECT status FROM agentorch.runs WHERE id = :held) AS status
  FROM agentorch.events WHERE run_id = :held;
-- progress while waiting
SELECT * FROM agentorch.progress(:held);
-- the graph of a run shows each step's status
SELECT regexp_replace(agentorch.graph(:held), 'run \d+', 'run <id>', 'g') AS mermaid;
SELECT agentorch.submit_input(:held, 'ask', '{"n": 7}') AS first_submit;
SELECT agentorch.submit_input(:held, 'ask', '{"n": 8}') AS second_submit;
SELECT status, workflow_version, output FROM agentorch.wait(:held, '20s');
SELECT step_id, status, output FROM agentorch.steps WHERE run_id = :held ORDER BY step_id;
SELECT * FROM agentorch.progress(:held);
SELECT regexp_replace(agentorch.graph(:held, 'dot'), 'run \d+', 'run <id>', 'g') AS dot;
SELECT eng_a.try(format($$SELECT agentorch.graph(%s, 'png')$$, :held));
SELECT eng_a.try($$SELECT agentorch.graph(-1)$$);
SELECT * FROM agentorch.progress(-1);

-------------------------------------------------------------------------------
-- stream() and follow(): the chunks of a run by seq; follow() of a finished
-- run ends at its final chunk, of a waiting run at its timeout
-------------------------------------------------------------------------------
SELECT seq, step_id, attempt, kind, content, data FROM agentorch.stream(:held);
SELECT seq, kind, content FROM agentorch.stream(:held, 3);
SELECT count(*) AS none_after_last FROM agentorch.stream(:held, 5);
SELECT seq, kind, content FROM agentorch.follow(:held);
SELECT seq, kind, content FROM agentorch.follow(:held, 4, '5s');
SELECT seq, kind, content FROM agentorch.follow(:pinned, 0, '300ms');
SELECT count(*) AS nothing_new FROM agentorch.follow(:pinned, 2, '300ms');
SELECT eng_a.try($$SELECT * FROM agentorch.follow(-1)$$);
SELECT seq, kind, step_id, data FROM agentorch.events WHERE run_id = :held ORDER BY seq;
SELECT seq, step_id, state FROM agentorch.checkpoints WHERE run_id = :held ORDER BY seq;

-------------------------------------------------------------------------------
-- wait(): the run row once finished or waiting; as it is at the timeout
-------------------------------------------------------------------------------
SELECT status, input FROM agentorch.wait(:pinned);
SELECT eng_a.try($$SELECT agentorch.wait(-1, '1s')$$);

-------------------------------------------------------------------------------
-- cancel(): pending, ready and waiting steps are cancelled; false the second time
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_a-cancel', '{"steps": [
  {"id": "ask", "type": "user_input", "prompt": "waiting"},
  {"id": "later", "type": "tool", "tool": "eng_a.echo", "depends_on": ["ask"], "input": {}},
  {"id": "retrying", "type": "tool", "tool": "eng_a.busy", "input": {},
   "retry": {"max_attempts": 5, "backoff": {"initial": "1h", "max": "2h", "jitter": 0}}},
  {"id": "done", "type": "tool", "tool": "eng_a.echo", "input": {"x": 1}}]}');
SELECT agentorch.run_workflow('eng_a-cancel') AS c \gset
SELECT eng_a.until(format($$(SELECT count(*) = 3 FROM agentorch.steps WHERE run_id = %s
                              AND (step_id, status::text, attempt) IN (('ask', 'waiting', 1), ('done', 'succeeded', 1), ('retrying', 'ready', 1)))$$, :c)) AS settled;
-- "retrying" failed once and is ready again, its next attempt in an hour
SELECT step_id, status, attempt, not_before > now() + interval '50 minutes' AS backing_off
  FROM agentorch.steps WHERE run_id = :c ORDER BY step_id;
-- the run is running (a step is ready): wait() returns it as it is when the timeout passes
SELECT status FROM agentorch.wait(:c, '300ms');
SELECT agentorch.cancel(:c, 'test over') AS cancelled;
SELECT agentorch.cancel(:c) AS cancelled_again;
SELECT status, error, output FROM agentorch.runs WHERE id = :c;
SELECT step_id, status, attempt FROM agentorch.steps WHERE run_id = :c ORDER BY step_id;
SELECT kind, step_id FROM agentorch.events WHERE run_id = :c AND kind IN ('step_cancelled', 'run_cancelled')
 ORDER BY kind, step_id;
SELECT kind, content, data FROM agentorch.chunks WHERE run_id = :c ORDER BY seq DESC LIMIT 1;
SELECT agentorch.submit_input(:c, 'ask', '{}') AS submitted;
SELECT eng_a.try($$SELECT agentorch.cancel(-1)$$);
SELECT agentorch.cancel(:latest) AS cancel_finished;

-------------------------------------------------------------------------------
-- resume(): a failed run starts over from its checkpoint -- succeeded steps
-- are not executed again (the row count proves it); a cancelled run too
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_a-resume', '{"steps": [
  {"id": "record", "type": "tool", "tool": "eng_a.record", "input": {"step": "record", "note": "${input.note}"}},
  {"id": "gate", "type": "tool", "tool": "eng_a.check_gate", "depends_on": ["record"], "input": {}},
  {"id": "after", "type": "tool", "tool": "eng_a.record", "depends_on": ["gate"], "input": {"step": "after", "note": "${gate.output}"}}]}');
SELECT agentorch.run_workflow('eng_a-resume', '{"note": "once"}') AS f \gset
SELECT status, error FROM agentorch.wait(:f, '20s');
SELECT step_id, status, attempt, output, error->>'message' AS error FROM agentorch.steps WHERE run_id = :f ORDER BY step_id;
SELECT step, note FROM eng_a.calls ORDER BY id;
SELECT agentorch.resume(:latest) AS resume_succeeded_run;
UPDATE eng_a.gate SET open = true;
SELECT agentorch.resume(:f) AS resumed;
SELECT agentorch.resume(:f) AS resumed_again;
SELECT status, error, output FROM agentorch.wait(:f, '20s');
SELECT step_id, status, attempt, output FROM agentorch.steps WHERE run_id = :f ORDER BY step_id;
SELECT step, note FROM eng_a.calls ORDER BY id;
SELECT seq, kind, step_id FROM agentorch.events WHERE run_id = :f ORDER BY seq;
SELECT seq, step_id, kind, content FROM agentorch.chunks WHERE run_id = :f ORDER BY seq;

-- a cancelled run resumes where it stopped
SELECT agentorch.run_workflow('eng_a-resume', '{"note": "cancel me"}') AS x \gset
SELECT status FROM agentorch.wait(:x, '20s');
UPDATE eng_a.gate SET open = false;
SELECT agentorch.register_workflow('eng_a-pause', '{"steps": [
  {"id": "record", "type": "tool", "tool": "eng_a.record", "input": {"step": "pause-record", "note": "${input.note}"}},
  {"id": "ask", "type": "user_input", "depends_on": ["record"], "prompt": "go on?"},
  {"id": "after", "type": "tool", "tool": "eng_a.record", "depends_on": ["ask"], "input": {"step": "pause-after", "note": "${ask.output}"}}]}');
SELECT agentorch.run_workflow('eng_a-pause', '{"note": "p"}') AS p \gset
SELECT status FROM agentorch.wait(:p, '20s');
SELECT agentorch.cancel(:p) AS cancelled;
SELECT step_id, status FROM agentorch.steps WHERE run_id = :p ORDER BY step_id;
SELECT agentorch.resume(:p) AS resumed;
SELECT status FROM agentorch.wait(:p, '20s');
SELECT step_id, status FROM agentorch.steps WHERE run_id = :p ORDER BY step_id;
SELECT agentorch.submit_input(:p, 'ask', '"yes"') AS submitted;
SELECT status, output FROM agentorch.wait(:p, '20s');
SELECT step, note FROM eng_a.calls WHERE step LIKE 'pause%' ORDER BY id;
SELECT eng_a.try($$SELECT agentorch.resume(-1)$$);

-------------------------------------------------------------------------------
-- idempotency keys: the same key returns the same run
-------------------------------------------------------------------------------
SELECT agentorch.run_workflow('eng_a-chain', '{"n": 5}', '{"idempotency_key": "order-17"}') AS k1 \gset
SELECT agentorch.run_workflow('eng_a-chain', '{"n": 6}', '{"idempotency_key": "order-17"}') AS k2 \gset
SELECT agentorch.start('{"prompt": "other input, same key"}', options => '{"idempotency_key": "order-17"}') AS k3 \gset
SELECT :k1 = :k2 AS same_run, :k1 = :k3 AS same_again;
SELECT status, input, output FROM agentorch.wait(:k1, '20s');
SELECT count(*) AS runs_with_key FROM agentorch.runs WHERE idempotency_key = 'order-17';

-------------------------------------------------------------------------------
-- a rolled-back start leaves no run, and nothing runs
-------------------------------------------------------------------------------
SELECT count(*) AS calls_before FROM eng_a.calls \gset
BEGIN;
SELECT agentorch.run_workflow('eng_a-resume', '{"note": "rolled back"}') AS rb \gset
SELECT status FROM agentorch.runs WHERE id = :rb;
ROLLBACK;
SELECT pg_sleep(0.3);
SELECT count(*) AS run_rows FROM agentorch.runs WHERE id = :rb;
SELECT count(*) AS step_rows FROM agentorch.steps WHERE run_id = :rb;
SELECT count(*) - :calls_before AS calls_added FROM eng_a.calls;

-------------------------------------------------------------------------------
-- work(): runs ready steps in the calling session -- here those of a run
-- not yet committed, which no executor can see; 0 when nothing is ready
-------------------------------------------------------------------------------
UPDATE eng_a.gate SET open = true;
BEGIN;
SELECT agentorch.run_workflow('eng_a-resume', '{"note": "in session"}') AS w \gset
SELECT step_id, status FROM agentorch.steps WHERE run_id = :w ORDER BY step_id;
SELECT agentorch.work() AS steps_done;
SELECT status, output FROM agentorch.runs WHERE id = :w;
SELECT step_id, status, attempt FROM agentorch.steps WHERE run_id = :w ORDER BY step_id;
COMMIT;
SELECT agentorch.work() AS nothing_ready;
SELECT agentorch.work(0) AS no_steps_asked;

-------------------------------------------------------------------------------
-- metrics(): the names (values vary)
-------------------------------------------------------------------------------
SELECT name FROM agentorch.metrics() WHERE strpos(name, '.') = 0 ORDER BY name;
SELECT count(*) AS negative_values FROM agentorch.metrics() WHERE value < 0;

-------------------------------------------------------------------------------
-- every run of this file: chunk and event seqs are gap-free and strictly
-- increasing; finished runs end with their final chunk
-------------------------------------------------------------------------------
SELECT count(*) AS runs,
       count(*) FILTER (WHERE c.n = c.max_seq AND c.min_seq = 1 AND c.max_seq = r.last_chunk_seq) AS chunks_gap_free,
       count(*) FILTER (WHERE e.n = e.max_seq AND e.min_seq = 1 AND e.max_seq = r.last_event_seq) AS events_gap_free,
       count(*) FILTER (WHERE (f.kind = 'final') = (r.status IN ('succeeded', 'failed', 'cancelled'))) AS final_iff_finished
  FROM agentorch.runs r
  JOIN LATERAL (SELECT count(*) n, min(seq) min_seq, max(seq) max_seq FROM agentorch.chunks WHERE run_id = r.id) c ON true
  JOIN LATERAL (SELECT count(*) n, min(seq) min_seq, max(seq) max_seq FROM agentorch.events WHERE run_id = r.id) e ON true
  JOIN LATERAL (SELECT kind FROM agentorch.chunks WHERE run_id = r.id ORDER BY seq DESC LIMIT 1) f ON true;

-------------------------------------------------------------------------------
-- purge(): only finished runs older than the interval
-------------------------------------------------------------------------------
SELECT agentorch.run_workflow('eng_a-pause', '{"note": "still waiting"}') AS open_run \gset
SELECT status FROM agentorch.wait(:open_run, '20s');
SELECT count(*) AS finished FROM agentorch.runs WHERE status IN ('succeeded', 'failed', 'cancelled') \gset
SELECT agentorch.purge('1 hour') AS purged_older_than_an_hour;
SELECT agentorch.purge('0 seconds') = :finished AS purged_all_finished;
-- the waiting runs are kept; what was deleted took its rows along
SELECT id = :open_run AS open_run, id = :pinned AS pinned, status FROM agentorch.runs ORDER BY id;
SELECT count(*) AS orphan_steps FROM agentorch.steps s WHERE NOT EXISTS (SELECT 1 FROM agentorch.runs r WHERE r.id = s.run_id);
SELECT count(*) AS orphan_chunks FROM agentorch.chunks c WHERE NOT EXISTS (SELECT 1 FROM agentorch.runs r WHERE r.id = c.run_id);
SELECT count(*) AS orphan_events FROM agentorch.events e WHERE NOT EXISTS (SELECT 1 FROM agentorch.runs r WHERE r.id = e.run_id);
SELECT agentorch.cancel(:open_run) AS cancelled, agentorch.cancel(:pinned) AS cancelled_pinned;
SELECT agentorch.purge('0 seconds') >= 2 AS purged_last;
SELECT count(*) AS left_over FROM agentorch.runs WHERE id IN (:open_run, :pinned);
-- the per-run tables have no foreign key: deleting runs by hand (a
-- superuser's DELETE) takes their rows along all the same
SELECT agentorch.run_workflow('eng_a-versions', '{"who": "gone"}') AS gone \gset
SELECT status FROM agentorch.wait(:gone, '20s');
SELECT (SELECT count(*) FROM agentorch.steps WHERE run_id = :gone) > 0 AS has_steps,
       (SELECT count(*) FROM agentorch.checkpoints WHERE run_id = :gone) > 0 AS has_checkpoints;
DELETE FROM agentorch.runs WHERE id = :gone;
SELECT (SELECT count(*) FROM agentorch.steps WHERE run_id = :gone) AS steps,
       (SELECT count(*) FROM agentorch.events WHERE run_id = :gone) AS events,
       (SELECT count(*) FROM agentorch.chunks WHERE run_id = :gone) AS chunks,
       (SELECT count(*) FROM agentorch.checkpoints WHERE run_id = :gone) AS checkpoints;

-- clean up
DELETE FROM agentorch.workflows WHERE name LIKE 'eng\_a-%';
DELETE FROM agentorch.tools WHERE name LIKE 'eng\_a.%';
DROP SCHEMA eng_a CASCADE;
