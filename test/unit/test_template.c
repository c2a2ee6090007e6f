/*-------------------------------------------------------------------------
 *
 * test_template.c
 *	  Unit tests of ao_template: reference parsing, scanning, rendering and
 *	  the context resolver.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/test_template.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_template.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Problem callback: append "path: message\n" to the ao_buf in arg. */
static void
collect(void *arg, const char *path, const char *message)
{
	ao_buf_printf((ao_buf *) arg, "%s: %s\n", path, message);
}

/* Describe a parsed ref as "ROOT step field |seg|seg" for comparisons. */
static void
describe(const ao_ref *ref, ao_buf *out)
{
	static const char *const names[] = {"INPUT", "MEMORY", "ITEM", "INDEX", "STEP"};

	ao_buf_append(out, names[ref->root]);
	if (ref->step_id)
		ao_buf_printf(out, " %s", ref->step_id);
	if (ref->field)
		ao_buf_printf(out, " %s", ref->field);
	for (size_t i = 0; i < ref->nsegs; i++)
	{
		if (ref->segs[i].key)
			ao_buf_printf(out, " |%s", ref->segs[i].key);
		else
			ao_buf_printf(out, " |[%ld]", ref->segs[i].index);
	}
}

/* Parse expr and compare the description and canonical form. */
static void
parse_ok(const char *expr, const char *want, const char *want_canon)
{
	ao_ref		ref;
	ao_buf		err,
				got;
	char		label[256];

	ao_buf_init(&err);
	ao_buf_init(&got);
	snprintf(label, sizeof(label), "parse \"%s\" succeeds", expr);
	if (UNIT_OK(ao_ref_parse(expr, strlen(expr), &ref, &err) == 0, label))
	{
		describe(&ref, &got);
		snprintf(label, sizeof(label), "parse \"%s\" structure", expr);
		UNIT_STREQ(got.data, want, label);
		ao_buf_reset(&got);
		ao_ref_format(&ref, &got);
		snprintf(label, sizeof(label), "format \"%s\"", expr);
		UNIT_STREQ(got.data, want_canon, label);
		ao_ref_free(&ref);
	}
	else
		printf("#   error: %s\n", err.data);
	ao_buf_free(&err);
	ao_buf_free(&got);
}

/* Parse expr and compare the error message. */
static void
parse_err(const char *expr, const char *want)
{
	ao_ref		ref;
	ao_buf		err;
	char		label[256];
	int			rc;

	ao_buf_init(&err);
	rc = ao_ref_parse(expr, strlen(expr), &ref, &err);
	snprintf(label, sizeof(label), "parse \"%s\" fails", expr);
	UNIT_OK(rc == -1 && ref.nsegs == 0 && ref.text == NULL && ref.segs == NULL, label);
	snprintf(label, sizeof(label), "parse \"%s\" message", expr);
	UNIT_STREQ(err.data, want, label);
	ao_ref_free(&ref);
	ao_buf_free(&err);
}

