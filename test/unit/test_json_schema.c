/*-------------------------------------------------------------------------
 *
 * test_json_schema.c
 *	  Unit tests of the core's JSON Schema draft-07 validator: messages and
 *	  instance paths of each keyword, numeric corner cases, $ref resolution
 *	  and recursion limits, and ao_json_schema_check on broken schemas.
 *
 * Each problem is rendered as "[path] message", problems joined by "\n",
 * so one string comparison checks both where and what was reported.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/test_json_schema.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ao_json_schema.h"
#include "unit.h"

/* Problems collected by one call, rendered as "[path] message" lines. */
typedef struct collected
{
	int			count;
	ao_buf		text;
} collected;

static ao_buf result_text;

/* ao_problem_fn: append "[path] message" to the collected text. */
static void
collect_problem(void *arg, const char *path, const char *message)
{
	collected  *c = arg;

	if (c->count++ > 0)
		ao_buf_append(&c->text, "\n");
	ao_buf_printf(&c->text, "[%s] %s", path, message);
}

/* Parse JSON text for a test; NULL text means JSON null. Aborts on error. */
static json_object *
parse(const char *text)
{
	enum json_tokener_error err;
	json_object *o = json_tokener_parse_verbose(text, &err);

	if (err != json_tokener_success)
	{
		printf("# cannot parse test JSON: %s\n", text);
		abort();
	}
	/* integers beyond 64 bits stay exact, as on the server */
	return o ? ao_json_exact_numbers(o, text, strlen(text), 0, JSON_TOKENER_DEFAULT_DEPTH) : o;
}

/*
 * Validate parsed objects and return the rendered problems (valid until
 * the next call); a mismatch between return value and callbacks is shown.
 */
static const char *
validate_objects(json_object *schema, json_object *instance)
{
	collected	c;
	int			n;

	c.count = 0;
	ao_buf_init(&c.text);
	n = ao_json_schema_validate(schema, instance, collect_problem, &c);
	if (n != c.count)
		ao_buf_printf(&c.text, "\n(returned %d, reported %d)", n, c.count);
	ao_buf_reset(&result_text);
	ao_buf_append(&result_text, c.text.data);
	ao_buf_free(&c.text);
	return result_text.data;
}

/*
 * Second pass of the validation tests: every schema is kept prepared
 * (ao_json_schema_keep) and validated against twice, so the second run
 * reuses the first one's context; both must report what a fresh context
 * reports.
 */
static bool keep_schemas = false;

/* Validate JSON texts; see validate_objects. */
static const char *
validate_text(const char *schema_text, const char *instance_text)
{
	json_object *schema = parse(schema_text);
	json_object *instance = parse(instance_text);
	const char *r;

	if (keep_schemas)
	{
		char	   *first;

		ao_json_schema_keep(schema);
		r = validate_objects(schema, instance);
		first = ao_strndup(r, strlen(r));
		r = validate_objects(schema, instance);
		if (strcmp(first, r) != 0)
		{
			ao_buf_reset(&result_text);
			ao_buf_printf(&result_text, "kept schema, first run: %s\nsecond run differs", first);
			r = result_text.data;
		}
		free(first);
	}
	else
		r = validate_objects(schema, instance);
	json_object_put(schema);
	json_object_put(instance);
	return r;
}

/* Check a schema text and return the rendered problems. */
static const char *
check_text(const char *schema_text)
{
	json_object *schema = parse(schema_text);
	collected	c;
	int			n;

	c.count = 0;
	ao_buf_init(&c.text);
	n = ao_json_schema_check(schema, collect_problem, &c);
	if (n != c.count)
		ao_buf_printf(&c.text, "\n(returned %d, reported %d)", n, c.count);
	ao_buf_reset(&result_text);
	ao_buf_append(&result_text, c.text.data);
	ao_buf_free(&c.text);
	json_object_put(schema);
	return result_text.data;
}

#define EXPECT(schema, instance, want, name) \
	UNIT_STREQ(validate_text((schema), (instance)), (want), (name))
#define VALID(schema, instance, name) EXPECT((schema), (instance), "", (name))
#define CHECK(schema, want, name) UNIT_STREQ(check_text(schema), (want), (name))

