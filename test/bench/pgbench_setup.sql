-- test/bench/pgbench_setup.sql -- the baseline's own tables (not agentorch's):
-- a queue of steps and their event log, shaped like the minimum a durable
-- workflow step needs. :rows ready steps are preloaded, so the pgbench
-- clients never run dry.
DROP TABLE IF EXISTS bench_step, bench_event;
CREATE TABLE bench_step (
    id          bigint PRIMARY KEY,
    status      text NOT NULL DEFAULT 'ready',
    started_at  timestamptz,
    finished_at timestamptz
);
CREATE INDEX bench_step_ready ON bench_step (id) WHERE status = 'ready';
CREATE TABLE bench_event (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step_id bigint NOT NULL,
    kind    text NOT NULL,
    at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO bench_step (id) SELECT g FROM generate_series(1, :rows) g;
VACUUM ANALYZE bench_step, bench_event;