/* Reference grammar, accepted forms and error messages. */
static void
test_parse(void)
{
	ao_ref		ref;

	parse_ok("input.region", "INPUT |region", "input.region");
	parse_ok("  input.region\t", "INPUT |region", "input.region");
	parse_ok("input", "INPUT", "input");
	parse_ok("load_data.output", "STEP load_data output", "load_data.output");
	parse_ok("analyze.output.chart_data", "STEP analyze output |chart_data",
			 "analyze.output.chart_data");
	parse_ok("analyze.output.rows[0].name", "STEP analyze output |rows |[0] |name",
			 "analyze.output.rows[0].name");
	parse_ok("a.output[12][3]", "STEP a output |[12] |[3]", "a.output[12][3]");
	parse_ok("memory.k", "MEMORY |k", "memory.k");
	parse_ok("memory", "MEMORY", "memory");
	parse_ok("item", "ITEM", "item");
	parse_ok("item.name", "ITEM |name", "item.name");
	parse_ok("item[2]", "ITEM |[2]", "item[2]");
	parse_ok("index", "INDEX", "index");
	parse_ok("steps.load_data.output", "STEP load_data output", "load_data.output");
	parse_ok("steps.load_data.status", "STEP load_data status", "load_data.status");
	parse_ok("steps.x.error.message", "STEP x error |message", "x.error.message");
	parse_ok("steps.output", "STEP steps output", "steps.output");
	parse_ok("steps.output.x", "STEP steps output |x", "steps.output.x");
	parse_ok("steps.output.output", "STEP output output", "output.output");
	parse_ok("my-step_2.status", "STEP my-step_2 status", "my-step_2.status");
	parse_ok("2fast.output.0", "STEP 2fast output |0", "2fast.output.0");
	parse_ok("input.a-b.C_d", "INPUT |a-b |C_d", "input.a-b.C_d");

	parse_err("", "empty reference ${}");
	parse_err("   ", "empty reference ${}");
	parse_err("foo",
			  "invalid reference ${foo}: a step reference must continue with .output, .status or .error");
	parse_err("foo.bar",
			  "invalid reference ${foo.bar}: a step reference must continue with .output, .status or .error");
	parse_err("foo[0]",
			  "invalid reference ${foo[0]}: a step reference must continue with .output, .status or .error");
	parse_err("steps.foo",
			  "invalid reference ${steps.foo}: a step reference must continue with .output, .status or .error");
	parse_err("index.x",
			  "invalid reference ${index.x}: index is the loop iteration number and has no fields");
	parse_err("index[0]",
			  "invalid reference ${index[0]}: index is the loop iteration number and has no fields");
	parse_err("a..b", "invalid reference ${a..b}: expected a name after \".\"");
	parse_err("input.", "invalid reference ${input.}: expected a name after \".\"");
	parse_err("input[x]",
			  "invalid reference ${input[x]}: expected an array index such as [0] after \"[\"");
	parse_err("input[0",
			  "invalid reference ${input[0}: expected an array index such as [0] after \"[\"");
	parse_err("input[-1]",
			  "invalid reference ${input[-1]}: expected an array index such as [0] after \"[\"");
	parse_err("input[]",
			  "invalid reference ${input[]}: expected an array index such as [0] after \"[\"");
	parse_err("input[99999999999999999999999]",
			  "invalid reference ${input[99999999999999999999999]}: array index is too large");
	parse_err("input .x",
			  "invalid reference ${input .x}: unexpected character \" \" at position 6");
	parse_err(".x", "invalid reference ${.x}: unexpected character \".\" at position 1");
	parse_err("[0]", "invalid reference ${[0]}: unexpected character \"[\" at position 1");
	parse_err("input.r\xc3\xa9gion",
			  "invalid reference ${input.r\xc3\xa9gion}: unexpected character \"\xc3\xa9\" at position 8");
	parse_err("input.$x", "invalid reference ${input.$x}: expected a name after \".\"");
	parse_err("a.output|x",
			  "invalid reference ${a.output|x}: unexpected character \"|\" at position 9");

	UNIT_OK(ao_ref_parse("input.x", 5, &ref, NULL) == 0 && ref.nsegs == 0 &&
			ref.root == AO_REF_INPUT, "parse honours len");
	ao_ref_free(&ref);
	UNIT_OK(ao_ref_parse("foo", 3, &ref, NULL) == -1, "parse error with NULL err buffer");
	UNIT_OK(strcmp(ao_ref_parse("input.a", 7, &ref, NULL) == 0 ? ref.text : "", "input.a") == 0,
			"text keeps the expression");
	ao_ref_free(&ref);
	ao_ref_free(&ref);
	UNIT_OK(ref.text == NULL, "ao_ref_free resets and can be repeated");
}

/* Scan callback: append "path whole=N canon\n". */
static void
on_ref(void *arg, const char *path, const ao_ref *ref, int whole)
{
	ao_buf	   *out = arg;

	ao_buf_printf(out, "%s whole=%d ", path, whole);
	ao_ref_format(ref, out);
	ao_buf_append(out, "\n");
}

/* Scan json text and compare the references and problems reported. */
static void
scan_case(const char *json, const char *base, int want_problems,
		  const char *want_refs, const char *want_problems_text, const char *name)
{
	json_object *v = json_tokener_parse(json);
	ao_buf		refs,
				probs;
	int			n;
	char		label[256];

	ao_buf_init(&refs);
	ao_buf_init(&probs);
	n = ao_template_scan(v, base, on_ref, &refs, collect, &probs);
	snprintf(label, sizeof(label), "%s: problem count", name);
	if (!UNIT_OK(n == want_problems, label))
		printf("#   got %d\n", n);
	snprintf(label, sizeof(label), "%s: references", name);
	UNIT_STREQ(refs.data, want_refs, label);
	snprintf(label, sizeof(label), "%s: problems", name);
	UNIT_STREQ(probs.data, want_problems_text, label);
	json_object_put(v);
	ao_buf_free(&refs);
	ao_buf_free(&probs);
}

