/*-------------------------------------------------------------------------
 *
 * gen_graphs.c
 *	  Write Mermaid and Graphviz files of workflow graphs, for
 *	  render_check.sh to prove that they render.
 *
 * Usage: gen_graphs OUTDIR [WORKFLOW.yaml ...]
 *
 * Each WORKFLOW.yaml (a sample such as samples/workflows/order-triage.yaml)
 * is converted with ao_yaml_parse, normalised, flattened with
 * ao_wf_steps_build and rendered by ao_graph_render into OUTDIR/NAME.mmd
 * and OUTDIR/NAME.dot, NAME being the file name without ".yaml". Three
 * built-in workflows are added: every-kind (every step kind, plain),
 * every-kind-run (the same with every run status coloured, plus an unknown
 * status and steps without one) and tricky-labels (hyphenated ids and
 * labels with quotes, markup, backslashes, newlines, '#' and non-ASCII).
 * Prints one line per file written; exits non-zero on any error.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/graph_render/gen_graphs.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_graph.h"
#include "ao_workflow.h"
#include "ao_yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every step kind: tool, llm, branch (case and else), parallel, loops, user_input. */
static const char every_kind[] =
"workflow:\n"
"  name: every-kind\n"
"  steps:\n"
"    - {id: load-data, type: tool, tool: database.query, input: {query: 'SELECT 1'}}\n"
"    - {id: analyze, type: llm, model: fast, depends_on: [load-data], prompt: 'Analyze ${load-data.output}'}\n"
"    - id: route\n"
"      type: branch\n"
"      depends_on: [analyze]\n"
"      cases:\n"
"        - {when: '$.steps.analyze.output.score > 0.5', then: [fan-out]}\n"
"        - {when: '$.steps.analyze.output.score < 0', then: [ask_user]}\n"
"      else: [per_item]\n"
"    - id: fan-out\n"
"      type: parallel\n"
"      steps:\n"
"        - {id: chart, type: tool, tool: chart.create}\n"
"        - {id: summary, type: llm, prompt: Summarise}\n"
"    - id: per_item\n"
"      type: loop\n"
"      for_each: '${load-data.output}'\n"
"      step: {id: handle-item, type: tool, tool: items.handle, input: '${item}'}\n"
"    - id: poll\n"
"      type: loop\n"
"      depends_on: [per_item]\n"
"      while: '$.steps.poll.output.done != true'\n"
"      max_iterations: 5\n"
"      step: {id: check, type: tool, tool: job.status}\n"
"    - {id: ask_user, type: user_input, prompt: 'Go on?'}\n"
"    - {id: finish, type: tool, tool: report.generate, depends_on: [fan-out, poll, ask_user]}\n";

/* Labels that need escaping in both languages. */
static const char tricky_labels[] =
"steps:\n"
"  - {id: a-b-c, type: tool, tool: 'say \"hi\" <b>bold</b> & \\\\ back#quot; #35; x;y'}\n"
"  - {id: _under-score_, type: llm, model: \"line one\\nline two\", prompt: p, depends_on: [a-b-c]}\n"
"  - {id: q, type: loop, while: '$.x == \"a\\\\b\" && $.y like_regex \"^[a-z]+$\"', depends_on: [_under-score_],\n"
"     step: {id: inner-1, type: tool, tool: 'caf\xc3\xa9 \xe2\x86\x92 \xe2\x9c\x93 {braces} [brackets] (parens) |pipe|'}}\n"
"  - {id: end, type: branch, depends_on: [q], cases: [{when: '$.z', then: [graph]}], else: [subgraph]}\n"
"  - {id: graph, type: tool, tool: 'style x:#f00;'}\n"
"  - {id: subgraph, type: user_input, prompt: p}\n";

/* Status of each step of every-kind-run; anything else has none. */
static const char *const run_status[][2] = {
	{"load-data", "succeeded"},
	{"analyze", "succeeded"},
	{"route", "succeeded"},
	{"fan-out", "running"},
	{"chart", "failed"},
	{"summary", "compensated"},
	{"per_item", "skipped"},
	{"handle-item", "cancelled"},
	{"poll", "ready"},
	{"check", "pending"},
	{"ask_user", "waiting"},
	{"finish", "no-such-status"},
	{NULL, NULL}
};

