/*-------------------------------------------------------------------------
 *
 * coordinator.c
 *	  The run lifecycle's first step: a run is created here. start(),
 *	  start_many(), run_workflow() and run_sync() (the SQL API layer) call
 *	  ao_start_run, which checks the options, asks the selector when no
 *	  orchestration is named, loads and checks what the orchestration needs
 *	  (a workflow and its input_schema, a simple run's input, a planner's
 *	  goal and tools), pins the tools, and has the state layer create the
 *	  run as the extension owner with the caller as its owner. Finishing,
 *	  cancelling and resuming runs are the state layer's transitions.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/coordinator/coordinator.c
 *
 *-------------------------------------------------------------------------
 */
#include "coordinator.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include <math.h>

#include "ao_json_schema.h"
#include "ao_plan.h"
#include "ao_workflow.h"

/* A workflow definition: latest version, or the given one. */
typedef struct StoredWorkflow
{
	int			version;
	char	   *hash;
	Jsonb	   *definition;
} StoredWorkflow;

static bool
workflow_found(void *arg, TupleTableSlot *slot)
{
	StoredWorkflow *w = arg;
	bool		isnull;

	w->version = DatumGetInt32(ao_slot_column(slot, "version", &isnull));
	w->hash = TextDatumGetCString(ao_slot_column(slot, "definition_hash", &isnull));
	w->definition = DatumGetJsonbPCopy(ao_slot_column(slot, "definition", &isnull));
	return false;
}

/*
 * Load a workflow as the caller (who needs SELECT on agentorch.workflows,
 * which PUBLIC has); ERROR when it does not exist. Read through its
 * primary key (name, version), from the newest version.
 */
static StoredWorkflow
load_workflow(const char *name, int version)
{
	Datum		keys[2] = {CStringGetTextDatum(name), Int32GetDatum(version)};
	StoredWorkflow w = {0};
	Oid			table = get_relname_relid("workflows", get_namespace_oid("agentorch", false));
	AclResult	acl = pg_class_aclcheck(table, GetUserId(), ACL_SELECT);

	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, "workflows");
	ao_index_scan("workflows", "workflows_pkey", version > 0 ? 2 : 1, keys, BackwardScanDirection,
				  workflow_found, &w);
	if (w.definition == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 version > 0 ? errmsg("workflow \"%s\" has no version %d", name, version)
				 : errmsg("workflow \"%s\" does not exist", name),
				 errhint("Register it with agentorch.register_workflow().")));
	return w;
}

/*
 * A model named by a run (options.model, a simple run's input.model) must
 * be registered: ERROR 42704 now, rather than a failed step later.
 * models.name is readable by every role.
 */
static void
check_model_name(json_object *v, const char *what)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		found;

	if (!json_object_is_type(v, json_type_string))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be the name of a registered model", what)));
	values[0] = CStringGetTextDatum(json_object_get_string(v));
	SPI_connect();
	found = ao_spi_exec("SELECT 1 FROM agentorch.models WHERE name OPERATOR(pg_catalog.=) $1",
						1, types, values, NULL, 0) == SPI_OK_SELECT && SPI_processed == 1;
	SPI_finish();
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist (%s)", json_object_get_string(v), what),
				 errhint("See SELECT name FROM agentorch.models; a superuser registers models with agentorch.register_model().")));
}

/*
 * A simple run's input becomes one llm step: check that step as a workflow
 * step is checked (the same schema -- prompt and system strings, messages
 * objects, tools an array of tool names -- database.query never offered
 * to a model, tools the caller may use), so that no input can reach the
 * executor in a shape it does not expect. ERRORs 22023 (42501 for a tool
 * not granted) with the problems, their paths relative to the input.
 */
