/*-------------------------------------------------------------------------
 *
 * ao_workflow.c
 *	  Normalisation, flattening and structural checks of workflow
 *	  definitions and agent plans.
 *
 * The order of checks matters for the quality of the errors: a document
 * that does not match its JSON Schema is reported only with the schema's
 * problems, because graph checks on a misshapen document would add noise.
 * A schema-valid document is then checked as a graph over all steps, nested
 * ones included (their ids share one namespace, since ${id.output} must be
 * unambiguous), and finally every ${...} reference is resolved statically.
 *
 * Nothing an LLM writes may become SQL (DESIGN.md section 9): the built-in
 * database.query tool, wherever it is named (a step's tool, a compensate
 * action), must be given a literal "query" without ${...} references --
 * values reach the statement only as bound parameters ("params") -- and it
 * is never offered to a model among an llm step's tools.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_workflow.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_workflow.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ao_dag.h"
#include "ao_json_schema.h"
#include "ao_template.h"

/* Keys of a step whose values are not templates (conditions, schemas, children). */
static const char *const not_templated[] = {
	"id", "type", "depends_on", "when", "while", "cases", "else", "steps",
	"step", "output_schema", "response_schema", "schema", "lock", NULL
};

/* The built-in tool that runs the SQL statement of its input. */
#define SQL_TOOL "database.query"

/* Problems of the SQL checks (see check_sql_tool and check_model_tools). */
#define MSG_SQL_INPUT "database.query needs an input object with a literal \"query\" string"
#define MSG_SQL_REFERENCE "a ${...} reference cannot be used inside a SQL statement: " \
	"pass values as bound parameters in \"params\" ($1, $2, ...)"
#define MSG_SQL_PARAMS "\"params\" must be an array of values bound to $1, $2, ..."
#define MSG_SQL_MODEL_TOOL "database.query cannot be offered to a model as a tool"

/*
 * Give a nested step (a parallel child, a loop's step) what the design
 * notes' example leaves out: an id, generated stable as <parent>[<n>]
 * (0-based), and a type inferred from its members (tool when "tool" is
 * present, llm when "prompt" or "messages" is).
 */
static void
complete_nested_step(json_object *step, const char *parent_id, size_t n)
{
	if (!json_object_object_get_ex(step, "type", NULL))
	{
		if (json_object_object_get_ex(step, "tool", NULL))
			json_object_object_add(step, "type", json_object_new_string("tool"));
		else if (json_object_object_get_ex(step, "prompt", NULL) ||
				 json_object_object_get_ex(step, "messages", NULL))
			json_object_object_add(step, "type", json_object_new_string("llm"));
	}
	if (!json_object_object_get_ex(step, "id", NULL) && parent_id != NULL)
	{
		ao_buf		id;

		ao_buf_init(&id);
		ao_buf_printf(&id, "%s[%zu]", parent_id, n);
		json_object_object_add(step, "id", json_object_new_string(id.data));
		ao_buf_free(&id);
	}
}

/*
 * Normalise a steps array, recursively: "kind" becomes "type"; nested
 * steps (parent_id given: the enclosing step's id) get generated ids and
 * inferred types (complete_nested_step).
 */
