-- test/bench/setup.sql -- what engine_bench.sh measures: a no-op sql tool and
-- four workflows made of it. Run once after CREATE EXTENSION agentorch.

SELECT agentorch.register_tool('bench.noop', 'sql', '{"sql": "SELECT 1"}');

-- one step
SELECT agentorch.register_workflow('bench_single',
    '{"steps": [{"id": "s1", "type": "tool", "tool": "bench.noop"}]}');

-- fan-out of 10: ten independent top-level steps, all ready at start
SELECT agentorch.register_workflow('bench_fan10', jsonb_build_object('steps',
    (SELECT jsonb_agg(jsonb_build_object('id', 's' || i, 'type', 'tool', 'tool', 'bench.noop') ORDER BY i)
       FROM generate_series(1, 10) i)));

-- fan-out of 10 as one parallel step with 10 children (for comparison)
SELECT agentorch.register_workflow('bench_par10', jsonb_build_object('steps', jsonb_build_array(
    jsonb_build_object('id', 'p', 'type', 'parallel', 'steps',
        (SELECT jsonb_agg(jsonb_build_object('id', 's' || i, 'type', 'tool', 'tool', 'bench.noop') ORDER BY i)
           FROM generate_series(1, 10) i)))));

-- chain of 10: s(i) depends on s(i-1)
SELECT agentorch.register_workflow('bench_chain10', jsonb_build_object('steps',
    (SELECT jsonb_agg(jsonb_build_object('id', 's' || i, 'type', 'tool', 'tool', 'bench.noop')
                      || CASE WHEN i > 1 THEN jsonb_build_object('depends_on', jsonb_build_array('s' || (i - 1)))
                              ELSE '{}' END ORDER BY i)
       FROM generate_series(1, 10) i)));
