-- YAML 1.2 core schema scalars, structures, and clear errors with line and column.
SELECT agentorch.yaml_to_jsonb($$
a: 1
b: -2.5
c: true
d: null
e: ~
f: "quoted 1"
g: '0x1F'
h: 0x1F
i: 0o17
j: yes
k: [1, two, "3"]
l:
  nested: {x: 1e3}
m: |
  line one
  line two
$$);
SELECT agentorch.yaml_to_jsonb('');
SELECT agentorch.yaml_to_jsonb('just a string');
SELECT agentorch.yaml_to_jsonb('- 1' || chr(10) || '- [2, 3]');
SELECT agentorch.yaml_to_jsonb('base: &b {x: 1}' || chr(10) || 'copy: *b');
-- errors: each names the line and column; nothing is returned
SELECT agentorch.yaml_to_jsonb('a: 1' || chr(10) || ' b: 2');
SELECT agentorch.yaml_to_jsonb('a: [1, 2');
SELECT agentorch.yaml_to_jsonb('a: 1' || chr(10) || '---' || chr(10) || 'b: 2');
SELECT agentorch.yaml_to_jsonb('a: .inf');
SELECT agentorch.yaml_to_jsonb('a: 1' || chr(10) || 'a: 2');
SELECT agentorch.yaml_to_jsonb('a: !!python/object x');
SELECT agentorch.yaml_to_jsonb('? [a, b]' || chr(10) || ': 1');
-- oversized documents are refused before parsing
SET agentorch.max_definition_size = 1024;
SELECT agentorch.yaml_to_jsonb(repeat('a', 2000));
RESET agentorch.max_definition_size;
