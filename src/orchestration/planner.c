/*-------------------------------------------------------------------------
 *
 * planner.c
 *	  The planner and reactive orchestration types: the planner llm step
 *	  of a run and the check of the plan it answers.
 *
 * A planner run starts with one llm step, "planner@1", whose structured
 * output is forced through schemas/AgentPlan.schema.json (the llm runner
 * streams it as json_partial chunks and validates it). When it succeeds,
 * the state layer (agentorch._plan_finished in sql/agentorch_state.sql)
 * calls agentorch._check_plan: the core (src/core/ao_plan.c) checks the
 * plan against the run -- the tools pinned for it when it started, models
 * that exist, steps of earlier versions that finished -- and optimizes it;
 * the state layer then materializes it as steps and records a plans row.
 * A rejected plan, a step that fails for good, or (reactive runs) a
 * condition, a budget or a stall make the state layer ask for a revision
 * with agentorch._planner_step, which writes the next planner step:
 * "planner@<n>", whose prompt carries the previous plan, what finished,
 * and what went wrong.
 *
 * Everything here is data: a plan names registered tools the run may use,
 * and its ${...} references are rendered into tool inputs and prompts as
 * values. Text from the run's input, tool outputs or a model is escaped
 * ("${" -> "$${") before it becomes the planner's prompt, so it is never
 * read as a reference.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/orchestration/planner.c
 *
 *-------------------------------------------------------------------------
 */
#include "orchestration.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/memutils.h"

#include "ao_json_schema.h"
#include "ao_plan.h"

PG_FUNCTION_INFO_V1(ao_sql_planner_step);
PG_FUNCTION_INFO_V1(ao_sql_check_plan);

/* "${" -> "$${": the llm runner renders prompts as templates. */
static char *
escape_template(const char *s)
{
	StringInfoData b;

	initStringInfo(&b);
	for (; *s; s++)
	{
		if (s[0] == '$' && s[1] == '{')
			appendStringInfoChar(&b, '$');
		appendStringInfoChar(&b, *s);
	}
	return b.data;
}

/* malloc'd core string -> palloc'd copy. */
static char *
pstrdup_free(char *s)
{
	char	   *r = pstrdup(s);

	free(s);
	return r;
}

/* The planner's model: options.planner_model, else options.model, else NULL. */
static json_object *
planner_model(json_object *options)
{
	json_object *v;

	if (options && json_object_object_get_ex(options, "planner_model", &v) &&
		json_object_is_type(v, json_type_string))
		return v;
	if (options && json_object_object_get_ex(options, "model", &v) &&
		json_object_is_type(v, json_type_string))
		return v;
	return NULL;
}

/* The value of the max_replans option (or the setting). */
int
ao_planner_max_replans(json_object *options)
{
	json_object *v;

	if (options && json_object_object_get_ex(options, "max_replans", &v) &&
		json_object_is_type(v, json_type_int))
		return json_object_get_int(v);
	return ao_max_replans;
}

/*
 * The spec of planner step n: an llm step whose prompt is the request
 * (escaped) and whose answer must be an AgentPlan.
 */
static json_object *
planner_spec(int n, const char *reason, ao_plan_request *req, json_object *options)
{
	json_object *spec = ao_json_own(json_object_new_object());
	json_object *marker = json_object_new_object();
	json_object *model = planner_model(options);
	char	   *prompt = pstrdup_free(ao_plan_prompt(req));
	json_object *schema = ao_load_schema("AgentPlan");

	Assert(n >= 1 && reason != NULL);

	json_object_object_add(spec, "id", json_object_new_string(psprintf("planner@%d", n)));
	json_object_object_add(spec, "type", json_object_new_string("llm"));
	json_object_object_add(marker, "n", json_object_new_int(n));
	json_object_object_add(marker, "reason", json_object_new_string(reason));
	json_object_object_add(spec, "planner", marker);
	json_object_object_add(spec, "system", json_object_new_string(escape_template(ao_plan_system_prompt())));
	json_object_object_add(spec, "prompt", json_object_new_string(escape_template(prompt)));
	if (model)
		json_object_object_add(spec, "model", json_object_get(model));
	json_object_object_add(spec, "response_schema", json_object_get(schema));
	return spec;
}

