/*-------------------------------------------------------------------------
 *
 * runner_net.c
 *	  Network steps (http tools, and llm steps through llm.c): leased,
 *	  driven by the HTTP engine (net.c), never inside a transaction.
 *
 * The life of a network step in an executor:
 *   claim   -- a short transaction moves it ready -> running with a lease
 *              (lease_until, worker = this pid), counts the attempt and
 *              records its rendered input; it commits BEFORE any byte is
 *              sent, so after a crash the attempt is known (TimescaleDB's
 *              "commit attempt started first").
 *   run     -- its request(s) go through the shared curl multi handle;
 *              the lease is extended while they run (heartbeat), and a step
 *              that is no longer ours (cancelled, lease lost) is abandoned.
 *   settle  -- a short transaction records the outcome for all requests
 *              that finished together: success, another attempt after a
 *              backoff (honouring Retry-After), or failure. The outcome is
 *              recorded only if the step is still running under our lease.
 * Record and replay (replay.c): the request of a kind that calls itself an
 * LLM request (ao_net_step_set_llm) is, under the run's agentorch.llm_mode,
 * answered from its recording instead of being sent (replay), or its
 * complete response is kept and written when the step settles (record).
 * A crash anywhere leaves a running step whose lease expires; maintenance
 * (agentorch._recover) makes it ready again or fails it when its
 * attempts are spent.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/runner/runner_net.c
 *
 *-------------------------------------------------------------------------
 */
#include "runner.h"

#include <curl/curl.h>

#include <limits.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "ao_backoff.h"
#include "ao_llm.h"
#include "io.h"
#include "policy.h"
#include "ao_workflow.h"

/* A network step this executor is running. */
typedef struct NetStep
{
	dlist_node	node;
	MemoryContext cxt;			/* everything of this step */
	int64		run_id;
	char	   *step_id;
	int			attempt;		/* this attempt's number (1-based) */
	int			max_attempts;
	Oid			owner;
	json_object *spec;			/* the step spec */
	json_object *run_options;	/* the run's options */
	AoRequest	req;
	AoNetKind  *kind;			/* how this kind of step runs */
	void	   *state;			/* the kind's own state */
	/* outcome, set when finished */
	bool		finished;
	bool		ok;
	Jsonb	   *output;
	Jsonb	   *error;
	bool		retryable;
	double		retry_after_ms;
	Jsonb	   *usage;
	bool		deferred;		/* not run: ready again after defer_ms, attempt not spent */
	bool		sent;			/* a request of this attempt went out (the attempt is spent) */
	long		defer_ms;
	double		deadline_left_ms;	/* until the run's deadline at claim time; < 0: none */
	/* the policy target the request counts against (policy.c) */
	char	   *policy_name;
	AoLimits	limits;
	bool		policy_acquired;
	uint64		policy_probe;	/* the half-open breaker's probe ticket, or 0 */
	/* credential values the request carried: scrubbed from what is kept */
	List	   *secrets;
	bool		scrubbed;
	/* "traceparent: 00-<run's trace id>-<step's span id>-01", or NULL */
	char	   *traceparent;
	/* the step lock it holds (spec.lock), released when the step's memory goes */
	char	   *lock_name;
	/* record and replay (replay.c): the run's agentorch.llm_mode */
	int			llm_mode;
	char	   *owner_name;		/* the run owner's role name (part of the key) */
	const char *llm_provider;	/* set by a kind whose requests are LLM requests */
	const char *llm_model;		/* the logical model of the current request */
	List	   *recordings;		/* AoRecording: written when the step settles */
} NetStep;

static dlist_head running_steps = DLIST_STATIC_INIT(running_steps);
static int	nrunning = 0;
static TimestampTz last_heartbeat = 0;

/* The step whose request this is. */
static NetStep *
step_of(AoRequest *r)
{
	return (NetStep *) r->arg;
}

/* Run a statement in the current SPI connection; ERROR on failure. */
static void
spi_run(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	/* every caller passes a string literal: its plan is kept (common/spi.c) */
	(void) ao_spi_exec_literal(sql, nargs, types, values, nulls);
}

/*
 * Chaos tests: a completed response treated as a provider fault (retryable,
 * like a 503), with agentorch.chaos_provider_fault_rate. True when injected.
 */
static bool
chaos_provider_fault(NetStep *s)
{
	if (!ao_chaos_roll(ao_chaos_provider_fault_rate))
		return false;
	ao_net_step_fail_retryable(s, ERRCODE_CONNECTION_EXCEPTION, "chaos: injected provider fault",
							   "agentorch.chaos_provider_fault_rate is set.", 0, NULL);
	return true;
}

/*
 * The W3C traceparent of a step's requests, "00-<trace id>-<span id>-01":
 * the run's trace id and the step's span id, the first 16 hex digits of
 * md5("<trace id>/<step id>") -- what agentorch._span_id() gives
 * trace(run_id). NULL when the run has no W3C trace id (a database still
 * at 0.1.0 stored options.traceparent as given) or OpenSSL offers no MD5
 * (as pg_md5_hash failing did before). Executors send it as a
 * header; external workers get it with the step (remote.c).
 */
char *
ao_traceparent(const char *trace_id, const char *step_id)
{
	char		hex[33];
	char	   *key;

	if (trace_id == NULL || strlen(trace_id) != 32 || strspn(trace_id, "0123456789abcdef") != 32)
		return NULL;
	/* no MD5 from OpenSSL (a FIPS configuration): requests go without the header */
	if (!ao_digest_ready())
		return NULL;
	key = psprintf("%s/%s", trace_id, step_id);
	ao_md5_hex(key, strlen(key), hex);
	return psprintf("00-%s-%.16s-01", trace_id, hex);
}

/* The traceparent header line of a step's requests (NULL: none). */
static char *
traceparent_header(const char *trace_id, const char *step_id)
{
	char	   *value = ao_traceparent(trace_id, step_id);

	return value ? psprintf("traceparent: %s", value) : NULL;
}

/*
 * The agentorch.llm_mode of a step: the run's (options.llm_mode, written
 * by start() from the starting session's setting); without one, live for
 * an executor, the session's own value inside a statement (the selector's
 * request, which has no run). Caller: in a transaction (inline: the role
 * name lookup).
 */
static void
set_llm_mode(NetStep *s, bool in_session)
{
	json_object *v = NULL;
	int			mode = -1;

	if (json_object_is_type(s->run_options, json_type_object) &&
		json_object_object_get_ex(s->run_options, "llm_mode", &v) &&
		json_object_is_type(v, json_type_string))
		mode = ao_llm_mode_parse(json_object_get_string(v));
	if (mode < 0)
		mode = in_session ? ao_llm_mode : AO_LLM_LIVE;
	s->llm_mode = mode;
	if (mode != AO_LLM_LIVE)
	{
		char	   *name = GetUserNameFromId(s->owner, true);

		s->owner_name = name ? name : psprintf("%u", s->owner);
	}
}

/* A kind's requests are LLM requests of this provider and logical model (llm.c). */
void
ao_net_step_set_llm(void *step, const char *provider, const char *model)
{
	NetStep    *s = step;

	s->llm_provider = provider;
	s->llm_model = MemoryContextStrdup(s->cxt, model ? model : "");
}

/* The step's agentorch.llm_mode (AO_LLM_LIVE, _RECORD, _REPLAY). */
int
ao_net_step_llm_mode(void *step)
{
	return ((NetStep *) step)->llm_mode;
}

/*
 * agentorch.llm_mode = replay: answer the step's request from its
 * recording; the engine delivers the recorded bytes as if they came from
 * the network (ao_net_start_replay). No recording: the step fails for
 * good (42704), naming the model -- another attempt would miss again.
 */