static void
check_simple_input(json_object *in, const char *orchestration)
{
	static const char *const step_keys[] = {
		"prompt", "system", "messages", "model", "response_schema", "tools", "temperature", "max_tokens",
		"max_turns", NULL
	};
	json_object *step = ao_json_own(json_object_new_object());
	json_object *def = ao_json_own(json_object_new_object());
	json_object *steps = json_object_new_array();
	ao_problems *p;
	ao_problems *relative;

	json_object_object_add(step, "id", json_object_new_string("main"));
	json_object_object_add(step, "type", json_object_new_string("llm"));
	for (const char *const *k = step_keys; *k; k++)
	{
		json_object *v;

		if (json_object_object_get_ex(in, *k, &v))
			json_object_object_add(step, *k, json_object_get(v));
	}
	json_object_array_add(steps, json_object_get(step));
	json_object_object_add(def, "steps", steps);
	p = ao_workflow_problems(ao_jsonb_from_json(def), NULL);
	if (p->n == 0)
		return;
	relative = ao_problems_new();
	for (size_t i = 0; i < p->n; i++)
	{
		const char *path = p->paths[i];

		if (strncmp(path, "/steps/0", 8) == 0)
			path += 8;
		if (strncmp(p->messages[i], AO_TOOL_DENIED_PREFIX, strlen(AO_TOOL_DENIED_PREFIX)) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("%s (at input%s)", p->messages[i], path),
					 errhint("The tool's owner can allow it with agentorch.grant_tool().")));
		ao_problems_add(relative, *path ? path : "/", p->messages[i]);
	}
	ao_problems_raise(relative, ERRCODE_INVALID_PARAMETER_VALUE, psprintf("invalid input of a %s run", orchestration));
}

/*
 * An interval given as a string ("5 minutes"); ERRORs with what otherwise.
 * positive: it must also be more than zero.
 */
static void
check_interval_ext(json_object *v, const char *what, bool positive)
{
	Datum		iv;

	if (!json_object_is_type(v, json_type_string))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an interval such as \"5 minutes\"", what)));
	/* interval_in's own error (22007) is reported as this option's (22023) */
	{
		MemoryContext caller = CurrentMemoryContext;

		PG_TRY();
		{
			iv = DirectFunctionCall3(interval_in, CStringGetDatum(json_object_get_string(v)),
									 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
		}
		PG_CATCH();
		{
			ErrorData  *e;

			MemoryContextSwitchTo(caller);
			e = CopyErrorData();
			FlushErrorState();
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be an interval such as \"5 minutes\"", what),
					 errdetail("%s", e->message)));
		}
		PG_END_TRY();
	}
	if (positive &&
		DatumGetInt32(DirectFunctionCall2(interval_cmp, iv,
										  DirectFunctionCall3(interval_in, CStringGetDatum("0"),
															  ObjectIdGetDatum(InvalidOid),
															  Int32GetDatum(-1)))) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a positive interval", what)));
}

/*
 * An interval a run's deadline is its start plus (options.timeout,
 * budget.max_duration): positive, and at most 1000 years, so the deadline
 * is a date PostgreSQL can hold.
 */
static void
check_deadline_interval(json_object *v, const char *what)
{
	check_interval_ext(v, what, true);
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp,
										  DirectFunctionCall3(interval_in, CStringGetDatum(json_object_get_string(v)),
															  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)),
										  DirectFunctionCall3(interval_in, CStringGetDatum("1000 years"),
															  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)))) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at most 1000 years", what)));
}