/* The body of a new run (start()): {"steps": [planner step 1]}. */
Jsonb *
ao_planner_body(json_object *input, json_object *options, Jsonb *tools)
{
	ao_plan_request req = {0};
	json_object *body = ao_json_own(json_object_new_object());
	json_object *steps = json_object_new_array();

	req.input = input;
	req.tools = ao_json_from_jsonb(tools);
	req.reason = "initial";
	req.max_revisions = ao_planner_max_replans(options);
	json_object_array_add(steps, json_object_get(planner_spec(1, "initial", &req, options)));
	json_object_object_add(body, "steps", steps);
	return ao_jsonb_from_json(body);
}

/* Read one jsonb column of the first row of the last SPI result (NULL if null). */
static json_object *
spi_json(int col)
{
	bool		isnull;
	Datum		d;

	if (SPI_processed == 0)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
	return isnull ? NULL : ao_json_from_jsonb(DatumGetJsonbP(d));
}

/*
 * The run as the planner sees it: input, options, pinned tools, the
 * current plan, the kept steps ([{id, status, output}]) and the number
 * of planner steps so far. Called inside the state layer (SPI connected
 * by the caller's plpgsql; a nested connection is fine).
 */
typedef struct PlannerRun
{
	json_object *input;
	json_object *options;
	json_object *tools;
	json_object *plan;
	json_object *kept;
	int			planner_steps;
} PlannerRun;

static void
load_run(int64 run, PlannerRun *r)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(run)};
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext spi;

	SPI_connect();
	if (SPI_execute_with_args("SELECT r.input, r.options, r.tools, r.plan, "
							  "  (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
							  "          'id', s.step_id, 'status', s.status, 'output', s.output) ORDER BY s.ord), '[]') "
							  "     FROM agentorch.steps s WHERE s.run_id OPERATOR(pg_catalog.=) r.id "
							  "      AND s.parent_step_id IS NULL AND NOT s.spec OPERATOR(pg_catalog.?) 'planner' "
							  "      AND s.status OPERATOR(pg_catalog.=) ANY ('{succeeded,running,waiting,pending,ready}')), "
							  "  (SELECT pg_catalog.count(*)::int4 FROM agentorch.steps s "
							  "     WHERE s.run_id OPERATOR(pg_catalog.=) r.id AND s.spec OPERATOR(pg_catalog.?) 'planner') "
							  "FROM agentorch.runs r WHERE r.id OPERATOR(pg_catalog.=) $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("run %lld does not exist", (long long) run)));
	spi = MemoryContextSwitchTo(caller);
	r->input = spi_json(1);
	r->options = spi_json(2);
	r->tools = spi_json(3);
	r->plan = spi_json(4);
	r->kept = spi_json(5);
	{
		bool		isnull;

		r->planner_steps = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6, &isnull));
	}
	MemoryContextSwitchTo(spi);
	SPI_finish();
}

/*
 * agentorch._planner_step(run bigint, reason text, problem text,
 * rejected jsonb) RETURNS jsonb: the spec of the run's next planner step.
 */
Datum
ao_sql_planner_step(PG_FUNCTION_ARGS)
{
	int64		run = PG_GETARG_INT64(0);
	const char *reason = PG_ARGISNULL(1) ? "error" : text_to_cstring(PG_GETARG_TEXT_PP(1));
	PlannerRun	r;
	ao_plan_request req = {0};

	load_run(run, &r);
	req.input = r.input;
	req.tools = r.tools;
	req.previous_plan = r.plan;
	req.finished = r.kept;
	req.reason = reason;
	req.problem = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	req.rejected = PG_ARGISNULL(3) ? NULL : ao_json_from_jsonb(PG_GETARG_JSONB_P(3));
	req.revision = r.planner_steps;
	req.max_revisions = ao_planner_max_replans(r.options);
	PG_RETURN_JSONB_P(ao_jsonb_from_json(planner_spec(r.planner_steps + 1, reason, &req, r.options)));
}

