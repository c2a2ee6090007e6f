/*-------------------------------------------------------------------------
 *
 * create.c
 *	  New runs, written by the state layer: each run's row, its top-level
 *	  steps, its run_started event and first status chunk, its audit row,
 *	  and its notifications. The rows go straight into the tables through
 *	  the executor's row insert (ExecSimpleRelationInsert: column
 *	  defaults, constraints, indexes and row triggers; no statement
 *	  triggers, and no privilege or row-security checks, which the state
 *	  layer, the tables' owner, does not need) with no SQL to parse or
 *	  plan: a session's first start() costs little more than its next.
 *	  Only validated bodies are written (a registered workflow, a plan
 *	  that passed its checks, a simple run's one step).
 *
 *	  agentorch._create_runs (plpgsql) makes the same rows. It stays the
 *	  writer of a start with an idempotency key, whose INSERT ... ON
 *	  CONFLICT waits for a concurrent start with the same key; a regress
 *	  test (robustness.sql) checks that both make the same rows.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/state/create.c
 *
 *-------------------------------------------------------------------------
 */
#include "rows.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

/* The tables a creation writes (opened in this order). */
enum
{
	T_RUNS, T_STEPS, T_EVENTS, T_CHUNKS, T_AUDIT, T_COUNT
};
static const char *const table_names[T_COUNT] = {"runs", "steps", "events", "chunks", "audit_log"};

/*
 * jsonb, read with PostgreSQL's jsonb API
 */

/* A value as ->> gives it: NULL for JSON null. */
static char *
value_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return NULL;
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			elog(ERROR, "agentorch: unexpected jsonb value type %d", (int) v->type);
	}
	return NULL;
}

/* c ->> key, NULL when missing or JSON null. */
static char *
key_text(JsonbContainer *c, const char *key)
{
	JsonbValue	v;

	return ao_jsonb_get_key(c, key, &v) ? value_text(&v) : NULL;
}

/* The container of a binary (object or array) value, else NULL. */
static JsonbContainer *
container_of(JsonbValue *v)
{
	return v->type == jbvBinary ? v->val.binary.data : NULL;
}

/* c -> key as its own container (NULL unless an object or array). */
static JsonbContainer *
key_container(JsonbContainer *c, const char *key)
{
	JsonbValue	v;

	return ao_jsonb_get_key(c, key, &v) ? container_of(&v) : NULL;
}

/* Does v hold the string s? An array: one of its elements is s (lax, as jsonpath's [*]). */
static bool
holds_string(JsonbValue *v, const char *s)
{
	JsonbContainer *c = container_of(v);

	if (v->type == jbvString)
		return strlen(s) == (size_t) v->val.string.len && memcmp(s, v->val.string.val, v->val.string.len) == 0;
	if (c != NULL && JsonContainerIsArray(c))
		for (uint32 i = 0; i < JsonContainerSize(c); i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(c, i);

			if (e->type == jbvString && holds_string(e, s))
				return true;
		}
	return false;
}

/* The elements of an array value (a non-array counts as its only element, as jsonpath's lax [*]). */
static int
elements(JsonbValue *v, JsonbValue ***out)
{
	JsonbContainer *c = container_of(v);

	if (c != NULL && JsonContainerIsArray(c))
	{
		int			n = JsonContainerSize(c);

		*out = palloc(sizeof(JsonbValue *) * Max(n, 1));
		for (int i = 0; i < n; i++)
			(*out)[i] = getIthJsonbValueFromContainer(c, i);
		return n;
	}
	*out = palloc(sizeof(JsonbValue *));
	(*out)[0] = v;
	return 1;
}

static Jsonb *
empty_object(void)
{
	return ao_jsonb_object(0, NULL, NULL);
}

/*
 * Templates: the step rows of a body, worked out once for the runs that
 * share it (what _materialize_runs works out in SQL)
 */