/* Check run options whose errors would otherwise surface as cryptic casts. */
static void
check_options(json_object *options)
{
	json_object *v;

	if (!json_object_is_type(options, json_type_object))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("run options must be a JSON object")));
	{
		static const char *const known[] = {AO_RUN_OPTION_NAMES, NULL};

		if (json_object_object_get_ex(options, "llm_mode", NULL))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("run option \"llm_mode\" cannot be given"),
					 errdetail("A run's LLM mode (live, record, replay) is taken from agentorch.llm_mode when it starts."),
					 errhint("A superuser sets agentorch.llm_mode (SET, ALTER ROLE, ALTER SYSTEM).")));
		ao_check_known_keys(options, known, "run option",
							"Run options are model, priority, timeout, idempotency_key, version, metadata, "
							"traceparent, tools, max_replans, planner_model, budget, replan_when and "
							"stall_timeout.");
	}
	if (json_object_object_get_ex(options, "model", &v))
		check_model_name(v, "option \"model\"");
	if (json_object_object_get_ex(options, "tools", &v))
	{
		bool		ok = json_object_is_type(v, json_type_array);

		for (size_t i = 0; ok && i < json_object_array_length(v); i++)
			ok = json_object_is_type(json_object_array_get_idx(v, i), json_type_string);
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"tools\" must be an array of tool names")));
	}
	if (json_object_object_get_ex(options, "priority", &v) &&
		(!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < PG_INT32_MIN ||
		 json_object_get_int64(v) > PG_INT32_MAX))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"priority\" must be an integer from %d to %d", PG_INT32_MIN, PG_INT32_MAX)));
	if (json_object_object_get_ex(options, "idempotency_key", &v) &&
		(!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0 ||
		 json_object_get_string_len(v) > 200))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"idempotency_key\" must be a string of 1 to 200 characters")));
	if (json_object_object_get_ex(options, "timeout", &v))
		check_deadline_interval(v, "option \"timeout\"");
	if (json_object_object_get_ex(options, "traceparent", &v))
	{
		/* W3C trace context: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, ids not all zero */
		const char *tp = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
		bool		ok = strlen(tp) == 55 && tp[2] == '-' && tp[35] == '-' && tp[52] == '-' &&
			strncmp(tp + 3, "00000000000000000000000000000000", 32) != 0 &&
			strncmp(tp + 36, "0000000000000000", 16) != 0 && strncmp(tp, "ff", 2) != 0;

		for (int i = 0; ok && i < 55; i++)
			ok = (i == 2 || i == 35 || i == 52) || (tp[i] >= '0' && tp[i] <= '9') || (tp[i] >= 'a' && tp[i] <= 'f');
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"traceparent\" must be a W3C trace context"),
					 errhint("For example \"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\".")));
	}
	if (json_object_object_get_ex(options, "stall_timeout", &v))
		check_interval_ext(v, "option \"stall_timeout\"", true);
	if (json_object_object_get_ex(options, "planner_model", &v))
		check_model_name(v, "option \"planner_model\"");
	if (json_object_object_get_ex(options, "max_replans", &v) &&
		(!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 || json_object_get_int64(v) > 100))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"max_replans\" must be an integer from 0 to 100")));
	if (json_object_object_get_ex(options, "budget", &v))
	{
		if (!json_object_is_type(v, json_type_object) || json_object_object_length(v) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"budget\" must be an object with max_tokens, max_cost or max_duration")));
		{
			json_object_object_foreach(v, key, val)
			{
			if (strcmp(key, "max_tokens") == 0)
			{
				if (!json_object_is_type(val, json_type_int) || json_object_get_int64(val) <= 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("budget \"max_tokens\" must be a positive integer")));
			}
			else if (strcmp(key, "max_cost") == 0)
			{
				if ((!json_object_is_type(val, json_type_int) && !json_object_is_type(val, json_type_double)) ||
					json_object_get_double(val) < 0 || !isfinite(json_object_get_double(val)))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("budget \"max_cost\" must be a number of at least 0")));
			}
			else if (strcmp(key, "max_duration") == 0)
				check_deadline_interval(val, "budget \"max_duration\"");
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown budget \"%s\"", key),
						 errhint("A budget has max_tokens, max_cost and max_duration.")));
			}
		}
	}
	if (json_object_object_get_ex(options, "replan_when", &v))
	{
		bool		ok = json_object_is_type(v, json_type_array);

		for (size_t i = 0; ok && i < json_object_array_length(v); i++)
		{
			json_object *c = json_object_array_get_idx(v, i);

			ok = json_object_is_type(c, json_type_string);
			if (ok)				/* a jsonpath that does not compile is an error now */
			{
				char	   *err = ao_jsonpath_error(json_object_get_string(c));

				if (err)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("option \"replan_when\" holds an invalid jsonpath: %s", err),
							 errdetail("At /replan_when/%zu: %s", i, json_object_get_string(c))));
			}
		}
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"replan_when\" must be an array of jsonpath conditions"),
					 errhint("For example [\"$.steps.search.output.count == 0\"].")));
	}
}

