/*-------------------------------------------------------------------------
 *
 * test_yaml.c
 *	  Unit tests of ao_yaml: core-schema scalars, tags, keys, aliases,
 *	  limits and error messages with line and column.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/test_yaml.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_yaml.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compact JSON text of a value (valid until the value is freed). */
static const char *
json_text(json_object *v)
{
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
										  JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Convert yaml (len bytes) and compare with the expected compact JSON. */
static void
yaml_ok_n(const char *yaml, size_t len, const char *want, const char *name)
{
	json_object *v = (json_object *) 1;
	ao_buf		err;
	int			rc;
	char		label[256];

	ao_buf_init(&err);
	rc = ao_yaml_parse(yaml, len, &v, &err);
	snprintf(label, sizeof(label), "%s: converts", name);
	if (!UNIT_OK(rc == 0 && err.len == 0, label))
		printf("#   error: %s\n", err.data);
	snprintf(label, sizeof(label), "%s: value", name);
	UNIT_STREQ(rc == 0 ? json_text(v) : "(error)", want, label);
	if (rc == 0)
		json_object_put(v);
	ao_buf_free(&err);
}

/* yaml_ok_n on a C string. */
static void
yaml_ok(const char *yaml, const char *want, const char *name)
{
	yaml_ok_n(yaml, strlen(yaml), want, name);
}

/* Convert yaml (len bytes) and compare the error message. */
static void
yaml_err_n(const char *yaml, size_t len, const char *want, const char *name)
{
	json_object *v = (json_object *) 1;
	ao_buf		err;
	int			rc;
	char		label[256];

	ao_buf_init(&err);
	rc = ao_yaml_parse(yaml, len, &v, &err);
	snprintf(label, sizeof(label), "%s: refused", name);
	if (!UNIT_OK(rc == -1 && v == NULL, label) && rc == 0)
	{
		printf("#   got: %s\n", json_text(v));
		json_object_put(v);
	}
	snprintf(label, sizeof(label), "%s: message", name);
	UNIT_STREQ(err.data, want, label);
	ao_buf_free(&err);
}

/* yaml_err_n on a C string. */
static void
yaml_err(const char *yaml, const char *want, const char *name)
{
	yaml_err_n(yaml, strlen(yaml), want, name);
}

/* Plain scalars under the YAML 1.2 core schema. */
static void
test_scalars(void)
{
	yaml_ok("[null, Null, NULL, ~, nULL, nil]", "[null,null,null,null,\"nULL\",\"nil\"]", "null forms");
	yaml_ok("a:\nb: ~\n", "{\"a\":null,\"b\":null}", "empty value is null");
	yaml_ok("[true, True, TRUE, false, False, FALSE, tRUE]",
			"[true,true,true,false,false,false,\"tRUE\"]", "boolean forms");
	yaml_ok("[yes, no, on, off, y, n, Yes, NO]",
			"[\"yes\",\"no\",\"on\",\"off\",\"y\",\"n\",\"Yes\",\"NO\"]",
			"YAML 1.1 booleans stay strings");
	yaml_ok("[0, 12, -7, +12, 007, -0, 0o17, 0o0, 0x1F, 0xff, 0xFF]",
			"[0,12,-7,12,7,0,15,0,31,255,255]", "integer forms");
	yaml_ok("[-0x1F, 0O17, 0X1F, 0o8, 0x, 0o, 1_000, 0b101, 017a]",
			"[\"-0x1F\",\"0O17\",\"0X1F\",\"0o8\",\"0x\",\"0o\",\"1_000\",\"0b101\",\"017a\"]",
			"near-integers stay strings");
	yaml_ok("[9223372036854775807, -9223372036854775808, 0x7FFFFFFFFFFFFFFF]",
			"[9223372036854775807,-9223372036854775808,9223372036854775807]", "int64 limits");
	yaml_ok("[9223372036854775808, -9223372036854775809, +000123456789012345678901234567890]",
			"[9223372036854775808,-9223372036854775809,123456789012345678901234567890]",
			"integers beyond int64 keep their digits");
	yaml_ok("[1.5, -2e3, .5, -.5, 1., 1E5, 1e+5, 1.e-5, 00.10, +0.0, 6.02214076e23, 0.1]",
			"[1.5,-2e3,0.5,-0.5,1.0,1E5,1e+5,1.0e-5,0.10,0.0,6.02214076e23,0.1]",
			"float forms as exact JSON text");
	yaml_ok("[1.2.3, 1e, e5, ., -., 1e5.0, 12:30, 2001-12-14, 1_0.5]",
			"[\"1.2.3\",\"1e\",\"e5\",\".\",\"-.\",\"1e5.0\",\"12:30\",\"2001-12-14\",\"1_0.5\"]",
			"near-floats stay strings");
	yaml_ok("[.infinity, .Nan, inf, nan, Infinity]",
			"[\".infinity\",\".Nan\",\"inf\",\"nan\",\"Infinity\"]",
			"non-core inf/nan spellings stay strings");
	yaml_ok("a: 1e-400", "{\"a\":1e-400}", "underflow keeps its text");
	yaml_ok("[\"true\", '12', \"\", '', \"null\", '~']",
			"[\"true\",\"12\",\"\",\"\",\"null\",\"~\"]", "quoted scalars are strings");
	yaml_ok("- |\n  line1\n  line2\n- >\n  folded\n  text\n- |-\n  12\n",
			"[\"line1\\nline2\\n\",\"folded text\\n\",\"12\"]", "block scalars are strings");
	yaml_ok("a: hello world\nb: 'it''s'\nc: \"tab\\there \\u00e9\"\nd: caf\xc3\xa9",
			"{\"a\":\"hello world\",\"b\":\"it's\",\"c\":\"tab\\there \xc3\xa9\",\"d\":\"caf\xc3\xa9\"}",
			"strings and escapes");
	yaml_ok("k: \"a\\0b\"", "{\"k\":\"a\\u0000b\"}", "NUL inside a value is kept");

	yaml_err("a: .inf",
			 "line 1, column 4: YAML value \".inf\" (infinity) cannot be represented in JSON; quote it to keep it as a string",
			 ".inf refused");
	yaml_err("a:\n  - -.Inf",
			 "line 2, column 5: YAML value \"-.Inf\" (infinity) cannot be represented in JSON; quote it to keep it as a string",
			 "-.Inf refused");
	yaml_err("[+.INF]",
			 "line 1, column 2: YAML value \"+.INF\" (infinity) cannot be represented in JSON; quote it to keep it as a string",
			 "+.INF refused");
	yaml_err("x: .nan",
			 "line 1, column 4: YAML value \".nan\" (not a number) cannot be represented in JSON; quote it to keep it as a string",
			 ".nan refused");
	yaml_err("x: .NaN", "line 1, column 4: YAML value \".NaN\" (not a number) cannot be represented in JSON; quote it to keep it as a string",
			 ".NaN refused");
	yaml_ok("x: \".inf\"", "{\"x\":\".inf\"}", "quoted .inf is a string");
	yaml_err("a: 1e999", "line 1, column 4: number \"1e999\" is out of range", "float overflow");
	yaml_err("a: 0x10000000000000000", "line 1, column 4: integer \"0x10000000000000000\" is out of range",
			 "hex out of range");
	yaml_err("a: 0o7777777777777777777777", "line 1, column 4: integer \"0o7777777777777777777777\" is out of range",
			 "octal out of range");
}

/* Explicit tags. */
static void
test_tags(void)
{
	yaml_ok("[!!str 12, !!str true, !!str ~, !!str, ! 12, ! true]",
			"[\"12\",\"true\",\"~\",\"\",\"12\",\"true\"]", "!!str and ! make strings");
	yaml_ok("[!!int \"12\", !!int -3, !!int 0x10, !!int '99999999999999999999']",
			"[12,-3,16,99999999999999999999]", "!!int");
	yaml_ok("[!!float 3, !!float \"1e3\", !!float 0x10, !!float .5, !!float 99999999999999999999]",
			"[3.0,1e3,16.0,0.5,99999999999999999999.0]", "!!float");
	yaml_ok("[!!bool \"true\", !!bool False, !!null \"\", !!null ~, !!null NULL]",
			"[true,false,null,null,null]", "!!bool and !!null");
	yaml_ok("a: !!seq [1]\nb: !!map {c: 1}\nc: ! [2]\nd: ! {}", "{\"a\":[1],\"b\":{\"c\":1},\"c\":[2],\"d\":{}}",
			"collection tags");
	yaml_ok("%TAG !e! tag:yaml.org,2002:\n---\na: !e!int \"5\"", "{\"a\":5}", "tag handles resolve");
	yaml_ok("a: !<tag:yaml.org,2002:str> 5", "{\"a\":\"5\"}", "verbatim standard tag");

	yaml_err("a: !!int x", "line 1, column 4: \"x\" is not a valid !!int", "bad !!int");
	yaml_err("a: !!int 1.5", "line 1, column 4: \"1.5\" is not a valid !!int", "float is not !!int");
	yaml_err("a: !!float abc", "line 1, column 4: \"abc\" is not a valid !!float", "bad !!float");
	yaml_err("a: !!bool yes", "line 1, column 4: \"yes\" is not a valid !!bool", "yes is not !!bool");
	yaml_err("a: !!null 0", "line 1, column 4: \"0\" is not a valid !!null", "bad !!null");
	yaml_err("a: !!int 123456789012345678901234567890123456789012345678901234567890x",
			 "line 1, column 4: \"1234567890123456789012345678901234567890...\" is not a valid !!int",
			 "long scalars are cut in messages");
	yaml_err("a: !!int \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
			 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"",
			 "line 1, column 4: \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
			 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9...\" is not a valid !!int",
			 "cut on a character boundary");
	yaml_err("a: !foo x",
			 "line 1, column 4: unsupported tag !foo (supported: !!str, !!int, !!float, !!bool, !!null, !!seq, !!map)",
			 "local tag refused");
	yaml_err("a: !!binary aGk=",
			 "line 1, column 4: unsupported tag !!binary (supported: !!str, !!int, !!float, !!bool, !!null, !!seq, !!map)",
			 "!!binary refused");
	yaml_err("a: !!timestamp 2001-12-14",
			 "line 1, column 4: unsupported tag !!timestamp (supported: !!str, !!int, !!float, !!bool, !!null, !!seq, !!map)",
			 "!!timestamp refused");
	yaml_err("!!set {a, b}",
			 "line 1, column 1: unsupported tag !!set (supported: !!str, !!int, !!float, !!bool, !!null, !!seq, !!map)",
			 "!!set refused");
	yaml_err("a: !custom [1]",
			 "line 1, column 4: unsupported tag !custom (supported: !!str, !!int, !!float, !!bool, !!null, !!seq, !!map)",
			 "tag on a sequence refused");
	yaml_err("!x k: v",
			 "line 1, column 1: unsupported tag !x (supported: !!str, !!int, !!float, !!bool, !!null, !!seq, !!map)",
			 "tag on a key refused");
	yaml_err("a: !!seq x", "line 1, column 4: tag !!seq cannot be applied to a scalar", "!!seq on a scalar");
	yaml_err("!!map [1]", "line 1, column 1: tag !!map cannot be applied to a sequence", "!!map on a sequence");
	yaml_err("a: !!str {b: 1}", "line 1, column 4: tag !!str cannot be applied to a mapping", "!!str on a mapping");
}

/* Mapping keys: strings as written, no complex or duplicate keys. */
static void
test_keys(void)
{
	yaml_ok("1: a\ntrue: b\nnull: c\n~: d\n1.5: e\n\"q\": f\n0x1F: g",
			"{\"1\":\"a\",\"true\":\"b\",\"null\":\"c\",\"~\":\"d\",\"1.5\":\"e\",\"q\":\"f\",\"0x1F\":\"g\"}",
			"keys are strings as written");
	yaml_ok("? \n: empty", "{\"\":\"empty\"}", "empty key");
	yaml_ok("<<: {a: 1}\nb: 2", "{\"<<\":{\"a\":1},\"b\":2}", "merge key is an ordinary key");
	yaml_ok("a/b: 1\n\"c~d\": 2", "{\"a/b\":1,\"c~d\":2}", "keys with pointer characters");
	yaml_ok("a: 1\nA: 2", "{\"a\":1,\"A\":2}", "keys are case sensitive");

	yaml_err("a: 1\nb: 2\na: 3", "line 3, column 1: duplicate key \"a\"", "duplicate key");
	yaml_err("x:\n  k: 1\n  k: 2", "line 3, column 3: duplicate key \"k\"", "nested duplicate key");
	yaml_err("{a: 1, a: 2}", "line 1, column 8: duplicate key \"a\"", "flow duplicate key");
	yaml_err("1: a\n\"1\": b", "line 2, column 1: duplicate key \"1\"", "number and string keys collide");
	yaml_err("? [a, b]\n: 1", "line 1, column 3: complex mapping keys are not supported; keys must be scalars",
			 "sequence key refused");
	yaml_err("{? {a: 1} : 2}", "line 1, column 4: complex mapping keys are not supported; keys must be scalars",
			 "mapping key refused");
	yaml_err("\"a\\0b\": 1", "line 1, column 1: mapping key contains a NUL character", "NUL in key refused");
}

/* Anchors and aliases, with the expansion budget. */
static void
test_aliases(void)
{
	yaml_ok("a: &x [1, {b: 2}]\nb: *x\nc: *x", "{\"a\":[1,{\"b\":2}],\"b\":[1,{\"b\":2}],\"c\":[1,{\"b\":2}]}",
			"collection alias");
	yaml_ok("a: &n 12\nb: *n\nc: &s '12'\nd: *s\ne: &z\nf: *z",
			"{\"a\":12,\"b\":12,\"c\":\"12\",\"d\":\"12\",\"e\":null,\"f\":null}",
			"scalar aliases keep their type");
	yaml_ok("a: &s 1\nb: *s\nc: &s x\nd: *s", "{\"a\":1,\"b\":1,\"c\":\"x\",\"d\":\"x\"}",
			"redefined anchor takes the new meaning");
	yaml_ok("base: &b {x: 1}\nlist: [*b, *b]", "{\"base\":{\"x\":1},\"list\":[{\"x\":1},{\"x\":1}]}",
			"aliases in flow sequences");
	yaml_ok("&k key: v\nother: *k", "{\"key\":\"v\",\"other\":\"key\"}", "anchored key used as a value");
	yaml_ok("a: &k name\n*k : 3", "{\"a\":\"name\",\"name\":3}", "scalar alias used as a key");
	yaml_ok("a: &e []\nb: *e\nc: &f {}\nd: *f", "{\"a\":[],\"b\":[],\"c\":{},\"d\":{}}", "empty collections");
	yaml_ok("outer: &o {inner: &i [1], again: *i}\ncopy: *o",
			"{\"outer\":{\"inner\":[1],\"again\":[1]},\"copy\":{\"inner\":[1],\"again\":[1]}}",
			"nested anchors");

	yaml_ok("a: &a [&a 1, *a]\nb: *a", "{\"a\":[1,1],\"b\":1}",
			"anchor redefined inside its own node wins afterwards");
	{
		/* many anchors: the anchor hash grows */
		ao_buf		doc,
					want;

		ao_buf_init(&doc);
		ao_buf_init(&want);
		ao_buf_append(&want, "{");
		for (int i = 0; i < 2000; i++)
			ao_buf_printf(&doc, "a%d: &n%d [%d]\n", i, i, i);
		for (int i = 0; i < 2000; i++)
			ao_buf_printf(&want, "\"a%d\":[%d],", i, i);
		for (int i = 1999; i >= 0; i--)
			ao_buf_printf(&doc, "b%d: *n%d\n", i, i);
		for (int i = 1999; i >= 0; i--)
			ao_buf_printf(&want, "\"b%d\":[%d]%s", i, i, i ? "," : "}");
		yaml_ok(doc.data, want.data, "2000 anchors");
		ao_buf_free(&doc);
		ao_buf_free(&want);
	}

	yaml_err("a: *nope", "line 1, column 4: alias *nope has no anchor &nope before it", "undefined alias");
	yaml_err("a: *x\nb: &x 1", "line 1, column 4: alias *x has no anchor &x before it", "alias before anchor");
	yaml_err("a: &r [*r]", "line 1, column 8: alias *r refers to a node that contains it (recursive alias)",
			 "recursive alias");
	yaml_err("a: &r\n  b: *r", "line 2, column 6: alias *r refers to a node that contains it (recursive alias)",
			 "recursive block alias");
	yaml_err("a: &m {x: 1}\n*m : 2",
			 "line 2, column 1: complex mapping keys are not supported; alias *m used as a key is not a scalar",
			 "collection alias as key refused");
	yaml_err("a: &k v\nv: 1\n*k : 2", "line 3, column 1: duplicate key \"v\"", "alias key duplicates");
	yaml_err("a: &k 1.5\nb: !!int *k", "line 2, column 4: \"\" is not a valid !!int",
			 "a tag before an alias tags an empty node");

	{
		/* deep copies are independent of each other and of the anchor */
		ao_buf		err;
		json_object *v = NULL;
		json_object *a, *b;

		ao_buf_init(&err);
		ao_yaml_parse("a: &x [1]\nb: *x", 15, &v, &err);
		json_object_object_get_ex(v, "a", &a);
		json_object_object_get_ex(v, "b", &b);
		json_object_array_add(a, json_object_new_int(2));
		UNIT_OK(a != b && json_object_array_length(b) == 1, "alias copies are independent");
		json_object_put(v);
		ao_buf_free(&err);
	}

	yaml_err("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
			 "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
			 "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
			 "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
			 "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
			 "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
			 "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
			 "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
			 "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n",
			 "line 6, column 8: aliases expand to more than 100000 nodes; refusing a possible \"billion laughs\" document",
			 "billion laughs refused");

	{
		/* an anchor of 1000 nodes (999 items + the sequence) copied 100 times */
		ao_buf		doc;
		json_object *v = NULL;
		ao_buf		err;

		ao_buf_init(&doc);
		ao_buf_init(&err);
		ao_buf_append(&doc, "a: &a [");
		for (int i = 0; i < 999; i++)
			ao_buf_printf(&doc, "%s%d", i ? "," : "", i);
		ao_buf_append(&doc, "]\nb: [");
		for (int i = 0; i < 100; i++)
			ao_buf_printf(&doc, "%s*a", i ? "," : "");
		ao_buf_append(&doc, "]\n");
		UNIT_OK(ao_yaml_parse(doc.data, doc.len, &v, &err) == 0 &&
				json_object_array_length(json_object_object_get(v, "b")) == 100,
				"exactly 100000 alias nodes are allowed");
		json_object_put(v);
		v = NULL;
		ao_buf_truncate(&doc, doc.len - 2);
		ao_buf_append(&doc, ",*a]\n");
		UNIT_OK(ao_yaml_parse(doc.data, doc.len, &v, &err) == -1 && v == NULL &&
				strstr(err.data, "aliases expand to more than 100000 nodes") != NULL,
				"one more copy is refused");
		ao_buf_free(&doc);
		ao_buf_free(&err);
	}
}

/* Documents: empty, multiple, directives. */
static void
test_documents(void)
{
	yaml_ok("", "null", "empty input is null");
	yaml_ok("# only a comment\n", "null", "comment only is null");
	yaml_ok("---\n", "null", "empty explicit document is null");
	yaml_ok("--- ~\n...\n", "null", "explicit null document");
	yaml_ok("%YAML 1.2\n---\na: 1\n...\n", "{\"a\":1}", "directive and document end");
	yaml_ok("42", "42", "scalar document");
	yaml_ok("\"text\"", "\"text\"", "string document");
	yaml_ok("a: 1\r\nb: 2\r\n", "{\"a\":1,\"b\":2}", "CRLF line ends");
	yaml_ok("\xef\xbb\xbf" "a: 1", "{\"a\":1}", "UTF-8 byte order mark");
	yaml_ok_n("a: 1\nb: 2", 4, "{\"a\":1}", "length is honoured");
	yaml_ok_n(NULL, 0, "null", "NULL text with length 0");

	yaml_err("--- 1\n--- 2", "line 2, column 1: multiple YAML documents are not supported", "two documents");
	yaml_err("a: 1\n...\n---\nb: 2", "line 3, column 1: multiple YAML documents are not supported",
			 "second document after an end marker");
	yaml_err("a: 1\n---\n", "line 2, column 1: multiple YAML documents are not supported",
			 "trailing empty document");
}

/* libyaml syntax errors and reader errors carry line and column. */
static void
test_syntax_errors(void)
{
	yaml_err("a: 1\nb: 2\nc: d: e", "line 3, column 5: mapping values are not allowed in this context",
			 "mapping value in a plain scalar");
	yaml_err("[a, b", "line 2, column 1: did not find expected ',' or ']' (while parsing a flow sequence started at line 1, column 1)",
			 "unterminated flow sequence");
	yaml_err("\"abc", "line 1, column 5: found unexpected end of stream (while scanning a quoted scalar started at line 1, column 1)",
			 "unterminated quoted scalar");
	yaml_err("- a\nb: 1", "line 2, column 1: did not find expected '-' indicator (while parsing a block collection started at line 1, column 1)",
			 "mixed block collection");
	yaml_err("key: value\n  bad: indent", "line 2, column 6: mapping values are not allowed in this context",
			 "bad indentation");
	yaml_err("a:\n\tb: 1", "line 2, column 1: found character that cannot start any token (while scanning for the next token started at line 2, column 1)",
			 "tab indentation");
	yaml_err_n("a: \xff", 4, "line 1, column 4: invalid leading UTF-8 octet (byte 0xFF)", "invalid UTF-8");
	yaml_err_n("a: b\nc: \x01", 9, "line 2, column 4: control characters are not allowed (U+0001)",
			   "control character");
	yaml_err_n("\xc3\xa9: \xc3\xa9\x00", 7, "line 1, column 5: control characters are not allowed (U+0000)",
			   "NUL byte; columns count characters");

	{
		ao_buf		err;
		json_object *v = (json_object *) 1;

		UNIT_OK(ao_yaml_parse("a: [", 4, &v, NULL) == -1 && v == NULL, "NULL err buffer");
		ao_buf_init(&err);
		ao_buf_append(&err, "stale");
		UNIT_OK(ao_yaml_to_json("a: [", 4, &err) == NULL &&
				strcmp(err.data, "line 2, column 1: did not find expected node content (while parsing a flow node started at line 2, column 1)") == 0, "ao_yaml_to_json resets err and reports");
		UNIT_OK(ao_yaml_to_json("~", 1, &err) == NULL && err.len == 0,
				"ao_yaml_to_json: NULL with empty err is JSON null");
		v = ao_yaml_to_json("a: [1]", 6, &err);
		UNIT_STREQ(json_text(v), "{\"a\":[1]}", "ao_yaml_to_json value");
		json_object_put(v);
		ao_buf_free(&err);
	}
}

/* Nesting limit, and a large document. */
static void
test_limits(void)
{
	ao_buf		doc;
	json_object *v = NULL;
	ao_buf		err;
	int			ok;

	ao_buf_init(&doc);
	ao_buf_init(&err);
	for (int i = 0; i < 256; i++)
		ao_buf_append(&doc, "[");
	for (int i = 0; i < 256; i++)
		ao_buf_append(&doc, "]");
	UNIT_OK(ao_yaml_parse(doc.data, doc.len, &v, &err) == 0, "256 levels are allowed");
	json_object_put(v);
	ao_buf_reset(&doc);
	for (int i = 0; i < 257; i++)
		ao_buf_append(&doc, "[");
	for (int i = 0; i < 257; i++)
		ao_buf_append(&doc, "]");
	yaml_err_n(doc.data, doc.len, "line 1, column 257: nesting deeper than 256 levels is not supported",
			   "257 flow levels refused");
	ao_buf_reset(&doc);
	for (int i = 0; i < 300; i++)
	{
		for (int j = 0; j < i; j++)
			ao_buf_append(&doc, " ");
		ao_buf_printf(&doc, "k%d:\n", i);
	}
	yaml_err_n(doc.data, doc.len, "line 257, column 257: nesting deeper than 256 levels is not supported",
			   "257 block levels refused");

	ao_buf_reset(&doc);
	for (int i = 0; i < 50000; i++)
		ao_buf_printf(&doc, "k%d: [%d, \"v\", {x: %d.5}]\n", i, i, i);
	UNIT_OK(ao_yaml_parse(doc.data, doc.len, &v, &err) == 0 &&
			json_object_object_length(v) == 50000, "50000-key document");
	ok = v && json_object_get_int(json_object_array_get_idx(json_object_object_get(v, "k49999"), 0)) == 49999;
	UNIT_OK(ok, "large document content");
	json_object_put(v);
	ao_buf_free(&doc);
	ao_buf_free(&err);
}

/* A workflow in the shape of the design notes' example converts as is. */
static void
test_workflow_example(void)
{
	yaml_ok("workflow:\n"
			"  name: sales_report\n"
			"  version: 1.0\n"
			"  steps:\n"
			"    - id: load_data\n"
			"      type: tool\n"
			"      tool: sql.query\n"
			"      input:\n"
			"        query: \"SELECT * FROM sales WHERE region = $1\"\n"
			"        params: [\"${input.region}\"]\n"
			"    - id: analyze\n"
			"      type: llm\n"
			"      depends_on: [load_data]\n"
			"      prompt: |\n"
			"        Analyze: ${load_data.output}\n"
			"      input:\n"
			"        context: ${load_data.output}\n"
			"    - id: report\n"
			"      type: parallel\n"
			"      depends_on: [analyze]\n"
			"      steps:\n"
			"        - {id: chart, type: tool, tool: chart.create, input: {data: \"${analyze.output.chart_data}\"}}\n"
			"        - id: summary\n"
			"          type: llm\n"
			"          retry: {max_attempts: 3, backoff: {initial: 0.5, multiplier: 2, jitter: true}}\n"
			"          timeout: 30s\n",
			"{\"workflow\":{\"name\":\"sales_report\",\"version\":1.0,\"steps\":["
			"{\"id\":\"load_data\",\"type\":\"tool\",\"tool\":\"sql.query\",\"input\":{\"query\":\"SELECT * FROM sales WHERE region = $1\",\"params\":[\"${input.region}\"]}},"
			"{\"id\":\"analyze\",\"type\":\"llm\",\"depends_on\":[\"load_data\"],\"prompt\":\"Analyze: ${load_data.output}\\n\",\"input\":{\"context\":\"${load_data.output}\"}},"
			"{\"id\":\"report\",\"type\":\"parallel\",\"depends_on\":[\"analyze\"],\"steps\":["
			"{\"id\":\"chart\",\"type\":\"tool\",\"tool\":\"chart.create\",\"input\":{\"data\":\"${analyze.output.chart_data}\"}},"
			"{\"id\":\"summary\",\"type\":\"llm\",\"retry\":{\"max_attempts\":3,\"backoff\":{\"initial\":0.5,\"multiplier\":2,\"jitter\":true}},\"timeout\":\"30s\"}]}]}}",
			"workflow example");
}

int
main(void)
{
	test_scalars();
	test_tags();
	test_keys();
	test_aliases();
	test_documents();
	test_syntax_errors();
	test_limits();
	test_workflow_example();
	return unit_done();
}
