/*-------------------------------------------------------------------------
 *
 * remote.c
 *	  Network steps claimed by external workers (src/bin/agentorch-worker):
 *	  the server side of their claim, tool calls, fallbacks and policy
 *	  slots. The worker only sends requests; everything here runs in the
 *	  worker's own database session, called through the internal SQL
 *	  functions of sql/agentorch_workers.sql.
 *
 * The life of a network step in an external worker mirrors an executor's
 * (runner_net.c): the claim (agentorch._worker_claim) moves ready steps to
 * running with a lease whose holder is the worker's BACKEND pid -- so
 * recovery's agentorch._backend_alive() check sees a worker whose session
 * is gone (killed, connection lost) at once, exactly as it sees a dead
 * executor -- counts the attempt, records the rendered input, and hands
 * the worker everything it needs to send the request: the provider-neutral
 * call (rendered prompt, messages, tools), the resolved model and its
 * fallbacks, the tool's URL and headers, the traceparent, the chunk
 * attempt and whether a reset marker must open it. Admission (breaker,
 * bulkhead, rate limit, step locks) is decided here, at claim time, in
 * shared memory like an executor's: the slot (and the step lock) is held
 * by the worker's session until the step settles, and released by the
 * session's exit hooks when the session dies.
 *
 * Nothing an LLM produced is ever run as SQL here: tool calls go through
 * ao_call_tool_as (registered tools, as the run's owner, input validated),
 * exactly like an executor's.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/runner/remote.c
 *
 *-------------------------------------------------------------------------
 */
#include "runner.h"

#include <limits.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "ao_llm.h"
#include "ao_workflow.h"
#include "io.h"
#include "policy.h"

#define AO_LLM_DEFAULT_MAX_TURNS 8

/*
 * What this session holds for a step it claimed for its worker: a policy
 * slot and a step lock, given back when the step settles or is released
 * (ao_remote_slot_done), or by the session's exit hooks.
 */
typedef struct HeldStep
{
	int64		run;
	char	   *step_id;
	char	   *policy_name;
	AoLimits	limits;
	bool		acquired;
	uint64		probe;			/* the half-open breaker's probe ticket, or 0 */
	char	   *lock_name;
	List	   *fallbacks;		/* model names _worker_fallback may give it */
	/* the subtransaction whose claim made it; Invalid once that committed */
	SubTransactionId claimed_in;
} HeldStep;

static List *held_steps = NIL;	/* in TopMemoryContext */
static bool callbacks_registered = false;

/* A step being prepared for a worker. */
typedef struct RemoteStep
{
	int64		run_id;
	char	   *step_id;
	char	   *run_status;
	int			attempt;
	int			max_attempts;
	json_object *spec;
	json_object *options;
	char	   *context;
	char	   *trace_id;
	/* outcome of preparing */
	json_object *out;			/* what the worker gets */
	bool		deferred;
	long		defer_ms;
	bool		failed;
	Jsonb	   *error;
	HeldStep   *held;
} RemoteStep;

/* Run a literal statement in the current SPI connection (plan kept). */
static void
spi_run(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	(void) ao_spi_exec_literal(sql, nargs, types, values, nulls);
}

/* Fail the step being prepared (recorded when the claim ends). */
static void
remote_fail(RemoteStep *s, int sqlerrcode, const char *message, const char *detail)
{
	s->failed = true;
	s->error = ao_error_jsonb(sqlerrcode, message, detail);
}

/* Defer the step being prepared: ready again after ms, no attempt spent. */
static void
remote_defer(RemoteStep *s, long ms)
{
	s->deferred = true;
	s->defer_ms = ms;
}

/* The held entry of a step, or NULL. */
static HeldStep *
find_held(int64 run, const char *step_id, bool remove)
{
	ListCell   *lc;

	foreach(lc, held_steps)
	{
		HeldStep   *h = lfirst(lc);

		if (h->run == run && strcmp(h->step_id, step_id) == 0)
		{
			if (remove)
				held_steps = foreach_delete_current(held_steps, lc);
			return h;
		}
	}
	return NULL;
}

/* Give back what h holds (see ao_remote_slot_done) and free it; h is off the list already. */
static void
release_held(HeldStep *h, int outcome, double tokens)
{
	if (h->acquired)
		ao_policy_release(h->policy_name, &h->limits, outcome, tokens, h->probe);
	if (h->lock_name)
		ao_step_lock_release(h->lock_name);
	if (h->policy_name)
		pfree(h->policy_name);
	if (h->lock_name)
		pfree(h->lock_name);
	list_free_deep(h->fallbacks);
	pfree(h->step_id);
	pfree(h);
}

/*
 * Give back what this session holds for a step: its policy slot (outcome
 * 1 success, 0 a failure of the target, -1 neutral, as ao_policy_release
 * counts them; tokens come off the tpm bucket) and its step lock.
 */
