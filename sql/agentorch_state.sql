-- agentorch_state.sql -- the state layer: run and step transitions.
--
-- Part of the install script (the Makefile concatenates it after
-- agentorch.sql). These functions are the only code that changes run
-- state. Every transition writes its event row (and a status chunk) in the
-- same transaction, so a transition is never half-done; the callers (the
-- executor, the SQL API) commit. They run as the extension owner: EXECUTE
-- is revoked from PUBLIC at the end of this file, and the C API functions
-- switch to the owner before calling them.
--
-- Lock order, which keeps workers, cancel and submit_input deadlock-free:
-- executors claim ready steps with SKIP LOCKED (never waiting) and then
-- lock the run row (agentorch._lock_run), several runs in id order.
-- Everything else locks the run row first, and touches rows of steps that
-- may be ready (and so claimed by an executor) only with SKIP LOCKED: a
-- claimed step is settled by its executor once it holds the run lock.
--
-- Step states (see src/README.md for the diagram):
--   pending -> ready -> running -> succeeded | failed | skipped | cancelled
--   ready -> waiting (user_input) -> succeeded | failed | cancelled
--   running -> ready (retry with not_before, or an expired lease)
--   succeeded -> compensated (saga compensation after a run failure)

-------------------------------------------------------------------------------
-- Sequences, events, chunks, notifications
-------------------------------------------------------------------------------

-- Lock a run's row for the rest of the transaction; returns its status.
--
-- The small helpers below are plpgsql, not SQL functions, on purpose:
-- plpgsql caches the plans of its statements, while PostgreSQL 15 plans a
-- SQL function's body again on every call (the benchmark measured 28% of
-- an executor's CPU per step in that re-planning).
CREATE FUNCTION agentorch._lock_run(p_run bigint) RETURNS agentorch.run_status
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v agentorch.run_status;
BEGIN
    -- An update that changes nothing, not SELECT ... FOR UPDATE: the row
    -- version it leaves is this transaction's own, so the step
    -- subtransactions that update the run next do not turn its xmax into a
    -- MultiXact (a parent's lock plus a child's update), which every later
    -- read of the row would have to decode.
    UPDATE agentorch.runs SET last_event_seq = last_event_seq WHERE id OPERATOR(pg_catalog.=) p_run
    RETURNING status INTO v;
    RETURN v;
END
$$;

-- Append an event with the run's next event seq.
CREATE FUNCTION agentorch._event(p_run bigint, p_step text, p_kind text, p_data jsonb DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v bigint;
BEGIN
    UPDATE agentorch.runs SET last_event_seq = last_event_seq OPERATOR(pg_catalog.+) 1
     WHERE id OPERATOR(pg_catalog.=) p_run RETURNING last_event_seq INTO v;
    INSERT INTO agentorch.events (run_id, seq, kind, step_id, data) VALUES (p_run, v, p_kind, p_step, p_data);
    RETURN v;
END
$$;

-- Append a chunk with the run's next chunk seq (gap-free: the seq counter
-- lives on the run row, updated under its lock).
CREATE FUNCTION agentorch._chunk(p_run bigint, p_step text, p_attempt int,
                                 p_kind agentorch.chunk_kind, p_content text, p_data jsonb DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v bigint;
BEGIN
    UPDATE agentorch.runs SET last_chunk_seq = last_chunk_seq OPERATOR(pg_catalog.+) 1
     WHERE id OPERATOR(pg_catalog.=) p_run RETURNING last_chunk_seq INTO v;
    INSERT INTO agentorch.chunks (run_id, seq, step_id, attempt, kind, content, data)
    VALUES (p_run, v, p_step, COALESCE(p_attempt, 0), p_kind, p_content, p_data);
    RETURN v;
END
$$;

-- Append streamed chunks of one step in one statement (one seq range, one
-- multi-row insert): the flush path of llm steps. Nothing is appended to a
-- run that is no longer active. Returns the last seq, or NULL.
CREATE FUNCTION agentorch._append_chunks(p_run bigint, p_step text, p_attempt int,
                                         p_kinds agentorch.chunk_kind[], p_contents text[], p_datas jsonb[])
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_last bigint;
    v_n int := pg_catalog.cardinality(p_kinds);
BEGIN
    UPDATE agentorch.runs SET last_chunk_seq = last_chunk_seq OPERATOR(pg_catalog.+) v_n
     WHERE id OPERATOR(pg_catalog.=) p_run
       AND status OPERATOR(pg_catalog.=) ANY ('{running,waiting}'::agentorch.run_status[])
    RETURNING last_chunk_seq INTO v_last;
    IF v_last IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO agentorch.chunks (run_id, seq, step_id, attempt, kind, content, data)
    SELECT p_run, v_last OPERATOR(pg_catalog.-) v_n OPERATOR(pg_catalog.+) u.ord, p_step, p_attempt, u.k, u.c, u.d
      FROM ROWS FROM (pg_catalog.unnest(p_kinds), pg_catalog.unnest(p_contents),
                      pg_catalog.unnest(p_datas)) WITH ORDINALITY AS u(k, c, d, ord);
    RETURN v_last;
END
$$;

-- A status chunk and an event for one step transition (and a checkpoint
-- when given). One statement: the update of the run row takes every
-- sequence number the transition needs and feeds the inserts.
CREATE FUNCTION agentorch._step_transition(p_run bigint, p_step text, p_status agentorch.step_status,
                                           p_attempt int, p_event text, p_data jsonb DEFAULT NULL,
                                           p_checkpoint jsonb DEFAULT NULL)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- no stream output after a run's final chunk (a claimed step settled after cancel)
    WITH r AS (
        UPDATE agentorch.runs
           SET last_event_seq = last_event_seq OPERATOR(pg_catalog.+) 1,
               last_chunk_seq = last_chunk_seq OPERATOR(pg_catalog.+)
                   CASE WHEN status OPERATOR(pg_catalog.=) ANY ('{pending,running,waiting}'::agentorch.run_status[])
                        THEN 1 ELSE 0 END,
               last_checkpoint = last_checkpoint OPERATOR(pg_catalog.+) CASE WHEN p_checkpoint IS NULL THEN 0 ELSE 1 END
         WHERE id OPERATOR(pg_catalog.=) p_run
        RETURNING last_event_seq, last_chunk_seq, last_checkpoint,
                  status OPERATOR(pg_catalog.=) ANY ('{pending,running,waiting}'::agentorch.run_status[]) AS open, memory),
    e AS (
        INSERT INTO agentorch.events (run_id, seq, kind, step_id, data)
        SELECT p_run, r.last_event_seq, p_event, p_step, p_data FROM r),
    c AS (
        INSERT INTO agentorch.chunks (run_id, seq, step_id, attempt, kind, content, data)
        SELECT p_run, r.last_chunk_seq, p_step, COALESCE(p_attempt, 0), 'status',
               p_step OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) p_status::text,
               pg_catalog.jsonb_build_object('step_id', p_step, 'status', p_status, 'attempt', p_attempt)
               OPERATOR(pg_catalog.||) COALESCE(p_data, '{}')
          FROM r WHERE r.open)
    INSERT INTO agentorch.checkpoints (run_id, seq, step_id, state)
    SELECT p_run, r.last_checkpoint, p_step,
           p_checkpoint OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('memory', r.memory)
      FROM r WHERE p_checkpoint IS NOT NULL;
END
$$;

