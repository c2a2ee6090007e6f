/*-------------------------------------------------------------------------
 *
 * ao_plan.c
 *	  Agent plans: semantic checks, optimizer, diff and the planner prompt
 *	  (see ao_plan.h). No PostgreSQL here; unit-tested in
 *	  test/unit/test_plan.c.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_plan.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_plan.h"

#include <stdlib.h>
#include <string.h>

#include "ao_dag.h"
#include "ao_json_schema.h"
#include "ao_template.h"

/* The steps array of a plan (borrowed), or NULL. */
static json_object *
plan_steps(json_object *plan)
{
	json_object *steps;

	if (plan && json_object_object_get_ex(plan, "steps", &steps) &&
		json_object_is_type(steps, json_type_array))
		return steps;
	return NULL;
}

/* A string member of obj, or NULL. */
static const char *
str_member(json_object *obj, const char *key)
{
	json_object *v;

	if (obj && json_object_is_type(obj, json_type_object) &&
		json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

static int
is_kept(const ao_plan_env *env, const char *id)
{
	for (size_t i = 0; env && i < env->nkept; i++)
		if (strcmp(env->kept[i], id) == 0)
			return 1;
	return 0;
}

static int
is_open(const ao_plan_env *env, const char *id)
{
	for (size_t i = 0; env && env->open && i < env->nopen; i++)
		if (strcmp(env->open[i], id) == 0)
			return 1;
	return 0;
}

/* Index of the plan step with this id, or -1. */
static long
step_index(json_object *steps, const char *id)
{
	size_t		n = steps ? json_object_array_length(steps) : 0;

	for (size_t i = 0; i < n; i++)
	{
		const char *sid = str_member(json_object_array_get_idx(steps, i), "id");

		if (sid && strcmp(sid, id) == 0)
			return (long) i;
	}
	return -1;
}

/*-------------------------------------------------------------------------
 * References: the step ids a value refers to, and problems with them
 *-------------------------------------------------------------------------
 */
typedef struct ref_walk
{
	json_object *steps;
	const ao_plan_env *env;
	ao_problem_fn cb;
	void	   *cbarg;
	int			problems;
	const char *self;			/* the step holding the value, or NULL */
	json_object *found;			/* array of referenced plan step ids */
} ref_walk;

/* Is id in the array of ids arr (NULL: an empty array)? */
static int
has_id(json_object *arr, const char *id)
{
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(arr, i)), id) == 0)
			return 1;
	return 0;
}

/* Append id to the array of ids arr unless it is there. */
static void
add_unique(json_object *arr, const char *id)
{
	if (!has_id(arr, id))
		json_object_array_add(arr, json_object_new_string(id));
}

static void
ref_problem(ref_walk *w, const char *path, const char *message)
{
	w->problems++;
	if (w->cb)
		w->cb(w->cbarg, path, message);
}

static void
on_ref(void *arg, const char *path, const ao_ref *ref, int whole)
{
	ref_walk   *w = arg;
	ao_buf		msg;

	(void) whole;
	ao_buf_init(&msg);
	switch (ref->root)
	{
		case AO_REF_INPUT:
		case AO_REF_MEMORY:
			break;
		case AO_REF_ITEM:
		case AO_REF_INDEX:
			ao_buf_printf(&msg, "${%s} is only available inside a loop, and plans have no loops", ref->text);
			ref_problem(w, path, msg.data);
			break;
		case AO_REF_STEP:
			if (w->self && strcmp(ref->step_id, w->self) == 0)
			{
				ao_buf_printf(&msg, "step \"%s\" refers to its own output in ${%s}", ref->step_id, ref->text);
				ref_problem(w, path, msg.data);
			}
			else if (step_index(w->steps, ref->step_id) >= 0)
				add_unique(w->found, ref->step_id);
			else if (!is_kept(w->env, ref->step_id))
			{
				ao_buf_printf(&msg, "unknown step \"%s\" in ${%s}", ref->step_id, ref->text);
				ref_problem(w, path, msg.data);
			}
			break;
	}
	ao_buf_free(&msg);
}

