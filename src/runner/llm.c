/*-------------------------------------------------------------------------
 *
 * llm.c
 *	  llm steps: the network-step kind that talks to LLM providers
 *	  (OpenAI-compatible chat completions, Anthropic Messages), streaming.
 *
 * The router: a step's model is its own "model", else the run's
 * options.model, else agentorch.default_model; a logical model
 * (agentorch.models) names provider, base URL, model id, the NAME of the
 * server environment variable holding the key (the key itself is read
 * from the environment when the request is built, goes only into a
 * request header, and is never stored, logged or put in an error), prices
 * and an ordered fallback list. A fallback is used when the model's
 * circuit breaker is open, or when its last attempt failed retryably.
 *
 * Streaming: response bytes go to the core's decoder (core/llm/), whose
 * callbacks queue chunks in the step's chunk buffer (stream/chunks.c) --
 * token (consecutive text deltas coalesced), json_partial for structured
 * output, tool_call -- and the executor flushes them every
 * agentorch.flush_interval in one transaction with one multi-row insert
 * and one NOTIFY per run. Chunks carry the request attempt
 * they belong to: a retry, a fallback model and a resume each start a new
 * one (past the highest the step's chunks carry), announced by a status
 * chunk {"reset": true, "attempt", "reason", "model"}, so a reader that
 * drops what precedes the last reset sees one clean answer.
 *
 * Turns: a reply with tool calls runs the calls as the run's owner
 * (registered transactional tools, input validated against their
 * input_schema), appends the results and asks again, up to max_turns. A
 * structured reply is validated against response_schema; an invalid one
 * gets one repair turn, then the step fails (at once when the reply was
 * cut off by max_tokens: asking again would be cut off too). Usage and
 * cost are recorded for every request sent, whatever the outcome.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/runner/llm.c
 *
 *-------------------------------------------------------------------------
 */
#include "runner.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <time.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "ao_json_schema.h"
#include "ao_llm.h"
#include "io.h"
#include "policy.h"
#include "ao_workflow.h"

#define AO_LLM_DEFAULT_MAX_TURNS 8

/* The state of one llm step (in the step's memory context). */
typedef struct LlmState
{
	void	   *step;
	/* the model in use */
	char	   *model_name;
	ao_llm_provider provider;
	char	   *base_url;
	char	   *model_id;
	char	   *api_key_env;
	char	   *anthropic_version;
	json_object *model_spec;
	List	   *fallbacks;		/* remaining fallback model names */
	ao_llm_price price;
	/* the conversation */
	json_object *call;			/* provider-neutral call description */
	json_object *response_schema;	/* NULL unless structured */
	ao_llm_toolmap *toolmap;	/* malloc'd (core) */
	int			turn;
	int			max_turns;
	bool		repaired;
	/* the current request */
	ao_llm_decoder *decoder;	/* malloc'd (core) */
	ao_llm_spec spec;
	struct curl_slist *headers;
	/* totals over turns */
	int64		prompt_tokens;
	int64		completion_tokens;
	double		cost;
	/*
	 * Request attempts as chunks number them: every request of a new try
	 * (a retry, a fallback model, a resume after cancel) gets the next
	 * number, and its first chunk is a {"reset": true} status chunk, so a
	 * reader that drops what precedes the last reset sees one clean answer.
	 * Turns of one conversation (tool calls, a repair) keep the number.
	 */
	int			chunk_attempt;
	bool		need_reset;
	const char *reset_reason;
	bool		sent;			/* a request of this step went out */
	/* chunks not yet written (stream/chunks.c) */
	AoChunkBuffer chunks;
} LlmState;

/*
 * Begin a short transaction for work outside the executor's transactions
 * (tool calls, a fallback model), or join the caller's when there is one
 * (run_sync runs inside the calling statement). Returns whether one was
 * started; pass it to tx_end.
 */
static bool
tx_begin(void)
{
	if (IsTransactionState())
	{
		SPI_connect();
		return false;
	}
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	return true;
}

/* End what tx_begin began. */
static void
tx_end(bool started)
{
	SPI_finish();
	if (started)
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
}

/* The state of a step. */
static LlmState *
state_of(void *step)
{
	return (LlmState *) *ao_net_step_state(step);
}

/*
 * Queue a chunk in the step's buffer (consecutive token/json_partial
 * deltas are coalesced there), after the {"reset": true} status chunk
 * that opens a new try.
 */
