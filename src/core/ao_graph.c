/*-------------------------------------------------------------------------
 *
 * ao_graph.c
 *	  Mermaid flowchart and Graphviz dot rendering of a workflow DAG.
 *
 * Nodes are named n0, n1, ... by flattened index, so any step id (hyphens
 * included) is safe in both languages; the id is shown in the label. The
 * shape tells the kind: tool box, llm rounded, branch diamond, parallel and
 * loop hexagon (with dashed edges to their children), user_input
 * parallelogram. Branch edges carry the case they stand for. With a status
 * callback, each node is coloured by its status in a run.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_graph.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_graph.h"

#include <string.h>

/* Fill colours by step status, shared by both formats. */
static const struct
{
	const char *status;
	const char *fill;
}			status_colours[] = {
	{"pending", "#eeeeee"},
	{"ready", "#fff3c4"},
	{"running", "#bbdefb"},
	{"waiting", "#e1bee7"},
	{"succeeded", "#c8e6c9"},
	{"failed", "#ffcdd2"},
	{"skipped", "#f5f5f5"},
	{"cancelled", "#d7ccc8"},
	{"compensated", "#ffe0b2"},
	{"superseded", "#e0e0e0"},	/* replaced by a later plan version */
	{NULL, NULL}
};

/*
 * Append text escaped for a quoted Mermaid label. Mermaid decodes "#name;"
 * and "#123;" entity codes and then shows the label as HTML, so besides
 * the quote that would end the string, '#' (else "#quot;" in the text
 * would turn into a quote), '&' (else "&lt;" would turn into "<") and the
 * markup characters are written as entity codes.
 */
static void
append_mermaid_text(ao_buf *out, const char *s)
{
	for (; *s; s++)
	{
		switch (*s)
		{
			case '"':
				ao_buf_append(out, "#quot;");
				break;
			case '#':
				ao_buf_append(out, "#35;");
				break;
			case '&':
				ao_buf_append(out, "#amp;");
				break;
			case '<':
				ao_buf_append(out, "#lt;");
				break;
			case '>':
				ao_buf_append(out, "#gt;");
				break;
			case '\n':
				ao_buf_append(out, " ");
				break;
			default:
				ao_buf_append_n(out, s, 1);
		}
	}
}

/* Append text escaped for a double-quoted dot string. */
static void
append_dot_text(ao_buf *out, const char *s)
{
	for (; *s; s++)
	{
		if (*s == '"' || *s == '\\')
			ao_buf_append_n(out, "\\", 1);
		if (*s == '\n')
			ao_buf_append(out, "\\n");
		else
			ao_buf_append_n(out, s, 1);
	}
}

/* The second label line of a step: its kind and what it does. */
static void
detail_of(const ao_wf_step *s, ao_buf *out)
{
	json_object *v;

	ao_buf_append(out, s->type ? s->type : "?");
	if (json_object_object_get_ex(s->obj, "tool", &v))
		ao_buf_printf(out, ": %s", json_object_get_string(v));
	else if (json_object_object_get_ex(s->obj, "for_each", &v))
		ao_buf_printf(out, " over %s", json_object_get_string(v));
	else if (json_object_object_get_ex(s->obj, "while", &v))
		ao_buf_printf(out, " while %s", json_object_get_string(v));
	else if (json_object_object_get_ex(s->obj, "model", &v))
		ao_buf_printf(out, " (%s)", json_object_get_string(v));
}

/* Mermaid open/close delimiters of a node shape by step kind. */
static void
mermaid_shape(const char *type, const char **open, const char **close)
{
	*open = "[\"";
	*close = "\"]";
	if (type == NULL)
		return;
	if (strcmp(type, "llm") == 0)
		*open = "(\"", *close = "\")";
	else if (strcmp(type, "branch") == 0)
		*open = "{\"", *close = "\"}";
	else if (strcmp(type, "parallel") == 0 || strcmp(type, "loop") == 0)
		*open = "{{\"", *close = "\"}}";
	else if (strcmp(type, "user_input") == 0)
		*open = "[/\"", *close = "\"/]";
}

/* Graphviz shape by step kind. */
static const char *
dot_shape(const char *type)
{
	if (type == NULL)
		return "box";
	if (strcmp(type, "llm") == 0)
		return "ellipse";
	if (strcmp(type, "branch") == 0)
		return "diamond";
	if (strcmp(type, "parallel") == 0 || strcmp(type, "loop") == 0)
		return "hexagon";
	if (strcmp(type, "user_input") == 0)
		return "parallelogram";
	return "box";
}

