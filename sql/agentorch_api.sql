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

-- The run's spans in OpenTelemetry's JSON shape (an ExportTraceServiceRequest
-- body: resourceSpans -> scopeSpans -> spans), for a collector to ingest:
-- one span for the run and one per step (a child under its parallel or loop
-- parent), with the run's W3C trace id (runs.trace_id: options.traceparent's,
-- else generated) and span ids derived from it (agentorch._span_id), start
-- and end times, status, and attributes (kind, attempt, model, tokens,
-- cost, tool). NULL for a run the caller cannot read (row-level security).
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

-- metrics() in Prometheus' text exposition format (for postgres_exporter's
-- custom queries or a sidecar): agentorch_<name>, *_total as counters, the
-- rest as gauges; per-target figures ("model:fast.in_flight") as
-- agentorch_target_<figure>{target="model:fast"}.
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

-- Helpers of trace(): an OpenTelemetry attribute list from a JSON object
-- (nulls left out), a time as Unix nanoseconds (a string, as OTLP/JSON
-- writes 64-bit integers), and a span id (16 hex digits) derived from the
-- trace id and a step id (NULL: the run's own span), the same the HTTP
-- requests of the step carry in their traceparent header.
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