static void
on_syntax(void *arg, const char *path, const char *message)
{
	ref_problem((ref_walk *) arg, path, message);
}

/* Collects the kept steps not finished yet that a value refers to. */
static void
on_open_ref(void *arg, const char *path, const ao_ref *ref, int whole)
{
	ref_walk   *w = arg;

	(void) path;
	(void) whole;
	if (ref->root == AO_REF_STEP && is_open(w->env, ref->step_id))
		add_unique(w->found, ref->step_id);
}

/* Scan value for references; plan step ids referenced go to w->found. */
static void
scan_refs(ref_walk *w, json_object *value, const char *path)
{
	if (value)
		(void) ao_template_scan(value, path, on_ref, w, on_syntax, w);
}

/* The plan step ids that step i refers to (prompt, input): a new array. */
static json_object *
step_refs(json_object *steps, size_t i, const ao_plan_env *env,
		  ao_problem_fn cb, void *cbarg, int *problems)
{
	json_object *step = json_object_array_get_idx(steps, i);
	ref_walk	w = {steps, env, cb, cbarg, 0, str_member(step, "id"), json_object_new_array()};
	ao_buf		path;
	json_object *v;

	ao_buf_init(&path);
	ao_buf_printf(&path, "/steps/%zu/prompt", i);
	if (json_object_object_get_ex(step, "prompt", &v))
		scan_refs(&w, v, path.data);
	ao_buf_reset(&path);
	ao_buf_printf(&path, "/steps/%zu/input", i);
	if (json_object_object_get_ex(step, "input", &v))
		scan_refs(&w, v, path.data);
	ao_buf_free(&path);
	if (problems)
		*problems += w.problems;
	return w.found;
}

/*
 * The complete dependencies of every step: depends_on (plan steps only;
 * kept ids are satisfied already) plus the plan steps it references.
 * Returns an array (per step) of arrays of ids.
 */
static json_object *
effective_deps(json_object *steps, const ao_plan_env *env,
			   ao_problem_fn cb, void *cbarg, int *problems)
{
	json_object *all = json_object_new_array();
	size_t		n = json_object_array_length(steps);

	for (size_t i = 0; i < n; i++)
	{
		json_object *step = json_object_array_get_idx(steps, i);
		json_object *deps = json_object_new_array();
		json_object *listed;
		json_object *refs;

		if (json_object_object_get_ex(step, "depends_on", &listed) &&
			json_object_is_type(listed, json_type_array))
			for (size_t d = 0; d < json_object_array_length(listed); d++)
			{
				const char *id = json_object_get_string(json_object_array_get_idx(listed, d));

				if (id && step_index(steps, id) >= 0)
					add_unique(deps, id);
			}
		refs = step_refs(steps, i, env, cb, cbarg, problems);
		for (size_t r = 0; r < json_object_array_length(refs); r++)
			add_unique(deps, json_object_get_string(json_object_array_get_idx(refs, r)));
		json_object_put(refs);
		json_object_array_add(all, deps);
	}
	return all;
}