static void
replay_request(NetStep *s)
{
	MemoryContext old = MemoryContextSwitchTo(s->cxt);
	AoReplayed	rec;
	char	   *key = NULL;
	bytea	   *material = ao_replay_material(s->owner_name, s->llm_provider, s->req.url, s->req.request_body);
	volatile bool found = false;

	if (IsTransactionState())
		found = ao_replay_lookup(material, s->cxt, &rec, &key);
	else
	{
		/*
		 * An executor between its transactions: whatever fails in the
		 * lookup's own (a recording a superuser broke) is this step's
		 * failure, not the executor's.
		 */
		PG_TRY();
		{
			found = ao_replay_lookup(material, s->cxt, &rec, &key);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			HOLD_INTERRUPTS();
			MemoryContextSwitchTo(s->cxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortOutOfAnyTransaction();
			RESUME_INTERRUPTS();
			MemoryContextSwitchTo(s->cxt);
			ao_net_step_fail(s, edata->sqlerrcode, psprintf("could not read the recording: %s", edata->message),
							 edata->detail);
			MemoryContextSwitchTo(old);
			return;
		}
		PG_END_TRY();
	}
	if (found)
		ao_net_start_replay(&s->req, rec.status, rec.content_type, rec.body, rec.len);
	else
		ao_net_step_fail(s, ERRCODE_UNDEFINED_OBJECT,
						 psprintf("no recording of this request to model \"%s\" exists (agentorch.llm_mode is replay)",
								  s->llm_model ? s->llm_model : "?"),
						 psprintf("Nothing was sent. Its key in agentorch.llm_cache would be %s. "
								  "Run it once with agentorch.llm_mode = record (as the same role, with the same input) to record it.",
								  key ? key : "?"));
	MemoryContextSwitchTo(old);
}

/*
 * agentorch.llm_mode = record: keep the response of a finished request
 * (when it is complete and worth replaying) with its request, to be
 * written when the step settles. Called before the kind sees the
 * response, which may start the next request on the same AoRequest.
 */
static void
capture_recording(NetStep *s)
{
	MemoryContext old;

	if (s->llm_mode != AO_LLM_RECORD || s->llm_provider == NULL || s->req.replayed ||
		!ao_replay_recordable(&s->req))
		return;
	old = MemoryContextSwitchTo(s->cxt);
	s->recordings = lappend(s->recordings,
							ao_replay_capture(&s->req,
											  ao_replay_material(s->owner_name, s->llm_provider,
																 s->req.url, s->req.request_body),
											  s->owner_name, s->llm_provider, s->llm_model,
											  ao_net_step_scrub, s));
	MemoryContextSwitchTo(old);
}

/* Write the step's recordings (in the settling transaction) and forget them. */
static void
store_recordings(NetStep *s)
{
	if (s->recordings == NIL)
		return;
	ao_replay_store(s->recordings);
	s->recordings = NIL;
}

/*
 * Send the step's request: it carries the run's W3C trace context, so a
 * provider's or tool's own tracing joins agentorch.trace(run_id) (the span
 * id is the step's span there). Returns false when curl could not start it.
 * In replay mode an LLM request is answered from its recording instead
 * (or the step fails); true either way.
 */
static bool
send_request(NetStep *s)
{
	if (s->llm_provider && s->llm_mode == AO_LLM_REPLAY)
	{
		replay_request(s);
		return true;
	}
	if (s->traceparent)
	{
		bool		present = false;

		for (struct curl_slist *h = s->req.request_headers; h && !present; h = h->next)
			present = pg_strncasecmp(h->data, "traceparent:", 12) == 0;
		if (!present)
			s->req.request_headers = curl_slist_append(s->req.request_headers, s->traceparent);
	}
	return ao_net_start(&s->req);
}

/* Finish a step's attempt with a permanent failure (before or after its request). */
void
ao_net_step_fail(void *step, int sqlerrcode, const char *message, const char *detail)
{
	NetStep    *s = step;
	MemoryContext old = MemoryContextSwitchTo(s->cxt);

	s->finished = true;
	s->ok = false;
	s->retryable = false;
	s->error = ao_error_jsonb(sqlerrcode, message, detail);
	MemoryContextSwitchTo(old);
}

/* Defer a step: not run now, ready again after wait_ms, no attempt spent. */
void
ao_net_step_defer(void *step, long wait_ms)
{
	NetStep    *s = step;

	s->finished = true;
	s->deferred = true;
	s->defer_ms = wait_ms;
}

/*
 * Ask the policies of a target (bulkhead, rate limit, breaker) whether
 * the step may send its request now. On "no" the step is deferred (limits)
 * or failed retryably (open breaker) and false is returned.
 */
bool
ao_net_step_admit(void *step, const char *policy_name, json_object *limits_json,
				  double expected_tokens)
{
	NetStep    *s = step;
	long		wait_ms;
	AoDecision	d;

	s->policy_name = pstrdup(policy_name);
	ao_policy_limits_from_json(limits_json, &s->limits);
	d = ao_policy_acquire(s->policy_name, &s->limits, expected_tokens, &wait_ms, &s->policy_probe);
	if (d == AO_ALLOW)
	{
		s->policy_acquired = true;
		return true;
	}
	if (d == AO_DEFER)
		ao_net_step_defer(s, wait_ms);
	else if (s->deadline_left_ms < 0 || (double) wait_ms < s->deadline_left_ms)
	{
		/*
		 * An open breaker: the step waits for the cooldown (or for the
		 * probe in flight) like a deferral, and spends no attempt -- only
		 * a request that was sent spends one.
		 */
		ao_net_step_defer(s, wait_ms);
	}
	else
		ao_net_step_fail(s, ERRCODE_CANNOT_CONNECT_NOW, psprintf("circuit breaker of %s is open", policy_name),
						 "Too many consecutive failures; the run's deadline comes before the cooldown ends.");
	return false;
}

/* The step's usage so far (llm.c: recorded whatever the outcome). */
void
ao_net_step_set_usage(void *step, Jsonb *usage)
{
	((NetStep *) step)->usage = usage;
}

/* Switch the step to another policy target (a fallback model): the current
 * one failed, the new one must admit the request. */
bool
ao_net_step_switch_target(void *step, const char *policy_name, json_object *limits_json)
{
	NetStep    *s = step;

	long		wait_ms;
	AoDecision	d;

	if (s->policy_acquired)
	{
		ao_policy_release(s->policy_name, &s->limits, 0, 0, s->policy_probe);
		s->policy_acquired = false;
	}
	/*
	 * A request of this attempt was sent already: an open breaker of the
	 * fallback fails the attempt (it was spent), a full bulkhead defers.
	 */
	s->policy_name = pstrdup(policy_name);
	ao_policy_limits_from_json(limits_json, &s->limits);
	d = ao_policy_acquire(s->policy_name, &s->limits, 0, &wait_ms, &s->policy_probe);
	if (d == AO_ALLOW)
	{
		s->policy_acquired = true;
		return true;
	}
	if (d == AO_DEFER)
		ao_net_step_defer(s, wait_ms);
	else
		ao_net_step_fail_retryable(s, ERRCODE_CANNOT_CONNECT_NOW, psprintf("circuit breaker of %s is open", policy_name),
								   "Too many consecutive failures; requests resume after the cooldown.",
								   (double) wait_ms, s->usage);
	return false;
}

/*-------------------------------------------------------------------------
 * http tools
 *-------------------------------------------------------------------------
 */

/* Prepare the request of an http tool step; false when it cannot run. */
static bool
http_prepare(void *step, Jsonb *input, Jsonb *context)
{
	NetStep    *s = step;
	json_object *tool_name = NULL;
	AoTool	   *t;
	const char *url;
	const char *method;
	char	   *host;
	json_object *headers;

	json_object_object_get_ex(s->spec, "tool", &tool_name);
	t = ao_lookup_tool(s->run_id, json_object_get_string(tool_name));
	if (t == NULL || strcmp(t->kind, "http") != 0)
	{
		ao_net_step_fail(s, ERRCODE_UNDEFINED_OBJECT, psprintf("http tool \"%s\" does not exist", json_object_get_string(tool_name)), NULL);
		return false;
	}
	url = json_object_get_string(json_object_object_get(t->spec, "url"));
	method = json_object_object_get(t->spec, "method")
		? json_object_get_string(json_object_object_get(t->spec, "method")) : "POST";
	if (!ao_net_url_allowed(url, ao_http_allowed_hosts, &host))
	{
		ao_net_step_fail(s, ERRCODE_INSUFFICIENT_PRIVILEGE, psprintf("host %s of tool \"%s\" is not allowed", host ? host : url, t->name),
						 "HTTP targets must be listed in agentorch.http_allowed_hosts (empty means none).");
		return false;
	}
	if (!ao_net_step_admit(s, psprintf("tool:%s", t->name), t->policy, 0))
		return false;
	s->req.url = pstrdup(url);
	s->req.method = pstrdup(method);
	if (strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0)
	{
		s->req.request_body = JsonbToCString(NULL, &input->root, VARSIZE(input));
		s->req.request_headers = curl_slist_append(s->req.request_headers, "Content-Type: application/json");
	}
	if (json_object_object_get_ex(t->spec, "headers", &headers))
	{
		json_object_object_foreach(headers, k, v)
		{
			char	   *h = psprintf("%s: %s", k, json_object_get_string(v));

			s->req.request_headers = curl_slist_append(s->req.request_headers, h);
		}
	}
	if (json_object_object_get_ex(t->spec, "headers_env", &headers) &&
		json_object_is_type(headers, json_type_object))
	{
		/* credentials come from the server's environment, never from a spec */
		json_object_object_foreach(headers, k, ref)
		{
			json_object *env = json_object_is_type(ref, json_type_string) ? ref : NULL;
			json_object *prefix = NULL;
			const char *value;
			int			sqlerrcode;
			const char *problem;

			if (env == NULL && json_object_is_type(ref, json_type_object))
			{
				json_object_object_get_ex(ref, "env", &env);
				json_object_object_get_ex(ref, "prefix", &prefix);
			}
			if (env == NULL || !json_object_is_type(env, json_type_string))
			{
				ao_net_step_fail(s, ERRCODE_INVALID_PARAMETER_VALUE, psprintf("headers_env[\"%s\"] of tool \"%s\" names no variable", k, t->name), NULL);
				return false;
			}
			problem = ao_credential_problem(json_object_get_string(env), true,
											psprintf("headers_env[\"%s\"] of tool \"%s\"", k, t->name),
											&value, &sqlerrcode);
			if (problem)
			{
				ao_net_step_fail(s, sqlerrcode, problem, NULL);
				return false;
			}
			if (strpbrk(value, "\r\n") != NULL)
			{
				ao_net_step_fail(s, ERRCODE_INVALID_PARAMETER_VALUE, psprintf("environment variable \"%s\" contains a line break",
													  json_object_get_string(env)), NULL);
				return false;
			}
			ao_net_step_add_secret(s, value);
			s->req.request_headers =
				curl_slist_append(s->req.request_headers,
								  psprintf("%s: %s%s", k, prefix ? json_object_get_string(prefix) : "", value));
		}
	}
	if (s->spec && json_object_object_get_ex(s->spec, "timeout", NULL))
		s->req.total_timeout_ms = (long) ao_duration_ms(json_object_object_get(s->spec, "timeout"));
	else if (t->policy && json_object_object_get_ex(t->policy, "timeout", NULL))
		s->req.total_timeout_ms = (long) ao_duration_ms(json_object_object_get(t->policy, "timeout"));
	else
		s->req.total_timeout_ms = ao_step_timeout_ms > 0 ? ao_step_timeout_ms : 60000;
	s->req.total_timeout_ms = AO_CAP_STEP_TIMEOUT(s->req.total_timeout_ms);
	return true;
}

/* A clean (NUL-free, well-formed UTF-8) palloc'd copy of n bytes of text. */
static char *
clean_text(const char *t, size_t n)
{
	size_t		len;
	char	   *c;
	char	   *out;

	if (ao_llm_text_is_clean(t, n))
		return pnstrdup(t, n);
	c = ao_llm_text_sanitize(t, n, &len);
	out = pnstrdup(c, len);
	free(c);
	return out;
}

/*
 * Is a response of this Content-Type text? text/..., JSON, XML and a few
 * other textual application types are; everything else (images, audio,
 * application/octet-stream, pdf, ...) is binary. No Content-Type: decided
 * by the bytes alone.
 */
static bool
textual_content_type(const char *ctype)
{
	static const char *const textual[] = {
		"application/json", "application/xml", "application/javascript", "application/ecmascript",
		"application/x-www-form-urlencoded", "application/yaml", "application/x-yaml",
		"application/x-ndjson", "application/graphql", "application/sql", "image/svg+xml", NULL
	};
	char	   *t;
	char	   *semi;

	if (ctype == NULL)
		return true;
	t = pstrdup(ctype);
	if ((semi = strchr(t, ';')) != NULL)
		*semi = '\0';
	for (char *c = t; *c; c++)
		*c = pg_tolower((unsigned char) *c);
	while (*t == ' ')
		t++;
	for (char *e = t + strlen(t); e > t && e[-1] == ' '; e--)
		e[-1] = '\0';
	if (strncmp(t, "text/", 5) == 0 || strstr(t, "+json") != NULL || strstr(t, "+xml") != NULL)
		return true;
	for (int i = 0; textual[i]; i++)
		if (strcmp(t, textual[i]) == 0)
			return true;
	return false;
}

/*
 * Settle an http response: {status, headers, body} or a classified
 * failure. The body is a JSON value when the response says JSON and
 * parses, otherwise text. A binary body -- a non-text Content-Type, a NUL
 * byte, or bytes that are not well-formed UTF-8, none of which text or
 * jsonb can hold -- is returned as {status, headers, body_base64,
 * content_type} instead. A "\u0000" escape (or a lone surrogate) inside a
 * JSON body becomes U+FFFD, the replacement character, like in LLM
 * replies (ao_llm_json_sanitize).
 */
static void
http_finish(void *step)
{
	NetStep    *s = step;
	AoRequest  *r = &s->req;
	json_object *out;
	json_object *hdrs;
	json_object *body = NULL;
	char	   *ctype;
	const char *data = r->body.data ? r->body.data : "";
	size_t		len = r->body.data ? r->body.len : 0;
	bool		binary;

	s->finished = true;
	if (r->error)
	{
		s->ok = false;
		s->retryable = !r->too_large;
		/* past the step's timeout (or stalled past the idle timeout): 57014, as a transactional step's */
		s->error = ao_error_jsonb(r->result == CURLE_OPERATION_TIMEDOUT ? ERRCODE_QUERY_CANCELED : ERRCODE_CONNECTION_EXCEPTION,
								  psprintf("http request failed: %s", clean_text(r->error, strlen(r->error))), NULL);
		return;
	}
	out = ao_json_own(json_object_new_object());
	hdrs = json_object_new_object();
	json_object_object_add(out, "status", json_object_new_int((int) r->status));
	json_object_object_add(out, "headers", hdrs);
	/* headers: one "name: value" per line; later duplicates win */
	ao_http_headers_into(hdrs, clean_text(r->headers.data ? r->headers.data : "",
										  r->headers.data ? r->headers.len : 0));
	ctype = ao_net_header(r, "Content-Type");
	if (ctype)
		ctype = clean_text(ctype, strlen(ctype));
	binary = !textual_content_type(ctype) || !ao_llm_text_is_clean(data, len);
	if (binary)
	{
		int			enclen = pg_b64_enc_len((int) len);
		char	   *enc = palloc(enclen + 1);
		int			n = len > 0 ? pg_b64_encode(data, (int) len, enc, enclen) : 0;

		if (n < 0)
			n = 0;
		enc[n] = '\0';
		json_object_object_add(out, "body_base64", json_object_new_string_len(enc, n));
		json_object_object_add(out, "content_type", ctype ? json_object_new_string(ctype) : NULL);
	}
	else
	{
		if (ctype && strstr(ctype, "json") && len > 0)
		{
			json_tokener *tok = json_tokener_new();
			char	   *clean = ao_json_text_without_nul(data, len);

			/* a key with \u0000 keeps it as U+FFFD instead of being cut short */
			body = json_tokener_parse_ex(tok, clean ? clean : data, (int) len + 1);
			free(clean);
			if (json_tokener_get_error(tok) != json_tokener_success)
			{
				if (body)
					json_object_put(body);
				body = NULL;
			}
			json_tokener_free(tok);
			(void) ao_llm_json_sanitize(body);
		}
		if (body == NULL)
			body = json_object_new_string_len(data, (int) len);
		json_object_object_add(out, "body", body);
	}

	if (r->status >= 200 && r->status < 300)
	{
		s->ok = true;
		s->output = ao_jsonb_from_json(out);
		return;
	}
	s->ok = false;
	s->retryable = r->status == 429 || r->status >= 500 || r->status == 408;
	{
		char	   *ra = ao_net_header(r, "Retry-After");

		if (ra)
			s->retry_after_ms = atof(ra) * 1000.0;
	}
	s->error = ao_error_jsonb(r->status >= 500 ? ERRCODE_SYSTEM_ERROR : ERRCODE_DATA_EXCEPTION,
							  psprintf("http tool returned status %ld", r->status),
							  binary ? psprintf("(a binary body of %zu bytes)", len)
							  : clean_text(data, Min(len, 500)));
}

static AoNetKind http_kind = {"http", http_prepare, NULL, http_finish, NULL, false};

/*
 * Kinds registered by the files that implement them (llm.c), by step
 * type; a network step of any other type is an http tool.
 */
#define AO_MAX_NET_KINDS 8
static struct
{
	const char *type;
	AoNetKind  *kind;
}			net_kinds[AO_MAX_NET_KINDS];
static int	nnet_kinds = 0;

/* Register the kind that runs network steps of a type (from _PG_init). */
void
ao_net_register_kind(const char *type, AoNetKind *kind)
{
	if (nnet_kinds == AO_MAX_NET_KINDS)
		elog(ERROR, "agentorch: too many network step kinds");
	net_kinds[nnet_kinds].type = type;
	net_kinds[nnet_kinds].kind = kind;
	nnet_kinds++;
}

/*-------------------------------------------------------------------------
 * Claim, heartbeat, settle
 *-------------------------------------------------------------------------
 */

static void release_request_cb(void *arg);

/* Which kind runs a network step spec. */
static AoNetKind *
kind_of(json_object *spec)
{
	json_object *type = NULL;

	json_object_object_get_ex(spec, "type", &type);
	for (int i = 0; type && i < nnet_kinds; i++)
		if (strcmp(json_object_get_string(type), net_kinds[i].type) == 0)
			return net_kinds[i].kind;
	return &http_kind;
}

/*
 * A new step in a memory context of its own under parent: whatever takes
 * that memory away (the step settled, an ERROR) takes its transfer out of
 * curl first, and gives back its step lock and policy slot
 * (release_request_cb).
 */
static NetStep *
new_step(MemoryContext parent)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "agentorch network step", ALLOCSET_SMALL_SIZES);
	NetStep    *s = MemoryContextAllocZero(cxt, sizeof(NetStep));
	MemoryContextCallback *cb = MemoryContextAllocZero(cxt, sizeof(MemoryContextCallback));

	s->cxt = cxt;
	cb->func = release_request_cb;
	cb->arg = s;
	MemoryContextRegisterResetCallback(cxt, cb);
	return s;
}

