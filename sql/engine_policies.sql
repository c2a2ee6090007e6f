-- Execution engine: retries with backoff, permanent errors, compensation
-- (saga), step timeouts and the run deadline. Nothing printed depends on
-- run ids, timestamps or on which executor ran what.

CREATE SCHEMA eng_p;
-- wait until a run has finished (wait() also returns for runs waiting for input)
CREATE FUNCTION eng_p.finish(r bigint, t interval DEFAULT '20s') RETURNS agentorch.run_status
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
-- attempts are counted with sequences: nextval() survives the rollback of a failed attempt
CREATE SEQUENCE eng_p.flaky_calls;
CREATE SEQUENCE eng_p.always_calls;
CREATE SEQUENCE eng_p.policy_calls;
CREATE SEQUENCE eng_p.divide_calls;
-- fails with a retryable error (serialization_failure) until its third call
CREATE FUNCTION eng_p.flaky(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    n bigint := nextval('eng_p.flaky_calls');
BEGIN
    IF n < 3 THEN
        RAISE EXCEPTION 'flaky call % failed', n USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN jsonb_build_object('succeeded_on_call', n);
END
$$;
CREATE FUNCTION eng_p.always_busy(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval(input->>'counter');
    RAISE EXCEPTION 'still busy' USING ERRCODE = 'lock_not_available';
END
$$;
CREATE FUNCTION eng_p.divide(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('eng_p.divide_calls');
    RETURN to_jsonb((input->>'a')::int / (input->>'b')::int);
END
$$;
-- records what a saga step did or undid, in order
CREATE TABLE eng_p.journal (id int GENERATED ALWAYS AS IDENTITY, entry text);
CREATE FUNCTION eng_p.write(input jsonb) RETURNS jsonb LANGUAGE sql AS $$
    INSERT INTO eng_p.journal (entry) VALUES (input->>'entry') RETURNING jsonb_build_object('wrote', entry)
$$;
CREATE FUNCTION eng_p.slow(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep((input->>'seconds')::float8);
    RETURN jsonb_build_object('slept', input->'seconds');
END
$$;
SELECT agentorch.register_tool('eng_p.flaky', 'function', '{"function": "eng_p.flaky"}');
SELECT agentorch.register_tool('eng_p.always_busy', 'function', '{"function": "eng_p.always_busy"}');
SELECT agentorch.register_tool('eng_p.busy_with_policy', 'function', '{"function": "eng_p.always_busy"}', NULL,
  '{"retry": {"max_attempts": 2, "backoff": {"initial": "10ms", "jitter": 0}}}');
SELECT agentorch.register_tool('eng_p.divide', 'function', '{"function": "eng_p.divide"}');
SELECT agentorch.register_tool('eng_p.write', 'function', '{"function": "eng_p.write"}');
SELECT agentorch.register_tool('eng_p.slow', 'function', '{"function": "eng_p.slow"}');
SELECT agentorch.register_tool('eng_p.divide_sql', 'sql', '{"sql": "SELECT $1::int / $2::int AS q", "params": ["a", "b"]}');

-------------------------------------------------------------------------------
-- retries: a retryable error is retried with exponential backoff until an
-- attempt succeeds
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_p-flaky', '{"steps": [
  {"id": "call", "type": "tool", "tool": "eng_p.flaky", "input": {},
   "retry": {"max_attempts": 3, "backoff": {"initial": "200ms", "multiplier": 2, "jitter": 0}}},
  {"id": "after", "type": "tool", "tool": "eng_p.write", "depends_on": ["call"],
   "input": {"entry": "after call ${call.output.succeeded_on_call}"}}]}');
SELECT agentorch.run_workflow('eng_p-flaky') AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');
SELECT step_id, status, attempt, max_attempts, output, error FROM agentorch.steps WHERE run_id = :r ORDER BY step_id;
SELECT last_value AS flaky_calls FROM eng_p.flaky_calls;
-- two step_retrying events with the error and the backoff delay (no jitter: 200 ms, then 400 ms)
SELECT seq, kind, step_id, data FROM agentorch.events WHERE run_id = :r ORDER BY seq;
SELECT seq, step_id, attempt, kind, content, data FROM agentorch.chunks WHERE run_id = :r ORDER BY seq;
-- the backoff was honoured: each attempt came no earlier than its delay after the failure before it
SELECT (SELECT at FROM agentorch.events WHERE run_id = :r AND seq = 3)
     - (SELECT at FROM agentorch.events WHERE run_id = :r AND seq = 2) >= interval '190 ms' AS waited_200ms,
       (SELECT at FROM agentorch.events WHERE run_id = :r AND seq = 4)
     - (SELECT at FROM agentorch.events WHERE run_id = :r AND seq = 3) >= interval '390 ms' AS waited_400ms;

-- an absurd backoff (1e300 seconds) waits at most a week: the step is
-- retried later with its own error, not failed with "timestamp out of range"
CREATE SEQUENCE eng_p.absurd_calls;
SELECT agentorch.register_workflow('eng_p-absurd-backoff', '{"steps": [
  {"id": "call", "type": "tool", "tool": "eng_p.always_busy", "input": {"counter": "eng_p.absurd_calls"},
   "retry": {"max_attempts": 2, "backoff": {"initial": 1e300, "max": "99999999999999999999h", "jitter": 0}}}]}');
SELECT agentorch.run_workflow('eng_p-absurd-backoff') AS r \gset
SELECT (agentorch.wait(:r, '1s')).status;
SELECT status, attempt,
       not_before BETWEEN now() + interval '6 days' AND now() + interval '8 days' AS in_a_week
  FROM agentorch.steps WHERE run_id = :r;
SELECT data->'error'->>'sqlstate' AS its_own_error, data->>'delay_ms' AS delay_ms FROM agentorch.events WHERE run_id = :r AND kind = 'step_retrying';
SELECT agentorch.cancel(:r);

-- the deadline is options.timeout or budget.max_duration, whichever comes
-- first, on the C path and on the SQL one (a run with an idempotency key)
BEGIN;
SELECT agentorch.start('{"prompt": "x"}', 'simple', NULL,
  '{"timeout": "1 mon", "budget": {"max_duration": "30 days 12:00"}}') AS a \gset
SELECT agentorch.start('{"prompt": "x"}', 'simple', NULL,
  '{"timeout": "1 mon", "budget": {"max_duration": "30 days 12:00"}, "idempotency_key": "deadline-1"}') AS b \gset
SELECT id = :a AS c_path,
       deadline = LEAST(started_at + interval '1 mon', started_at + interval '30 days 12:00') AS whichever_first
  FROM agentorch.runs WHERE id IN (:a, :b) ORDER BY id;
ROLLBACK;

-- attempts run out: the step fails after max_attempts
SELECT agentorch.register_workflow('eng_p-exhausted', '{"steps": [
  {"id": "call", "type": "tool", "tool": "eng_p.always_busy", "input": {"counter": "eng_p.always_calls"},
   "retry": {"max_attempts": 2, "backoff": {"initial": "10ms"}}}]}');
SELECT agentorch.run_workflow('eng_p-exhausted') AS r \gset
SELECT status, error FROM agentorch.wait(:r, '20s');
SELECT step_id, status, attempt, max_attempts, error FROM agentorch.steps WHERE run_id = :r;
SELECT last_value AS always_calls FROM eng_p.always_calls;
SELECT kind, step_id, data->'error'->>'message' AS error FROM agentorch.events WHERE run_id = :r ORDER BY seq;

-- the tool's retry policy applies when the step has none
SELECT agentorch.register_workflow('eng_p-policy', '{"steps": [
  {"id": "call", "type": "tool", "tool": "eng_p.busy_with_policy", "input": {"counter": "eng_p.policy_calls"}}]}');
SELECT agentorch.run_workflow('eng_p-policy') AS r \gset
SELECT status FROM agentorch.wait(:r, '20s');
SELECT step_id, status, attempt, max_attempts FROM agentorch.steps WHERE run_id = :r;
SELECT last_value AS policy_calls FROM eng_p.policy_calls;

-- permanent errors (data exceptions, class 22) are not retried, even with attempts left
SELECT agentorch.register_workflow('eng_p-permanent', '{"steps": [
  {"id": "fn", "type": "tool", "tool": "eng_p.divide", "input": {"a": 1, "b": "${input.b}"},
   "retry": {"max_attempts": 3, "backoff": {"initial": "10ms"}}}]}');