/* DAG nodes over steps with the given dependency lists (borrowed). */
static ao_dag_node *
dag_nodes(json_object *steps, json_object *deps, const char ***dep_store)
{
	size_t		n = json_object_array_length(steps);
	ao_dag_node *nodes = ao_calloc(n ? n : 1, sizeof(ao_dag_node));
	const char **store;
	size_t		total = 0;
	size_t		k = 0;

	for (size_t i = 0; i < n; i++)
		total += json_object_array_length(json_object_array_get_idx(deps, i));
	store = ao_calloc(total ? total : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
	{
		json_object *d = json_object_array_get_idx(deps, i);

		nodes[i].id = str_member(json_object_array_get_idx(steps, i), "id");
		nodes[i].deps = store + k;
		nodes[i].ndeps = json_object_array_length(d);
		for (size_t j = 0; j < nodes[i].ndeps; j++)
			store[k++] = json_object_get_string(json_object_array_get_idx(d, j));
		nodes[i].path = NULL;
	}
	*dep_store = store;
	return nodes;
}

/*-------------------------------------------------------------------------
 * Checks
 *-------------------------------------------------------------------------
 */
typedef struct counted
{
	ao_problem_fn cb;
	void	   *cbarg;
	int			n;
} counted;

static void
count_problem(void *arg, const char *path, const char *message)
{
	counted    *c = arg;

	c->n++;
	if (c->cb)
		c->cb(c->cbarg, path, message);
}

int
ao_plan_check(json_object *plan, const ao_plan_env *env, ao_problem_fn cb, void *cbarg)
{
	json_object *steps = plan_steps(plan);
	counted		c = {cb, cbarg, 0};
	size_t		n;
	json_object *deps;
	ao_buf		path;
	ao_buf		msg;

	if (steps == NULL)
	{
		count_problem(&c, "/steps", "a plan needs a steps array");
		return c.n;
	}
	n = json_object_array_length(steps);
	ao_buf_init(&path);
	ao_buf_init(&msg);

	for (size_t i = 0; i < n; i++)
	{
		json_object *step = json_object_array_get_idx(steps, i);
		const char *id = str_member(step, "id");
		const char *type = str_member(step, "type");
		json_object *listed;

		if (id == NULL)
			continue;			/* the schema reported it */
		{
			/* ${input...}, ${memory...} and the like mean the run's data, never a step */
			static const char *const roots[] = {"input", "memory", "item", "index", "steps", NULL};

			for (const char *const *r = roots; *r; r++)
				if (strcmp(id, *r) == 0)
				{
					ao_buf_reset(&path);
					ao_buf_printf(&path, "/steps/%zu/id", i);
					ao_buf_reset(&msg);
					ao_buf_printf(&msg, "step id \"%s\" is reserved (${%s...} names the run's data, not a step)", id, id);
					count_problem(&c, path.data, msg.data);
				}
		}
		for (size_t j = 0; j < i; j++)
		{
			const char *other = str_member(json_object_array_get_idx(steps, j), "id");

			if (other && strcmp(other, id) == 0)
			{
				ao_buf_reset(&path);
				ao_buf_printf(&path, "/steps/%zu/id", i);
				ao_buf_reset(&msg);
				ao_buf_printf(&msg, "duplicate step id \"%s\" (first at /steps/%zu)", id, j);
				count_problem(&c, path.data, msg.data);
				break;
			}
		}
		if (json_object_object_get_ex(step, "depends_on", &listed) &&
			json_object_is_type(listed, json_type_array))
			for (size_t d = 0; d < json_object_array_length(listed); d++)
			{
				const char *dep = json_object_get_string(json_object_array_get_idx(listed, d));

				ao_buf_reset(&path);
				ao_buf_printf(&path, "/steps/%zu/depends_on/%zu", i, d);
				ao_buf_reset(&msg);
				if (dep && strcmp(dep, id) == 0)
					ao_buf_printf(&msg, "step \"%s\" depends on itself", id);
				else if (dep && step_index(steps, dep) < 0 && !is_kept(env, dep))
					ao_buf_printf(&msg, "unknown step \"%s\" in depends_on", dep);
				if (msg.len > 0)
					count_problem(&c, path.data, msg.data);
			}
		if (type && strcmp(type, "tool") == 0)
		{
			const char *tool = str_member(step, "tool");
			const char *problem = NULL;

			if (tool && strcmp(tool, "database.query") == 0)
				problem = "database.query cannot be used in a plan: nothing a model writes is executed as SQL";
			else if (tool && env && env->tool_problem)
				problem = env->tool_problem(env->arg, tool);
			if (problem)
			{
				ao_buf_reset(&path);
				ao_buf_printf(&path, "/steps/%zu/tool", i);
				count_problem(&c, path.data, problem);
			}
		}
		{
			const char *model = str_member(step, "model");
			const char *problem = model && env && env->model_problem ? env->model_problem(env->arg, model) : NULL;

			if (problem)
			{
				ao_buf_reset(&path);
				ao_buf_printf(&path, "/steps/%zu/model", i);
				count_problem(&c, path.data, problem);
			}
		}
	}

	/* references (reported while collecting), then cycles over all edges */
	deps = effective_deps(steps, env, count_problem, &c, NULL);
	{
		json_object *out;
		ref_walk	w = {steps, env, count_problem, &c, 0, NULL, json_object_new_array()};
		const char **store;
		ao_dag_node *nodes = dag_nodes(steps, deps, &store);

		if (json_object_object_get_ex(plan, "output", &out))
			scan_refs(&w, out, "/output");
		json_object_put(w.found);
		(void) ao_dag_check(nodes, n, count_problem, &c);
		free(nodes);
		free(store);
	}
	json_object_put(deps);
	ao_buf_free(&path);
	ao_buf_free(&msg);
	return c.n;
}

/*-------------------------------------------------------------------------
 * Optimizer
 *-------------------------------------------------------------------------
 */
static json_object *
change(const char *action, const char *step)
{
	json_object *c = json_object_new_object();

	json_object_object_add(c, "action", json_object_new_string(action));
	if (step)
		json_object_object_add(c, "step", json_object_new_string(step));
	return c;
}

/* Record a dependency the optimizer gives step on id, unless it listed it. */
static void
note_dependency(json_object *changes, json_object *step, json_object *listed, const char *id,
				const char *reason)
{
	json_object *c;

	if (has_id(listed, id))
		return;
	c = change("dependency_added", str_member(step, "id"));
	json_object_object_add(c, "on", json_object_new_string(id));
	json_object_object_add(c, "reason", json_object_new_string(reason));
	json_object_array_add(changes, c);
}

/*
 * A copy of s with every reference to step "from" pointing at "to":
 * "${from." and "${steps.from." (spaces allowed after "${"); an escaped
 * "$${" is left alone.
 */
static char *
retarget_string(const char *s, const char *from, const char *to)
{
	ao_buf		out;
	size_t		flen = strlen(from);

	ao_buf_init(&out);
	ao_buf_append(&out, "");
	while (*s)
	{
		if (s[0] == '$' && s[1] == '$' && s[2] == '{')
		{
			ao_buf_append_n(&out, s, 3);
			s += 3;
			continue;
		}
		if (s[0] == '$' && s[1] == '{')
		{
			const char *p = s + 2;

			while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
				p++;
			if (strncmp(p, "steps.", 6) == 0 && strncmp(p + 6, from, flen) == 0 && p[6 + flen] == '.')
				p += 6;
			if (strncmp(p, from, flen) == 0 && p[flen] == '.')
			{
				ao_buf_append_n(&out, s, (size_t) (p - s));
				ao_buf_append(&out, to);
				s = p + flen;
				continue;
			}
		}
		ao_buf_append_n(&out, s, 1);
		s++;
	}
	return out.data;
}

/* Retarget references in every string of v (a new reference). */
static json_object *
retarget(json_object *v, const char *from, const char *to)
{
	switch (json_object_get_type(v))
	{
		case json_type_string:
			{
				char	   *s = retarget_string(json_object_get_string(v), from, to);
				json_object *r = json_object_new_string(s);

				free(s);
				return r;
			}
		case json_type_array:
			{
				json_object *r = json_object_new_array();

				for (size_t i = 0; i < json_object_array_length(v); i++)
					json_object_array_add(r, retarget(json_object_array_get_idx(v, i), from, to));
				return r;
			}
		case json_type_object:
			{
				json_object *r = json_object_new_object();

				json_object_object_foreach(v, key, val)
					json_object_object_add(r, key, retarget(val, from, to));
				return r;
			}
		default:
			return json_object_get(v);
	}
}

/* Do two id arrays hold the same ids (as sets)? */
static int
same_id_set(json_object *a, json_object *b)
{
	size_t		na = json_object_array_length(a);

	if (na != json_object_array_length(b))
		return 0;
	for (size_t i = 0; i < na; i++)
		if (!has_id(b, json_object_get_string(json_object_array_get_idx(a, i))))
			return 0;
	return 1;
}

/* A copy of plan with its steps replaced by steps (both kept as given). */
static json_object *
with_steps(json_object *plan, json_object *steps)
{
	json_object *r = json_object_new_object();

	json_object_object_foreach(plan, key, val)
	{
		if (strcmp(key, "steps") == 0)
			json_object_object_add(r, key, steps);
		else
			json_object_object_add(r, key, json_object_get(val));
	}
	return r;
}

json_object *
ao_plan_optimize(json_object *plan, const ao_plan_env *env, json_object *changes)
{
	json_object *in = plan_steps(plan);
	json_object *steps = json_object_new_array();
	json_object *result;
	json_object *deps;
	size_t		n;

	/* 1. a step with a kept id stands for the kept step */
	for (size_t i = 0; in && i < json_object_array_length(in); i++)
	{
		json_object *step = json_object_array_get_idx(in, i);
		const char *id = str_member(step, "id");

		if (id && is_kept(env, id))
		{
			json_object *c = change("kept", id);

			json_object_object_add(c, "reason", json_object_new_string("finished in an earlier plan version"));
			json_object_array_add(changes, c);
			continue;
		}
		{
			json_object *copy = NULL;

			/* a deep copy: later passes change steps in place */
			if (json_object_deep_copy(step, &copy, NULL) != 0)
				ao_oom(0);
			json_object_array_add(steps, copy);
		}
	}
	result = with_steps(plan, steps);

	/* 2. identical tool calls (same tool, input and dependencies) are made once */
	for (;;)
	{
		long		dup = -1;
		long		first = -1;

		steps = plan_steps(result);
		n = json_object_array_length(steps);
		deps = effective_deps(steps, env, NULL, NULL, NULL);
		for (size_t i = 0; i < n && dup < 0; i++)
		{
			json_object *a = json_object_array_get_idx(steps, i);

			if (!str_member(a, "type") || strcmp(str_member(a, "type"), "tool") != 0)
				continue;
			for (size_t j = i + 1; j < n && dup < 0; j++)
			{
				json_object *b = json_object_array_get_idx(steps, j);
				json_object *ia = json_object_object_get(a, "input");
				json_object *ib = json_object_object_get(b, "input");

				if (str_member(b, "type") && strcmp(str_member(b, "type"), "tool") == 0 &&
					strcmp(str_member(a, "tool"), str_member(b, "tool")) == 0 &&
					((ia == NULL && ib == NULL) || (ia && ib && ao_json_equal(ia, ib))) &&
					same_id_set(json_object_array_get_idx(deps, i), json_object_array_get_idx(deps, j)))
				{
					first = (long) i;
					dup = (long) j;
				}
			}
		}
		json_object_put(deps);
		if (dup < 0)
			break;
		{
			const char *keep = str_member(json_object_array_get_idx(steps, first), "id");
			const char *drop = str_member(json_object_array_get_idx(steps, dup), "id");
			json_object *c = change("merged", drop);
			json_object *next = json_object_new_array();
			json_object *tmp;
			json_object *out;

			json_object_object_add(c, "into", json_object_new_string(keep));
			json_object_array_add(changes, c);
			for (size_t i = 0; i < n; i++)
			{
				json_object *s;
				json_object *listed;

				if ((long) i == dup)
					continue;
				s = retarget(json_object_array_get_idx(steps, i), drop, keep);
				if (json_object_object_get_ex(s, "depends_on", &listed) &&
					json_object_is_type(listed, json_type_array))
				{
					json_object *fixed = json_object_new_array();

					for (size_t d = 0; d < json_object_array_length(listed); d++)
					{
						const char *id = json_object_get_string(json_object_array_get_idx(listed, d));

						add_unique(fixed, strcmp(id, drop) == 0 ? keep : id);
					}
					json_object_object_add(s, "depends_on", fixed);
				}
				json_object_array_add(next, s);
			}
			tmp = with_steps(result, next);
			if (json_object_object_get_ex(tmp, "output", &out))
				json_object_object_add(tmp, "output", retarget(out, drop, keep));
			json_object_put(result);
			result = tmp;
		}
	}

	/* 3. every step lists its complete dependencies (references included) */
	steps = plan_steps(result);
	n = json_object_array_length(steps);
	deps = effective_deps(steps, env, NULL, NULL, NULL);
	for (size_t i = 0; i < n; i++)
	{
		json_object *step = json_object_array_get_idx(steps, i);
		json_object *d = json_object_array_get_idx(deps, i);
		json_object *listed = json_object_object_get(step, "depends_on");

		for (size_t j = 0; j < json_object_array_length(d); j++)
			note_dependency(changes, step, listed, json_object_get_string(json_object_array_get_idx(d, j)),
							"the step uses its output");
		/*
		 * kept ids in depends_on are satisfied once they finished: leave
		 * those out; one that has not finished yet (it runs, or waits for
		 * another attempt) is waited for, listed or referenced
		 */
		{
			json_object *all;

			if (env == NULL || env->nopen == 0)
				all = json_object_get(d);
			else
			{
				ref_walk	w = {steps, env, NULL, NULL, 0, NULL, json_object_new_array()};
				json_object *v;

				all = json_object_new_array();
				for (size_t j = 0; j < json_object_array_length(d); j++)
					add_unique(all, json_object_get_string(json_object_array_get_idx(d, j)));
				for (size_t k = 0; listed && k < json_object_array_length(listed); k++)
				{
					const char *id = json_object_get_string(json_object_array_get_idx(listed, k));

					if (id && is_open(env, id))
						add_unique(w.found, id);
				}
				if (json_object_object_get_ex(step, "prompt", &v))
					(void) ao_template_scan(v, "", on_open_ref, &w, NULL, NULL);
				if (json_object_object_get_ex(step, "input", &v))
					(void) ao_template_scan(v, "", on_open_ref, &w, NULL, NULL);
				for (size_t j = 0; j < json_object_array_length(w.found); j++)
				{
					const char *id = json_object_get_string(json_object_array_get_idx(w.found, j));

					note_dependency(changes, step, listed, id,
									"the step uses the output of a kept step that has not finished");
					add_unique(all, id);
				}
				json_object_put(w.found);
			}
			json_object_object_add(step, "depends_on", all);
		}
	}

	/* 4. with an output template, steps that cannot reach it are dropped */
	{
		json_object *out;

		if (json_object_object_get_ex(result, "output", &out) && n > 0)
		{
			ref_walk	w = {steps, env, NULL, NULL, 0, NULL, json_object_new_array()};
			const char **store;
			ao_dag_node *nodes = dag_nodes(steps, deps, &store);
			unsigned char *needed = ao_calloc(n, 1);
			unsigned char *mark = ao_calloc(n, 1);

			scan_refs(&w, out, "/output");
			for (size_t r = 0; r < json_object_array_length(w.found); r++)
			{
				long		idx = step_index(steps, json_object_get_string(json_object_array_get_idx(w.found, r)));

				if (idx < 0)
					continue;
				needed[idx] = 1;
				(void) ao_dag_ancestors(nodes, n, (size_t) idx, mark);
				for (size_t k = 0; k < n; k++)
					needed[k] |= mark[k];
			}
			if (json_object_array_length(w.found) > 0)
			{
				json_object *kept_steps = json_object_new_array();
				json_object *tmp;

				for (size_t i = 0; i < n; i++)
				{
					if (needed[i])
					{
						json_object_array_add(kept_steps, json_object_get(json_object_array_get_idx(steps, i)));
						continue;
					}
					{
						json_object *c = change("dropped", str_member(json_object_array_get_idx(steps, i), "id"));

						json_object_object_add(c, "reason", json_object_new_string("nothing in the plan's output depends on it"));
						json_object_array_add(changes, c);
					}
				}
				tmp = with_steps(result, kept_steps);
				json_object_put(result);
				result = tmp;
			}
			json_object_put(w.found);
			free(needed);
			free(mark);
			free(nodes);
			free(store);
		}
	}
	json_object_put(deps);

	/* 5. what runs together: the levels of the DAG with more than one step */
	steps = plan_steps(result);
	n = json_object_array_length(steps);
	if (n > 1)
	{
		const char **store;
		json_object *d2 = effective_deps(steps, env, NULL, NULL, NULL);
		ao_dag_node *nodes = dag_nodes(steps, d2, &store);
		int		   *level = ao_calloc(n, sizeof(int));
		int			levels = ao_dag_order(nodes, n, NULL, level);

		for (int l = 0; l < levels; l++)
		{
			json_object *ids = json_object_new_array();

			for (size_t i = 0; i < n; i++)
				if (level[i] == l)
					json_object_array_add(ids, json_object_new_string(nodes[i].id));
			if (json_object_array_length(ids) > 1)
			{
				json_object *c = change("parallel", NULL);

				json_object_object_add(c, "steps", ids);
				json_object_array_add(changes, c);
			}
			else
				json_object_put(ids);
		}
		free(level);
		free(nodes);
		free(store);
		json_object_put(d2);
	}
	return result;
}

/*-------------------------------------------------------------------------
 * Diff
 *-------------------------------------------------------------------------
 */
json_object *
ao_plan_diff(json_object *old_plan, json_object *new_plan, const ao_plan_env *env)
{
	json_object *a = plan_steps(old_plan);
	json_object *b = plan_steps(new_plan);
	json_object *added = json_object_new_array();
	json_object *removed = json_object_new_array();
	json_object *changed = json_object_new_array();
	json_object *kept = json_object_new_array();
	json_object *diff = json_object_new_object();

	for (size_t i = 0; b && i < json_object_array_length(b); i++)
	{
		json_object *s = json_object_array_get_idx(b, i);
		const char *id = str_member(s, "id");
		long		j;

		if (id == NULL)
			continue;
		j = step_index(a, id);
		if (j < 0)
			json_object_array_add(added, json_object_new_string(id));
		else if (!ao_json_equal(s, json_object_array_get_idx(a, j)))
			json_object_array_add(changed, json_object_new_string(id));
	}
	for (size_t i = 0; a && i < json_object_array_length(a); i++)
	{
		const char *id = str_member(json_object_array_get_idx(a, i), "id");

		if (id && step_index(b, id) < 0)
			json_object_array_add(is_kept(env, id) ? kept : removed, json_object_new_string(id));
	}
	json_object_object_add(diff, "added", added);
	json_object_object_add(diff, "removed", removed);
	json_object_object_add(diff, "changed", changed);
	json_object_object_add(diff, "kept", kept);
	return diff;
}

/*-------------------------------------------------------------------------
 * Prompt
 *-------------------------------------------------------------------------
 */
const char *
ao_plan_system_prompt(void)
{
	return
		"You are the planner of agentorch, a workflow engine. Break the user's task into a plan: "
		"a small DAG of steps, answered as one JSON object that matches the AgentPlan schema "
		"({\"goal\", \"reasoning\", \"steps\": [...], \"output\"}).\n"
		"Rules:\n"
		"- A step is {\"id\", \"type\": \"tool\", \"tool\", \"input\"} or {\"id\", \"type\": \"llm\", \"prompt\"}, "
		"with optional \"description\" and \"depends_on\" (ids of steps that must finish first).\n"
		"- Use only the tools listed in the request, with inputs that match their input schemas. "
		"If no tool fits, use llm steps.\n"
		"- Refer to the run input as ${input.<key>} and to an earlier step's result as "
		"${<step id>.output} (or ${<step id>.output.<field>}); a step that uses another's result "
		"must depend on it. Steps without a dependency between them run in parallel.\n"
		"- \"output\" (optional) is a template of the run's result, for example "
		"{\"answer\": \"${summarize.output}\"}; without it the result holds the outputs of the last steps.\n"
		"- Keep the plan as short as the task allows (at most 50 steps).";
}

const char *
ao_plan_goal(json_object *input)
{
	const char *goal = str_member(input, "prompt");
	json_object *messages;

	if (goal == NULL)
		goal = str_member(input, "goal");
	if (goal == NULL && input && json_object_is_type(input, json_type_object) &&
		json_object_object_get_ex(input, "messages", &messages) &&
		json_object_is_type(messages, json_type_array))
		for (size_t i = json_object_array_length(messages); i > 0 && goal == NULL; i--)
		{
			json_object *m = json_object_array_get_idx(messages, i - 1);
			const char *role = str_member(m, "role");

			if (role && strcmp(role, "user") == 0)
				goal = str_member(m, "content");
		}
	return goal;
}

/* Append v as compact JSON, cut to max characters (bytes, on a UTF-8 boundary). */
static void
append_json(ao_buf *b, json_object *v, size_t max)
{
	const char *s = v ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : "null";
	size_t		len = strlen(s);

	if (len <= max)
	{
		ao_buf_append(b, s);
		return;
	}
	while (max > 0 && (s[max] & 0xC0) == 0x80)
		max--;
	ao_buf_append_n(b, s, max);
	ao_buf_printf(b, " ... (%zu more characters)", len - max);
}

char *
ao_plan_prompt(const ao_plan_request *req)
{
	ao_buf		b;
	const char *goal = ao_plan_goal(req->input);
	size_t		ntools = 0;

	ao_buf_init(&b);
	ao_buf_append(&b, "Task:\n");
	ao_buf_append(&b, goal ? goal : "(see the input below)");
	ao_buf_append(&b, "\n\nRun input (JSON, available as ${input...}):\n");
	append_json(&b, req->input, 20000);
	ao_buf_append(&b, "\n\nTools you may use:\n");
	if (req->tools && json_object_is_type(req->tools, json_type_object))
	{
		json_object_object_foreach(req->tools, name, def)
		{
			json_object *spec = json_object_object_get(def, "spec");
			const char *desc = str_member(spec, "description");
			const char *kind = str_member(def, "kind");
			json_object *schema = json_object_object_get(def, "input_schema");

			ntools++;
			ao_buf_printf(&b, "- %s (%s tool): %s\n", name, kind ? kind : "?",
						  desc ? desc : "no description");
			ao_buf_append(&b, "  input schema: ");
			if (schema && !json_object_is_type(schema, json_type_null))
				append_json(&b, schema, 4000);
			else
				ao_buf_append(&b, "any JSON object");
			ao_buf_append(&b, "\n");
		}
	}
	if (ntools == 0)
		ao_buf_append(&b, "(none: use llm steps only)\n");

	if (req->revision > 0 || req->previous_plan || req->rejected)
	{
		ao_buf_printf(&b, "\nThis is revision %d of the plan (at most %d revisions); reason: %s.\n",
					  req->revision, req->max_revisions, req->reason ? req->reason : "error");
		if (req->previous_plan)
		{
			ao_buf_append(&b, "\nThe plan that was running:\n");
			append_json(&b, req->previous_plan, 20000);
			ao_buf_append(&b, "\n");
		}
		if (req->finished && json_object_array_length(req->finished) > 0)
		{
			ao_buf_append(&b, "\nSteps that finished or are still at work (they stay: do not repeat them; use their "
						  "results as ${<id>.output}):\n");
			for (size_t i = 0; i < json_object_array_length(req->finished); i++)
			{
				json_object *s = json_object_array_get_idx(req->finished, i);

				ao_buf_printf(&b, "- %s (%s): ", str_member(s, "id") ? str_member(s, "id") : "?",
							  str_member(s, "status") ? str_member(s, "status") : "?");
				append_json(&b, json_object_object_get(s, "output"), AO_PLAN_PROMPT_OUTPUT_CHARS);
				ao_buf_append(&b, "\n");
			}
		}
		if (req->rejected)
		{
			ao_buf_append(&b, "\nYour previous answer was rejected:\n");
			append_json(&b, req->rejected, 20000);
			ao_buf_append(&b, "\n");
		}
		if (req->problem)
		{
			ao_buf_append(&b, "\nWhat went wrong:\n");
			ao_buf_append(&b, req->problem);
			ao_buf_append(&b, "\n");
		}
		ao_buf_append(&b, "\nWrite a new plan for the remaining work.");
	}
	return b.data;
}