static void
normalize_steps(json_object *steps, const char *parent_id)
{
	if (!json_object_is_type(steps, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(steps); i++)
	{
		json_object *step = json_object_array_get_idx(steps, i);
		json_object *kind;
		json_object *child;
		json_object *idv;
		const char *id;

		if (!json_object_is_type(step, json_type_object))
			continue;
		if (json_object_object_get_ex(step, "kind", &kind) &&
			!json_object_object_get_ex(step, "type", NULL))
		{
			json_object_object_add(step, "type", json_object_get(kind));
			json_object_object_del(step, "kind");
		}
		if (parent_id != NULL)
			complete_nested_step(step, parent_id, i);
		id = json_object_object_get_ex(step, "id", &idv) && json_object_is_type(idv, json_type_string)
			? json_object_get_string(idv) : NULL;
		if (json_object_object_get_ex(step, "steps", &child))
			normalize_steps(child, id);
		if (json_object_object_get_ex(step, "step", &child) &&
			json_object_is_type(child, json_type_object))
		{
			json_object *wrap = json_object_new_array();

			json_object_array_add(wrap, json_object_get(child));
			normalize_steps(wrap, id);
			json_object_put(wrap);
		}
	}
}

/* See ao_workflow.h. */
json_object *
ao_workflow_normalize(json_object *def, const char **base_path)
{
	json_object *copy = NULL;
	json_object *body;
	json_object *steps;

	/* a JSON null document is NULL in json-c, which deep copy refuses */
	if (def == NULL)
	{
		if (base_path)
			*base_path = "";
		return NULL;
	}
	if (json_object_deep_copy(def, &copy, NULL) != 0)
		ao_oom(0);
	body = ao_workflow_body(copy);
	if (base_path)
		*base_path = (body != copy) ? "/workflow" : "";
	if (json_object_is_type(body, json_type_object) &&
		json_object_object_get_ex(body, "steps", &steps))
		normalize_steps(steps, NULL);
	return copy;
}

/* See ao_workflow.h. */
json_object *
ao_workflow_body(json_object *normalized)
{
	json_object *inner;

	if (json_object_is_type(normalized, json_type_object) &&
		json_object_object_get_ex(normalized, "workflow", &inner))
		return inner;
	return normalized;
}

/* Borrowed string member of obj, or NULL. */
static const char *
get_string(json_object *obj, const char *key)
{
	json_object *v;

	if (json_object_is_type(obj, json_type_object) &&
		json_object_object_get_ex(obj, key, &v) &&
		json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

/* Append one step (and, recursively, its children) to out. */
static void
add_step(ao_wf_steps *out, size_t *cap, json_object *obj, const char *path,
		 int parent, int top, int in_loop)
{
	ao_wf_step *s;
	json_object *deps;
	json_object *child;
	int			self;
	ao_buf		p;

	if (!json_object_is_type(obj, json_type_object) || get_string(obj, "id") == NULL)
		return;
	if (out->n == *cap)
	{
		*cap = *cap ? *cap * 2 : 16;
		out->steps = ao_realloc(out->steps, *cap * sizeof(ao_wf_step));
	}
	self = (int) out->n++;
	s = &out->steps[self];
	memset(s, 0, sizeof(*s));
	s->id = get_string(obj, "id");
	s->type = get_string(obj, "type");
	s->obj = obj;
	s->path = ao_strndup(path, strlen(path));
	s->parent = parent;
	s->top = top < 0 ? self : top;
	s->in_loop = in_loop;
	if (json_object_object_get_ex(obj, "depends_on", &deps) &&
		json_object_is_type(deps, json_type_array))
	{
		size_t		n = json_object_array_length(deps);

		s->deps = ao_calloc(n + 1, sizeof(char *));
		for (size_t i = 0; i < n; i++)
		{
			json_object *d = json_object_array_get_idx(deps, i);

			if (json_object_is_type(d, json_type_string))
				s->deps[s->ndeps++] = json_object_get_string(d);
		}
	}
	top = out->steps[self].top;
	ao_buf_init(&p);
	if (json_object_object_get_ex(obj, "steps", &child) &&
		json_object_is_type(child, json_type_array))
	{
		for (size_t i = 0; i < json_object_array_length(child); i++)
		{
			ao_buf_reset(&p);
			ao_buf_append(&p, path);
			ao_buf_printf(&p, "/steps/%zu", i);
			add_step(out, cap, json_object_array_get_idx(child, i), p.data,
					 self, top, in_loop);
		}
	}
	if (json_object_object_get_ex(obj, "step", &child))
	{
		ao_buf_reset(&p);
		ao_buf_append(&p, path);
		ao_buf_append(&p, "/step");
		add_step(out, cap, child, p.data, self, top, 1);
	}
	ao_buf_free(&p);
}

/* Add dep to the dependency list of step s (implicit branch edges). */
static void
add_dep(ao_wf_step *s, const char *dep)
{
	for (size_t i = 0; i < s->ndeps; i++)
		if (strcmp(s->deps[i], dep) == 0)
			return;
	s->deps = ao_realloc(s->deps, (s->ndeps + 2) * sizeof(char *));
	s->deps[s->ndeps++] = dep;
}

/* Call fn for every step id listed in a branch step's cases[].then and else. */
static void
for_each_branch_target(json_object *branch,
					   void (*fn) (void *, const char *, const char *), void *arg,
					   const char *branch_path)
{
	json_object *cases;
	json_object *list;
	ao_buf		p;

	ao_buf_init(&p);
	if (json_object_object_get_ex(branch, "cases", &cases) &&
		json_object_is_type(cases, json_type_array))
	{
		for (size_t c = 0; c < json_object_array_length(cases); c++)
		{
			json_object *cs = json_object_array_get_idx(cases, c);

			if (!json_object_object_get_ex(cs, "then", &list) ||
				!json_object_is_type(list, json_type_array))
				continue;
			for (size_t i = 0; i < json_object_array_length(list); i++)
			{
				ao_buf_reset(&p);
				ao_buf_printf(&p, "%s/cases/%zu/then/%zu", branch_path, c, i);
				fn(arg, p.data, json_object_get_string(json_object_array_get_idx(list, i)));
			}
		}
	}
	if (json_object_object_get_ex(branch, "else", &list) &&
		json_object_is_type(list, json_type_array))
	{
		for (size_t i = 0; i < json_object_array_length(list); i++)
		{
			ao_buf_reset(&p);
			ao_buf_printf(&p, "%s/else/%zu", branch_path, i);
			fn(arg, p.data, json_object_get_string(json_object_array_get_idx(list, i)));
		}
	}
	ao_buf_free(&p);
}

struct check_ctx;

/* A branch step being visited, for the branch-target callbacks. */
typedef struct edge_ctx
{
	ao_wf_steps *steps;
	int			branch;
	struct check_ctx *check;	/* set when checking, NULL when building */
} edge_ctx;

/* Branch target callback of ao_wf_steps_build: the target depends on the branch. */
static void
add_branch_edge(void *arg, const char *path, const char *target)
{
	edge_ctx   *ctx = arg;
	int			t = ao_wf_steps_find(ctx->steps, target);

	(void) path;
	if (t >= 0 && t != ctx->branch)
		add_dep(&ctx->steps->steps[t], ctx->steps->steps[ctx->branch].id);
}

/* See ao_workflow.h. */
void
ao_wf_steps_build(json_object *body, const char *base_path, ao_wf_steps *out)
{
	json_object *steps;
	size_t		cap = 0;
	ao_buf		p;

	out->steps = NULL;
	out->n = 0;
	if (!json_object_object_get_ex(body, "steps", &steps) ||
		!json_object_is_type(steps, json_type_array))
		return;
	ao_buf_init(&p);
	for (size_t i = 0; i < json_object_array_length(steps); i++)
	{
		ao_buf_reset(&p);
		ao_buf_printf(&p, "%s/steps/%zu", base_path, i);
		add_step(out, &cap, json_object_array_get_idx(steps, i), p.data, -1, -1, 0);
	}
	ao_buf_free(&p);
	for (size_t i = 0; i < out->n; i++)
	{
		if (out->steps[i].type && strcmp(out->steps[i].type, "branch") == 0)
		{
			edge_ctx	ctx = {out, (int) i, NULL};

			for_each_branch_target(out->steps[i].obj, add_branch_edge, &ctx,
								   out->steps[i].path);
		}
	}
}

/* See ao_workflow.h. */
void
ao_wf_steps_free(ao_wf_steps *s)
{
	for (size_t i = 0; i < s->n; i++)
	{
		free(s->steps[i].path);
		free(s->steps[i].deps);
	}
	free(s->steps);
	s->steps = NULL;
	s->n = 0;
}

/* See ao_workflow.h; linear, which is fine for the sizes the schema allows. */
int
ao_wf_steps_find(const ao_wf_steps *s, const char *id)
{
	if (id == NULL)
		return -1;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->steps[i].id, id) == 0)
			return (int) i;
	return -1;
}

/* State shared by the graph and reference checks. */
typedef struct check_ctx
{
	ao_wf_steps steps;
	ao_dag_node *nodes;
	int			dag_ok;
	int			current;		/* step whose templates are scanned, -1 = output */
	int			in_compensate;	/* scanning the step's compensate member */
	const char *sql_path;		/* a database.query "query" string not to scan
								 * as a template (check_sql_tool reports it) */
	int			problems;
	ao_problem_fn cb;
	void	   *arg;
	const ao_workflow_hooks *hooks;
} check_ctx;

/* Report one problem and count it. */
static void
problem(check_ctx *ctx, const char *path, const char *message)
{
	ctx->problems++;
	ctx->cb(ctx->arg, path, message);
}

/* Counting wrapper for problems reported by other core modules. */
static void
forward_problem(void *arg, const char *path, const char *message)
{
	problem((check_ctx *) arg, path, message);
}

/*
 * A branch target must be a top-level step other than the branch itself,
 * and only a top-level branch can choose: the implicit edge from a nested
 * branch would make a top-level step depend on a nested one.
 */
static void
check_branch_target(void *arg, const char *path, const char *target)
{
	edge_ctx   *e = arg;
	check_ctx  *ctx = e->check;
	int			t = ao_wf_steps_find(e->steps, target);
	const ao_wf_step *b = &e->steps->steps[e->branch];
	ao_buf		m;

	ao_buf_init(&m);
	if (t < 0)
		ao_buf_printf(&m, "unknown step \"%s\" in branch", target);
	else if (t == e->branch)
		ao_buf_printf(&m, "branch \"%s\" cannot choose itself", target);
	else if (e->steps->steps[t].parent >= 0)
		ao_buf_printf(&m, "branch target \"%s\" is a nested step; choose its top-level parent instead",
					  target);
	else if (b->parent >= 0)
		ao_buf_printf(&m, "branch \"%s\" is a nested step and cannot choose \"%s\"; only a top-level branch can choose steps",
					  b->id, target);
	if (m.len)
		problem(ctx, path, m.data);
	ao_buf_free(&m);
}

/* Is step index anc a (transitive) dependency of step index desc? */
static int
depends_on(check_ctx *ctx, int desc, int anc)
{
	return ctx->dag_ok &&
		ao_dag_depends_on(ctx->nodes, ctx->steps.n, (size_t) desc, (size_t) anc);
}

/* Check one ${...} reference found in the current step (or output). */
static void
check_reference(void *arg, const char *path, const ao_ref *ref, int whole)
{
	check_ctx  *ctx = arg;
	ao_wf_step *cur = ctx->current >= 0 ? &ctx->steps.steps[ctx->current] : NULL;
	ao_buf		m;
	int			r;

	(void) whole;
	if (ctx->sql_path && strcmp(path, ctx->sql_path) == 0)
		return;
	ao_buf_init(&m);
	switch (ref->root)
	{
		case AO_REF_INPUT:
		case AO_REF_MEMORY:
			break;
		case AO_REF_ITEM:
		case AO_REF_INDEX:
			if (cur == NULL || !cur->in_loop)
				ao_buf_printf(&m, "${%s} is only available inside a loop's step",
							  ref->root == AO_REF_ITEM ? "item" : "index");
			break;
		case AO_REF_STEP:
			r = ao_wf_steps_find(&ctx->steps, ref->step_id);
			if (r < 0)
				ao_buf_printf(&m, "reference to unknown step \"%s\"", ref->step_id);
			else if (cur == NULL)
				break;			/* the workflow output may use any step */
			else if (ctx->in_compensate && r == ctx->current)
				break;			/* compensation runs after its own step succeeded */
			else if (ctx->steps.steps[r].top == cur->top)
				ao_buf_printf(&m, "step \"%s\" cannot reference \"%s\": they run in the same step group",
							  cur->id, ref->step_id);
			else if (!depends_on(ctx, cur->top, ctx->steps.steps[r].top))
				ao_buf_printf(&m, "step \"%s\" references \"%s\", which is not among its dependencies; add \"%s\" to depends_on",
							  ctx->steps.steps[cur->top].id, ref->step_id,
							  ctx->steps.steps[ctx->steps.steps[r].top].id);
			break;
	}
	if (m.len)
		problem(ctx, path, m.data);
	ao_buf_free(&m);
}

/*
 * Template syntax problem forwarder of scan_step_templates: a database.query
 * "query" string is not a template, and check_sql_tool has already said why
 * a "${" does not belong there.
 */
static void
forward_template_problem(void *arg, const char *path, const char *message)
{
	check_ctx  *ctx = arg;

	if (ctx->sql_path && strcmp(path, ctx->sql_path) == 0)
		return;
	problem(ctx, path, message);
}

/*
 * If holder (a step or its compensate action) names database.query, append
 * the JSON pointer of its input's "query" to p (which holds holder's path)
 * and return p's data; else return NULL.
 */
static const char *
sql_query_path(json_object *holder, ao_buf *p)
{
	const char *tool = get_string(holder, "tool");

	if (tool == NULL || strcmp(tool, SQL_TOOL) != 0)
		return NULL;
	ao_buf_append(p, "/input/query");
	return p->data;
}

/* Scan the templated members of one step object. */
static void
scan_step_templates(check_ctx *ctx, int index)
{
	ao_wf_step *s = &ctx->steps.steps[index];
	ao_buf		p;
	ao_buf		q;

	ao_buf_init(&p);
	ao_buf_init(&q);
	ctx->current = index;
	{
		/* the iteration macro declares variables: give it a block */
		json_object_object_foreach(s->obj, key, value)
		{
			int			skip = 0;

			for (const char *const *k = not_templated; *k; k++)
				if (strcmp(key, *k) == 0)
					skip = 1;
			if (skip)
				continue;
			ao_buf_reset(&p);
			ao_buf_append(&p, s->path);
			ao_jsonptr_push_key(&p, key);
			ctx->in_compensate = strcmp(key, "compensate") == 0;
			ao_buf_reset(&q);
			if (strcmp(key, "input") == 0)
			{
				ao_buf_append(&q, s->path);
				ctx->sql_path = sql_query_path(s->obj, &q);
			}
			else if (ctx->in_compensate)
			{
				ao_buf_append(&q, p.data);
				ctx->sql_path = sql_query_path(value, &q);
			}
			ao_template_scan(value, p.data, check_reference, ctx,
							 forward_template_problem, ctx);
			ctx->in_compensate = 0;
			ctx->sql_path = NULL;
		}
	}
	ao_buf_free(&q);
	ao_buf_free(&p);
}

/* A problem forwarder that prefixes paths (for schemas embedded in a definition). */
typedef struct prefixed
{
	check_ctx  *ctx;
	const char *prefix;
} prefixed;

/* Report a problem found inside an embedded document under its prefix. */
static void
forward_prefixed(void *arg, const char *path, const char *message)
{
	prefixed   *p = arg;
	ao_buf		full;

	ao_buf_init(&full);
	ao_buf_append(&full, p->prefix);
	ao_buf_append(&full, path);
	problem(p->ctx, full.data, message);
	ao_buf_free(&full);
}

/* Check that obj[key], when present, is a usable JSON Schema. */
static void
check_embedded_schema(check_ctx *ctx, json_object *obj, const char *path, const char *key)
{
	json_object *schema;
	ao_buf		p;
	prefixed	fw;

	if (!json_object_object_get_ex(obj, key, &schema))
		return;
	ao_buf_init(&p);
	ao_buf_append(&p, path);
	ao_jsonptr_push_key(&p, key);
	fw.ctx = ctx;
	fw.prefix = p.data;
	ao_json_schema_check(schema, forward_prefixed, &fw);
	ao_buf_free(&p);
}

/*
 * If holder (a step, or a step's compensate action at path) names the
 * built-in database.query, its input must be an object with a literal
 * "query" string free of ${...} references, and its optional "params" an
 * array (whose values may be templates: they are bound, never spliced).
 */
static void
check_sql_tool(check_ctx *ctx, json_object *holder, const char *path)
{
	const char *tool = get_string(holder, "tool");
	json_object *input;
	json_object *v;
	ao_buf		p;

	if (tool == NULL || strcmp(tool, SQL_TOOL) != 0)
		return;
	ao_buf_init(&p);
	ao_buf_append(&p, path);
	ao_buf_append(&p, "/input");
	/*
	 * No input, or an input object without "query", cannot be the way in
	 * for SQL and fails at run time with its own message; a template in
	 * place of the object (or of the query) is what is refused here.
	 */
	if (!json_object_object_get_ex(holder, "input", &input))
		;
	else if (!json_object_is_type(input, json_type_object))
		problem(ctx, p.data, MSG_SQL_INPUT);
	else if (!json_object_object_get_ex(input, "query", &v))
		;
	else
	{
		size_t		input_len = p.len;

		ao_buf_append(&p, "/query");
		if (!json_object_is_type(v, json_type_string))
			problem(ctx, p.data, MSG_SQL_INPUT);
		else if (ao_template_has_reference(v))
			problem(ctx, p.data, MSG_SQL_REFERENCE);
		ao_buf_truncate(&p, input_len);
		ao_buf_append(&p, "/params");
		if (json_object_object_get_ex(input, "params", &v) &&
			!json_object_is_type(v, json_type_array))
			problem(ctx, p.data, MSG_SQL_PARAMS);
	}
	ao_buf_free(&p);
}

/* An llm step's tools (offered to the model) must not include database.query. */
static void
check_model_tools(check_ctx *ctx, ao_wf_step *s)
{
	json_object *tools;
	ao_buf		p;

	if (!json_object_object_get_ex(s->obj, "tools", &tools) ||
		!json_object_is_type(tools, json_type_array))
		return;
	ao_buf_init(&p);
	for (size_t i = 0; i < json_object_array_length(tools); i++)
	{
		json_object *t = json_object_array_get_idx(tools, i);

		if (json_object_is_type(t, json_type_string) &&
			strcmp(json_object_get_string(t), SQL_TOOL) == 0)
		{
			ao_buf_reset(&p);
			ao_buf_printf(&p, "%s/tools/%zu", s->path, i);
			problem(ctx, p.data, MSG_SQL_MODEL_TOOL);
		}
	}
	ao_buf_free(&p);
}

/*
 * The SQL safety checks of one step: its own tool, its compensate action,
 * the tools it offers to a model.
 */
static void
check_sql_safety(check_ctx *ctx, ao_wf_step *s)
{
	json_object *compensate;

	check_sql_tool(ctx, s->obj, s->path);
	if (json_object_object_get_ex(s->obj, "compensate", &compensate))
	{
		ao_buf		p;

		ao_buf_init(&p);
		ao_buf_append(&p, s->path);
		ao_buf_append(&p, "/compensate");
		check_sql_tool(ctx, compensate, p.data);
		ao_buf_free(&p);
	}
	check_model_tools(ctx, s);
}

/* Hand tools and conditions of one step to the caller's hooks. */
static void
visit_hooks(check_ctx *ctx, ao_wf_step *s)
{
	const ao_workflow_hooks *h = ctx->hooks;
	json_object *v;
	ao_buf		p;

	if (h == NULL)
		return;
	ao_buf_init(&p);
#define SUBPATH(suffix) (ao_buf_reset(&p), ao_buf_append(&p, s->path), ao_buf_append(&p, suffix), p.data)
	if (h->tool)
	{
		if (get_string(s->obj, "tool"))
			h->tool(h->arg, SUBPATH("/tool"), get_string(s->obj, "tool"));
		if (json_object_object_get_ex(s->obj, "compensate", &v) && get_string(v, "tool"))
			h->tool(h->arg, SUBPATH("/compensate/tool"), get_string(v, "tool"));
		if (json_object_object_get_ex(s->obj, "tools", &v) &&
			json_object_is_type(v, json_type_array))
		{
			for (size_t i = 0; i < json_object_array_length(v); i++)
			{
				ao_buf_reset(&p);
				ao_buf_printf(&p, "%s/tools/%zu", s->path, i);
				h->tool(h->arg, p.data,
						json_object_get_string(json_object_array_get_idx(v, i)));
			}
		}
	}
	if (h->condition)
	{
		if (get_string(s->obj, "when"))
			h->condition(h->arg, SUBPATH("/when"), get_string(s->obj, "when"));
		if (get_string(s->obj, "while"))
			h->condition(h->arg, SUBPATH("/while"), get_string(s->obj, "while"));
		if (json_object_object_get_ex(s->obj, "cases", &v) &&
			json_object_is_type(v, json_type_array))
		{
			for (size_t i = 0; i < json_object_array_length(v); i++)
			{
				const char *w = get_string(json_object_array_get_idx(v, i), "when");

				ao_buf_reset(&p);
				ao_buf_printf(&p, "%s/cases/%zu/when", s->path, i);
				if (w)
					h->condition(h->arg, p.data, w);
			}
		}
	}
#undef SUBPATH
	ao_buf_free(&p);
}

/* See ao_workflow.h. */
int
ao_workflow_check(json_object *normalized, json_object *schema,
				  const ao_workflow_hooks *hooks, ao_problem_fn cb, void *arg)
{
	check_ctx	ctx;
	json_object *body = ao_workflow_body(normalized);
	const char *base = (body != normalized) ? "/workflow" : "";
	json_object *output;
	ao_buf		p;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cb = cb;
	ctx.arg = arg;
	ctx.hooks = hooks;
	ctx.current = -1;

	if (schema != NULL)
	{
		ctx.problems = ao_json_schema_validate(schema, normalized, cb, arg);
		if (ctx.problems > 0)
			return ctx.problems;
	}
	if (!json_object_is_type(body, json_type_object))
	{
		problem(&ctx, base, "a workflow must be a JSON object");
		return ctx.problems;
	}

	ao_wf_steps_build(body, base, &ctx.steps);
	ctx.nodes = ao_calloc(ctx.steps.n + 1, sizeof(ao_dag_node));
	ao_buf_init(&p);
	for (size_t i = 0; i < ctx.steps.n; i++)
	{
		ao_wf_step *s = &ctx.steps.steps[i];
		json_object *v;

		ctx.nodes[i].id = s->id;
		ctx.nodes[i].deps = s->deps;
		ctx.nodes[i].ndeps = s->ndeps;
		ctx.nodes[i].path = s->path;

		if (s->parent >= 0 && json_object_object_get_ex(s->obj, "depends_on", NULL))
		{
			ao_buf_reset(&p);
			ao_buf_printf(&p, "%s/depends_on", s->path);
			problem(&ctx, p.data,
					"a nested step cannot declare depends_on; it starts with its parent");
		}
		/*
		 * Only the declared depends_on: s->deps also holds the implicit
		 * branch edges, which have no path (check_branch_target reports a
		 * nested branch).
		 */
		if (s->parent < 0 && json_object_object_get_ex(s->obj, "depends_on", &v) &&
			json_object_is_type(v, json_type_array))
		{
			for (size_t d = 0; d < json_object_array_length(v); d++)
			{
				json_object *dep = json_object_array_get_idx(v, d);
				int			t = json_object_is_type(dep, json_type_string) ?
					ao_wf_steps_find(&ctx.steps, json_object_get_string(dep)) : -1;

				if (t >= 0 && ctx.steps.steps[t].parent >= 0)
				{
					ao_buf_reset(&p);
					ao_buf_printf(&p, "%s/depends_on/%zu", s->path, d);
					problem(&ctx, p.data, "cannot depend on a nested step; depend on its top-level parent instead");
				}
			}
		}
		if (s->type && strcmp(s->type, "branch") == 0)
		{
			edge_ctx	e = {&ctx.steps, (int) i, &ctx};

			for_each_branch_target(s->obj, check_branch_target, &e, s->path);
		}
		visit_hooks(&ctx, s);
		check_sql_safety(&ctx, s);
		check_embedded_schema(&ctx, s->obj, s->path, "output_schema");
		check_embedded_schema(&ctx, s->obj, s->path, "response_schema");
		check_embedded_schema(&ctx, s->obj, s->path, "schema");
	}
	ao_buf_free(&p);
	check_embedded_schema(&ctx, body, base, "input_schema");

	{
		int			dag_problems = ao_dag_check(ctx.nodes, ctx.steps.n, forward_problem, &ctx);

		ctx.dag_ok = (dag_problems == 0);
	}

	/* References need a sound graph to judge reachability. */
	if (ctx.dag_ok)
	{
		for (size_t i = 0; i < ctx.steps.n; i++)
			scan_step_templates(&ctx, (int) i);
		if (json_object_object_get_ex(body, "output", &output))
		{
			ao_buf		op;

			ao_buf_init(&op);
			ao_buf_append(&op, base);
			ao_buf_append(&op, "/output");
			ctx.current = -1;
			ao_template_scan(output, op.data, check_reference, &ctx, forward_problem, &ctx);
			ao_buf_free(&op);
		}
	}

	free(ctx.nodes);
	ao_wf_steps_free(&ctx.steps);
	return ctx.problems;
}

/*
 * See ao_workflow.h. A string must match the schema's duration grammar,
 * [0-9]+(.[0-9]+)?(ms|s|m|h), checked here before strtod, which alone would
 * also take signs, spaces, exponents, hex, "inf" and "nan".
 */
double
ao_duration_ms(json_object *value)
{
	const char *s;
	const char *p;
	double		unit;
	double		n;

	if (json_object_is_type(value, json_type_int) ||
		json_object_is_type(value, json_type_double))
	{
		n = json_object_get_double(value) * 1000.0;
		return (n >= 0 && isfinite(n)) ? n : -1;
	}
	if (!json_object_is_type(value, json_type_string))
		return -1;
	s = json_object_get_string(value);
	for (p = s; *p >= '0' && *p <= '9'; p++)
		;
	if (p == s)
		return -1;
	if (*p == '.')
	{
		const char *frac = ++p;

		for (; *p >= '0' && *p <= '9'; p++)
			;
		if (p == frac)
			return -1;
	}
	if (strcmp(p, "ms") == 0)
		unit = 1.0;
	else if (strcmp(p, "s") == 0)
		unit = 1000.0;
	else if (strcmp(p, "m") == 0)
		unit = 60000.0;
	else if (strcmp(p, "h") == 0)
		unit = 3600000.0;
	else
		return -1;
	n = strtod(s, NULL) * unit;
	return isfinite(n) ? n : -1;
}