typedef struct TemplateStep
{
	char	   *step_id;
	char	   *kind;			/* the step's "type" */
	Jsonb	   *spec;			/* the body's defaults || the step */
	Datum		depends_on;		/* text[]: depends_on, then the branches that target it */
	int			ord;
	int			max_attempts;
	bool		network;
	bool		ready;			/* ready at start: depends on nothing, compensates nothing */
} TemplateStep;

typedef struct Template
{
	bool		done;
	Jsonb	   *memory;
	TemplateStep *steps;
	int			nsteps;
} Template;

/* Does branch step br send control to id (cases[*].then[*] or else)? */
static bool
branch_targets(JsonbContainer *br, const char *id)
{
	JsonbValue	v;

	if (ao_jsonb_get_key(br, "cases", &v))
	{
		JsonbValue **cases;
		int			ncases = elements(&v, &cases);

		for (int i = 0; i < ncases; i++)
		{
			JsonbValue	then;

			if (ao_jsonb_get_key(container_of(cases[i]), "then", &then) && holds_string(&then, id))
				return true;
		}
	}
	if (ao_jsonb_get_key(br, "else", &v))
	{
		/* jsonb's ? : a key of an object, a string element of an array, or the string itself */
		JsonbContainer *c = container_of(&v);

		if (c != NULL && JsonContainerIsObject(c))
			return ao_jsonb_get_key(c, id, &v);
		return holds_string(&v, id);
	}
	return false;
}

/* A setting-like integer given as JSON: its ->> text cast to int, as SQL's ::int. */
static bool
int_at(JsonbContainer *c, const char *key, int *out)
{
	char	   *text = key_text(c, key);

	if (text == NULL)
		return false;
	*out = DatumGetInt32(DirectFunctionCall1(int4in, CStringGetDatum(text)));
	return true;
}