/*
 * A new step's spec and run options (text, as read), its llm_mode (from
 * the run's options, or this session's settings for run_sync), its kind,
 * and its request's limits.
 */
static void
init_step(NetStep *s, const char *spec, const char *options, bool in_session)
{
	s->spec = ao_json_from_cstring(spec, strlen(spec), "step spec");
	s->run_options = ao_json_from_cstring(options, strlen(options), "run options");
	set_llm_mode(s, in_session);
	s->kind = kind_of(s->spec);
	s->req.arg = s;
	s->req.max_bytes = (size_t) ao_max_response_size;
	s->req.idle_timeout_ms = 60000;
}

/*
 * How many request slots have been given back in this process (a settled
 * step, a lost lease): a claim that found the slots full can find room
 * once it moved.
 */
static uint64 slots_freed = 0;

uint64
ao_net_steps_freed(void)
{
	return slots_freed;
}

/* Send a claimed step's request, or fail the step when curl cannot start it. */
static void
start_request(NetStep *s)
{
	if (send_request(s))
		s->sent = true;
	else
		ao_net_step_fail(s, ERRCODE_CONNECTION_EXCEPTION, psprintf("could not start the request: %s", s->req.error),
						 NULL);
}

/* the last claim transaction ended in an ERROR (until one commits) */
static bool claim_failed = false;