/* "type", "enum", "const" and boolean schemas. */
static void
test_generic(void)
{
	EXPECT("{\"type\":\"object\"}", "[]", "[] expected type object, got array",
		   "type: object vs array");
	EXPECT("{\"type\":[\"string\",\"null\"]}", "5",
		   "[] expected type string or null, got integer", "type: list of types");
	EXPECT("{\"type\":\"integer\"}", "1.5", "[] expected type integer, got number",
		   "type: 1.5 is not an integer");
	VALID("{\"type\":\"integer\"}", "1.0", "type: 1.0 is an integer");
	VALID("{\"type\":\"integer\"}", "1e308", "type: 1e308 is an integer");
	VALID("{\"type\":\"number\"}", "1", "type: integer is a number");
	VALID("{\"type\":\"null\"}", "null", "type: null");
	EXPECT("{\"type\":\"boolean\"}", "null", "[] expected type boolean, got null",
		   "type: null is not a boolean");
	EXPECT("{\"type\":\"string\"}", "true", "[] expected type string, got boolean",
		   "type: boolean named in message");

	EXPECT("{\"properties\":{\"kind\":{\"enum\":[\"llm\",\"tool\"]}}}",
		   "{\"kind\":\"bogus\"}",
		   "[/kind] value \"bogus\" is not one of the allowed values: \"llm\", \"tool\"",
		   "enum: message lists the allowed values");
	VALID("{\"enum\":[1,{\"a\":[1,2]}]}", "{\"a\":[1.0,2]}",
		  "enum: deep equality with numeric equivalence");
	EXPECT("{\"enum\":[]}", "1", "[] value 1 is not allowed: enum is empty",
		   "enum: empty enum allows nothing");
	EXPECT("{\"enum\":[null]}", "false", "[] value false is not one of the allowed values: null",
		   "enum: null is not false");

	VALID("{\"const\":1}", "1.0", "const: 1 == 1.0");
	VALID("{\"const\":{\"a\":1,\"b\":[true]}}", "{\"b\":[true],\"a\":1.0}",
		  "const: objects compare regardless of order");
	EXPECT("{\"const\":{\"a\":1}}", "{\"a\":2}",
		   "[] value {\"a\":2} is not equal to const {\"a\":1}", "const: object mismatch");
	EXPECT("{\"const\":null}", "0", "[] value 0 is not equal to const null",
		   "const: null is not 0");

	VALID("true", "{\"anything\":[1]}", "boolean schema true");
	EXPECT("false", "1", "[] value is not allowed here (schema is false)",
		   "boolean schema false");
	EXPECT("{\"properties\":{\"a\":false}}", "{\"a\":1,\"b\":2}",
		   "[/a] value is not allowed here (schema is false)",
		   "false subschema reports the member path");
	VALID("{}", "null", "empty schema accepts null");
	VALID("{\"format\":\"email\"}", "\"not an email\"", "format is an annotation");
	VALID("{\"x-unknown\":5,\"title\":\"t\"}", "1", "unknown keywords are ignored");
}

/* Object keywords. */
static void
test_objects(void)
{
	EXPECT("{\"required\":[\"id\",\"name\",\"kind\"]}", "{\"name\":\"x\"}",
		   "[] missing required property \"id\"\n[] missing required property \"kind\"",
		   "required: each missing property");
	VALID("{\"required\":[\"id\"]}", "[]", "required ignores non-objects");
	EXPECT("{\"properties\":{\"a\":{}},\"additionalProperties\":false}",
		   "{\"a\":1,\"foo\":2,\"b/c\":3}",
		   "[/foo] additional property \"foo\" is not allowed\n"
		   "[/b~1c] additional property \"b/c\" is not allowed",
		   "additionalProperties false: one problem per property, with its path");
	EXPECT("{\"patternProperties\":{\"^x-\":{}},\"additionalProperties\":false}",
		   "{\"x-a\":1,\"y\":2}",
		   "[/y] additional property \"y\" is not allowed",
		   "additionalProperties: patternProperties members are not additional");
	EXPECT("{\"properties\":{\"a\":true},\"additionalProperties\":{\"type\":\"string\"}}",
		   "{\"a\":1,\"b\":2,\"c\":\"ok\"}",
		   "[/b] expected type string, got integer",
		   "additionalProperties schema");
	EXPECT("{\"patternProperties\":{\"^n_\":{\"type\":\"number\"},\"_s$\":{\"type\":\"string\"}}}",
		   "{\"n_s\":true}",
		   "[/n_s] expected type number, got boolean\n[/n_s] expected type string, got boolean",
		   "patternProperties: every matching pattern applies");
	EXPECT("{\"properties\":{\"steps\":{\"items\":{\"properties\":{\"depends_on\":"
		   "{\"items\":{\"type\":\"string\"}}}}}}}",
		   "{\"steps\":[{},{},{\"depends_on\":[\"a\",3]}]}",
		   "[/steps/2/depends_on/1] expected type string, got integer",
		   "nested instance path");
	EXPECT("{\"properties\":{\"a~b\":{\"type\":\"string\"}}}", "{\"a~b\":1}",
		   "[/a~0b] expected type string, got integer", "path escapes ~");
	EXPECT("{\"propertyNames\":{\"pattern\":\"^[a-z]+$\"}}", "{\"ok\":1,\"Bad\":2}",
		   "[/Bad] property name \"Bad\": does not match pattern \"^[a-z]+$\"",
		   "propertyNames: message names the property");
	EXPECT("{\"propertyNames\":{\"maxLength\":3}}", "{\"long\":1}",
		   "[/long] property name \"long\": string is longer than 3 characters",
		   "propertyNames: maxLength");
	EXPECT("{\"propertyNames\":false}", "{\"a\":1}",
		   "[/a] property name \"a\": value is not allowed here (schema is false)",
		   "propertyNames false");
	EXPECT("{\"dependencies\":{\"a\":[\"b\",\"c\"]}}", "{\"a\":1,\"c\":2}",
		   "[] property \"a\" requires property \"b\" (dependencies)",
		   "dependencies: array form");
	VALID("{\"dependencies\":{\"a\":[\"b\"]}}", "{\"b\":1}",
		  "dependencies: only when the property is present");
	EXPECT("{\"dependencies\":{\"a\":{\"required\":[\"c\"]}}}", "{\"a\":1}",
		   "[] missing required property \"c\"", "dependencies: schema form");
	EXPECT("{\"minProperties\":1}", "{}", "[] object has fewer than 1 property",
		   "minProperties");
	EXPECT("{\"maxProperties\":1}", "{\"a\":1,\"b\":2}",
		   "[] object has more than 1 property", "maxProperties");
	EXPECT("{\"minProperties\":3}", "{\"a\":1}", "[] object has fewer than 3 properties",
		   "minProperties plural");
}