void
ao_remote_slot_done(int64 run, const char *step_id, int outcome, double tokens)
{
	HeldStep   *h = find_held(run, step_id, true);

	if (h != NULL)
		release_held(h, outcome, tokens);
}

/*
 * A claim whose (sub)transaction rolls back (a statement timeout, a
 * cancel, ROLLBACK) leased nothing: what it took for its steps -- slots,
 * probe tickets, step locks -- goes with it, or the session would hold
 * them until it ends while the steps stay ready (every other claimer
 * deferring them, a half-open breaker waiting for a probe never sent).
 * The request's outcome is unknown (-1).
 */
static void
release_claimed_since(SubTransactionId since)
{
	ListCell   *lc;

	foreach(lc, held_steps)
	{
		HeldStep   *h = lfirst(lc);

		if (h->claimed_in != InvalidSubTransactionId && h->claimed_in >= since)
		{
			held_steps = foreach_delete_current(held_steps, lc);
			release_held(h, -1, 0);
		}
	}
}

static void
claim_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		release_claimed_since(TopSubTransactionId);
	else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PREPARE)
		foreach(lc, held_steps)
			((HeldStep *) lfirst(lc))->claimed_in = InvalidSubTransactionId;
}

static void
claim_subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
		release_claimed_since(mySubid);
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		foreach(lc, held_steps)
		{
			HeldStep   *h = lfirst(lc);

			/* the subtransaction and those under it (made after it) merge into the parent */
			if (h->claimed_in != InvalidSubTransactionId && h->claimed_in >= mySubid)
				h->claimed_in = parentSubid;
		}
}