/*
 * A claimed step whose request may leave while the lease's commit is
 * flushed: its kind's first request changes nothing outside (an LLM's),
 * and it goes to the network (a replayed one reads a recording, and a
 * failure there is the step's own, never the claim transaction's). Not
 * after a claim transaction failed, until one commits: a commit that keeps
 * failing (a trigger, serialization) would send a paid request each time,
 * with no attempt ever counted.
 */
static bool
sends_while_committing(NetStep *s)
{
	return !claim_failed && !s->finished && !s->deferred && s->req.url != NULL && s->kind->send_while_committing &&
		!(s->llm_provider && s->llm_mode == AO_LLM_REPLAY);
}

/*
 * In the claim transaction: each claimed step's run locked, its request
 * prepared (in a subtransaction of its own) and its attempt leased -- or
 * the step deferred, or cancelled with its run -- then one notification
 * per touched run, and the requests that may leave before the commit sent.
 */
static void
begin_attempts(List *claimed)
{
	ListCell   *lc;
	List	   *volatile runs = NIL;

	foreach(lc, claimed)
	{
		NetStep    *s = lfirst(lc);
		Oid			types[4] = {INT8OID, TEXTOID, INT4OID, INT4OID};
		Datum		values[4];
		Jsonb	   *context;
		Jsonb	   *volatile input;
		MemoryContext old;

		values[0] = Int64GetDatum(s->run_id);
		values[1] = CStringGetTextDatum(s->step_id);
		ao_state_lock_run(s->run_id);
		runs = lappend(runs, s);
		if (s->finished)
		{
			spi_run("SELECT agentorch._finish_step($1, $2, 'cancelled')", 2, types, values, NULL);
			continue;
		}
		{
			/* the step's lock, held until the attempt ends; busy: tried again shortly */
			json_object *lock = json_object_object_get(s->spec, "lock");

			if (lock && json_object_is_type(lock, json_type_string))
			{
				if (!ao_step_lock_try(json_object_get_string(lock), true))
				{
					s->state = NULL;	/* the context text: no kind state yet */
					ao_state_defer_step(s->run_id, s->step_id, AO_STEP_LOCK_RETRY_MS);
					s->deferred = true;
					s->defer_ms = AO_STEP_LOCK_RETRY_MS;
					continue;
				}
				s->lock_name = MemoryContextStrdup(s->cxt, json_object_get_string(lock));
			}
		}
		/*
		 * Rendering and preparing the request happen in a subtransaction of
		 * the step's own: whatever fails there (a template, a value nested
		 * too deep, a model spec) is this step's failure, recorded when it
		 * settles -- never the claim transaction's, which would halt every
		 * network step of the database, again on every claim.
		 */
		{
			MemoryContext claimcxt = CurrentMemoryContext;
			ResourceOwner owner = CurrentResourceOwner;
			char	   *context_text = (char *) s->state;

			s->state = NULL;
			input = NULL;
			BeginInternalSubTransaction(NULL);
			PG_TRY();
			{
				old = MemoryContextSwitchTo(s->cxt);
				context = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(context_text)));
				input = json_object_object_get(s->spec, "input")
					? ao_render_jsonb(ao_jsonb_from_json(json_object_object_get(s->spec, "input")), context)
					: DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
				if (s->kind->prepare(s, input, context))
					s->req.arg = s;
				MemoryContextSwitchTo(old);
				ReleaseCurrentSubTransaction();
			}
			PG_CATCH();
			{
				ErrorData  *edata;

				edata = ao_abort_subxact(claimcxt, owner);
				if (edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN || edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
					ReThrowError(edata);
				s->deferred = false;
				ao_net_step_fail(s, edata->sqlerrcode,
								 psprintf("could not prepare the request: %s", edata->message), edata->detail);
				FreeErrorData(edata);
				input = NULL;
			}
			PG_END_TRY();
			MemoryContextSwitchTo(claimcxt);
			CurrentResourceOwner = owner;
			if (input == NULL)
				input = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
		}
		if (s->deferred)
		{
			/* not started: stays ready, due again later; no attempt, no event */
			ao_state_defer_step(s->run_id, s->step_id, (int) Min(s->defer_ms, INT_MAX));
			continue;
		}
		ao_state_lease_step(s->run_id, s->step_id, -1, ao_lease_ms, MyProcPid, input);
	}
	{
		/* one notification per touched run */
		List	   *ids = NIL;

		foreach(lc, runs)
			ids = ao_run_list_add(ids, ((NetStep *) lfirst(lc))->run_id);
		ao_state_notify_runs(ids);
	}
	{
		bool		any = false;

		foreach(lc, claimed)
		{
			NetStep    *s = lfirst(lc);

			if (sends_while_committing(s))
			{
				start_request(s);
				any = true;
			}
		}
		if (any)
			ao_net_kick();
	}
}