/* Array keywords. */
static void
test_arrays(void)
{
	EXPECT("{\"items\":[{\"type\":\"string\"}],\"additionalItems\":false}", "[\"a\",1,2]",
		   "[/1] additional item is not allowed: items defines 1 position\n"
		   "[/2] additional item is not allowed: items defines 1 position",
		   "additionalItems false: one problem per item");
	EXPECT("{\"items\":[{\"type\":\"string\"},{\"type\":\"integer\"}],"
		   "\"additionalItems\":{\"type\":\"boolean\"}}", "[1,\"a\",true,null]",
		   "[/0] expected type string, got integer\n[/1] expected type integer, got string\n"
		   "[/3] expected type boolean, got null",
		   "items array and additionalItems schema");
	VALID("{\"items\":{\"type\":\"integer\"},\"additionalItems\":false}", "[1,2,3]",
		  "additionalItems ignored when items is a schema");
	EXPECT("{\"items\":{\"minimum\":0}}", "[0,-1,2,-3]",
		   "[/1] value -1 is less than minimum 0\n[/3] value -3 is less than minimum 0",
		   "items schema");
	EXPECT("{\"minItems\":2}", "[1]", "[] array has fewer than 2 items", "minItems");
	EXPECT("{\"maxItems\":1}", "[1,2]", "[] array has more than 1 item", "maxItems");
	EXPECT("{\"uniqueItems\":true}", "[1,2,1.0,{\"a\":[1]},{\"a\":[1.0]}]",
		   "[] array items 0 and 2 are equal, but uniqueItems is true\n"
		   "[] array items 3 and 4 are equal, but uniqueItems is true",
		   "uniqueItems: deep equality, each duplicate once");
	VALID("{\"uniqueItems\":true}", "[1,true,0,false,null,\"1\",[1],{\"1\":1}]",
		  "uniqueItems: values of different types are distinct");
	VALID("{\"uniqueItems\":false}", "[1,1]", "uniqueItems false");
	EXPECT("{\"contains\":{\"const\":3}}", "[1,2]",
		   "[] array does not contain an item matching the contains schema",
		   "contains: no match");
	EXPECT("{\"contains\":{}}", "[]",
		   "[] array does not contain an item matching the contains schema",
		   "contains: empty array");
	VALID("{\"contains\":{\"type\":\"string\",\"minLength\":2}}", "[1,\"a\",\"ab\"]",
		  "contains: one match suffices");
}

