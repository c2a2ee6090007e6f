-- test/bench/pgbench_step.sql -- one durable step done one at a time, the
-- minimum a per-transition engine commits: a claim transaction, then a
-- completion transaction with its event row and a NOTIFY. One execution of
-- this script = one step (pgbench's "tps" is steps/s).
WITH c AS (SELECT id FROM bench_step WHERE status = 'ready' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
UPDATE bench_step s SET status = 'running', started_at = now() FROM c WHERE s.id = c.id RETURNING s.id AS step \gset
BEGIN;
UPDATE bench_step SET status = 'done', finished_at = now() WHERE id = :step;
INSERT INTO bench_event (step_id, kind) VALUES (:step, 'step_succeeded');
SELECT pg_notify('bench_step', :step::text);
COMMIT;