/* The held entry of a step, created when missing. */
static HeldStep *
hold(RemoteStep *s)
{
	MemoryContext old;

	if (s->held)
		return s->held;
	if (!callbacks_registered)
	{
		RegisterXactCallback(claim_xact_callback, NULL);
		RegisterSubXactCallback(claim_subxact_callback, NULL);
		callbacks_registered = true;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	s->held = palloc0(sizeof(HeldStep));
	s->held->run = s->run_id;
	s->held->step_id = pstrdup(s->step_id);
	s->held->claimed_in = GetCurrentSubTransactionId();
	held_steps = lappend(held_steps, s->held);
	MemoryContextSwitchTo(old);
	return s->held;
}

/*
 * Ask the target's policies (breaker, bulkhead, rate limit) whether the
 * step may send its request now; on "no" the step is deferred (no attempt
 * spent) and false is returned. The slot is held by this session.
 */
static bool
admit(RemoteStep *s, const char *policy_name, json_object *limits_json)
{
	AoLimits	lim;
	long		wait_ms;
	AoDecision	d;
	HeldStep   *h;
	MemoryContext old;
	uint64		probe;

	ao_policy_limits_from_json(limits_json, &lim);
	d = ao_policy_acquire(policy_name, &lim, 0, &wait_ms, &probe);
	if (d != AO_ALLOW)
	{
		/* a full bulkhead, a rate limit, an open breaker: try again later */
		remote_defer(s, Max(wait_ms, 1));
		return false;
	}
	h = hold(s);
	old = MemoryContextSwitchTo(TopMemoryContext);
	if (h->acquired)
		ao_policy_release(h->policy_name, &h->limits, -1, 0, h->probe);
	if (h->policy_name)
		pfree(h->policy_name);
	h->policy_name = pstrdup(policy_name);
	h->limits = lim;
	h->acquired = true;
	h->probe = probe;
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * A logical model as the worker needs it ({name, provider, base_url,
 * model, api_key_env, anthropic_version, prices, limits}), or NULL when it
 * is not registered; *problem (with *sqlerrcode) is set when its host or
 * its key variable's name is not allowed. The caller is the extension
 * owner (the worker functions are SECURITY DEFINER).
 */
static json_object *
load_model(const char *name, json_object **fallbacks, char **problem, int *sqlerrcode)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	json_object *m = NULL;
	json_object *spec;
	json_object *v;
	char	   *host = NULL;

	*problem = NULL;
	values[0] = CStringGetTextDatum(name);
	if (ao_spi_exec_generic("SELECT provider, spec::text FROM agentorch.models WHERE name OPERATOR(pg_catalog.=) $1",
							1, types, values, NULL, 0) != SPI_OK_SELECT || SPI_processed != 1)
		return NULL;
	{
		char	   *provider = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		char	   *spec_text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

		spec = ao_json_from_cstring(spec_text, strlen(spec_text), "model spec");
		m = ao_json_own(json_object_new_object());
		json_object_object_add(m, "name", json_object_new_string(name));
		json_object_object_add(m, "provider", json_object_new_string(provider));
	}
	{
		const char *const keys[] = {"base_url", "model", "api_key_env", "anthropic_version", "prices"};

		for (int i = 0; i < (int) lengthof(keys); i++)
			if (json_object_object_get_ex(spec, keys[i], &v))
				json_object_object_add(m, keys[i], json_object_get(v));
	}
	json_object_object_add(m, "limits", json_object_get(spec));
	if (fallbacks && *fallbacks == NULL && json_object_object_get_ex(spec, "fallback", &v) &&
		json_object_is_type(v, json_type_array))
		*fallbacks = json_object_get(v);
	if (!ao_net_url_allowed(json_object_get_string(json_object_object_get(spec, "base_url")),
							ao_llm_allowed_hosts, &host))
	{
		*problem = psprintf("host %s of model \"%s\" is not allowed", host ? host : "(none)", name);
		*sqlerrcode = ERRCODE_INSUFFICIENT_PRIVILEGE;
	}
	else if (json_object_object_get_ex(spec, "api_key_env", &v) &&
			 !ao_env_name_allowed(json_object_get_string(v), false))
	{
		*problem = psprintf("api_key_env of model \"%s\" may not read environment variable \"%s\": it does not match agentorch.api_key_env_pattern ('%s')",
							name, json_object_get_string(v), ao_api_key_env_pattern ? ao_api_key_env_pattern : "");
		*sqlerrcode = ERRCODE_INSUFFICIENT_PRIVILEGE;
	}
	return m;
}

/* A step's timeout in ms: its own, else agentorch.step_timeout, else dflt; capped. */
static long
timeout_ms(json_object *spec, json_object *policy, long dflt)
{
	long		ms;

	if (spec && json_object_object_get_ex(spec, "timeout", NULL))
		ms = (long) ao_duration_ms(json_object_object_get(spec, "timeout"));
	else if (policy && json_object_object_get_ex(policy, "timeout", NULL))
		ms = (long) ao_duration_ms(json_object_object_get(policy, "timeout"));
	else
		ms = ao_step_timeout_ms > 0 ? ao_step_timeout_ms : dflt;
	return AO_CAP_STEP_TIMEOUT(ms);
}

/* Prepare an llm step for a worker: the model, the call, admission. */
static void
prepare_llm(RemoteStep *s, Jsonb *input, Jsonb *context)
{
	json_object *spec = ao_json_from_jsonb(ao_render_jsonb(ao_jsonb_from_json(s->spec), context));
	json_object *llm = json_object_new_object();
	json_object *v;
	const char *name = NULL;
	json_object *model;
	json_object *fallbacks = NULL;
	char	   *problem;
	int			code;
	json_object *call;
	int			next = 0;

	json_object_object_add(s->out, "llm", llm);
	if (json_object_object_get_ex(spec, "model", &v))
		name = json_object_get_string(v);
	else if (json_object_object_get_ex(s->options, "model", &v))
		name = json_object_get_string(v);
	else if (ao_default_model && ao_default_model[0])
		name = ao_default_model;
	if (name == NULL)
	{
		remote_fail(s, ERRCODE_INVALID_PARAMETER_VALUE, "the llm step names no model",
					"Give the step a \"model\", pass options {\"model\": ...}, or set agentorch.default_model.");
		return;
	}
	model = load_model(name, &fallbacks, &problem, &code);
	if (model == NULL)
	{
		remote_fail(s, ERRCODE_UNDEFINED_OBJECT, psprintf("model \"%s\" is not registered", name),
					"Register it with agentorch.register_model().");
		return;
	}
	/* an open breaker: the first fallback whose breaker is closed (llm.c's choose_model) */
	while (ao_policy_is_open(psprintf("model:%s", name)) && fallbacks &&
		   next < (int) json_object_array_length(fallbacks))
	{
		const char *fb = json_object_get_string(json_object_array_get_idx(fallbacks, next++));
		char	   *p2;
		int			c2;
		json_object *m2 = load_model(fb, NULL, &p2, &c2);

		if (m2 == NULL)
			continue;
		model = m2;
		name = fb;
		problem = p2;
		code = c2;
	}
	if (problem)
	{
		remote_fail(s, code, problem, "Model hosts must be listed in agentorch.llm_allowed_hosts; key variables must match agentorch.api_key_env_pattern.");
		return;
	}
	json_object_object_add(llm, "model", json_object_get(model));
	{
		/* the fallbacks not used yet, by name: _worker_fallback loads one when needed */
		json_object *rest = json_object_new_array();

		for (int i = next; fallbacks && i < (int) json_object_array_length(fallbacks); i++)
			json_object_array_add(rest, json_object_get(json_object_array_get_idx(fallbacks, i)));
		json_object_object_add(llm, "fallbacks", rest);
	}
	call = ao_json_own(ao_llm_build_call(spec, ao_json_from_jsonb(input),
										 json_object_get_string(json_object_object_get(model, "model"))));
	{
		int			sqlerrcode = 0;
		char	   *problem;
		char	   *detail;
		json_object *tools = ao_llm_tool_functions(s->run_id, spec, &sqlerrcode, &problem, &detail);

		if (problem)
		{
			remote_fail(s, sqlerrcode, problem, detail);
			return;
		}
		if (tools)
			json_object_object_add(call, "tools", tools);
	}
	json_object_object_add(llm, "call", json_object_get(call));
	if (json_object_object_get_ex(spec, "response_schema", &v))
		json_object_object_add(llm, "response_schema", json_object_get(v));
	json_object_object_add(llm, "max_turns",
						   json_object_new_int(json_object_object_get_ex(s->spec, "max_turns", &v)
											   ? json_object_get_int(v) : AO_LLM_DEFAULT_MAX_TURNS));
	json_object_object_add(s->out, "timeout_ms", json_object_new_int64(timeout_ms(s->spec, NULL, 300000)));
	if (admit(s, psprintf("model:%s", name), json_object_object_get(model, "limits")))
	{
		/* the fallbacks handed out are the only models _worker_fallback gives this step */
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		for (int i = next; fallbacks && i < (int) json_object_array_length(fallbacks); i++)
			s->held->fallbacks = lappend(s->held->fallbacks,
										 pstrdup(json_object_get_string(json_object_array_get_idx(fallbacks, i))));
		MemoryContextSwitchTo(old);
	}
}

/* Prepare an http tool step for a worker: URL, method, headers, body, admission. */
static void
prepare_http(RemoteStep *s, Jsonb *input)
{
	json_object *tool_name = NULL;
	json_object *http = json_object_new_object();
	AoTool	   *t;
	const char *url;
	const char *method;
	char	   *host;
	json_object *headers;
	json_object *hdrs = json_object_new_array();

	json_object_object_add(s->out, "http", http);
	json_object_object_get_ex(s->spec, "tool", &tool_name);
	t = ao_lookup_tool(s->run_id, json_object_get_string(tool_name));
	if (t == NULL || strcmp(t->kind, "http") != 0)
	{
		remote_fail(s, ERRCODE_UNDEFINED_OBJECT, psprintf("http tool \"%s\" does not exist", json_object_get_string(tool_name)), NULL);
		return;
	}
	url = json_object_get_string(json_object_object_get(t->spec, "url"));
	method = json_object_object_get(t->spec, "method")
		? json_object_get_string(json_object_object_get(t->spec, "method")) : "POST";
	if (!ao_net_url_allowed(url, ao_http_allowed_hosts, &host))
	{
		remote_fail(s, ERRCODE_INSUFFICIENT_PRIVILEGE, psprintf("host %s of tool \"%s\" is not allowed", host ? host : url, t->name),
					"HTTP targets must be listed in agentorch.http_allowed_hosts (empty means none).");
		return;
	}
	json_object_object_add(http, "tool", json_object_new_string(t->name));
	json_object_object_add(http, "url", json_object_new_string(url));
	json_object_object_add(http, "method", json_object_new_string(method));
	if (strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0)
	{
		json_object_object_add(http, "body", json_object_new_string(JsonbToCString(NULL, &input->root, VARSIZE(input))));
		json_object_array_add(hdrs, json_object_new_string("Content-Type: application/json"));
	}
	if (json_object_object_get_ex(t->spec, "headers", &headers))
	{
		json_object_object_foreach(headers, k, v)
			json_object_array_add(hdrs, json_object_new_string(psprintf("%s: %s", k, json_object_get_string(v))));
	}
	json_object_object_add(http, "headers", hdrs);
	if (json_object_object_get_ex(t->spec, "headers_env", &headers) &&
		json_object_is_type(headers, json_type_object))
	{
		/* credentials come from the WORKER's environment; only names travel */
		json_object *envs = json_object_new_array();

		json_object_object_add(http, "headers_env", envs);
		{
		json_object_object_foreach(headers, k, ref)
		{
			json_object *env = json_object_is_type(ref, json_type_string) ? ref : NULL;
			json_object *prefix = NULL;
			json_object *e;

			if (env == NULL && json_object_is_type(ref, json_type_object))
			{
				json_object_object_get_ex(ref, "env", &env);
				json_object_object_get_ex(ref, "prefix", &prefix);
			}
			if (env == NULL || !json_object_is_type(env, json_type_string))
			{
				remote_fail(s, ERRCODE_INVALID_PARAMETER_VALUE, psprintf("headers_env[\"%s\"] of tool \"%s\" names no variable", k, t->name), NULL);
				return;
			}
			if (!ao_env_name_allowed(json_object_get_string(env), true))
			{
				remote_fail(s, ERRCODE_INSUFFICIENT_PRIVILEGE,
							psprintf("headers_env[\"%s\"] of tool \"%s\" may not read environment variable \"%s\": "
									 "it does not match agentorch.tool_env_pattern ('%s')",
									 k, t->name, json_object_get_string(env), ao_tool_env_pattern ? ao_tool_env_pattern : ""), NULL);
				return;
			}
			e = json_object_new_object();
			json_object_object_add(e, "header", json_object_new_string(k));
			json_object_object_add(e, "env", json_object_get(env));
			json_object_object_add(e, "prefix", json_object_new_string(prefix ? json_object_get_string(prefix) : ""));
			json_object_array_add(envs, e);
		}
		}
	}
	json_object_object_add(s->out, "timeout_ms", json_object_new_int64(timeout_ms(s->spec, t->policy, 60000)));
	(void) admit(s, psprintf("tool:%s", t->name), t->policy);
}

/*
 * The chunk attempt the step continues from (llm.c's init_chunk_attempt):
 * the step's attempt, or past the highest one its chunks carry; a reset
 * marker opens it when the step streamed before or retries.
 */
static void
chunk_attempt(RemoteStep *s)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	int			last = 0;

	values[0] = Int64GetDatum(s->run_id);
	values[1] = CStringGetTextDatum(s->step_id);
	/*
	 * read_only: the statement sees the snapshot from before this
	 * transaction's lease, so the status chunk the lease just wrote is not
	 * taken for an earlier attempt's (a kept plan run read-write would see it).
	 */
	if (SPI_execute_with_args("SELECT CASE WHEN s.attempt OPERATOR(pg_catalog.>) 0 OR s.input IS NOT NULL THEN "
							  "  (SELECT COALESCE(pg_catalog.max(c.attempt), 0) FROM agentorch.chunks c "
							  "    WHERE c.run_id OPERATOR(pg_catalog.=) $1 AND c.step_id OPERATOR(pg_catalog.=) $2) "
							  "  ELSE 0 END "
							  "FROM agentorch.steps s WHERE s.run_id OPERATOR(pg_catalog.=) $1 AND s.step_id OPERATOR(pg_catalog.=) $2",
							  2, types, values, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		last = isnull ? 0 : DatumGetInt32(d);
	}
	json_object_object_add(s->out, "chunk_attempt", json_object_new_int(Max(s->attempt, last + 1)));
	json_object_object_add(s->out, "need_reset", json_object_new_boolean(last > 0 || s->attempt > 1));
	json_object_object_add(s->out, "reset_reason", json_object_new_string(s->attempt > 1 ? "retry" : "resume"));
}

/*
 * Render and prepare one claimed step in a subtransaction of its own:
 * whatever fails there is this step's failure, never the claim's.
 * Returns the rendered input (or NULL).
 */
static Jsonb *
prepare_guarded(RemoteStep *s)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Jsonb	   *volatile input = NULL;

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		Jsonb	   *context;
		Jsonb	   *in;
		json_object *type = NULL;

		MemoryContextSwitchTo(caller);
		context = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s->context)));
		in = json_object_object_get(s->spec, "input")
			? ao_render_jsonb(ao_jsonb_from_json(json_object_object_get(s->spec, "input")), context)
			: DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
		input = in;
		json_object_object_get_ex(s->spec, "type", &type);
		if (type && strcmp(json_object_get_string(type), "llm") == 0)
		{
			json_object_object_add(s->out, "kind", json_object_new_string("llm"));
			prepare_llm(s, in, context);
		}
		else
		{
			json_object_object_add(s->out, "kind", json_object_new_string("http"));
			prepare_http(s, in);
		}
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata = ao_abort_subxact(caller, owner);

		if (edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN || edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		s->deferred = false;
		remote_fail(s, edata->sqlerrcode, psprintf("could not prepare the request: %s", edata->message), edata->detail);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	CurrentResourceOwner = owner;
	return input;
}

