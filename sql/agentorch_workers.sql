-------------------------------------------------------------------------------
-- agentorch_workers.sql -- the state layer's part for external workers
-- (src/bin/agentorch-worker.c; src/runner/remote.c; src/worker/README.md).
--
-- Part of the install script (the Makefile appends it after
-- agentorch_api.sql). An external worker is a program that connects over
-- libpq, claims network steps (llm steps, http tools) and sends their
-- requests; every state change it causes goes through these functions,
-- which use the same transitions as the executors (_finish_step,
-- _retry_step, _append_chunks, _step_transition), so there is still one
-- writer of run state. The holder of a worker's lease (steps.worker) is
-- its BACKEND pid: when its session goes (the program was killed, its
-- connection was lost or terminated), agentorch._recover() sees the holder
-- gone at once, as for a dead executor.
--
-- Privileges: every function here is internal (EXECUTE revoked from
-- PUBLIC below). The worker-facing ones are SECURITY DEFINER: an
-- administrator grants them to the role the worker connects as (README,
-- "External workers"). Such a role can record outcomes of any run's
-- network steps -- it is as trusted as an executor -- but it never gets
-- to run SQL: tool calls of a model's reply go through
-- _worker_call_tools, which runs registered tools as the run's owner.
-------------------------------------------------------------------------------

-- The C side (src/runner/remote.c, wrapped by src/api/api_worker.c).
CREATE FUNCTION agentorch._worker_claim(p_worker int, p_name text, p_n int, p_recover boolean)
    RETURNS jsonb LANGUAGE c VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_claim';
CREATE FUNCTION agentorch._worker_call_tools(p_run bigint, p_step text, p_attempt int, p_calls jsonb)
    RETURNS jsonb LANGUAGE c VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_call_tools';
CREATE FUNCTION agentorch._worker_fallback(p_run bigint, p_step text, p_attempt int, p_model text)
    RETURNS jsonb LANGUAGE c VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_fallback';
CREATE FUNCTION agentorch._worker_slot_done(p_run bigint, p_step text, p_outcome int, p_tokens double precision,
                                            p_counted int)
    RETURNS void LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_slot_done';
CREATE FUNCTION agentorch._worker_retry_delay(p_spec jsonb, p_attempt int, p_retry_after_ms double precision)
    RETURNS double precision LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_retry_delay';
CREATE FUNCTION agentorch._worker_settings() RETURNS jsonb
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_settings';
CREATE FUNCTION agentorch._worker_wake() RETURNS void
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_wake';

-- A worker starts (or reconnects): its row in agentorch.workers, rows of
-- workers whose session is gone removed. Returns the settings it follows
-- and its id.
CREATE FUNCTION agentorch._worker_register(p_name text, p_host text, p_pid int) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id int;
BEGIN
    LOCK TABLE agentorch.workers IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM agentorch.workers
     WHERE backend_pid IS NOT NULL AND NOT agentorch._backend_alive(backend_pid);
    SELECT COALESCE(pg_catalog.max(id), 0) OPERATOR(pg_catalog.+) 1 INTO v_id FROM agentorch.workers;
    INSERT INTO agentorch.workers (id, node, pid, name, host, backend_pid)
    VALUES (v_id, COALESCE(p_host, 'unknown'), p_pid, p_name, p_host, pg_catalog.pg_backend_pid());
    RETURN agentorch._worker_settings() OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('worker_id', v_id);
END
$$;

-- A worker leaves (SIGTERM): its row goes.
CREATE FUNCTION agentorch._worker_exit(p_worker int) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM agentorch.workers
     WHERE id OPERATOR(pg_catalog.=) p_worker AND backend_pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid();
END
$$;

-- Does this session hold the lease of the step's attempt?
CREATE FUNCTION agentorch._worker_holds(p_run bigint, p_step text, p_attempt int) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM agentorch.steps
                    WHERE run_id OPERATOR(pg_catalog.=) p_run AND step_id OPERATOR(pg_catalog.=) p_step
                      AND status OPERATOR(pg_catalog.=) 'running'
                      AND worker OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
                      AND attempt OPERATOR(pg_catalog.=) p_attempt);
