-- agentorch_api.sql -- the run API (DESIGN.md section 4), part of the
-- install script after agentorch_state.sql.
--
-- Functions that change state are C functions: they record the calling
-- role as the run's owner, check that the caller may act on the run, then
-- switch to the extension owner to call the state layer. Functions that
-- only read are SQL functions running as the caller, so row-level
-- security decides what they see.

-- Render ${...} references of a template against a context (internal).
CREATE FUNCTION agentorch._render(template jsonb, context jsonb) RETURNS jsonb
    LANGUAGE c STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_render';
REVOKE EXECUTE ON FUNCTION agentorch._render(jsonb, jsonb) FROM PUBLIC;

-- Called by the install script: wakes the launcher at commit so this
-- database gets its executors within moments.
CREATE FUNCTION agentorch._wake_launcher() RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_wake_launcher';
REVOKE EXECUTE ON FUNCTION agentorch._wake_launcher() FROM PUBLIC;

CREATE FUNCTION agentorch.start(input jsonb, orchestration agentorch.orchestration_type DEFAULT NULL,
                                workflow text DEFAULT NULL, options jsonb DEFAULT '{}')
    RETURNS bigint LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'ao_sql_start';  -- captures the caller's search_path, then pins its own (C)

-- One run per input, in order, in this statement (each as start() makes it).
CREATE FUNCTION agentorch.start_many(inputs jsonb[], orchestration agentorch.orchestration_type DEFAULT NULL,
                                     workflow text DEFAULT NULL, options jsonb DEFAULT '{}')
    RETURNS SETOF bigint LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'ao_sql_start_many';  -- captures the caller's search_path, then pins its own (C)

CREATE FUNCTION agentorch.run_workflow(name text, input jsonb DEFAULT '{}', options jsonb DEFAULT '{}')
    RETURNS bigint LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'ao_sql_run_workflow';  -- captures the caller's search_path, then pins its own (C)

CREATE FUNCTION agentorch.wait(run_id bigint, timeout interval DEFAULT '30s')
    RETURNS agentorch.runs LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_wait';

CREATE FUNCTION agentorch.stream(run_id bigint, after_seq bigint DEFAULT 0)
    RETURNS SETOF agentorch.chunks LANGUAGE sql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT * FROM agentorch.chunks c
     WHERE c.run_id OPERATOR(pg_catalog.=) $1 AND c.seq OPERATOR(pg_catalog.>) $2
     ORDER BY c.seq
$$;

CREATE FUNCTION agentorch.follow(run_id bigint, after_seq bigint DEFAULT 0, timeout interval DEFAULT '60s')
    RETURNS SETOF agentorch.chunks LANGUAGE c VOLATILE STRICT ROWS 100
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_follow';

CREATE FUNCTION agentorch.cancel(run_id bigint, reason text DEFAULT NULL)
    RETURNS boolean LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_cancel';

CREATE FUNCTION agentorch.resume(run_id bigint)
    RETURNS boolean LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_resume';

CREATE FUNCTION agentorch.submit_input(run_id bigint, step_id text, value jsonb)
    RETURNS boolean LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_submit_input';

CREATE FUNCTION agentorch.run_sync(input jsonb, options jsonb DEFAULT '{}')
    RETURNS SETOF agentorch.chunks LANGUAGE c VOLATILE ROWS 100
    AS 'MODULE_PATHNAME', 'ao_sql_run_sync';  -- captures the caller's search_path, then pins its own (C)

CREATE FUNCTION agentorch.simulate(definition jsonb, input jsonb DEFAULT '{}', mocks jsonb DEFAULT '{}')
    RETURNS TABLE (ord int, step_id text, status agentorch.step_status, output jsonb)
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_simulate';

CREATE FUNCTION agentorch.work(max_steps int DEFAULT 100, timeout interval DEFAULT '10s')
    RETURNS int LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_work';