/* String keywords and regular expressions. */
static void
test_strings(void)
{
	char		longstr[70];
	ao_buf		instance;

	memset(longstr, 'a', 65);
	longstr[65] = '\0';
	ao_buf_init(&instance);
	ao_buf_printf(&instance, "\"%s\"", longstr);
	EXPECT("{\"maxLength\":64}", instance.data, "[] string is longer than 64 characters",
		   "maxLength");
	ao_buf_free(&instance);
	EXPECT("{\"minLength\":1}", "\"\"", "[] string is shorter than 1 character",
		   "minLength");
	VALID("{\"maxLength\":2,\"minLength\":2}", "\"\xe6\x97\xa5\xe6\x9c\xac\"",
		  "lengths count code points");
	EXPECT("{\"maxLength\":1}", "\"\xe6\x97\xa5\xe6\x9c\xac\"",
		   "[] string is longer than 1 character", "maxLength on multibyte string");
	VALID("{\"minLength\":2}", "\"\\ud83d\\ude00x\"", "astral character counts once");
	EXPECT("{\"pattern\":\"^[a-z]+$\"}", "\"Abc\"", "[] does not match pattern \"^[a-z]+$\"",
		   "pattern mismatch");
	VALID("{\"pattern\":\"b\"}", "\"abc\"", "pattern is not anchored");
	VALID("{\"pattern\":\"^\\\\d$\"}", "\"3\"", "\\d matches an ASCII digit");
	EXPECT("{\"pattern\":\"^\\\\d$\"}", "\"\xd9\xa3\"", "[] does not match pattern \"^\\d$\"",
		   "\\d does not match ARABIC-INDIC DIGIT THREE (ECMA-262)");
	VALID("{\"pattern\":\"^.$\"}", "\"\xc3\xa9\"", "UTF mode: . matches one code point");
	VALID("{\"pattern\":\"^\\\\u0041+$\"}", "\"AA\"", "ECMA \\uHHHH escape");
	EXPECT("{\"pattern\":\"a$\"}", "\"a\\n\"", "[] does not match pattern \"a$\"",
		   "$ matches only at the very end (ECMA-262)");
	VALID("{\"pattern\":\"^a\\u0000b$\"}", "\"a\\u0000b\"", "pattern and subject with NUL");
	VALID("{\"pattern\":\"^[a-z]+$\"}", "42", "pattern ignores non-strings");
	VALID("{\"pattern\":\"a\"}", "\"\xff\xfe" "a\"", "invalid UTF-8 subject is searched safely");
	EXPECT("{\"pattern\":\"^.a$\"}", "\"\xff" "a\"", "[] does not match pattern \"^.a$\"",
		   "invalid UTF-8 never matches \".\"");
	EXPECT("{\"pattern\":\"\xff\"}", "\"x\"",
		   "[] invalid regular expression \"\xff\" in pattern: "
		   "UTF-8 error: illegal byte (0xfe or 0xff) at offset 0",
		   "invalid UTF-8 pattern is reported");
	EXPECT("{\"pattern\":\"(\"}", "\"x\"",
		   "[] invalid regular expression \"(\" in pattern: "
		   "missing closing parenthesis at offset 1",
		   "invalid pattern reported at validation");
	EXPECT("{\"pattern\":\"^(a+)+$\"}",
		   "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\"",
		   "[] pattern \"^(a+)+$\" could not be evaluated: match limit exceeded",
		   "catastrophic backtracking is bounded");
	EXPECT("{\"properties\":{\"a\":{\"pattern\":\"^x\"},\"b\":{\"pattern\":\"^x\"}},"
		   "\"patternProperties\":{\"^x\":{\"pattern\":\"^x\"}}}",
		   "{\"a\":\"y\",\"b\":\"x\",\"xa\":\"z\"}",
		   "[/a] does not match pattern \"^x\"\n[/xa] does not match pattern \"^x\"",
		   "cached pattern reused");
}

/* Numeric keywords, exact comparisons and multipleOf. */
static void
test_numbers(void)
{
	json_object *schema;
	json_object *value;

	EXPECT("{\"minimum\":5}", "3", "[] value 3 is less than minimum 5", "minimum");
	EXPECT("{\"maximum\":5}", "5.5", "[] value 5.5 is greater than maximum 5", "maximum");
	VALID("{\"minimum\":5,\"maximum\":5}", "5.0", "inclusive bounds");
	EXPECT("{\"exclusiveMinimum\":5}", "5",
		   "[] value 5 is not greater than exclusiveMinimum 5", "exclusiveMinimum");
	EXPECT("{\"exclusiveMaximum\":5}", "5.0",
		   "[] value 5.0 is not less than exclusiveMaximum 5", "exclusiveMaximum");
	VALID("{\"exclusiveMinimum\":0.5}", "1", "exclusiveMinimum with double bound");
	VALID("{\"maximum\":18446744073709551615}", "18446744073709551600",
		  "uint64 comparison");
	EXPECT("{\"maximum\":9007199254740992}", "9007199254740993",
		   "[] value 9007199254740993 is greater than maximum 9007199254740992",
		   "integers beyond 2^53 compare exactly");
	EXPECT("{\"maximum\":9007199254740992.0}", "9007199254740993",
		   "[] value 9007199254740993 is greater than maximum 9007199254740992.0",
		   "int vs double compare exactly");
	VALID("{\"minimum\":-9223372036854775808}", "-9223372036854775808", "int64 minimum");
	VALID("{\"minimum\":1e-300}", "1", "tiny double bound");

	VALID("{\"multipleOf\":0.0001}", "0.0075", "multipleOf: 0.0075 of 0.0001");
	EXPECT("{\"multipleOf\":0.0001}", "0.00751",
		   "[] value 0.00751 is not a multiple of 0.0001", "multipleOf: 0.00751");
	VALID("{\"multipleOf\":0.1}", "0.3", "multipleOf: 0.3 of 0.1");
	VALID("{\"multipleOf\":0.01}", "19.99", "multipleOf: 19.99 of 0.01");
	VALID("{\"multipleOf\":1.5}", "4.5", "multipleOf: 4.5 of 1.5");
	EXPECT("{\"multipleOf\":1.5}", "35", "[] value 35 is not a multiple of 1.5",
		   "multipleOf: 35 of 1.5");
	VALID("{\"multipleOf\":2}", "-4", "multipleOf: negative value");
	VALID("{\"multipleOf\":2}", "0", "multipleOf: zero");
	VALID("{\"multipleOf\":1e-8}", "12391239123", "multipleOf: big integer of 1e-8");
	EXPECT("{\"type\":\"integer\",\"multipleOf\":0.123456789}", "1e308",
		   "[] value 1e308 is not a multiple of 0.123456789",
		   "multipleOf: 1e308 does not overflow");
	VALID("{\"multipleOf\":1e300}", "1e308", "multipleOf: huge exact multiple");
	VALID("{\"multipleOf\":5}", "18446744073709551615", "multipleOf: uint64 value");
	VALID("{\"multipleOf\":18446744073709551615}", "18446744073709551615",
		  "multipleOf: uint64 divisor");
	VALID("{\"multipleOf\":2}", "1e400",
		  "multipleOf: 1e400 is exactly a multiple of 2 (beyond double range)");
	EXPECT("{\"multipleOf\":3}", "1e400", "[] value 1e400 is not a multiple of 3",
		   "multipleOf: 1e400 is exactly no multiple of 3");
	VALID("{\"multipleOf\":2}", "\"x\"", "multipleOf ignores strings");

	/* doubles built in C (no source text) use their shortest decimal form */
	schema = parse("{\"multipleOf\":0.1}");
	value = json_object_new_double(0.3);
	UNIT_STREQ(validate_objects(schema, value), "", "multipleOf on json_object_new_double");
	json_object_put(value);
	json_object_put(schema);
}