END
$$;

-- Heartbeat: the worker's row, and the leases of the steps it runs
-- ([[run_id, step_id, attempt], ...]) extended by agentorch.lease.
-- Returns {"lost": [[run_id, step_id], ...] (no longer ours: cancelled,
-- lease lost), "settings": {...}}.
CREATE FUNCTION agentorch._worker_heartbeat(p_worker int, p_steps jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_settings jsonb := agentorch._worker_settings();
    v_lost jsonb;
BEGIN
    UPDATE agentorch.workers SET heartbeat_at = pg_catalog.clock_timestamp()
     WHERE id OPERATOR(pg_catalog.=) p_worker AND backend_pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid();
    WITH k AS (SELECT (e OPERATOR(pg_catalog.->>) 0)::bigint AS run_id, e OPERATOR(pg_catalog.->>) 1 AS step_id,
                      (e OPERATOR(pg_catalog.->>) 2)::int AS attempt
                 FROM pg_catalog.jsonb_array_elements(p_steps) e),
         u AS (UPDATE agentorch.steps s
                  SET lease_until = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+)
                      pg_catalog.make_interval(secs => (v_settings OPERATOR(pg_catalog.->>) 'lease_ms')::int OPERATOR(pg_catalog./) 1000.0)
                 FROM k
                WHERE s.run_id OPERATOR(pg_catalog.=) k.run_id AND s.step_id OPERATOR(pg_catalog.=) k.step_id
                  AND s.status OPERATOR(pg_catalog.=) 'running'
                  AND s.worker OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
                  AND s.attempt OPERATOR(pg_catalog.=) k.attempt
               RETURNING s.run_id, s.step_id)
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(k.run_id, k.step_id)), '[]')
      INTO v_lost
      FROM k WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.run_id OPERATOR(pg_catalog.=) k.run_id
                                                 AND u.step_id OPERATOR(pg_catalog.=) k.step_id);
    -- the worker drops them: their policy slots and step locks go back now
    PERFORM agentorch._worker_slot_done((x OPERATOR(pg_catalog.->>) 0)::bigint, x OPERATOR(pg_catalog.->>) 1, -1, 0, 0)
       FROM pg_catalog.jsonb_array_elements(v_lost) x;
    RETURN pg_catalog.jsonb_build_object('lost', v_lost, 'settings', v_settings);
END
$$;