/* Tools a plan may use: those pinned for the run (never database.query). */
static const char *
tool_problem(void *arg, const char *tool)
{
	PlannerRun *r = arg;
	StringInfoData names;

	if (r->tools && json_object_object_get_ex(r->tools, tool, NULL))
		return NULL;
	initStringInfo(&names);
	if (r->tools)
	{
		json_object_object_foreach(r->tools, name, def)
		{
			(void) def;
			appendStringInfo(&names, "%s%s", names.len ? ", " : "", name);
		}
	}
	return psprintf("tool \"%s\" is not available to this run (it may use: %s)", tool,
					names.len ? names.data : "no tools");
}

/* Models a plan may name: registered ones. */
static const char *
model_problem(void *arg, const char *model)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(model)};
	bool		found;

	(void) arg;
	SPI_connect();
	found = SPI_execute_with_args("SELECT 1 FROM agentorch.models WHERE name OPERATOR(pg_catalog.=) $1",
								  1, types, values, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1;
	SPI_finish();
	return found ? NULL : psprintf("model \"%s\" is not registered", model);
}

static void
collect_problem(void *arg, const char *path, const char *message)
{
	json_object *p = json_object_new_object();

	json_object_object_add(p, "path", json_object_new_string(path && *path ? path : "/"));
	json_object_object_add(p, "message", json_object_new_string(message));
	json_object_array_add((json_object *) arg, p);
}

/* See orchestration.h. Tools are checked by the caller (the role's access to them). */
void
ao_planner_check_plan(json_object *plan, ao_problems *p)
{
	json_object *problems = ao_json_own(json_object_new_array());
	ao_plan_env env = {0};

	env.model_problem = model_problem;
	(void) ao_plan_check(plan, &env, collect_problem, problems);
	for (size_t i = 0; i < json_object_array_length(problems); i++)
	{
		json_object *pr = json_object_array_get_idx(problems, i);

		ao_problems_add(p, json_object_get_string(json_object_object_get(pr, "path")),
						json_object_get_string(json_object_object_get(pr, "message")));
	}
}

/*
 * agentorch._check_plan(run bigint, plan jsonb) RETURNS jsonb:
 * {"problems": [{path, message}]} for a plan that cannot run, else
 * {"problems": [], "plan": optimized, "changes": [...], "diff": {...}}.
 */
Datum
ao_sql_check_plan(PG_FUNCTION_ARGS)
{
	int64		run = PG_GETARG_INT64(0);
	Jsonb	   *jb = PG_GETARG_JSONB_P(1);
	json_object *plan = ao_json_from_jsonb(jb);
	json_object *result = ao_json_own(json_object_new_object());
	json_object *problems = json_object_new_array();
	PlannerRun	r;
	const char **kept;
	const char **open;
	size_t		nkept;
	size_t		nopen = 0;
	ao_plan_env env = {0};

	load_run(run, &r);
	if (r.planner_steps < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("run %lld has no planner step", (long long) run)));
	nkept = r.kept ? json_object_array_length(r.kept) : 0;
	kept = palloc0(sizeof(char *) * (nkept + 1));
	open = palloc0(sizeof(char *) * (nkept + 1));
	for (size_t i = 0; i < nkept; i++)
	{
		json_object *k = json_object_array_get_idx(r.kept, i);

		kept[i] = json_object_get_string(json_object_object_get(k, "id"));
		/* running, or waiting for another attempt: steps using it wait */
		if (strcmp(json_object_get_string(json_object_object_get(k, "status")), "succeeded") != 0)
			open[nopen++] = kept[i];
	}
	env.kept = kept;
	env.nkept = nkept;
	env.open = open;
	env.nopen = nopen;
	env.tool_problem = tool_problem;
	env.model_problem = model_problem;
	env.arg = &r;

	json_object_object_add(result, "problems", problems);
	if (ao_json_schema_validate(ao_load_schema("AgentPlan"), plan, collect_problem, problems) == 0 &&
		ao_plan_check(plan, &env, collect_problem, problems) == 0)
	{
		json_object *changes = json_object_new_array();
		json_object *optimized = ao_plan_optimize(plan, &env, changes);

		json_object_object_add(result, "plan", optimized);
		json_object_object_add(result, "changes", changes);
		json_object_object_add(result, "diff", ao_plan_diff(r.plan, optimized, &env));
	}
	PG_RETURN_JSONB_P(ao_jsonb_from_json(result));
}