SELECT agentorch.run_workflow('eng_p-permanent', '{"b": 0}') AS r \gset
SELECT status, error->>'message' AS message FROM agentorch.wait(:r, '20s');
SELECT step_id, status, attempt, max_attempts, error FROM agentorch.steps WHERE run_id = :r;
SELECT count(*) AS retries FROM agentorch.events WHERE run_id = :r AND kind = 'step_retrying';
SELECT last_value AS divide_calls FROM eng_p.divide_calls;
-- a sql tool's permanent error (agentorch.retry_max_attempts, 3 by default, allows retries)
SELECT current_setting('agentorch.retry_max_attempts') AS default_attempts;
SELECT agentorch.register_workflow('eng_p-permanent-sql', '{"steps": [
  {"id": "sql", "type": "tool", "tool": "eng_p.divide_sql", "input": {"a": 1, "b": 0}}]}');
SELECT agentorch.run_workflow('eng_p-permanent-sql') AS r \gset
SELECT status, error->>'message' AS message FROM agentorch.wait(:r, '20s');
SELECT step_id, status, attempt, max_attempts, error FROM agentorch.steps WHERE run_id = :r;
-- a bad input (invalid_text_representation, also class 22) is permanent too
SELECT agentorch.run_workflow('eng_p-permanent', '{"b": "zero"}') AS r \gset
SELECT status, error->>'message' AS message FROM agentorch.wait(:r, '20s');
SELECT step_id, status, attempt, error->>'sqlstate' AS sqlstate FROM agentorch.steps WHERE run_id = :r;

