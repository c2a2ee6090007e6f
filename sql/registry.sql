-- Tools and models: each kind's spec is checked; bad specs store nothing.
CREATE FUNCTION public.echo_tool(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
SELECT agentorch.register_tool('echo', 'function', '{"function": "public.echo_tool"}',
  '{"type": "object"}', '{"retry": {"max_attempts": 3, "backoff": {"initial": "100ms", "multiplier": 2}}, "timeout": "5s"}');
SELECT agentorch.register_tool('orders.by_region', 'sql',
  '{"sql": "SELECT * FROM pg_class WHERE relname = $1", "params": ["region"]}');
SELECT agentorch.register_tool('weather', 'http', '{"method": "POST", "url": "http://127.0.0.1:9/weather", "headers": {"X-Client": "agentorch"}}');
-- re-registering replaces
SELECT agentorch.register_tool('echo2', 'function', '{"function": "public.chart_create"}');
SELECT agentorch.register_tool('echo2', 'function', '{"function": "public.echo_tool"}', '{"type": "object"}');
SELECT name, kind, spec, input_schema, policy, owner = 'postgres'::regrole AS mine FROM agentorch.tools ORDER BY name;

-- bad tools
SELECT agentorch.register_tool('t1', 'shell', '{"cmd": "rm -rf /"}');
SELECT agentorch.register_tool('t1', 'sql', '{"query": "SELECT 1"}');
SELECT agentorch.register_tool('t1', 'sql', '{"sql": "SELEC 1"}');
SELECT agentorch.register_tool('t1', 'sql', '{"sql": "SELECT 1; SELECT 2"}');
SELECT agentorch.register_tool('t1', 'sql', '{"sql": "SELECT $1", "params": [1]}');
SELECT agentorch.register_tool('t1', 'function', '{"function": "public.no_such_fn"}');
SELECT agentorch.register_tool('t1', 'http', '{"url": "ftp://example.com/x"}');
SELECT agentorch.register_tool('t1', 'http', '{"url": "http://127.0.0.1/", "method": "TRACE"}');
SELECT agentorch.register_tool('t1', 'function', '{"function": "public.echo_tool"}', '{"type": 5}');
SELECT agentorch.register_tool('t1', 'function', '{"function": "public.echo_tool"}', NULL, '{"retry": {"max_attempts": 0}, "colour": 1}');
SELECT agentorch.register_tool('bad name', 'function', '{"function": "public.echo_tool"}');
SELECT agentorch.register_tool('database.query', 'function', '{"function": "public.echo_tool"}');
SELECT agentorch.register_tool(NULL, 'function', '{}');
SELECT count(*) AS stored FROM agentorch.tools WHERE name IN ('t1', 'bad name');

-- models
SELECT agentorch.register_model('fast', 'openai', '{"base_url": "http://127.0.0.1:8089/v1", "model": "gpt-4o-mini",
  "api_key_env": "OPENAI_API_KEY", "prices": {"input_per_mtok": 0.15, "output_per_mtok": 0.6},
  "fallback": ["smart"], "rate_limit": {"rpm": 600, "tpm": 100000}, "max_concurrency": 64}');
SELECT agentorch.register_model('smart', 'anthropic', '{"base_url": "http://127.0.0.1:8089", "model": "claude-sonnet-4-5"}');
SELECT name, provider, spec->>'model' AS model FROM agentorch.models ORDER BY name;
SELECT agentorch.register_model('m1', 'gemini', '{"base_url": "http://x", "model": "m"}');
SELECT agentorch.register_model('m1', 'openai', '{"base_url": "http://x", "model": "m", "api_key": "sk-secret"}');
SELECT agentorch.register_model('m1', 'openai', '{"base_url": "file:///etc/passwd", "model": "m"}');
SELECT agentorch.register_model('m1', 'openai', '{"model": "m", "max_concurrency": 0}');
SELECT count(*) AS stored FROM agentorch.models WHERE name = 'm1';
