-- Workflow definitions: validation (schema, DAG, references, jsonpath, tools),
-- registration with versions, and bad input that is refused and stores nothing.
CREATE FUNCTION public.chart_create(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
CREATE FUNCTION public.report_generate(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
SELECT agentorch.register_tool('chart.create', 'function', '{"function": "public.chart_create"}');
SELECT agentorch.register_tool('report.generate', 'function', '{"function": "public.report_generate"}');

-- the design notes' example, in YAML, as written
\set data_analysis 'workflow:\n  name: data-analysis\n  version: 1.0\n  steps:\n    - id: load_data\n      type: tool\n      tool: database.query\n      input:\n        query: "SELECT * FROM sales"\n    - id: analyze\n      type: llm\n      depends_on: [load_data]\n      prompt: "Analyze this sales data and identify trends"\n      input:\n        context: "${load_data.output}"\n    - id: visualize\n      type: parallel\n      depends_on: [analyze]\n      steps:\n        - id: create_chart\n          type: tool\n          tool: chart.create\n          input:\n            data: "${analyze.output.chart_data}"\n        - id: generate_report\n          type: tool\n          tool: report.generate\n          input:\n            summary: "${analyze.output.summary}"\n'
SELECT count(*) AS problems FROM agentorch.validate_workflow(agentorch.yaml_to_jsonb(replace(:'data_analysis', '\n', chr(10))));
SELECT agentorch.register_workflow_yaml('data-analysis', replace(:'data_analysis', '\n', chr(10))) AS version;
-- identical definition: same version; changed definition: next version
SELECT agentorch.register_workflow_yaml('data-analysis', replace(:'data_analysis', '\n', chr(10))) AS version;
SELECT agentorch.register_workflow('data-analysis',
  agentorch.yaml_to_jsonb(replace(:'data_analysis', '\n', chr(10))) #- '{workflow,version}') AS version;
SELECT name, version, length(definition_hash) AS hash_len, created_by = 'postgres'::regrole AS by_me
FROM agentorch.workflows ORDER BY name, version;

-- "kind" is a synonym of "type"; the unwrapped form works too
SELECT * FROM agentorch.validate_workflow('{"steps": [{"id": "a", "kind": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}}]}');

-- every kind of problem, reported with its JSON-pointer path
SELECT * FROM agentorch.validate_workflow('{"steps": []}');
SELECT * FROM agentorch.validate_workflow('{"steps": [{"id": "a", "type": "teleport"}]}');
SELECT * FROM agentorch.validate_workflow('{"steps": [{"id": "a", "type": "tool"}]}');
SELECT * FROM agentorch.validate_workflow('{"steps": [{"id": "a", "type": "tool", "tool": "database.query", "colour": "red"}]}');
SELECT * FROM agentorch.validate_workflow('{"steps": [{"id": 7, "type": "tool", "tool": "database.query", "depends_on": "x"}]}');
SELECT * FROM agentorch.validate_workflow('{"steps": [
  {"id": "a", "type": "tool", "tool": "database.query"},
  {"id": "a", "type": "tool", "tool": "database.query"}]}');
SELECT * FROM agentorch.validate_workflow('{"steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "depends_on": ["ghost"]}]}');
SELECT * FROM agentorch.validate_workflow('{"steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "depends_on": ["c"]},
  {"id": "b", "type": "tool", "tool": "database.query", "depends_on": ["a"]},
  {"id": "c", "type": "tool", "tool": "database.query", "depends_on": ["b"]}]}');
SELECT * FROM agentorch.validate_workflow('{"steps": [
  {"id": "a", "type": "tool", "tool": "no.such.tool"},
  {"id": "b", "type": "llm", "prompt": "x", "tools": ["chart.create", "nope"]}]}');
SELECT * FROM agentorch.validate_workflow('{"steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "input": {"q": "${ghost.output}", "r": "${input.x}"}},
  {"id": "b", "type": "tool", "tool": "database.query", "input": {"q": "${a.output.rows}"}},
  {"id": "c", "type": "tool", "tool": "database.query", "input": {"q": "${item}", "bad": "${unclosed"}}]}');
SELECT * FROM agentorch.validate_workflow('{"steps": [
  {"id": "a", "type": "tool", "tool": "database.query", "when": "$.input.x ==="},
  {"id": "b", "type": "branch", "cases": [{"when": "$.input.x > 1", "then": ["c"]}, {"when": "not a path (", "then": ["ghost"]}], "else": ["b"]},
  {"id": "c", "type": "tool", "tool": "database.query"}]}');