-------------------------------------------------------------------------------
-- step timeout: a tool that runs longer than the step's timeout is cancelled
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_p-timeout', '{"steps": [
  {"id": "fast", "type": "tool", "tool": "eng_p.slow", "input": {"seconds": 0.01}, "timeout": "5s"},
  {"id": "slow", "type": "tool", "tool": "eng_p.slow", "depends_on": ["fast"], "input": {"seconds": 5}, "timeout": "200ms",
   "retry": {"max_attempts": 1}}]}');
SELECT agentorch.run_workflow('eng_p-timeout') AS r \gset
SELECT status, error->>'message' AS message FROM agentorch.wait(:r, '20s');
SELECT step_id, status, attempt, output, error->>'sqlstate' AS sqlstate FROM agentorch.steps WHERE run_id = :r ORDER BY step_id;

-------------------------------------------------------------------------------
-- compensation: when a step fails, the compensating actions of the steps
-- that succeeded run in reverse order; those steps end compensated, the
-- run failed
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_p-saga', '{"steps": [
  {"id": "reserve", "type": "tool", "tool": "eng_p.write", "input": {"entry": "reserve ${input.order}"},
   "compensate": {"tool": "eng_p.write", "input": {"entry": "release ${input.order}"}}},
  {"id": "note", "type": "tool", "tool": "eng_p.write", "depends_on": ["reserve"], "input": {"entry": "note ${input.order}"}},
  {"id": "charge", "type": "tool", "tool": "eng_p.write", "depends_on": ["note"], "input": {"entry": "charge ${input.order}"},
   "compensate": {"tool": "eng_p.write", "input": {"entry": "refund ${input.order} (${reserve.output.wrote} was done)"}}},
  {"id": "ship", "type": "tool", "tool": "eng_p.divide", "depends_on": ["charge"], "input": {"a": 1, "b": "${input.stock}"}},
  {"id": "done", "type": "tool", "tool": "eng_p.write", "depends_on": ["ship"], "input": {"entry": "done ${input.order}"},
   "compensate": {"tool": "eng_p.write", "input": {"entry": "never"}}}]}');