/* A run's body and pinned tools, shared by the runs of one workflow. */
typedef struct RunTemplate
{
	const char *workflow;		/* fixed: the workflow it is of */
	int			asked;			/* the version asked for (0: the latest) */
	int			version;		/* the version found */
	const char *hash;
	json_object *body_json;		/* for input_schema checks */
	Jsonb	   *body;			/* NULL: a simple run's, made from its input */
	Jsonb	   *tools;
} RunTemplate;

/* What one ao_start_runs call has built so far. */
typedef struct StartBatch
{
	AoNewRun   *runs;			/* what was decided for each input (state.h) */
	int			nruns;
	int			ninputs;		/* how many the call decides */
	RunTemplate *templates;
	int			ntemplates;
	int			maxtemplates;
	Jsonb	   *options;		/* the caller's */
	json_object *opts;
	Jsonb	   *run_options[4];	/* per orchestration, once computed */
	json_object *planner_opts;	/* the options a planner's spec is made from */
	Jsonb	   *caller_selection;	/* the selection of a run whose orchestration the caller named */
} StartBatch;

static int
add_template(StartBatch *b, const char *workflow, int asked, int version, const char *hash,
			 json_object *body_json, Jsonb *body, Jsonb *tools)
{
	RunTemplate *t;

	if (b->ntemplates == b->maxtemplates)
	{
		b->maxtemplates *= 2;
		b->templates = repalloc(b->templates, sizeof(RunTemplate) * b->maxtemplates);
	}
	t = &b->templates[b->ntemplates];
	t->workflow = workflow;
	t->asked = asked;
	t->version = version;
	t->hash = hash;
	t->body_json = body_json;
	t->body = body;
	t->tools = tools;
	return b->ntemplates++;
}

/*
 * The options a run records: the caller's, plus what the executors must
 * read from the run rather than from a session of their own. Computed
 * once per orchestration in a call.
 */
static Jsonb *
run_options(StartBatch *b, const char *orchestration)
{
	static const char *const kinds[4] = {"simple", "fixed", "planner", "reactive"};
	int			k = 0;
	Jsonb	   *options = b->options;
	json_object *opts;

	while (k < 3 && strcmp(kinds[k], orchestration) != 0)
		k++;
	if (b->run_options[k] != NULL)
		return b->run_options[k];
	opts = ao_json_from_jsonb(options);

	/* a planner's replan limit, recorded like the default model below */
	if ((strcmp(orchestration, "planner") == 0 || strcmp(orchestration, "reactive") == 0) &&
		json_object_is_type(opts, json_type_object) &&
		!json_object_object_get_ex(opts, "max_replans", NULL))
	{
		json_object_object_add(opts, "max_replans", json_object_new_int(ao_max_replans));
		options = ao_jsonb_from_json(opts);
		/* what the planner's own spec is made from */
		b->planner_opts = ao_json_from_jsonb(options);
	}
	else if (strcmp(orchestration, "planner") == 0 || strcmp(orchestration, "reactive") == 0)
		b->planner_opts = ao_json_from_jsonb(options);

	/*
	 * agentorch.default_model is the starting session's: the executors run
	 * in sessions of their own, so a SET in this one would otherwise do
	 * nothing for the run. The run records it (as its options' "model").
	 */
	if (json_object_is_type(opts, json_type_object) &&
		!json_object_object_get_ex(opts, "model", NULL) &&
		ao_default_model != NULL && ao_default_model[0] != '\0')
	{
		/* owned by the memory context: nothing leaks if the check ERRORs */
		json_object *name = ao_json_own(json_object_new_string(ao_default_model));

		/* a simple run is one llm step: its model must exist now */
		if (strcmp(orchestration, "simple") == 0)
			check_model_name(name, "agentorch.default_model");
		json_object_object_add(opts, "model", json_object_get(name));
		options = ao_jsonb_from_json(opts);
	}

	/*
	 * agentorch.llm_mode (superuser-set) is the starting session's too: a
	 * run that is not live records it where the executors read it, in its
	 * options, which no caller can write ("llm_mode" is refused by
	 * check_options). The server-wide value is every session's value
	 * unless a superuser changed it for the session.
	 */
	if (ao_llm_mode != AO_LLM_LIVE && json_object_is_type(opts, json_type_object))
	{
		json_object_object_add(opts, "llm_mode", json_object_new_string(ao_llm_mode_name(ao_llm_mode)));
		options = ao_jsonb_from_json(opts);
	}

	b->run_options[k] = options;
	return options;
}