/* allOf, anyOf, oneOf, not, if/then/else. */
static void
test_combinators(void)
{
	EXPECT("{\"allOf\":[{\"minimum\":2},{\"maximum\":0}]}", "1",
		   "[] value 1 is less than minimum 2\n[] value 1 is greater than maximum 0",
		   "allOf reports every failing branch");
	EXPECT("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "1.5",
		   "[] does not match any of the allowed alternatives: expected type string, got number; "
		   "or expected type integer, got number", "anyOf: one summary line, with each alternative's reason");
	VALID("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "1",
		  "anyOf: second alternative");
	EXPECT("{\"anyOf\":[{\"properties\":{\"a\":{\"type\":\"string\"}}},"
		   "{\"required\":[\"b\"]}]}", "{\"a\":1}",
		   "[] does not match any of the allowed alternatives: /a: expected type string, got integer; "
		   "or missing required property \"b\"",
		   "anyOf: one problem, naming the first reason of each alternative");
	EXPECT("{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":0}]}", "1",
		   "[] matches 2 alternatives of oneOf, expected exactly one", "oneOf: two match");
	EXPECT("{\"oneOf\":[{},true,{\"type\":\"integer\"}]}", "1",
		   "[] matches 3 alternatives of oneOf, expected exactly one", "oneOf: three match");
	EXPECT("{\"oneOf\":[{\"type\":\"string\"},{\"minimum\":2}]}", "1",
		   "[] does not match any of the allowed alternatives", "oneOf: none match");
	VALID("{\"oneOf\":[{\"type\":\"string\"},{\"minimum\":0}]}", "1", "oneOf: exactly one");
	EXPECT("{\"not\":{\"type\":\"string\"}}", "\"x\"",
		   "[] must not match the schema in \"not\"", "not");
	VALID("{\"not\":{\"type\":\"string\"}}", "1", "not: mismatch is valid");
	EXPECT("{\"if\":{\"properties\":{\"kind\":{\"const\":\"tool\"}}},"
		   "\"then\":{\"required\":[\"tool\"]},\"else\":{\"required\":[\"model\"]}}",
		   "{\"kind\":\"tool\"}", "[] missing required property \"tool\"", "if/then");
	EXPECT("{\"if\":{\"properties\":{\"kind\":{\"const\":\"tool\"}}},"
		   "\"then\":{\"required\":[\"tool\"]},\"else\":{\"required\":[\"model\"]}}",
		   "{\"kind\":\"llm\"}", "[] missing required property \"model\"", "if/else");
	VALID("{\"then\":false,\"else\":false}", "1", "then/else without if are ignored");
	EXPECT("{\"properties\":{\"s\":{\"oneOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}]}}}",
		   "{\"s\":{\"a\":1,\"b\":2}}",
		   "[/s] matches 2 alternatives of oneOf, expected exactly one",
		   "oneOf path is the instance path");
}

