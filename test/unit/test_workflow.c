/*-------------------------------------------------------------------------
 *
 * test_workflow.c
 *	  Unit tests of ao_workflow: normalisation, the full check of workflows
 *	  (FixedWorkflow schema) and plans (AgentPlan schema) with exact problem
 *	  paths and messages, the hooks, the flattened step list and durations.
 *
 * Definitions are written as YAML (mostly flow style) and converted with
 * ao_yaml, which keeps the cases readable. Problems are collected as
 * "path: message" lines, so every check compares exact paths and messages
 * in the order the checker reports them.
 *
 * The schemas are read from $AO_SCHEMAS_DIR, else from ../../schemas next
 * to the test program (build/unit/ or build/unit-asan/), else from the
 * AO_SCHEMAS_DIR the Makefile compiles in.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/test_workflow.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_json_schema.h"
#include "ao_workflow.h"
#include "ao_yaml.h"
#include "unit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef AO_SCHEMAS_DIR
#define AO_SCHEMAS_DIR "../../schemas"
#endif

static json_object *fixed_schema;
static json_object *plan_schema;
/* Directory sizes chosen so that composed paths cannot be truncated. */
#define DIR_MAX 1024
#define FILE_MAX 2048

static char schemas_dir[DIR_MAX];

/* ---------------------------------------------------------------------
 * helpers
 * --------------------------------------------------------------------- */

/* Read a whole file into a malloc'd NUL-terminated string, or NULL. */
static char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *data;
	long		n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = malloc((size_t) n + 1);
	if (data == NULL || fread(data, 1, (size_t) n, f) != (size_t) n)
		abort();
	data[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t) n;
	return data;
}

/* Does dir hold FixedWorkflow.schema.json? */
static int
has_schemas(const char *dir)
{
	char		path[FILE_MAX];

	snprintf(path, sizeof(path), "%s/FixedWorkflow.schema.json", dir);
	return access(path, R_OK) == 0;
}