-- Append one batch of a step's streamed chunks ({run_id, step_id, chunk_attempt,
-- kinds, contents, datas}), all of one chunk attempt.
CREATE FUNCTION agentorch._worker_append(p_batch jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentorch._append_chunks(
        (p_batch OPERATOR(pg_catalog.->>) 'run_id')::bigint, p_batch OPERATOR(pg_catalog.->>) 'step_id',
        (p_batch OPERATOR(pg_catalog.->>) 'chunk_attempt')::int,
        ARRAY(SELECT x.v FROM pg_catalog.jsonb_array_elements_text(p_batch OPERATOR(pg_catalog.->) 'kinds')
                              WITH ORDINALITY AS x(v, o) ORDER BY x.o)::agentorch.chunk_kind[],
        ARRAY(SELECT x.v FROM pg_catalog.jsonb_array_elements_text(p_batch OPERATOR(pg_catalog.->) 'contents')
                              WITH ORDINALITY AS x(v, o) ORDER BY x.o),
        ARRAY(SELECT CASE WHEN x.v OPERATOR(pg_catalog.=) 'null'::jsonb THEN NULL ELSE x.v END
                FROM pg_catalog.jsonb_array_elements(p_batch OPERATOR(pg_catalog.->) 'datas')
                     WITH ORDINALITY AS x(v, o) ORDER BY x.o));
END
$$;

-- The worker's chunk flush: batches of streamed chunks of the steps it
-- runs ([{run_id, step_id, attempt, chunk_attempt, kinds, contents,
-- datas}], in one transaction, runs in id order), one NOTIFY per run.
-- Chunks of a step that is no longer ours are dropped. Returns
-- {"lost": [[run_id, step_id], ...]}.
CREATE FUNCTION agentorch._worker_flush(p_batches jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b jsonb;
    v_runs bigint[] := '{}';
    v_lost jsonb := '[]';
    v_run bigint;
BEGIN
    FOR b IN SELECT x FROM pg_catalog.jsonb_array_elements(p_batches) x
              ORDER BY (x OPERATOR(pg_catalog.->>) 'run_id')::bigint
    LOOP
        v_run := (b OPERATOR(pg_catalog.->>) 'run_id')::bigint;
        IF NOT agentorch._worker_holds(v_run, b OPERATOR(pg_catalog.->>) 'step_id',
                                       (b OPERATOR(pg_catalog.->>) 'attempt')::int) THEN
            v_lost := v_lost OPERATOR(pg_catalog.||)
                pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_array(v_run, b OPERATOR(pg_catalog.->) 'step_id'));
            -- the worker drops it: its policy slot and step lock go back now
            PERFORM agentorch._worker_slot_done(v_run, b OPERATOR(pg_catalog.->>) 'step_id', -1, 0, 0);
            CONTINUE;
        END IF;
        PERFORM agentorch._worker_append(b);
        IF NOT v_run OPERATOR(pg_catalog.=) ANY (v_runs) THEN
            v_runs := v_runs OPERATOR(pg_catalog.||) v_run;
        END IF;
    END LOOP;
    FOREACH v_run IN ARRAY v_runs LOOP
        PERFORM agentorch._notify_run(v_run);
    END LOOP;
    RETURN pg_catalog.jsonb_build_object('lost', v_lost);
END
$$;

-- Record the outcome of steps the worker finished (or gives back), each
-- only if this session still holds its attempt, in one transaction (runs
-- in id order), each in a subtransaction of its own: what cannot be
-- recorded is recorded as a failure, and the others all the same. An
-- element: {run_id, step_id, attempt, outcome ('succeeded', 'failed' or
-- 'release'), output, error, usage, retryable, retry_after_ms, sent,
-- defer_ms, policy (1 success, 0 failure of the target, -1 neutral),
-- tokens, chunks: [batches as _worker_flush takes them]}. The last chunks
-- commit together with the outcome. 'release' gives the step back
-- (ready again after defer_ms; the attempt is given back unless sent).
-- Returns {"lost": [[run_id, step_id], ...]}.
CREATE FUNCTION agentorch._worker_settle(p_steps jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e jsonb;
    b jsonb;
    st agentorch.steps;
    v_run bigint;
    v_step text;
    v_attempt int;
    v_outcome text;
    v_usage jsonb;
    v_counted int;
    v_runs bigint[] := '{}';
    v_lost jsonb := '[]';
BEGIN
    FOR e IN SELECT x FROM pg_catalog.jsonb_array_elements(p_steps) x
              ORDER BY (x OPERATOR(pg_catalog.->>) 'run_id')::bigint
    LOOP
        v_run := (e OPERATOR(pg_catalog.->>) 'run_id')::bigint;
        v_step := e OPERATOR(pg_catalog.->>) 'step_id';
        v_attempt := (e OPERATOR(pg_catalog.->>) 'attempt')::int;
        v_outcome := e OPERATOR(pg_catalog.->>) 'outcome';
        v_counted := 0;
        BEGIN
            PERFORM agentorch._lock_run(v_run);
            SELECT * INTO st FROM agentorch.steps
             WHERE run_id OPERATOR(pg_catalog.=) v_run AND step_id OPERATOR(pg_catalog.=) v_step FOR UPDATE;
            IF NOT FOUND OR st.status OPERATOR(pg_catalog.<>) 'running'
               OR st.worker IS DISTINCT FROM pg_catalog.pg_backend_pid()
               OR st.attempt OPERATOR(pg_catalog.<>) v_attempt THEN
                -- not ours any more (cancelled, lease lost): nothing is recorded
                v_lost := v_lost OPERATOR(pg_catalog.||)
                    pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_array(v_run, v_step));
                PERFORM agentorch._worker_slot_done(v_run, v_step, -1, 0, 0);
                CONTINUE;
            END IF;
            FOR b IN SELECT x FROM pg_catalog.jsonb_array_elements(COALESCE(e OPERATOR(pg_catalog.->) 'chunks', '[]')) x
            LOOP
                -- this step's chunks only, whatever run or step a batch names
                PERFORM agentorch._worker_append(b OPERATOR(pg_catalog.||)
                    pg_catalog.jsonb_build_object('run_id', v_run, 'step_id', v_step));
            END LOOP;
            -- usage is the worker's word: never negative (a run's cost only grows)
            v_usage := e OPERATOR(pg_catalog.->) 'usage';
            IF v_usage IS NOT NULL AND pg_catalog.jsonb_typeof(v_usage) OPERATOR(pg_catalog.=) 'object' THEN
                UPDATE agentorch.steps
                   SET prompt_tokens = prompt_tokens OPERATOR(pg_catalog.+) GREATEST(COALESCE((v_usage OPERATOR(pg_catalog.->>) 'prompt_tokens')::bigint, 0), 0),
                       completion_tokens = completion_tokens OPERATOR(pg_catalog.+) GREATEST(COALESCE((v_usage OPERATOR(pg_catalog.->>) 'completion_tokens')::bigint, 0), 0),
                       cost = cost OPERATOR(pg_catalog.+) GREATEST(COALESCE((v_usage OPERATOR(pg_catalog.->>) 'cost')::numeric, 0), 0)
                 WHERE run_id OPERATOR(pg_catalog.=) v_run AND step_id OPERATOR(pg_catalog.=) v_step;
                UPDATE agentorch.runs
                   SET prompt_tokens = prompt_tokens OPERATOR(pg_catalog.+) GREATEST(COALESCE((v_usage OPERATOR(pg_catalog.->>) 'prompt_tokens')::bigint, 0), 0),
                       completion_tokens = completion_tokens OPERATOR(pg_catalog.+) GREATEST(COALESCE((v_usage OPERATOR(pg_catalog.->>) 'completion_tokens')::bigint, 0), 0),
                       cost = cost OPERATOR(pg_catalog.+) GREATEST(COALESCE((v_usage OPERATOR(pg_catalog.->>) 'cost')::numeric, 0), 0)
                 WHERE id OPERATOR(pg_catalog.=) v_run;
            END IF;
            IF v_outcome OPERATOR(pg_catalog.=) 'release' THEN
                -- given back without an outcome (ao_state_release_step)
                UPDATE agentorch.steps
                   SET status = 'ready',
                       attempt = attempt OPERATOR(pg_catalog.-)
                                 CASE WHEN COALESCE((e OPERATOR(pg_catalog.->>) 'sent')::boolean, false) THEN 0 ELSE 1 END,
                       lease_until = NULL, worker = NULL,
                       not_before = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+)
                           pg_catalog.make_interval(secs => COALESCE((e OPERATOR(pg_catalog.->>) 'defer_ms')::float8, 0) OPERATOR(pg_catalog./) 1000.0)
                 WHERE run_id OPERATOR(pg_catalog.=) v_run AND step_id OPERATOR(pg_catalog.=) v_step;
            ELSIF v_outcome OPERATOR(pg_catalog.=) 'succeeded' AND st.spec OPERATOR(pg_catalog.?) 'response_schema'
                  AND NOT agentorch.is_valid_json(COALESCE(e OPERATOR(pg_catalog.->) 'output', 'null'::jsonb),
                                                  st.spec OPERATOR(pg_catalog.->) 'response_schema') THEN
                -- the server checks a structured reply itself, as an executor
                -- does: a worker's word is not enough
                PERFORM agentorch._finish_step(v_run, v_step, 'failed', NULL, pg_catalog.jsonb_build_object(
                    'message', 'the model''s structured output does not match response_schema',
                    'sqlstate', '22023',
                    'detail', (SELECT pg_catalog.string_agg(v.path OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) v.message, E'\n')
                                 FROM agentorch.validate_json(COALESCE(e OPERATOR(pg_catalog.->) 'output', 'null'::jsonb),
                                                              st.spec OPERATOR(pg_catalog.->) 'response_schema') v)));
                v_counted := 2;
            ELSIF v_outcome OPERATOR(pg_catalog.=) 'succeeded' THEN
                PERFORM agentorch._finish_step(v_run, v_step, 'succeeded', e OPERATOR(pg_catalog.->) 'output');
                v_counted := 1;
            ELSIF COALESCE((e OPERATOR(pg_catalog.->>) 'retryable')::boolean, false)
                  AND st.attempt OPERATOR(pg_catalog.<) st.max_attempts THEN
                PERFORM agentorch._retry_step(v_run, v_step, e OPERATOR(pg_catalog.->) 'error',
                    agentorch._worker_retry_delay(st.spec, st.attempt,
                        COALESCE((e OPERATOR(pg_catalog.->>) 'retry_after_ms')::float8, 0)));
            ELSE
                PERFORM agentorch._finish_step(v_run, v_step, 'failed', NULL,
                    COALESCE(e OPERATOR(pg_catalog.->) 'error', '{"message": "the step failed"}'));
                v_counted := 2;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            -- as an executor does (runner_net.c settle_guarded): recorded as failed
            BEGIN
                PERFORM agentorch._finish_step(v_run, v_step, 'failed', NULL,
                    pg_catalog.jsonb_build_object('message', 'could not record the result: ' OPERATOR(pg_catalog.||) SQLERRM,
                                                  'sqlstate', SQLSTATE))
                   FROM agentorch.steps
                  WHERE run_id OPERATOR(pg_catalog.=) v_run AND step_id OPERATOR(pg_catalog.=) v_step
                    AND status OPERATOR(pg_catalog.=) 'running'
                    AND worker OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
                    AND attempt OPERATOR(pg_catalog.=) v_attempt;
                v_counted := 2;
            EXCEPTION WHEN OTHERS THEN
                NULL;    -- even that failed: the lease expires and recovery takes the step back
            END;
        END;
        PERFORM agentorch._worker_slot_done(v_run, v_step,
            COALESCE((e OPERATOR(pg_catalog.->>) 'policy')::int, -1),
            COALESCE((e OPERATOR(pg_catalog.->>) 'tokens')::float8, 0), v_counted);
        IF NOT v_run OPERATOR(pg_catalog.=) ANY (v_runs) THEN
            v_runs := v_runs OPERATOR(pg_catalog.||) v_run;
        END IF;
    END LOOP;
    FOREACH v_run IN ARRAY v_runs LOOP
        PERFORM agentorch._notify_run(v_run);
    END LOOP;
    IF pg_catalog.cardinality(v_runs) OPERATOR(pg_catalog.>) 0 THEN
        PERFORM agentorch._worker_wake();
    END IF;
    RETURN pg_catalog.jsonb_build_object('lost', v_lost);
END
$$;

-- Internal: EXECUTE only for the extension owner (and roles it grants).
REVOKE EXECUTE ON FUNCTION agentorch._worker_claim(int, text, int, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION agentorch._worker_call_tools(bigint, text, int, jsonb) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION agentorch._worker_fallback(bigint, text, int, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION agentorch._worker_slot_done(bigint, text, int, double precision, int) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION agentorch._worker_retry_delay(jsonb, int, double precision) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION agentorch._worker_settings() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION agentorch._worker_wake() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION agentorch._worker_register(text, text, int) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION agentorch._worker_exit(int) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION agentorch._worker_holds(bigint, text, int) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION agentorch._worker_heartbeat(int, jsonb) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION agentorch._worker_append(jsonb) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION agentorch._worker_flush(jsonb) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION agentorch._worker_settle(jsonb) FROM PUBLIC;