/* $ref resolution, $id, and recursion limits. */
static void
test_refs(void)
{
	json_object *schema;
	json_object *deep;
	const char *r;

	EXPECT("{\"definitions\":{\"pos\":{\"type\":\"integer\",\"minimum\":0}},"
		   "\"properties\":{\"n\":{\"$ref\":\"#/definitions/pos\"}}}", "{\"n\":-1}",
		   "[/n] value -1 is less than minimum 0", "$ref to definitions");
	EXPECT("{\"definitions\":{\"a/b\":{\"type\":\"string\"},\"c~d\":{\"type\":\"string\"},"
		   "\"e%f\":{\"type\":\"string\"}},\"properties\":{\"x\":{\"$ref\":\"#/definitions/a~1b\"},"
		   "\"y\":{\"$ref\":\"#/definitions/c~0d\"},\"z\":{\"$ref\":\"#/definitions/e%25f\"}}}",
		   "{\"x\":1,\"y\":2,\"z\":3}",
		   "[/x] expected type string, got integer\n[/y] expected type string, got integer\n"
		   "[/z] expected type string, got integer",
		   "$ref pointer escapes ~0 ~1 and percent-encoding");
	VALID("{\"items\":[{\"type\":\"integer\"},{\"$ref\":\"#/items/0\"}]}", "[1,2]",
		  "$ref into an array");
	VALID("{\"definitions\":{\"s\":{\"type\":\"string\"}},"
		  "\"properties\":{\"a\":{\"$ref\":\"#/definitions/s\",\"maxLength\":1}}}",
		  "{\"a\":\"long\"}", "$ref siblings are ignored");
	EXPECT("{\"definitions\":{\"x\":{\"$id\":\"#item\",\"type\":\"integer\"}},"
		   "\"items\":{\"$ref\":\"#item\"}}", "[1,\"a\"]",
		   "[/1] expected type integer, got string", "$ref to a location-independent #id");
	EXPECT("{\"$id\":\"http://example.com/root.json\",\"definitions\":{\"o\":"
		   "{\"$id\":\"other.json\",\"definitions\":{\"n\":{\"type\":\"null\"}}}},"
		   "\"properties\":{\"a\":{\"$ref\":\"other.json#/definitions/n\"},"
		   "\"b\":{\"$ref\":\"http://example.com/other.json#/definitions/n\"}}}",
		   "{\"a\":1,\"b\":null}",
		   "[/a] expected type null, got integer", "$ref resolved against $id base URIs");
	EXPECT("{\"properties\":{\"v\":{\"type\":\"integer\"},\"child\":{\"$ref\":\"#\"}},"
		   "\"required\":[\"v\"]}",
		   "{\"v\":1,\"child\":{\"v\":2,\"child\":{}}}",
		   "[/child/child] missing required property \"v\"", "recursive schema");
	VALID("{\"$ref\":\"#/definitions/t\",\"definitions\":{\"t\":true}}", "1",
		  "$ref to boolean true");

	EXPECT("{\"$ref\":\"#\"}", "1", "[] schema recursion too deep", "$ref loop on itself");
	EXPECT("{\"definitions\":{\"a\":{\"anyOf\":[{\"$ref\":\"#/definitions/a\"}]}},"
		   "\"$ref\":\"#/definitions/a\"}", "{}", "[] schema recursion too deep",
		   "$ref loop through anyOf is reported once, even when quiet");
	EXPECT("{\"properties\":{\"a\":{\"allOf\":[{\"$ref\":\"#/properties/a\"}]}}}",
		   "{\"a\":1}", "[/a] schema recursion too deep", "loop reported at instance path");

	/* 300 nested arrays against a recursive schema: the depth cap stops it */
	schema = parse("{\"items\":{\"$ref\":\"#\"}}");
	deep = json_object_new_array();
	for (int i = 0; i < 300; i++)
	{
		json_object *outer = json_object_new_array();

		json_object_array_add(outer, deep);
		deep = outer;
	}
	r = validate_objects(schema, deep);
	UNIT_OK(strstr(r, "schema recursion too deep") != NULL && strchr(r, '\n') == NULL,
			"depth cap on deeply nested instance");
	json_object_put(deep);
	json_object_put(schema);

	EXPECT("{\"$ref\":\"http://example.com/s.json\"}", "1",
		   "[] remote $ref \"http://example.com/s.json\" is not supported",
		   "validate refuses remote $ref");
	EXPECT("{\"$ref\":\"#/definitions/nope\"}", "1",
		   "[] $ref \"#/definitions/nope\" cannot be resolved", "validate: dangling $ref");
	EXPECT("{\"definitions\":{\"n\":5},\"$ref\":\"#/definitions/n\"}", "1",
		   "[] invalid schema: expected an object or a boolean, got number",
		   "validate: $ref to a non-schema");
}