SELECT agentorch.run_workflow('eng_p-saga', '{"order": "A-1", "stock": 0}') AS r \gset
SELECT eng_p.finish(:r) AS status;
SELECT entry FROM eng_p.journal WHERE entry LIKE '%A-1%' ORDER BY id;
SELECT step_id, status, output FROM agentorch.steps WHERE run_id = :r ORDER BY step_id;
SELECT error->>'message' AS message, error->>'step_id' AS failed_step FROM agentorch.runs WHERE id = :r;
SELECT seq, kind, step_id FROM agentorch.events WHERE run_id = :r ORDER BY seq;
SELECT * FROM agentorch.progress(:r);
-- with stock, the same saga succeeds and compensates nothing
SELECT agentorch.run_workflow('eng_p-saga', '{"order": "B-2", "stock": 1}') AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');
SELECT entry FROM eng_p.journal WHERE entry LIKE '%B-2%' ORDER BY id;
SELECT count(*) AS compensation_steps FROM agentorch.steps WHERE run_id = :r AND step_id LIKE '%:compensate';

-------------------------------------------------------------------------------
-- run deadline: options.timeout fails a run that is still open when it passes
-------------------------------------------------------------------------------
SELECT agentorch.register_workflow('eng_p-deadline', '{"steps": [
  {"id": "first", "type": "tool", "tool": "eng_p.write", "input": {"entry": "before the deadline"}},
  {"id": "ask", "type": "user_input", "depends_on": ["first"], "prompt": "nobody answers"},
  {"id": "after", "type": "tool", "tool": "eng_p.write", "depends_on": ["ask"], "input": {"entry": "after the deadline"}}]}');
SELECT agentorch.run_workflow('eng_p-deadline', '{}', '{"timeout": "1 second"}') AS r \gset
SELECT deadline - created_at AS deadline_after FROM agentorch.runs WHERE id = :r;
SELECT status FROM agentorch.wait(:r, '20s');
SELECT eng_p.finish(:r) AS status;
SELECT error FROM agentorch.runs WHERE id = :r;
SELECT step_id, status FROM agentorch.steps WHERE run_id = :r ORDER BY step_id;
-- (cancellations of one transition in step order)
SELECT kind, step_id FROM agentorch.events WHERE run_id = :r
 ORDER BY CASE WHEN kind = 'step_cancelled'
               THEN (SELECT min(seq) FROM agentorch.events WHERE run_id = :r AND kind = 'step_cancelled') ELSE seq END,
          step_id;
SELECT entry FROM eng_p.journal WHERE entry LIKE '%deadline%' ORDER BY id;
SELECT agentorch.submit_input(:r, 'ask', '"too late"') AS submitted;

-- a run that finishes in time is not affected by its deadline
SELECT agentorch.run_workflow('eng_p-flaky', '{}', '{"timeout": "1 minute"}') AS r \gset
SELECT status, output FROM agentorch.wait(:r, '20s');

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
 WHERE r.workflow_name LIKE 'eng\_p-%';

-- clean up
DELETE FROM agentorch.runs WHERE workflow_name LIKE 'eng\_p-%';
DELETE FROM agentorch.workflows WHERE name LIKE 'eng\_p-%';
DELETE FROM agentorch.tools WHERE name LIKE 'eng\_p.%';
DROP SCHEMA eng_p CASCADE;
