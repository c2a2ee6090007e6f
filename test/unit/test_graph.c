/*-------------------------------------------------------------------------
 *
 * test_graph.c
 *	  Unit tests of ao_graph: Mermaid and Graphviz dot output for every
 *	  step kind, escaping of ids and labels, status colouring, formats.
 *
 * Whole outputs are compared for the plain every-kind workflow; the other
 * checks look for (or rule out) single lines. That the outputs really
 * render is proved separately by test/graph_render/run.sh.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/test_graph.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_graph.h"
#include "ao_workflow.h"
#include "ao_yaml.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every step kind; ids with hyphens; branch cases and else. */
static const char every_kind[] =
"{workflow: {name: every, steps: ["
" {id: load-data, type: tool, tool: db.query},"
" {id: think, type: llm, model: fast, prompt: p, depends_on: [load-data]},"
" {id: route, type: branch, depends_on: [think], cases: [{when: w, then: [fan-out]}, {when: v, then: [ask]}],"
"  else: [each]},"
" {id: fan-out, type: parallel, steps: [{id: c1, type: tool, tool: t1}, {id: c2, type: llm, prompt: p}]},"
" {id: each, type: loop, for_each: '${load-data.output}', step: {id: body, type: tool, tool: t2}},"
" {id: poll, type: loop, while: '$.done', depends_on: [each], step: {id: probe, type: tool, tool: t3}},"
" {id: ask, type: user_input, prompt: ok?},"
" {id: end-it, type: tool, tool: t4, depends_on: [fan-out, poll, ask]}]}}";

static const char every_kind_mermaid[] =
"flowchart TD\n"
"  n0[\"load-data<br/>tool: db.query\"]\n"
"  n1(\"think<br/>llm (fast)\")\n"
"  n2{\"route<br/>branch\"}\n"
"  n3{{\"fan-out<br/>parallel\"}}\n"
"  n4[\"c1<br/>tool: t1\"]\n"
"  n5(\"c2<br/>llm\")\n"
"  n6{{\"each<br/>loop over ${load-data.output}\"}}\n"
"  n7[\"body<br/>tool: t2\"]\n"
"  n8{{\"poll<br/>loop while $.done\"}}\n"
"  n9[\"probe<br/>tool: t3\"]\n"
"  n10[/\"ask<br/>user_input\"/]\n"
"  n11[\"end-it<br/>tool: t4\"]\n"
"  n0 --> n1\n"
"  n1 --> n2\n"
"  n2 -->|case 1| n3\n"
"  n3 -.-> n4\n"
"  n3 -.-> n5\n"
"  n2 -->|else| n6\n"
"  n6 -.-> n7\n"
"  n6 --> n8\n"
"  n8 -.-> n9\n"
"  n2 -->|case 2| n10\n"
"  n3 --> n11\n"
"  n8 --> n11\n"
"  n10 --> n11\n";

static const char every_kind_dot[] =
"digraph \"every\" {\n"
"  rankdir=TB;\n"
"  node [fontname=\"Helvetica\", style=\"filled\", fillcolor=\"#ffffff\"];\n"
"  n0 [shape=box, label=\"load-data\\ntool: db.query\"];\n"
"  n1 [shape=ellipse, label=\"think\\nllm (fast)\"];\n"
"  n2 [shape=diamond, label=\"route\\nbranch\"];\n"
"  n3 [shape=hexagon, label=\"fan-out\\nparallel\"];\n"
"  n4 [shape=box, label=\"c1\\ntool: t1\"];\n"
"  n5 [shape=ellipse, label=\"c2\\nllm\"];\n"
"  n6 [shape=hexagon, label=\"each\\nloop over ${load-data.output}\"];\n"
"  n7 [shape=box, label=\"body\\ntool: t2\"];\n"
"  n8 [shape=hexagon, label=\"poll\\nloop while $.done\"];\n"
"  n9 [shape=box, label=\"probe\\ntool: t3\"];\n"
"  n10 [shape=parallelogram, label=\"ask\\nuser_input\"];\n"
"  n11 [shape=box, label=\"end-it\\ntool: t4\"];\n"
"  n0 -> n1;\n"
"  n1 -> n2;\n"
"  n2 -> n3 [label=\"case 1\"];\n"
"  n3 -> n4 [style=dashed];\n"
"  n3 -> n5 [style=dashed];\n"
"  n2 -> n6 [label=\"else\"];\n"
"  n6 -> n7 [style=dashed];\n"
"  n6 -> n8;\n"
"  n8 -> n9 [style=dashed];\n"
"  n2 -> n10 [label=\"case 2\"];\n"
"  n3 -> n11;\n"
"  n8 -> n11;\n"
"  n10 -> n11;\n"
"}\n";