/* ao_json_schema_check on usable and broken schemas. */
static void
test_check(void)
{
	CHECK("{\"$id\":\"http://example.com/s\",\"type\":\"object\",\"required\":[\"a\"],"
		  "\"properties\":{\"a\":{\"type\":[\"string\",\"null\"],\"maxLength\":3.0,"
		  "\"pattern\":\"^[a-z]*$\"},\"b\":{\"$ref\":\"#/definitions/b\"}},"
		  "\"patternProperties\":{\"^x-\":true},\"additionalProperties\":false,"
		  "\"definitions\":{\"b\":{\"oneOf\":[{\"multipleOf\":0.5},{\"enum\":[1,2]}]}},"
		  "\"dependencies\":{\"a\":[\"b\"],\"b\":{\"not\":{}}},"
		  "\"if\":true,\"then\":{\"items\":[{},false],\"additionalItems\":{}},"
		  "\"format\":\"x\",\"default\":5}", "", "check: usable schema");
	CHECK("true", "", "check: true");
	CHECK("false", "", "check: false");
	CHECK("5", "[] schema must be an object or a boolean, got number", "check: number schema");
	CHECK("null", "[] schema must be an object or a boolean, got null", "check: null schema");
	CHECK("{\"type\":\"strin\"}", "[/type] unknown type \"strin\"", "check: unknown type");
	CHECK("{\"type\":5}", "[/type] type must be a type name or an array of type names",
		  "check: type not a string");
	CHECK("{\"type\":[\"string\",\"string\"]}", "[/type] duplicate type \"string\" in type",
		  "check: duplicate type");
	CHECK("{\"minLength\":-1,\"maxItems\":1.5,\"minProperties\":\"2\"}",
		  "[/minLength] minLength must be a non-negative integer\n"
		  "[/maxItems] maxItems must be a non-negative integer\n"
		  "[/minProperties] minProperties must be a non-negative integer",
		  "check: counts");
	CHECK("{\"minimum\":\"1\",\"exclusiveMinimum\":true}",
		  "[/minimum] minimum must be a number\n"
		  "[/exclusiveMinimum] exclusiveMinimum must be a number",
		  "check: numeric bounds (draft-4 boolean exclusiveMinimum refused)");
	CHECK("{\"multipleOf\":0}", "[/multipleOf] multipleOf must be a number greater than 0",
		  "check: multipleOf 0");
	CHECK("{\"uniqueItems\":1}", "[/uniqueItems] uniqueItems must be a boolean",
		  "check: uniqueItems");
	CHECK("{\"enum\":5}", "[/enum] enum must be an array", "check: enum");
	CHECK("{\"pattern\":\"(abc\"}",
		  "[/pattern] invalid regular expression \"(abc\": missing closing parenthesis at offset 4",
		  "check: pattern does not compile");
	CHECK("{\"pattern\":5}", "[/pattern] pattern must be a string", "check: pattern type");
	CHECK("{\"patternProperties\":{\"[a-\":{}}}",
		  "[/patternProperties/[a-] invalid regular expression \"[a-\": "
		  "missing terminating ] for character class at offset 3",
		  "check: patternProperties key does not compile");
	CHECK("{\"properties\":{\"a\":5}}",
		  "[/properties/a] schema must be an object or a boolean, got number",
		  "check: property schema");
	CHECK("{\"properties\":[]}", "[/properties] properties must be an object",
		  "check: properties type");
	CHECK("{\"allOf\":[]}", "[/allOf] allOf must be a non-empty array of schemas",
		  "check: empty allOf");
	CHECK("{\"anyOf\":[{},3]}", "[/anyOf/1] schema must be an object or a boolean, got number",
		  "check: anyOf member");
	CHECK("{\"required\":[\"a\",1]}", "[/required] required must be an array of strings",
		  "check: required member type");
	CHECK("{\"required\":[\"a\",\"a\"]}", "[/required] duplicate property \"a\" in required",
		  "check: required duplicate");
	CHECK("{\"dependencies\":{\"a\":5,\"b\":[\"c\",2]}}",
		  "[/dependencies/a] dependency must be a schema or an array of strings\n"
		  "[/dependencies/b] dependencies must be an array of strings",
		  "check: dependencies");
	CHECK("{\"items\":5}", "[/items] items must be a schema or an array of schemas",
		  "check: items type");
	CHECK("{\"items\":[{\"type\":\"x\"}]}", "[/items/0/type] unknown type \"x\"",
		  "check: items array member");
	CHECK("{\"properties\":{\"a\":{\"properties\":{\"b\":{\"minimum\":\"x\"}}}}}",
		  "[/properties/a/properties/b/minimum] minimum must be a number",
		  "check: nested path");
	CHECK("{\"not\":{\"if\":{\"contains\":{\"maxLength\":-2}}}}",
		  "[/not/if/contains/maxLength] maxLength must be a non-negative integer",
		  "check: single-schema keywords");
	CHECK("{\"format\":5}", "[/format] format must be a string", "check: format type");
	CHECK("{\"$id\":5}", "[/$id] $id must be a string", "check: $id type");
	CHECK("{\"definitions\":{\"a\":{\"$id\":\"http://x/a\"},\"b\":{\"$id\":\"http://x/a\"}}}",
		  "[/definitions/b/$id] duplicate $id \"http://x/a\" (also at \"/definitions/a\")",
		  "check: duplicate $id");
	CHECK("{\"$ref\":\"http://json-schema.org/draft-07/schema#\"}",
		  "[/$ref] remote $ref \"http://json-schema.org/draft-07/schema#\" is not supported",
		  "check: remote $ref refused");
	CHECK("{\"properties\":{\"a\":{\"$ref\":\"other.json#/x\"}}}",
		  "[/properties/a/$ref] remote $ref \"other.json#/x\" is not supported",
		  "check: relative remote $ref refused");
	CHECK("{\"$ref\":\"#/definitions/nope\"}",
		  "[/$ref] $ref \"#/definitions/nope\" cannot be resolved", "check: dangling $ref");
	CHECK("{\"$ref\":\"#nope\"}", "[/$ref] $ref \"#nope\" cannot be resolved",
		  "check: dangling #name $ref");
	CHECK("{\"$ref\":5}", "[/$ref] $ref must be a string", "check: $ref type");
	CHECK("{\"definitions\":{\"n\":5},\"$ref\":\"#/definitions/n\"}",
		  "[/$ref] $ref \"#/definitions/n\" does not point to a schema (got number)\n"
		  "[/definitions/n] schema must be an object or a boolean, got number",
		  "check: $ref to a non-schema");
	CHECK("{\"$ref\":\"#\"}", "[/$ref] $ref \"#\" is circular", "check: $ref to itself");
	CHECK("{\"definitions\":{\"a\":{\"$ref\":\"#/definitions/b\"},"
		  "\"b\":{\"$ref\":\"#/definitions/a\"}}}",
		  "[/definitions/a/$ref] $ref \"#/definitions/b\" is circular\n"
		  "[/definitions/b/$ref] $ref \"#/definitions/a\" is circular",
		  "check: $ref cycle");
	CHECK("{\"definitions\":{\"a\":{\"$ref\":\"#/definitions/b\"},\"b\":{\"type\":\"string\"}},"
		  "\"$ref\":\"#/definitions/a\"}", "", "check: $ref chain without a cycle");
	CHECK("{\"$id\":\"http://localhost:1234/tree\",\"properties\":{\"nodes\":{\"items\":"
		  "{\"$ref\":\"node\"}}},\"definitions\":{\"node\":{\"$id\":\"http://localhost:1234/node\","
		  "\"properties\":{\"subtree\":{\"$ref\":\"tree\"}}}}}", "",
		  "check: $refs between $id-identified subschemas");
}