/*
 * Decide one run: choose the orchestration, load and check what it needs
 * (reusing the call's templates), and add it to the batch.
 */
static void
prepare_run(StartBatch *b, Jsonb *input, const char *orchestration, const char *workflow)
{
	/* a fixed run reads its input only for an input_schema (below) */
	json_object *in = orchestration != NULL && strcmp(orchestration, "fixed") == 0 ? NULL : ao_json_from_jsonb(input);
	json_object *opts = b->opts;
	AoNewRun   *r = &b->runs[b->nruns];
	Jsonb	   *selection;

	ao_check_size(VARSIZE(input), "run input");

	if (orchestration == NULL)
	{
		/* the selector decides (rules, then the default) and its decision is stored */
		AoSelection sel;

		ao_select_decide(in, workflow, &sel);
		selection = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(ao_selection_json(&sel))));
		orchestration = sel.run_as;
		if (strcmp(orchestration, "fixed") == 0)
			workflow = sel.workflow;
	}
	else
	{
		/* a workflow named for a run that would not use it is a mistake, not a detail */
		if (workflow != NULL && strcmp(orchestration, "fixed") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a %s run takes no workflow (\"%s\" was given)", orchestration, workflow),
					 errhint("Start a fixed run for the workflow: agentorch.start(input, 'fixed', '%s'), or agentorch.run_workflow('%s').",
							 workflow, workflow)));
		/* the same for every run of the call: made once */
		if (b->caller_selection == NULL)
			b->caller_selection = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(
				psprintf("{\"orchestration\": \"%s\", \"confidence\": 1, \"source\": \"caller\"}", orchestration))));
		selection = b->caller_selection;
	}

	/* what only the 0.2.0 state layer knows how to run */
	if (strcmp(orchestration, "planner") == 0 || strcmp(orchestration, "reactive") == 0)
		ao_require_schema(0, 2, psprintf("%s orchestration", orchestration));

	r->orchestration = orchestration;
	r->workflow = NULL;
	r->version = 0;
	r->hash = NULL;
	r->input = input;
	r->selection = selection;

	if (strcmp(orchestration, "planner") == 0 || strcmp(orchestration, "reactive") == 0)
	{
		/*
		 * One planner llm step; its plan becomes the run's steps. The
		 * tools it may plan with are pinned now: those named in the
		 * tools option, else the tools the caller may use and owns, or a
		 * superuser owns (an ordinary role's tool granted to the caller
		 * only when the caller names it: ao_usable_tool_names).
		 */
		json_object *names;
		Jsonb	   *tools;

		if (!json_object_is_type(in, json_type_object))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the input of a %s run must be a JSON object", orchestration),
					 errhint("For example {\"prompt\": \"Compare the prices of ...\"}.")));
		/* the goal is given as a simple run would take it: the same checks */
		if (json_object_object_get_ex(in, "prompt", NULL) || json_object_object_get_ex(in, "messages", NULL))
			check_simple_input(in, orchestration);
		if (ao_plan_goal(in) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a %s run needs a goal: an input with \"prompt\", \"goal\" or a user message", orchestration),
					 errhint("For example agentorch.start('{\"prompt\": \"Compare the sales of two regions\"}', 'planner').")));
		names = json_object_object_get(opts, "tools");
		if (names == NULL)
			names = ao_usable_tool_names(GetUserId());
		tools = ao_pin_tools(NULL, names, GetUserId());
		r->options = run_options(b, orchestration);
		r->template = add_template(b, NULL, 0, 0, NULL, NULL, ao_planner_body(in, b->planner_opts, tools), tools);
	}
	else if (strcmp(orchestration, "fixed") == 0)
	{
		json_object *version = NULL;
		json_object *schema;
		RunTemplate *t = NULL;
		int			want;

		if (workflow == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a fixed run needs a workflow name")));
		json_object_object_get_ex(opts, "version", &version);
		want = version ? json_object_get_int(version) : 0;
		/* a workflow this call loaded already */
		for (int i = 0; i < b->ntemplates && t == NULL; i++)
			if (b->templates[i].workflow && strcmp(b->templates[i].workflow, workflow) == 0 &&
				b->templates[i].asked == want)
			{
				t = &b->templates[i];
				r->template = i;
			}
		if (t == NULL)
		{
			StoredWorkflow w = load_workflow(workflow, want);
			json_object *normalized = ao_json_own(ao_workflow_normalize(ao_json_from_jsonb(w.definition), NULL));
			json_object *body = ao_workflow_body(normalized);

			ao_require_schema_for_workflow(body);
			r->template = add_template(b, pstrdup(workflow), want, w.version, w.hash, body, ao_jsonb_from_json(body),
									   ao_pin_tools(json_object_object_get(body, "steps"),
													json_object_object_get(opts, "tools"), GetUserId()));
			t = &b->templates[r->template];
		}
		if (json_object_object_get_ex(t->body_json, "input_schema", &schema))
		{
			ao_problems *p = ao_problems_new();

			if (in == NULL)
				in = ao_json_from_jsonb(input);

			if (ao_json_schema_validate(schema, in, ao_problems_add, p) > 0)
				ao_problems_raise(p, ERRCODE_INVALID_PARAMETER_VALUE,
								  psprintf("input does not match the input_schema of workflow \"%s\"", workflow));
		}
		r->workflow = t->workflow;
		r->version = t->version;
		r->hash = t->hash;
		r->options = run_options(b, orchestration);
	}
	else
	{
		json_object *model;

		/* simple: one llm step from the input (made by the state layer) */
		if (!json_object_is_type(in, json_type_object) ||
			(!json_object_object_get_ex(in, "prompt", NULL) && !json_object_object_get_ex(in, "messages", NULL)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a simple run needs an input with \"prompt\" or \"messages\""),
					 errhint("For example agentorch.start('{\"prompt\": \"Hello\"}').")));
		check_simple_input(in, "simple");
		if (json_object_object_get_ex(in, "model", &model))
			check_model_name(model, "input \"model\"");
		r->options = run_options(b, orchestration);
		r->template = add_template(b, NULL, 0, 0, NULL, NULL, NULL,
								   ao_pin_tools(NULL, json_object_object_get(in, "tools"), GetUserId()));
	}
	b->nruns++;
}