/* A workflow definition and its flattened steps. */
typedef struct graph_input
{
	json_object *def;
	json_object *norm;
	ao_wf_steps steps;
} graph_input;

/* Convert YAML, normalise and flatten; abort on a YAML error. */
static void
input_make(graph_input *in, const char *yaml)
{
	ao_buf		err;
	const char *base;

	ao_buf_init(&err);
	in->def = ao_yaml_to_json(yaml, strlen(yaml), &err);
	if (in->def == NULL)
	{
		fprintf(stderr, "bad YAML in test: %s\n", err.data);
		abort();
	}
	ao_buf_free(&err);
	in->norm = ao_workflow_normalize(in->def, &base);
	ao_wf_steps_build(ao_workflow_body(in->norm), base, &in->steps);
}

static void
input_free(graph_input *in)
{
	ao_wf_steps_free(&in->steps);
	json_object_put(in->norm);
	json_object_put(in->def);
}

/* Render in into out (reset first); returns ao_graph_render's result. */
static int
render(graph_input *in, const char *title, const char *format,
	   ao_graph_status_fn status, ao_buf *out)
{
	ao_buf_reset(out);
	return ao_graph_render(&in->steps, title, format, status, NULL, out);
}

/* Is line (without its newline) one of the lines of text? */
static int
has_line(const char *text, const char *line)
{
	size_t		len = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[len] == '\n')
			return 1;
	return 0;
}

/* Check that text has (want != 0) or lacks a line; print text on failure. */
static void
expect_line(const char *text, const char *line, int want, const char *name)
{
	if (!UNIT_OK(has_line(text, line) == want, name))
		printf("#   %s line: %s\n", want ? "missing" : "unexpected", line);
}