/* Scanning: paths, whole flags, escapes, syntax errors. */
static void
test_scan(void)
{
	scan_case("{\"a\": \"${input.x}\", \"b\": [1, \"x ${load.output.y} ${ memory.k }\", true],"
			  " \"c\": {\"d/e~f\": \"${item}\"}, \"${input.key}\": 5}",
			  "/steps/0/input", 0,
			  "/steps/0/input/a whole=1 input.x\n"
			  "/steps/0/input/b/1 whole=0 load.output.y\n"
			  "/steps/0/input/b/1 whole=0 memory.k\n"
			  "/steps/0/input/c/d~1e~0f whole=1 item\n",
			  "", "paths, whole flags, keys are not templates");
	scan_case("\"${ steps.a.output }\"", NULL, 0, " whole=1 a.output\n", "",
			  "NULL base path, spaces inside braces still whole");
	scan_case("\" ${input}\"", "", 0, " whole=0 input\n", "", "leading space is not whole");
	scan_case("\"${input}${memory}\"", "", 0, " whole=0 input\n whole=0 memory\n", "",
			  "two references are not whole");
	scan_case("\"$${input} $$ $ {x} $x ${input.a}$\"", "", 0, " whole=0 input.a\n", "",
			  "escapes and lone dollars");
	scan_case("[\"${input\", \"ok ${}\", \"${foo.bar} then ${input.z}\"]", "/p", 3,
			  "/p/2 whole=0 input.z\n",
			  "/p/0: unterminated reference: \"${\" without a closing \"}\"\n"
			  "/p/1: empty reference ${}\n"
			  "/p/2: invalid reference ${foo.bar}: a step reference must continue with .output, .status or .error\n",
			  "syntax errors are reported and scanning goes on");
	scan_case("[1, 2.5, null, false, {}]", "", 0, "", "", "non-strings ignored");
	scan_case("\"${input.a${input.b}}\"", "", 1, "",
			  ": invalid reference ${input.a${input.b}: unexpected character \"$\" at position 8\n",
			  "nested reference is a syntax error");

	{
		json_object *v = json_tokener_parse("[\"${x}\", \"${input}\"]");

		UNIT_OK(ao_template_scan(v, "", NULL, NULL, NULL, NULL) == 1,
				"NULL callbacks still count problems");
		json_object_put(v);
	}
	{
		/* a string with an embedded NUL is scanned to its full length */
		json_object *v = json_object_new_string_len("a\0${input.q}", 12);
		ao_buf		refs;

		ao_buf_init(&refs);
		ao_template_scan(v, "", on_ref, &refs, NULL, NULL);
		UNIT_STREQ(refs.data, " whole=0 input.q\n", "embedded NUL does not end the string");
		ao_buf_free(&refs);
		json_object_put(v);
	}
}

/* The context used by the render tests. */
static const char *context_json =
"{\"input\": {\"region\": \"EU\", \"n\": 3, \"obj\": {\"k\": [1, \"two\"]}, \"nul\": null,"
" \"flag\": true, \"f\": 1.5, \"s/l\": \"a/b\"},"
" \"memory\": {\"k\": \"remembered\"},"
" \"item\": {\"name\": \"widget\"}, \"index\": 2,"
" \"steps\": {\"load\": {\"output\": {\"rows\": [{\"name\": \"r0\"}, {\"name\": \"r1\"}]},"
" \"status\": \"succeeded\", \"error\": null}}}";

/* Render json with the context; compare output JSON or problems. */
static void
render_case(json_object *ctx, const char *tmpl_json, int want_problems,
			const char *want, const char *name)
{
	json_object *tmpl = json_tokener_parse(tmpl_json);
	json_object *out = (json_object *) 1;
	ao_buf		probs;
	int			n;
	char		label[256];

	ao_buf_init(&probs);
	n = ao_template_render(tmpl, ao_ref_resolve_in_context, ctx, collect, &probs, &out);
	snprintf(label, sizeof(label), "%s: problem count", name);
	if (!UNIT_OK(n == want_problems, label))
		printf("#   got %d: %s\n", n, probs.data);
	snprintf(label, sizeof(label), "%s: result", name);
	if (n == 0)
		UNIT_STREQ(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN |
												  JSON_C_TO_STRING_NOSLASHESCAPE),
				   want, label);
	else
	{
		UNIT_OK(out == NULL, "failed render returns NULL");
		UNIT_STREQ(probs.data, want, label);
	}
	json_object_put(out);
	json_object_put(tmpl);
	ao_buf_free(&probs);
}

