-- Workflow graphs in Mermaid and Graphviz dot.
SELECT agentorch.register_workflow('triage', '{"steps": [
  {"id": "load", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1 AS amount"}},
  {"id": "route", "type": "branch", "depends_on": ["load"],
   "cases": [{"when": "$.steps.load.output[0].amount > 1000", "then": ["review"]}], "else": ["auto-approve"]},
  {"id": "review", "type": "user_input", "prompt": "Approve \"big\" order?"},
  {"id": "auto-approve", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 2"}},
  {"id": "fan", "type": "parallel", "depends_on": ["load"], "steps": [
    {"id": "s1", "type": "llm", "prompt": "a", "model": "fast"},
    {"id": "s2", "type": "llm", "prompt": "b"}]},
  {"id": "each", "type": "loop", "depends_on": ["load"], "for_each": "${load.output}",
   "step": {"id": "body", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 3"}}}]}');
SELECT agentorch.workflow_graph('triage');
SELECT agentorch.workflow_graph('triage', 'dot');
SELECT agentorch.workflow_graph('triage', 'dot', 1) = agentorch.workflow_graph('triage', 'dot') AS same_version;
SELECT agentorch.workflow_graph('triage', 'png');
SELECT agentorch.workflow_graph('ghost');
SELECT agentorch.workflow_graph('triage', 'mermaid', 9);