/*
 * Claim up to n ready network steps for worker worker_id (this session:
 * the lease's holder is this backend's pid). recover: first run lease
 * recovery, so steps of a dead holder are claimable at once. Returns a
 * jsonb array, one object per step the worker must run.
 */
Jsonb *
ao_remote_claim(int worker_id, const char *worker_name, int n, bool recover)
{
	List	   *claimed = NIL;
	List	   *runs = NIL;
	ListCell   *lc;
	json_object *result = ao_json_own(json_object_new_array());

	if (ao_network_steps == AO_NETWORK_EXECUTORS || n <= 0)
		return ao_jsonb_from_json(result);
	SPI_connect();
	if (recover)
	{
		/* holders whose session is gone, expired leases (the executors' maintenance) */
		if (SPI_execute("SELECT r FROM agentorch._recover(100) r", false, 0) == SPI_OK_SELECT)
			for (uint64 i = 0; i < SPI_processed; i++)
			{
				bool		isnull;

				runs = ao_run_list_add(runs, DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)));
			}
	}
	{
		Oid			types[1] = {INT4OID};
		Datum		values[1];

		values[0] = Int32GetDatum(n);
		/*
		 * The steps and their runs are locked together, skipping locked
		 * ones (as an executor's claim does): a claim that held a step and
		 * then waited for its run's lock would deadlock with whoever holds
		 * the run and updates the run's steps (a cancel, a failing step's
		 * settle).
		 */
		spi_run("WITH c AS ("
				"  SELECT s.run_id, s.step_id FROM agentorch.steps s JOIN agentorch.runs m ON m.id = s.run_id"
				"   WHERE s.status = 'ready' AND s.network"
				"     AND (s.not_before IS NULL OR s.not_before <= pg_catalog.clock_timestamp())"
				/* runs that record or replay their LLM requests are the executors' */
				"     AND NOT m.options OPERATOR(pg_catalog.?) 'llm_mode'"
				"   ORDER BY s.network, s.priority DESC, s.not_before NULLS FIRST"
				"   LIMIT $1 FOR UPDATE OF s, m SKIP LOCKED) "
				"SELECT c.run_id, c.step_id, r.status::text, t.spec, s.attempt + 1, s.max_attempts,"
				"       " AO_SQL_CONTEXT_IF_TEMPLATED ", r.options::text, r.trace_id "
				"  FROM c JOIN agentorch.runs r ON r.id = c.run_id"
				"  JOIN agentorch.steps s ON s.run_id = c.run_id AND s.step_id = c.step_id "
				"  " AO_SQL_SPEC_TEXT
				" ORDER BY c.run_id",
				1, types, values, NULL);
	}
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		/* in SPI's procedure context: it lives until SPI_finish */
		RemoteStep *s = palloc0(sizeof(RemoteStep));
		bool		isnull;
		char	   *spec = SPI_getvalue(tup, desc, 4);
		char	   *options = SPI_getvalue(tup, desc, 8);

		s->run_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		s->step_id = SPI_getvalue(tup, desc, 2);
		s->run_status = SPI_getvalue(tup, desc, 3);
		s->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		s->max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		s->context = SPI_getvalue(tup, desc, 7);
		if (s->context == NULL)
			s->context = "{}";	/* no template: nothing to render with */
		s->trace_id = SPI_getvalue(tup, desc, 9);
		s->spec = ao_json_from_cstring(spec, strlen(spec), "step spec");
		s->options = ao_json_from_cstring(options, strlen(options), "run options");
		claimed = lappend(claimed, s);
	}

	foreach(lc, claimed)
	{
		RemoteStep *s = lfirst(lc);
		Oid			types[3] = {INT8OID, TEXTOID, JSONBOID};
		Datum		values[3];
		Jsonb	   *input;

		values[0] = Int64GetDatum(s->run_id);
		values[1] = CStringGetTextDatum(s->step_id);
		ao_state_lock_run(s->run_id);
		runs = ao_run_list_add(runs, s->run_id);
		if (strcmp(s->run_status, "running") != 0 && strcmp(s->run_status, "waiting") != 0)
		{
			/* run no longer active: the step is cancelled, as an executor does */
			spi_run("SELECT agentorch._finish_step($1, $2, 'cancelled')", 2, types, values, NULL);
			continue;
		}
		{
			json_object *lock = json_object_object_get(s->spec, "lock");

			if (lock && json_object_is_type(lock, json_type_string))
			{
				/* held by this session until the step settles, or the session ends */
				if (!ao_step_lock_try(json_object_get_string(lock), true))
				{
					ao_state_defer_step(s->run_id, s->step_id, AO_STEP_LOCK_RETRY_MS);
					continue;
				}
				hold(s)->lock_name = MemoryContextStrdup(TopMemoryContext, json_object_get_string(lock));
			}
		}
		s->out = ao_json_own(json_object_new_object());
		input = prepare_guarded(s);
		if (s->deferred && !s->failed)
		{
			/* not started: stays ready, due again later; no attempt, no event */
			ao_remote_slot_done(s->run_id, s->step_id, -1, 0);
			ao_state_defer_step(s->run_id, s->step_id, (int) Min(s->defer_ms, INT_MAX));
			continue;
		}
		ao_state_lease_step(s->run_id, s->step_id, -1, ao_lease_ms, MyProcPid, input);
		{
			/* who holds it: the run's events say which worker ran the step */
			json_object *who = ao_json_own(json_object_new_object());

			json_object_object_add(who, "worker_id", json_object_new_int(worker_id));
			json_object_object_add(who, "worker", json_object_new_string(worker_name ? worker_name : ""));
			json_object_object_add(who, "backend_pid", json_object_new_int(MyProcPid));
			json_object_object_add(who, "attempt", json_object_new_int(s->attempt));
			values[2] = JsonbPGetDatum(ao_jsonb_from_json(who));
			spi_run("SELECT agentorch._event($1, $2, 'worker_claimed', $3)", 3, types, values, NULL);
		}
		if (s->failed)
		{
			/* could not be prepared: the attempt is counted and failed, like an executor's */
			ao_remote_slot_done(s->run_id, s->step_id, -1, 0);
			values[2] = JsonbPGetDatum(s->error);
			spi_run("SELECT agentorch._finish_step($1, $2, 'failed', NULL, $3)", 3, types, values, NULL);
			ao_log_step_failure(s->run_id, s->step_id, s->error);
			continue;
		}
		json_object_object_add(s->out, "run_id", json_object_new_int64(s->run_id));
		json_object_object_add(s->out, "step_id", json_object_new_string(s->step_id));
		json_object_object_add(s->out, "attempt", json_object_new_int(s->attempt));
		json_object_object_add(s->out, "max_attempts", json_object_new_int(s->max_attempts));
		{
			char	   *tp = ao_traceparent(s->trace_id, s->step_id);

			if (tp)
				json_object_object_add(s->out, "traceparent", json_object_new_string(tp));
		}
		chunk_attempt(s);
		json_object_array_add(result, json_object_get(s->out));
	}
	ao_state_notify_runs(runs);
	if (runs != NIL)
		ao_wake_at_commit();
	SPI_finish();
	return ao_jsonb_from_json(result);
}