static void
work_out_template(Template *tp, Jsonb *body, Jsonb *tools)
{
	JsonbContainer *root = &body->root;
	JsonbValue	v;
	JsonbContainer *steps;
	Jsonb	   *defaults;
	JsonbContainer **branches;
	int			nbranches = 0;
	int			n;

	tp->memory = ao_jsonb_get_key(root, "memory", &v) ? JsonbValueToJsonb(&v) : empty_object();
	defaults = ao_jsonb_get_key(root, "defaults", &v) ? JsonbValueToJsonb(&v) : empty_object();
	steps = key_container(root, "steps");
	/* bodies were validated (a workflow when registered, a plan when made): these hold */
	if (!JB_ROOT_IS_OBJECT(defaults) || (ao_jsonb_get_key(root, "steps", &v) && (steps == NULL || !JsonContainerIsArray(steps))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a workflow body needs \"steps\" as an array and \"defaults\" as an object"),
				 errhint("Register the workflow with agentorch.register_workflow(), which validates it.")));
	n = steps ? JsonContainerSize(steps) : 0;
	tp->steps = palloc0(sizeof(TemplateStep) * Max(n, 1));
	tp->nsteps = n;
	branches = palloc(sizeof(JsonbContainer *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		JsonbContainer *s = container_of(getIthJsonbValueFromContainer(steps, i));
		char	   *type = key_text(s, "type");

		if (type != NULL && strcmp(type, "branch") == 0)
			branches[nbranches++] = s;
	}
	for (int i = 0; i < n; i++)
	{
		JsonbValue *x = getIthJsonbValueFromContainer(steps, i);
		JsonbContainer *s = container_of(x);
		TemplateStep *ts = &tp->steps[i];
		JsonbContainer *spec;
		JsonbContainer *tool = NULL;
		char	   *tool_name;
		char	   *spec_type;
		Datum	   *deps;
		bool	   *deps_null;
		int			ndeps = 0;
		int			dims[1];
		int			lbs[1] = {1};
		JsonbValue **dep_values = NULL;
		int			ndep_values = 0;

		ts->step_id = key_text(s, "id");
		ts->kind = key_text(s, "type");
		ts->ord = i + 1;
		ts->spec = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(defaults),
													  JsonbPGetDatum(JsonbValueToJsonb(x))));
		spec = &ts->spec->root;

		/* depends_on's elements as text, then the branches that target the step */
		if (ao_jsonb_get_key(s, "depends_on", &v))
		{
			JsonbContainer *c = container_of(&v);

			if (c == NULL || !JsonContainerIsArray(c))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("cannot extract elements from a scalar or an object: depends_on of step \"%s\"",
								ts->step_id ? ts->step_id : "")));
			ndep_values = elements(&v, &dep_values);
		}
		deps = palloc(sizeof(Datum) * (ndep_values + nbranches + 1));
		deps_null = palloc(sizeof(bool) * (ndep_values + nbranches + 1));
		for (int d = 0; d < ndep_values; d++)
		{
			char	   *text = value_text(dep_values[d]);

			deps_null[ndeps] = text == NULL;
			deps[ndeps++] = text ? CStringGetTextDatum(text) : (Datum) 0;
		}
		for (int b = 0; b < nbranches && ts->step_id != NULL; b++)
			if (branch_targets(branches[b], ts->step_id))
			{
				char	   *br_id = key_text(branches[b], "id");

				deps_null[ndeps] = br_id == NULL;
				deps[ndeps++] = br_id ? CStringGetTextDatum(br_id) : (Datum) 0;
			}
		dims[0] = ndeps;
		ts->depends_on = PointerGetDatum(construct_md_array(deps, deps_null, 1, dims, lbs, TEXTOID, -1, false,
															TYPALIGN_INT));

		/* attempts: the step's retry, else its tool's policy, else the setting (_max_attempts_in) */
		tool_name = key_text(spec, "tool");
		if (tool_name != NULL)
			tool = key_container(&tools->root, tool_name);
		if (!int_at(key_container(spec, "retry"), "max_attempts", &ts->max_attempts))
		{
			JsonbContainer *retry = key_container(key_container(tool, "policy"), "retry");

			if (!int_at(retry, "max_attempts", &ts->max_attempts))
				ts->max_attempts = ao_retry_max_attempts;
		}

		/* network work: an llm step, or a tool of kind http (_is_network_in) */
		spec_type = key_text(spec, "type");
		if (spec_type != NULL && strcmp(spec_type, "llm") == 0)
			ts->network = true;
		else if (spec_type != NULL && strcmp(spec_type, "tool") == 0)
		{
			char	   *kind = key_text(tool, "kind");

			ts->network = kind != NULL && strcmp(kind, "http") == 0;
		}
		ts->ready = ndeps == 0 && !ao_jsonb_get_key(spec, "compensates", &v);
	}
	tp->done = true;
}