/*
 * Claim ready network steps up to the free request capacity and start
 * them. Returns the number of steps started.
 *
 * The lease commits durably before a step's attempt can end, so that a
 * crash counts it. An LLM's request goes out just before that commit: the
 * flush of the commit overlaps the request's round trip instead of
 * preceding it (the first token comes that much sooner), and since the
 * response is read only after the commit returned, a crash that a
 * response causes still finds the attempt counted. A crash during the
 * flush loses the lease, and the step is claimed again as if it had not
 * been: a second request to the model, with nothing recorded twice (the
 * lease's notifications are sent only at commit). Any other request (an
 * http tool's) goes out only after the commit.
 */
/*
 * One run's requests in flight in this executor, counted for
 * agentorch.max_requests_per_run: a run with many slow requests (a fan-out
 * of a thousand calls to a server that answers a byte a second) must not
 * take every request slot, or every other run's llm and http steps would
 * wait for it.
 */
typedef struct RunRequests
{
	int64		run;			/* hash key */
	int			n;
} RunRequests;

/* run's entry in counts (a table keyed by run id; 0 when new). */
static RunRequests *
run_requests(HTAB *counts, int64 run)
{
	bool		found;
	RunRequests *e = hash_search(counts, &run, HASH_ENTER, &found);

	if (!found)
		e->n = 0;
	return e;
}

int
ao_net_steps_claim(void)
{
	int			capacity = ao_max_requests - nrunning;
	List	   *volatile claimed = NIL;
	ListCell   *lc;
	HTAB	   *per_run;
	HASHCTL		hctl;
	HASH_SEQ_STATUS seq;
	RunRequests *e;
	Datum	   *full;
	int			nfull = 0;
	dlist_iter	it;

	MemoryContext caller = CurrentMemoryContext;

	if (capacity <= 0)
		return 0;
	/* the runs already at their share of this executor's slots are not claimed from */
	hctl.keysize = sizeof(int64);
	hctl.entrysize = sizeof(RunRequests);
	hctl.hcxt = CurrentMemoryContext;
	per_run = hash_create("agentorch requests per run", Max(nrunning, 16), &hctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	dlist_foreach(it, &running_steps)
		run_requests(per_run, dlist_container(NetStep, node, it.cur)->run_id)->n++;
	full = palloc(sizeof(Datum) * Max(nrunning, 1));
	hash_seq_init(&seq, per_run);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->n >= ao_max_requests_per_run)
			full[nfull++] = Int64GetDatum(e->run);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "agentorch: claiming network steps");
	{
		Oid			types[4] = {INT4OID, INT4OID, BOOLOID, INT8ARRAYOID};
		Datum		values[4];

		values[0] = Int32GetDatum(capacity);
		values[1] = Int32GetDatum(ao_lease_ms);
		values[3] = PointerGetDatum(construct_array(full, nfull, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

		/*
		 * agentorch.network_steps = workers: external workers claim network
		 * steps -- except those of runs that record or replay their LLM
		 * requests (options.llm_mode), which only executors do.
		 */
		values[2] = BoolGetDatum(ao_network_steps != AO_NETWORK_WORKERS);
		spi_run("WITH c AS ("
				"  SELECT s.run_id, s.step_id FROM agentorch.steps s"
				"   WHERE s.status = 'ready' AND s.network"
				"     AND (s.not_before IS NULL OR s.not_before <= pg_catalog.clock_timestamp())"
				"     AND " AO_SQL_EXECUTORS_TAKE("$3")
				"     AND s.run_id <> ALL ($4)"
				"   ORDER BY s.network, s.priority DESC, s.not_before NULLS FIRST"
				"   LIMIT $1 FOR UPDATE SKIP LOCKED) "
				"SELECT c.run_id, c.step_id, r.status::text, t.spec, s.attempt + 1, s.max_attempts, r.owner,"
				"       " AO_SQL_CONTEXT_IF_TEMPLATED ", r.options::text, "
				"       pg_catalog.date_part('epoch', r.deadline OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp()) * 1000, "
				"       r.trace_id "
				"  FROM c JOIN agentorch.runs r ON r.id = c.run_id"
				"  JOIN agentorch.steps s ON s.run_id = c.run_id AND s.step_id = c.step_id "
				"  " AO_SQL_SPEC_TEXT
				" ORDER BY c.run_id, s.priority DESC, s.not_before NULLS FIRST, s.ord",
				4, types, values, NULL);
	}
	PG_TRY();
	{
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			NetStep    *s;
			MemoryContext old;
			bool		isnull;
			char	   *status;
			char	   *spec;
			char	   *context;
			char	   *options;
			RunRequests *share = run_requests(per_run, DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull)));

			/* beyond the run's share: left ready (its row lock goes at commit) */
			if (share->n >= ao_max_requests_per_run)
				continue;
			share->n++;
			s = new_step(ao_net_context());
			status = SPI_getvalue(tup, desc, 3);
			spec = SPI_getvalue(tup, desc, 4);
			context = SPI_getvalue(tup, desc, 8);
			options = SPI_getvalue(tup, desc, 9);

			/* listed at once, so that an ERROR below frees it too (the list outlives SPI_finish) */
			old = MemoryContextSwitchTo(caller);
			claimed = lappend(claimed, s);
			MemoryContextSwitchTo(s->cxt);
			s->run_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			s->step_id = SPI_getvalue(tup, desc, 2);
			s->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
			s->max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
			s->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 7, &isnull));
			s->traceparent = traceparent_header(SPI_getvalue(tup, desc, 11), s->step_id);
			{
				Datum		left = SPI_getbinval(tup, desc, 10, &isnull);

				s->deadline_left_ms = isnull ? -1 : Max(0.0, DatumGetFloat8(left));
			}
			init_step(s, spec, options, false);
			/* context travels as text so it is independent of SPI memory */
			s->state = pstrdup(context ? context : "{}");
			if (strcmp(status, "running") != 0 && strcmp(status, "waiting") != 0)
				s->finished = true; /* run no longer active: settle as cancelled */
			MemoryContextSwitchTo(old);
		}

		begin_attempts(claimed);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		/* nothing was claimed: the steps' memory goes, with their transfers, locks and policy slots */
		claim_failed = true;
		foreach(lc, claimed)
			MemoryContextDelete(((NetStep *) lfirst(lc))->cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	claim_failed = false;
	pgstat_report_activity(STATE_IDLE, NULL);

	/* committed: now the requests may go out */
	foreach(lc, claimed)
	{
		NetStep    *s = lfirst(lc);

		if (s->finished && s->error == NULL && !s->ok && !s->deferred)
		{
			MemoryContextDelete(s->cxt);	/* cancelled before it began */
			continue;
		}
		if (s->deferred)
		{
			ao_net_release(&s->req);
			if (s->kind->release)
				s->kind->release(s);
			MemoryContextDelete(s->cxt);
			continue;
		}
		dlist_push_tail(&running_steps, &s->node);
		nrunning++;
		if (!s->finished && s->req.url && !s->sent)
			start_request(s);
	}
	return list_length(claimed);
}