static void
queue_chunk(LlmState *st, const char *kind, const char *content, size_t len, const char *data)
{
	if (st->need_reset)
	{
		json_object *d = json_object_new_object();

		st->need_reset = false;
		json_object_object_add(d, "reset", json_object_new_boolean(true));
		json_object_object_add(d, "step_id", json_object_new_string(ao_net_step_id(st->step)));
		json_object_object_add(d, "attempt", json_object_new_int(st->chunk_attempt));
		json_object_object_add(d, "reason", json_object_new_string(st->reset_reason ? st->reset_reason : "retry"));
		if (st->model_name)
			json_object_object_add(d, "model", json_object_new_string(st->model_name));
		queue_chunk(st, "status", "reset", 5,
					json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
		json_object_put(d);
	}
	ao_chunks_queue(&st->chunks, st->chunk_attempt, kind, content, len, data);
}

/* Decoder callbacks: they run inside curl's write callback, so they only queue. */
static void
on_text(void *arg, const char *delta, size_t len)
{
	queue_chunk((LlmState *) arg, "token", delta, len, NULL);
}

static void
on_json_partial(void *arg, const char *delta, size_t len, const char *so_far, size_t so_far_len)
{
	queue_chunk((LlmState *) arg, "json_partial", delta, len, NULL);
}

static void
on_tool_call_done(void *arg, size_t index, const ao_llm_tool_call *call)
{
	LlmState   *st = arg;
	json_object *d = json_object_new_object();
	char	   *text;

	json_object_object_add(d, "id", json_object_new_string(call->id ? call->id : ""));
	json_object_object_add(d, "name", json_object_new_string(call->name ? call->name : ""));
	json_object_object_add(d, "arguments", call->arguments ? json_object_get(call->arguments)
						   : json_object_new_string(call->arguments_text ? call->arguments_text : ""));
	text = pstrdup(json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
	queue_chunk(st, "tool_call", call->name ? call->name : "", strlen(call->name ? call->name : ""), text);
	json_object_put(d);
}

/* curl write callback hook: bytes of the current response to the decoder. */
static void
on_data(AoRequest *r, const char *data, size_t len)
{
	LlmState   *st = state_of(r->arg);
	MemoryContext old;

	if (st == NULL || st->decoder == NULL || r->status >= 300)
		return;
	old = MemoryContextSwitchTo(GetMemoryChunkContext(st));
	(void) ao_llm_decoder_feed(st->decoder, data, len);
	MemoryContextSwitchTo(old);
}

/* Reset callback: free the core objects of a step's state. */
static void
release_core(void *arg)
{
	LlmState   *st = arg;

	/*
	 * The step's memory is going away (normally, or because an ERROR
	 * unwound a run_sync or a selector call): it must leave the list of
	 * live chunk buffers first, or the list keeps a pointer into freed
	 * memory.
	 */
	ao_chunks_forget(&st->chunks);

	if (st->decoder)
		ao_llm_decoder_free(st->decoder);
	st->decoder = NULL;
	if (st->toolmap)
		ao_llm_toolmap_free(st->toolmap);
	st->toolmap = NULL;
	if (st->headers)
		curl_slist_free_all(st->headers);
	st->headers = NULL;
}

/*
 * Load a logical model (in a transaction). Returns false when it does not
 * exist. Reads as the extension owner: specs are not readable by ordinary
 * roles, and the executor is the owner anyway.
 */
static bool
load_model(LlmState *st, const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		found = false;
	MemoryContext caller = CurrentMemoryContext;
	AoUserScope owner_scope;

	values[0] = CStringGetTextDatum(name);
	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	if (ao_spi_exec_generic("SELECT provider, spec::text FROM agentorch.models WHERE name OPERATOR(pg_catalog.=) $1",
							1, types, values, NULL, 0) == SPI_OK_SELECT && SPI_processed == 1)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);
		char	   *provider = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		char	   *spec = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		json_object *v;

		found = true;
		st->model_name = pstrdup(name);
		(void) ao_llm_provider_parse(provider, &st->provider);
		st->model_spec = ao_json_from_cstring(spec, strlen(spec), "model spec");
		st->base_url = pstrdup(json_object_get_string(json_object_object_get(st->model_spec, "base_url")));
		st->model_id = pstrdup(json_object_get_string(json_object_object_get(st->model_spec, "model")));
		st->api_key_env = json_object_object_get_ex(st->model_spec, "api_key_env", &v)
			? pstrdup(json_object_get_string(v)) : NULL;
		st->anthropic_version = json_object_object_get_ex(st->model_spec, "anthropic_version", &v)
			? pstrdup(json_object_get_string(v)) : NULL;
		ao_llm_price_init(&st->price, 0, 0);
		if (json_object_object_get_ex(st->model_spec, "prices", &v))
			(void) ao_llm_price_from_json(v, &st->price, NULL, NULL);
		if (st->fallbacks == NIL && json_object_object_get_ex(st->model_spec, "fallback", &v))
			for (size_t i = 0; i < json_object_array_length(v); i++)
				st->fallbacks = lappend(st->fallbacks,
										pstrdup(json_object_get_string(json_object_array_get_idx(v, i))));
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	ao_restore_user(&owner_scope);
	return found;
}

/* The text of a string-or-other JSON value (strings without quotes). */
static char *
value_text(json_object *v)
{
	if (v == NULL)
		return pstrdup("null");
	if (json_object_is_type(v, json_type_string))
		return pstrdup(json_object_get_string(v));
	return pstrdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/*
 * The provider-neutral call of an llm step, from its rendered spec and
 * input: prompt/system/messages at the top level or inside input; any other
 * input keys (the design notes' input.context) are given to the model
 * after the prompt. Used by the executors' llm steps and by the server side
 * of external workers (remote.c). The caller owns the result.
 */
json_object *
ao_llm_build_call(json_object *spec, json_object *input, const char *model_id)
{
	json_object *call = json_object_new_object();
	json_object *v;
	json_object *messages = json_object_new_array();
	StringInfoData prompt;
	StringInfoData extra;
	const char *sources_keys[] = {"system", "temperature", "max_tokens"};
	bool		obj = json_object_is_type(input, json_type_object);

	initStringInfo(&prompt);
	initStringInfo(&extra);
	json_object_object_add(call, "model", json_object_new_string(model_id ? model_id : ""));
	for (int i = 0; i < (int) lengthof(sources_keys); i++)
	{
		if (json_object_object_get_ex(spec, sources_keys[i], &v) ||
			(obj && json_object_object_get_ex(input, sources_keys[i], &v)))
			json_object_object_add(call, sources_keys[i], json_object_get(v));
	}
	if ((json_object_object_get_ex(spec, "messages", &v) ||
		 (obj && json_object_object_get_ex(input, "messages", &v))) &&
		json_object_is_type(v, json_type_array))
	{
		for (size_t i = 0; i < json_object_array_length(v); i++)
			json_object_array_add(messages, json_object_get(json_object_array_get_idx(v, i)));
	}
	if (json_object_object_get_ex(spec, "prompt", &v) ||
		(obj && json_object_object_get_ex(input, "prompt", &v)))
		appendStringInfoString(&prompt, value_text(v));
	if (obj)
	{
		json_object_object_foreach(input, key, val)
		{
			if (strcmp(key, "prompt") == 0 || strcmp(key, "system") == 0 || strcmp(key, "messages") == 0 ||
				strcmp(key, "temperature") == 0 || strcmp(key, "max_tokens") == 0)
				continue;
			appendStringInfo(&extra, "\n\n%s:\n%s", key, value_text(val));
		}
	}
	if (prompt.len > 0 || extra.len > 0)
	{
		json_object *m = json_object_new_object();

		json_object_object_add(m, "role", json_object_new_string("user"));
		json_object_object_add(m, "content", json_object_new_string(psprintf("%s%s", prompt.data, extra.data)));
		json_object_array_add(messages, m);
	}
	json_object_object_add(call, "messages", messages);
	json_object_object_add(call, "stream", json_object_new_boolean(true));
	if (json_object_object_get_ex(spec, "response_schema", &v))
		json_object_object_add(call, "response_schema", json_object_get(v));
	return call;
}

/*
 * The tools of an llm step as functions of its call: each registered tool
 * of the run with its spec.description and input_schema. Returns NULL when
 * the step has none; on a bad name (not a string, database.query, a tool
 * that does not exist) returns NULL with *problem, *detail and *sqlerrcode
 * set, and the step must fail. The caller owns the array.
 */
json_object *
ao_llm_tool_functions(int64 run, json_object *spec, int *sqlerrcode, char **problem, char **detail)
{
	json_object *names;
	json_object *tools;

	*problem = NULL;
	*detail = NULL;
	if (!json_object_object_get_ex(spec, "tools", &names))
		return NULL;
	/* start() and validation check this shape; a step must never trust it */
	if (!json_object_is_type(names, json_type_array))
	{
		*sqlerrcode = ERRCODE_INVALID_PARAMETER_VALUE;
		*problem = "\"tools\" of an llm step must be an array of tool names";
		return NULL;
	}
	for (size_t i = 0; i < json_object_array_length(names); i++)
		if (!json_object_is_type(json_object_array_get_idx(names, i), json_type_string))
		{
			*sqlerrcode = ERRCODE_INVALID_PARAMETER_VALUE;
			*problem = "\"tools\" of an llm step must be an array of tool names";
			return NULL;
		}
	if (json_object_array_length(names) == 0)
		return NULL;
	tools = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(names); i++)
	{
		const char *name = json_object_get_string(json_object_array_get_idx(names, i));
		AoTool	   *t;
		json_object *tool;
		json_object *d = NULL;

		if (strcmp(name, "database.query") == 0)
		{
			json_object_put(tools);
			*sqlerrcode = ERRCODE_INSUFFICIENT_PRIVILEGE;
			*problem = "database.query cannot be offered to a model as a tool";
			*detail = "Nothing a model writes is executed as SQL; offer a sql tool with a fixed statement.";
			return NULL;
		}
		t = ao_lookup_tool(run, name);
		if (t == NULL)
		{
			json_object_put(tools);
			*sqlerrcode = ERRCODE_UNDEFINED_OBJECT;
			*problem = psprintf("tool \"%s\" does not exist", name);
			return NULL;
		}
		tool = json_object_new_object();
		json_object_object_add(tool, "name", json_object_new_string(name));
		/* the tool's own description (spec.description) when it gives one */
		json_object_object_add(tool, "description",
							   t->spec && json_object_object_get_ex(t->spec, "description", &d) &&
							   json_object_is_type(d, json_type_string) && json_object_get_string_len(d) > 0
							   ? json_object_get(d)
							   : json_object_new_string(psprintf("agentorch tool %s (%s)", name, t->kind)));
		json_object_object_add(tool, "input_schema", t->input_schema ? json_object_get(t->input_schema)
							   : json_tokener_parse("{\"type\": \"object\"}"));
		json_object_array_add(tools, tool);
	}
	return tools;
}

/* Add the step's tools to its call; false (step failed) on a bad one. */
static bool
add_tools(LlmState *st, json_object *spec)
{
	int			sqlerrcode = 0;
	char	   *problem;
	char	   *detail;
	json_object *tools = ao_llm_tool_functions(ao_net_step_run(st->step), spec, &sqlerrcode, &problem, &detail);

	if (problem)
	{
		ao_net_step_fail(st->step, sqlerrcode, problem, detail);
		return false;
	}
	if (tools)
		json_object_object_add(st->call, "tools", tools);
	return true;
}

/* Choose the model: the step's, the run's, the default; a fallback when its breaker is open. */
static bool
choose_model(LlmState *st, json_object *spec)
{
	json_object *v;
	const char *name = NULL;

	if (json_object_object_get_ex(spec, "model", &v))
		name = json_object_get_string(v);
	else if (json_object_object_get_ex(ao_net_step_run_options(st->step), "model", &v))
		name = json_object_get_string(v);
	else if (ao_default_model && ao_default_model[0])
		name = ao_default_model;
	if (name == NULL)
	{
		ao_net_step_fail(st->step, ERRCODE_INVALID_PARAMETER_VALUE, "the llm step names no model",
						 "Give the step a \"model\", pass options {\"model\": ...}, or set agentorch.default_model.");
		return false;
	}
	if (!load_model(st, name))
	{
		ao_net_step_fail(st->step, ERRCODE_UNDEFINED_OBJECT, psprintf("model \"%s\" is not registered", name),
						 "Register it with agentorch.register_model().");
		return false;
	}
	while (ao_policy_is_open(psprintf("model:%s", st->model_name)) && st->fallbacks != NIL)
	{
		char	   *next = linitial(st->fallbacks);

		st->fallbacks = list_delete_first(st->fallbacks);
		if (!load_model(st, next))
			continue;
	}
	return true;
}

/*
 * Build and configure the request of the current turn from st->call.
 * Returns false when the step failed (bad call, header injection).
 */
static bool
prepare_request(LlmState *st)
{
	AoRequest  *r = ao_net_step_request(st->step);
	json_object *body = NULL;
	ao_problems problems;
	ao_llm_headers h;
	const char *key = NULL;
	ao_llm_callbacks cb = {0};
	size_t		len;
	const char *text;
	char	   *host = NULL;

	/* the settings may have changed since the model was registered */
	if (!ao_net_url_allowed(st->base_url, ao_llm_allowed_hosts, &host))
	{
		ao_net_step_fail(st->step, ERRCODE_INSUFFICIENT_PRIVILEGE,
						 psprintf("host %s of model \"%s\" is not allowed", host ? host : st->base_url, st->model_name),
						 "Model hosts must be listed in agentorch.llm_allowed_hosts.");
		return false;
	}
	/*
	 * A replayed request is answered from its recording and sent nowhere:
	 * it needs no key (a demo replays where the key is not set).
	 */
	if (st->api_key_env && ao_net_step_llm_mode(st->step) != AO_LLM_REPLAY)
	{
		int			sqlerrcode;
		const char *problem = ao_credential_problem(st->api_key_env, false,
													psprintf("api_key_env of model \"%s\"", st->model_name),
													&key, &sqlerrcode);

		if (problem)
		{
			ao_net_step_fail(st->step, sqlerrcode, problem, NULL);
			return false;
		}
		ao_net_step_add_secret(st->step, key);
	}

	json_object_object_add(st->call, "model", json_object_new_string(st->model_id));
	ao_problems_init(&problems);
	if (ao_llm_build_request(st->provider, st->call, st->toolmap, NULL, &body, &st->spec,
							 ao_problems_add, &problems) > 0)
	{
		char	   *detail = ao_problems_detail(&problems);

		ao_problems_free(&problems);
		ao_net_step_fail(st->step, ERRCODE_INVALID_PARAMETER_VALUE, "could not build the LLM request", detail);
		return false;
	}
	ao_problems_free(&problems);
	text = ao_llm_body_text(body, &len);
	r->request_body = pnstrdup(text, len);
	json_object_put(body);

	if (st->headers)
		curl_slist_free_all(st->headers);
	st->headers = NULL;
	if (!ao_llm_build_headers(st->provider, key ? key : "", st->anthropic_version, true, &h))
	{
		ao_net_step_fail(st->step, ERRCODE_INVALID_PARAMETER_VALUE, "the API key or version contains control characters", NULL);
		return false;
	}
	for (size_t i = 0; i < h.n; i++)
		st->headers = curl_slist_append(st->headers, h.lines[i]);
	ao_llm_headers_free(&h);
	/* the request gets its own copy: the engine frees it with the request */
	if (r->request_headers)
		curl_slist_free_all(r->request_headers);
	r->request_headers = NULL;
	{
		struct curl_slist *copy = NULL;

		for (struct curl_slist *l = st->headers; l; l = l->next)
			copy = curl_slist_append(copy, l->data);
		r->request_headers = copy;
	}
	r->url = psprintf("%s%s", st->base_url, ao_llm_endpoint_path(st->provider));
	r->method = "POST";
	r->on_data = on_data;
	/* an LLM request: recorded or replayed per agentorch.llm_mode (replay.c) */
	ao_net_step_set_llm(st->step, ao_llm_provider_name(st->provider), st->model_name);

	if (st->decoder)
		ao_llm_decoder_free(st->decoder);
	cb.text = on_text;
	cb.json_partial = on_json_partial;
	cb.tool_call_done = on_tool_call_done;
	st->decoder = ao_llm_decoder_new(&st->spec, st->toolmap, &cb, st, NULL);
	return true;
}

/*
 * The attempt number the step's chunks continue from: the step's attempt,
 * or past the highest one its chunks already carry (earlier fallbacks,
 * a resume after cancel, which starts counting attempts anew). A reset
 * chunk announces the new attempt when the step streamed anything before.
 */
static void
init_chunk_attempt(LlmState *st)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	int			last = 0;
	bool		started = tx_begin();
	AoUserScope owner_scope;

	values[0] = Int64GetDatum(ao_net_step_run(st->step));
	values[1] = CStringGetTextDatum(ao_net_step_id(st->step));
	ao_become_extension_owner(&owner_scope);
	/*
	 * Only a step that ran before (an attempt counted, or an input recorded
	 * by an earlier claim: resume resets the count but not the input) can
	 * have chunks; a first claim skips the scan of the run's chunks (there
	 * is no index on step_id, and a fan-out run may have many).
	 */
	/*
	 * Read-only: the statement sees the snapshot from before this
	 * transaction's lease, so the status chunk the lease just wrote is not
	 * taken for an earlier attempt's (run read-write, it would see it).
	 */
	if (ao_spi_exec_read_only("SELECT CASE WHEN s.attempt OPERATOR(pg_catalog.>) 0 OR s.input IS NOT NULL THEN "
							  "  (SELECT COALESCE(pg_catalog.max(c.attempt), 0) FROM agentorch.chunks c "
							  "    WHERE c.run_id OPERATOR(pg_catalog.=) $1 AND c.step_id OPERATOR(pg_catalog.=) $2) "
							  "  ELSE 0 END "
							  "FROM agentorch.steps s WHERE s.run_id OPERATOR(pg_catalog.=) $1 AND s.step_id OPERATOR(pg_catalog.=) $2",
							  2, types, values, NULL, SPI_OK_SELECT, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		last = isnull ? 0 : DatumGetInt32(d);
	}
	ao_restore_user(&owner_scope);
	tx_end(started);
	st->chunk_attempt = Max(ao_net_step_attempt(st->step), last + 1);
	st->need_reset = last > 0 || ao_net_step_attempt(st->step) > 1;
	st->reset_reason = ao_net_step_attempt(st->step) > 1 ? "retry" : "resume";
}

/* prepare: everything for the first turn (inside the claim transaction). */
static bool
llm_prepare(void *step, Jsonb *input, Jsonb *context)
{
	json_object *spec = ao_net_step_spec(step);
	LlmState   *st = palloc0(sizeof(LlmState));
	MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));
	json_object *rendered_spec;
	json_object *v;
	AoRequest  *r = ao_net_step_request(step);

	st->step = step;
	*ao_net_step_state(step) = st;
	cb->func = release_core;
	cb->arg = st;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	st->toolmap = ao_llm_toolmap_new();
	st->max_turns = json_object_object_get_ex(spec, "max_turns", &v) ? json_object_get_int(v)
		: AO_LLM_DEFAULT_MAX_TURNS;
	ao_chunks_init(&st->chunks, ao_net_step_run(step), ao_net_step_id(step), ao_net_step_scrub, step);
	init_chunk_attempt(st);
	MemoryContextSwitchTo(GetMemoryChunkContext(st));

	/* prompt, system and messages may hold ${...} too */
	rendered_spec = ao_json_from_jsonb(ao_render_jsonb(ao_jsonb_from_json(spec), context));
	if (!choose_model(st, rendered_spec))
		return false;
	st->call = ao_json_own(ao_llm_build_call(rendered_spec, ao_json_from_jsonb(input), st->model_id));
	st->response_schema = json_object_object_get(rendered_spec, "response_schema");
	if (!add_tools(st, rendered_spec))
		return false;
	if (!ao_net_step_admit(step, psprintf("model:%s", st->model_name), st->model_spec, 0))
		return false;
	r->total_timeout_ms = json_object_object_get_ex(spec, "timeout", &v) ? (long) ao_duration_ms(v)
		: (ao_step_timeout_ms > 0 ? ao_step_timeout_ms : 300000);
	r->total_timeout_ms = AO_CAP_STEP_TIMEOUT(r->total_timeout_ms);
	r->idle_timeout_ms = 60000;
	return prepare_request(st);
}

