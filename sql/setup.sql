-- The extension installs into schema agentorch with its enums, tables and schemas.
CREATE EXTENSION agentorch;
SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'agentorch';
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'agentorch';
SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
WHERE t.typnamespace = 'agentorch'::regnamespace GROUP BY t.typname ORDER BY t.typname;
SELECT c.relname, c.relrowsecurity AS rls
FROM pg_class c WHERE c.relnamespace = 'agentorch'::regnamespace AND c.relkind = 'r' ORDER BY c.relname;
SELECT name FROM agentorch._schemas ORDER BY name;
-- every per-run table's primary key leads with run_id
SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
WHERE i.indisprimary AND c.relnamespace = 'agentorch'::regnamespace
  AND c.relname IN ('steps', 'events', 'chunks', 'checkpoints', 'plans') ORDER BY 1;
-- the partial indexes of the engine's hot paths
SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'agentorch' AND indexdef LIKE '%WHERE%' ORDER BY 1;
-- runs and steps leave room for HOT updates; steps, a queue, is vacuumed early
SELECT relname, reloptions FROM pg_class WHERE oid IN ('agentorch.runs'::regclass, 'agentorch.steps'::regclass) ORDER BY 1;
-- the stored schemas are valid JSON Schemas and the orchestration-config defaults validate
SELECT name, agentorch.is_valid_json('{}', schema) AS accepts_empty FROM agentorch._schemas ORDER BY name;
SELECT current_setting('agentorch.max_definition_size');