/* Label of the branch edge from branch b to target id: "case N", "else" or NULL. */
static void
branch_label(const ao_wf_step *b, const char *target, ao_buf *out)
{
	json_object *cases;
	json_object *list;

	if (json_object_object_get_ex(b->obj, "cases", &cases))
	{
		for (size_t c = 0; c < json_object_array_length(cases); c++)
		{
			if (!json_object_object_get_ex(json_object_array_get_idx(cases, c), "then", &list))
				continue;
			for (size_t i = 0; i < json_object_array_length(list); i++)
				if (strcmp(json_object_get_string(json_object_array_get_idx(list, i)), target) == 0)
				{
					ao_buf_printf(out, "case %zu", c + 1);
					return;
				}
		}
	}
	if (json_object_object_get_ex(b->obj, "else", &list))
		for (size_t i = 0; i < json_object_array_length(list); i++)
			if (strcmp(json_object_get_string(json_object_array_get_idx(list, i)), target) == 0)
			{
				ao_buf_append(out, "else");
				return;
			}
}

/* See ao_graph.h. */
int
ao_graph_render(const ao_wf_steps *steps, const char *title, const char *format,
				ao_graph_status_fn status, void *arg, ao_buf *out)
{
	int			mermaid = strcmp(format, "mermaid") == 0;
	ao_buf		detail;
	ao_buf		label;

	if (!mermaid && strcmp(format, "dot") != 0)
		return -1;
	ao_buf_init(&detail);
	ao_buf_init(&label);

	if (mermaid)
		ao_buf_append(out, "flowchart TD\n");
	else
	{
		ao_buf_append(out, "digraph \"");
		append_dot_text(out, title ? title : "workflow");
		ao_buf_append(out, "\" {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", style=\"filled\", fillcolor=\"#ffffff\"];\n");
	}

	/* nodes */
	for (size_t i = 0; i < steps->n; i++)
	{
		const ao_wf_step *s = &steps->steps[i];
		const char *st = status ? status(arg, s->id) : NULL;

		ao_buf_reset(&detail);
		detail_of(s, &detail);
		if (mermaid)
		{
			const char *open,
					   *close;

			mermaid_shape(s->type, &open, &close);
			ao_buf_printf(out, "  n%zu%s", i, open);
			append_mermaid_text(out, s->id);
			ao_buf_append(out, "<br/>");
			append_mermaid_text(out, detail.data);
			if (st)
			{
				ao_buf_append(out, "<br/>");
				append_mermaid_text(out, st);
			}
			ao_buf_printf(out, "%s\n", close);
		}
		else
		{
			ao_buf_printf(out, "  n%zu [shape=%s, label=\"", i, dot_shape(s->type));
			append_dot_text(out, s->id);
			ao_buf_append(out, "\\n");
			append_dot_text(out, detail.data);
			if (st)
			{
				ao_buf_append(out, "\\n");
				append_dot_text(out, st);
			}
			ao_buf_append(out, "\"");
			for (int c = 0; st && status_colours[c].status; c++)
				if (strcmp(status_colours[c].status, st) == 0)
					ao_buf_printf(out, ", fillcolor=\"%s\"", status_colours[c].fill);
			ao_buf_append(out, "];\n");
		}
	}

	/* edges: dependencies (branch edges labelled), then parent -> child */
	for (size_t i = 0; i < steps->n; i++)
	{
		const ao_wf_step *s = &steps->steps[i];

		for (size_t d = 0; d < s->ndeps; d++)
		{
			int			from = ao_wf_steps_find(steps, s->deps[d]);

			if (from < 0)
				continue;
			ao_buf_reset(&label);
			if (steps->steps[from].type && strcmp(steps->steps[from].type, "branch") == 0)
				branch_label(&steps->steps[from], s->id, &label);
			if (mermaid)
			{
				if (label.len)
					ao_buf_printf(out, "  n%d -->|%s| n%zu\n", from, label.data, i);
				else
					ao_buf_printf(out, "  n%d --> n%zu\n", from, i);
			}
			else
			{
				ao_buf_printf(out, "  n%d -> n%zu", from, i);
				if (label.len)
					ao_buf_printf(out, " [label=\"%s\"]", label.data);
				ao_buf_append(out, ";\n");
			}
		}
		if (s->parent >= 0)
		{
			if (mermaid)
				ao_buf_printf(out, "  n%d -.-> n%zu\n", s->parent, i);
			else
				ao_buf_printf(out, "  n%d -> n%zu [style=dashed];\n", s->parent, i);
		}
	}

	if (mermaid && status)
	{
		for (int c = 0; status_colours[c].status; c++)
			ao_buf_printf(out, "  classDef %s fill:%s\n", status_colours[c].status,
						  status_colours[c].fill);
		for (size_t i = 0; i < steps->n; i++)
		{
			const char *st = status(arg, steps->steps[i].id);

			for (int c = 0; st && status_colours[c].status; c++)
				if (strcmp(status_colours[c].status, st) == 0)
					ao_buf_printf(out, "  class n%zu %s\n", i, st);
		}
	}
	if (!mermaid)
		ao_buf_append(out, "}\n");
	ao_buf_free(&detail);
	ao_buf_free(&label);
	return 0;
}