/* Append a message to the conversation. */
static void
add_message(LlmState *st, json_object *msg)
{
	json_object *messages = json_object_object_get(st->call, "messages");

	json_object_array_add(messages, msg);
}

/*
 * Run the tool calls of a reply as the run's owner, in one short
 * transaction, and append the tool results to the conversation.
 */
static void
run_tool_calls(LlmState *st, const ao_llm_result *res)
{
	MemoryContext stepcxt = GetMemoryChunkContext(st);
	bool		started = tx_begin();

	pgstat_report_activity(STATE_RUNNING, "agentorch: running tool calls of an llm step");
	for (size_t i = 0; i < res->n_tool_calls; i++)
	{
		const ao_llm_tool_call *call = &res->tool_calls[i];
		json_object *msg = json_object_new_object();
		Jsonb	   *output = NULL;
		Jsonb	   *error = NULL;
		bool		ok;
		json_object *result;

		if (!call->known)
		{
			ok = false;
			error = ao_error_jsonb(ERRCODE_UNDEFINED_OBJECT, psprintf("unknown tool \"%s\"", call->wire_name), NULL);
		}
		else if (call->arguments == NULL)
		{
			ok = false;
			error = ao_error_jsonb(ERRCODE_INVALID_TEXT_REPRESENTATION, "the arguments are not a JSON object", NULL);
		}
		else
			ok = ao_call_tool_as(ao_net_step_owner(st->step), ao_net_step_run(st->step), call->name,
								 ao_jsonb_from_json(call->arguments), &output, &error);
		result = ao_json_from_jsonb(ok ? output : error);
		json_object_object_add(msg, "role", json_object_new_string("tool"));
		json_object_object_add(msg, "tool_call_id", json_object_new_string(call->id));
		json_object_object_add(msg, "content", json_object_get(result));
		json_object_object_add(msg, "is_error", json_object_new_boolean(!ok));
		add_message(st, msg);
		{
			json_object *d = json_object_new_object();
			MemoryContext o2 = MemoryContextSwitchTo(stepcxt);

			json_object_object_add(d, "id", json_object_new_string(call->id));
			json_object_object_add(d, "name", json_object_new_string(call->name));
			json_object_object_add(d, ok ? "result" : "error", json_object_get(result));
			queue_chunk(st, "tool_call", call->name, strlen(call->name),
						json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
			json_object_put(d);
			MemoryContextSwitchTo(o2);
		}
	}
	tx_end(started);
	MemoryContextSwitchTo(stepcxt);
	if (started)
		pgstat_report_activity(STATE_IDLE, NULL);
}

/* The usage and cost so far, as the step's usage jsonb. */
static Jsonb *
usage_jsonb(LlmState *st)
{
	json_object *u = ao_json_own(json_object_new_object());

	json_object_object_add(u, "prompt_tokens", json_object_new_int64(st->prompt_tokens));
	json_object_object_add(u, "completion_tokens", json_object_new_int64(st->completion_tokens));
	/* costs are money: a fixed number of decimals, not binary noise */
	json_object_object_add(u, "cost", json_object_new_double_s(st->cost, psprintf("%.10f", st->cost)));
	return ao_jsonb_from_json(u);
}

/* Count a reply's usage. */
static void
add_usage(LlmState *st, const ao_llm_result *res)
{
	if (res->usage.input_tokens > 0)
		st->prompt_tokens += res->usage.input_tokens;
	if (res->usage.output_tokens > 0)
		st->completion_tokens += res->usage.output_tokens;
	st->cost += ao_llm_cost(&st->price, &res->usage);
}

/* Start the next request of the conversation (another turn). */
static void
next_turn(LlmState *st)
{
	st->turn++;
	if (prepare_request(st))
		(void) ao_net_step_restart(st->step);
}

/* A failure that a fallback model may still rescue. */
static void
fail_or_fallback(LlmState *st, const ao_llm_error *e)
{
	if (e->retryable && ao_net_step_last_attempt(st->step) && st->fallbacks != NIL)
	{
		char	   *next = linitial(st->fallbacks);
		bool		started;

		st->fallbacks = list_delete_first(st->fallbacks);
		/* loading the model needs a transaction */
		started = tx_begin();

		if (load_model(st, next))
		{
			tx_end(started);
			MemoryContextSwitchTo(GetMemoryChunkContext(st));
			if (!ao_net_step_switch_target(st->step, psprintf("model:%s", st->model_name), st->model_spec))
				return;
			/* the fallback's request is an attempt of its own */
			st->chunk_attempt++;
			st->need_reset = true;
			st->reset_reason = "fallback";
			queue_chunk(st, "status", "fallback", 8,
						psprintf("{\"fallback\": true, \"model\": \"%s\"}", next));
			if (prepare_request(st))
				(void) ao_net_step_restart(st->step);
			return;
		}
		tx_end(started);
	}
	if (e->retryable)
		ao_net_step_fail_retryable(st->step,
								   ao_net_step_request(st->step)->result == CURLE_OPERATION_TIMEDOUT ? ERRCODE_QUERY_CANCELED :
								   e->http_status >= 500 ? ERRCODE_SYSTEM_ERROR : ERRCODE_CONNECTION_EXCEPTION,
								   e->message, NULL,
								   e->retry_after_ms > 0 ? e->retry_after_ms : 0, usage_jsonb(st));
	else
		ao_net_step_fail(st->step, ERRCODE_DATA_EXCEPTION, e->message, NULL);
}

/*
 * The output of a plain-text reply: a reply that is exactly a JSON object
 * or array (as models asked for JSON in the prompt often answer) becomes
 * that value, so later steps can reference its members
 * (${analyze.output.summary}); any other text stays a JSON string. The
 * token chunks keep the text as streamed either way.
 */
static json_object *
text_output(const char *text, size_t len)
{
	size_t		start = 0;
	size_t		end = len;

	while (start < len && (text[start] == ' ' || text[start] == '\n' || text[start] == '\r' || text[start] == '\t'))
		start++;
	while (end > start && (text[end - 1] == ' ' || text[end - 1] == '\n' || text[end - 1] == '\r' || text[end - 1] == '\t'))
		end--;
	if (end > start && (text[start] == '{' || text[start] == '['))
	{
		json_tokener *tok = json_tokener_new();
		char	   *copy = pnstrdup(text + start, end - start);
		json_object *v = json_tokener_parse_ex(tok, copy, (int) (end - start) + 1);
		bool		whole = json_tokener_get_error(tok) == json_tokener_success &&
			json_tokener_get_parse_end(tok) >= end - start;

		json_tokener_free(tok);
		if (v && whole)
			return ao_json_own(v);
		if (v)
			json_object_put(v);
	}
	return ao_json_own(json_object_new_string_len(text ? text : "", (int) len));
}

static void llm_finish_reply(void *step);

/* Is the reply cut off by max_tokens (finish_reason "length")? */
static bool
cut_off(const ao_llm_result *res)
{
	return res->finish_reason != NULL && strcmp(res->finish_reason, "length") == 0;
}

/*
 * finish: the request of a turn completed. Whatever the outcome, the
 * usage of every request that was sent is recorded with it (also for a
 * permanent failure: a refusal, a reply cut off, an error chunk that
 * carries usage).
 */
static void
llm_finish(void *step)
{
	LlmState   *st = state_of(step);

	llm_finish_reply(step);
	if (st != NULL)
		ao_net_step_set_usage(step, usage_jsonb(st));
}

static void
llm_finish_reply(void *step)
{
	LlmState   *st = state_of(step);
	AoRequest  *r = ao_net_step_request(step);
	ao_llm_result res;
	ao_llm_error e;
	ao_llm_reply_outcome outcome;

	if (st == NULL)
	{
		ao_net_step_fail(step, ERRCODE_INTERNAL_ERROR, "llm step has no state", NULL);
		return;
	}
	{
		char	   *ra = r->status >= 300 ? ao_net_header(r, "Retry-After") : NULL;
		ao_llm_reply reply = {
			.provider = st->provider, .structured = st->spec.structured,
			.curl_code = r->result, .transport_error = r->error, .http_status = r->status,
			.body = r->body.data, .body_len = r->body.len, .retry_after = ra, .now_epoch_s = (double) time(NULL),
		};

		outcome = ao_llm_finish_reply(&reply, st->decoder, &res, &e);
	}
	add_usage(st, &res);
	switch (outcome)
	{
		case AO_LLM_REPLY_FAILED:
			ao_llm_result_free(&res);
			fail_or_fallback(st, &e);
			return;
		case AO_LLM_REPLY_CUT_OFF:
			/* a tool call's arguments are incomplete */
			ao_llm_result_free(&res);
			ao_net_step_fail(step, ERRCODE_PROGRAM_LIMIT_EXCEEDED, "the reply was cut off by max_tokens inside a tool call",
							 "The tool call's arguments are incomplete; raise the step's max_tokens.");
			return;
		case AO_LLM_REPLY_TOOL_CALLS:
			/* run them and ask again */
			if (st->turn + 1 >= st->max_turns)
			{
				ao_llm_result_free(&res);
				ao_net_step_fail(step, ERRCODE_PROGRAM_LIMIT_EXCEEDED, psprintf("the model still asked for tools after %d turns", st->max_turns),
								 "Raise the step's max_turns if the conversation needs more.");
				return;
			}
			add_message(st, ao_llm_result_to_json(&res));
			run_tool_calls(st, &res);
			ao_llm_result_free(&res);
			next_turn(st);
			return;
		case AO_LLM_REPLY_ANSWER:
			break;
	}

	if (st->response_schema)
	{
		ao_problems problems;
		char	   *detail;

		ao_problems_init(&problems);
		if (res.structured == NULL)
			ao_problems_add(&problems, "", res.error.kind == AO_LLM_ERR_OUTPUT ? res.error.message
							: "the reply holds no JSON value");
		else
			(void) ao_json_schema_validate(st->response_schema, res.structured, ao_problems_add, &problems);
		if (problems.n > 0)
		{
			detail = ao_problems_detail(&problems);
			ao_problems_free(&problems);
			if (cut_off(&res))
			{
				/* asking again would be cut off the same way: no repair turn */
				ao_llm_result_free(&res);
				ao_net_step_fail(step, ERRCODE_PROGRAM_LIMIT_EXCEEDED, "the structured reply was cut off by max_tokens",
								 "Raise the step's max_tokens.");
				return;
			}
			if (!st->repaired)
			{
				json_object *msg = json_object_new_object();

				st->repaired = true;
				add_message(st, ao_llm_result_to_json(&res));
				json_object_object_add(msg, "role", json_object_new_string("user"));
				json_object_object_add(msg, "content", json_object_new_string(
					psprintf("Your reply does not match the required JSON schema:\n%s\nReply again with only a JSON value that matches the schema.", detail)));
				add_message(st, msg);
				queue_chunk(st, "status", "repair", 6, "{\"repair\": true}");
				ao_llm_result_free(&res);
				next_turn(st);
				return;
			}
			ao_llm_result_free(&res);
			ao_net_step_fail(step, ERRCODE_INVALID_PARAMETER_VALUE, "the model's structured output does not match response_schema", detail);
			return;
		}
		ao_problems_free(&problems);
		ao_net_step_succeed(step, ao_jsonb_from_json(ao_json_own(json_object_get(res.structured))), usage_jsonb(st));
		ao_llm_result_free(&res);
		return;
	}

	ao_net_step_succeed(step, ao_jsonb_from_json(text_output(res.text, res.text_len)), usage_jsonb(st));
	ao_llm_result_free(&res);
}

/*
 * Write the queued chunks of a step now (caller: in a transaction with an
 * SPI connection, as the extension owner). run_sync uses it. Returns true
 * when something was written.
 */
bool
ao_llm_flush_pending(void *step)
{
	LlmState   *st = state_of(step);

	return st ? ao_state_write_chunks(&st->chunks) : false;
}

/* before_settle: the last chunks commit together with the outcome. */
static void
llm_before_settle(void *step)
{
	LlmState   *st = state_of(step);

	if (st)
		(void) ao_state_write_chunks(&st->chunks);
}

/* release: forget the step (its memory goes with the step's context). */
static void
llm_release(void *step)
{
	LlmState   *st = state_of(step);

	if (st)
		ao_chunks_forget(&st->chunks);
}

static AoNetKind llm_kind = {"llm", llm_prepare, llm_before_settle, llm_finish, llm_release, true};

/*
 * Register the llm step kind with the network runner (from _PG_init), so
 * runner_net.c dispatches llm steps here without naming this file.
 */
void
ao_llm_register(void)
{
	ao_net_register_kind("llm", &llm_kind);
}