/* ao_graph_status_fn over run_status. */
static const char *
status_of(void *arg, const char *step_id)
{
	(void) arg;
	for (int i = 0; run_status[i][0]; i++)
		if (strcmp(run_status[i][0], step_id) == 0)
			return run_status[i][1];
	return NULL;
}

/* Render steps in one format into OUTDIR/NAME.EXT. */
static int
write_graph(const char *outdir, const char *name, const char *title,
			const ao_wf_steps *steps, const char *format, const char *ext,
			ao_graph_status_fn status)
{
	ao_buf		out;
	char		path[4096];
	FILE	   *f;
	int			rc = 0;

	ao_buf_init(&out);
	if (ao_graph_render(steps, title, format, status, NULL, &out) != 0)
	{
		fprintf(stderr, "gen_graphs: %s: cannot render as %s\n", name, format);
		ao_buf_free(&out);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s.%s", outdir, name, ext);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(out.data, 1, out.len, f) != out.len)
	{
		perror(path);
		rc = -1;
	}
	if (f && fclose(f) != 0)
	{
		perror(path);
		rc = -1;
	}
	if (rc == 0)
		printf("%s\n", path);
	ao_buf_free(&out);
	return rc;
}

/* Convert, normalise, flatten and write both formats of one workflow. */
static int
generate(const char *outdir, const char *name, const char *yaml, size_t len,
		 ao_graph_status_fn status)
{
	json_object *def = NULL;
	json_object *norm;
	json_object *title;
	const char *base;
	ao_wf_steps steps;
	ao_buf		err;
	int			rc = 0;

	ao_buf_init(&err);
	if (ao_yaml_parse(yaml, len, &def, &err) != 0)
	{
		fprintf(stderr, "gen_graphs: %s: %s\n", name, err.data);
		ao_buf_free(&err);
		return -1;
	}
	ao_buf_free(&err);
	norm = ao_workflow_normalize(def, &base);
	ao_wf_steps_build(ao_workflow_body(norm), base, &steps);
	if (steps.n == 0)
	{
		fprintf(stderr, "gen_graphs: %s: no steps\n", name);
		rc = -1;
	}
	else
	{
		const char *t = name;

		if (json_object_object_get_ex(ao_workflow_body(norm), "name", &title))
			t = json_object_get_string(title);
		if (write_graph(outdir, name, t, &steps, "mermaid", "mmd", status) != 0 ||
			write_graph(outdir, name, t, &steps, "dot", "dot", status) != 0)
			rc = -1;
	}
	ao_wf_steps_free(&steps);
	json_object_put(norm);
	json_object_put(def);
	return rc;
}

/* Read a whole file; NULL on error. */
static char *
slurp(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *data = NULL;
	size_t		cap = 0;
	size_t		n = 0;
	size_t		got;

	if (f == NULL)
		return NULL;
	do
	{
		if (cap - n < 4096)
		{
			cap = cap ? cap * 2 : 8192;
			data = realloc(data, cap + 1);
			if (data == NULL)
				abort();
		}
		got = fread(data + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	if (ferror(f))
	{
		free(data);
		data = NULL;
	}
	else
		data[n] = '\0';
	fclose(f);
	*len = n;
	return data;
}

int
main(int argc, char **argv)
{
	int			failed = 0;

	if (argc < 2)
	{
		fprintf(stderr, "usage: gen_graphs OUTDIR [WORKFLOW.yaml ...]\n");
		return 2;
	}
	for (int i = 2; i < argc; i++)
	{
		const char *slash = strrchr(argv[i], '/');
		char		name[1024];
		char	   *dot;
		size_t		len;
		char	   *text = slurp(argv[i], &len);

		snprintf(name, sizeof(name), "%s", slash ? slash + 1 : argv[i]);
		dot = strrchr(name, '.');
		if (dot && (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0 ||
					strcmp(dot, ".json") == 0))
			*dot = '\0';
		if (text == NULL)
		{
			perror(argv[i]);
			failed = 1;
			continue;
		}
		if (generate(argv[1], name, text, len, NULL) != 0)
			failed = 1;
		free(text);
	}
	if (generate(argv[1], "every-kind", every_kind, sizeof(every_kind) - 1, NULL) != 0 ||
		generate(argv[1], "every-kind-run", every_kind, sizeof(every_kind) - 1, status_of) != 0 ||
		generate(argv[1], "tricky-labels", tricky_labels, sizeof(tricky_labels) - 1, status_of) != 0)
		failed = 1;
	return failed;
}