/* Rendering: types kept, text rendering, escapes, failures. */
static void
test_render(void)
{
	json_object *ctx = json_tokener_parse(context_json);

	render_case(ctx, "\"${input.n}\"", 0, "3", "whole reference keeps a number");
	render_case(ctx, "\"${input.obj}\"", 0, "{\"k\":[1,\"two\"]}", "whole reference keeps an object");
	render_case(ctx, "\"${ input.flag }\"", 0, "true", "whole reference keeps a boolean");
	render_case(ctx, "\"${input.nul}\"", 0, "null", "whole reference to null");
	render_case(ctx, "\"${input.f}\"", 0, "1.5", "whole reference keeps a double");
	render_case(ctx, "\"${input.region}\"", 0, "\"EU\"", "whole reference to a string");
	render_case(ctx, "\"Region: ${input.region}, n=${input.n}\"", 0,
				"\"Region: EU, n=3\"", "text rendering of string and number");
	render_case(ctx, "\"obj=${input.obj} nul=${input.nul} t=${input.flag} s=${input.s/l}\"", 1,
				": invalid reference ${input.s/l}: unexpected character \"/\" at position 8\n",
				"slash is not a name character");
	render_case(ctx, "\"obj=${input.obj} nul=${input.nul} t=${input.flag}\"", 0,
				"\"obj={\\\"k\\\":[1,\\\"two\\\"]} nul=null t=true\"",
				"text rendering of object, null and boolean");
	render_case(ctx, "{\"a\": [\"${load.output.rows[1].name}\", \"${steps.load.status}\"],"
				" \"b\": {\"c\": \"${memory.k}\", \"d\": 7, \"e\": null}, \"f\": \"${item.name}#${index}\"}",
				0,
				"{\"a\":[\"r1\",\"succeeded\"],\"b\":{\"c\":\"remembered\",\"d\":7,\"e\":null},\"f\":\"widget#2\"}",
				"nested document");
	render_case(ctx, "\"${load.output.rows.0.name}\"", 0, "\"r0\"", "digit key walks an array");
	render_case(ctx, "\"${load.error}\"", 0, "null", "null step error resolves");
	render_case(ctx, "\"$${input.region} costs $$5 or $5\"", 0,
				"\"${input.region} costs $$5 or $5\"", "escape renders literally");
	render_case(ctx, "\"${input.missing}\"", 1,
				": reference ${input.missing} does not resolve\n", "missing member");
	render_case(ctx, "[\"${input.region}\", \"x ${zz.output} ${input.obj.k[5]}\", \"${input}\"]", 2,
				"/1: reference ${zz.output} does not resolve\n"
				"/1: reference ${input.obj.k[5]} does not resolve\n",
				"all unresolved references reported");
	render_case(ctx, "{\"a\": \"${input.region[0]}\", \"b\": \"${input.n.x}\", \"c\": \"${load.output.rows.x}\"}", 3,
				"/a: reference ${input.region[0]} does not resolve\n"
				"/b: reference ${input.n.x} does not resolve\n"
				"/c: reference ${load.output.rows.x} does not resolve\n",
				"walking into scalars does not resolve");
	render_case(ctx, "{\"a\": \"${input\", \"b\": \"${load.outputs}\"}", 2,
				"/a: unterminated reference: \"${\" without a closing \"}\"\n"
				"/b: invalid reference ${load.outputs}: a step reference must continue with .output, .status or .error\n",
				"syntax errors fail the render");
	render_case(ctx, "{\"${input.region}\": 1, \"k\": [true, 2, 3.25, null]}", 0,
				"{\"${input.region}\":1,\"k\":[true,2,3.25,null]}", "keys and scalars are copied");
	render_case(ctx, "null", 0, "null", "null template renders to null");

	{
		json_object *tmpl = json_tokener_parse("{\"o\": \"${input.obj}\"}");
		json_object *out = NULL;
		json_object *k;
		json_object *orig;

		ao_template_render(tmpl, ao_ref_resolve_in_context, ctx, NULL, NULL, &out);
		json_object_object_get_ex(json_object_object_get(out, "o"), "k", &k);
		json_object_array_add(k, json_object_new_int(99));
		orig = json_object_object_get(json_object_object_get(ctx, "input"), "obj");
		UNIT_STREQ(json_object_to_json_string_ext(orig, JSON_C_TO_STRING_PLAIN),
				   "{\"k\":[1,\"two\"]}", "render deep-copies referenced values");
		json_object_put(out);
		json_object_put(tmpl);
	}
	{
		json_object *tmpl = json_tokener_parse("\"${input.region}\"");
		json_object *out = (json_object *) 1;
		ao_buf		probs;

		ao_buf_init(&probs);
		UNIT_OK(ao_template_render(tmpl, NULL, NULL, collect, &probs, &out) == 1 && out == NULL,
				"NULL resolver resolves nothing");
		json_object_put(tmpl);
		ao_buf_free(&probs);
	}
	json_object_put(ctx);
}

