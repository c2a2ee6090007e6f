-- samples/tools.sql -- the data and tools the sample workflows use.
-- Run as a superuser after CREATE EXTENSION agentorch (the demo does).

CREATE SCHEMA IF NOT EXISTS samples;

CREATE TABLE IF NOT EXISTS public.sales (
    id      int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    region  text NOT NULL,
    month   date NOT NULL,
    amount  numeric(12, 2) NOT NULL
);
INSERT INTO public.sales (region, month, amount)
SELECT r, date '2026-01-01' + (m || ' month')::interval, round((1000 + 250 * m + 40 * length(r))::numeric, 2)
FROM unnest(ARRAY['north', 'south', 'east', 'west']) AS r, generate_series(0, 5) AS m
WHERE NOT EXISTS (SELECT 1 FROM public.sales);

CREATE TABLE IF NOT EXISTS samples.orders (
    id       int PRIMARY KEY,
    customer text NOT NULL,
    amount   numeric(12, 2) NOT NULL,
    status   text NOT NULL DEFAULT 'new'
);
INSERT INTO samples.orders VALUES (1, 'acme', 250.00), (2, 'globex', 4800.00)
ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS samples.expenses (
    id       int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    employee text NOT NULL,
    amount   numeric(12, 2) NOT NULL,
    comment  text
);

-- chart.create: turns rows of {label, value} into a chart spec. Its input
-- is the rows themselves (as the design notes' workflow passes them) or
-- {"data": rows}.
CREATE OR REPLACE FUNCTION samples.chart_create(input jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('type', 'bar',
                              'points', CASE WHEN jsonb_typeof(d) = 'array' THEN jsonb_array_length(d) ELSE 0 END,
                              'data', d)
      FROM (SELECT CASE WHEN jsonb_typeof(input) = 'object' THEN input -> 'data' ELSE input END AS d) x
$$;

-- report.generate: a small text report from a summary (the summary text
-- itself, or {"summary": text, "rows": [...]}).
CREATE OR REPLACE FUNCTION samples.report_generate(input jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('title', 'Report',
                              'text', COALESCE(CASE WHEN jsonb_typeof(input) = 'object' THEN input ->> 'summary'
                                                    ELSE input #>> '{}' END, ''),
                              'rows', CASE WHEN jsonb_typeof(input -> 'rows') = 'array'
                                           THEN jsonb_array_length(input -> 'rows') ELSE 0 END)
$$;

GRANT USAGE ON SCHEMA samples TO PUBLIC;
GRANT SELECT ON public.sales, samples.orders TO PUBLIC;

SELECT agentorch.register_tool('chart.create', 'function', '{"function": "samples.chart_create"}',
    '{"anyOf": [{"type": ["array", "null"]}, {"type": "object", "required": ["data"]}]}');
SELECT agentorch.register_tool('report.generate', 'function', '{"function": "samples.report_generate"}',
    '{"anyOf": [{"type": ["string", "null"]}, {"type": "object", "required": ["summary"], "properties": {"summary": {"type": "string"}}}]}');
SELECT agentorch.register_tool('sales.regions', 'sql',
    '{"sql": "SELECT DISTINCT region FROM public.sales ORDER BY region"}');
SELECT agentorch.register_tool('sales.by_region', 'sql',
    '{"sql": "SELECT region, sum(amount) AS total FROM public.sales WHERE region = $1 GROUP BY region", "params": ["region"]}',
    '{"type": "object", "required": ["region"], "properties": {"region": {"type": "string"}}}');
SELECT agentorch.register_tool('orders.lookup', 'sql',
    '{"sql": "SELECT id, customer, amount, status FROM samples.orders WHERE id = $1", "params": ["order_id"]}',
    '{"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "integer"}}}');
SELECT agentorch.register_tool('orders.approve', 'sql',
    '{"sql": "UPDATE samples.orders SET status = ''approved'' WHERE id = $1", "params": ["order_id"]}',
    '{"type": "object", "required": ["order_id"]}',
    '{"retry": {"max_attempts": 3}, "timeout": "5s"}');
SELECT agentorch.register_tool('expenses.record', 'sql',
    '{"sql": "INSERT INTO samples.expenses (employee, amount, comment) VALUES ($1, $2, $3)", "params": ["employee", "amount", "comment"]}',
    '{"type": "object", "required": ["employee", "amount"]}');