/*
 * Create the batch's runs as the caller, through the state layer as the
 * extension owner: ao_state_create_runs writes them (with an idempotency
 * key, one _create_runs call does; a 0.1.0 schema has only _create_run,
 * one run at a time). Fills ids in the batch's order.
 */
static void
create_runs(StartBatch *b, const char *search_path, int64 *ids)
{
	Oid			caller = GetUserId();
	AoUserScope owner_scope;
	int			n = b->nruns;

	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	if (ao_schema_at_least(0, 2) && !json_object_object_get_ex(b->opts, "idempotency_key", NULL))
	{
		/* the state layer writes the rows itself (create.c) */
		AoRunTemplate *templates = palloc(sizeof(AoRunTemplate) * Max(b->ntemplates, 1));

		for (int i = 0; i < b->ntemplates; i++)
		{
			templates[i].body = b->templates[i].body;
			templates[i].tools = b->templates[i].tools;
		}
		ao_state_create_runs(caller, b->runs, n, templates, b->ntemplates, search_path, ids);
	}
	else if (ao_schema_at_least(0, 2))
	{
		/* an idempotency key: INSERT ... ON CONFLICT waits for a concurrent start with the key */
		Oid			types[12] = {OIDOID, TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, JSONBARRAYOID,
		JSONBARRAYOID, JSONBARRAYOID, INT4ARRAYOID, JSONBARRAYOID, JSONBARRAYOID, TEXTOID};
		Datum		values[12];
		/* one array per column, filled by AO_ARRAY's loop (i: run or template) */
		Datum	   *d = palloc(sizeof(Datum) * Max(n, b->ntemplates));
		bool	   *isnull = palloc(sizeof(bool) * Max(n, b->ntemplates));
		int			dims[1];
		int			lbs[1] = {1};
		int			argno = 0;

#define AO_ARRAY(count, fill, elemtype, len, byval, align) \
		do { \
			for (int i = 0; i < (count); i++) { isnull[i] = false; fill; } \
			dims[0] = (count); \
			values[argno++] = PointerGetDatum(construct_md_array(d, isnull, 1, dims, lbs, elemtype, len, byval, align)); \
		} while (0)

		values[argno++] = ObjectIdGetDatum(caller);
		AO_ARRAY(n, d[i] = CStringGetTextDatum(b->runs[i].orchestration), TEXTOID, -1, false, TYPALIGN_INT);
		AO_ARRAY(n, (b->runs[i].workflow ? (d[i] = CStringGetTextDatum(b->runs[i].workflow)) : (isnull[i] = true, d[i] = 0)),
				 TEXTOID, -1, false, TYPALIGN_INT);
		AO_ARRAY(n, (b->runs[i].workflow ? (d[i] = Int32GetDatum(b->runs[i].version)) : (isnull[i] = true, d[i] = 0)),
				 INT4OID, sizeof(int32), true, TYPALIGN_INT);
		AO_ARRAY(n, (b->runs[i].hash ? (d[i] = CStringGetTextDatum(b->runs[i].hash)) : (isnull[i] = true, d[i] = 0)),
				 TEXTOID, -1, false, TYPALIGN_INT);
		AO_ARRAY(n, d[i] = JsonbPGetDatum(b->runs[i].input), JSONBOID, -1, false, TYPALIGN_INT);
		AO_ARRAY(n, d[i] = JsonbPGetDatum(b->runs[i].options), JSONBOID, -1, false, TYPALIGN_INT);
		AO_ARRAY(n, d[i] = JsonbPGetDatum(b->runs[i].selection),
				 JSONBOID, -1, false, TYPALIGN_INT);
		AO_ARRAY(n, d[i] = Int32GetDatum(b->runs[i].template + 1), INT4OID, sizeof(int32), true, TYPALIGN_INT);
		AO_ARRAY(b->ntemplates, (b->templates[i].body ? (d[i] = JsonbPGetDatum(b->templates[i].body)) : (isnull[i] = true, d[i] = 0)),
				 JSONBOID, -1, false, TYPALIGN_INT);
		AO_ARRAY(b->ntemplates, d[i] = JsonbPGetDatum(b->templates[i].tools), JSONBOID, -1, false, TYPALIGN_INT);
#undef AO_ARRAY
		values[argno++] = CStringGetTextDatum(search_path);
		Assert(argno == 12);
		if (ao_spi_exec("SELECT agentorch._create_runs($1, $2::agentorch.orchestration_type[], $3, $4, $5, $6, $7, "
						"$8, $9, $10, $11, $12)",
						12, types, values, NULL, 0) != SPI_OK_SELECT || SPI_processed != (uint64) n)
			elog(ERROR, "agentorch: could not create the runs");
		for (int i = 0; i < n; i++)
		{
			bool		null;

			ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &null));
		}
	}
	else
	{
		for (int i = 0; i < n; i++)
		{
			AoNewRun   *r = &b->runs[i];
			RunTemplate *t = &b->templates[r->template];
			Oid			types[11] = {OIDOID, TEXTOID, TEXTOID, INT4OID, TEXTOID, JSONBOID, JSONBOID, JSONBOID,
			JSONBOID, TEXTOID, JSONBOID};
			Datum		values[11];
			char		nulls[11] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
			bool		null;

			values[0] = ObjectIdGetDatum(caller);
			values[1] = CStringGetTextDatum(r->orchestration);
			if (r->workflow)
			{
				values[2] = CStringGetTextDatum(r->workflow);
				values[3] = Int32GetDatum(r->version);
				values[4] = CStringGetTextDatum(r->hash);
			}
			else
				nulls[2] = nulls[3] = nulls[4] = 'n';
			values[5] = t->body ? JsonbPGetDatum(t->body) : (Datum) 0;
			if (t->body == NULL)
				nulls[5] = 'n';
			values[6] = JsonbPGetDatum(r->input);
			values[7] = JsonbPGetDatum(r->options);
			values[8] = JsonbPGetDatum(r->selection);
			values[9] = CStringGetTextDatum(search_path);
			values[10] = JsonbPGetDatum(t->tools);
			if (ao_spi_exec("SELECT agentorch._create_run($1, $2::agentorch.orchestration_type, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
							11, types, values, nulls, 0) != SPI_OK_SELECT)
				elog(ERROR, "agentorch: could not create the run");
			ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &null));
		}
	}
	SPI_finish();
	ao_restore_user(&owner_scope);
	ao_wake_at_commit();
}