/* Public helpers: NULL callback, ao_json_schema_is_valid, ao_json_equal. */
static void
test_api(void)
{
	json_object *schema = parse("{\"required\":[\"a\",\"b\"]}");
	json_object *inst = parse("{}");
	json_object *a;
	json_object *b;

	UNIT_OK(ao_json_schema_validate(schema, inst, NULL, NULL) == 2,
			"NULL callback still counts problems");
	UNIT_OK(!ao_json_schema_is_valid(schema, inst), "ao_json_schema_is_valid: invalid");
	UNIT_OK(ao_json_schema_check(schema, NULL, NULL) == 0, "check with NULL callback");
	json_object_put(inst);
	inst = parse("{\"a\":1,\"b\":2}");
	UNIT_OK(ao_json_schema_is_valid(schema, inst), "ao_json_schema_is_valid: valid");
	json_object_put(inst);
	json_object_put(schema);

	a = parse("[1,{\"x\":null,\"y\":\"s\"}]");
	b = parse("[1.0,{\"y\":\"s\",\"x\":null}]");
	UNIT_OK(ao_json_equal(a, b), "ao_json_equal: numbers and member order");
	json_object_put(b);
	b = parse("[{\"x\":null,\"y\":\"s\"},1]");
	UNIT_OK(!ao_json_equal(a, b), "ao_json_equal: array order matters");
	json_object_put(a);
	json_object_put(b);
	a = parse("18446744073709551615");
	b = parse("18446744073709551616.0");
	UNIT_OK(!ao_json_equal(a, b), "ao_json_equal: uint64 max differs from 2^64");
	json_object_put(a);
	json_object_put(b);
	a = parse("\"a\\u0000b\"");
	b = parse("\"a\\u0000c\"");
	UNIT_OK(!ao_json_equal(a, b), "ao_json_equal: strings with NUL");
	json_object_put(a);
	json_object_put(b);
	a = parse("1");
	b = parse("true");
	UNIT_OK(!ao_json_equal(a, b), "ao_json_equal: 1 is not true");
	UNIT_OK(ao_json_equal(NULL, NULL), "ao_json_equal: null");
	json_object_put(a);
	json_object_put(b);
}

/* The groups of checks that validate instances. */
static void
test_validation(void)
{
	test_generic();
	test_objects();
	test_arrays();
	test_strings();
	test_numbers();
	test_combinators();
	test_refs();
}

/* Run every group of checks. */
int
main(void)
{
	ao_buf_init(&result_text);
	test_validation();
	test_check();
	test_api();
	/* again, each schema kept prepared and its context reused */
	keep_schemas = true;
	test_validation();
	ao_buf_free(&result_text);
	return unit_done();
}
