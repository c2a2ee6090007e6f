-- agentorch--0.1.0--0.2.0.sql -- upgrade a database from agentorch 0.1.0 to 0.2.0.
--
-- READ THIS BEFORE CHANGING THE SQL SURFACE.
--
-- sql/agentorch--0.1.0.sql is frozen: it is what 0.1.0 installed, and it must
-- never change. sql/agentorch--0.2.0.sql is generated from the sources
-- (sql/agentorch.sql, sql/agentorch_state.sql, sql/agentorch_api.sql and
-- schemas/*.schema.json). A database that ran CREATE EXTENSION at 0.1.0 gets
-- to 0.2.0 only through THIS file, so every change of those sources must be
-- made here as well, in the same commit:
--
--   * a new function, table, column, index, type, enum label, view, policy:
--     create it here exactly as the install script does (same definition,
--     same SET search_path, same REVOKE EXECUTE ... FROM PUBLIC / GRANTs,
--     same pg_extension_config_dump registration for a new table or
--     sequence whose rows are user data; an internal function named _xxx
--     needs its REVOKE written out, the install script's loop that revokes
--     every _xxx function does not run here);
--   * a changed plpgsql/sql function: CREATE OR REPLACE it here with the new
--     body (if its signature or return type changes, DROP the old one first,
--     and keep the old C entry point in the library: a database still at
--     0.1.0 calls the C symbols named in agentorch--0.1.0.sql);
--   * a changed schemas/*.schema.json: UPDATE agentorch._schemas here with
--     the new document (or INSERT a new one);
--   * a dropped object: DROP it here.
--
-- Functions need no hand work: `python3 scripts/gen_upgrade.py` rewrites
-- everything below the "Every function 0.2.0 changed or added" marker from
-- the two install scripts. DDL goes above the marker, by hand.
--
-- The TAP test test/t/121_schema_equivalence.pl installs 0.2.0 fresh in one
-- database and 0.1.0 + ALTER EXTENSION agentorch UPDATE in another and
-- compares their catalogs (functions and bodies, tables and columns,
-- indexes, constraints, enums, policies, ACLs, dumped configuration tables,
-- the rows of _schemas); it fails, with a diff, when this file has fallen
-- behind. Add a new column at the end of its table in the install script
-- too, so both paths give the same column order.
--
-- The shared library serves databases at 0.1.0 and at 0.2.0 alike (one is
-- installed before ALTER EXTENSION ... UPDATE runs in each database): C code
-- that needs an object created here checks ao_schema_at_least(0, 2) or calls
-- ao_require_schema(0, 2, "feature") (src/catalog.c).
--
-- This script runs in one transaction, as the extension owner, while
-- executors may be running steps of this database's runs: keep it short
-- and lock as little as possible (ALTER TABLE takes an exclusive lock until
-- commit).

\echo Use "ALTER EXTENSION agentorch UPDATE TO '0.2.0'" to load this file. \quit

-- the audit log (new in 0.2.0)
CREATE SEQUENCE agentorch.audit_log_id_seq;
CREATE TABLE agentorch.audit_log (
    id      bigint PRIMARY KEY DEFAULT pg_catalog.nextval('agentorch.audit_log_id_seq'),
    at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    actor   oid NOT NULL,                 -- the role that acted
    action  text NOT NULL,                -- start, cancel, resume, submit_input, register_*, grant_tool, ...
    object  text,                         -- the workflow, tool, model, step or orchestration acted on
    run_id  bigint,                       -- the run, when the action concerns one
    detail  jsonb
);
ALTER SEQUENCE agentorch.audit_log_id_seq OWNED BY agentorch.audit_log.id;
CREATE INDEX audit_log_actor ON agentorch.audit_log (actor, id);
ALTER TABLE agentorch.audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_log_actor ON agentorch.audit_log
    USING (actor OPERATOR(pg_catalog.=) (SELECT agentorch._current_role()));
REVOKE ALL ON agentorch.audit_log, agentorch.audit_log_id_seq FROM PUBLIC;
GRANT SELECT ON agentorch.audit_log TO PUBLIC;   -- filtered by RLS
SELECT pg_catalog.pg_extension_config_dump('agentorch.audit_log'::regclass, '');
SELECT pg_catalog.pg_extension_config_dump('agentorch.audit_log_id_seq'::regclass, '');

-- the per-run tables lose their foreign keys to runs (0.2.0): deleting runs
-- deletes their rows through the trigger runs_delete_rows (created below).
-- Dropping a foreign key locks both tables exclusively, while executors may
-- be working on runs: the locks are taken together first, without waiting
-- while holding any of them (NOWAIT, retried), so the upgrade cannot
-- deadlock with an executor's transaction; executors wait for it to commit.
DO $lock$
BEGIN
    FOR i IN 1..6000 LOOP
        BEGIN
            LOCK TABLE agentorch.steps, agentorch.runs, agentorch.events, agentorch.chunks,
                       agentorch.checkpoints, agentorch.plans IN ACCESS EXCLUSIVE MODE NOWAIT;
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            PERFORM pg_catalog.pg_sleep(0.01);
        END;
    END LOOP;
    RAISE EXCEPTION 'could not lock agentorch''s run tables for the upgrade: they were always in use'
          USING ERRCODE = '55P03', HINT = 'Try again; the executors hold these tables only while a batch commits.';
END
$lock$;
ALTER TABLE agentorch.steps DROP CONSTRAINT IF EXISTS steps_run_id_fkey;
ALTER TABLE agentorch.events DROP CONSTRAINT IF EXISTS events_run_id_fkey;
ALTER TABLE agentorch.chunks DROP CONSTRAINT IF EXISTS chunks_run_id_fkey;
ALTER TABLE agentorch.checkpoints DROP CONSTRAINT IF EXISTS checkpoints_run_id_fkey;
ALTER TABLE agentorch.plans DROP CONSTRAINT IF EXISTS plans_run_id_fkey;

-- maintenance reads runs past their deadline and running reactive runs
-- through partial indexes (0.2.0); building them reads the runs table once
CREATE INDEX runs_deadline ON agentorch.runs (id)
    WHERE deadline IS NOT NULL AND status IN ('pending', 'running', 'waiting');
CREATE INDEX runs_reactive ON agentorch.runs (id) WHERE orchestration = 'reactive' AND status = 'running';

-- the claim order (0.2.0): places in groups of sixteen, then the oldest run,
-- so a fan-out's steps are claimed together (the index holds only ready
-- steps, so rebuilding it is short)
DROP INDEX agentorch.steps_ready;
CREATE INDEX steps_ready ON agentorch.steps (network, priority DESC, not_before NULLS FIRST, (ord / 16), run_id, ord)
    WHERE status = 'ready';

-- external workers (new in 0.2.0): name, host and session of each worker
ALTER TABLE agentorch.workers ADD COLUMN name text, ADD COLUMN host text, ADD COLUMN backend_pid int;

-- runs and steps filled to 70 % (0.2.0), so their updates that change no
-- indexed column stay on the page (HOT); pages written from now on. steps
-- vacuumed after 1 % of its rows changed: a claim walks the dead entries
-- of finished steps in the claim's index until a vacuum removes them
ALTER TABLE agentorch.runs SET (fillfactor = 70);
ALTER TABLE agentorch.steps SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);

-- idempotency keys (0.2.0): only runs that have one are in the unique
-- index (building it reads the runs table once)
ALTER TABLE agentorch.runs DROP CONSTRAINT runs_owner_idempotency_key_key;
CREATE UNIQUE INDEX runs_idempotency ON agentorch.runs (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- the selector model's answer (0.2.0): {"orchestrationType", ...} as DESIGN
-- and the seed's schema name it, confidence optional
UPDATE agentorch._schemas SET schema = $ao_schema${
  "$schema": "http://json-schema.org/draft-07/schema#",
  "$id": "https://agentorch.dev/schemas/OrchestrationType.schema.json",
  "title": "OrchestrationType",
  "description": "The selector's decision: which orchestration type runs a request. The LLM selector is forced to answer in this shape.",
  "type": "object",
  "required": ["orchestrationType"],
  "properties": {
    "orchestrationType": { "enum": ["simple", "fixed", "planner", "reactive"] },
    "workflow": { "type": "string", "minLength": 1, "description": "For fixed: the registered workflow to run." },
    "confidence": { "type": "number", "minimum": 0, "maximum": 1 },
    "reason": { "type": "string", "maxLength": 2000 }
  },
  "additionalProperties": false
}
$ao_schema$
 WHERE name = 'OrchestrationType';

-------------------------------------------------------------------------------
-- Every function 0.2.0 changed or added (the state layer's transition checks
-- and hooks, output_schema, planner and reactive runs, budgets, tracing and
-- Prometheus metrics, ...), then the triggers that check status changes.
-- GENERATED by scripts/gen_upgrade.py below this point: do not edit by hand.
-------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION agentorch._current_role() RETURNS oid
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER $$;

CREATE OR REPLACE FUNCTION agentorch._lock_run(p_run bigint) RETURNS agentorch.run_status
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

CREATE OR REPLACE FUNCTION agentorch._step_transition(p_run bigint, p_step text, p_status agentorch.step_status,
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

REVOKE EXECUTE ON FUNCTION agentorch._notify_runs(bigint[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION agentorch._notify_run(p_run bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentorch._notify_runs(ARRAY[p_run]);
END
$$;

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

REVOKE EXECUTE ON FUNCTION agentorch._notify_lifecycles(bigint[], text, agentorch.run_status) FROM PUBLIC;

CREATE OR REPLACE FUNCTION agentorch._notify_lifecycle(p_run bigint, p_event text, p_status agentorch.run_status)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentorch._notify_lifecycles(ARRAY[p_run], p_event, p_status);
END
$$;

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

REVOKE EXECUTE ON FUNCTION agentorch._is_network_in(jsonb, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION agentorch._is_network(p_spec jsonb, p_run bigint) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN agentorch._is_network_in(p_spec, (SELECT r.tools FROM agentorch.runs r WHERE r.id OPERATOR(pg_catalog.=) p_run));
END
$$;

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

REVOKE EXECUTE ON FUNCTION agentorch._max_attempts_in(jsonb, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION agentorch._max_attempts(p_spec jsonb, p_run bigint) RETURNS int
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN agentorch._max_attempts_in(p_spec, (SELECT r.tools FROM agentorch.runs r WHERE r.id OPERATOR(pg_catalog.=) p_run));
END
$$;

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

REVOKE EXECUTE ON FUNCTION agentorch._materialize_runs(bigint[], int[], int[], jsonb[], jsonb[], boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION agentorch._materialize(p_run bigint, p_body jsonb, p_priority int) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentorch._materialize_runs(ARRAY[p_run], ARRAY[1], ARRAY[p_priority], ARRAY[p_body],
        ARRAY[(SELECT r.tools FROM agentorch.runs r WHERE r.id OPERATOR(pg_catalog.=) p_run)], false);
END
$$;

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

REVOKE EXECUTE ON FUNCTION agentorch._simple_body(jsonb, jsonb) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._create_runs(oid, agentorch.orchestration_type[], text[], int[], text[], jsonb[], jsonb[], jsonb[], int[], jsonb[], jsonb[], text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION agentorch._create_run(p_owner oid, p_orchestration agentorch.orchestration_type,
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

CREATE OR REPLACE FUNCTION agentorch._promote(p_run bigint) RETURNS int
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

CREATE OR REPLACE FUNCTION agentorch._finish_step(p_run bigint, p_step text, p_status agentorch.step_status,
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

REVOKE EXECUTE ON FUNCTION agentorch._settle_runs(bigint[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION agentorch._settle_run(p_run bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentorch._settle_runs(ARRAY[p_run]);
END
$$;

CREATE OR REPLACE FUNCTION agentorch._retry_step(p_run bigint, p_step text, p_error jsonb, p_delay_ms double precision)
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

CREATE OR REPLACE FUNCTION agentorch._run_output(p_run bigint) RETURNS jsonb
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

REVOKE EXECUTE ON FUNCTION agentorch._close_runs(bigint[], agentorch.run_status, jsonb[], jsonb[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION agentorch._close_run(p_run bigint, p_status agentorch.run_status,
                                     p_output jsonb, p_error jsonb)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentorch._close_runs(ARRAY[p_run], p_status, ARRAY[p_output], ARRAY[p_error]);
END
$$;

CREATE OR REPLACE FUNCTION agentorch._cancel_open_steps(p_run bigint, p_parent text) RETURNS void
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

CREATE OR REPLACE FUNCTION agentorch._fail_run(p_run bigint, p_error jsonb) RETURNS void
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

CREATE OR REPLACE FUNCTION agentorch._resume(p_run bigint) RETURNS boolean
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

CREATE OR REPLACE FUNCTION agentorch._recover(p_max int DEFAULT 100) RETURNS SETOF bigint
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

REVOKE EXECUTE ON FUNCTION agentorch._delete_run_rows() FROM PUBLIC;

CREATE FUNCTION agentorch._check_step_transition() RETURNS trigger
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_check_step_transition';

REVOKE EXECUTE ON FUNCTION agentorch._check_step_transition() FROM PUBLIC;

CREATE FUNCTION agentorch._check_run_transition() RETURNS trigger
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_check_run_transition';

REVOKE EXECUTE ON FUNCTION agentorch._check_run_transition() FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._supersede(bigint, agentorch.step_status[], text) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._replan(bigint, text, text, jsonb, text) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._apply_plan(bigint, agentorch.steps, jsonb) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._plan_finished(bigint, agentorch.steps, agentorch.step_status, jsonb, jsonb) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._budget_state(agentorch.runs, bigint) FROM PUBLIC;

CREATE FUNCTION agentorch._triggered(p_run bigint, p_trigger text, p_detail text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM agentorch.events
                    WHERE run_id OPERATOR(pg_catalog.=) p_run AND kind OPERATOR(pg_catalog.=) 'replan_triggered'
                      AND data OPERATOR(pg_catalog.->>) 'trigger' OPERATOR(pg_catalog.=) p_trigger
                      AND data OPERATOR(pg_catalog.->>) 'detail' IS NOT DISTINCT FROM p_detail)
$$;

REVOKE EXECUTE ON FUNCTION agentorch._triggered(bigint, text, text) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._trigger_replan(bigint, text, text, text) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._budget_gate(bigint) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._reactive_check(bigint, text) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._check_stalls(int) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._adapt_models(bigint) FROM PUBLIC;

CREATE FUNCTION agentorch._planner_step(p_run bigint, p_reason text, p_problem text, p_rejected jsonb)
    RETURNS jsonb LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_planner_step';

REVOKE EXECUTE ON FUNCTION agentorch._planner_step(bigint, text, text, jsonb) FROM PUBLIC;

CREATE FUNCTION agentorch._check_plan(p_run bigint, p_plan jsonb)
    RETURNS jsonb LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_check_plan';

REVOKE EXECUTE ON FUNCTION agentorch._check_plan(bigint, jsonb) FROM PUBLIC;

CREATE FUNCTION agentorch.trace(run_id bigint) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (
        -- the trace id: runs.trace_id; for a run started in a database still
        -- at 0.1.0 (which kept the whole traceparent, or none) the one in
        -- its traceparent, else one derived from the run id
        SELECT ru.*, CASE WHEN ru.trace_id OPERATOR(pg_catalog.~) '^[0-9a-f]{32}$' THEN ru.trace_id
                          WHEN ru.trace_id OPERATOR(pg_catalog.~) '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
                          THEN pg_catalog.substr(ru.trace_id, 4, 32)
                          ELSE pg_catalog.md5('agentorch run ' OPERATOR(pg_catalog.||) ru.id::text) END AS tid
          FROM agentorch.runs ru WHERE ru.id OPERATOR(pg_catalog.=) trace.run_id
    ), spans AS (
        SELECT 0 AS ord, pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                   'traceId', r.tid,
                   'spanId', agentorch._span_id(r.tid, NULL),
                   'parentSpanId', pg_catalog.substring(r.options OPERATOR(pg_catalog.->>) 'traceparent',
                                                        '^[0-9a-f]{2}-[0-9a-f]{32}-([0-9a-f]{16})-[0-9a-f]{2}$'),
                   'name', 'run ' OPERATOR(pg_catalog.||) r.id::text,
                   'kind', 1,
                   'startTimeUnixNano', agentorch._unix_nano(COALESCE(r.started_at, r.created_at)),
                   'endTimeUnixNano', agentorch._unix_nano(r.finished_at),
                   'status', CASE r.status WHEN 'succeeded' THEN '{"code": 1}'::jsonb
                                           WHEN 'failed' THEN pg_catalog.jsonb_build_object('code', 2, 'message', r.error OPERATOR(pg_catalog.->>) 'message')
                                           WHEN 'cancelled' THEN '{"code": 2, "message": "cancelled"}'::jsonb
                                           ELSE '{"code": 0}'::jsonb END,
                   'attributes', agentorch._otel_attributes(pg_catalog.jsonb_build_object(
                       'agentorch.run_id', r.id, 'agentorch.orchestration', r.orchestration,
                       'agentorch.workflow', r.workflow_name, 'agentorch.status', r.status,
                       'agentorch.model', r.options OPERATOR(pg_catalog.->>) 'model',
                       'gen_ai.usage.input_tokens', r.prompt_tokens, 'gen_ai.usage.output_tokens', r.completion_tokens,
                       'agentorch.cost', r.cost)))) AS span
          FROM r
        UNION ALL
        SELECT s.ord, pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                   'traceId', r.tid,
                   'spanId', agentorch._span_id(r.tid, s.step_id),
                   'parentSpanId', agentorch._span_id(r.tid, s.parent_step_id),
                   'name', s.step_id,
                   'kind', CASE WHEN s.network THEN 3 ELSE 1 END,
                   'startTimeUnixNano', agentorch._unix_nano(COALESCE(s.started_at, s.created_at)),
                   'endTimeUnixNano', agentorch._unix_nano(s.finished_at),
                   'status', CASE s.status WHEN 'succeeded' THEN '{"code": 1}'::jsonb
                                           WHEN 'failed' THEN pg_catalog.jsonb_build_object('code', 2, 'message', s.error OPERATOR(pg_catalog.->>) 'message')
                                           ELSE '{"code": 0}'::jsonb END,
                   'attributes', agentorch._otel_attributes(pg_catalog.jsonb_build_object(
                       'agentorch.step.kind', s.kind, 'agentorch.step.status', s.status, 'agentorch.attempt', s.attempt,
                       'agentorch.tool', s.spec OPERATOR(pg_catalog.->>) 'tool',
                       'gen_ai.request.model', CASE WHEN s.kind OPERATOR(pg_catalog.=) 'llm'
                                                    THEN COALESCE(s.spec OPERATOR(pg_catalog.->>) 'model', r.options OPERATOR(pg_catalog.->>) 'model') END,
                       'gen_ai.usage.input_tokens', NULLIF(s.prompt_tokens, 0),
                       'gen_ai.usage.output_tokens', NULLIF(s.completion_tokens, 0),
                       'agentorch.cost', NULLIF(s.cost, 0))))) AS span
          FROM r JOIN agentorch.steps s ON s.run_id OPERATOR(pg_catalog.=) r.id
    )
    SELECT pg_catalog.jsonb_build_object('resourceSpans', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
               'resource', pg_catalog.jsonb_build_object('attributes', agentorch._otel_attributes('{"service.name": "agentorch"}')),
               'scopeSpans', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                   'scope', pg_catalog.jsonb_build_object('name', 'agentorch', 'version', '0.2.0'),
                   'spans', (SELECT pg_catalog.jsonb_agg(span ORDER BY ord) FROM spans))))))
      FROM r
$$;

CREATE FUNCTION agentorch.metrics_prometheus() RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH m AS (
        SELECT x.ord,
               CASE WHEN x.name OPERATOR(pg_catalog.~) '^[a-z]+:.*\.[a-z_]+$'
                    THEN 'agentorch_target_' OPERATOR(pg_catalog.||) pg_catalog.substring(x.name, '\.([a-z_]+)$')
                    ELSE 'agentorch_' OPERATOR(pg_catalog.||) pg_catalog.regexp_replace(x.name, '[^a-zA-Z0-9_]', '_', 'g') END AS metric,
               CASE WHEN x.name OPERATOR(pg_catalog.~) '^[a-z]+:.*\.[a-z_]+$'
                    THEN pg_catalog.substring(x.name, '^(.*)\.[a-z_]+$') END AS target,
               CASE WHEN x.value = 'Infinity'::float8 THEN '+Inf' WHEN x.value = '-Infinity'::float8 THEN '-Inf'
                    ELSE x.value::text END AS value
          FROM agentorch.metrics() WITH ORDINALITY AS x(name, value, ord)
    ), families AS (
        SELECT metric, pg_catalog.min(ord) AS first,
               '# TYPE ' OPERATOR(pg_catalog.||) metric OPERATOR(pg_catalog.||)
               CASE WHEN metric OPERATOR(pg_catalog.~~) '%\_total' THEN ' counter' ELSE ' gauge' END OPERATOR(pg_catalog.||) E'\n' OPERATOR(pg_catalog.||)
               pg_catalog.string_agg(metric OPERATOR(pg_catalog.||)
                   COALESCE('{target="' OPERATOR(pg_catalog.||)
                            pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(target, E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n')
                            OPERATOR(pg_catalog.||) '"}', '')
                   OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) value OPERATOR(pg_catalog.||) E'\n', '' ORDER BY ord) AS lines
          FROM m GROUP BY metric
    )
    SELECT COALESCE(pg_catalog.string_agg(lines, '' ORDER BY first), '') FROM families
$$;

CREATE FUNCTION agentorch._otel_attributes(p jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('key', e.key, 'value',
               CASE pg_catalog.jsonb_typeof(e.value)
                    WHEN 'number' THEN CASE WHEN e.value::text OPERATOR(pg_catalog.~) '^-?[0-9]+$'
                                            THEN pg_catalog.jsonb_build_object('intValue', e.value::text)
                                            ELSE pg_catalog.jsonb_build_object('doubleValue', e.value) END
                    WHEN 'boolean' THEN pg_catalog.jsonb_build_object('boolValue', e.value)
                    ELSE pg_catalog.jsonb_build_object('stringValue', e.value OPERATOR(pg_catalog.#>>) '{}') END)
               ORDER BY e.key), '[]')
      FROM pg_catalog.jsonb_each(p) e
     WHERE pg_catalog.jsonb_typeof(e.value) OPERATOR(pg_catalog.<>) 'null'
$$;

CREATE FUNCTION agentorch._unix_nano(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (pg_catalog.floor(pg_catalog.date_part('epoch', t) OPERATOR(pg_catalog.*) 1000000)::numeric
            OPERATOR(pg_catalog.*) 1000)::bigint::text
$$;

CREATE FUNCTION agentorch._span_id(p_trace text, p_step text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_trace IS NOT NULL
                THEN pg_catalog.left(pg_catalog.md5(p_trace OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) COALESCE(p_step, '')), 16) END
$$;

CREATE FUNCTION agentorch._worker_claim(p_worker int, p_name text, p_n int, p_recover boolean)
    RETURNS jsonb LANGUAGE c VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_claim';

REVOKE EXECUTE ON FUNCTION agentorch._worker_claim(int, text, int, boolean) FROM PUBLIC;

CREATE FUNCTION agentorch._worker_call_tools(p_run bigint, p_step text, p_attempt int, p_calls jsonb)
    RETURNS jsonb LANGUAGE c VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_call_tools';

REVOKE EXECUTE ON FUNCTION agentorch._worker_call_tools(bigint, text, int, jsonb) FROM PUBLIC;

CREATE FUNCTION agentorch._worker_fallback(p_run bigint, p_step text, p_attempt int, p_model text)
    RETURNS jsonb LANGUAGE c VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_fallback';

REVOKE EXECUTE ON FUNCTION agentorch._worker_fallback(bigint, text, int, text) FROM PUBLIC;

CREATE FUNCTION agentorch._worker_slot_done(p_run bigint, p_step text, p_outcome int, p_tokens double precision,
                                            p_counted int)
    RETURNS void LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_slot_done';

REVOKE EXECUTE ON FUNCTION agentorch._worker_slot_done(bigint, text, int, double precision, int) FROM PUBLIC;

CREATE FUNCTION agentorch._worker_retry_delay(p_spec jsonb, p_attempt int, p_retry_after_ms double precision)
    RETURNS double precision LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_retry_delay';

REVOKE EXECUTE ON FUNCTION agentorch._worker_retry_delay(jsonb, int, double precision) FROM PUBLIC;

CREATE FUNCTION agentorch._worker_settings() RETURNS jsonb
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_settings';

REVOKE EXECUTE ON FUNCTION agentorch._worker_settings() FROM PUBLIC;

CREATE FUNCTION agentorch._worker_wake() RETURNS void
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_worker_wake';

REVOKE EXECUTE ON FUNCTION agentorch._worker_wake() FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._worker_register(text, text, int) FROM PUBLIC;

CREATE FUNCTION agentorch._worker_exit(p_worker int) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM agentorch.workers
     WHERE id OPERATOR(pg_catalog.=) p_worker AND backend_pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid();
END
$$;

REVOKE EXECUTE ON FUNCTION agentorch._worker_exit(int) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._worker_holds(bigint, text, int) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._worker_heartbeat(int, jsonb) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._worker_append(jsonb) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._worker_flush(jsonb) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION agentorch._worker_settle(jsonb) FROM PUBLIC;

CREATE TRIGGER runs_delete_rows AFTER DELETE ON agentorch.runs
    REFERENCING OLD TABLE AS deleted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION agentorch._delete_run_rows();
CREATE TRIGGER runs_truncate_rows AFTER TRUNCATE ON agentorch.runs
    FOR EACH STATEMENT EXECUTE FUNCTION agentorch._delete_run_rows();
CREATE TRIGGER steps_transition BEFORE UPDATE OF status ON agentorch.steps
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION agentorch._check_step_transition();
CREATE TRIGGER runs_transition BEFORE UPDATE OF status ON agentorch.runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION agentorch._check_run_transition();