-- NOTIFY each run's private channel (agentorch_run_<id>_<token>, see
-- agentorch.channel()) once: the payload names the last chunk seq and
-- carries its content when it fits under the NOTIFY limit. Called once per
-- run per transaction by whoever commits the transition (coalescing).
-- Content is never sent anywhere else.
CREATE FUNCTION agentorch._notify_runs(p_runs bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_mode int := agentorch._notify_mode();
BEGIN
    IF v_mode OPERATOR(pg_catalog.=) 2 THEN
        RETURN;    -- the queue is held by a listener: clients read the rows
    END IF;
    PERFORM pg_catalog.pg_notify('agentorch_run_' OPERATOR(pg_catalog.||) r.id OPERATOR(pg_catalog.||) '_'
                                 OPERATOR(pg_catalog.||) r.channel_token,
                                 CASE WHEN v_mode OPERATOR(pg_catalog.=) 1
                                           OR pg_catalog.octet_length(p.whole) OPERATOR(pg_catalog.>) 7900
                                      THEN pg_catalog.jsonb_build_object('run_id', r.id, 'seq', ch.seq, 'kind', ch.kind,
                                                                         'truncated', true)::text
                                      ELSE p.whole END)
       FROM pg_catalog.unnest(p_runs) WITH ORDINALITY AS u(id, ord)
       JOIN agentorch.runs r ON r.id OPERATOR(pg_catalog.=) u.id
       JOIN agentorch.chunks ch ON ch.run_id OPERATOR(pg_catalog.=) r.id AND ch.seq OPERATOR(pg_catalog.=) r.last_chunk_seq,
            LATERAL (SELECT pg_catalog.jsonb_build_object('run_id', r.id, 'seq', ch.seq, 'kind', ch.kind,
                                                          'content', ch.content)::text AS whole) p
      ORDER BY u.ord;
END
$$;

-- _notify_runs for one run.
CREATE FUNCTION agentorch._notify_run(p_run bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentorch._notify_runs(ARRAY[p_run]);
END
$$;

-- Lifecycle notification on agentorch_events, which every role may LISTEN
-- to: run id, event, status and the owner's oid only, never content.
-- One notification per run, in the order given.
CREATE FUNCTION agentorch._notify_lifecycles(p_runs bigint[], p_event text, p_status agentorch.run_status)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    IF agentorch._notify_mode() OPERATOR(pg_catalog.=) 2 THEN
        RETURN;
    END IF;
    PERFORM pg_catalog.pg_notify('agentorch_events',
                pg_catalog.jsonb_build_object('run_id', r.id, 'event', p_event, 'status', p_status,
                                              'owner', r.owner)::text)
       FROM pg_catalog.unnest(p_runs) WITH ORDINALITY AS u(id, ord)
       JOIN agentorch.runs r ON r.id OPERATOR(pg_catalog.=) u.id
      ORDER BY u.ord;
END
$$;

-- _notify_lifecycles for one run.
CREATE FUNCTION agentorch._notify_lifecycle(p_run bigint, p_event text, p_status agentorch.run_status)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentorch._notify_lifecycles(ARRAY[p_run], p_event, p_status);
END
$$;

-------------------------------------------------------------------------------
-- Context of templates and conditions
-------------------------------------------------------------------------------

-- {input, memory, steps: {<id>: {output, status, error}}} of a run, plus
-- item/index inside a loop iteration. Loop iterations are not steps of
-- their own in the context; their loop's output is the array.
CREATE FUNCTION agentorch._context(p_run bigint, p_item jsonb DEFAULT NULL, p_index int DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT pg_catalog.jsonb_build_object(
        'input', r.input, 'memory', r.memory,
        'steps', COALESCE((SELECT pg_catalog.jsonb_object_agg(s.step_id,
                                    pg_catalog.jsonb_build_object('output', s.output, 'status', s.status,
                                                                  'error', s.error))
                           FROM agentorch.steps s
                           WHERE s.run_id OPERATOR(pg_catalog.=) p_run AND s.iteration IS NULL), '{}'))
        OPERATOR(pg_catalog.||) CASE WHEN p_index IS NULL THEN '{}'::jsonb
                ELSE pg_catalog.jsonb_build_object('item', p_item, 'index', p_index) END
    FROM agentorch.runs r WHERE r.id OPERATOR(pg_catalog.=) p_run);
END
$$;

-------------------------------------------------------------------------------
-- Materialization
-------------------------------------------------------------------------------

-- The definition of a tool as the run pinned it when it started (start()
-- checked the owner may use it); NULL for a tool the run did not pin, which
-- the run therefore cannot use -- never the live definition, which its
-- owner may have replaced since.
CREATE FUNCTION agentorch._tool(p_run bigint, p_name text) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v jsonb;
BEGIN
    IF p_name IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT r.tools OPERATOR(pg_catalog.->) p_name INTO v FROM agentorch.runs r WHERE r.id OPERATOR(pg_catalog.=) p_run;
    RETURN v;
END
$$;

-- Is a step spec network work (llm, or a tool of kind http)? p_tools: the
-- run's pinned tools.
CREATE FUNCTION agentorch._is_network_in(p_spec jsonb, p_tools jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN p_spec OPERATOR(pg_catalog.->>) 'type' OPERATOR(pg_catalog.=) 'llm'
        OR (p_spec OPERATOR(pg_catalog.->>) 'type' OPERATOR(pg_catalog.=) 'tool'
            AND COALESCE(p_tools OPERATOR(pg_catalog.->) (p_spec OPERATOR(pg_catalog.->>) 'tool')
                         OPERATOR(pg_catalog.->>) 'kind' OPERATOR(pg_catalog.=) 'http', false));
END
$$;

CREATE FUNCTION agentorch._is_network(p_spec jsonb, p_run bigint) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN agentorch._is_network_in(p_spec, (SELECT r.tools FROM agentorch.runs r WHERE r.id OPERATOR(pg_catalog.=) p_run));
END
$$;

-- Attempts a step may make: step retry, else tool policy, else the
-- setting. p_tools: the run's pinned tools.
CREATE FUNCTION agentorch._max_attempts_in(p_spec jsonb, p_tools jsonb) RETURNS int
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN COALESCE((p_spec OPERATOR(pg_catalog.->) 'retry' OPERATOR(pg_catalog.->>) 'max_attempts')::int,
                    (p_tools OPERATOR(pg_catalog.->) (p_spec OPERATOR(pg_catalog.->>) 'tool')
                        OPERATOR(pg_catalog.#>>) '{policy,retry,max_attempts}')::int,
                    pg_catalog.current_setting('agentorch.retry_max_attempts')::int);
END
$$;

CREATE FUNCTION agentorch._max_attempts(p_spec jsonb, p_run bigint) RETURNS int
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN agentorch._max_attempts_in(p_spec, (SELECT r.tools FROM agentorch.runs r WHERE r.id OPERATOR(pg_catalog.=) p_run));
END
$$;

-- Insert the top-level steps of runs, in one statement. Run i gets the
-- steps of template p_templates[i], an index into p_bodies (normalised
-- workflow bodies) and p_tools (the tools pinned with that body): the runs
-- of one workflow share one template, whose steps are worked out once.
-- Branch targets get an implicit dependency on their branch; workflow
-- defaults (retry, timeout, model) are merged into each step's spec. With
-- p_ready, steps that depend on nothing start ready (what _promote makes
-- of a new run), else pending.
CREATE FUNCTION agentorch._materialize_runs(p_runs bigint[], p_templates int[], p_priorities int[],
                                            p_bodies jsonb[], p_tools jsonb[], p_ready boolean)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- custom plans measured no better, but were planned anew on every call
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    WITH tmpl AS (
        SELECT b.t, x.s OPERATOR(pg_catalog.->>) 'id' AS step_id,
               (x.s OPERATOR(pg_catalog.->>) 'type')::agentorch.step_kind AS kind, sp.spec, x.ord::int AS ord,
               ARRAY(SELECT pg_catalog.jsonb_array_elements_text(COALESCE(x.s OPERATOR(pg_catalog.->) 'depends_on', '[]')))
               OPERATOR(pg_catalog.||)
               ARRAY(SELECT br OPERATOR(pg_catalog.->>) 'id'
                       FROM pg_catalog.jsonb_array_elements(b.body OPERATOR(pg_catalog.->) 'steps') br
                      WHERE bb.branches AND br OPERATOR(pg_catalog.->>) 'type' OPERATOR(pg_catalog.=) 'branch'
                        AND (pg_catalog.jsonb_path_exists(br, '$.cases[*].then[*] ? (@ == $id)',
                                                          pg_catalog.jsonb_build_object('id', x.s OPERATOR(pg_catalog.->>) 'id'))
                             OR COALESCE(br OPERATOR(pg_catalog.->) 'else', '[]') OPERATOR(pg_catalog.?) (x.s OPERATOR(pg_catalog.->>) 'id'))) AS deps,
               agentorch._max_attempts_in(sp.spec, b.tools) AS max_attempts,
               agentorch._is_network_in(sp.spec, b.tools) AS network
          FROM ROWS FROM (pg_catalog.unnest(p_bodies), pg_catalog.unnest(p_tools)) WITH ORDINALITY AS b(body, tools, t),
               LATERAL (SELECT pg_catalog.jsonb_path_exists(b.body, '$.steps[*] ? (@.type == "branch")') AS branches) bb,
               LATERAL pg_catalog.jsonb_array_elements(b.body OPERATOR(pg_catalog.->) 'steps') WITH ORDINALITY AS x(s, ord),
               LATERAL (SELECT COALESCE(b.body OPERATOR(pg_catalog.->) 'defaults', '{}') OPERATOR(pg_catalog.||) x.s AS spec) sp)
    INSERT INTO agentorch.steps (run_id, step_id, kind, spec, depends_on, ord, priority, max_attempts, network, status)
    SELECT u.run, t.step_id, t.kind, t.spec, t.deps, t.ord, u.priority, t.max_attempts, t.network,
           CASE WHEN p_ready AND pg_catalog.cardinality(t.deps) OPERATOR(pg_catalog.=) 0
                     AND NOT t.spec OPERATOR(pg_catalog.?) 'compensates'
                THEN 'ready' ELSE 'pending' END::agentorch.step_status
      FROM ROWS FROM (pg_catalog.unnest(p_runs), pg_catalog.unnest(p_templates), pg_catalog.unnest(p_priorities))
               AS u(run, t, priority)
      JOIN tmpl t ON t.t OPERATOR(pg_catalog.=) u.t
     ORDER BY u.run, t.ord;
END
$$;

-- Insert the top-level steps of one run (pending).
CREATE FUNCTION agentorch._materialize(p_run bigint, p_body jsonb, p_priority int) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentorch._materialize_runs(ARRAY[p_run], ARRAY[1], ARRAY[p_priority], ARRAY[p_body],
        ARRAY[(SELECT r.tools FROM agentorch.runs r WHERE r.id OPERATOR(pg_catalog.=) p_run)], false);
END
$$;

-- The body of a simple run: one llm step made from its input.
CREATE FUNCTION agentorch._simple_body(p_input jsonb, p_options jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pg_catalog.jsonb_build_object('steps',
        pg_catalog.jsonb_build_array(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'id', 'main', 'type', 'llm',
            'prompt', p_input OPERATOR(pg_catalog.->) 'prompt', 'system', p_input OPERATOR(pg_catalog.->) 'system',
            'messages', p_input OPERATOR(pg_catalog.->) 'messages',
            'model', COALESCE(p_input OPERATOR(pg_catalog.->) 'model', p_options OPERATOR(pg_catalog.->) 'model'),
            'response_schema', p_input OPERATOR(pg_catalog.->) 'response_schema',
            'tools', p_input OPERATOR(pg_catalog.->) 'tools',
            'temperature', p_input OPERATOR(pg_catalog.->) 'temperature',
            'max_tokens', p_input OPERATOR(pg_catalog.->) 'max_tokens',
            'max_turns', p_input OPERATOR(pg_catalog.->) 'max_turns'))));
END
$$;

-- Create runs and their steps, in a few statements for all of them (start()
-- creates one, start_many() many): run i is p_orchestrations[i],
-- p_workflows[i] ... as the caller (p_owner) asked, with the steps and
-- pinned tools of template p_templates[i] (an index into p_bodies and
-- p_tools; see _materialize_runs; a NULL body is a simple run's, made from
-- the input of the one run that uses it). Returns the run ids in the order of the
-- arrays; for an idempotency key the owner used already, the existing run
-- (not created again). Each new run is running, its steps that depend on
-- nothing ready, with its run_started event and first status chunk, its
-- audit row, and its notifications -- what _promote, _event, _chunk,
-- _notify_lifecycle and _notify_run would make of it one by one.
CREATE FUNCTION agentorch._create_runs(p_owner oid, p_orchestrations agentorch.orchestration_type[],
                                       p_workflows text[], p_versions int[], p_hashes text[],
                                       p_inputs jsonb[], p_options jsonb[], p_selections jsonb[],
                                       p_templates int[], p_bodies jsonb[], p_tools jsonb[],
                                       p_search_path text)
RETURNS SETOF bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_n int := pg_catalog.cardinality(p_orchestrations);
    v_bodies jsonb[];
    v_ids bigint[];
    v_new bigint[];
BEGIN
    IF v_n IS NULL OR v_n OPERATOR(pg_catalog.=) 0 THEN
        RETURN;
    END IF;
    -- simple runs' bodies
    v_bodies := ARRAY(
        SELECT COALESCE(b.body, agentorch._simple_body(f.input, f.options))
          FROM pg_catalog.unnest(p_bodies) WITH ORDINALITY AS b(body, t)
          LEFT JOIN (SELECT DISTINCT ON (u.t) u.t, u.input, u.options
                       FROM ROWS FROM (pg_catalog.unnest(p_templates), pg_catalog.unnest(p_inputs),
                                       pg_catalog.unnest(p_options)) AS u(t, input, options)
                      ORDER BY u.t) f ON f.t OPERATOR(pg_catalog.=) b.t AND b.body IS NULL
         ORDER BY b.t);
    -- the ids are taken first, in the arrays' order
    v_ids := ARRAY(SELECT pg_catalog.nextval('agentorch.runs_id_seq') FROM pg_catalog.generate_series(1, v_n));
    WITH ins AS (
        INSERT INTO agentorch.runs AS r (id, orchestration, status, workflow_name, workflow_version, definition_hash,
                                         selection, input, options, priority, owner, idempotency_key,
                                         trace_id, started_at, deadline, memory, parent_id, search_path, tools,
                                         last_event_seq, last_chunk_seq)
        SELECT u.id, u.orchestration, 'running', u.workflow, u.version, u.hash, u.selection, u.input, u.options,
               COALESCE((u.options OPERATOR(pg_catalog.->>) 'priority')::int, 0), p_owner,
               u.options OPERATOR(pg_catalog.->>) 'idempotency_key',
               -- the W3C trace id: the caller's (options.traceparent), else a new one
               COALESCE(pg_catalog.substring(u.options OPERATOR(pg_catalog.->>) 'traceparent',
                                             '^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$'),
                        pg_catalog.md5(pg_catalog.random()::text OPERATOR(pg_catalog.||) pg_catalog.clock_timestamp()::text
                                       OPERATOR(pg_catalog.||) pg_catalog.pg_backend_pid()::text)),
               pg_catalog.now(),
               -- the deadline: options.timeout, or the time budget (budget.max_duration) when sooner
               LEAST(pg_catalog.now() OPERATOR(pg_catalog.+) (u.options OPERATOR(pg_catalog.->>) 'timeout')::interval,
                     pg_catalog.now() OPERATOR(pg_catalog.+)
                         (u.options OPERATOR(pg_catalog.#>>) '{budget,max_duration}')::interval),
               COALESCE(b.body OPERATOR(pg_catalog.->) 'memory', '{}'),
               (u.options OPERATOR(pg_catalog.->>) 'parent_id')::bigint, p_search_path, b.tools,
               1, 1    -- the run_started event and the first status chunk, below
          FROM ROWS FROM (pg_catalog.unnest(v_ids), pg_catalog.unnest(p_orchestrations), pg_catalog.unnest(p_workflows),
                          pg_catalog.unnest(p_versions), pg_catalog.unnest(p_hashes), pg_catalog.unnest(p_inputs),
                          pg_catalog.unnest(p_options), pg_catalog.unnest(p_selections), pg_catalog.unnest(p_templates))
                   AS u(id, orchestration, workflow, version, hash, input, options, selection, t)
          JOIN ROWS FROM (pg_catalog.unnest(v_bodies), pg_catalog.unnest(p_tools)) WITH ORDINALITY AS b(body, tools, t)
            ON b.t OPERATOR(pg_catalog.=) u.t
         ORDER BY u.id
        ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING r.id)
    SELECT pg_catalog.array_agg(ins.id ORDER BY ins.id) INTO v_new FROM ins;

    IF v_new IS NOT NULL THEN
        PERFORM agentorch._materialize_runs(
            ARRAY(SELECT u.id FROM ROWS FROM (pg_catalog.unnest(v_ids), pg_catalog.unnest(p_templates)) AS u(id, t)
                   JOIN pg_catalog.unnest(v_new) AS n(id) ON n.id OPERATOR(pg_catalog.=) u.id ORDER BY u.id),
            ARRAY(SELECT u.t FROM ROWS FROM (pg_catalog.unnest(v_ids), pg_catalog.unnest(p_templates)) AS u(id, t)
                   JOIN pg_catalog.unnest(v_new) AS n(id) ON n.id OPERATOR(pg_catalog.=) u.id ORDER BY u.id),
            ARRAY(SELECT COALESCE((u.o OPERATOR(pg_catalog.->>) 'priority')::int, 0)
                    FROM ROWS FROM (pg_catalog.unnest(v_ids), pg_catalog.unnest(p_options)) AS u(id, o)
                   JOIN pg_catalog.unnest(v_new) AS n(id) ON n.id OPERATOR(pg_catalog.=) u.id ORDER BY u.id),
            v_bodies, p_tools, true);

        INSERT INTO agentorch.events (run_id, seq, kind, step_id, data)
        SELECT u.id, 1, 'run_started', NULL,
               pg_catalog.jsonb_build_object('orchestration', u.orchestration, 'workflow', u.workflow, 'version', u.version)
          FROM ROWS FROM (pg_catalog.unnest(v_ids), pg_catalog.unnest(p_orchestrations), pg_catalog.unnest(p_workflows),
                          pg_catalog.unnest(p_versions)) AS u(id, orchestration, workflow, version)
          JOIN pg_catalog.unnest(v_new) AS n(id) ON n.id OPERATOR(pg_catalog.=) u.id
         ORDER BY u.id;
        INSERT INTO agentorch.chunks (run_id, seq, step_id, attempt, kind, content, data)
        SELECT n.id, 1, NULL, 0, 'status', 'run started', '{"status": "running"}'
          FROM pg_catalog.unnest(v_new) AS n(id) ORDER BY n.id;

        PERFORM agentorch._notify_lifecycles(v_new, 'run_started', 'running');
        PERFORM agentorch._notify_runs(v_new);

        -- llm steps may start: not past a run's budget (options.budget)
        PERFORM agentorch._budget_gate(u.id)
           FROM ROWS FROM (pg_catalog.unnest(v_ids), pg_catalog.unnest(p_options)) AS u(id, o)
           JOIN pg_catalog.unnest(v_new) AS n(id) ON n.id OPERATOR(pg_catalog.=) u.id
          WHERE u.o OPERATOR(pg_catalog.?) 'budget'
          ORDER BY u.id;
    END IF;

    -- every start is audited, also one that found its idempotency key's run
    -- (its detail says "existing": true)
    RETURN QUERY
    WITH res AS (
        SELECT u.ord, u.orchestration, u.workflow, n.id IS NULL AS existing,
               COALESCE(n.id, (SELECT r.id FROM agentorch.runs r
                                WHERE r.owner OPERATOR(pg_catalog.=) p_owner
                                  AND r.idempotency_key OPERATOR(pg_catalog.=) (u.options OPERATOR(pg_catalog.->>) 'idempotency_key'))) AS id
          FROM ROWS FROM (pg_catalog.unnest(v_ids), pg_catalog.unnest(p_orchestrations), pg_catalog.unnest(p_workflows),
                          pg_catalog.unnest(p_options)) WITH ORDINALITY AS u(id, orchestration, workflow, options, ord)
          LEFT JOIN pg_catalog.unnest(v_new) AS n(id) ON n.id OPERATOR(pg_catalog.=) u.id),
    audit AS (
        INSERT INTO agentorch.audit_log (actor, action, object, run_id, detail)
        SELECT p_owner, 'start', res.orchestration::text, res.id,
               CASE WHEN res.existing THEN pg_catalog.jsonb_build_object('workflow', res.workflow, 'existing', true)
                    ELSE pg_catalog.jsonb_build_object('workflow', res.workflow) END
          FROM res ORDER BY res.ord)
    SELECT res.id FROM res ORDER BY res.ord;
END
$$;

-- Create one run (see _create_runs); p_body NULL: a simple run, whose one
-- llm step is made from its input.
CREATE FUNCTION agentorch._create_run(p_owner oid, p_orchestration agentorch.orchestration_type,
                                      p_workflow text, p_version int, p_hash text, p_body jsonb,
                                      p_input jsonb, p_options jsonb, p_selection jsonb DEFAULT NULL,
                                      p_search_path text DEFAULT 'pg_catalog, pg_temp',
                                      p_tools jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT agentorch._create_runs(p_owner, ARRAY[p_orchestration], ARRAY[p_workflow], ARRAY[p_version],
        ARRAY[p_hash], ARRAY[p_input], ARRAY[p_options], ARRAY[p_selection], ARRAY[1],
        ARRAY[p_body], ARRAY[p_tools], p_search_path));
END
$$;

-------------------------------------------------------------------------------
-- Readiness
-------------------------------------------------------------------------------

-- Move pending top-level steps whose dependencies are all done: to ready
-- when at least one dependency succeeded (or there are none), to skipped
-- when all were skipped -- so skipping propagates down a chain, and a join
-- after a branch runs with whichever side was taken. Repeats until stable.
CREATE FUNCTION agentorch._promote(p_run bigint) RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    n_skipped int;
    n_total int := 0;
    v_llm boolean := false;
BEGIN
    LOOP
        n_skipped := 0;
        FOR r IN
            -- computed once (not as the inner side of a join, rescanned per step:
            -- with a large steps table the planner chose that, and a chain's
            -- promotion cost grew with history)
            WITH cand AS MATERIALIZED (
                SELECT s.step_id,
                       pg_catalog.count(d.step_id) AS n,
                       COALESCE(pg_catalog.bool_and(d.status OPERATOR(pg_catalog.=) ANY
                                ('{succeeded,skipped,compensated}'::agentorch.step_status[])), true) AS done,
                       COALESCE(pg_catalog.bool_or(d.status OPERATOR(pg_catalog.=) ANY
                                ('{succeeded,compensated}'::agentorch.step_status[])), false) AS any_ok
                FROM agentorch.steps s
                LEFT JOIN agentorch.steps d
                  ON d.run_id OPERATOR(pg_catalog.=) s.run_id
                 AND d.step_id OPERATOR(pg_catalog.=) ANY (s.depends_on)
                WHERE s.run_id OPERATOR(pg_catalog.=) p_run AND s.status OPERATOR(pg_catalog.=) 'pending'
                  AND s.parent_step_id IS NULL AND NOT s.spec OPERATOR(pg_catalog.?) 'compensates'
                GROUP BY s.step_id)
            UPDATE agentorch.steps s
               SET status = CASE WHEN c.n OPERATOR(pg_catalog.=) 0 OR c.any_ok
                                 THEN 'ready'::agentorch.step_status ELSE 'skipped' END,
                   finished_at = CASE WHEN c.n OPERATOR(pg_catalog.=) 0 OR c.any_ok
                                      THEN NULL ELSE pg_catalog.now() END
            FROM cand c
            WHERE s.run_id OPERATOR(pg_catalog.=) p_run AND s.step_id OPERATOR(pg_catalog.=) c.step_id
              AND c.done
            RETURNING s.step_id, s.status, s.kind
        LOOP
            n_total := n_total OPERATOR(pg_catalog.+) 1;
            v_llm := v_llm OR (r.status OPERATOR(pg_catalog.=) 'ready' AND r.kind OPERATOR(pg_catalog.=) 'llm');
            IF r.status OPERATOR(pg_catalog.=) 'skipped' THEN
                n_skipped := n_skipped OPERATOR(pg_catalog.+) 1;
                PERFORM agentorch._step_transition(p_run, r.step_id, 'skipped', 0, 'step_skipped',
                                                   '{"reason": "no dependency succeeded"}');
            END IF;
        END LOOP;
        EXIT WHEN n_skipped OPERATOR(pg_catalog.=) 0;
    END LOOP;
    IF v_llm THEN
        -- llm steps may start: not past the run's budget (options.budget)
        PERFORM agentorch._budget_gate(p_run);
    END IF;
    RETURN n_total;
END
$$;

-------------------------------------------------------------------------------
-- Step completion
-------------------------------------------------------------------------------

-- Record a step's final outcome (succeeded, failed, skipped, cancelled) and
-- move the run on: children report to their parent, a failed top-level
-- step fails the run, anything else promotes dependents and may finish
-- the run.
CREATE FUNCTION agentorch._finish_step(p_run bigint, p_step text, p_status agentorch.step_status,
                                       p_output jsonb DEFAULT NULL, p_error jsonb DEFAULT NULL,
                                       p_usage jsonb DEFAULT NULL, p_defer boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s agentorch.steps;
    v_problems jsonb;
BEGIN
    -- a step's output_schema binds its output: a violation fails the step
    -- (checked in the same UPDATE, so a step without one costs nothing more)
    UPDATE agentorch.steps
       SET status = CASE WHEN p_status OPERATOR(pg_catalog.=) 'succeeded' AND spec OPERATOR(pg_catalog.?) 'output_schema'
                          AND NOT agentorch.is_valid_json(COALESCE(p_output, 'null'::jsonb), spec OPERATOR(pg_catalog.->) 'output_schema')
                         THEN 'failed'::agentorch.step_status ELSE p_status END,
           output = p_output, error = p_error, finished_at = pg_catalog.clock_timestamp(),
           lease_until = NULL, worker = NULL, crashes = 0,
           started_at = COALESCE(started_at, pg_catalog.now()),
           prompt_tokens = prompt_tokens OPERATOR(pg_catalog.+) COALESCE((p_usage OPERATOR(pg_catalog.->>) 'prompt_tokens')::bigint, 0),
           completion_tokens = completion_tokens OPERATOR(pg_catalog.+) COALESCE((p_usage OPERATOR(pg_catalog.->>) 'completion_tokens')::bigint, 0),
           cost = cost OPERATOR(pg_catalog.+) COALESCE((p_usage OPERATOR(pg_catalog.->>) 'cost')::numeric, 0)
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND step_id OPERATOR(pg_catalog.=) p_step
    RETURNING * INTO s;
    IF s.status OPERATOR(pg_catalog.<>) p_status THEN
        -- the output did not match: the problems, in the error
        SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('path', v.path, 'message', v.message))
          INTO v_problems
          FROM agentorch.validate_json(COALESCE(p_output, 'null'::jsonb), s.spec OPERATOR(pg_catalog.->) 'output_schema') v;
        p_status := s.status;
        p_error := pg_catalog.jsonb_build_object(
            'message', 'the output of step ' OPERATOR(pg_catalog.||) p_step OPERATOR(pg_catalog.||) ' does not match its output_schema',
            'sqlstate', '22023',
            'detail', (SELECT pg_catalog.string_agg((x OPERATOR(pg_catalog.->>) 'path') OPERATOR(pg_catalog.||) ': '
                                                    OPERATOR(pg_catalog.||) (x OPERATOR(pg_catalog.->>) 'message'), E'\n')
                         FROM pg_catalog.jsonb_array_elements(v_problems) x),
            'problems', v_problems, 'output', p_output);
        p_output := NULL;
        UPDATE agentorch.steps SET output = NULL, error = p_error
         WHERE run_id OPERATOR(pg_catalog.=) p_run AND step_id OPERATOR(pg_catalog.=) p_step
        RETURNING * INTO s;
    END IF;
    IF p_usage IS NOT NULL THEN
        UPDATE agentorch.runs
           SET prompt_tokens = prompt_tokens OPERATOR(pg_catalog.+) COALESCE((p_usage OPERATOR(pg_catalog.->>) 'prompt_tokens')::bigint, 0),
               completion_tokens = completion_tokens OPERATOR(pg_catalog.+) COALESCE((p_usage OPERATOR(pg_catalog.->>) 'completion_tokens')::bigint, 0),
               cost = cost OPERATOR(pg_catalog.+) COALESCE((p_usage OPERATOR(pg_catalog.->>) 'cost')::numeric, 0)
         WHERE id OPERATOR(pg_catalog.=) p_run;
    END IF;

    PERFORM agentorch._step_transition(p_run, p_step, p_status, s.attempt, 'step_' OPERATOR(pg_catalog.||) p_status::text,
        CASE WHEN p_status OPERATOR(pg_catalog.=) 'failed' THEN pg_catalog.jsonb_build_object('error', p_error)
             WHEN p_status OPERATOR(pg_catalog.=) 'skipped' THEN p_error
             ELSE NULL END,
        CASE WHEN p_status OPERATOR(pg_catalog.=) 'succeeded'
             THEN pg_catalog.jsonb_build_object('step_id', p_step, 'output', p_output) END);

    IF s.spec OPERATOR(pg_catalog.?) 'compensates' THEN
        -- a compensation action: mark what it undid, then start the next one
        IF p_status OPERATOR(pg_catalog.=) 'succeeded' THEN
            UPDATE agentorch.steps SET status = 'compensated'
             WHERE run_id OPERATOR(pg_catalog.=) p_run AND step_id OPERATOR(pg_catalog.=) (s.spec OPERATOR(pg_catalog.->>) 'compensates');
            PERFORM agentorch._event(p_run, s.spec OPERATOR(pg_catalog.->>) 'compensates', 'step_compensated');
        END IF;
        UPDATE agentorch.steps SET status = 'ready'
         WHERE run_id OPERATOR(pg_catalog.=) p_run AND status OPERATOR(pg_catalog.=) 'pending'
           AND spec OPERATOR(pg_catalog.?) 'compensates'
           AND ord OPERATOR(pg_catalog.=) (SELECT pg_catalog.min(ord) FROM agentorch.steps
                                          WHERE run_id OPERATOR(pg_catalog.=) p_run
                                            AND status OPERATOR(pg_catalog.=) 'pending'
                                            AND spec OPERATOR(pg_catalog.?) 'compensates');
        PERFORM agentorch._maybe_finish(p_run);
    ELSIF s.parent_step_id IS NOT NULL THEN
        PERFORM agentorch._child_finished(p_run, s.parent_step_id);
    ELSIF s.spec OPERATOR(pg_catalog.?) 'planner' THEN
        -- a planner or reactive run's plan arrived (or did not)
        PERFORM agentorch._plan_finished(p_run, s, p_status, p_output, p_error);
        IF NOT p_defer THEN
            PERFORM agentorch._settle_run(p_run);
        END IF;
    ELSIF p_status OPERATOR(pg_catalog.=) 'failed' AND s.plan_version OPERATOR(pg_catalog.>) 0 THEN
        -- a step of a plan failed for good: ask for a revision that knows
        IF s.kind OPERATOR(pg_catalog.=) 'llm' THEN
            PERFORM agentorch._adapt_models(p_run);
        END IF;
        PERFORM agentorch._replan(p_run, 'error', 'step ' OPERATOR(pg_catalog.||) p_step OPERATOR(pg_catalog.||) ' failed: '
                                  OPERATOR(pg_catalog.||) COALESCE(p_error OPERATOR(pg_catalog.->>) 'message', 'unknown error'),
                                  NULL, p_step);
        IF NOT p_defer THEN
            PERFORM agentorch._settle_run(p_run);
        END IF;
    ELSIF p_status OPERATOR(pg_catalog.=) 'failed' THEN
        PERFORM agentorch._fail_run(p_run, pg_catalog.jsonb_build_object(
            'message', 'step ' OPERATOR(pg_catalog.||) p_step OPERATOR(pg_catalog.||) ' failed: '
                       OPERATOR(pg_catalog.||) COALESCE(p_error OPERATOR(pg_catalog.->>) 'message', 'unknown error'),
            'step_id', p_step, 'error', p_error));
    ELSE
        IF p_status OPERATOR(pg_catalog.=) 'succeeded' AND s.plan_version OPERATOR(pg_catalog.>) 0 THEN
            PERFORM agentorch._reactive_check(p_run, p_step);
        END IF;
        IF NOT p_defer THEN
            PERFORM agentorch._settle_run(p_run);
        END IF;
    END IF;
END
$$;

-- Make dependents of finished steps ready and finish the runs where
-- nothing is open. The executor calls it once per claim round for every
-- run the round touched (_finish_step's p_defer), not after every step:
-- promotion, then one statement finds the runs whose status must change
-- (no open step left, or running <-> waiting): those that succeeded are
-- closed together (_close_runs), the others go through _maybe_finish.
CREATE FUNCTION agentorch._settle_runs(p_runs bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- its statements' plans do not depend on the array's size (index lookups by
-- run); custom plans were built on every call, a fifth of a settle's time
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    r record;
    v_done bigint[] := '{}';
BEGIN
    -- promotion: one run (a chain's round) directly; of several, only those
    -- with a pending top-level step, found by one statement (single-step runs
    -- and fan-outs have none). One statement per run promoted: the same over
    -- an array of runs measured no cheaper, and its generic plan (a bitmap
    -- scan sized for many runs) made promoting one new run several times slower.
    IF pg_catalog.cardinality(p_runs) OPERATOR(pg_catalog.=) 1 THEN
        PERFORM agentorch._promote(p_runs[1]);
    ELSE
        PERFORM agentorch._promote(u.id)
           FROM pg_catalog.unnest(p_runs) WITH ORDINALITY AS u(id, ord)
          WHERE EXISTS (SELECT 1 FROM agentorch.steps s
                         WHERE s.run_id OPERATOR(pg_catalog.=) u.id AND s.status OPERATOR(pg_catalog.=) 'pending'
                           AND s.parent_step_id IS NULL)
          ORDER BY u.ord;
    END IF;
    FOR r IN SELECT ru.id, c.open OPERATOR(pg_catalog.=) 0 AND NOT ru.compensating AS succeeded
               FROM agentorch.runs ru,
                    LATERAL (SELECT pg_catalog.count(*) FILTER (WHERE s.status OPERATOR(pg_catalog.=) ANY ('{ready,running}'::agentorch.step_status[])) AS active,
                                    pg_catalog.count(*) FILTER (WHERE s.status OPERATOR(pg_catalog.=) 'waiting') AS waiting,
                                    pg_catalog.count(*) AS open
                               FROM agentorch.steps s
                              WHERE s.run_id OPERATOR(pg_catalog.=) ru.id
                                AND s.status OPERATOR(pg_catalog.=) ANY ('{pending,ready,running,waiting}'::agentorch.step_status[])) c
              WHERE ru.id OPERATOR(pg_catalog.=) ANY (p_runs)
                AND ru.status OPERATOR(pg_catalog.=) ANY ('{running,waiting}'::agentorch.run_status[])
                AND (c.open OPERATOR(pg_catalog.=) 0
                     OR (c.active OPERATOR(pg_catalog.=) 0 AND c.waiting OPERATOR(pg_catalog.>) 0
                         AND ru.status OPERATOR(pg_catalog.=) 'running')
                     OR (c.active OPERATOR(pg_catalog.>) 0 AND ru.status OPERATOR(pg_catalog.=) 'waiting'))
              ORDER BY ru.id
    LOOP
        IF r.succeeded THEN
            v_done := v_done OPERATOR(pg_catalog.||) r.id;   -- closed together below
        ELSE
            PERFORM agentorch._maybe_finish(r.id);
        END IF;
    END LOOP;
    -- the runs with nothing left open: succeeded, with their outputs (what
    -- _maybe_finish would do for each)
    IF pg_catalog.cardinality(v_done) OPERATOR(pg_catalog.>) 0 THEN
        PERFORM agentorch._close_runs(v_done, 'succeeded',
                                      ARRAY(SELECT agentorch._run_output(d.id)
                                              FROM pg_catalog.unnest(v_done) WITH ORDINALITY AS d(id, ord) ORDER BY d.ord),
                                      NULL);
    END IF;
END
$$;

CREATE FUNCTION agentorch._settle_run(p_run bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentorch._settle_runs(ARRAY[p_run]);
END
$$;

-- A branch decided: the targets not chosen are skipped before the branch
-- succeeds, so promotion readies only the chosen ones.
CREATE FUNCTION agentorch._finish_branch(p_run bigint, p_step text, p_output jsonb, p_unchosen text[])
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN UPDATE agentorch.steps SET status = 'skipped', finished_at = pg_catalog.clock_timestamp()
              WHERE run_id OPERATOR(pg_catalog.=) p_run AND step_id OPERATOR(pg_catalog.=) ANY (p_unchosen)
                AND status OPERATOR(pg_catalog.=) 'pending'
             RETURNING step_id
    LOOP
        PERFORM agentorch._step_transition(p_run, r.step_id, 'skipped', 0, 'step_skipped',
                                           pg_catalog.jsonb_build_object('reason', 'not chosen by ' OPERATOR(pg_catalog.||) p_step));
    END LOOP;
    PERFORM agentorch._finish_step(p_run, p_step, 'succeeded', p_output);
END
$$;

-- Schedule another attempt after a failure: ready again at p_not_before.
CREATE FUNCTION agentorch._retry_step(p_run bigint, p_step text, p_error jsonb, p_delay_ms double precision)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_attempt int;
    v_plan_version int;
    v_kind agentorch.step_kind;
BEGIN
    UPDATE agentorch.steps
       SET status = 'ready', error = p_error, lease_until = NULL, worker = NULL,
           not_before = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => p_delay_ms OPERATOR(pg_catalog./) 1000.0)
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND step_id OPERATOR(pg_catalog.=) p_step
    RETURNING attempt, plan_version, kind INTO v_attempt, v_plan_version, v_kind;
    PERFORM agentorch._step_transition(p_run, p_step, 'ready', v_attempt, 'step_retrying',
        pg_catalog.jsonb_build_object('error', p_error, 'delay_ms', p_delay_ms));
    IF v_plan_version OPERATOR(pg_catalog.>) 0 AND v_kind OPERATOR(pg_catalog.=) 'llm' THEN
        PERFORM agentorch._adapt_models(p_run);
    END IF;
END
$$;

-- A user_input step starts waiting (with an optional deadline).
CREATE FUNCTION agentorch._wait_for_input(p_run bigint, p_step text, p_prompt text, p_timeout_ms double precision)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_attempt int;
BEGIN
    UPDATE agentorch.steps
       SET status = 'waiting', started_at = pg_catalog.now(), input = pg_catalog.jsonb_build_object('prompt', p_prompt),
           not_before = CASE WHEN p_timeout_ms OPERATOR(pg_catalog.>) 0
                             THEN pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => p_timeout_ms OPERATOR(pg_catalog./) 1000.0) END
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND step_id OPERATOR(pg_catalog.=) p_step
    RETURNING attempt INTO v_attempt;
    PERFORM agentorch._step_transition(p_run, p_step, 'waiting', v_attempt, 'input_requested',
                                       pg_catalog.jsonb_build_object('prompt', p_prompt));
    PERFORM agentorch._notify_lifecycle(p_run, 'input_requested', 'waiting');
    PERFORM agentorch._maybe_finish(p_run);
END
$$;

-------------------------------------------------------------------------------
-- Parallel and loop children
-------------------------------------------------------------------------------

-- Count n more loop iterations of a run; a run may create at most
-- agentorch.max_iterations_per_run over all its loops (the loop step that
-- would pass it fails with 54000: the same again would fail again).
CREATE FUNCTION agentorch._count_iterations(p_run bigint, p_n int) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v int;
    v_max int := pg_catalog.current_setting('agentorch.max_iterations_per_run')::int;
BEGIN
    UPDATE agentorch.runs SET iterations = iterations OPERATOR(pg_catalog.+) p_n
     WHERE id OPERATOR(pg_catalog.=) p_run RETURNING iterations INTO v;
    IF v OPERATOR(pg_catalog.>) v_max THEN
        RAISE EXCEPTION 'run % would create % loop iterations, more than agentorch.max_iterations_per_run (%)',
            p_run, v, v_max
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Loop over fewer items, or ask a superuser to raise agentorch.max_iterations_per_run.';
    END IF;
END
$$;

-- Step ids of children are their own ids (parallel) or <id>#<n> (loop
-- iterations); children of a step that is itself a child are prefixed with
-- that parent's id and a slash, so the inner steps of every outer
-- iteration of nested loops have ids of their own ("inner#2/leaf#0").
CREATE FUNCTION agentorch._child_prefix(p agentorch.steps) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN CASE WHEN p.parent_step_id IS NULL THEN '' ELSE p.step_id OPERATOR(pg_catalog.||) '/' END;
END
$$;

-- Start a parallel or loop step: create its children (ready) and keep the
-- parent running until they finish. For for_each, p_items is the rendered
-- array; a while loop evaluates its condition here for iteration 0.
-- Children that already succeeded (a resumed run) are kept.
CREATE FUNCTION agentorch._start_children(p_run bigint, p_step text, p_items jsonb DEFAULT NULL)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p agentorch.steps;
    n int;
BEGIN
    UPDATE agentorch.steps SET status = 'running', started_at = pg_catalog.now(), lease_until = NULL
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND step_id OPERATOR(pg_catalog.=) p_step
    RETURNING * INTO p;
    PERFORM agentorch._step_transition(p_run, p_step, 'running', p.attempt, 'step_started');

    IF p.kind OPERATOR(pg_catalog.=) 'parallel' THEN
        INSERT INTO agentorch.steps (run_id, step_id, kind, spec, status, ord, priority, max_attempts,
                                     network, parent_step_id, plan_version)
        SELECT p_run, agentorch._child_prefix(p) OPERATOR(pg_catalog.||) (c.s OPERATOR(pg_catalog.->>) 'id'), (c.s OPERATOR(pg_catalog.->>) 'type')::agentorch.step_kind, c.s, 'ready', c.ord::int,
               p.priority, agentorch._max_attempts(c.s, p_run), agentorch._is_network(c.s, p_run), p_step, p.plan_version
        FROM pg_catalog.jsonb_array_elements(p.spec OPERATOR(pg_catalog.->) 'steps') WITH ORDINALITY AS c(s, ord)
        ON CONFLICT (run_id, step_id) DO NOTHING;
    ELSIF p.spec OPERATOR(pg_catalog.?) 'for_each' THEN
        PERFORM agentorch._count_iterations(p_run, pg_catalog.jsonb_array_length(p_items));
        INSERT INTO agentorch.steps (run_id, step_id, kind, spec, status, ord, priority, max_attempts,
                                     network, parent_step_id, iteration, item, plan_version)
        SELECT p_run, agentorch._child_prefix(p) OPERATOR(pg_catalog.||) (p.spec OPERATOR(pg_catalog.->) 'step' OPERATOR(pg_catalog.->>) 'id') OPERATOR(pg_catalog.||) '#' OPERATOR(pg_catalog.||) (i.ord OPERATOR(pg_catalog.-) 1),
               (p.spec OPERATOR(pg_catalog.->) 'step' OPERATOR(pg_catalog.->>) 'type')::agentorch.step_kind, p.spec OPERATOR(pg_catalog.->) 'step', 'ready', i.ord::int,
               p.priority, agentorch._max_attempts(p.spec OPERATOR(pg_catalog.->) 'step', p_run), agentorch._is_network(p.spec OPERATOR(pg_catalog.->) 'step', p_run),
               p_step, (i.ord OPERATOR(pg_catalog.-) 1)::int, i.item, p.plan_version
        FROM pg_catalog.jsonb_array_elements(p_items) WITH ORDINALITY AS i(item, ord)
        ON CONFLICT (run_id, step_id) DO NOTHING;
    ELSE
        PERFORM agentorch._next_iteration(p_run, p);
    END IF;

    SELECT pg_catalog.count(*) INTO n FROM agentorch.steps
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND parent_step_id OPERATOR(pg_catalog.=) p_step;
    IF n OPERATOR(pg_catalog.=) 0 THEN
        PERFORM agentorch._finish_step(p_run, p_step, 'succeeded', '[]');
    ELSE
        PERFORM agentorch._child_finished(p_run, p_step);
    END IF;
END
$$;

-- While loops: add the next iteration if the condition holds for it and
-- max_iterations allows. The condition sees the run context plus index
-- (the next iteration's number) and last (the previous iteration's output).
CREATE FUNCTION agentorch._next_iteration(p_run bigint, p agentorch.steps) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_index int;
    v_last jsonb;
    v_ctx jsonb;
BEGIN
    SELECT pg_catalog.count(*)::int, (pg_catalog.array_agg(output ORDER BY iteration DESC))[1]
      INTO v_index, v_last
      FROM agentorch.steps
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND parent_step_id OPERATOR(pg_catalog.=) p.step_id;
    IF v_index OPERATOR(pg_catalog.>=) COALESCE((p.spec OPERATOR(pg_catalog.->>) 'max_iterations')::int,
                                                pg_catalog.current_setting('agentorch.loop_max_iterations')::int) THEN
        RETURN false;
    END IF;
    v_ctx := agentorch._context(p_run) OPERATOR(pg_catalog.||)
             pg_catalog.jsonb_build_object('index', v_index, 'last', v_last);
    IF NOT COALESCE(pg_catalog.jsonb_path_match(v_ctx, (p.spec OPERATOR(pg_catalog.->>) 'while')::jsonpath, '{}', true), false) THEN
        RETURN false;
    END IF;
    PERFORM agentorch._count_iterations(p_run, 1);
    INSERT INTO agentorch.steps (run_id, step_id, kind, spec, status, ord, priority, max_attempts,
                                 network, parent_step_id, iteration, item, plan_version)
    VALUES (p_run, agentorch._child_prefix(p) OPERATOR(pg_catalog.||) (p.spec OPERATOR(pg_catalog.->) 'step' OPERATOR(pg_catalog.->>) 'id') OPERATOR(pg_catalog.||) '#' OPERATOR(pg_catalog.||) v_index,
            (p.spec OPERATOR(pg_catalog.->) 'step' OPERATOR(pg_catalog.->>) 'type')::agentorch.step_kind, p.spec OPERATOR(pg_catalog.->) 'step', 'ready', v_index OPERATOR(pg_catalog.+) 1,
            p.priority, agentorch._max_attempts(p.spec OPERATOR(pg_catalog.->) 'step', p_run), agentorch._is_network(p.spec OPERATOR(pg_catalog.->) 'step', p_run),
            p.step_id, v_index, v_last, p.plan_version);
    RETURN true;
END
$$;

-- A child of a parallel or loop finished: fail the parent on a failed
-- child, start the next while-iteration, or finish the parent with the
-- array of child outputs once all are done.
CREATE FUNCTION agentorch._child_finished(p_run bigint, p_parent text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p agentorch.steps;
    failed agentorch.steps;
    n_open int;
BEGIN
    SELECT * INTO p FROM agentorch.steps
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND step_id OPERATOR(pg_catalog.=) p_parent;
    IF p.status OPERATOR(pg_catalog.<>) 'running' THEN
        RETURN;
    END IF;
    SELECT * INTO failed FROM agentorch.steps
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND parent_step_id OPERATOR(pg_catalog.=) p_parent
       AND status OPERATOR(pg_catalog.=) ANY ('{failed,cancelled}'::agentorch.step_status[])
     ORDER BY ord LIMIT 1;
    IF FOUND THEN
        PERFORM agentorch._cancel_open_steps(p_run, p_parent);
        PERFORM agentorch._finish_step(p_run, p_parent, 'failed', NULL,
            pg_catalog.jsonb_build_object('message', 'step ' OPERATOR(pg_catalog.||) failed.step_id OPERATOR(pg_catalog.||) ' '
                                                     OPERATOR(pg_catalog.||) failed.status::text OPERATOR(pg_catalog.||) ': '
                                                     OPERATOR(pg_catalog.||) COALESCE(failed.error OPERATOR(pg_catalog.->>) 'message', 'no error recorded'),
                                          'step_id', failed.step_id, 'error', failed.error));
        RETURN;
    END IF;
    SELECT pg_catalog.count(*) INTO n_open FROM agentorch.steps
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND parent_step_id OPERATOR(pg_catalog.=) p_parent
       AND status OPERATOR(pg_catalog.<>) ALL ('{succeeded,skipped}'::agentorch.step_status[]);
    IF n_open OPERATOR(pg_catalog.>) 0 THEN
        RETURN;
    END IF;
    IF p.kind OPERATOR(pg_catalog.=) 'loop' AND p.spec OPERATOR(pg_catalog.?) 'while'
       AND agentorch._next_iteration(p_run, p) THEN
        RETURN;
    END IF;
    PERFORM agentorch._finish_step(p_run, p_parent, 'succeeded',
        (SELECT COALESCE(pg_catalog.jsonb_agg(c.output ORDER BY c.ord), '[]') FROM agentorch.steps c
          WHERE c.run_id OPERATOR(pg_catalog.=) p_run AND c.parent_step_id OPERATOR(pg_catalog.=) p_parent));
END
$$;

-------------------------------------------------------------------------------
-- Run completion, failure, compensation, cancel, resume
-------------------------------------------------------------------------------

-- The output of a finished run: the workflow's output template when it
-- declares one, else the terminal top-level steps' outputs by step id (a
-- simple run: its one step's output).
CREATE FUNCTION agentorch._run_output(p_run bigint) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r agentorch.runs;
    tmpl jsonb;
BEGIN
    SELECT * INTO r FROM agentorch.runs WHERE id OPERATOR(pg_catalog.=) p_run;
    IF r.orchestration OPERATOR(pg_catalog.=) 'simple' THEN
        RETURN (SELECT output FROM agentorch.steps WHERE run_id OPERATOR(pg_catalog.=) p_run
                                                      AND step_id OPERATOR(pg_catalog.=) 'main');
    END IF;
    IF r.workflow_name IS NOT NULL THEN
        SELECT COALESCE(w.definition OPERATOR(pg_catalog.->) 'workflow', w.definition) OPERATOR(pg_catalog.->) 'output' INTO tmpl
          FROM agentorch.workflows w
         WHERE w.name OPERATOR(pg_catalog.=) r.workflow_name AND w.version OPERATOR(pg_catalog.=) r.workflow_version;
    ELSE
        tmpl := r.plan OPERATOR(pg_catalog.->) 'output';
    END IF;
    IF tmpl IS NOT NULL THEN
        RETURN agentorch._render(tmpl, agentorch._context(p_run));
    END IF;
    IF r.orchestration OPERATOR(pg_catalog.=) ANY ('{planner,reactive}'::agentorch.orchestration_type[]) THEN
        -- the last steps of the current plan (kept steps of earlier versions included when it names them)
        RETURN (SELECT COALESCE(pg_catalog.jsonb_object_agg(s.step_id, s.output), '{}')
                  FROM pg_catalog.jsonb_array_elements(r.plan OPERATOR(pg_catalog.->) 'steps') p
                  JOIN agentorch.steps s ON s.run_id OPERATOR(pg_catalog.=) p_run
                                        AND s.step_id OPERATOR(pg_catalog.=) (p OPERATOR(pg_catalog.->>) 'id')
                 WHERE s.status OPERATOR(pg_catalog.=) 'succeeded'
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(r.plan OPERATOR(pg_catalog.->) 'steps') d
                                    WHERE COALESCE(d OPERATOR(pg_catalog.->) 'depends_on', '[]') OPERATOR(pg_catalog.?) (p OPERATOR(pg_catalog.->>) 'id')));
    END IF;
    RETURN (SELECT COALESCE(pg_catalog.jsonb_object_agg(s.step_id, s.output), '{}')
              FROM agentorch.steps s
             WHERE s.run_id OPERATOR(pg_catalog.=) p_run AND s.parent_step_id IS NULL
               AND s.status OPERATOR(pg_catalog.=) 'succeeded' AND NOT s.spec OPERATOR(pg_catalog.?) 'compensates'
               AND NOT EXISTS (SELECT 1 FROM agentorch.steps d
                                WHERE d.run_id OPERATOR(pg_catalog.=) p_run AND d.parent_step_id IS NULL
                                  AND s.step_id OPERATOR(pg_catalog.=) ANY (d.depends_on)));
END
$$;

-- Close runs: each its final status, output or error, its final event and
-- chunk, and its lifecycle notification. A few statements for all of them
-- (_settle_runs closes every run a claim round finished at once): the update
-- of the run rows takes the event's and the chunk's seqs and feeds the
-- inserts. p_outputs and p_errors are parallel to p_runs (NULL: all NULL).
CREATE FUNCTION agentorch._close_runs(p_runs bigint[], p_status agentorch.run_status,
                                      p_outputs jsonb[], p_errors jsonb[])
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_ids bigint[];
BEGIN
    WITH g AS (
        SELECT u.run, u.output, u.error, u.ord
          FROM ROWS FROM (pg_catalog.unnest(p_runs), pg_catalog.unnest(p_outputs), pg_catalog.unnest(p_errors))
               WITH ORDINALITY AS u(run, output, error, ord)
         WHERE u.run IS NOT NULL),
    r AS (
        UPDATE agentorch.runs ru SET status = p_status, output = g.output, error = g.error,
                                     finished_at = pg_catalog.clock_timestamp(),
                                     last_event_seq = ru.last_event_seq OPERATOR(pg_catalog.+) 1,
                                     last_chunk_seq = ru.last_chunk_seq OPERATOR(pg_catalog.+) 1
          FROM g
         WHERE ru.id OPERATOR(pg_catalog.=) g.run
        RETURNING ru.id, ru.owner, ru.last_event_seq, ru.last_chunk_seq, g.output, g.error, g.ord),
    e AS (
        INSERT INTO agentorch.events (run_id, seq, kind, step_id, data)
        SELECT r.id, r.last_event_seq, 'run_' OPERATOR(pg_catalog.||) p_status::text, NULL,
               pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('error', r.error))
          FROM r ORDER BY r.ord),
    c AS (
        INSERT INTO agentorch.chunks (run_id, seq, step_id, attempt, kind, content, data)
        SELECT r.id, r.last_chunk_seq, NULL, 0, 'final',
               CASE WHEN p_status OPERATOR(pg_catalog.=) 'succeeded'
                    THEN CASE WHEN pg_catalog.jsonb_typeof(r.output) OPERATOR(pg_catalog.=) 'string'
                              THEN r.output OPERATOR(pg_catalog.#>>) '{}' ELSE r.output::text END
                    ELSE COALESCE(r.error OPERATOR(pg_catalog.->>) 'message', r.error::text) END,
               pg_catalog.jsonb_build_object('status', p_status, 'output', r.output, 'error', r.error)
          FROM r ORDER BY r.ord)
    SELECT pg_catalog.array_agg(r.id ORDER BY r.ord) INTO v_ids FROM r;
    IF v_ids IS NOT NULL THEN
        PERFORM agentorch._notify_lifecycles(v_ids, 'run_' OPERATOR(pg_catalog.||) p_status::text, p_status);
    END IF;
END
$$;

-- Close one run (see _close_runs).
CREATE FUNCTION agentorch._close_run(p_run bigint, p_status agentorch.run_status,
                                     p_output jsonb, p_error jsonb)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentorch._close_runs(ARRAY[p_run], p_status, ARRAY[p_output], ARRAY[p_error]);
END
$$;

-- After a transition: finish the run when no step is open, or keep its
-- status in line (waiting while only user input is awaited).
CREATE FUNCTION agentorch._maybe_finish(p_run bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r agentorch.runs;
    n_active int;
    n_waiting int;
    n_open int;
BEGIN
    SELECT * INTO r FROM agentorch.runs WHERE id OPERATOR(pg_catalog.=) p_run;
    IF r.status OPERATOR(pg_catalog.<>) ALL ('{running,waiting}'::agentorch.run_status[]) THEN
        RETURN;
    END IF;
    -- active: ready or running; pending steps wait for those or for input
    SELECT pg_catalog.count(*) FILTER (WHERE status OPERATOR(pg_catalog.=) ANY ('{ready,running}'::agentorch.step_status[])),
           pg_catalog.count(*) FILTER (WHERE status OPERATOR(pg_catalog.=) 'waiting'),
           pg_catalog.count(*)
      INTO n_active, n_waiting, n_open
      FROM agentorch.steps
     WHERE run_id OPERATOR(pg_catalog.=) p_run
       AND status OPERATOR(pg_catalog.=) ANY ('{pending,ready,running,waiting}'::agentorch.step_status[]);
    IF n_open OPERATOR(pg_catalog.>) 0 THEN
        IF n_active OPERATOR(pg_catalog.=) 0 AND n_waiting OPERATOR(pg_catalog.>) 0
           AND r.status OPERATOR(pg_catalog.=) 'running' THEN
            UPDATE agentorch.runs SET status = 'waiting' WHERE id OPERATOR(pg_catalog.=) p_run;
        ELSIF n_active OPERATOR(pg_catalog.>) 0 AND r.status OPERATOR(pg_catalog.=) 'waiting' THEN
            UPDATE agentorch.runs SET status = 'running' WHERE id OPERATOR(pg_catalog.=) p_run;
        END IF;
        RETURN;
    END IF;
    IF r.compensating THEN
        PERFORM agentorch._close_run(p_run, 'failed', NULL, r.error);
    ELSE
        PERFORM agentorch._close_run(p_run, 'succeeded', agentorch._run_output(p_run), NULL);
    END IF;
END
$$;

-- Cancel the open steps of a run (or only the children of p_parent). Rows
-- an executor holds are skipped: it settles them when it gets the run lock.
CREATE FUNCTION agentorch._cancel_open_steps(p_run bigint, p_parent text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    -- events and chunks in the steps' order in the run (not the rows' physical order)
    FOR r IN WITH u AS (
                 UPDATE agentorch.steps s SET status = 'cancelled', finished_at = pg_catalog.clock_timestamp(),
                                              lease_until = NULL, worker = NULL
                  WHERE (s.run_id, s.step_id) IN (
                        SELECT c.run_id, c.step_id FROM agentorch.steps c
                         WHERE c.run_id OPERATOR(pg_catalog.=) p_run
                           AND (p_parent IS NULL OR c.parent_step_id OPERATOR(pg_catalog.=) p_parent)
                           AND c.status OPERATOR(pg_catalog.=) ANY ('{pending,ready,running,waiting}'::agentorch.step_status[])
                         FOR UPDATE SKIP LOCKED)
                 RETURNING s.step_id, s.attempt, s.ord)
             SELECT u.step_id, u.attempt FROM u ORDER BY u.ord, u.step_id
    LOOP
        PERFORM agentorch._step_transition(p_run, r.step_id, 'cancelled', r.attempt, 'step_cancelled');
    END LOOP;
END
$$;

-- A run failed: open steps are cancelled; if succeeded steps declared
-- compensation, their compensating actions run one at a time in reverse
-- order of completion before the run is closed as failed.
CREATE FUNCTION agentorch._fail_run(p_run bigint, p_error jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n_comp int;
    v_status agentorch.run_status;
BEGIN
    SELECT status INTO v_status FROM agentorch.runs WHERE id OPERATOR(pg_catalog.=) p_run;
    IF v_status OPERATOR(pg_catalog.<>) ALL ('{running,waiting}'::agentorch.run_status[]) THEN
        RETURN;
    END IF;
    PERFORM agentorch._cancel_open_steps(p_run, NULL);

    -- a loop iteration's compensation sees its ${item} and ${index}
    INSERT INTO agentorch.steps (run_id, step_id, kind, spec, status, ord, max_attempts, network, item, iteration)
    SELECT p_run, s.step_id OPERATOR(pg_catalog.||) ':compensate', 'tool',
           pg_catalog.jsonb_build_object('id', s.step_id OPERATOR(pg_catalog.||) ':compensate', 'type', 'tool',
                                         'tool', s.spec OPERATOR(pg_catalog.->) 'compensate' OPERATOR(pg_catalog.->) 'tool',
                                         'input', COALESCE(s.spec OPERATOR(pg_catalog.->) 'compensate' OPERATOR(pg_catalog.->) 'input', '{}'),
                                         'compensates', s.step_id),
           CASE WHEN pg_catalog.row_number() OVER w OPERATOR(pg_catalog.=) 1
                THEN 'ready'::agentorch.step_status ELSE 'pending' END,
           (100000 OPERATOR(pg_catalog.+) pg_catalog.row_number() OVER w)::int,
           agentorch._max_attempts(s.spec OPERATOR(pg_catalog.->) 'compensate', p_run),
           agentorch._is_network(pg_catalog.jsonb_build_object('type', 'tool', 'tool', s.spec OPERATOR(pg_catalog.->) 'compensate' OPERATOR(pg_catalog.->) 'tool'), p_run),
           s.item, s.iteration
      FROM agentorch.steps s
     WHERE s.run_id OPERATOR(pg_catalog.=) p_run AND s.status OPERATOR(pg_catalog.=) 'succeeded'
       AND s.spec OPERATOR(pg_catalog.?) 'compensate'
    WINDOW w AS (ORDER BY s.finished_at DESC, s.ord DESC)
    ON CONFLICT (run_id, step_id) DO NOTHING;
    GET DIAGNOSTICS n_comp = ROW_COUNT;

    IF n_comp OPERATOR(pg_catalog.>) 0 THEN
        UPDATE agentorch.runs SET compensating = true, error = p_error, status = 'running'
         WHERE id OPERATOR(pg_catalog.=) p_run;
        PERFORM agentorch._event(p_run, NULL, 'run_compensating', pg_catalog.jsonb_build_object('error', p_error));
    ELSE
        PERFORM agentorch._close_run(p_run, 'failed', NULL, p_error);
    END IF;
END
$$;

-- Cancel a run: open steps are cancelled (steps that a worker holds are
-- skipped here and cancelled by the worker when it sees the run), the run
-- closes as cancelled. Returns false for a run that already finished.
CREATE FUNCTION agentorch._cancel(p_run bigint, p_reason text) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status agentorch.run_status := agentorch._lock_run(p_run);
    r record;
BEGIN
    IF v_status IS NULL OR v_status OPERATOR(pg_catalog.<>) ALL ('{pending,running,waiting}'::agentorch.run_status[]) THEN
        RETURN false;
    END IF;
    PERFORM agentorch._cancel_open_steps(p_run, NULL);
    PERFORM agentorch._close_run(p_run, 'cancelled', NULL,
        pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('message', 'cancelled', 'reason', p_reason)));
    PERFORM agentorch._notify_run(p_run);
    RETURN true;
END
$$;

-- Resume a failed or cancelled run from its last checkpoint: steps that
-- succeeded keep their outputs; the others start over.
CREATE FUNCTION agentorch._resume(p_run bigint) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status agentorch.run_status := agentorch._lock_run(p_run);
    r agentorch.runs;
    v_replan boolean := false;
    v_spec jsonb;
    v_redo text[];
BEGIN
    IF v_status IS NULL OR v_status OPERATOR(pg_catalog.<>) ALL ('{failed,cancelled}'::agentorch.run_status[]) THEN
        RETURN false;
    END IF;
    SELECT * INTO r FROM agentorch.runs WHERE id OPERATOR(pg_catalog.=) p_run;
    IF r.orchestration OPERATOR(pg_catalog.=) ANY ('{planner,reactive}'::agentorch.orchestration_type[]) THEN
        -- planner and reactive runs keep their history (planner steps,
        -- superseded steps, failures a revision answered). One that stopped
        -- while planning (no plan yet, the planning gave up, a planner step
        -- open) asks the planner again -- one more revision; else the open
        -- work of its plan starts over.
        v_replan := r.plan_version OPERATOR(pg_catalog.=) 0 OR r.error OPERATOR(pg_catalog.?) 'problem'
                    OR EXISTS (SELECT 1 FROM agentorch.steps
                                WHERE run_id OPERATOR(pg_catalog.=) p_run AND spec OPERATOR(pg_catalog.?) 'planner'
                                  AND status OPERATOR(pg_catalog.<>) 'succeeded'
                                  AND ord OPERATOR(pg_catalog.=) (SELECT pg_catalog.max(ord) FROM agentorch.steps
                                                                   WHERE run_id OPERATOR(pg_catalog.=) p_run
                                                                     AND spec OPERATOR(pg_catalog.?) 'planner'));
    END IF;
    -- A compensated step's effects were undone: it runs again, and so does
    -- every step it is a child of (a parallel or loop step makes its missing
    -- children again; its children that stand are kept),
    v_redo := ARRAY(WITH RECURSIVE up(step_id, parent) AS (
                        SELECT step_id, parent_step_id FROM agentorch.steps
                         WHERE run_id OPERATOR(pg_catalog.=) p_run AND status OPERATOR(pg_catalog.=) 'compensated'
                        UNION
                        SELECT s.step_id, s.parent_step_id FROM agentorch.steps s JOIN up ON s.step_id OPERATOR(pg_catalog.=) up.parent
                         WHERE s.run_id OPERATOR(pg_catalog.=) p_run)
                    SELECT step_id FROM up);
    -- and so does every step that used what they made (its output is stale)
    v_redo := ARRAY(WITH RECURSIVE down(step_id) AS (
                        SELECT u FROM pg_catalog.unnest(v_redo) AS u
                        UNION
                        SELECT s.step_id FROM agentorch.steps s JOIN down
                            ON down.step_id OPERATOR(pg_catalog.=) ANY (s.depends_on)
                         WHERE s.run_id OPERATOR(pg_catalog.=) p_run)
                    SELECT step_id FROM down);
    DELETE FROM agentorch.steps
     WHERE (run_id, step_id) IN (
           SELECT run_id, step_id FROM agentorch.steps
            WHERE run_id OPERATOR(pg_catalog.=) p_run
              AND (spec OPERATOR(pg_catalog.?) 'compensates'
                   OR (parent_step_id IS NOT NULL
                       AND (status OPERATOR(pg_catalog.<>) 'succeeded' OR step_id OPERATOR(pg_catalog.=) ANY (v_redo))))
           FOR UPDATE SKIP LOCKED);
    -- a top-level step to run again that stands as succeeded (a child of it
    -- was compensated, or it used a compensated step's output) goes there
    -- through compensated: its result no longer stands
    UPDATE agentorch.steps SET status = 'compensated'
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND parent_step_id IS NULL
       AND status OPERATOR(pg_catalog.=) 'succeeded' AND step_id OPERATOR(pg_catalog.=) ANY (v_redo)
       AND (r.orchestration OPERATOR(pg_catalog.<>) ALL ('{planner,reactive}'::agentorch.orchestration_type[]) OR NOT v_replan);
    UPDATE agentorch.steps
       SET status = 'pending', attempt = 0, error = NULL, output = NULL, not_before = NULL,
           lease_until = NULL, worker = NULL, started_at = NULL, finished_at = NULL
     WHERE (run_id, step_id) IN (
           SELECT run_id, step_id FROM agentorch.steps
            WHERE run_id OPERATOR(pg_catalog.=) p_run AND parent_step_id IS NULL
              AND status OPERATOR(pg_catalog.<>) 'succeeded'
              AND (r.orchestration OPERATOR(pg_catalog.<>) ALL ('{planner,reactive}'::agentorch.orchestration_type[])
                   OR (NOT v_replan AND NOT spec OPERATOR(pg_catalog.?) 'planner'
                       AND (error OPERATOR(pg_catalog.->>) 'superseded') IS NULL
                       AND (plan_version OPERATOR(pg_catalog.=) r.plan_version OR status OPERATOR(pg_catalog.=) 'cancelled')))
           FOR UPDATE SKIP LOCKED);
    UPDATE agentorch.runs SET status = 'running', error = NULL, output = NULL, finished_at = NULL,
                              compensating = false
     WHERE id OPERATOR(pg_catalog.=) p_run;
    IF v_replan THEN
        v_spec := agentorch._planner_step(p_run, CASE WHEN r.plan_version OPERATOR(pg_catalog.=) 0 THEN 'initial' ELSE 'error' END,
                                          pg_catalog.format('the run was resumed after it %s: %s', v_status,
                                                            COALESCE(r.error OPERATOR(pg_catalog.->>) 'problem',
                                                                     r.error OPERATOR(pg_catalog.->>) 'message', 'unknown error')),
                                          NULL);
        INSERT INTO agentorch.steps (run_id, step_id, kind, spec, status, ord, priority, max_attempts, network)
        VALUES (p_run, v_spec OPERATOR(pg_catalog.->>) 'id', 'llm', v_spec, 'ready',
                (SELECT COALESCE(pg_catalog.max(ord), 0) OPERATOR(pg_catalog.+) 1 FROM agentorch.steps
                  WHERE run_id OPERATOR(pg_catalog.=) p_run),
                r.priority, agentorch._max_attempts(v_spec, p_run), agentorch._is_network(v_spec, p_run));
    END IF;
    PERFORM agentorch._event(p_run, NULL, 'run_resumed',
        pg_catalog.jsonb_build_object('checkpoint', (SELECT last_checkpoint FROM agentorch.runs WHERE id OPERATOR(pg_catalog.=) p_run)));
    PERFORM agentorch._chunk(p_run, NULL, 0, 'status', 'run resumed', '{"status": "running"}');
    PERFORM agentorch._promote(p_run);
    -- parents whose children all succeeded already can finish at once
    PERFORM agentorch._maybe_finish(p_run);
    PERFORM agentorch._notify_lifecycle(p_run, 'run_resumed', 'running');
    PERFORM agentorch._notify_run(p_run);
    RETURN true;
END
$$;

-- Deliver the answer of a waiting user_input step. Exactly one of two
-- concurrent submissions wins (the run row lock serialises them; the
-- second sees the step no longer waiting and gets false). An answer that
-- violates the step's schema is an ERROR and changes nothing.
CREATE FUNCTION agentorch._submit_input(p_run bigint, p_step text, p_value jsonb) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status agentorch.run_status := agentorch._lock_run(p_run);
    s agentorch.steps;
    problems text;
BEGIN
    IF v_status IS NULL THEN
        RAISE EXCEPTION 'run % does not exist', p_run USING ERRCODE = 'undefined_object';
    END IF;
    SELECT * INTO s FROM agentorch.steps
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND step_id OPERATOR(pg_catalog.=) p_step;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % has no step "%"', p_run, p_step USING ERRCODE = 'undefined_object';
    END IF;
    IF s.kind OPERATOR(pg_catalog.<>) 'user_input' THEN
        RAISE EXCEPTION 'step "%" of run % is a % step, not user_input', p_step, p_run, s.kind
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF s.status OPERATOR(pg_catalog.<>) 'waiting' THEN
        RETURN false;
    END IF;
    IF s.spec OPERATOR(pg_catalog.?) 'schema' THEN
        SELECT pg_catalog.string_agg(CASE WHEN v.path OPERATOR(pg_catalog.=) '' THEN '/' ELSE v.path END
                                     OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) v.message, E'\n')
          INTO problems FROM agentorch.validate_json(p_value, s.spec OPERATOR(pg_catalog.->) 'schema') v;
        IF problems IS NOT NULL THEN
            RAISE EXCEPTION 'input for step "%" does not match its schema', p_step
                USING ERRCODE = 'invalid_parameter_value', DETAIL = problems;
        END IF;
    END IF;
    PERFORM agentorch._finish_step(p_run, p_step, 'succeeded', p_value);
    PERFORM agentorch._notify_run(p_run);
    RETURN true;
END
$$;

-- Maintenance, run by the executor about once per second: expired leases
-- of network steps, and leases whose holder's process is gone (after a
-- crash, or an executor that was stopped), go back to ready (or fail when
-- attempts are spent),
-- user_input steps past their timeout fail, runs past their deadline fail.
-- Returns the runs it touched (to notify and wake).
CREATE FUNCTION agentorch._recover(p_max int DEFAULT 100) RETURNS SETOF bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    st agentorch.steps;
BEGIN
    FOR r IN SELECT s.run_id, s.step_id
               FROM agentorch.steps s
              WHERE (s.status OPERATOR(pg_catalog.=) 'running' AND s.lease_until OPERATOR(pg_catalog.<) pg_catalog.now())
                 OR (s.status OPERATOR(pg_catalog.=) 'running' AND s.network AND s.lease_until IS NOT NULL
                     AND s.worker IS NOT NULL AND NOT agentorch._backend_alive(s.worker))
                 OR (s.status OPERATOR(pg_catalog.=) 'waiting' AND s.not_before OPERATOR(pg_catalog.<) pg_catalog.now())
              ORDER BY s.run_id
              LIMIT p_max
    LOOP
        -- the run first (lock order), without waiting for a busy run
        PERFORM 1 FROM agentorch.runs WHERE id OPERATOR(pg_catalog.=) r.run_id FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        SELECT * INTO st FROM agentorch.steps
         WHERE run_id OPERATOR(pg_catalog.=) r.run_id AND step_id OPERATOR(pg_catalog.=) r.step_id
           AND ((status OPERATOR(pg_catalog.=) 'running' AND lease_until OPERATOR(pg_catalog.<) pg_catalog.now())
             OR (status OPERATOR(pg_catalog.=) 'running' AND network AND lease_until IS NOT NULL
                 AND worker IS NOT NULL AND NOT agentorch._backend_alive(worker))
             OR (status OPERATOR(pg_catalog.=) 'waiting' AND not_before OPERATOR(pg_catalog.<) pg_catalog.now()))
        FOR UPDATE;
        CONTINUE WHEN NOT FOUND;
        IF st.status OPERATOR(pg_catalog.=) 'waiting' THEN
            PERFORM agentorch._finish_step(st.run_id, st.step_id, 'failed', NULL,
                '{"message": "timed out waiting for input", "sqlstate": "57014"}');
        ELSIF st.attempt OPERATOR(pg_catalog.<) st.max_attempts THEN
            PERFORM agentorch._retry_step(st.run_id, st.step_id,
                '{"message": "the worker running this step stopped (its lease expired or its process is gone)"}', 0);
        ELSE
            PERFORM agentorch._finish_step(st.run_id, st.step_id, 'failed', NULL,
                '{"message": "lease expired and no attempts are left"}');
        END IF;
        RETURN NEXT r.run_id;
    END LOOP;
    FOR r IN SELECT id, started_at, deadline, options FROM agentorch.runs
              WHERE status OPERATOR(pg_catalog.=) ANY ('{running,waiting}'::agentorch.run_status[])
                AND NOT compensating AND deadline OPERATOR(pg_catalog.<) pg_catalog.now()
              ORDER BY id LIMIT p_max
              FOR UPDATE SKIP LOCKED
    LOOP
        -- the deadline a time budget set (budget.max_duration before options.timeout) is told as such
        IF r.started_at OPERATOR(pg_catalog.+) (r.options OPERATOR(pg_catalog.#>>) '{budget,max_duration}')::interval
           OPERATOR(pg_catalog.=) r.deadline THEN
            PERFORM agentorch._fail_run(r.id, pg_catalog.jsonb_build_object(
                'message', pg_catalog.format('time budget exceeded: max_duration %s',
                                             r.options OPERATOR(pg_catalog.#>>) '{budget,max_duration}'),
                'sqlstate', '54000'));
        ELSE
            PERFORM agentorch._fail_run(r.id, '{"message": "run deadline exceeded", "sqlstate": "57014"}');
        END IF;
        RETURN NEXT r.id;
    END LOOP;
    RETURN QUERY SELECT agentorch._check_stalls(p_max);
END
$$;

-- Delete finished runs (and, by cascade, their steps, events, chunks,
-- checkpoints and plans) older than the given age. Returns the count.
CREATE FUNCTION agentorch._purge(p_older_than interval, p_owner oid, p_limit int DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM agentorch.runs
     WHERE id OPERATOR(pg_catalog.=) ANY (ARRAY(
           SELECT id FROM agentorch.runs
            WHERE status OPERATOR(pg_catalog.=) ANY ('{succeeded,failed,cancelled}'::agentorch.run_status[])
              AND finished_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) p_older_than)
              AND (p_owner IS NULL OR owner OPERATOR(pg_catalog.=) p_owner)
            ORDER BY finished_at
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Deleting runs deletes their rows in the per-run tables (which have no
-- foreign key to runs, see agentorch.sql): once per statement, for every
-- deleted run at once; TRUNCATE of runs truncates them too.
CREATE FUNCTION agentorch._delete_run_rows() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        TRUNCATE agentorch.steps, agentorch.events, agentorch.chunks, agentorch.checkpoints, agentorch.plans;
        RETURN NULL;
    END IF;
    DELETE FROM agentorch.steps WHERE run_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM deleted_runs));
    DELETE FROM agentorch.events WHERE run_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM deleted_runs));
    DELETE FROM agentorch.chunks WHERE run_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM deleted_runs));
    DELETE FROM agentorch.checkpoints WHERE run_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM deleted_runs));
    DELETE FROM agentorch.plans WHERE run_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM deleted_runs));
    RETURN NULL;
END
$$;
CREATE TRIGGER runs_delete_rows AFTER DELETE ON agentorch.runs
    REFERENCING OLD TABLE AS deleted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION agentorch._delete_run_rows();
CREATE TRIGGER runs_truncate_rows AFTER TRUNCATE ON agentorch.runs
    FOR EACH STATEMENT EXECUTE FUNCTION agentorch._delete_run_rows();

-------------------------------------------------------------------------------
-- Transition checks: whoever updates a step's or a run's status (these
-- functions, or C code), the change must be one the state machines allow
-- (src/README.md's diagrams); anything else is an internal error, never
-- silently applied. Triggers fire only when the status changes.
-------------------------------------------------------------------------------
-- The state machines are written once, in C (src/state/state.c); a C
-- trigger also costs a fraction of a plpgsql one on every status change.
CREATE FUNCTION agentorch._check_step_transition() RETURNS trigger
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_check_step_transition';
CREATE TRIGGER steps_transition BEFORE UPDATE OF status ON agentorch.steps
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION agentorch._check_step_transition();

CREATE FUNCTION agentorch._check_run_transition() RETURNS trigger
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_check_run_transition';
CREATE TRIGGER runs_transition BEFORE UPDATE OF status ON agentorch.runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION agentorch._check_run_transition();

-------------------------------------------------------------------------------
-- Planner and reactive runs (src/orchestration/planner.c writes the planner
-- steps and checks their plans; this is where plans become steps).
--
-- A planner step is an llm step whose spec has "planner": {"n", "reason"}
-- and id planner@<n>. Revisions so far = planner steps - 1; a run asks for
-- at most options.max_replans revisions (recorded at start()). Steps made
-- from a plan carry its version (plan_version > 0), which is how a failing
-- step is told apart from a workflow step (plan_version 0).
-------------------------------------------------------------------------------

-- Supersede the plan steps of a run in the given states: cancelled, with
-- error {message, superseded: true} and a step_superseded event. Rows an
-- executor holds are skipped (SKIP LOCKED): such a step finishes, and its
-- result stays.
CREATE FUNCTION agentorch._supersede(p_run bigint, p_states agentorch.step_status[], p_message text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    x record;
BEGIN
    FOR x IN UPDATE agentorch.steps s
                SET status = 'cancelled', finished_at = pg_catalog.clock_timestamp(), lease_until = NULL, worker = NULL,
                    error = pg_catalog.jsonb_build_object('message', p_message, 'superseded', true)
              WHERE (s.run_id, s.step_id) IN (
                    SELECT c.run_id, c.step_id FROM agentorch.steps c
                     WHERE c.run_id OPERATOR(pg_catalog.=) p_run AND c.plan_version OPERATOR(pg_catalog.>) 0
                       AND c.parent_step_id IS NULL AND c.status OPERATOR(pg_catalog.=) ANY (p_states)
                     FOR UPDATE SKIP LOCKED)
             RETURNING s.step_id, s.attempt
    LOOP
        PERFORM agentorch._step_transition(p_run, x.step_id, 'cancelled', x.attempt, 'step_superseded',
                                           pg_catalog.jsonb_build_object('superseded', true, 'reason', p_message));
    END LOOP;
END
$$;

-- Ask for a new plan: supersede what has not started (pending and ready
-- plan steps; a step an executor holds runs on and its result stays) and
-- add the next planner step, ready. Past max_replans the run fails with
-- the last problem. Does nothing while a planner step is still open.
CREATE FUNCTION agentorch._replan(p_run bigint, p_reason text, p_problem text, p_rejected jsonb DEFAULT NULL,
                                  p_step text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r agentorch.runs;
    v_open text;
    n_planners int;
    v_max int;
    v_spec jsonb;
BEGIN
    SELECT * INTO r FROM agentorch.runs WHERE id OPERATOR(pg_catalog.=) p_run;
    IF r.status OPERATOR(pg_catalog.<>) ALL ('{running,waiting}'::agentorch.run_status[]) OR r.compensating THEN
        RETURN;
    END IF;
    SELECT step_id INTO v_open FROM agentorch.steps
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND spec OPERATOR(pg_catalog.?) 'planner'
       AND status OPERATOR(pg_catalog.=) ANY ('{pending,ready,running}'::agentorch.step_status[]);
    IF v_open IS NOT NULL THEN
        -- its prompt was written before this step failed: the failure is
        -- sent with the next request once that planner step has finished
        IF p_step IS NOT NULL THEN
            PERFORM agentorch._event(p_run, v_open, 'replan_deferred',
                                     pg_catalog.jsonb_build_object('step', p_step, 'reason', p_reason, 'problem', p_problem));
        END IF;
        RETURN;
    END IF;
    SELECT pg_catalog.count(*) INTO n_planners FROM agentorch.steps
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND spec OPERATOR(pg_catalog.?) 'planner';
    v_max := COALESCE((r.options OPERATOR(pg_catalog.->>) 'max_replans')::int, 3);
    IF (n_planners OPERATOR(pg_catalog.-) 1) OPERATOR(pg_catalog.>=) v_max THEN
        PERFORM agentorch._fail_run(p_run, pg_catalog.jsonb_build_object(
            'message', pg_catalog.format('planning gave up after %s revisions (max_replans = %s): %s',
                                         n_planners OPERATOR(pg_catalog.-) 1, v_max, p_problem),
            'sqlstate', '54000', 'reason', p_reason, 'problem', p_problem));
        RETURN;
    END IF;

    PERFORM agentorch._supersede(p_run, '{pending,ready}', 'superseded by a new plan');

    v_spec := agentorch._planner_step(p_run, p_reason, p_problem, p_rejected);
    INSERT INTO agentorch.steps (run_id, step_id, kind, spec, status, ord, priority, max_attempts, network)
    VALUES (p_run, v_spec OPERATOR(pg_catalog.->>) 'id', 'llm', v_spec, 'ready',
            (SELECT COALESCE(pg_catalog.max(ord), 0) OPERATOR(pg_catalog.+) 1 FROM agentorch.steps
              WHERE run_id OPERATOR(pg_catalog.=) p_run),
            r.priority, agentorch._max_attempts(v_spec, p_run), agentorch._is_network(v_spec, p_run));
    PERFORM agentorch._event(p_run, v_spec OPERATOR(pg_catalog.->>) 'id', 'replanning',
                             pg_catalog.jsonb_build_object('reason', p_reason, 'problem', p_problem,
                                                           'revision', n_planners));
    PERFORM agentorch._chunk(p_run, v_spec OPERATOR(pg_catalog.->>) 'id', 0, 'status',
                             'replanning (' OPERATOR(pg_catalog.||) p_reason OPERATOR(pg_catalog.||) ')',
                             pg_catalog.jsonb_build_object('status', 'replanning', 'reason', p_reason,
                                                           'problem', p_problem, 'revision', n_planners));
    IF r.status OPERATOR(pg_catalog.=) 'waiting' THEN
        UPDATE agentorch.runs SET status = 'running' WHERE id OPERATOR(pg_catalog.=) p_run;
    END IF;
END
$$;

-- Materialize a checked plan (agentorch._check_plan's answer) as steps of
-- plan version n+1: new ids are inserted, ids of failed, cancelled or
-- skipped steps are reused (the row starts over), kept steps (finished or
-- running) are never touched. Records the plans row, the run's current
-- plan, a plan_created / plan_modified event and a status chunk.
CREATE FUNCTION agentorch._apply_plan(p_run bigint, p_planner agentorch.steps, p_checked jsonb)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r agentorch.runs;
    v_plan jsonb := p_checked OPERATOR(pg_catalog.->) 'plan';
    v_version int;
    v_reason text := COALESCE(p_planner.spec OPERATOR(pg_catalog.->) 'planner' OPERATOR(pg_catalog.->>) 'reason', 'initial');
    v_ord int;
    v_diff jsonb;
BEGIN
    SELECT * INTO r FROM agentorch.runs WHERE id OPERATOR(pg_catalog.=) p_run;
    v_version := r.plan_version OPERATOR(pg_catalog.+) 1;
    SELECT COALESCE(pg_catalog.max(ord), 0) INTO v_ord FROM agentorch.steps WHERE run_id OPERATOR(pg_catalog.=) p_run;

    INSERT INTO agentorch.steps AS t (run_id, step_id, kind, spec, depends_on, ord, priority, max_attempts,
                                      network, plan_version)
    SELECT p_run, e.spec OPERATOR(pg_catalog.->>) 'id', (e.spec OPERATOR(pg_catalog.->>) 'type')::agentorch.step_kind,
           e.spec,
           ARRAY(SELECT pg_catalog.jsonb_array_elements_text(COALESCE(e.spec OPERATOR(pg_catalog.->) 'depends_on', '[]'))),
           v_ord OPERATOR(pg_catalog.+) e.ord::int, r.priority,
           agentorch._max_attempts(e.spec, p_run), agentorch._is_network(e.spec, p_run), v_version
      FROM (SELECT pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                       'id', s OPERATOR(pg_catalog.->) 'id', 'type', s OPERATOR(pg_catalog.->) 'type',
                       'description', s OPERATOR(pg_catalog.->) 'description',
                       'tool', s OPERATOR(pg_catalog.->) 'tool', 'input', s OPERATOR(pg_catalog.->) 'input',
                       'prompt', s OPERATOR(pg_catalog.->) 'prompt', 'model', s OPERATOR(pg_catalog.->) 'model',
                       'depends_on', s OPERATOR(pg_catalog.->) 'depends_on',
                       'planned_by', p_planner.step_id, 'plan_version', v_version)) AS spec, ord
              FROM pg_catalog.jsonb_array_elements(v_plan OPERATOR(pg_catalog.->) 'steps') WITH ORDINALITY AS x(s, ord)) e
    ON CONFLICT (run_id, step_id) DO UPDATE
       SET kind = excluded.kind, spec = excluded.spec, depends_on = excluded.depends_on, ord = excluded.ord,
           max_attempts = excluded.max_attempts, network = excluded.network, plan_version = excluded.plan_version,
           status = 'pending', attempt = 0, crashes = 0, input = NULL, output = NULL, error = NULL,
           not_before = NULL, lease_until = NULL, worker = NULL, started_at = NULL, finished_at = NULL
     WHERE t.status OPERATOR(pg_catalog.=) ANY ('{failed,cancelled,skipped}'::agentorch.step_status[]);

    v_diff := COALESCE(p_checked OPERATOR(pg_catalog.->) 'diff', '{}')
              OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('optimizer', COALESCE(p_checked OPERATOR(pg_catalog.->) 'changes', '[]'));
    INSERT INTO agentorch.plans (run_id, version, plan, parent_version, reason, diff)
    VALUES (p_run, v_version, v_plan, NULLIF(r.plan_version, 0), v_reason, v_diff);
    UPDATE agentorch.runs SET plan = v_plan, plan_version = v_version WHERE id OPERATOR(pg_catalog.=) p_run;
    PERFORM agentorch._adapt_models(p_run);
    PERFORM agentorch._event(p_run, p_planner.step_id,
                             CASE WHEN v_version OPERATOR(pg_catalog.=) 1 THEN 'plan_created' ELSE 'plan_modified' END,
                             pg_catalog.jsonb_build_object('version', v_version, 'reason', v_reason, 'diff', v_diff));
    PERFORM agentorch._chunk(p_run, p_planner.step_id, 0, 'status',
                             pg_catalog.format('plan v%s (%s): %s steps', v_version, v_reason,
                                               pg_catalog.jsonb_array_length(v_plan OPERATOR(pg_catalog.->) 'steps')),
                             pg_catalog.jsonb_build_object('status', 'planned', 'version', v_version, 'reason', v_reason,
                                                           'steps', pg_catalog.jsonb_array_length(v_plan OPERATOR(pg_catalog.->) 'steps'),
                                                           'diff', v_diff));
END
$$;

-- A planner step finished: a plan that passes the checks is applied; one
-- that does not, or a planner step that failed, asks again with the
-- problems (counted against max_replans).
CREATE FUNCTION agentorch._plan_finished(p_run bigint, p_planner agentorch.steps, p_status agentorch.step_status,
                                         p_output jsonb, p_error jsonb)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_checked jsonb;
    v_reason text := COALESCE(p_planner.spec OPERATOR(pg_catalog.->) 'planner' OPERATOR(pg_catalog.->>) 'reason', 'initial');
    v_problems text;
    v_deferred text;
BEGIN
    IF p_status OPERATOR(pg_catalog.=) 'succeeded' THEN
        v_checked := agentorch._check_plan(p_run, p_output);
        IF pg_catalog.jsonb_array_length(v_checked OPERATOR(pg_catalog.->) 'problems') OPERATOR(pg_catalog.=) 0 THEN
            PERFORM agentorch._apply_plan(p_run, p_planner, v_checked);
        END IF;
    END IF;
    -- steps that failed while this planner step ran (its prompt was
    -- written before: _replan deferred them) and that no plan took up again
    SELECT pg_catalog.string_agg(e.data OPERATOR(pg_catalog.->>) 'problem', E'\n' ORDER BY e.seq) INTO v_deferred
      FROM agentorch.events e
      JOIN agentorch.steps s ON s.run_id OPERATOR(pg_catalog.=) e.run_id
                            AND s.step_id OPERATOR(pg_catalog.=) (e.data OPERATOR(pg_catalog.->>) 'step')
     WHERE e.run_id OPERATOR(pg_catalog.=) p_run AND e.step_id OPERATOR(pg_catalog.=) p_planner.step_id
       AND e.kind OPERATOR(pg_catalog.=) 'replan_deferred' AND s.status OPERATOR(pg_catalog.=) 'failed';
    IF p_status OPERATOR(pg_catalog.=) 'succeeded' THEN
        IF pg_catalog.jsonb_array_length(v_checked OPERATOR(pg_catalog.->) 'problems') OPERATOR(pg_catalog.=) 0 THEN
            IF v_deferred IS NOT NULL THEN
                PERFORM agentorch._replan(p_run, 'error', v_deferred);
            END IF;
            RETURN;
        END IF;
        SELECT pg_catalog.string_agg(p OPERATOR(pg_catalog.->>) 'path' OPERATOR(pg_catalog.||) ': '
                                     OPERATOR(pg_catalog.||) (p OPERATOR(pg_catalog.->>) 'message'), E'\n')
          INTO v_problems
          FROM pg_catalog.jsonb_array_elements(v_checked OPERATOR(pg_catalog.->) 'problems') p;
        PERFORM agentorch._event(p_run, p_planner.step_id, 'plan_rejected',
                                 pg_catalog.jsonb_build_object('problems', v_checked OPERATOR(pg_catalog.->) 'problems'));
        PERFORM agentorch._replan(p_run, v_reason, 'the plan was rejected: ' OPERATOR(pg_catalog.||) v_problems
                                  OPERATOR(pg_catalog.||) COALESCE(E'\n' OPERATOR(pg_catalog.||) v_deferred, ''), p_output);
    ELSIF p_status OPERATOR(pg_catalog.=) 'failed' THEN
        PERFORM agentorch._replan(p_run, v_reason,
                                  'the planner did not answer a usable plan: '
                                  OPERATOR(pg_catalog.||) COALESCE(p_error OPERATOR(pg_catalog.->>) 'message', 'unknown error')
                                  OPERATOR(pg_catalog.||) COALESCE(E'\n' OPERATOR(pg_catalog.||) (p_error OPERATOR(pg_catalog.->>) 'detail'), '')
                                  OPERATOR(pg_catalog.||) COALESCE(E'\n' OPERATOR(pg_catalog.||) v_deferred, ''));
    END IF;
END
$$;

-- Budgets (options.budget: max_tokens, max_cost, max_duration) of any run:
-- what is used and how close it is. Returns NULL without a budget, else
-- {"exceeded": text or null, "near": text or null} where exceeded says why
-- the next llm step (declaring p_next_tokens as its max_tokens) may not
-- start and near says which budget is 80 % used.
CREATE FUNCTION agentorch._budget_state(r agentorch.runs, p_next_tokens bigint DEFAULT 0) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b jsonb := r.options OPERATOR(pg_catalog.->) 'budget';
    v_tokens bigint := r.prompt_tokens OPERATOR(pg_catalog.+) r.completion_tokens;
    v_elapsed interval := pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) COALESCE(r.started_at, r.created_at);
    v_exceeded text;
    v_near text;
BEGIN
    IF b IS NULL THEN
        RETURN NULL;
    END IF;
    IF b OPERATOR(pg_catalog.?) 'max_tokens' THEN
        IF (v_tokens OPERATOR(pg_catalog.+) p_next_tokens) OPERATOR(pg_catalog.>=) (b OPERATOR(pg_catalog.->>) 'max_tokens')::bigint THEN
            v_exceeded := pg_catalog.format('token budget exceeded: %s tokens used%s, max_tokens %s', v_tokens,
                CASE WHEN p_next_tokens OPERATOR(pg_catalog.>) 0 THEN pg_catalog.format(' and the next llm step may use %s', p_next_tokens) ELSE '' END,
                b OPERATOR(pg_catalog.->>) 'max_tokens');
        ELSIF v_tokens OPERATOR(pg_catalog.>=) (0.8 OPERATOR(pg_catalog.*) (b OPERATOR(pg_catalog.->>) 'max_tokens')::numeric) THEN
            v_near := pg_catalog.format('%s of %s tokens used', v_tokens, b OPERATOR(pg_catalog.->>) 'max_tokens');
        END IF;
    END IF;
    IF v_exceeded IS NULL AND b OPERATOR(pg_catalog.?) 'max_cost' THEN
        IF r.cost OPERATOR(pg_catalog.>=) (b OPERATOR(pg_catalog.->>) 'max_cost')::numeric THEN
            v_exceeded := pg_catalog.format('cost budget exceeded: %s used, max_cost %s', r.cost, b OPERATOR(pg_catalog.->>) 'max_cost');
        ELSIF r.cost OPERATOR(pg_catalog.>=) (0.8 OPERATOR(pg_catalog.*) (b OPERATOR(pg_catalog.->>) 'max_cost')::numeric) THEN
            v_near := COALESCE(v_near, pg_catalog.format('%s of cost %s used', r.cost, b OPERATOR(pg_catalog.->>) 'max_cost'));
        END IF;
    END IF;
    IF v_exceeded IS NULL AND b OPERATOR(pg_catalog.?) 'max_duration' THEN
        IF v_elapsed OPERATOR(pg_catalog.>=) (b OPERATOR(pg_catalog.->>) 'max_duration')::interval THEN
            v_exceeded := pg_catalog.format('time budget exceeded: running for %s, max_duration %s',
                                            pg_catalog.date_trunc('second', v_elapsed), b OPERATOR(pg_catalog.->>) 'max_duration');
        ELSIF v_elapsed OPERATOR(pg_catalog.>=) (0.8::float8 OPERATOR(pg_catalog.*) (b OPERATOR(pg_catalog.->>) 'max_duration')::interval) THEN
            v_near := COALESCE(v_near, pg_catalog.format('running for %s of %s',
                                                         pg_catalog.date_trunc('second', v_elapsed), b OPERATOR(pg_catalog.->>) 'max_duration'));
        END IF;
    END IF;
    RETURN pg_catalog.jsonb_build_object('exceeded', v_exceeded, 'near', v_near);
END
$$;

-- Has this run already re-planned for this trigger (reason, detail)?
CREATE FUNCTION agentorch._triggered(p_run bigint, p_trigger text, p_detail text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM agentorch.events
                    WHERE run_id OPERATOR(pg_catalog.=) p_run AND kind OPERATOR(pg_catalog.=) 'replan_triggered'
                      AND data OPERATOR(pg_catalog.->>) 'trigger' OPERATOR(pg_catalog.=) p_trigger
                      AND data OPERATOR(pg_catalog.->>) 'detail' IS NOT DISTINCT FROM p_detail)
$$;

-- Record a trigger and ask for a new plan.
CREATE FUNCTION agentorch._trigger_replan(p_run bigint, p_trigger text, p_detail text, p_problem text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentorch._event(p_run, NULL, 'replan_triggered',
                             pg_catalog.jsonb_build_object('trigger', p_trigger, 'detail', p_detail, 'problem', p_problem));
    PERFORM agentorch._replan(p_run, p_trigger, p_problem);
END
$$;

-- Before llm steps start (they were just made ready): a run whose budget
-- is spent fails -- a reactive run first asks once for a cheaper plan.
CREATE FUNCTION agentorch._budget_gate(p_run bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r agentorch.runs;
    v_next bigint;
    v_state jsonb;
BEGIN
    SELECT * INTO r FROM agentorch.runs WHERE id OPERATOR(pg_catalog.=) p_run;
    IF NOT r.options OPERATOR(pg_catalog.?) 'budget' OR r.status OPERATOR(pg_catalog.<>) ALL ('{running,waiting}'::agentorch.run_status[]) THEN
        RETURN;
    END IF;
    -- numeric first: a declared max_tokens too large for bigint must not break the gate
    SELECT COALESCE(pg_catalog.max(GREATEST(LEAST((spec OPERATOR(pg_catalog.->>) 'max_tokens')::numeric, 1e15), 0)), 0)::bigint INTO v_next
      FROM agentorch.steps
     WHERE run_id OPERATOR(pg_catalog.=) p_run AND status OPERATOR(pg_catalog.=) 'ready' AND kind OPERATOR(pg_catalog.=) 'llm'
       AND pg_catalog.jsonb_typeof(spec OPERATOR(pg_catalog.->) 'max_tokens') OPERATOR(pg_catalog.=) 'number';
    v_state := agentorch._budget_state(r, v_next);
    IF v_state OPERATOR(pg_catalog.->>) 'exceeded' IS NULL THEN
        RETURN;
    END IF;
    IF r.orchestration OPERATOR(pg_catalog.=) 'reactive' AND NOT agentorch._triggered(p_run, 'budget', 'exceeded') THEN
        PERFORM agentorch._trigger_replan(p_run, 'budget', 'exceeded',
            (v_state OPERATOR(pg_catalog.->>) 'exceeded') OPERATOR(pg_catalog.||)
            '. Plan the rest without llm steps (tools only), or with as few as possible.');
        RETURN;
    END IF;
    PERFORM agentorch._fail_run(p_run, pg_catalog.jsonb_build_object(
        'message', v_state OPERATOR(pg_catalog.->>) 'exceeded', 'sqlstate', '54000',
        'budget', r.options OPERATOR(pg_catalog.->) 'budget',
        'usage', pg_catalog.jsonb_build_object('prompt_tokens', r.prompt_tokens,
                                               'completion_tokens', r.completion_tokens, 'cost', r.cost)));
END
$$;

-- After a plan step succeeded in a reactive run: its triggers. A
-- jsonpath condition of options.replan_when that holds over {input,
-- steps, memory}, or a budget 80 % used, asks for a revision -- each
-- condition and the budget at most once per run.
CREATE FUNCTION agentorch._reactive_check(p_run bigint, p_step text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r agentorch.runs;
    c record;
    v_ctx jsonb;
    v_state jsonb;
    v_holds boolean;
    v_error text;
BEGIN
    SELECT * INTO r FROM agentorch.runs WHERE id OPERATOR(pg_catalog.=) p_run;
    IF r.orchestration OPERATOR(pg_catalog.<>) 'reactive'
       OR r.status OPERATOR(pg_catalog.<>) ALL ('{running,waiting}'::agentorch.run_status[]) THEN
        RETURN;
    END IF;
    -- while a planner step is open a trigger would be used up for nothing:
    -- the conditions are looked at again after the next step of its plan
    IF EXISTS (SELECT 1 FROM agentorch.steps
                WHERE run_id OPERATOR(pg_catalog.=) p_run AND spec OPERATOR(pg_catalog.?) 'planner'
                  AND status OPERATOR(pg_catalog.=) ANY ('{pending,ready,running}'::agentorch.step_status[])) THEN
        RETURN;
    END IF;
    IF pg_catalog.jsonb_typeof(r.options OPERATOR(pg_catalog.->) 'replan_when') OPERATOR(pg_catalog.=) 'array' THEN
        v_ctx := agentorch._context(p_run);
        FOR c IN SELECT e OPERATOR(pg_catalog.#>>) '{}' AS cond
                   FROM pg_catalog.jsonb_array_elements(r.options OPERATOR(pg_catalog.->) 'replan_when') e
        LOOP
            CONTINUE WHEN agentorch._triggered(p_run, 'condition', c.cond);
            v_error := NULL;
            BEGIN
                v_holds := pg_catalog.jsonb_path_match(v_ctx, c.cond::jsonpath, '{}', true);
                -- silent => true turns an error of the path (a structural
                -- error, a type mismatch) or a result that is not a single
                -- boolean into NULL
                IF v_holds IS NULL THEN
                    v_error := 'the condition did not evaluate to true or false (not a predicate, or an error in evaluating it)';
                END IF;
            EXCEPTION WHEN OTHERS THEN
                -- silent => true does not cover every error (an unknown $variable)
                v_error := SQLERRM;
            END;
            IF v_error IS NOT NULL THEN
                -- the condition does not hold, the step stays succeeded,
                -- and the error is told once
                v_holds := false;
                IF NOT EXISTS (SELECT 1 FROM agentorch.events
                                WHERE run_id OPERATOR(pg_catalog.=) p_run AND kind OPERATOR(pg_catalog.=) 'condition_failed'
                                  AND data OPERATOR(pg_catalog.->>) 'condition' OPERATOR(pg_catalog.=) c.cond) THEN
                    PERFORM agentorch._event(p_run, p_step, 'condition_failed',
                                             pg_catalog.jsonb_build_object('condition', c.cond, 'error', v_error));
                END IF;
            END IF;
            IF v_holds THEN
                PERFORM agentorch._trigger_replan(p_run, 'condition', c.cond,
                    pg_catalog.format('after step %s the condition %s holds', p_step, c.cond));
                RETURN;
            END IF;
        END LOOP;
    END IF;
    v_state := agentorch._budget_state(r);
    IF v_state OPERATOR(pg_catalog.->>) 'near' IS NOT NULL AND NOT agentorch._triggered(p_run, 'budget', 'near')
       AND EXISTS (SELECT 1 FROM agentorch.steps
                    WHERE run_id OPERATOR(pg_catalog.=) p_run AND plan_version OPERATOR(pg_catalog.>) 0
                      AND status OPERATOR(pg_catalog.=) ANY ('{pending,ready}'::agentorch.step_status[])) THEN
        PERFORM agentorch._trigger_replan(p_run, 'budget', 'near',
            'the budget is nearly spent (' OPERATOR(pg_catalog.||) (v_state OPERATOR(pg_catalog.->>) 'near')
            OPERATOR(pg_catalog.||) '): plan the remaining work more cheaply.');
    END IF;
END
$$;

-- Reactive runs with options.stall_timeout where no step finished (and
-- none started the run) for that long ask for a new plan; the steps that
-- hang are superseded too. Called by _recover. Returns the runs touched.
CREATE FUNCTION agentorch._check_stalls(p_max int DEFAULT 100) RETURNS SETOF bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT ru.id, ru.options OPERATOR(pg_catalog.->>) 'stall_timeout' AS stall
               FROM agentorch.runs ru
              WHERE ru.status OPERATOR(pg_catalog.=) 'running' AND ru.orchestration OPERATOR(pg_catalog.=) 'reactive'
                AND ru.options OPERATOR(pg_catalog.?) 'stall_timeout' AND NOT ru.compensating
                -- (now - last) > stall_timeout: now - a huge interval would be out of range
                AND (pg_catalog.now() OPERATOR(pg_catalog.-)
                     GREATEST(ru.started_at,
                              (SELECT pg_catalog.max(s.finished_at) FROM agentorch.steps s
                                WHERE s.run_id OPERATOR(pg_catalog.=) ru.id)))
                    OPERATOR(pg_catalog.>) (ru.options OPERATOR(pg_catalog.->>) 'stall_timeout')::interval
                AND NOT EXISTS (SELECT 1 FROM agentorch.steps s
                                 WHERE s.run_id OPERATOR(pg_catalog.=) ru.id AND s.spec OPERATOR(pg_catalog.?) 'planner'
                                   AND s.status OPERATOR(pg_catalog.=) ANY ('{pending,ready,running}'::agentorch.step_status[]))
              ORDER BY ru.id LIMIT p_max
              FOR UPDATE SKIP LOCKED
    LOOP
        -- the steps that hang are superseded (an executor holding one drops its result)
        PERFORM agentorch._supersede(r.id, '{running}', 'superseded by a new plan (stalled)');
        PERFORM agentorch._trigger_replan(r.id, 'stall', pg_catalog.clock_timestamp()::text,
                                          pg_catalog.format('no step finished for %s (stall_timeout)', r.stall));
        RETURN NEXT r.id;
    END LOOP;
END
$$;

-- Adaptive strategy of reactive runs: once a model failed twice in the
-- run (failed or retried attempts of its llm steps), the llm steps that
-- have not started yet use its first fallback (models.spec.fallback[0]).
-- Each switch is recorded once (a model_switched event).
CREATE FUNCTION agentorch._adapt_models(p_run bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r agentorch.runs;
    m record;
    n int;
BEGIN
    SELECT * INTO r FROM agentorch.runs WHERE id OPERATOR(pg_catalog.=) p_run;
    IF r.orchestration OPERATOR(pg_catalog.<>) 'reactive' THEN
        RETURN;
    END IF;
    FOR m IN SELECT COALESCE(s.spec OPERATOR(pg_catalog.->>) 'model', r.options OPERATOR(pg_catalog.->>) 'model') AS model,
                    pg_catalog.count(*) AS failures
               FROM agentorch.events e
               JOIN agentorch.steps s ON s.run_id OPERATOR(pg_catalog.=) e.run_id AND s.step_id OPERATOR(pg_catalog.=) e.step_id
              WHERE e.run_id OPERATOR(pg_catalog.=) p_run AND s.kind OPERATOR(pg_catalog.=) 'llm'
                AND e.kind OPERATOR(pg_catalog.=) ANY ('{step_retrying,step_failed}'::text[])
              GROUP BY 1
             HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>=) 2
    LOOP
        CONTINUE WHEN m.model IS NULL;
        FOR n IN SELECT 1 FROM agentorch.models md
                  WHERE md.name OPERATOR(pg_catalog.=) m.model
                    AND pg_catalog.jsonb_typeof(md.spec OPERATOR(pg_catalog.->) 'fallback' OPERATOR(pg_catalog.->) 0) OPERATOR(pg_catalog.=) 'string'
        LOOP
            UPDATE agentorch.steps s
               SET spec = s.spec OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('model',
                       (SELECT md.spec OPERATOR(pg_catalog.->) 'fallback' OPERATOR(pg_catalog.->) 0 FROM agentorch.models md
                         WHERE md.name OPERATOR(pg_catalog.=) m.model))
             WHERE (s.run_id, s.step_id) IN (
                   SELECT c.run_id, c.step_id FROM agentorch.steps c
                    WHERE c.run_id OPERATOR(pg_catalog.=) p_run AND c.kind OPERATOR(pg_catalog.=) 'llm'
                      AND NOT c.spec OPERATOR(pg_catalog.?) 'planner'
                      AND c.status OPERATOR(pg_catalog.=) ANY ('{pending,ready}'::agentorch.step_status[])
                      AND COALESCE(c.spec OPERATOR(pg_catalog.->>) 'model', r.options OPERATOR(pg_catalog.->>) 'model') OPERATOR(pg_catalog.=) m.model
                    FOR UPDATE SKIP LOCKED);
            IF NOT EXISTS (SELECT 1 FROM agentorch.events WHERE run_id OPERATOR(pg_catalog.=) p_run
                              AND kind OPERATOR(pg_catalog.=) 'model_switched' AND data OPERATOR(pg_catalog.->>) 'from' OPERATOR(pg_catalog.=) m.model) THEN
                PERFORM agentorch._event(p_run, NULL, 'model_switched',
                    pg_catalog.jsonb_build_object('from', m.model, 'failures', m.failures,
                        'to', (SELECT md.spec OPERATOR(pg_catalog.->) 'fallback' OPERATOR(pg_catalog.->) 0 FROM agentorch.models md
                                WHERE md.name OPERATOR(pg_catalog.=) m.model)));
            END IF;
        END LOOP;
    END LOOP;
END
$$;

-- Written in C (src/orchestration/planner.c): the spec of a run's next
-- planner step, and the check and optimization of a plan it answered.
CREATE FUNCTION agentorch._planner_step(p_run bigint, p_reason text, p_problem text, p_rejected jsonb)
    RETURNS jsonb LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_planner_step';
CREATE FUNCTION agentorch._check_plan(p_run bigint, p_plan jsonb)
    RETURNS jsonb LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_check_plan';

DO $do$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace OPERATOR(pg_catalog.=) 'agentorch'::regnamespace
                AND p.proname OPERATOR(pg_catalog.~~) E'\\_%'
                AND p.proname OPERATOR(pg_catalog.<>) '_current_role'   -- used by RLS policies
    LOOP
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$do$;