/* The context resolver directly, including absent roots. */
static void
test_resolver(void)
{
	json_object *ctx = json_tokener_parse("{\"input\": {\"a\": [10, 20]}, \"steps\": {\"s\": {\"status\": \"failed\"}}}");
	json_object *v;
	ao_ref		ref;

	ao_ref_parse("input.a[1]", 10, &ref, NULL);
	UNIT_OK(ao_ref_resolve_in_context(ctx, &ref, &v) == 1 && json_object_get_int(v) == 20,
			"resolver: array index");
	ao_ref_free(&ref);
	ao_ref_parse("input.a[2]", 10, &ref, NULL);
	UNIT_OK(ao_ref_resolve_in_context(ctx, &ref, &v) == 0 && v == NULL, "resolver: index out of range");
	ao_ref_free(&ref);
	ao_ref_parse("memory.k", 8, &ref, NULL);
	UNIT_OK(ao_ref_resolve_in_context(ctx, &ref, &v) == 0, "resolver: absent root");
	ao_ref_free(&ref);
	ao_ref_parse("s.output", 8, &ref, NULL);
	UNIT_OK(ao_ref_resolve_in_context(ctx, &ref, &v) == 0, "resolver: absent step field");
	ao_ref_free(&ref);
	ao_ref_parse("s.status", 8, &ref, NULL);
	UNIT_OK(ao_ref_resolve_in_context(ctx, &ref, &v) == 1 &&
			strcmp(json_object_get_string(v), "failed") == 0, "resolver: step status");
	ao_ref_free(&ref);
	ao_ref_parse("t.status", 8, &ref, NULL);
	UNIT_OK(ao_ref_resolve_in_context(ctx, &ref, &v) == 0, "resolver: unknown step");
	ao_ref_free(&ref);
	ao_ref_parse("input", 5, &ref, NULL);
	UNIT_OK(ao_ref_resolve_in_context(NULL, &ref, &v) == 0, "resolver: NULL context");
	UNIT_OK(ao_ref_resolve_in_context(ctx, &ref, &v) == 1 &&
			json_object_is_type(v, json_type_object), "resolver: whole root");
	ao_ref_free(&ref);
	json_object_put(ctx);
}

/* Deeply nested values are refused instead of recursing without bound. */
static void
test_depth(void)
{
	json_object *root = json_object_new_array();
	json_object *cur = root;
	json_object *out = NULL;
	ao_buf		probs;

	for (int i = 0; i < 1500; i++)
	{
		json_object *next = json_object_new_array();

		json_object_array_add(cur, next);
		cur = next;
	}
	json_object_array_add(cur, json_object_new_string("${input}"));
	ao_buf_init(&probs);
	UNIT_OK(ao_template_scan(root, "", NULL, NULL, NULL, NULL) == 1, "scan: too deep is one problem");
	UNIT_OK(ao_template_render(root, ao_ref_resolve_in_context, NULL, collect, &probs, &out) >= 1 &&
			out == NULL && strstr(probs.data, "value is nested too deeply") != NULL,
			"render: too deep is refused");
	ao_buf_free(&probs);
	json_object_put(root);
}

int
main(void)
{
	test_parse();
	test_scan();
	test_render();
	test_resolver();
	test_depth();
	return unit_done();
}