SELECT * FROM agentorch.validate_workflow('{"steps": [
  {"id": "p", "type": "parallel", "steps": [
     {"id": "x", "type": "tool", "tool": "database.query"},
     {"id": "y", "type": "tool", "tool": "database.query", "depends_on": ["x"], "input": {"v": "${x.output}"}}]},
  {"id": "after", "type": "tool", "tool": "database.query", "depends_on": ["x"]}]}');
SELECT * FROM agentorch.validate_workflow('{"steps": [
  {"id": "l", "type": "loop", "for_each": "${input.items}", "max_iterations": 5,
   "step": {"id": "body", "type": "tool", "tool": "database.query", "input": {"v": "${item}", "i": "${index}"}}}]}');
SELECT * FROM agentorch.validate_workflow('{"steps": [{"id": "u", "type": "user_input", "prompt": "ok?", "timeout": "soon"}]}');
SELECT * FROM agentorch.validate_workflow('{"input_schema": {"required": "x"}, "steps": [{"id": "u", "type": "user_input", "prompt": "ok?", "schema": {"type": "nonsense"}}]}');
SELECT * FROM agentorch.validate_workflow('{"workflow": {"steps": [{"id": "a", "type": "tool", "tool": "database.query"}]}, "extra": 1}');
SELECT * FROM agentorch.validate_workflow('[1, 2]');

-- registering an invalid definition raises with every problem in DETAIL and stores nothing
SELECT agentorch.register_workflow('broken', '{"steps": [
  {"id": "a", "type": "tool", "tool": "no.such.tool", "depends_on": ["b"]},
  {"id": "b", "type": "tool", "tool": "database.query", "depends_on": ["a"]}]}');
SELECT agentorch.register_workflow_yaml('broken', 'steps: [');
SELECT agentorch.register_workflow('bad name!', '{"steps": [{"id": "a", "type": "tool", "tool": "database.query"}]}');
-- the definition's own name and version are display text: any Unicode, and
-- not the registry name (the design notes' example is named in Korean)
SELECT agentorch.register_workflow('other', '{"workflow": {"name": "데이터 분석 워크플로우", "version": "1.0.0", "steps": [{"id": "a", "type": "tool", "tool": "database.query"}]}}');
-- nested steps may omit id and type: ids <parent>[n], types inferred
SELECT * FROM agentorch.validate_workflow(agentorch.yaml_to_jsonb($y$
workflow:
  name: "데이터 분석 워크플로우"
  version: "1.0.0"
  steps:
    - id: visualize
      type: parallel
      steps:
        - tool: database.query
          input: {query: "SELECT 1"}
        - prompt: "summarise"
    - id: after
      type: tool
      tool: database.query
      depends_on: [visualize]
      input: {query: "SELECT 2"}
$y$));
SELECT step_id, status, output FROM agentorch.simulate(agentorch.yaml_to_jsonb($y$
steps:
  - id: visualize
    type: parallel
    steps:
      - tool: database.query
        input: {query: "SELECT 1"}
      - prompt: "summarise"
$y$), '{}', '{"visualize[1]": "a summary", "database.query": [{"one": 1}]}') ORDER BY step_id;
SET agentorch.max_definition_size = 1024;
SELECT agentorch.register_workflow('big', jsonb_build_object('steps', jsonb_build_array(
  jsonb_build_object('id', 'a', 'type', 'tool', 'tool', 'database.query', 'description', repeat('x', 2000)))));
RESET agentorch.max_definition_size;
SELECT count(*) AS stored FROM agentorch.workflows WHERE name IN ('broken', 'bad name!', 'other', 'big');  -- 'other' only

-- agent plans: once the workflow checks pass, the planner's too (database.query is never planned)
SELECT * FROM agentorch.validate_plan('{"goal": "chart sales", "steps": [
  {"id": "q", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}},
  {"id": "s", "type": "llm", "prompt": "summarise ${q.output}", "depends_on": ["q"]}]}');
SELECT * FROM agentorch.validate_plan('{"goal": "x", "steps": [
  {"id": "q", "type": "branch"},
  {"id": "s", "type": "tool", "tool": "ghost.tool"}]}');
SELECT * FROM agentorch.validate_plan('{"goal": "x", "steps": [
  {"id": "s", "type": "llm", "prompt": "${t.output}"},
  {"id": "t", "type": "tool", "tool": "ghost.tool", "depends_on": ["s"]}]}');