/* Find the schemas directory (see the file header). */
static void
find_schemas_dir(void)
{
	const char *env = getenv("AO_SCHEMAS_DIR");
	char		exe[DIR_MAX - 32];
	ssize_t		n;

	if (env && *env)
	{
		snprintf(schemas_dir, sizeof(schemas_dir), "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0)
	{
		char	   *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash)
		{
			*slash = '\0';
			snprintf(schemas_dir, sizeof(schemas_dir), "%s/../../schemas", exe);
			if (has_schemas(schemas_dir))
				return;
		}
	}
	snprintf(schemas_dir, sizeof(schemas_dir), "%s", AO_SCHEMAS_DIR);
}

/* Load schemas/<name>.schema.json; abort when missing or malformed. */
static json_object *
load_schema(const char *name)
{
	char		path[FILE_MAX];
	char	   *text;
	json_object *schema;

	snprintf(path, sizeof(path), "%s/%s.schema.json", schemas_dir, name);
	text = read_file(path, NULL);
	if (text == NULL)
	{
		fprintf(stderr, "cannot read %s (set AO_SCHEMAS_DIR)\n", path);
		exit(2);
	}
	schema = json_tokener_parse(text);
	free(text);
	if (schema == NULL)
	{
		fprintf(stderr, "cannot parse %s\n", path);
		exit(2);
	}
	return schema;
}

/* Convert YAML text to a new json-c value; abort on a syntax error. */
static json_object *
yaml(const char *text)
{
	ao_buf		err;
	json_object *v;

	ao_buf_init(&err);
	v = ao_yaml_to_json(text, strlen(text), &err);
	if (v == NULL && err.len)
	{
		fprintf(stderr, "bad YAML in test: %s\n%s\n", err.data, text);
		abort();
	}
	ao_buf_free(&err);
	return v;
}

/* Problem callback: append "path: message\n" to the ao_buf in arg. */
static void
collect(void *arg, const char *path, const char *message)
{
	ao_buf_printf((ao_buf *) arg, "%s: %s\n", path, message);
}

/* Hook callbacks: append "tool <path> <name>\n" / "cond <path> <expr>\n". */
static void
hook_tool(void *arg, const char *path, const char *name)
{
	ao_buf_printf((ao_buf *) arg, "tool %s %s\n", path, name);
}

static void
hook_condition(void *arg, const char *path, const char *expr)
{
	ao_buf_printf((ao_buf *) arg, "cond %s %s\n", path, expr);
}

/* Number of lines in s. */
static int
count_lines(const char *s)
{
	int			n = 0;

	for (; *s; s++)
		if (*s == '\n')
			n++;
	return n;
}

/*
 * Normalise and check a YAML definition against schema (may be NULL),
 * compare the problems with want, and check that the return value counts
 * them. Two checks.
 */
static void
expect(const char *name, json_object *schema, const char *def_yaml, const char *want)
{
	json_object *def = yaml(def_yaml);
	json_object *norm = ao_workflow_normalize(def, NULL);
	ao_buf		got;
	int			rc;
	char		label[300];

	ao_buf_init(&got);
	rc = ao_workflow_check(norm, schema, NULL, collect, &got);
	snprintf(label, sizeof(label), "%s: problems", name);
	UNIT_STREQ(got.data, want, label);
	snprintf(label, sizeof(label), "%s: returns their number", name);
	if (!UNIT_OK(rc == count_lines(got.data), label))
		printf("#   returned %d for %d lines\n", rc, count_lines(got.data));
	ao_buf_free(&got);
	json_object_put(norm);
	json_object_put(def);
}

/* expect() with the FixedWorkflow schema. */
static void
expect_wf(const char *name, const char *def_yaml, const char *want)
{
	expect(name, fixed_schema, def_yaml, want);
}

/* Run the check with both hooks; compare the hook calls. */
static void
expect_hooks(const char *name, const char *def_yaml, const char *want)
{
	json_object *def = yaml(def_yaml);
	json_object *norm = ao_workflow_normalize(def, NULL);
	ao_buf		problems;
	ao_buf		calls;
	ao_workflow_hooks hooks;
	char		label[300];

	ao_buf_init(&problems);
	ao_buf_init(&calls);
	hooks.tool = hook_tool;
	hooks.condition = hook_condition;
	hooks.arg = &calls;
	ao_workflow_check(norm, fixed_schema, &hooks, collect, &problems);
	snprintf(label, sizeof(label), "%s: hook calls", name);
	UNIT_STREQ(calls.data, want, label);
	snprintf(label, sizeof(label), "%s: no problems", name);
	UNIT_STREQ(problems.data, "", label);
	ao_buf_free(&problems);
	ao_buf_free(&calls);
	json_object_put(norm);
	json_object_put(def);
}

/* Compact JSON text of a value (valid until the value is freed). */
static const char *
json_text(json_object *v)
{
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
										  JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* ---------------------------------------------------------------------
 * ao_workflow_normalize / ao_workflow_body
 * --------------------------------------------------------------------- */

static void
test_normalize(void)
{
	json_object *def;
	json_object *norm;
	json_object *want;
	const char *base = "unset";

	/* the wrapper form keeps its wrapper and reports /workflow */
	def = yaml("{workflow: {name: w, steps: [{id: a, kind: tool, tool: t}]}}");
	norm = ao_workflow_normalize(def, &base);
	want = yaml("{workflow: {name: w, steps: [{id: a, type: tool, tool: t}]}}");
	UNIT_STREQ(base, "/workflow", "normalize: wrapper form sets base path /workflow");
	UNIT_OK(ao_json_equal(norm, want), "normalize: wrapper form, kind renamed to type");
	UNIT_OK(norm != def, "normalize: returns a copy");
	UNIT_STREQ(json_text(def),
			   "{\"workflow\":{\"name\":\"w\",\"steps\":[{\"id\":\"a\",\"kind\":\"tool\",\"tool\":\"t\"}]}}",
			   "normalize: the input is left unchanged");
	UNIT_OK(ao_workflow_body(norm) == json_object_object_get(norm, "workflow"),
			"body: of a wrapper is its workflow member");
	json_object_put(norm);
	json_object_put(want);
	json_object_put(def);

	/* the bare form */
	def = yaml("{steps: [{id: a, kind: llm, prompt: hi}]}");
	norm = ao_workflow_normalize(def, &base);
	want = yaml("{steps: [{id: a, type: llm, prompt: hi}]}");
	UNIT_STREQ(base, "", "normalize: bare form sets base path \"\"");
	UNIT_OK(ao_json_equal(norm, want), "normalize: bare form, kind renamed to type");
	UNIT_OK(ao_workflow_body(norm) == norm, "body: of a bare workflow is itself");
	json_object_put(norm);
	json_object_put(want);
	json_object_put(def);

	/* nested: parallel children, a loop's step, a parallel inside a loop */
	def = yaml("{steps: [{id: p, kind: parallel, steps: [{id: c, kind: tool, tool: t}]},"
			   " {id: l, kind: loop, for_each: x, step: {id: b, kind: parallel,"
			   "  steps: [{id: d, kind: loop, while: w, step: {id: e, kind: llm, prompt: p}}]}}]}");
	norm = ao_workflow_normalize(def, NULL);
	want = yaml("{steps: [{id: p, type: parallel, steps: [{id: c, type: tool, tool: t}]},"
				" {id: l, type: loop, for_each: x, step: {id: b, type: parallel,"
				"  steps: [{id: d, type: loop, while: w, step: {id: e, type: llm, prompt: p}}]}}]}");
	UNIT_OK(ao_json_equal(norm, want), "normalize: kind renamed in nested steps, loop steps, loops in parallels");
	json_object_put(norm);
	json_object_put(want);
	json_object_put(def);

	/* type wins over kind; kind then stays for the schema to refuse */
	def = yaml("{steps: [{id: a, type: tool, kind: llm, tool: t}]}");
	norm = ao_workflow_normalize(def, NULL);
	want = yaml("{steps: [{id: a, type: tool, kind: llm, tool: t}]}");
	UNIT_OK(ao_json_equal(norm, want), "normalize: with type and kind both kept");
	json_object_put(norm);
	json_object_put(want);
	json_object_put(def);
	expect_wf("kind next to type", "{steps: [{id: a, type: tool, kind: llm, tool: t}]}",
			  "/steps/0/kind: additional property \"kind\" is not allowed\n");

	/* things that are not workflows pass through */
	def = yaml("[1, {kind: x}]");
	norm = ao_workflow_normalize(def, &base);
	UNIT_STREQ(json_text(norm), "[1,{\"kind\":\"x\"}]", "normalize: an array is copied as is");
	UNIT_STREQ(base, "", "normalize: an array has base path \"\"");
	json_object_put(norm);
	json_object_put(def);
	def = yaml("{steps: [5, {id: a, kind: tool}], kind: top}");
	norm = ao_workflow_normalize(def, NULL);
	UNIT_STREQ(json_text(norm), "{\"steps\":[5,{\"id\":\"a\",\"type\":\"tool\"}],\"kind\":\"top\"}",
			   "normalize: non-object steps skipped, only steps are renamed");
	json_object_put(norm);
	json_object_put(def);

	/* a JSON null document (NULL in json-c) must not crash */
	base = "unset";
	UNIT_OK(ao_workflow_normalize(NULL, &base) == NULL, "normalize: JSON null gives JSON null");
	UNIT_STREQ(base, "", "normalize: JSON null has base path \"\"");
	UNIT_OK(ao_workflow_body(NULL) == NULL, "body: of JSON null is JSON null");
}

/* ---------------------------------------------------------------------
 * ao_workflow_check: documents and schema problems
 * --------------------------------------------------------------------- */

static void
test_check_documents(void)
{
	static const char *const samples[] = {
		"data-analysis", "expense-approval", "order-triage", "regional-report", NULL
	};

	for (int i = 0; samples[i]; i++)
	{
		char		path[FILE_MAX];
		char		label[200];
		char	   *text;
		json_object *def;
		json_object *norm;
		const char *base = NULL;
		ao_buf		got;

		snprintf(path, sizeof(path), "%s/../samples/workflows/%s.yaml", schemas_dir, samples[i]);
		text = read_file(path, NULL);
		snprintf(label, sizeof(label), "sample %s: readable", samples[i]);
		if (!UNIT_OK(text != NULL, label))
			continue;
		def = yaml(text);
		norm = ao_workflow_normalize(def, &base);
		ao_buf_init(&got);
		snprintf(label, sizeof(label), "sample %s: valid", samples[i]);
		ao_workflow_check(norm, fixed_schema, NULL, collect, &got);
		UNIT_STREQ(got.data, "", label);
		snprintf(label, sizeof(label), "sample %s: wrapper form", samples[i]);
		UNIT_STREQ(base, "/workflow", label);
		ao_buf_free(&got);
		json_object_put(norm);
		json_object_put(def);
		free(text);
	}

	expect_wf("minimal bare workflow", "{steps: [{id: a, type: tool, tool: t}]}", "");
	expect_wf("minimal wrapped workflow",
			  "{workflow: {name: w, version: 1, steps: [{id: a, kind: tool, tool: t}]}}", "");

	/* the schema is checked first, and alone */
	expect_wf("schema problems hide graph problems",
			  "{steps: [{id: a, type: tool, depends_on: [zz], input: '${nope.output}'},"
			  " {id: a, type: tool, tool: t}]}",
			  "/steps/0: missing required property \"tool\"\n");
	expect_wf("schema problem under the wrapper",
			  "{workflow: {steps: [{id: a, type: tool}]}}",
			  "/workflow/steps/0: missing required property \"tool\"\n");
	expect_wf("wrapper with extra members", "{workflow: {steps: [{id: a, type: tool, tool: t}]}, x: 1}",
			  "/x: additional property \"x\" is not allowed\n");
	expect_wf("JSON null", "null", ": expected type object, got null\n");

	/* without a schema, only the shape the graph check needs */
	expect("no schema: not an object", NULL, "[1]", ": a workflow must be a JSON object\n");
	expect("no schema: JSON null", NULL, "null", ": a workflow must be a JSON object\n");
	expect("no schema: wrapper holding a string", NULL, "{workflow: x}",
		   "/workflow: a workflow must be a JSON object\n");
	expect("no schema: no steps", NULL, "{name: x}", "");
	expect("no schema: steps without ids are ignored", NULL,
		   "{steps: [{type: tool}, 7, {id: a, depends_on: [b]}]}",
		   "/steps/2/depends_on/0: unknown step \"b\" in depends_on\n");
}

/* ---------------------------------------------------------------------
 * ao_workflow_check: graph problems
 * --------------------------------------------------------------------- */

static void
test_check_graph(void)
{
	expect_wf("duplicate ids at top level",
			  "{steps: [{id: a, type: tool, tool: t}, {id: a, type: tool, tool: t}]}",
			  "/steps/1: duplicate step id \"a\" (first defined at /steps/0)\n");
	expect_wf("duplicate id in a parallel",
			  "{workflow: {steps: [{id: a, type: tool, tool: t},"
			  " {id: p, type: parallel, steps: [{id: a, type: tool, tool: t}]}]}}",
			  "/workflow/steps/1/steps/0: duplicate step id \"a\" (first defined at /workflow/steps/0)\n");
	expect_wf("duplicate id between a loop body and a later step",
			  "{steps: [{id: l, type: loop, for_each: '${input.xs}', step: {id: b, type: tool, tool: t}},"
			  " {id: b, type: tool, tool: t}]}",
			  "/steps/1: duplicate step id \"b\" (first defined at /steps/0/step)\n");
	expect_wf("duplicate id between two nested groups",
			  "{steps: [{id: p, type: parallel, steps: [{id: c, type: tool, tool: t}]},"
			  " {id: q, type: parallel, steps: [{id: c, type: tool, tool: t}]}]}",
			  "/steps/1/steps/0: duplicate step id \"c\" (first defined at /steps/0/steps/0)\n");
	expect_wf("a parallel's child with its parent's id",
			  "{steps: [{id: p, type: parallel, steps: [{id: p, type: tool, tool: t}]}]}",
			  "/steps/0/steps/0: duplicate step id \"p\" (first defined at /steps/0)\n");

	expect_wf("unknown dependency",
			  "{workflow: {steps: [{id: a, type: tool, tool: t},"
			  " {id: b, type: tool, tool: t, depends_on: [a, zz]}]}}",
			  "/workflow/steps/1/depends_on/1: unknown step \"zz\" in depends_on\n");
	expect_wf("self dependency",
			  "{steps: [{id: a, type: tool, tool: t, depends_on: [a]}]}",
			  "/steps/0/depends_on/0: step \"a\" depends on itself\n");
	expect_wf("two-step cycle",
			  "{steps: [{id: a, type: tool, tool: t, depends_on: [b]},"
			  " {id: b, type: tool, tool: t, depends_on: [a]}]}",
			  "/steps/0: cycle: a -> b -> a\n");
	expect_wf("three-step cycle under the wrapper",
			  "{workflow: {steps: [{id: s, type: tool, tool: t},"
			  " {id: a, type: tool, tool: t, depends_on: [s, c]},"
			  " {id: b, type: tool, tool: t, depends_on: [a]},"
			  " {id: c, type: tool, tool: t, depends_on: [b]}]}}",
			  "/workflow/steps/1: cycle: a -> c -> b -> a\n");
	expect_wf("cycle through an implicit branch edge",
			  "{steps: [{id: a, type: tool, tool: t},"
			  " {id: br, type: branch, depends_on: [a], cases: [{when: '$.x', then: [a]}]}]}",
			  "/steps/0: cycle: a -> br -> a\n");

	expect_wf("nested step declaring depends_on",
			  "{steps: [{id: a, type: tool, tool: t},"
			  " {id: p, type: parallel, depends_on: [a], steps: [{id: c, type: tool, tool: t, depends_on: [a]}]}]}",
			  "/steps/1/steps/0/depends_on: a nested step cannot declare depends_on; it starts with its parent\n");
	expect_wf("loop body declaring depends_on",
			  "{workflow: {steps: [{id: a, type: tool, tool: t},"
			  " {id: l, type: loop, depends_on: [a], while: '$.x', max_iterations: 3,"
			  "  step: {id: b, type: tool, tool: t, depends_on: [a]}}]}}",
			  "/workflow/steps/1/step/depends_on: a nested step cannot declare depends_on; it starts with its parent\n");
	expect_wf("depending on a nested step",
			  "{steps: [{id: p, type: parallel, steps: [{id: c, type: tool, tool: t}]},"
			  " {id: x, type: tool, tool: t}, {id: b, type: tool, tool: t, depends_on: [x, c]}]}",
			  "/steps/2/depends_on/1: cannot depend on a nested step; depend on its top-level parent instead\n");
	expect_wf("depending on a loop body",
			  "{workflow: {steps: [{id: l, type: loop, for_each: '${input.xs}', step: {id: c, type: tool, tool: t}},"
			  " {id: b, type: tool, tool: t, depends_on: [c]}]}}",
			  "/workflow/steps/1/depends_on/0: cannot depend on a nested step; depend on its top-level parent instead\n");

	/* branch targets */
	expect_wf("branch targets: valid",
			  "{steps: [{id: a, type: tool, tool: t},"
			  " {id: br, type: branch, depends_on: [a], cases: [{when: '$.x', then: [b, c]}], else: [d]},"
			  " {id: b, type: tool, tool: t}, {id: c, type: tool, tool: t, depends_on: [br]},"
			  " {id: d, type: tool, tool: t}]}",
			  "");
	expect_wf("branch target unknown (then and else)",
			  "{workflow: {steps: [{id: br, type: branch, cases: [{when: '$.x', then: [b]}, {when: '$.y', then: [zz]}],"
			  " else: [b, yy]}, {id: b, type: tool, tool: t}]}}",
			  "/workflow/steps/0/cases/1/then/0: unknown step \"zz\" in branch\n"
			  "/workflow/steps/0/else/1: unknown step \"yy\" in branch\n");
	expect_wf("branch choosing itself",
			  "{steps: [{id: br, type: branch, cases: [{when: '$.x', then: [br]}], else: [br]}]}",
			  "/steps/0/cases/0/then/0: branch \"br\" cannot choose itself\n"
			  "/steps/0/else/0: branch \"br\" cannot choose itself\n");
	expect_wf("branch choosing a nested step",
			  "{steps: [{id: br, type: branch, cases: [{when: '$.x', then: [p]}], else: [c]},"
			  " {id: p, type: parallel, steps: [{id: c, type: tool, tool: t}]}]}",
			  "/steps/0/else/0: branch target \"c\" is a nested step; choose its top-level parent instead\n");
	expect_wf("nested branch choosing a top-level step",
			  "{steps: [{id: p, type: parallel, steps: [{id: br, type: branch,"
			  " cases: [{when: '$.x', then: [b]}]}]}, {id: b, type: tool, tool: t}]}",
			  "/steps/0/steps/0/cases/0/then/0: branch \"br\" is a nested step and cannot choose \"b\"; "
			  "only a top-level branch can choose steps\n");
	expect_wf("nested branch choosing a sibling",
			  "{steps: [{id: p, type: parallel, steps: [{id: br, type: branch,"
			  " cases: [{when: '$.x', then: [c]}]}, {id: c, type: tool, tool: t}]}]}",
			  "/steps/0/steps/0/cases/0/then/0: branch target \"c\" is a nested step; choose its top-level parent instead\n");

	/* several kinds at once: nesting rules, then the DAG's (steps in order, cycles last) */
	expect_wf("problems: nesting rules, then the DAG's in step order, cycles last",
			  "{steps: [{id: a, type: tool, tool: t, depends_on: [b, zz]},"
			  " {id: b, type: tool, tool: t, depends_on: [a]},"
			  " {id: p, type: parallel, steps: [{id: c, type: tool, tool: t, depends_on: [a]}]},"
			  " {id: a, type: tool, tool: t}]}",
			  "/steps/2/steps/0/depends_on: a nested step cannot declare depends_on; it starts with its parent\n"
			  "/steps/0/depends_on/1: unknown step \"zz\" in depends_on\n"
			  "/steps/3: duplicate step id \"a\" (first defined at /steps/0)\n"
			  "/steps/0: cycle: a -> b -> a\n");
}

/* ---------------------------------------------------------------------
 * ao_workflow_check: references
 * --------------------------------------------------------------------- */

static void
test_check_references(void)
{
	expect_wf("reference to an unknown step",
			  "{workflow: {steps: [{id: a, type: tool, tool: t, input: {x: '${zz.output}'}}]}}",
			  "/workflow/steps/0/input/x: reference to unknown step \"zz\"\n");
	expect_wf("reference to a step that is not a dependency",
			  "{steps: [{id: a, type: tool, tool: t}, {id: b, type: tool, tool: t, input: {x: '${a.output.v}'}}]}",
			  "/steps/1/input/x: step \"b\" references \"a\", which is not among its dependencies; add \"a\" to depends_on\n");
	expect_wf("reference to a later step that depends on this one",
			  "{steps: [{id: a, type: tool, tool: t, input: ['${b.output}']},"
			  " {id: b, type: tool, tool: t, depends_on: [a]}]}",
			  "/steps/0/input/0: step \"a\" references \"b\", which is not among its dependencies; add \"b\" to depends_on\n");
	expect_wf("reference to a transitive dependency",
			  "{steps: [{id: a, type: tool, tool: t}, {id: b, type: tool, tool: t, depends_on: [a]},"
			  " {id: c, type: llm, depends_on: [b], prompt: 'use ${a.output} and ${steps.b.status}'}]}",
			  "");
	expect_wf("reference to oneself",
			  "{steps: [{id: a, type: tool, tool: t, input: '${a.output}'}]}",
			  "/steps/0/input: step \"a\" cannot reference \"a\": they run in the same step group\n");
	expect_wf("reference between siblings of a parallel",
			  "{workflow: {steps: [{id: p, type: parallel, steps: [{id: c1, type: tool, tool: t},"
			  " {id: c2, type: tool, tool: t, input: {v: '${c1.output}'}}]}]}}",
			  "/workflow/steps/0/steps/1/input/v: step \"c2\" cannot reference \"c1\": they run in the same step group\n");
	expect_wf("loop body referencing its loop",
			  "{steps: [{id: l, type: loop, for_each: '${input.xs}', step: {id: b, type: tool, tool: t,"
			  " input: '${l.output}'}}]}",
			  "/steps/0/step/input: step \"b\" cannot reference \"l\": they run in the same step group\n");
	expect_wf("nested step referencing what its parent does not depend on",
			  "{steps: [{id: a, type: tool, tool: t}, {id: p, type: parallel, steps: [{id: c, type: tool, tool: t,"
			  " input: '${a.output}'}]}]}",
			  "/steps/1/steps/0/input: step \"p\" references \"a\", which is not among its dependencies; add \"a\" to depends_on\n");
	expect_wf("nested step referencing its parent's dependency",
			  "{steps: [{id: a, type: tool, tool: t}, {id: p, type: parallel, depends_on: [a],"
			  " steps: [{id: c, type: tool, tool: t, input: '${a.output}'}]}]}",
			  "");
	expect_wf("reference to a nested step of a dependency",
			  "{steps: [{id: p, type: parallel, steps: [{id: c, type: tool, tool: t}]},"
			  " {id: b, type: tool, tool: t, depends_on: [p], input: '${c.output}'}]}",
			  "");
	expect_wf("reference to a nested step of a non-dependency",
			  "{steps: [{id: p, type: parallel, steps: [{id: c, type: tool, tool: t}]},"
			  " {id: b, type: tool, tool: t, input: 'x ${c.output} y'}]}",
			  "/steps/1/input: step \"b\" references \"c\", which is not among its dependencies; add \"p\" to depends_on\n");
	expect_wf("branch target referencing the branch's dependency",
			  "{steps: [{id: a, type: tool, tool: t}, {id: br, type: branch, depends_on: [a],"
			  " cases: [{when: '$.x', then: [b]}]}, {id: b, type: tool, tool: t, input: '${a.output}'}]}",
			  "");

	/* ${item} and ${index} */
	expect_wf("item outside a loop",
			  "{steps: [{id: a, type: tool, tool: t, input: {x: '${item}', i: '${index}'}}]}",
			  "/steps/0/input/x: ${item} is only available inside a loop's step\n"
			  "/steps/0/input/i: ${index} is only available inside a loop's step\n");
	expect_wf("item in the loop step's own for_each",
			  "{steps: [{id: l, type: loop, for_each: '${item.xs}', step: {id: b, type: tool, tool: t}}]}",
			  "/steps/0/for_each: ${item} is only available inside a loop's step\n");
	expect_wf("item inside a loop's step",
			  "{steps: [{id: l, type: loop, for_each: '${input.xs}',"
			  " step: {id: b, type: llm, prompt: 'item ${index}: ${item.name}'}}]}",
			  "");
	expect_wf("item inside a parallel inside a loop",
			  "{steps: [{id: l, type: loop, for_each: '${input.xs}',"
			  " step: {id: p, type: parallel, steps: [{id: c, type: tool, tool: t, input: '${item}'}]}}]}",
			  "");
	expect_wf("item in a parallel's child outside any loop",
			  "{steps: [{id: p, type: parallel, steps: [{id: c, type: tool, tool: t, input: ['${item}']}]}]}",
			  "/steps/0/steps/0/input/0: ${item} is only available inside a loop's step\n");

	/* the workflow output */
	expect_wf("workflow output may reference any step",
			  "{workflow: {steps: [{id: a, type: tool, tool: t}, {id: p, type: parallel,"
			  " steps: [{id: c, type: tool, tool: t}]}], output: {a: '${a.output}', c: '${c.output}', i: '${input.x}'}}}",
			  "");
	expect_wf("workflow output referencing an unknown step",
			  "{workflow: {steps: [{id: a, type: tool, tool: t}], output: {x: ['${zz.output}']}}}",
			  "/workflow/output/x/0: reference to unknown step \"zz\"\n");
	expect_wf("workflow output using item",
			  "{steps: [{id: a, type: tool, tool: t}], output: '${item}'}",
			  "/output: ${item} is only available inside a loop's step\n");

	/* where references are (and are not) looked for */
	expect_wf("references in prompt, system, messages, compensate",
			  "{steps: [{id: a, type: llm, prompt: '${x1.output}', system: '${x2.output}',"
			  " messages: [{role: user, content: '${x3.output}'}],"
			  " compensate: {tool: t, input: {v: '${x4.output}'}}}]}",
			  "/steps/0/prompt: reference to unknown step \"x1\"\n"
			  "/steps/0/system: reference to unknown step \"x2\"\n"
			  "/steps/0/messages/0/content: reference to unknown step \"x3\"\n"
			  "/steps/0/compensate/input/v: reference to unknown step \"x4\"\n");
	expect_wf("conditions, schemas, ids and lock are not templates",
			  "{steps: [{id: a, type: tool, tool: t, when: '$.a ? (@ == \"${zz.output}\")',"
			  " lock: '${zz.output}', output_schema: {const: '${zz.output}'}},"
			  " {id: br, type: branch, depends_on: [a], cases: [{when: '${zz.output}', then: [l]}]},"
			  " {id: l, type: loop, while: '${zz.output}', step: {id: u, type: user_input, prompt: p,"
			  "  schema: {const: '${zz.output}'}}}]}",
			  "");
	expect_wf("memory and input references are always known",
			  "{steps: [{id: a, type: tool, tool: t, input: ['${memory.k}', '${input.x.y[0]}']}]}",
			  "");
	expect_wf("escaped reference is not a reference",
			  "{steps: [{id: a, type: tool, tool: t, input: '$${zz.output}'}]}",
			  "");
	expect_wf("template syntax errors",
			  "{steps: [{id: a, type: tool, tool: t, input: {u: 'x ${a.output', e: '${}', b: '${a.bad}'}}]}",
			  "/steps/0/input/u: unterminated reference: \"${\" without a closing \"}\"\n"
			  "/steps/0/input/e: empty reference ${}\n"
			  "/steps/0/input/b: invalid reference ${a.bad}: a step reference must continue with .output, .status or .error\n");
	expect_wf("references are not judged on a broken graph",
			  "{steps: [{id: a, type: tool, tool: t, depends_on: [zz], input: '${nope.output}'}]}",
			  "/steps/0/depends_on/0: unknown step \"zz\" in depends_on\n");
}

/* ---------------------------------------------------------------------
 * ao_workflow_check: nothing an LLM writes becomes SQL
 * --------------------------------------------------------------------- */

#define SQL_INPUT "database.query needs an input object with a literal \"query\" string\n"
#define SQL_REF "a ${...} reference cannot be used inside a SQL statement: " \
	"pass values as bound parameters in \"params\" ($1, $2, ...)\n"
#define SQL_PARAMS "\"params\" must be an array of values bound to $1, $2, ...\n"
#define SQL_MODEL_TOOL "database.query cannot be offered to a model as a tool\n"

static void
test_check_sql(void)
{
	/* accepted forms */
	expect_wf("sql: literal query",
			  "{steps: [{id: q, type: tool, tool: database.query, input: {query: 'SELECT * FROM sales'}}]}",
			  "");
	expect_wf("sql: literal query, params with templates",
			  "{workflow: {steps: [{id: a, type: tool, tool: t},"
			  " {id: q, type: tool, tool: database.query, depends_on: [a],"
			  "  input: {query: 'SELECT * FROM t WHERE id = $1 AND region = $2 AND n > $3',"
			  "   params: ['${input.id}', '${a.output.region}', 3, null, {x: '${memory.k}'}]}}]}}",
			  "");
	expect_wf("sql: empty params",
			  "{steps: [{id: q, type: tool, tool: database.query, input: {query: 'SELECT 1', params: []}}]}",
			  "");
	expect_wf("sql: dollar quotes, positional parameters and an escaped $${ are not references",
			  "{steps: [{id: q, type: tool, tool: database.query,"
			  " input: {query: 'SELECT $$a$$, $tag$b$tag$, $1, ''$${not.a.reference}''', params: [x]}}]}",
			  "");
	expect_wf("sql: compensate with a literal query, params referencing its own step",
			  "{steps: [{id: w, type: tool, tool: t,"
			  " compensate: {tool: database.query, input: {query: 'SELECT undo($1)', params: ['${w.output.id}']}}}]}",
			  "");
	expect_wf("sql: in a parallel's child and a loop's body, items as params",
			  "{steps: [{id: p, type: parallel, steps: [{id: c, type: tool, tool: database.query,"
			  "  input: {query: 'SELECT 1'}}]},"
			  " {id: l, type: loop, for_each: '${input.xs}', step: {id: b, type: tool, tool: database.query,"
			  "  input: {query: 'SELECT * FROM t WHERE k = $1 AND i = $2', params: ['${item}', '${index}']}}}]}",
			  "");
	expect_wf("sql: other tools may have a templated query member",
			  "{steps: [{id: a, type: tool, tool: db.query, input: {query: '${input.q}'}},"
			  " {id: b, type: tool, tool: t, compensate: {tool: undo, input: '${input.x}'}}]}",
			  "");
	expect_wf("sql: an llm step offering other tools",
			  "{steps: [{id: m, type: llm, prompt: p, tools: [chart.create, database.query.x, report.generate]}]}",
			  "");

	/* an llm step without a prompt says what is missing */
	expect_wf("llm step without a prompt",
			  "{steps: [{id: a, type: llm}]}",
			  "/steps/0: does not match any of the allowed alternatives: missing required property \"prompt\"; "
			  "or missing required property \"messages\"; or missing required property \"input\"\n");

	/* no input (or no query): not a way in for SQL; it fails at run time */
	expect_wf("sql: no input",
			  "{steps: [{id: q, type: tool, tool: database.query}]}",
			  "");

	/* refused: no literal query */
	expect_wf("sql: input is a whole template",
			  "{workflow: {steps: [{id: a, type: tool, tool: t},"
			  " {id: q, type: tool, tool: database.query, depends_on: [a], input: '${a.output}'}]}}",
			  "/workflow/steps/1/input: " SQL_INPUT);
	expect_wf("sql: input is a string, an array, null",
			  "{steps: [{id: a, type: tool, tool: database.query, input: 'SELECT 1'},"
			  " {id: b, type: tool, tool: database.query, input: ['SELECT 1']},"
			  " {id: c, type: tool, tool: database.query, input: null}]}",
			  "/steps/0/input: " SQL_INPUT
			  "/steps/1/input: " SQL_INPUT
			  "/steps/2/input: " SQL_INPUT);
	expect_wf("sql: input without a query",
			  "{steps: [{id: q, type: tool, tool: database.query, input: {sql: 'SELECT 1', params: [1]}}]}",
			  "");
	expect_wf("sql: query not a string",
			  "{steps: [{id: a, type: tool, tool: database.query, input: {query: 5}},"
			  " {id: b, type: tool, tool: database.query, input: {query: [SELECT, 1]}},"
			  " {id: c, type: tool, tool: database.query, input: {query: null}},"
			  " {id: d, type: tool, tool: database.query, input: {query: {text: 'SELECT 1'}}}]}",
			  "/steps/0/input/query: " SQL_INPUT
			  "/steps/1/input/query: " SQL_INPUT
			  "/steps/2/input/query: " SQL_INPUT
			  "/steps/3/input/query: " SQL_INPUT);

	/* refused: ${...} in the statement, and only that message for it */
	expect_wf("sql: reference inside the query",
			  "{steps: [{id: q, type: tool, tool: database.query,"
			  " input: {query: 'SELECT * FROM t WHERE id = ${input.id}'}}]}",
			  "/steps/0/input/query: " SQL_REF);
	expect_wf("sql: the query is a whole reference",
			  "{workflow: {steps: [{id: q, type: tool, tool: database.query, input: {query: '${input.query}'}}]}}",
			  "/workflow/steps/0/input/query: " SQL_REF);
	expect_wf("sql: reference to a model's output inside the query",
			  "{steps: [{id: m, type: llm, prompt: 'write SQL'},"
			  " {id: q, type: tool, tool: database.query, depends_on: [m], input: {query: '${m.output}'}}]}",
			  "/steps/1/input/query: " SQL_REF);
	expect_wf("sql: unresolvable references inside the query give the SQL message only",
			  "{steps: [{id: q, type: tool, tool: database.query,"
			  " input: {query: 'SELECT ${ghost.output}, ${item}'}}]}",
			  "/steps/0/input/query: " SQL_REF);
	expect_wf("sql: broken references inside the query give the SQL message only",
			  "{steps: [{id: a, type: tool, tool: database.query, input: {query: 'SELECT ${}'}},"
			  " {id: b, type: tool, tool: database.query, input: {query: 'SELECT ${a.bad}'}},"
			  " {id: c, type: tool, tool: database.query, input: {query: 'SELECT ''${'''}}]}",
			  "/steps/0/input/query: " SQL_REF
			  "/steps/1/input/query: " SQL_REF
			  "/steps/2/input/query: " SQL_REF);
	expect_wf("sql: an escape followed by a real reference",
			  "{steps: [{id: q, type: tool, tool: database.query,"
			  " input: {query: 'SELECT ''$${a}'', ${input.b}'}}]}",
			  "/steps/0/input/query: " SQL_REF);
	expect_wf("sql: reported on a broken graph too, before the graph's problems",
			  "{steps: [{id: q, type: tool, tool: database.query, depends_on: [zz],"
			  " input: {query: 'SELECT ${input.x}'}}]}",
			  "/steps/0/input/query: " SQL_REF
			  "/steps/0/depends_on/0: unknown step \"zz\" in depends_on\n");

	/* params */
	expect_wf("sql: params not an array",
			  "{steps: [{id: a, type: tool, tool: database.query, input: {query: 'SELECT $1', params: {x: 1}}},"
			  " {id: b, type: tool, tool: database.query, input: {query: 'SELECT $1', params: '${input.ps}'}},"
			  " {id: c, type: tool, tool: database.query, input: {query: 'SELECT $1', params: 1}}]}",
			  "/steps/0/input/params: " SQL_PARAMS
			  "/steps/1/input/params: " SQL_PARAMS
			  "/steps/2/input/params: " SQL_PARAMS);
	expect_wf("sql: a reference in the query and params not an array",
			  "{steps: [{id: q, type: tool, tool: database.query,"
			  " input: {query: 'SELECT ${input.x}', params: x}}]}",
			  "/steps/0/input/query: " SQL_REF
			  "/steps/0/input/params: " SQL_PARAMS);
	expect_wf("sql: params templates are still checked as references",
			  "{steps: [{id: q, type: tool, tool: database.query,"
			  " input: {query: 'SELECT $1, $2', params: ['${ghost.output}', '${item}']}}]}",
			  "/steps/0/input/params/0: reference to unknown step \"ghost\"\n"
			  "/steps/0/input/params/1: ${item} is only available inside a loop's step\n");

	/* compensate actions */
	expect_wf("sql: compensate with a reference in its query",
			  "{workflow: {steps: [{id: w, type: tool, tool: t,"
			  " compensate: {tool: database.query, input: {query: 'DELETE FROM t WHERE id = ${w.output.id}'}}}]}}",
			  "/workflow/steps/0/compensate/input/query: " SQL_REF);
	expect_wf("sql: compensate without input, with bad params",
			  "{steps: [{id: w, type: tool, tool: t, compensate: {tool: database.query}},"
			  " {id: v, type: tool, tool: t, compensate: {tool: database.query,"
			  "  input: {query: 'SELECT 1', params: {}}}}]}",
			  "/steps/1/compensate/input/params: " SQL_PARAMS);
	expect_wf("sql: the step and its compensate action both refused",
			  "{steps: [{id: q, type: tool, tool: database.query, input: {query: 'SELECT ${input.a}'},"
			  " compensate: {tool: database.query, input: {query: 'SELECT ${input.b}'}}}]}",
			  "/steps/0/input/query: " SQL_REF
			  "/steps/0/compensate/input/query: " SQL_REF);

	/* nested steps */
	expect_wf("sql: a reference in a parallel's child's query",
			  "{steps: [{id: p, type: parallel, steps: [{id: c1, type: tool, tool: t},"
			  " {id: c2, type: tool, tool: database.query, input: {query: 'SELECT ${input.x}'}}]}]}",
			  "/steps/0/steps/1/input/query: " SQL_REF);
	expect_wf("sql: item in a loop body's query",
			  "{steps: [{id: l, type: loop, for_each: '${input.xs}', step: {id: b, type: tool,"
			  " tool: database.query, input: {query: 'SELECT * FROM t WHERE k = ${item.k}'}}}]}",
			  "/steps/0/step/input/query: " SQL_REF);
	expect_wf("sql: a parallel in a loop: no input, compensate with a reference",
			  "{workflow: {steps: [{id: l, type: loop, while: '$.more', max_iterations: 3,"
			  " step: {id: p, type: parallel, steps: [{id: c, type: tool, tool: database.query},"
			  "  {id: d, type: tool, tool: t, compensate: {tool: database.query, input: {query: '${item}'}}}]}}]}}",
			  "/workflow/steps/0/step/steps/1/compensate/input/query: " SQL_REF);

	/* llm tools */
	expect_wf("sql: database.query offered to a model",
			  "{steps: [{id: m, type: llm, prompt: p, tools: [chart.create, database.query]}]}",
			  "/steps/0/tools/1: " SQL_MODEL_TOOL);
	expect_wf("sql: database.query offered to a model in nested steps",
			  "{workflow: {steps: [{id: p, type: parallel, steps: [{id: m, type: llm, prompt: p,"
			  "  tools: [database.query]}]},"
			  " {id: l, type: loop, for_each: '${input.xs}', step: {id: n, type: llm, prompt: '${item}',"
			  "  tools: [a, b, database.query]}}]}}",
			  "/workflow/steps/0/steps/0/tools/0: " SQL_MODEL_TOOL
			  "/workflow/steps/1/step/tools/2: " SQL_MODEL_TOOL);

	/* plans: the same rules */
	expect("sql: plan with a literal query", plan_schema,
		   "{goal: g, steps: [{id: q, type: tool, tool: database.query,"
		   " input: {query: 'SELECT * FROM t WHERE id = $1', params: ['${input.id}']}}]}",
		   "");
	expect("sql: plan with references in and as the query", plan_schema,
		   "{goal: g, steps: [{id: m, type: llm, prompt: 'write SQL'},"
		   " {id: q, type: tool, tool: database.query, depends_on: [m], input: {query: '${m.output}'}},"
		   " {id: r, type: tool, tool: database.query, input: '${input.q}'}]}",
		   "/steps/1/input/query: " SQL_REF
		   "/steps/2/input: " SQL_INPUT);

	/* the tool hook still sees database.query */
	expect_hooks("sql: hooks still called for database.query",
				 "{steps: [{id: q, type: tool, tool: database.query, input: {query: 'SELECT 1'},"
				 " compensate: {tool: database.query, input: {query: 'SELECT 2'}}}]}",
				 "tool /steps/0/tool database.query\n"
				 "tool /steps/0/compensate/tool database.query\n");
}

/* ---------------------------------------------------------------------
 * hooks and embedded schemas
 * --------------------------------------------------------------------- */

static void
test_check_hooks(void)
{
	expect_hooks("hooks: every tool and every condition",
				 "{workflow: {steps: ["
				 " {id: a, type: tool, tool: db.query, when: '$.input.go == true',"
				 "  compensate: {tool: db.undo}},"
				 " {id: m, type: llm, prompt: p, tools: [chart.create, report.generate], depends_on: [a]},"
				 " {id: br, type: branch, depends_on: [m], cases: [{when: '$.x > 1', then: [p]},"
				 "  {when: '$.x > 2', then: [l]}], else: [u]},"
				 " {id: p, type: parallel, steps: [{id: c, type: tool, tool: t.c, when: '$.c'}]},"
				 " {id: l, type: loop, while: '$.more', step: {id: b, type: tool, tool: t.b,"
				 "  compensate: {tool: t.b.undo}}},"
				 " {id: u, type: user_input, prompt: ok?}]}}",
				 "tool /workflow/steps/0/tool db.query\n"
				 "tool /workflow/steps/0/compensate/tool db.undo\n"
				 "cond /workflow/steps/0/when $.input.go == true\n"
				 "tool /workflow/steps/1/tools/0 chart.create\n"
				 "tool /workflow/steps/1/tools/1 report.generate\n"
				 "cond /workflow/steps/2/cases/0/when $.x > 1\n"
				 "cond /workflow/steps/2/cases/1/when $.x > 2\n"
				 "tool /workflow/steps/3/steps/0/tool t.c\n"
				 "cond /workflow/steps/3/steps/0/when $.c\n"
				 "cond /workflow/steps/4/while $.more\n"
				 "tool /workflow/steps/4/step/tool t.b\n"
				 "tool /workflow/steps/4/step/compensate/tool t.b.undo\n");
	expect_hooks("hooks: bare form paths",
				 "{steps: [{id: a, type: tool, tool: x}]}",
				 "tool /steps/0/tool x\n");

	/* one hook only; no hooks for a schema-invalid document */
	{
		json_object *def = yaml("{steps: [{id: a, type: tool, tool: x, when: '$.w'}]}");
		json_object *norm = ao_workflow_normalize(def, NULL);
		json_object *bad = yaml("{steps: [{id: a, type: tool, tool: x, when: '$.w', bogus: 1}]}");
		ao_buf		calls;
		ao_buf		problems;
		ao_workflow_hooks hooks = {NULL, hook_condition, NULL};

		ao_buf_init(&calls);
		ao_buf_init(&problems);
		hooks.arg = &calls;
		ao_workflow_check(norm, fixed_schema, &hooks, collect, &problems);
		UNIT_STREQ(calls.data, "cond /steps/0/when $.w\n", "hooks: a NULL tool hook is skipped");
		ao_buf_reset(&calls);
		hooks.tool = hook_tool;
		hooks.condition = NULL;
		ao_workflow_check(norm, fixed_schema, &hooks, collect, &problems);
		UNIT_STREQ(calls.data, "tool /steps/0/tool x\n", "hooks: a NULL condition hook is skipped");
		ao_buf_reset(&calls);
		hooks.condition = hook_condition;
		ao_workflow_check(bad, fixed_schema, &hooks, collect, &problems);
		UNIT_STREQ(calls.data, "", "hooks: not called for a schema-invalid document");
		UNIT_STREQ(problems.data, "/steps/0/bogus: additional property \"bogus\" is not allowed\n",
				   "hooks: the schema problem is reported");
		ao_buf_free(&calls);
		ao_buf_free(&problems);
		json_object_put(bad);
		json_object_put(norm);
		json_object_put(def);
	}
}

static void
test_check_embedded_schemas(void)
{
	expect_wf("embedded schemas: valid ones",
			  "{workflow: {input_schema: {type: object, properties: {x: {type: integer}}},"
			  " steps: [{id: a, type: llm, prompt: p, response_schema: {type: object}, output_schema: true},"
			  " {id: u, type: user_input, prompt: p, schema: {enum: [1, 2]}}]}}",
			  "");
	expect_wf("embedded schemas: input_schema",
			  "{workflow: {input_schema: {type: 5}, steps: [{id: a, type: tool, tool: t}]}}",
			  "/workflow/input_schema/type: type must be a type name or an array of type names\n");
	expect_wf("embedded schemas: output_schema, response_schema, schema",
			  "{steps: [{id: a, type: llm, prompt: p, output_schema: {minLength: -1},"
			  " response_schema: {properties: {x: {pattern: '('}}}},"
			  " {id: u, type: user_input, prompt: p, schema: {$ref: '#/definitions/nope'}}]}",
			  "/steps/0/output_schema/minLength: minLength must be a non-negative integer\n"
			  "/steps/0/response_schema/properties/x/pattern: invalid regular expression \"(\": missing closing parenthesis at offset 1\n"
			  "/steps/1/schema/$ref: $ref \"#/definitions/nope\" cannot be resolved\n");
	expect_wf("embedded schemas: in nested steps",
			  "{steps: [{id: l, type: loop, for_each: '${input.xs}', step: {id: p, type: parallel,"
			  " steps: [{id: c, type: tool, tool: t, output_schema: {required: x}}]}}]}",
			  "/steps/0/step/steps/0/output_schema/required: required must be an array of strings\n");
	expect_wf("embedded schemas: remote $ref refused",
			  "{steps: [{id: a, type: tool, tool: t, output_schema: {$ref: 'http://example.com/s.json'}}]}",
			  "/steps/0/output_schema/$ref: remote $ref \"http://example.com/s.json\" is not supported\n");
}

/* ---------------------------------------------------------------------
 * plans (AgentPlan schema)
 * --------------------------------------------------------------------- */

static void
test_check_plans(void)
{
	expect("plan: valid", plan_schema,
		   "{goal: g, reasoning: r, steps: [{id: fetch, type: tool, tool: db.query, input: {q: '${input.q}'}},"
		   " {id: sum, type: llm, prompt: 'Summarise ${fetch.output}', depends_on: [fetch]}],"
		   " output: '${sum.output}'}",
		   "");
	expect("plan: kind synonym", plan_schema,
		   "{goal: g, steps: [{id: a, kind: llm, prompt: p}]}", "");
	expect("plan: step kinds other than llm and tool refused", plan_schema,
		   "{goal: g, steps: [{id: p, type: parallel, steps: [{id: c, type: tool, tool: t}]}]}",
		   "/steps/0/type: value \"parallel\" is not one of the allowed values: \"llm\", \"tool\"\n"
		   "/steps/0/steps: additional property \"steps\" is not allowed\n");
	expect("plan: goal required, workflow wrapper refused", plan_schema,
		   "{workflow: {steps: [{id: a, type: llm, prompt: p}]}}",
		   ": missing required property \"goal\"\n"
		   ": missing required property \"steps\"\n"
		   "/workflow: additional property \"workflow\" is not allowed\n");
	expect("plan: unknown dependency and cycle", plan_schema,
		   "{goal: g, steps: [{id: a, type: llm, prompt: p, depends_on: [b]},"
		   " {id: b, type: llm, prompt: p, depends_on: [a, zz]}]}",
		   "/steps/1/depends_on/1: unknown step \"zz\" in depends_on\n"
		   "/steps/0: cycle: a -> b -> a\n");
	expect("plan: reference without dependency", plan_schema,
		   "{goal: g, steps: [{id: a, type: tool, tool: t}, {id: b, type: llm, prompt: '${a.output}'}],"
		   " output: '${b.output}'}",
		   "/steps/1/prompt: step \"b\" references \"a\", which is not among its dependencies; add \"a\" to depends_on\n");
	expect("plan: duplicate ids", plan_schema,
		   "{goal: g, steps: [{id: a, type: tool, tool: t}, {id: a, type: tool, tool: u}]}",
		   "/steps/1: duplicate step id \"a\" (first defined at /steps/0)\n");
}

/* ---------------------------------------------------------------------
 * ao_wf_steps_build / find / free
 * --------------------------------------------------------------------- */

/* "dep,dep" of a step, for compact comparisons. */
static const char *
deps_text(const ao_wf_step *s, ao_buf *b)
{
	ao_buf_reset(b);
	for (size_t i = 0; i < s->ndeps; i++)
		ao_buf_printf(b, "%s%s", i ? "," : "", s->deps[i]);
	return b->data;
}

/* One line per step: "id type path parent top in_loop [deps]". */
static const char *
steps_text(const ao_wf_steps *st, ao_buf *out)
{
	ao_buf		d;

	ao_buf_init(&d);
	ao_buf_reset(out);
	for (size_t i = 0; i < st->n; i++)
	{
		const ao_wf_step *s = &st->steps[i];

		ao_buf_printf(out, "%s %s %s %d %d %d [%s]\n", s->id, s->type ? s->type : "-",
					  s->path, s->parent, s->top, s->in_loop, deps_text(s, &d));
	}
	ao_buf_free(&d);
	return out->data;
}

/* Build the steps of a YAML definition (normalised) and compare. */
static void
expect_steps(const char *name, const char *def_yaml, const char *want)
{
	json_object *def = yaml(def_yaml);
	const char *base;
	json_object *norm = ao_workflow_normalize(def, &base);
	ao_wf_steps st;
	ao_buf		out;

	ao_buf_init(&out);
	ao_wf_steps_build(ao_workflow_body(norm), base, &st);
	UNIT_STREQ(steps_text(&st, &out), want, name);
	ao_wf_steps_free(&st);
	ao_buf_free(&out);
	json_object_put(norm);
	json_object_put(def);
}

static void
test_steps_build(void)
{
	json_object *def;
	json_object *norm;
	const char *base;
	ao_wf_steps st;

	expect_steps("steps: data-analysis shape (parallel children)",
				 "{workflow: {steps: [{id: load_data, type: tool, tool: q},"
				 " {id: analyze, type: llm, prompt: p, depends_on: [load_data]},"
				 " {id: visualize, type: parallel, depends_on: [analyze], steps: ["
				 "  {id: create_chart, type: tool, tool: c}, {id: generate_report, type: tool, tool: r}]}]}}",
				 "load_data tool /workflow/steps/0 -1 0 0 []\n"
				 "analyze llm /workflow/steps/1 -1 1 0 [load_data]\n"
				 "visualize parallel /workflow/steps/2 -1 2 0 [analyze]\n"
				 "create_chart tool /workflow/steps/2/steps/0 2 2 0 []\n"
				 "generate_report tool /workflow/steps/2/steps/1 2 2 0 []\n");
	expect_steps("steps: loop body in_loop, parents and tops through nesting",
				 "{steps: [{id: r, type: tool, tool: t},"
				 " {id: l, type: loop, depends_on: [r], for_each: x, step: {id: p, type: parallel, steps: ["
				 "  {id: c, type: tool, tool: t}, {id: l2, type: loop, while: w, step: {id: d, kind: llm, prompt: p}}]}},"
				 " {id: e, type: tool, tool: t, depends_on: [l, r]}]}",
				 "r tool /steps/0 -1 0 0 []\n"
				 "l loop /steps/1 -1 1 0 [r]\n"
				 "p parallel /steps/1/step 1 1 1 []\n"
				 "c tool /steps/1/step/steps/0 2 1 1 []\n"
				 "l2 loop /steps/1/step/steps/1 2 1 1 []\n"
				 "d llm /steps/1/step/steps/1/step 4 1 1 []\n"
				 "e tool /steps/2 -1 6 0 [l,r]\n");
	expect_steps("steps: implicit branch edges appended, not duplicated",
				 "{steps: [{id: a, type: tool, tool: t},"
				 " {id: br, type: branch, depends_on: [a], cases: [{when: w, then: [x, y]}, {when: v, then: [x]}],"
				 "  else: [z, br, nope]},"
				 " {id: x, type: tool, tool: t}, {id: y, type: tool, tool: t, depends_on: [a]},"
				 " {id: z, type: tool, tool: t, depends_on: [br]}]}",
				 "a tool /steps/0 -1 0 0 []\n"
				 "br branch /steps/1 -1 1 0 [a]\n"
				 "x tool /steps/2 -1 2 0 [br]\n"
				 "y tool /steps/3 -1 3 0 [a,br]\n"
				 "z tool /steps/4 -1 4 0 [br]\n");
	expect_steps("steps: entries without an id or that are not objects are skipped",
				 "{steps: [{type: tool}, 3, {id: a}, {id: 5}]}",
				 "a - /steps/2 -1 0 0 []\n");
	expect_steps("steps: no steps member", "{name: x}", "");
	expect_steps("steps: steps not an array", "{steps: {id: a}}", "");

	def = yaml("{workflow: {steps: [{id: a, type: tool, tool: t},"
			   " {id: p, type: parallel, steps: [{id: c, type: tool, tool: t}]}]}}");
	norm = ao_workflow_normalize(def, &base);
	ao_wf_steps_build(ao_workflow_body(norm), base, &st);
	UNIT_OK(st.n == 3, "steps: count includes nested steps");
	UNIT_OK(ao_wf_steps_find(&st, "a") == 0, "find: top-level step");
	UNIT_OK(ao_wf_steps_find(&st, "c") == 2, "find: nested step");
	UNIT_OK(ao_wf_steps_find(&st, "zz") == -1, "find: unknown id gives -1");
	UNIT_OK(ao_wf_steps_find(&st, NULL) == -1, "find: NULL id gives -1");
	UNIT_OK(st.steps[1].obj == json_object_array_get_idx(
															 json_object_object_get(ao_workflow_body(norm), "steps"), 1),
			"steps: obj is borrowed from the definition");
	ao_wf_steps_free(&st);
	UNIT_OK(st.n == 0 && st.steps == NULL, "free: empties the list");
	ao_wf_steps_free(&st);
	UNIT_OK(st.n == 0, "free: twice is harmless");
	ao_wf_steps_build(ao_workflow_body(norm), "/prefix~1x", &st);
	UNIT_STREQ(st.steps[2].path, "/prefix~1x/steps/1/steps/0", "steps: base path prefixes every path");
	ao_wf_steps_free(&st);
	json_object_put(norm);
	json_object_put(def);

	ao_wf_steps_build(NULL, "", &st);
	UNIT_OK(st.n == 0 && st.steps == NULL, "steps: of JSON null is empty");
}

/* ---------------------------------------------------------------------
 * ao_duration_ms
 * --------------------------------------------------------------------- */

/* ao_duration_ms of a YAML scalar compared with want. */
static void
expect_duration(const char *value_yaml, double want, const char *name)
{
	json_object *v = yaml(value_yaml);
	double		got = ao_duration_ms(v);

	if (!UNIT_OK(got == want, name))
		printf("#   got %g, want %g\n", got, want);
	json_object_put(v);
}

static void
test_duration(void)
{
	json_object *v;

	expect_duration("2", 2000, "duration: integer seconds");
	expect_duration("1.5", 1500, "duration: fractional seconds");
	expect_duration("0", 0, "duration: zero");
	expect_duration("'500ms'", 500, "duration: ms");
	expect_duration("'2s'", 2000, "duration: s");
	expect_duration("'1.5m'", 90000, "duration: fractional m");
	expect_duration("'1h'", 3600000, "duration: h");
	expect_duration("'0.25s'", 250, "duration: fraction below one");
	expect_duration("'10s'", 10000, "duration: several digits");
	expect_duration("-1", -1, "duration: negative number refused");
	expect_duration("-0.5", -1, "duration: negative fraction refused");
	expect_duration("'-1s'", -1, "duration: negative string refused");
	expect_duration("'+1s'", -1, "duration: sign refused");
	expect_duration("'5'", -1, "duration: string without unit refused");
	expect_duration("'5d'", -1, "duration: unknown unit refused");
	expect_duration("'5 s'", -1, "duration: space before unit refused");
	expect_duration("' 5s'", -1, "duration: leading space refused");
	expect_duration("'5sx'", -1, "duration: trailing text refused");
	expect_duration("'s'", -1, "duration: unit alone refused");
	expect_duration("'.5s'", -1, "duration: no integer part refused");
	expect_duration("'5.s'", -1, "duration: no fraction digits refused");
	expect_duration("'1e3ms'", -1, "duration: exponent refused");
	expect_duration("'0x10s'", -1, "duration: hex refused");
	expect_duration("'infs'", -1, "duration: inf refused");
	expect_duration("'nanms'", -1, "duration: nan refused");
	expect_duration("''", -1, "duration: empty string refused");
	expect_duration("true", -1, "duration: boolean refused");
	expect_duration("[1]", -1, "duration: array refused");
	UNIT_OK(ao_duration_ms(NULL) == -1, "duration: JSON null refused");
	v = json_object_new_double(INFINITY);
	UNIT_OK(ao_duration_ms(v) == -1, "duration: infinite number refused");
	json_object_put(v);
	v = json_object_new_double(NAN);
	UNIT_OK(ao_duration_ms(v) == -1, "duration: NaN number refused");
	json_object_put(v);
	v = json_object_new_double(1e307);
	UNIT_OK(ao_duration_ms(v) == -1, "duration: overflow to infinity refused");
	json_object_put(v);
}

int
main(void)
{
	find_schemas_dir();
	fixed_schema = load_schema("FixedWorkflow");
	plan_schema = load_schema("AgentPlan");
	UNIT_OK(ao_json_schema_check(fixed_schema, NULL, NULL) == 0, "FixedWorkflow schema is usable");
	UNIT_OK(ao_json_schema_check(plan_schema, NULL, NULL) == 0, "AgentPlan schema is usable");

	test_normalize();
	test_check_documents();
	test_check_graph();
	test_check_references();
	test_check_sql();
	test_check_hooks();
	test_check_embedded_schemas();
	test_check_plans();
	test_steps_build();
	test_duration();

	json_object_put(fixed_schema);
	json_object_put(plan_schema);
	return unit_done();
}