CREATE FUNCTION agentorch.progress(run_id bigint)
    RETURNS TABLE (total int, succeeded int, running int, failed int, skipped int, percent numeric)
    LANGUAGE sql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT pg_catalog.count(*)::int,
           (pg_catalog.count(*) FILTER (WHERE s.status OPERATOR(pg_catalog.=) ANY ('{succeeded,compensated}'::agentorch.step_status[])))::int,
           (pg_catalog.count(*) FILTER (WHERE s.status OPERATOR(pg_catalog.=) ANY ('{running,waiting}'::agentorch.step_status[])))::int,
           (pg_catalog.count(*) FILTER (WHERE s.status OPERATOR(pg_catalog.=) ANY ('{failed,cancelled}'::agentorch.step_status[])))::int,
           (pg_catalog.count(*) FILTER (WHERE s.status OPERATOR(pg_catalog.=) 'skipped'))::int,
           CASE WHEN pg_catalog.count(*) OPERATOR(pg_catalog.=) 0 THEN 0::numeric
                ELSE pg_catalog.round(100.0 OPERATOR(pg_catalog.*) pg_catalog.count(*) FILTER (
                        WHERE s.status OPERATOR(pg_catalog.=) ANY ('{succeeded,failed,skipped,cancelled,compensated}'::agentorch.step_status[]))
                     OPERATOR(pg_catalog./) pg_catalog.count(*), 1) END
      FROM agentorch.steps s
     WHERE s.run_id OPERATOR(pg_catalog.=) $1 AND s.parent_step_id IS NULL
       AND NOT s.spec OPERATOR(pg_catalog.?) 'compensates'
$$;

CREATE FUNCTION agentorch.graph(run_id bigint, format text DEFAULT 'mermaid')
    RETURNS text LANGUAGE c STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_graph';

CREATE FUNCTION agentorch.purge(older_than interval)
    RETURNS bigint LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_purge';

CREATE FUNCTION agentorch.metrics()
    RETURNS TABLE (name text, value float8) LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_metrics';

-- The run's private NOTIFY channel, agentorch_run_<id>_<token>, for a run
-- the caller may read (row-level security decides); NULL otherwise, the
-- same as for a run that does not exist.
CREATE FUNCTION agentorch.channel(run_id bigint) RETURNS text
    LANGUAGE sql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT 'agentorch_run_' OPERATOR(pg_catalog.||) r.id OPERATOR(pg_catalog.||) '_'
           OPERATOR(pg_catalog.||) r.channel_token
      FROM agentorch.runs r WHERE r.id OPERATOR(pg_catalog.=) $1
$$;

-- Tools are owned: their owner (or a superuser) grants their use to other
-- roles, takes it back, and drops them (registry.c).
CREATE FUNCTION agentorch.grant_tool(tool text, grantee regrole) RETURNS void
    LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_grant_tool';

CREATE FUNCTION agentorch.revoke_tool(tool text, grantee regrole) RETURNS void
    LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_revoke_tool';

CREATE FUNCTION agentorch.drop_tool(tool text) RETURNS boolean
    LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_drop_tool';

SELECT agentorch._wake_launcher();

-------------------------------------------------------------------------------
-- Orchestration selection (DESIGN.md section 6 "Selection", src/selector).

-- The decision start() makes when orchestration is NULL, without starting
-- anything. options.workflow plays start()'s workflow argument.
CREATE FUNCTION agentorch.select(input jsonb, options jsonb DEFAULT '{}')
    RETURNS TABLE(orchestration agentorch.orchestration_type, workflow text, confidence float8,
                  source text, reason text)
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_select';

-- Replace every selector rule with a YAML or JSON document
-- (schemas/SelectorRules.schema.json). Rules decide how every role's runs
-- are orchestrated, so EXECUTE is revoked from PUBLIC: superusers and the
-- extension owner may call it, and may GRANT it to a role that administers
-- the selector.
CREATE FUNCTION agentorch.load_selector_rules(document text)
    RETURNS int LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ao_sql_load_selector_rules';
REVOKE EXECUTE ON FUNCTION agentorch.load_selector_rules(text) FROM PUBLIC;