/*
 * Is the step running under this session's lease for that attempt?
 * Locks the run, then the step (the lock order of agentorch_state.sql).
 * Caller: connected to SPI.
 */
static bool
held_by_me(int64 run, const char *step_id, int attempt)
{
	Oid			types[4] = {INT8OID, TEXTOID, INT4OID, INT4OID};
	Datum		values[4];

	values[0] = Int64GetDatum(run);
	values[1] = CStringGetTextDatum(step_id);
	values[2] = Int32GetDatum(attempt);
	values[3] = Int32GetDatum(MyProcPid);
	ao_state_lock_run(run);
	spi_run("SELECT COALESCE(status = 'running' AND attempt = $3 AND worker = $4, false) FROM agentorch.steps "
			"WHERE run_id = $1 AND step_id = $2 FOR UPDATE", 4, types, values, NULL);
	return SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &(bool){false}));
}

/* Is name one of the tool names the step's spec offers its model (spec.tools)? */
static bool
offered_tool(json_object *tools, const char *name)
{
	if (tools == NULL || !json_object_is_type(tools, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(tools); i++)
	{
		json_object *t = json_object_array_get_idx(tools, i);

		if (json_object_is_type(t, json_type_string) && strcmp(json_object_get_string(t), name) == 0)
			return true;
	}
	return false;
}

/*
 * Run the tool calls of a model's reply for a step this session holds: as
 * the run's owner, registered tools only, input validated (ao_call_tool_as,
 * what an executor runs). calls: [{id, name, arguments}]. Returns
 * [{id, name, ok, result}], or NULL when the step is no longer ours.
 */
Jsonb *
ao_remote_call_tools(int64 run, const char *step_id, int attempt, Jsonb *calls)
{
	json_object *in = ao_json_from_jsonb(calls);
	json_object *out = ao_json_own(json_object_new_array());
	Oid			owner;
	bool		isnull;
	json_object *offered;

	SPI_connect();
	if (!held_by_me(run, step_id, attempt))
	{
		SPI_finish();
		return NULL;
	}
	{
		Oid			types[2] = {INT8OID, TEXTOID};
		Datum		values[2] = {Int64GetDatum(run), CStringGetTextDatum(step_id)};
		char	   *t;

		spi_run("SELECT r.owner, (s.spec OPERATOR(pg_catalog.->) 'tools')::text FROM agentorch.runs r "
				"JOIN agentorch.steps s ON s.run_id OPERATOR(pg_catalog.=) r.id "
				"WHERE r.id OPERATOR(pg_catalog.=) $1 AND s.step_id OPERATOR(pg_catalog.=) $2",
				2, types, values, NULL);
		owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		t = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		/* the tools the step offers its model: a worker may call only those */
		offered = t ? ao_json_from_cstring(t, strlen(t), "step tools") : NULL;
	}
	for (size_t i = 0; json_object_is_type(in, json_type_array) && i < json_object_array_length(in); i++)
	{
		json_object *c = json_object_array_get_idx(in, i);
		json_object *name = json_object_object_get(c, "name");
		json_object *args = json_object_object_get(c, "arguments");
		json_object *r = json_object_new_object();
		Jsonb	   *output = NULL;
		Jsonb	   *error = NULL;
		bool		ok;

		if (name == NULL || !json_object_is_type(name, json_type_string))
		{
			ok = false;
			error = ao_error_jsonb(ERRCODE_UNDEFINED_OBJECT, "unknown tool", NULL);
		}
		else if (args == NULL || !json_object_is_type(args, json_type_object))
		{
			ok = false;
			error = ao_error_jsonb(ERRCODE_INVALID_TEXT_REPRESENTATION, "the arguments are not a JSON object", NULL);
		}
		else if (strcmp(json_object_get_string(name), "database.query") == 0)
		{
			/* never offered; never run for a model */
			ok = false;
			error = ao_error_jsonb(ERRCODE_INSUFFICIENT_PRIVILEGE, "database.query cannot be called by a model", NULL);
		}
		else if (!offered_tool(offered, json_object_get_string(name)))
		{
			/*
			 * Only a tool the step offers its model (an executor's "known"
			 * call): the run may pin others, for its own tool steps.
			 */
			ok = false;
			error = ao_error_jsonb(ERRCODE_UNDEFINED_OBJECT,
								   psprintf("unknown tool \"%s\"", json_object_get_string(name)), NULL);
		}
		else
			ok = ao_call_tool_as(owner, run, json_object_get_string(name), ao_jsonb_from_json(args), &output, &error);
		json_object_object_add(r, "id", json_object_get(json_object_object_get(c, "id")));
		json_object_object_add(r, "name", json_object_get(name));
		json_object_object_add(r, "ok", json_object_new_boolean(ok));
		json_object_object_add(r, "result", json_object_get(ao_json_from_jsonb(ok ? output : error)));
		json_object_array_add(out, r);
	}
	SPI_finish();
	return ao_jsonb_from_json(out);
}

/*
 * A fallback model for a step this session holds (its last attempt failed
 * retryably): the model as the claim gives it, its policy slot taken in
 * place of the current one; NULL when it is not one of the fallbacks the
 * claim gave the step, not registered, not allowed, or the step is no
 * longer ours. *defer_ms is set when its bulkhead or
 * breaker says "not now" (the caller fails the attempt retryably).
 */
Jsonb *
ao_remote_fallback(int64 run, const char *step_id, int attempt, const char *model_name, long *defer_ms)
{
	json_object *m;
	char	   *problem;
	int			code;
	RemoteStep	s;
	MemoryContext caller = CurrentMemoryContext;
	Jsonb	   *result;

	*defer_ms = 0;
	{
		/* one of the fallbacks the claim gave the step, nothing else */
		HeldStep   *h = find_held(run, step_id, false);
		ListCell   *lc;
		bool		listed = false;

		foreach(lc, h ? h->fallbacks : NIL)
			listed = listed || strcmp(lfirst(lc), model_name) == 0;
		if (!listed)
			return NULL;
	}
	SPI_connect();
	if (!held_by_me(run, step_id, attempt))
	{
		SPI_finish();
		return NULL;
	}
	/* m belongs to SPI's memory context: used and converted before SPI_finish */
	m = load_model(model_name, NULL, &problem, &code);
	if (m == NULL || problem)
	{
		SPI_finish();
		return NULL;
	}
	memset(&s, 0, sizeof(s));
	s.run_id = run;
	s.step_id = (char *) step_id;
	s.held = find_held(run, step_id, false);
	if (!admit(&s, psprintf("model:%s", model_name), json_object_object_get(m, "limits")))
	{
		SPI_finish();
		*defer_ms = s.defer_ms;
		return NULL;
	}
	{
		MemoryContext old = MemoryContextSwitchTo(caller);

		result = ao_jsonb_from_json(m);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return result;
}

/* The settings a worker follows, as jsonb. */
Jsonb *
ao_remote_settings(void)
{
	json_object *o = ao_json_own(json_object_new_object());

	json_object_object_add(o, "lease_ms", json_object_new_int(ao_lease_ms));
	json_object_object_add(o, "flush_interval_ms", json_object_new_int(ao_flush_interval_ms));
	json_object_object_add(o, "chunk_buffer_size", json_object_new_int(ao_chunk_buffer_size));
	json_object_object_add(o, "max_response_size", json_object_new_int(ao_max_response_size));
	json_object_object_add(o, "network_steps",
						   json_object_new_string(ao_network_steps == AO_NETWORK_WORKERS ? "workers"
												  : ao_network_steps == AO_NETWORK_EXECUTORS ? "executors" : "both"));
	return ao_jsonb_from_json(o);
}