/* The body of a simple run: one llm step made from its input (_simple_body). */
static Jsonb *
simple_body(Jsonb *input, Jsonb *options)
{
	static const char *const keys[] = {"id", "type", "prompt", "system", "messages", "model",
	"response_schema", "tools", "temperature", "max_tokens", "max_turns"};
	JsonbValue	values[lengthof(keys)];
	JsonbValue	v;
	JsonbParseState *st = NULL;
	JsonbValue	step;
	JsonbValue	k = ao_jv_string("steps");
	JsonbContainer *in = &input->root;
	Jsonb	   *stripped;

	values[0] = ao_jv_string("main");
	values[1] = ao_jv_string("llm");
	for (int i = 2; i < lengthof(keys); i++)
		if (!ao_jsonb_get_key(in, keys[i], &values[i]))
			values[i] = ao_jv_string(NULL);
	if (values[5].type == jbvNull && !ao_jsonb_get_key(in, "model", &v) && ao_jsonb_get_key(&options->root, "model", &v))
		values[5] = v;
	stripped = DatumGetJsonbP(DirectFunctionCall1(jsonb_strip_nulls, JsonbPGetDatum(ao_jsonb_object(lengthof(keys), keys, values))));

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	pushJsonbValue(&st, WJB_KEY, &k);
	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	step = ao_jv_jsonb(stripped);
	pushJsonbValue(&st, WJB_ELEM, &step);
	pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

/*
 * Runs
 */

/* The trace id of options.traceparent (W3C: 2-32-16-2 lowercase hex), else NULL. */
static char *
traceparent_trace_id(const char *tp)
{
	static const int field_lengths[4] = {2, 32, 16, 2};
	const char *p = tp;

	if (tp == NULL || strlen(tp) != 55)
		return NULL;
	for (int f = 0; f < 4; f++)
	{
		for (int i = 0; i < field_lengths[f]; i++, p++)
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
				return NULL;
		if (f < 3 && *p++ != '-')
			return NULL;
	}
	return pnstrdup(tp + 3, 32);
}

/* A new W3C trace id: 32 random lowercase hex digits. */
static char *
new_trace_id(void)
{
	uint8		bytes[16];
	char	   *hex = palloc(33);

	ao_random_bytes(bytes, sizeof(bytes));
	hex[hex_encode((const char *) bytes, sizeof(bytes), hex)] = '\0';
	return hex;
}

static void
insert_run(AoRows *w, Oid owner, const AoNewRun *r, Template *tp, Jsonb *tools, const char *search_path,
		   int64 *id, char **channel_token)
{
	AoRowTable *t = ao_rows_table(w, T_RUNS);
	JsonbContainer *opts = &r->options->root;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	char	   *text;
	bool		isnull;

	ao_row_begin(w, t);
	ao_row_put_kept(w, t, "orchestration", r->orchestration);
	ao_row_put_kept(w, t, "status", "running");
	ao_row_put_text(t, "workflow_name", r->workflow);
	ao_row_put(t, "workflow_version", Int32GetDatum(r->version), r->workflow == NULL);
	ao_row_put_text(t, "definition_hash", r->hash);
	ao_row_put_jsonb(t, "selection", r->selection);
	ao_row_put_jsonb(t, "input", r->input);
	ao_row_put_jsonb(t, "options", r->options);
	text = key_text(opts, "priority");
	ao_row_put(t, "priority", text ? DirectFunctionCall1(int4in, CStringGetDatum(text)) : Int32GetDatum(0), false);
	ao_row_put(t, "owner", ObjectIdGetDatum(owner), false);
	/* the caller's trace id (options.traceparent), else a new one */
	text = traceparent_trace_id(key_text(opts, "traceparent"));
	ao_row_put_text(t, "trace_id", text ? text : new_trace_id());
	ao_row_put(t, "started_at", TimestampTzGetDatum(now), false);
	/* the deadline: options.timeout, or the time budget (budget.max_duration) when sooner */
	{
		char	   *timeout = key_text(opts, "timeout");
		JsonbContainer *budget = key_container(opts, "budget");
		char	   *max_duration = budget ? key_text(budget, "max_duration") : NULL;
		Datum		deadline = (Datum) 0;

		if (timeout)
			deadline = DirectFunctionCall2(timestamptz_pl_interval, TimestampTzGetDatum(now),
										   DirectFunctionCall3(interval_in, CStringGetDatum(timeout),
															   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
		if (max_duration)
		{
			Datum		by_budget = DirectFunctionCall2(timestamptz_pl_interval, TimestampTzGetDatum(now),
														DirectFunctionCall3(interval_in, CStringGetDatum(max_duration),
																			ObjectIdGetDatum(InvalidOid),
																			Int32GetDatum(-1)));

			if (!timeout || DatumGetTimestampTz(by_budget) < DatumGetTimestampTz(deadline))
				deadline = by_budget;
		}
		ao_row_put(t, "deadline", deadline, timeout == NULL && max_duration == NULL);
	}
	ao_row_put_jsonb(t, "memory", tp->memory);
	text = key_text(opts, "parent_id");
	ao_row_put(t, "parent_id", text ? DirectFunctionCall1(int8in, CStringGetDatum(text)) : (Datum) 0, text == NULL);
	ao_row_put_kept(w, t, "search_path", search_path);
	ao_row_put_jsonb(t, "tools", tools);
	/* the run_started event and the first status chunk, below */
	ao_row_put(t, "last_event_seq", Int64GetDatum(1), false);
	ao_row_put(t, "last_chunk_seq", Int64GetDatum(1), false);
	/* the column's default, without a call through fmgr (it sets a search_path) */
	*channel_token = ao_new_channel_token();
	ao_row_put_text(t, "channel_token", *channel_token);
	ao_row_insert(w, t);
	*id = DatumGetInt64(slot_getattr(t->slot, ao_row_column(t, "id") + 1, &isnull));
}

static void
insert_steps(AoRows *w, int64 run, int priority, Template *tp)
{
	AoRowTable *t = ao_rows_table(w, T_STEPS);

	for (int i = 0; i < tp->nsteps; i++)
	{
		TemplateStep *s = &tp->steps[i];

		ao_row_begin(w, t);
		ao_row_put(t, "run_id", Int64GetDatum(run), false);
		ao_row_put_text(t, "step_id", s->step_id);
		ao_row_put_kept(w, t, "kind", s->kind);
		ao_row_put_jsonb(t, "spec", s->spec);
		ao_row_put(t, "depends_on", s->depends_on, false);
		ao_row_put(t, "ord", Int32GetDatum(s->ord), false);
		ao_row_put(t, "priority", Int32GetDatum(priority), false);
		ao_row_put(t, "max_attempts", Int32GetDatum(s->max_attempts), false);
		ao_row_put(t, "network", BoolGetDatum(s->network), false);
		ao_row_put_kept(w, t, "status", s->ready ? "ready" : "pending");
		ao_row_insert(w, t);
	}
}

static void
insert_first_rows(AoRows *w, Oid owner, int64 run, const AoNewRun *r)
{
	AoRowTable *t;
	static const char *const event_keys[] = {"orchestration", "workflow", "version"};
	JsonbValue	event_data[3];
	static const char *const audit_keys[] = {"workflow"};
	JsonbValue	audit_detail[1];

	event_data[0] = ao_jv_string(r->orchestration);
	event_data[1] = ao_jv_string(r->workflow);
	event_data[2] = r->workflow ? ao_jv_int(r->version) : ao_jv_string(NULL);
	t = ao_rows_table(w, T_EVENTS);
	ao_row_begin(w, t);
	ao_row_put(t, "run_id", Int64GetDatum(run), false);
	ao_row_put(t, "seq", Int64GetDatum(1), false);
	ao_row_put_kept(w, t, "kind", "run_started");
	ao_row_put_text(t, "step_id", NULL);
	ao_row_put_jsonb(t, "data", ao_jsonb_object(3, event_keys, event_data));
	ao_row_insert(w, t);

	t = ao_rows_table(w, T_CHUNKS);
	ao_row_begin(w, t);
	ao_row_put(t, "run_id", Int64GetDatum(run), false);
	ao_row_put(t, "seq", Int64GetDatum(1), false);
	ao_row_put_text(t, "step_id", NULL);
	ao_row_put(t, "attempt", Int32GetDatum(0), false);
	ao_row_put_kept(w, t, "kind", "status");
	ao_row_put_kept(w, t, "content", "run started");
	ao_row_put_kept(w, t, "data", "{\"status\": \"running\"}");
	ao_row_insert(w, t);

	/* every start is audited */
	audit_detail[0] = ao_jv_string(r->workflow);
	t = ao_rows_table(w, T_AUDIT);
	ao_row_begin(w, t);
	ao_row_put(t, "actor", ObjectIdGetDatum(owner), false);
	ao_row_put_kept(w, t, "action", "start");
	ao_row_put_kept(w, t, "object", r->orchestration);
	ao_row_put(t, "run_id", Int64GetDatum(run), false);
	ao_row_put_jsonb(t, "detail", ao_jsonb_object(1, audit_keys, audit_detail));
	ao_row_insert(w, t);
}

/* run_started on agentorch_events (ids and owner only), then the first chunk on each run's own channel. */
static void
notify_started(const int64 *ids, char **tokens, int n, Oid owner)
{
	int			mode = ao_notify_mode();
	/* Async_Notify keeps its own copies: each payload is freed after it */
	MemoryContext payloads = AllocSetContextCreate(CurrentMemoryContext, "agentorch notify payloads",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext caller = MemoryContextSwitchTo(payloads);

	for (int pass = 0; pass < 2 && mode != NOTIFY_NONE; pass++)
		for (int i = 0; i < n; i++)
		{
			CHECK_FOR_INTERRUPTS();
			if (pass == 0)
				Async_Notify("agentorch_events", ao_state_lifecycle_payload(ids[i], "run_started", "running", owner));
			else
				Async_Notify(psprintf("agentorch_run_" INT64_FORMAT "_%s", ids[i], tokens[i]),
							 ao_state_chunk_payload(ids[i], 1, "status", "run started", mode));
			MemoryContextReset(payloads);
		}
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(payloads);
}

/*
 * Create runs[0..n) as owner asked, each with the steps and pinned tools
 * of templates[runs[i].template]: running, its steps that depend on
 * nothing ready, its first event, chunk and audit row, notified. Fills
 * ids in order. The caller is the extension owner, connected to SPI; no
 * run may carry an idempotency key (see the file header).
 */
void
ao_state_create_runs(Oid owner, const AoNewRun *runs, int n, const AoRunTemplate *templates, int ntemplates,
					 const char *search_path, int64 *ids)
{
	AoRows		w;
	Template   *made = palloc0(sizeof(Template) * Max(ntemplates, 1));
	char	  **tokens = palloc(sizeof(char *) * Max(n, 1));
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext per_run;

	/* what an INSERT checks before it writes (the executor's check, which is bypassed here) */
	PreventCommandIfReadOnly("agentorch.start()");
	per_run = AllocSetContextCreate(CurrentMemoryContext, "agentorch new run", ALLOCSET_DEFAULT_SIZES);
	ao_rows_open(&w, T_COUNT, table_names);
	for (int i = 0; i < n; i++)
	{
		const AoNewRun *r = &runs[i];
		const AoRunTemplate *rt = &templates[r->template];
		Template   *tp = &made[r->template];
		char	   *priority;
		char	   *token;

		CHECK_FOR_INTERRUPTS();
		Assert(key_text(&r->options->root, "idempotency_key") == NULL);
		if (!tp->done)
			work_out_template(tp, rt->body ? rt->body : simple_body(r->input, r->options), rt->tools);
		/* what one run needs is freed after it: a big start_many() stays small */
		MemoryContextSwitchTo(per_run);
		priority = key_text(&r->options->root, "priority");
		insert_run(&w, owner, r, tp, rt->tools, search_path, &ids[i], &token);
		insert_steps(&w, ids[i], priority ? DatumGetInt32(DirectFunctionCall1(int4in, CStringGetDatum(priority))) : 0,
					 tp);
		insert_first_rows(&w, owner, ids[i], r);
		tokens[i] = MemoryContextStrdup(caller, token);
		MemoryContextSwitchTo(caller);
		MemoryContextReset(per_run);
	}
	MemoryContextDelete(per_run);
	ao_rows_close(&w);
	notify_started(ids, tokens, n, owner);

	/* llm steps may start: not past a run's budget (options.budget) */
	for (int i = 0; i < n; i++)
	{
		JsonbValue	v;

		if (ao_jsonb_get_key(&runs[i].options->root, "budget", &v))
		{
			Oid			t[1] = {INT8OID};
			Datum		d[1] = {Int64GetDatum(ids[i])};

			ao_spi_exec("SELECT agentorch._budget_gate($1)", 1, t, d, NULL, SPI_OK_SELECT);
		}
	}
}
