-- JSON Schema (draft 7) validation: one row per problem, JSON-pointer paths.
SELECT * FROM agentorch.validate_json('{"id": 1, "tags": ["a", "a"]}',
  '{"type": "object", "required": ["id", "name"],
    "properties": {"id": {"type": "string"}, "tags": {"type": "array", "uniqueItems": true}},
    "additionalProperties": false}');
SELECT * FROM agentorch.validate_json('{"id": "x", "name": "y"}',
  '{"type": "object", "required": ["id", "name"]}');
SELECT agentorch.is_valid_json('"héllo"', '{"type": "string", "maxLength": 5}') AS five_code_points,
       agentorch.is_valid_json('"héllo!"', '{"type": "string", "maxLength": 5}') AS six_code_points;
SELECT agentorch.is_valid_json('3.0', '{"type": "integer"}') AS float_integer,
       agentorch.is_valid_json('0.0075', '{"multipleOf": 0.0001}') AS multiple_of,
       agentorch.is_valid_json('"abc123"', '{"pattern": "^[a-z]+\\d+$"}') AS pattern;
SELECT * FROM agentorch.validate_json('{"a": {"b": [1, "x"]}}',
  '{"definitions": {"ints": {"type": "array", "items": {"type": "integer"}}},
    "properties": {"a": {"properties": {"b": {"$ref": "#/definitions/ints"}}}}}');
SELECT * FROM agentorch.validate_json('5', '{"oneOf": [{"minimum": 1}, {"maximum": 10}]}');
SELECT * FROM agentorch.validate_json('{"kind": "x"}', '{"if": {"properties": {"kind": {"const": "x"}}}, "then": {"required": ["x_value"]}}');
-- an unusable schema is an error, not a validation result
SELECT * FROM agentorch.validate_json('1', '{"type": "integr"}');
SELECT * FROM agentorch.validate_json('1', '{"pattern": "("}');
SELECT * FROM agentorch.validate_json('1', '{"$ref": "http://example.com/schema.json"}');
SELECT * FROM agentorch.validate_json('1', '{"$ref": "#/definitions/missing"}');