/* Error context of ao_start_runs: the input being checked (from 1). */
static void
input_context(void *arg)
{
	StartBatch *b = arg;

	if (b->ninputs > 1)
		errcontext("input %d of %d", b->nruns + 1, b->ninputs);
}

/*
 * The common path of start(), start_many() and run_workflow(): for each
 * input choose the orchestration, load and check what it needs, then
 * create the runs together. Returns their ids, in the inputs' order.
 */
int64 *
ao_start_runs(Jsonb **inputs, int n, const char *orchestration, const char *workflow, Jsonb *options,
			  const char *search_path)
{
	StartBatch	b = {0};
	int64	   *ids = palloc(sizeof(int64) * Max(n, 1));
	ErrorContextCallback context;

	b.options = options;
	b.opts = ao_json_from_jsonb(options);
	check_options(b.opts);
	{
		static const char *const new_options[] = {"budget", "replan_when", "stall_timeout", "planner_model",
		"traceparent", NULL};

		for (const char *const *o = new_options; *o; o++)
			if (json_object_object_get_ex(b.opts, *o, NULL))
				ao_require_schema(0, 2, psprintf("option \"%s\"", *o));
	}
	b.runs = palloc(sizeof(AoNewRun) * Max(n, 1));
	b.maxtemplates = 4;
	b.templates = palloc(sizeof(RunTemplate) * b.maxtemplates);
	/* an error about one of many inputs says which */
	b.ninputs = n;
	context.callback = input_context;
	context.arg = &b;
	context.previous = error_context_stack;
	error_context_stack = &context;
	for (int i = 0; i < n; i++)
		prepare_run(&b, inputs[i], orchestration, workflow);
	error_context_stack = context.previous;
	if (n > 0)
		create_runs(&b, search_path, ids);
	return ids;
}

int64
ao_start_run(Jsonb *input, const char *orchestration, const char *workflow, Jsonb *options,
			 const char *search_path)
{
	return ao_start_runs(&input, 1, orchestration, workflow, options, search_path)[0];
}