/* Reset callback: a step's memory goes away -- take its transfer out of curl first. */
static void
release_request_cb(void *arg)
{
	NetStep    *s = arg;

	/* a transfer in curl, or a replayed response not yet delivered */
	if (s->req.easy || s->req.in_active)
		ao_net_abandon(&s->req);
	if (s->lock_name)
	{
		ao_step_lock_release(s->lock_name);
		s->lock_name = NULL;
	}
	/*
	 * an ERROR that takes a step's memory (run_sync, a failed claim) must
	 * not keep its slot; the request's outcome is unknown (a half-open
	 * breaker probes again)
	 */
	if (s->policy_acquired)
	{
		s->policy_acquired = false;
		ao_policy_release(s->policy_name, &s->limits, -1, 0, s->policy_probe);
	}
}

/*
 * Start a network step inside the calling statement (run_sync): its
 * memory lives under parent, and an ERROR that deletes parent also takes
 * its transfer out of curl. The caller drives it with ao_net_inline_drive
 * and reads ao_net_inline_outcome. Returns the step.
 */
void *
ao_net_inline_start(int64 run, const char *step_id, int attempt, int max_attempts, Oid owner,
					const char *spec_text, const char *options_text, Jsonb *input, Jsonb *context,
					MemoryContext parent)
{
	NetStep    *s = new_step(parent);
	MemoryContext cxt = s->cxt;
	MemoryContext old = MemoryContextSwitchTo(cxt);

	s->run_id = run;
	s->step_id = pstrdup(step_id);
	s->attempt = attempt;
	s->max_attempts = max_attempts;
	s->owner = owner;
	s->deadline_left_ms = -1;
	init_step(s, spec_text, options_text, true);
	{
		/* the run's trace context (run_sync runs in this transaction) */
		Oid			t[1] = {INT8OID};
		Datum		v[1] = {Int64GetDatum(run)};

		if (SPI_connect() == SPI_OK_CONNECT)
		{
			if (SPI_execute_with_args("SELECT r.trace_id FROM agentorch.runs r WHERE r.id OPERATOR(pg_catalog.=) $1",
									  /* not read-only: the run may be this statement's own */
									  1, t, v, NULL, false, 1) == SPI_OK_SELECT && SPI_processed == 1)
			{
				char	   *trace_id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
				MemoryContext spi = MemoryContextSwitchTo(cxt);

				s->traceparent = traceparent_header(trace_id, step_id);
				MemoryContextSwitchTo(spi);
			}
			SPI_finish();
		}
	}
	if (s->kind->prepare(s, input, context) && !s->finished && s->req.url)
	{
		if (send_request(s))
			s->sent = true;
		else
			ao_net_step_fail(s, ERRCODE_CONNECTION_EXCEPTION, psprintf("could not start the request: %s", s->req.error), NULL);
	}
	MemoryContextSwitchTo(old);
	return s;
}

/* Drive an inline step's request for up to timeout_ms; a completed request goes to its kind. */
void
ao_net_inline_drive(void *step, long timeout_ms)
{
	NetStep    *s = step;
	dlist_head	done;
	dlist_mutable_iter it;

	if (s->finished)
		return;
	dlist_init(&done);
	(void) ao_net_wait(timeout_ms, &done);
	CHECK_FOR_INTERRUPTS();
	dlist_foreach_modify(it, &done)
	{
		AoRequest  *r = dlist_container(AoRequest, node, it.cur);
		NetStep    *owner_step = step_of(r);
		MemoryContext old = MemoryContextSwitchTo(owner_step->cxt);

		dlist_delete(&r->node);
		capture_recording(owner_step);
		if (!chaos_provider_fault(owner_step))
			owner_step->kind->finish(owner_step);
		MemoryContextSwitchTo(old);
		/* inside the calling statement: its transaction keeps the recordings */
		store_recordings(owner_step);
	}
}

/* Remember a credential value of the step's request (see scrub_outcome). */
void
ao_net_step_add_secret(void *step, const char *value)
{
	NetStep    *s = step;
	MemoryContext old = MemoryContextSwitchTo(s->cxt);

	if (value && value[0])
		s->secrets = lappend(s->secrets, pstrdup(value));
	MemoryContextSwitchTo(old);
}

/* text without the step's credential values (text itself when none occurs). */
char *
ao_net_step_scrub(void *step, const char *text)
{
	return ao_scrub(text, ((NetStep *) step)->secrets);
}

/* A jsonb value without credential values; the value itself when none occurs. */
static Jsonb *
scrub_jsonb(NetStep *s, Jsonb *value)
{
	char	   *text;
	char	   *clean;

	if (value == NULL)
		return NULL;
	text = JsonbToCString(NULL, &value->root, VARSIZE(value));
	clean = ao_scrub(text, s->secrets);
	if (clean == text)
		return value;
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(clean)));
}

/*
 * Scrub every credential value the request carried out of the step's
 * output and error before they are stored (and so before any chunk,
 * NOTIFY or log line shows them): a provider that echoes the request's
 * headers in an error body must not leak the key.
 */
static void
scrub_outcome(NetStep *s)
{
	MemoryContext old;

	if (s->secrets == NIL || s->scrubbed)
		return;
	old = MemoryContextSwitchTo(s->cxt);
	s->output = scrub_jsonb(s, s->output);
	s->error = scrub_jsonb(s, s->error);
	s->scrubbed = true;
	MemoryContextSwitchTo(old);
}

/* The outcome of an inline step so far. */
AoNetOutcome
ao_net_inline_outcome(void *step)
{
	NetStep    *s = step;
	AoNetOutcome o;

	if (s->finished)
		scrub_outcome(s);

	o.finished = s->finished;
	o.ok = s->ok;
	o.retryable = s->retryable;
	o.deferred = s->deferred;
	o.defer_ms = s->defer_ms;
	o.retry_after_ms = s->retry_after_ms;
	o.output = s->output;
	o.error = s->error;
	o.usage = s->usage;
	return o;
}