/* Number of lines of text that start with prefix. */
static int
count_prefixed(const char *text, const char *prefix)
{
	int			n = 0;
	size_t		len = strlen(prefix);

	for (const char *p = text; *p;)
	{
		const char *nl = strchr(p, '\n');

		if (strncmp(p, prefix, len) == 0)
			n++;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return n;
}

/* Number of occurrences of needle in text. */
static int
count_substr(const char *text, const char *needle)
{
	int			n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* Statuses of a run: every known one, an unknown one, and steps without. */
static const char *
run_status(void *arg, const char *id)
{
	static const char *const map[][2] = {
		{"load-data", "succeeded"}, {"think", "failed"}, {"route", "running"},
		{"fan-out", "ready"}, {"c1", "pending"}, {"c2", "cancelled"},
		{"each", "skipped"}, {"body", "compensated"}, {"ask", "waiting"},
		{"poll", "paused-by-martians"}, {NULL, NULL}
	};

	(void) arg;
	for (int i = 0; map[i][0]; i++)
		if (strcmp(map[i][0], id) == 0)
			return map[i][1];
	return NULL;
}

static void
test_every_kind(void)
{
	graph_input in;
	ao_buf		out;

	ao_buf_init(&out);
	input_make(&in, every_kind);
	UNIT_OK(render(&in, "every", "mermaid", NULL, &out) == 0, "mermaid: returns 0");
	UNIT_STREQ(out.data, every_kind_mermaid, "mermaid: every kind, whole output");
	expect_line(out.data, "  n0[\"load-data<br/>tool: db.query\"]", 1, "mermaid: tool is a box with its tool");
	expect_line(out.data, "  n1(\"think<br/>llm (fast)\")", 1, "mermaid: llm is rounded with its model");
	expect_line(out.data, "  n2{\"route<br/>branch\"}", 1, "mermaid: branch is a rhombus");
	expect_line(out.data, "  n3{{\"fan-out<br/>parallel\"}}", 1, "mermaid: parallel is a hexagon");
	expect_line(out.data, "  n6{{\"each<br/>loop over ${load-data.output}\"}}", 1,
				"mermaid: for_each loop is a hexagon with its array");
	expect_line(out.data, "  n8{{\"poll<br/>loop while $.done\"}}", 1,
				"mermaid: while loop is a hexagon with its condition");
	expect_line(out.data, "  n10[/\"ask<br/>user_input\"/]", 1, "mermaid: user_input is a parallelogram");
	expect_line(out.data, "  n2 -->|case 1| n3", 1, "mermaid: branch edge labelled with its case");
	expect_line(out.data, "  n2 -->|case 2| n10", 1, "mermaid: second case numbered 2");
	expect_line(out.data, "  n2 -->|else| n6", 1, "mermaid: else edge labelled");
	expect_line(out.data, "  n3 -.-> n4", 1, "mermaid: parallel to child is dashed");
	expect_line(out.data, "  n6 -.-> n7", 1, "mermaid: loop to its step is dashed");
	expect_line(out.data, "  n0 --> n1", 1, "mermaid: dependency edge");
	UNIT_OK(strstr(out.data, "load-data[") == NULL && strstr(out.data, " load-data -") == NULL &&
			strstr(out.data, "end-it ") == NULL,
			"mermaid: hyphenated ids never used as node names");
	UNIT_OK(count_prefixed(out.data, "  classDef") == 0 && count_prefixed(out.data, "  class ") == 0,
			"mermaid: no classes without a status callback");

	UNIT_OK(render(&in, "every", "dot", NULL, &out) == 0, "dot: returns 0");
	UNIT_STREQ(out.data, every_kind_dot, "dot: every kind, whole output");
	expect_line(out.data, "  n1 [shape=ellipse, label=\"think\\nllm (fast)\"];", 1, "dot: llm is an ellipse");
	expect_line(out.data, "  n2 [shape=diamond, label=\"route\\nbranch\"];", 1, "dot: branch is a diamond");
	expect_line(out.data, "  n10 [shape=parallelogram, label=\"ask\\nuser_input\"];", 1,
				"dot: user_input is a parallelogram");
	expect_line(out.data, "  n2 -> n6 [label=\"else\"];", 1, "dot: else edge labelled");
	expect_line(out.data, "  n8 -> n9 [style=dashed];", 1, "dot: loop to its step is dashed");
	UNIT_OK(strstr(out.data, "fillcolor=\"#c8e6c9\"") == NULL, "dot: no status fill without a status callback");
	UNIT_OK(strstr(out.data, "load-data [") == NULL && strstr(out.data, "end-it ->") == NULL,
			"dot: hyphenated ids never used as node names");

	/* ao_graph_render appends */
	ao_buf_reset(&out);
	ao_buf_append(&out, "HEAD\n");
	ao_graph_render(&in.steps, "every", "mermaid", NULL, NULL, &out);
	UNIT_OK(strncmp(out.data, "HEAD\nflowchart TD\n", 18) == 0, "render appends to the buffer");

	/* unknown formats */
	ao_buf_reset(&out);
	ao_buf_append(&out, "keep");
	UNIT_OK(ao_graph_render(&in.steps, "every", "svg", NULL, NULL, &out) == -1, "unknown format returns -1");
	UNIT_STREQ(out.data, "keep", "unknown format leaves the buffer alone");
	UNIT_OK(ao_graph_render(&in.steps, "every", "Mermaid", NULL, NULL, &out) == -1,
			"format names are case-sensitive");
	UNIT_OK(ao_graph_render(&in.steps, "every", "", NULL, NULL, &out) == -1, "empty format returns -1");
	input_free(&in);
	ao_buf_free(&out);
}

static void
test_status(void)
{
	graph_input in;
	ao_buf		out;

	ao_buf_init(&out);
	input_make(&in, every_kind);

	render(&in, "every", "mermaid", run_status, &out);
	expect_line(out.data, "  n0[\"load-data<br/>tool: db.query<br/>succeeded\"]", 1,
				"mermaid status: shown as a third label line");
	expect_line(out.data, "  n11[\"end-it<br/>tool: t4\"]", 1, "mermaid status: none, no third line");
	expect_line(out.data, "  n8{{\"poll<br/>loop while $.done<br/>paused-by-martians\"}}", 1,
				"mermaid status: unknown status still shown");
	UNIT_OK(count_prefixed(out.data, "  classDef ") == 10, "mermaid status: a classDef per known status");
	expect_line(out.data, "  classDef succeeded fill:#c8e6c9", 1, "mermaid status: succeeded is green");
	expect_line(out.data, "  classDef failed fill:#ffcdd2", 1, "mermaid status: failed is red");
	expect_line(out.data, "  classDef pending fill:#eeeeee", 1, "mermaid status: pending is grey");
	expect_line(out.data, "  class n0 succeeded", 1, "mermaid status: succeeded step classed");
	expect_line(out.data, "  class n1 failed", 1, "mermaid status: failed step classed");
	expect_line(out.data, "  class n2 running", 1, "mermaid status: running step classed");
	expect_line(out.data, "  class n3 ready", 1, "mermaid status: ready step classed");
	expect_line(out.data, "  class n4 pending", 1, "mermaid status: pending nested step classed");
	expect_line(out.data, "  class n5 cancelled", 1, "mermaid status: cancelled step classed");
	expect_line(out.data, "  class n6 skipped", 1, "mermaid status: skipped step classed");
	expect_line(out.data, "  class n7 compensated", 1, "mermaid status: compensated loop step classed");
	expect_line(out.data, "  class n10 waiting", 1, "mermaid status: waiting step classed");
	UNIT_OK(count_prefixed(out.data, "  class ") == 9, "mermaid status: unknown or no status, no class");
	UNIT_OK(strstr(out.data, "paused-by-martians fill") == NULL, "mermaid status: no classDef for an unknown status");

	render(&in, "every", "dot", run_status, &out);
	expect_line(out.data, "  n0 [shape=box, label=\"load-data\\ntool: db.query\\nsucceeded\", fillcolor=\"#c8e6c9\"];",
				1, "dot status: label line and green fill");
	expect_line(out.data, "  n1 [shape=ellipse, label=\"think\\nllm (fast)\\nfailed\", fillcolor=\"#ffcdd2\"];",
				1, "dot status: failed is red");
	expect_line(out.data, "  n10 [shape=parallelogram, label=\"ask\\nuser_input\\nwaiting\", fillcolor=\"#e1bee7\"];",
				1, "dot status: waiting is purple");
	expect_line(out.data, "  n8 [shape=hexagon, label=\"poll\\nloop while $.done\\npaused-by-martians\"];",
				1, "dot status: unknown status shown, not filled");
	expect_line(out.data, "  n11 [shape=box, label=\"end-it\\ntool: t4\"];", 1, "dot status: none, plain node");
	/* the node defaults line and the nine steps with a known status */
	UNIT_OK(count_substr(out.data, "\", fillcolor=\"#") == 1 + 9 &&
			strstr(out.data, "fillcolor=\"#d7ccc8\"") != NULL,
			"dot status: nine nodes filled (cancelled among them)");
	input_free(&in);
	ao_buf_free(&out);
}

static void
test_escaping(void)
{
	graph_input in;
	ao_buf		out;

	ao_buf_init(&out);
	input_make(&in,
			   "steps:\n"
			   "  - {id: a-b, type: tool, tool: 'say \"hi\" <b>x</b> & #quot; \\n'}\n"
			   "  - {id: c_d, type: llm, model: \"one\\ntwo\", prompt: p, depends_on: [a-b]}\n"
			   "  - {id: e, type: loop, while: '$.s == \"x\"', step: {id: f, type: tool, tool: t}}\n"
			   "  - {id: g, kind: tool, tool: t, depends_on: [nope, e]}\n"
			   "  - {id: h}\n");

	render(&in, "title \"q\" \\ back", "mermaid", NULL, &out);
	expect_line(out.data, "  n0[\"a-b<br/>tool: say #quot;hi#quot; #lt;b#gt;x#lt;/b#gt; #amp; #35;quot; \\n\"]", 1,
				"mermaid label: quotes, markup, '&', '#' as entity codes, backslash kept");
	expect_line(out.data, "  n1(\"c_d<br/>llm (one two)\")", 1, "mermaid label: newline becomes a space");
	expect_line(out.data, "  n2{{\"e<br/>loop while $.s == #quot;x#quot;\"}}", 1, "mermaid label: quotes in a condition");
	expect_line(out.data, "  n4[\"g<br/>tool: t\"]", 1, "mermaid: kind synonym gives the type");
	expect_line(out.data, "  n5[\"h<br/>?\"]", 1, "mermaid: a step without a type is a box marked ?");
	expect_line(out.data, "  n2 --> n4", 1, "mermaid: known dependency drawn");
	UNIT_OK(strstr(out.data, "n-1") == NULL, "mermaid: unknown dependency skipped");
	UNIT_OK(strstr(out.data, "title") == NULL, "mermaid: the title is not part of a flowchart");

	render(&in, "title \"q\" \\ back", "dot", NULL, &out);
	UNIT_OK(strncmp(out.data, "digraph \"title \\\"q\\\" \\\\ back\" {\n", 31) == 0, "dot: title escaped");
	expect_line(out.data, "  n0 [shape=box, label=\"a-b\\ntool: say \\\"hi\\\" <b>x</b> & #quot; \\\\n\"];", 1,
				"dot label: quotes and backslashes escaped, markup kept");
	expect_line(out.data, "  n1 [shape=ellipse, label=\"c_d\\nllm (one\\ntwo)\"];", 1, "dot label: newline as \\n");
	expect_line(out.data, "  n2 [shape=hexagon, label=\"e\\nloop while $.s == \\\"x\\\"\"];", 1,
				"dot label: quotes in a condition");
	expect_line(out.data, "  n5 [shape=box, label=\"h\\n?\"];", 1, "dot: a step without a type is a box marked ?");
	expect_line(out.data, "  n2 -> n4;", 1, "dot: known dependency drawn");
	UNIT_OK(strstr(out.data, "n-1") == NULL, "dot: unknown dependency skipped");

	render(&in, NULL, "dot", NULL, &out);
	UNIT_OK(strncmp(out.data, "digraph \"workflow\" {\n", 21) == 0, "dot: NULL title is \"workflow\"");
	input_free(&in);

	/* an empty step list still gives a complete document */
	input_make(&in, "{name: empty}");
	render(&in, "t", "mermaid", NULL, &out);
	UNIT_STREQ(out.data, "flowchart TD\n", "mermaid: no steps");
	render(&in, "t", "dot", run_status, &out);
	UNIT_STREQ(out.data, "digraph \"t\" {\n  rankdir=TB;\n"
			   "  node [fontname=\"Helvetica\", style=\"filled\", fillcolor=\"#ffffff\"];\n}\n",
			   "dot: no steps");
	input_free(&in);
	ao_buf_free(&out);
}

int
main(void)
{
	test_every_kind();
	test_status();
	test_escaping();
	return unit_done();
}