/* Free an inline step (its policy slot, its transfer, its memory). */
void
ao_net_inline_free(void *step)
{
	NetStep    *s = step;

	if (s->policy_acquired)
	{
		ao_policy_release(s->policy_name, &s->limits,
						  (s->ok || !s->retryable) ? 1 : s->req.result == CURLE_OPERATION_TIMEDOUT ? -1 : 0, 0,
						  s->policy_probe);
		s->policy_acquired = false;
	}
	ao_net_release(&s->req);
	if (s->kind->release)
		s->kind->release(s);
	MemoryContextDelete(s->cxt);
}

/* Let a kind start another request for the same step (tool-calling loops). */
bool
ao_net_step_restart(void *step)
{
	NetStep    *s = step;

	ao_net_reset_transfer(&s->req);
	if (!send_request(s))
	{
		ao_net_step_fail(s, ERRCODE_CONNECTION_EXCEPTION, psprintf("could not start the request: %s", s->req.error), NULL);
		return false;
	}
	s->sent = true;
	return true;
}

/* Delay before the next attempt (the policy layer decides). */
static double
retry_delay_ms(NetStep *s)
{
	return ao_retry_delay_ms(s->spec, s->attempt, s->retry_after_ms);
}

/* list_sort comparator: NetSteps by run id. */
static int
compare_run_ids(const ListCell *a, const ListCell *b)
{
	int64		x = ((NetStep *) lfirst(a))->run_id;
	int64		y = ((NetStep *) lfirst(b))->run_id;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * Hand a completed request to its kind. Whatever the response holds, an
 * ERROR while interpreting it (a value PostgreSQL cannot store, a bug)
 * fails the step for good with that message instead of leaving it
 * running with its lease renewed and its policy slot held, or taking the
 * other requests that completed with it down; a transaction the kind
 * began (tool calls) is rolled back.
 */
static void
finish_guarded(NetStep *s)
{
	MemoryContext old = CurrentMemoryContext;

	PG_TRY();
	{
		MemoryContextSwitchTo(s->cxt);
		capture_recording(s);
		if (chaos_provider_fault(s))
			MemoryContextSwitchTo(old);
		else
		{
			s->kind->finish(s);
			MemoryContextSwitchTo(old);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(s->cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		MemoryContextSwitchTo(s->cxt);
		RESUME_INTERRUPTS();
		if (s->req.in_active)
			ao_net_abandon(&s->req);	/* a follow-up request had started */
		ao_net_step_fail(s, edata->sqlerrcode,
						 psprintf("could not process the response: %s", edata->message),
						 edata->detail);
		MemoryContextSwitchTo(old);
	}
	PG_END_TRY();
}

/*
 * Record one finished network step (its usage, then success, another
 * attempt, a deferral or its failure) if it is still ours; touched runs
 * are added to *runs. Called in a subtransaction (settle_guarded).
 */
static void
settle_one(NetStep *s, List **runs_out)
{
	List	   *runs = *runs_out;
	Oid			types[5] = {INT8OID, TEXTOID, INT4OID, INT4OID, JSONBOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(s->run_id);
	values[1] = CStringGetTextDatum(s->step_id);
	values[2] = Int32GetDatum(s->attempt);
	values[3] = Int32GetDatum(MyProcPid);
	ao_state_lock_run(s->run_id);
	/* still ours? (not cancelled, lease not lost to another executor) */
	/*
	 * Only the key in WHERE: with status = 'running' there the planner
	 * prefers the partial index steps_leased and filters every running
	 * step (quadratic in the steps in flight).
	 */
	spi_run("SELECT COALESCE(status = 'running' AND attempt = $3 AND worker = $4, false) FROM agentorch.steps "
			"WHERE run_id = $1 AND step_id = $2 FOR UPDATE", 4, types, values, NULL);
	if (SPI_processed == 1 && DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &(bool){false})))
	{
		runs = ao_run_list_add(runs, s->run_id);
		/* what the step recorded commits with its outcome */
		store_recordings(s);
		if (s->usage)
		{
			ao_state_add_usage(s->run_id, s->step_id, s->usage);
		}
		if (s->kind->before_settle)
			s->kind->before_settle(s);
		if (!s->deferred && ((s->ok && s->output == NULL) || (!s->ok && s->error == NULL)))
		{
			MemoryContext old = MemoryContextSwitchTo(s->cxt);

			/* never store a NULL outcome (a kind that finished without one) */
			s->ok = false;
			s->retryable = false;
			s->error = ao_error_jsonb(ERRCODE_INTERNAL_ERROR, "the step finished without an outcome", NULL);
			MemoryContextSwitchTo(old);
		}
		scrub_outcome(s);
		if (s->deferred)
		{
			/*
			 * Deferred after a request of this attempt was sent (a
			 * fallback model's bulkhead was full): the attempt stays
			 * spent. Otherwise it is given back.
			 */
			ao_state_release_step(s->run_id, s->step_id, (int) Min(s->defer_ms, INT_MAX), s->sent);
		}
		else if (s->ok)
		{
			values[4] = JsonbPGetDatum(s->output);
			spi_run("SELECT agentorch._finish_step($1, $2, 'succeeded', $5) WHERE $3 IS NOT NULL AND $4 IS NOT NULL",
					5, types, values, NULL);
			ao_count_steps(1, 0);
		}
		else if (s->retryable && s->attempt < s->max_attempts)
		{
			Oid			t2[4] = {INT8OID, TEXTOID, JSONBOID, FLOAT8OID};
			Datum		v2[4];

			v2[0] = values[0];
			v2[1] = values[1];
			v2[2] = JsonbPGetDatum(s->error);
			v2[3] = Float8GetDatum(retry_delay_ms(s));
			spi_run("SELECT agentorch._retry_step($1, $2, $3, $4)", 4, t2, v2, NULL);
		}
		else
		{
			values[4] = JsonbPGetDatum(s->error);
			spi_run("SELECT agentorch._finish_step($1, $2, 'failed', NULL, $5) WHERE $3 IS NOT NULL AND $4 IS NOT NULL",
					5, types, values, NULL);
			ao_log_step_failure(s->run_id, s->step_id, s->error);
			ao_count_steps(0, 1);
		}
	}
	(void) nulls;
	*runs_out = runs;
}

/*
 * settle_one in a subtransaction of its own: if recording the step fails
 * (a value the tables refuse, a state call), it is recorded as failed
 * instead, and the other steps of the batch are recorded all the same; if
 * even that fails, its lease expires and recovery takes it back.
 */
static void
settle_guarded(NetStep *s, List **runs)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	List	   *volatile touched = *runs;

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		List	   *r = touched;

		settle_one(s, &r);
		touched = r;
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata = ao_abort_subxact(caller, owner);

		if (edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN || edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		BeginInternalSubTransaction(NULL);
		PG_TRY();
		{
			Oid			types[5] = {INT8OID, TEXTOID, INT4OID, INT4OID, JSONBOID};
			Datum		values[5];

			values[0] = Int64GetDatum(s->run_id);
			values[1] = CStringGetTextDatum(s->step_id);
			values[2] = Int32GetDatum(s->attempt);
			values[3] = Int32GetDatum(MyProcPid);
			values[4] = JsonbPGetDatum(ao_error_jsonb(edata->sqlerrcode,
													  psprintf("could not record the result: %s", edata->message),
													  edata->detail));
			ao_state_lock_run(s->run_id);
			spi_run("SELECT agentorch._finish_step($1, $2, 'failed', NULL, $5) FROM agentorch.steps "
					"WHERE run_id = $1 AND step_id = $2 AND status = 'running' AND attempt = $3 AND worker = $4",
					5, types, values, NULL);
			touched = ao_run_list_add(touched, s->run_id);
			ReleaseCurrentSubTransaction();
		}
		PG_CATCH();
		{
			/* even that failed: the lease expires and recovery takes the step back */
			FreeErrorData(ao_abort_subxact(caller, owner));
		}
		PG_END_TRY();
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	CurrentResourceOwner = owner;
	*runs = touched;
}

/*
 * Record the outcome of every finished network step in one transaction.
 * Requests that finished are handed to their kind first (which may start
 * a follow-up request instead of finishing). Returns the number settled.
 */
int
ao_net_steps_settle(dlist_head *done)
{
	dlist_mutable_iter it;
	List	   *finished = NIL;
	List	   *runs = NIL;
	ListCell   *lc;

	/* requests that completed: let the kind interpret them */
	dlist_foreach_modify(it, done)
	{
		AoRequest  *r = dlist_container(AoRequest, node, it.cur);
		NetStep    *s = step_of(r);

		dlist_delete(&r->node);
		finish_guarded(s);
	}
	dlist_foreach_modify(it, &running_steps)
	{
		NetStep    *s = dlist_container(NetStep, node, it.cur);

		if (s->finished)
		{
			dlist_delete(&s->node);
			nrunning--;
			slots_freed++;
			finished = lappend(finished, s);
		}
	}
	if (finished == NIL)
		return 0;
	/* runs are locked in id order (the lock order of agentorch_state.sql) */
	list_sort(finished, compare_run_ids);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "agentorch: recording network results");
	foreach(lc, finished)
		settle_guarded((NetStep *) lfirst(lc), &runs);
	ao_state_notify_runs(runs);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	ao_announce_progress(true);

	foreach(lc, finished)
	{
		NetStep    *s = lfirst(lc);

		if (s->policy_acquired)
		{
			double		tokens = 0;

			if (s->usage)
			{
				json_object *u = ao_json_from_jsonb(s->usage);
				json_object *v;

				if (json_object_object_get_ex(u, "prompt_tokens", &v))
					tokens += json_object_get_double(v);
				if (json_object_object_get_ex(u, "completion_tokens", &v))
					tokens += json_object_get_double(v);
			}
			/*
			 * only failures of the target (transport, 429, 5xx) count against
			 * its breaker; the step's own timeout (which its role chose) is
			 * neutral
			 */
			ao_policy_release(s->policy_name, &s->limits,
							  (s->ok || !s->retryable) ? 1 : s->req.result == CURLE_OPERATION_TIMEDOUT ? -1 : 0,
							  tokens, s->policy_probe);
			s->policy_acquired = false;
		}
		ao_net_release(&s->req);
		if (s->kind->release)
			s->kind->release(s);
		MemoryContextDelete(s->cxt);
	}
	return list_length(finished);
}

/*
 * Extend the leases of our running network steps (every lease/3) and
 * abandon the ones that are no longer ours (cancelled, failed run, lost
 * lease).
 */
void
ao_net_steps_heartbeat(void)
{
	dlist_mutable_iter it;
	TimestampTz now = GetCurrentTimestamp();
	StringInfoData keys;
	bool		any = false;

	static uint64 seen_cancels = 0;
	uint64		cancels = ao_cancel_generation();

	/* every lease/3, and at once after a cancel anywhere (to stop its streams) */
	if (nrunning == 0 ||
		(!TimestampDifferenceExceeds(last_heartbeat, now, ao_lease_ms / 3) && cancels == seen_cancels))
		return;
	seen_cancels = cancels;
	last_heartbeat = now;
	initStringInfo(&keys);
	dlist_foreach_modify(it, &running_steps)
	{
		NetStep    *s = dlist_container(NetStep, node, it.cur);

		if (s->finished)
			continue;
		appendStringInfo(&keys, "%s(%lld,%s)", any ? "," : "", (long long) s->run_id,
						 quote_literal_cstr(s->step_id));
		any = true;
	}
	if (!any)
		return;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	{
		Oid			types[2] = {INT4OID, INT4OID};
		Datum		values[2];
		char	   *sql = psprintf("UPDATE agentorch.steps SET lease_until = pg_catalog.clock_timestamp() "
								   "  + pg_catalog.make_interval(secs => $1 / 1000.0) "
								   "WHERE (run_id, step_id) IN (VALUES %s) AND status = 'running' AND worker = $2 "
								   "RETURNING run_id, step_id", keys.data);

		values[0] = Int32GetDatum(ao_lease_ms);
		values[1] = Int32GetDatum(MyProcPid);
		/* built per call: not a literal, so not through the plan cache */
		if (SPI_execute_with_args(sql, 2, types, values, NULL, false, 0) < 0)
			elog(ERROR, "agentorch: could not extend leases");
		dlist_foreach_modify(it, &running_steps)
		{
			NetStep    *s = dlist_container(NetStep, node, it.cur);
			bool		still = s->finished;

			for (uint64 i = 0; !still && i < SPI_processed; i++)
			{
				bool		isnull;
				int64		run = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
				char	   *step = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

				still = run == s->run_id && strcmp(step, s->step_id) == 0;
			}
			if (!still)
			{
				/* not ours any more: stop its request; nothing is recorded */
				dlist_delete(&s->node);
				nrunning--;
				slots_freed++;
				ao_net_abandon(&s->req);
				if (s->policy_acquired)
					ao_policy_release(s->policy_name, &s->limits, -1, 0, s->policy_probe);
				s->policy_acquired = false;
				if (s->kind->release)
					s->kind->release(s);
				MemoryContextDelete(s->cxt);
			}
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* Flush buffered stream chunks of running steps (stream/chunks.c, state/chunk_rows.c). */
void
ao_net_steps_flush(void)
{
	ao_state_flush_streams();
}

/* Milliseconds until the next chunk flush is due (or a large number). */
long
ao_net_steps_next_flush_ms(void)
{
	return ao_chunks_next_flush_ms();
}

/* Step identity for kinds (llm.c). */
int64
ao_net_step_run(void *step)
{
	return ((NetStep *) step)->run_id;
}

const char *
ao_net_step_id(void *step)
{
	return ((NetStep *) step)->step_id;
}

int
ao_net_step_attempt(void *step)
{
	return ((NetStep *) step)->attempt;
}

json_object *
ao_net_step_spec(void *step)
{
	return ((NetStep *) step)->spec;
}

json_object *
ao_net_step_run_options(void *step)
{
	return ((NetStep *) step)->run_options;
}

Oid
ao_net_step_owner(void *step)
{
	return ((NetStep *) step)->owner;
}

bool
ao_net_step_last_attempt(void *step)
{
	return ((NetStep *) step)->attempt >= ((NetStep *) step)->max_attempts;
}

AoRequest *
ao_net_step_request(void *step)
{
	return &((NetStep *) step)->req;
}

void	  **
ao_net_step_state(void *step)
{
	return &((NetStep *) step)->state;
}

/* Finish a step successfully (kinds call this from finish). */
void
ao_net_step_succeed(void *step, Jsonb *output, Jsonb *usage)
{
	NetStep    *s = step;

	s->finished = true;
	s->ok = true;
	s->output = output;
	s->usage = usage;
}

/* Finish a step's attempt with a failure that may be retried. */
void
ao_net_step_fail_retryable(void *step, int sqlerrcode, const char *message,
						   const char *detail, double retry_after_ms, Jsonb *usage)
{
	NetStep    *s = step;

	s->finished = true;
	s->ok = false;
	s->retryable = true;
	s->retry_after_ms = retry_after_ms;
	s->usage = usage;
	s->error = ao_error_jsonb(sqlerrcode, message, detail);
}
