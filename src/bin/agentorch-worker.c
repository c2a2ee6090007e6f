/*-------------------------------------------------------------------------
 *
 * agentorch-worker.c
 *	  An external worker: claims network steps (llm steps, http tools)
 *	  from a database over libpq and sends their requests with libcurl
 *	  multi, outside the database server.
 *
 *	  usage: agentorch-worker CONNINFO [--concurrency N] [--name NAME]
 *	                          [--poll-ms MS] [--grace-ms MS]
 *
 * The worker only performs network requests. Every state change goes
 * through the internal SQL functions of sql/agentorch_workers.sql, which
 * use the executors' transitions (src/runner/remote.c prepares the
 * requests there), so the database stays the one writer of run state:
 *
 *   register  -- agentorch._worker_register: its row in agentorch.workers
 *                (name, host, pid, started_at, heartbeat_at) and the
 *                settings it follows (lease, flush interval, chunk buffer).
 *   claim     -- agentorch._worker_claim: ready steps move to running with
 *                a lease held by the worker's database session; the claim
 *                commits before any byte is sent and returns what each
 *                request needs (call, model, tool URL, traceparent, the
 *                chunk attempt and whether a reset marker opens it).
 *   stream    -- response bytes go to the core's decoder (src/core/llm);
 *                token/json_partial/tool_call chunks wait in the step's
 *                buffer and are written together every
 *                agentorch.flush_interval (agentorch._worker_flush, one
 *                transaction, one NOTIFY per run); the first chunk at once.
 *   heartbeat -- every min(lease/3, 1 s) (agentorch._worker_heartbeat):
 *                leases extended; a step that is no longer ours
 *                (cancelled, lease lost) is abandoned.
 *   settle    -- agentorch._worker_settle records the outcomes of the
 *                steps that finished together, with their last chunks.
 *   SIGTERM   -- no more claims; steps in flight may finish for --grace-ms
 *                (default 5000), the rest are released (ready again, their
 *                attempt given back; the next holder opens with a reset
 *                marker), the worker's row goes, exit 0.
 *
 * If the worker dies, its session ends with it, and recovery claims its
 * steps again at once (the lease's holder is the session's backend pid).
 * If its connection is lost, the steps in flight are abandoned the same
 * way, and the worker reconnects and registers again.
 *
 * Secrets: an llm step's key is read from THIS process's environment
 * (the variable the model's api_key_env names; the server has checked the
 * name against agentorch.api_key_env_pattern); it goes only into a
 * request header and is scrubbed from every chunk, output and error
 * before they are sent to the database. The worker never runs anything a
 * model produced: tool calls go to agentorch._worker_call_tools, which
 * runs registered tools as the run's owner.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/bin/agentorch-worker.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include "ao_core.h"
#include "ao_json_schema.h"
#include "ao_llm.h"
#include "ao_secret.h"

#define MAX_SECRETS 16

/* A growable byte string (malloc'd). */
typedef struct Str
{
	char	   *p;
	size_t		len;
	size_t		cap;
} Str;

/* A chunk waiting to be written. */
typedef struct Chunk
{
	struct Chunk *next;
	int			attempt;
	const char *kind;
	Str			content;
	char	   *data;			/* JSON text or NULL */
} Chunk;

/* A claimed network step. */
typedef struct Step
{
	struct Step *next;
	long long	run_id;
	char	   *step_id;
	int			attempt;
	int			max_attempts;
	bool		is_llm;
	json_object *claim;			/* what _worker_claim gave (owned) */
	long		timeout_ms;
	const char *traceparent;
	/* the current request */
	CURL	   *easy;
	struct curl_slist *headers;
	char	   *body;
	Str			resp;			/* the body (http steps, error replies) */
	Str			resp_headers;
	bool		too_large;
	char		errbuf[CURL_ERROR_SIZE];
	/* llm */
	json_object *model;			/* the model in use (a reference) */
	ao_llm_provider provider;
	char	   *key;			/* the API key (from our environment) */
	json_object *call;
	json_object *response_schema;
	ao_llm_toolmap *toolmap;
	ao_llm_decoder *decoder;
	ao_llm_spec spec;
	int			turn;
	int			max_turns;
	bool		repaired;
	int			next_fallback;
	ao_llm_price price;
	long long	prompt_tokens;
	long long	completion_tokens;
	double		cost;
	int			chunk_attempt;
	bool		need_reset;
	const char *reset_reason;
	/* chunks not yet written */
	Chunk	   *chunks;
	Chunk	   *chunks_tail;
	int			nchunks;
	bool		first_flushed;
	bool		flush_now;
	/* credential values of the requests: scrubbed from what is sent back */
	const char *secrets[MAX_SECRETS];
	int			nsecrets;
	/* outcome */
	bool		finished;
	bool		ok;
	bool		retryable;
	bool		sent;
	bool		timed_out;
	json_object *output;
	json_object *error;
	double		retry_after_ms;
} Step;

/* settings, from the server */
static int	lease_ms = 30000;
static int	flush_interval_ms = 10;
static int	chunk_buffer_size = 64;
static long max_response_size = 10 * 1024 * 1024;

/* options */
static const char *conninfo;
static const char *name;
static int	concurrency = 100;
static int	poll_ms = 100;
static long grace_ms = 5000;

/* state */
static PGconn *conn;
static int	worker_id;
static CURLM *multi;
static Step *steps;
static int	nrunning;
static char hostname[256];
static volatile sig_atomic_t stop_requested = 0;

/* Milliseconds on a monotonic clock. */
static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A log line on stderr, with the worker's name. */
static void
logmsg(const char *fmt,...)
{
	va_list		ap;
	time_t		t = time(NULL);
	char		when[32];

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
	fprintf(stderr, "%s agentorch-worker %s: ", when, name ? name : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
str_append(Str *s, const char *p, size_t n)
{
	if (s->len + n + 1 > s->cap)
	{
		s->cap = (s->len + n + 1) * 2;
		s->p = ao_realloc(s->p, s->cap);
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void
str_free(Str *s)
{
	free(s->p);
	memset(s, 0, sizeof(Str));
}

/* SIGTERM, SIGINT: stop claiming, finish or release, exit. */
static void
on_stop(int sig)
{
	(void) sig;
	stop_requested = 1;
	if (multi)
		curl_multi_wakeup(multi);
}

/*-------------------------------------------------------------------------
 * Talking to the database
 *-------------------------------------------------------------------------
 */

static void drop_all_steps(void);

/*
 * The connection is gone (or broken): every step in flight is abandoned
 * (its lease's holder, our old session, is dead, so recovery claims it
 * again at once); we reconnect in the main loop.
 */
static void
connection_lost(void)
{
	logmsg("lost the database connection: %s", conn ? PQerrorMessage(conn) : "");
	drop_all_steps();
	if (conn)
		PQfinish(conn);
	conn = NULL;
}

/*
 * Call one of the worker functions: sql with text parameters, returning
 * the first column of the single row parsed as JSON (a new reference; NULL
 * for SQL NULL). *failed is set on an error; a broken connection is
 * handled (connection_lost).
 */
static json_object *
db_call(const char *sql, int nparams, const char *const *params, bool *failed)
{
	PGresult   *res;
	json_object *out = NULL;

	*failed = false;
	if (conn == NULL)
	{
		*failed = true;
		return NULL;
	}
	res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		*failed = true;
		if (PQstatus(conn) != CONNECTION_OK)
		{
			PQclear(res);
			connection_lost();
			return NULL;
		}
		logmsg("%s", res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
		PQclear(res);
		return NULL;
	}
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		out = json_tokener_parse(PQgetvalue(res, 0, 0));
	PQclear(res);
	return out;
}

/* Take the settings the server sent. */
static void
apply_settings(json_object *s)
{
	json_object *v;

	if (s == NULL)
		return;
	if (json_object_object_get_ex(s, "lease_ms", &v))
		lease_ms = json_object_get_int(v);
	if (json_object_object_get_ex(s, "flush_interval_ms", &v))
		flush_interval_ms = json_object_get_int(v);
	if (json_object_object_get_ex(s, "chunk_buffer_size", &v))
		chunk_buffer_size = json_object_get_int(v);
	if (json_object_object_get_ex(s, "max_response_size", &v))
		max_response_size = json_object_get_int64(v);
}

/* Connect and register; false when either failed. */
static bool
connect_and_register(void)
{
	const char *keys[] = {"dbname", "application_name", NULL};
	const char *values[] = {conninfo, "agentorch-worker", NULL};
	char		pid[32];
	const char *params[3];
	bool		failed;
	json_object *r;

	conn = PQconnectdbParams(keys, values, 1);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		logmsg("could not connect: %s", PQerrorMessage(conn));
		PQfinish(conn);
		conn = NULL;
		return false;
	}
	snprintf(pid, sizeof(pid), "%d", (int) getpid());
	params[0] = name;
	params[1] = hostname;
	params[2] = pid;
	r = db_call("SELECT agentorch._worker_register($1, $2, $3::int)", 3, params, &failed);
	if (failed || r == NULL)
	{
		logmsg("could not register (grant EXECUTE on the agentorch._worker_* functions to this role)");
		if (conn)
			PQfinish(conn);
		conn = NULL;
		json_object_put(r);
		return false;
	}
	worker_id = json_object_get_int(json_object_object_get(r, "worker_id"));
	apply_settings(r);
	json_object_put(r);
	logmsg("registered as worker %d (concurrency %d)", worker_id, concurrency);
	return true;
}

/*-------------------------------------------------------------------------
 * Chunks
 *-------------------------------------------------------------------------
 */

/* Queue a chunk; consecutive token/json_partial deltas of one attempt are coalesced. */
static void
queue_raw(Step *s, const char *kind, const char *content, size_t len, const char *data)
{
	Chunk	   *last = s->chunks_tail;
	Chunk	   *c;

	if (last && data == NULL && last->data == NULL && strcmp(last->kind, kind) == 0 &&
		last->attempt == s->chunk_attempt &&
		(strcmp(kind, "token") == 0 || strcmp(kind, "json_partial") == 0))
	{
		str_append(&last->content, content, len);
		return;
	}
	c = ao_calloc(1, sizeof(Chunk));
	c->attempt = s->chunk_attempt;
	c->kind = kind;
	str_append(&c->content, content ? content : "", content ? len : 0);
	c->data = data ? ao_strndup(data, strlen(data)) : NULL;
	if (s->chunks_tail)
		s->chunks_tail->next = c;
	else
		s->chunks = c;
	s->chunks_tail = c;
	s->nchunks++;
	/* due at once: a full buffer, and the step's first chunk (time to first token) */
	if (s->nchunks >= chunk_buffer_size || !s->first_flushed)
	{
		s->flush_now = true;
		s->first_flushed = true;
	}
}

/* Queue a chunk after the {"reset": true} status chunk that opens a new try. */
static void
queue_chunk(Step *s, const char *kind, const char *content, size_t len, const char *data)
{
	if (s->need_reset)
	{
		json_object *d = json_object_new_object();
		json_object *m = s->model ? json_object_object_get(s->model, "name") : NULL;

		s->need_reset = false;
		json_object_object_add(d, "reset", json_object_new_boolean(1));
		json_object_object_add(d, "step_id", json_object_new_string(s->step_id));
		json_object_object_add(d, "attempt", json_object_new_int(s->chunk_attempt));
		json_object_object_add(d, "reason", json_object_new_string(s->reset_reason ? s->reset_reason : "retry"));
		if (m)
			json_object_object_add(d, "model", json_object_get(m));
		queue_raw(s, "status", "reset", 5, json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
		json_object_put(d);
	}
	queue_raw(s, kind, content, len, data);
}

/* A clean (well-formed UTF-8, NUL-free), scrubbed, malloc'd copy of a text. */
static char *
clean_scrubbed(Step *s, const char *text, size_t len)
{
	char	   *clean = NULL;
	char	   *scrubbed;
	size_t		n = len;

	if (!ao_llm_text_is_clean(text, len))
	{
		clean = ao_llm_text_sanitize(text, len, &n);
		text = clean;
	}
	scrubbed = ao_scrub_secrets(text, n, s->secrets, (size_t) s->nsecrets, &n);
	if (scrubbed == NULL && n == AO_SCRUB_FAILED)
		ao_oom(len);			/* never pass a secret on */
	if (scrubbed == NULL)
		scrubbed = ao_strndup(text, n);
	free(clean);
	return scrubbed;
}

/*
 * A JSON value with the step's secrets scrubbed out of its text (new
 * reference).
 */
static json_object *
scrub_json(Step *s, json_object *v)
{
	const char *text;
	char	   *clean;
	json_object *out;

	if (v == NULL || s->nsecrets == 0)
		return json_object_get(v);
	text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	clean = clean_scrubbed(s, text, strlen(text));
	out = json_tokener_parse(clean);
	free(clean);
	return out;
}

/*
 * The step's queued chunks as batches for _worker_flush/_worker_settle
 * (one per run of consecutive chunks of one attempt), appended to arr;
 * the queue is emptied.
 */
static void
take_chunks(Step *s, json_object *arr)
{
	json_object *batch = NULL;
	json_object *kinds = NULL;
	json_object *contents = NULL;
	json_object *datas = NULL;
	int			cur = -1;

	for (Chunk *c = s->chunks, *next; c; c = next)
	{
		char	   *text;

		next = c->next;
		if (batch == NULL || c->attempt != cur)
		{
			cur = c->attempt;
			batch = json_object_new_object();
			json_object_object_add(batch, "run_id", json_object_new_int64(s->run_id));
			json_object_object_add(batch, "step_id", json_object_new_string(s->step_id));
			json_object_object_add(batch, "attempt", json_object_new_int(s->attempt));
			json_object_object_add(batch, "chunk_attempt", json_object_new_int(cur));
			json_object_object_add(batch, "kinds", kinds = json_object_new_array());
			json_object_object_add(batch, "contents", contents = json_object_new_array());
			json_object_object_add(batch, "datas", datas = json_object_new_array());
			json_object_array_add(arr, batch);
		}
		json_object_array_add(kinds, json_object_new_string(c->kind));
		text = clean_scrubbed(s, c->content.p ? c->content.p : "", c->content.len);
		json_object_array_add(contents, json_object_new_string(text));
		free(text);
		if (c->data)
		{
			text = clean_scrubbed(s, c->data, strlen(c->data));
			json_object_array_add(datas, json_tokener_parse(text));
			free(text);
		}
		else
			json_object_array_add(datas, NULL);
		str_free(&c->content);
		free(c->data);
		free(c);
	}
	s->chunks = s->chunks_tail = NULL;
	s->nchunks = 0;
	s->flush_now = false;
}

/*-------------------------------------------------------------------------
 * Steps
 *-------------------------------------------------------------------------
 */

/* Take the step's transfer out of curl. */
static void
stop_transfer(Step *s)
{
	if (s->easy)
	{
		curl_multi_remove_handle(multi, s->easy);
		curl_easy_cleanup(s->easy);
		s->easy = NULL;
	}
	if (s->headers)
		curl_slist_free_all(s->headers);
	s->headers = NULL;
	free(s->body);
	s->body = NULL;
	str_free(&s->resp);
	str_free(&s->resp_headers);
}

/* Free a step (not in the list any more). */
static void
free_step(Step *s)
{
	Chunk	   *c = s->chunks;

	stop_transfer(s);
	while (c)
	{
		Chunk	   *next = c->next;

		str_free(&c->content);
		free(c->data);
		free(c);
		c = next;
	}
	if (s->decoder)
		ao_llm_decoder_free(s->decoder);
	if (s->toolmap)
		ao_llm_toolmap_free(s->toolmap);
	json_object_put(s->call);
	json_object_put(s->model);
	json_object_put(s->output);
	json_object_put(s->error);
	json_object_put(s->claim);
	if (s->key)
	{
		memset(s->key, 0, strlen(s->key));
		free(s->key);
	}
	free(s->step_id);
	free(s);
}

/* Remove a step from the list of running steps. */
static void
unlink_step(Step *s)
{
	for (Step **p = &steps; *p; p = &(*p)->next)
		if (*p == s)
		{
			*p = s->next;
			nrunning--;
			return;
		}
}

/* Abandon every step (connection lost): nothing is recorded. */
static void
drop_all_steps(void)
{
	while (steps)
	{
		Step	   *s = steps;

		unlink_step(s);
		free_step(s);
	}
}

/* Abandon the steps a heartbeat, flush or settle said are not ours any more. */
static void
drop_lost(json_object *reply)
{
	json_object *lost;

	if (reply == NULL || !json_object_object_get_ex(reply, "lost", &lost))
		return;
	for (size_t i = 0; i < json_object_array_length(lost); i++)
	{
		json_object *k = json_object_array_get_idx(lost, i);
		long long	run = json_object_get_int64(json_object_array_get_idx(k, 0));
		const char *step = json_object_get_string(json_object_array_get_idx(k, 1));

		for (Step *s = steps; s; s = s->next)
			if (s->run_id == run && strcmp(s->step_id, step) == 0)
			{
				unlink_step(s);
				free_step(s);
				break;
			}
	}
}

/* An error object as the extension stores them ({message, sqlstate, detail}). */
static json_object *
error_json(const char *sqlstate, const char *message, const char *detail)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, "message", json_object_new_string(message));
	json_object_object_add(e, "sqlstate", json_object_new_string(sqlstate));
	if (detail)
		json_object_object_add(e, "detail", json_object_new_string(detail));
	return e;
}

/* Finish the step's attempt with a failure (retryable or not). */
static void
step_fail(Step *s, bool retryable, const char *sqlstate, const char *message, const char *detail,
		  double retry_after_ms)
{
	s->finished = true;
	s->ok = false;
	s->retryable = retryable;
	s->retry_after_ms = retry_after_ms > 0 ? retry_after_ms : 0;
	json_object_put(s->error);
	s->error = error_json(sqlstate, message, detail);
}

/* Finish the step successfully with output (a new reference, taken). */
static void
step_succeed(Step *s, json_object *output)
{
	s->finished = true;
	s->ok = true;
	json_object_put(s->output);
	s->output = output;
}

/* Remember a credential value of the step's request (scrubbed from what is sent back). */
static void
add_secret(Step *s, const char *value)
{
	if (value && value[0] && s->nsecrets < MAX_SECRETS)
		s->secrets[s->nsecrets++] = value;
}

/* curl write callback: the response body, to the decoder or the buffer. */
static size_t
on_write(char *ptr, size_t size, size_t n, void *arg)
{
	Step	   *s = arg;
	size_t		len = size * n;
	long		status = 0;

	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	if (s->is_llm && status < 300 && s->decoder)
	{
		(void) ao_llm_decoder_feed(s->decoder, ptr, len);
		return len;
	}
	if ((long) (s->resp.len + len) > max_response_size)
	{
		s->too_large = true;
		return 0;				/* aborts the transfer */
	}
	str_append(&s->resp, ptr, len);
	return len;
}

/* curl header callback: keep the final response's headers. */
static size_t
on_header(char *ptr, size_t size, size_t n, void *arg)
{
	Step	   *s = arg;
	size_t		len = size * n;

	if (len >= 5 && strncmp(ptr, "HTTP/", 5) == 0)
		s->resp_headers.len = 0;	/* a new response (after 100 Continue) */
	if (s->resp_headers.len + len < 65536)
		str_append(&s->resp_headers, ptr, len);
	return len;
}

/* The value of a response header (malloc'd), or NULL. */
static char *
response_header(Step *s, const char *hname)
{
	size_t		nl = strlen(hname);
	const char *p = s->resp_headers.p;

	while (p && *p)
	{
		const char *eol = strpbrk(p, "\r\n");
		size_t		linelen = eol ? (size_t) (eol - p) : strlen(p);

		if (linelen > nl && strncasecmp(p, hname, nl) == 0 && p[nl] == ':')
		{
			const char *v = p + nl + 1;

			while (*v == ' ' || *v == '\t')
				v++;
			return ao_strndup(v, (size_t) (p + linelen - v));
		}
		if (!eol)
			break;
		p = eol + 1;
		while (*p == '\r' || *p == '\n')
			p++;
	}
	return NULL;
}

/*
 * Start the step's request (s->body, s->headers set; the URL given):
 * configured like the executors' engine (no signals, http/https only, no
 * redirects, connect/total/idle timeouts). False when curl refused it.
 */
static bool
start_request(Step *s, const char *url, const char *method)
{
	CURL	   *e = curl_easy_init();

	if (e == NULL)
		return false;
	s->easy = e;
	s->too_large = false;
	s->errbuf[0] = '\0';
	if (s->traceparent)
	{
		char		h[128];

		snprintf(h, sizeof(h), "traceparent: %s", s->traceparent);
		s->headers = curl_slist_append(s->headers, h);
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms > 0 ? s->timeout_ms : 300000L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, s);
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	else
	{
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
		if (s->body)
		{
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) strlen(s->body));
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->body);
		}
		else if (strcmp(method, "DELETE") != 0)
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
	}
	if (curl_multi_add_handle(multi, e) != CURLM_OK)
		return false;
	s->sent = true;
	return true;
}

/*-------------------------------------------------------------------------
 * llm steps
 *-------------------------------------------------------------------------
 */

static void
on_text(void *arg, const char *delta, size_t len)
{
	queue_chunk((Step *) arg, "token", delta, len, NULL);
}

static void
on_json_partial(void *arg, const char *delta, size_t len, const char *so_far, size_t so_far_len)
{
	(void) so_far;
	(void) so_far_len;
	queue_chunk((Step *) arg, "json_partial", delta, len, NULL);
}

static void
on_tool_call_done(void *arg, size_t index, const ao_llm_tool_call *call)
{
	Step	   *s = arg;
	json_object *d = json_object_new_object();
	const char *n = call->name ? call->name : "";

	(void) index;
	json_object_object_add(d, "id", json_object_new_string(call->id ? call->id : ""));
	json_object_object_add(d, "name", json_object_new_string(n));
	json_object_object_add(d, "arguments", call->arguments ? json_object_get(call->arguments)
						   : json_object_new_string(call->arguments_text ? call->arguments_text : ""));
	queue_chunk(s, "tool_call", n, strlen(n), json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
	json_object_put(d);
}

/* Use a model (a reference is taken): provider, price, key from our environment. */
static bool
use_model(Step *s, json_object *model)
{
	json_object *v;
	const char *env;

	json_object_put(s->model);
	s->model = json_object_get(model);
	if (!ao_llm_provider_parse(json_object_get_string(json_object_object_get(model, "provider")), &s->provider))
	{
		step_fail(s, false, "22023", "unknown provider", NULL, 0);
		return false;
	}
	ao_llm_price_init(&s->price, 0, 0);
	if (json_object_object_get_ex(model, "prices", &v))
		(void) ao_llm_price_from_json(v, &s->price, NULL, NULL);
	if (s->key)
	{
		memset(s->key, 0, strlen(s->key));
		free(s->key);
		s->key = NULL;
	}
	if (json_object_object_get_ex(model, "api_key_env", &v))
	{
		const char *value;

		env = json_object_get_string(v);
		value = getenv(env);
		if (value == NULL || value[0] == '\0')
		{
			char		msg[512];

			snprintf(msg, sizeof(msg),
					 "environment variable \"%s\" (api_key_env of model \"%s\") is not set in the worker's environment; no request was sent",
					 env, json_object_get_string(json_object_object_get(model, "name")));
			step_fail(s, false, "28000", msg, NULL, 0);
			return false;
		}
		s->key = ao_strndup(value, strlen(value));
		add_secret(s, s->key);
	}
	return true;
}

/* Collect problems into one detail text (malloc'd). */
static char *
problems_text(ao_problems *p)
{
	Str			out = {0};

	for (size_t i = 0; i < p->n; i++)
	{
		if (i > 0)
			str_append(&out, "\n", 1);
		str_append(&out, p->paths[i][0] ? p->paths[i] : "/", strlen(p->paths[i][0] ? p->paths[i] : "/"));
		str_append(&out, ": ", 2);
		str_append(&out, p->messages[i], strlen(p->messages[i]));
	}
	return out.p ? out.p : ao_strndup("", 0);
}

/*
 * Build and start the request of the current turn from s->call. False
 * when the step failed.
 */
static bool
llm_request(Step *s)
{
	json_object *body = NULL;
	ao_problems problems;
	ao_llm_headers h;
	ao_llm_callbacks cb = {0};
	size_t		len;
	const char *text;
	char		url[2048];
	json_object *v;

	stop_transfer(s);
	json_object_object_add(s->call, "model",
						   json_object_get(json_object_object_get(s->model, "model")));
	ao_problems_init(&problems);
	if (s->toolmap)
		ao_llm_toolmap_free(s->toolmap);
	s->toolmap = ao_llm_toolmap_new();
	if (ao_llm_build_request(s->provider, s->call, s->toolmap, NULL, &body, &s->spec,
							 ao_problems_add, &problems) > 0)
	{
		char	   *detail = problems_text(&problems);

		ao_problems_free(&problems);
		step_fail(s, false, "22023", "could not build the LLM request", detail, 0);
		free(detail);
		return false;
	}
	ao_problems_free(&problems);
	text = ao_llm_body_text(body, &len);
	s->body = ao_strndup(text, len);
	json_object_put(body);
	v = json_object_object_get(s->model, "anthropic_version");
	if (!ao_llm_build_headers(s->provider, s->key ? s->key : "", v ? json_object_get_string(v) : NULL, true, &h))
	{
		step_fail(s, false, "22023", "the API key or version contains control characters", NULL, 0);
		return false;
	}
	for (size_t i = 0; i < h.n; i++)
		s->headers = curl_slist_append(s->headers, h.lines[i]);
	ao_llm_headers_free(&h);
	if (s->decoder)
		ao_llm_decoder_free(s->decoder);
	cb.text = on_text;
	cb.json_partial = on_json_partial;
	cb.tool_call_done = on_tool_call_done;
	s->decoder = ao_llm_decoder_new(&s->spec, s->toolmap, &cb, s, NULL);
	snprintf(url, sizeof(url), "%s%s", json_object_get_string(json_object_object_get(s->model, "base_url")),
			 ao_llm_endpoint_path(s->provider));
	if (!start_request(s, url, "POST"))
	{
		step_fail(s, true, "08000", "could not start the request", NULL, 0);
		return false;
	}
	return true;
}

/* Prepare an llm step from its claim and send its first request. */
static void
llm_start(Step *s)
{
	json_object *llm = json_object_object_get(s->claim, "llm");
	json_object *v;

	s->call = json_object_get(json_object_object_get(llm, "call"));
	s->response_schema = json_object_object_get(llm, "response_schema");
	s->max_turns = json_object_object_get_ex(llm, "max_turns", &v) ? json_object_get_int(v) : 8;
	if (s->call == NULL || !use_model(s, json_object_object_get(llm, "model")))
	{
		if (!s->finished)
			step_fail(s, false, "XX000", "the claim carries no call", NULL, 0);
		return;
	}
	(void) llm_request(s);
}

/* The usage so far, as the step's usage object. */
static json_object *
usage_json(Step *s)
{
	json_object *u = json_object_new_object();
	char		cost[64];

	json_object_object_add(u, "prompt_tokens", json_object_new_int64(s->prompt_tokens));
	json_object_object_add(u, "completion_tokens", json_object_new_int64(s->completion_tokens));
	snprintf(cost, sizeof(cost), "%.10f", s->cost);
	json_object_object_add(u, "cost", json_object_new_double_s(s->cost, cost));
	return u;
}

/* A failure that a fallback model may still rescue (llm.c's fail_or_fallback). */
static void
fail_or_fallback(Step *s, const ao_llm_error *e)
{
	json_object *fallbacks = json_object_object_get(json_object_object_get(s->claim, "llm"), "fallbacks");

	while (e->retryable && s->attempt >= s->max_attempts && fallbacks &&
		   s->next_fallback < (int) json_object_array_length(fallbacks))
	{
		const char *next = json_object_get_string(json_object_array_get_idx(fallbacks, s->next_fallback++));
		char		run[32];
		char		attempt[16];
		const char *params[4];
		bool		failed;
		json_object *r;
		json_object *m;
		json_object *d;

		snprintf(run, sizeof(run), "%lld", s->run_id);
		snprintf(attempt, sizeof(attempt), "%d", s->attempt);
		params[0] = run;
		params[1] = s->step_id;
		params[2] = attempt;
		params[3] = next;
		r = db_call("SELECT agentorch._worker_fallback($1::bigint, $2, $3::int, $4)", 4, params, &failed);
		if (conn == NULL)
			return;				/* the step is gone with the connection */
		if (r && json_object_object_get_ex(r, "defer_ms", &d))
		{
			json_object_put(r);
			step_fail(s, true, "57P03", "the fallback model's policies defer the request", NULL,
					  json_object_get_double(d));
			return;
		}
		if (r && json_object_object_get_ex(r, "model", &m))
		{
			char		status[512];

			if (!use_model(s, m))
			{
				json_object_put(r);
				return;
			}
			json_object_put(r);
			/* the fallback's request is an attempt of its own */
			s->chunk_attempt++;
			s->need_reset = true;
			s->reset_reason = "fallback";
			snprintf(status, sizeof(status), "{\"fallback\": true, \"model\": \"%s\"}", next);
			queue_chunk(s, "status", "fallback", 8, status);
			(void) llm_request(s);
			return;
		}
		json_object_put(r);
	}
	step_fail(s, e->retryable,
			  e->retryable ? (s->timed_out ? "57014" : e->http_status >= 500 ? "58000" : "08000") : "22000",
			  e->message, NULL, e->retry_after_ms > 0 ? e->retry_after_ms : 0);
}

/* The output of a plain-text reply: a whole JSON object/array becomes that value. */
static json_object *
text_output(const char *text, size_t len)
{
	size_t		start = 0;
	size_t		end = len;

	while (start < len && strchr(" \n\r\t", text[start]))
		start++;
	while (end > start && strchr(" \n\r\t", text[end - 1]))
		end--;
	if (end > start && (text[start] == '{' || text[start] == '['))
	{
		json_tokener *tok = json_tokener_new();
		json_object *v = json_tokener_parse_ex(tok, text + start, (int) (end - start));
		bool		whole = json_tokener_get_error(tok) == json_tokener_success &&
			json_tokener_get_parse_end(tok) >= end - start;

		json_tokener_free(tok);
		if (v && whole)
			return v;
		json_object_put(v);
	}
	return json_object_new_string_len(text ? text : "", (int) len);
}

/* Is the reply cut off by max_tokens? */
static bool
cut_off(const ao_llm_result *res)
{
	return res->finish_reason != NULL && strcmp(res->finish_reason, "length") == 0;
}

/*
 * Run the tool calls of a reply through the database (registered tools,
 * as the run's owner) and append their results to the conversation.
 * False when the step is no longer ours (or the connection went).
 */
static bool
run_tool_calls(Step *s, const ao_llm_result *res)
{
	json_object *calls = json_object_new_array();
	json_object *results;
	char		run[32];
	char		attempt[16];
	const char *params[4];
	bool		failed;
	json_object *messages = json_object_object_get(s->call, "messages");

	for (size_t i = 0; i < res->n_tool_calls; i++)
	{
		const ao_llm_tool_call *c = &res->tool_calls[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "id", json_object_new_string(c->id ? c->id : ""));
		json_object_object_add(o, "name", json_object_new_string(c->known && c->name ? c->name : ""));
		json_object_object_add(o, "wire_name", json_object_new_string(c->wire_name ? c->wire_name : ""));
		json_object_object_add(o, "arguments", c->arguments ? json_object_get(c->arguments) : NULL);
		json_object_array_add(calls, o);
	}
	snprintf(run, sizeof(run), "%lld", s->run_id);
	snprintf(attempt, sizeof(attempt), "%d", s->attempt);
	params[0] = run;
	params[1] = s->step_id;
	params[2] = attempt;
	params[3] = json_object_to_json_string_ext(calls, JSON_C_TO_STRING_PLAIN);
	results = db_call("SELECT agentorch._worker_call_tools($1::bigint, $2, $3::int, $4::jsonb)", 4, params, &failed);
	json_object_put(calls);
	if (failed || results == NULL)
	{
		json_object_put(results);
		if (conn != NULL && !failed)
			return false;		/* not ours any more */
		if (conn != NULL)
			step_fail(s, true, "08000", "could not run the tool calls", NULL, 0);
		return false;
	}
	for (size_t i = 0; i < json_object_array_length(results); i++)
	{
		json_object *r = json_object_array_get_idx(results, i);
		json_object *msg = json_object_new_object();
		json_object *d = json_object_new_object();
		const ao_llm_tool_call *c = &res->tool_calls[i];
		bool		ok = json_object_get_boolean(json_object_object_get(r, "ok"));
		json_object *result = json_object_object_get(r, "result");
		const char *n = c->known && c->name ? c->name : (c->wire_name ? c->wire_name : "");

		if (!c->known)
		{
			char		m[256];

			snprintf(m, sizeof(m), "unknown tool \"%s\"", c->wire_name ? c->wire_name : "");
			ok = false;
			result = error_json("42704", m, NULL);
			json_object_object_add(r, "result", result);
		}
		json_object_object_add(msg, "role", json_object_new_string("tool"));
		json_object_object_add(msg, "tool_call_id", json_object_new_string(c->id ? c->id : ""));
		json_object_object_add(msg, "content", json_object_get(result));
		json_object_object_add(msg, "is_error", json_object_new_boolean(!ok));
		json_object_array_add(messages, msg);
		json_object_object_add(d, "id", json_object_new_string(c->id ? c->id : ""));
		json_object_object_add(d, "name", json_object_new_string(n));
		json_object_object_add(d, ok ? "result" : "error", json_object_get(result));
		queue_chunk(s, "tool_call", n, strlen(n), json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
		json_object_put(d);
	}
	json_object_put(results);
	return true;
}

/* Count a reply's usage. */
static void
add_usage(Step *s, const ao_llm_result *res)
{
	if (res->usage.input_tokens > 0)
		s->prompt_tokens += res->usage.input_tokens;
	if (res->usage.output_tokens > 0)
		s->completion_tokens += res->usage.output_tokens;
	s->cost += ao_llm_cost(&s->price, &res->usage);
}

/* The request of a turn completed (llm.c's llm_finish_reply). */
static void
llm_finish(Step *s, CURLcode result, long status)
{
	ao_llm_result res;
	ao_llm_error e;
	ao_llm_reply_outcome outcome;

	{
		char	   *ra = status >= 300 ? response_header(s, "Retry-After") : NULL;
		ao_llm_reply reply = {
			.provider = s->provider, .structured = s->spec.structured,
			.curl_code = (int) result,
			.transport_error = result == CURLE_OK ? NULL : s->errbuf[0] ? s->errbuf : curl_easy_strerror(result),
			.http_status = status, .body = s->resp.p, .body_len = s->resp.len, .retry_after = ra,
			.now_epoch_s = (double) time(NULL),
		};

		outcome = ao_llm_finish_reply(&reply, s->decoder, &res, &e);
		free(ra);
	}
	add_usage(s, &res);
	if (outcome == AO_LLM_REPLY_FAILED)
	{
		s->timed_out = e.kind == AO_LLM_ERR_TRANSPORT && result == CURLE_OPERATION_TIMEDOUT;
		ao_llm_result_free(&res);
		fail_or_fallback(s, &e);
		return;
	}
	if (outcome == AO_LLM_REPLY_CUT_OFF)
	{
		ao_llm_result_free(&res);
		step_fail(s, false, "54000", "the reply was cut off by max_tokens inside a tool call",
				  "The tool call's arguments are incomplete; raise the step's max_tokens.", 0);
		return;
	}
	if (outcome == AO_LLM_REPLY_TOOL_CALLS)
	{
		if (s->turn + 1 >= s->max_turns)
		{
			char		m[128];

			ao_llm_result_free(&res);
			snprintf(m, sizeof(m), "the model still asked for tools after %d turns", s->max_turns);
			step_fail(s, false, "54000", m, "Raise the step's max_turns if the conversation needs more.", 0);
			return;
		}
		json_object_array_add(json_object_object_get(s->call, "messages"), ao_llm_result_to_json(&res));
		if (!run_tool_calls(s, &res))
		{
			ao_llm_result_free(&res);
			if (!s->finished && conn != NULL)
				s->finished = true;	/* not ours: settle finds it lost */
			return;
		}
		ao_llm_result_free(&res);
		s->turn++;
		(void) llm_request(s);
		return;
	}
	if (s->response_schema)
	{
		ao_problems problems;

		ao_problems_init(&problems);
		if (res.structured == NULL)
			ao_problems_add(&problems, "", res.error.kind == AO_LLM_ERR_OUTPUT ? res.error.message
							: "the reply holds no JSON value");
		else
			(void) ao_json_schema_validate(s->response_schema, res.structured, ao_problems_add, &problems);
		if (problems.n > 0)
		{
			char	   *detail = problems_text(&problems);

			ao_problems_free(&problems);
			if (cut_off(&res))
			{
				ao_llm_result_free(&res);
				step_fail(s, false, "54000", "the structured reply was cut off by max_tokens", "Raise the step's max_tokens.", 0);
			}
			else if (!s->repaired)
			{
				json_object *msg = json_object_new_object();
				Str			text = {0};
				const char *a = "Your reply does not match the required JSON schema:\n";
				const char *b = "\nReply again with only a JSON value that matches the schema.";

				s->repaired = true;
				json_object_array_add(json_object_object_get(s->call, "messages"), ao_llm_result_to_json(&res));
				str_append(&text, a, strlen(a));
				str_append(&text, detail, strlen(detail));
				str_append(&text, b, strlen(b));
				json_object_object_add(msg, "role", json_object_new_string("user"));
				json_object_object_add(msg, "content", json_object_new_string(text.p));
				str_free(&text);
				json_object_array_add(json_object_object_get(s->call, "messages"), msg);
				queue_chunk(s, "status", "repair", 6, "{\"repair\": true}");
				ao_llm_result_free(&res);
				s->turn++;
				(void) llm_request(s);
			}
			else
			{
				ao_llm_result_free(&res);
				step_fail(s, false, "22023", "the model's structured output does not match response_schema", detail, 0);
			}
			free(detail);
			return;
		}
		ao_problems_free(&problems);
		step_succeed(s, json_object_get(res.structured));
		ao_llm_result_free(&res);
		return;
	}
	step_succeed(s, text_output(res.text, res.text_len));
	ao_llm_result_free(&res);
}

/*-------------------------------------------------------------------------
 * http tools
 *-------------------------------------------------------------------------
 */

/* Is a response of this Content-Type text (runner_net.c's textual_content_type)? */
static bool
textual(const char *ctype)
{
	static const char *const types[] = {
		"application/json", "application/xml", "application/javascript", "application/ecmascript",
		"application/x-www-form-urlencoded", "application/yaml", "application/x-yaml",
		"application/x-ndjson", "application/graphql", "application/sql", "image/svg+xml", NULL
	};
	char		t[256];
	char	   *p = t;
	char	   *semi;

	if (ctype == NULL)
		return true;
	snprintf(t, sizeof(t), "%s", ctype);
	if ((semi = strchr(t, ';')) != NULL)
		*semi = '\0';
	for (char *c = t; *c; c++)
		*c = (char) (*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
	while (*p == ' ')
		p++;
	for (char *e = p + strlen(p); e > p && e[-1] == ' '; e--)
		e[-1] = '\0';
	if (strncmp(p, "text/", 5) == 0 || strstr(p, "+json") || strstr(p, "+xml"))
		return true;
	for (int i = 0; types[i]; i++)
		if (strcmp(p, types[i]) == 0)
			return true;
	return false;
}

/* Base64 of len bytes (malloc'd). */
static char *
base64(const unsigned char *d, size_t len)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char	   *out = ao_malloc(4 * ((len + 2) / 3) + 1);
	size_t		o = 0;

	for (size_t i = 0; i < len; i += 3)
	{
		unsigned	v = (unsigned) d[i] << 16 | (i + 1 < len ? (unsigned) d[i + 1] << 8 : 0) |
			(i + 2 < len ? d[i + 2] : 0);

		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

/* Prepare and send an http tool's request from its claim. */
static void
http_start(Step *s)
{
	json_object *http = json_object_object_get(s->claim, "http");
	json_object *v;
	const char *method;

	method = json_object_get_string(json_object_object_get(http, "method"));
	if (json_object_object_get_ex(http, "body", &v))
		s->body = ao_strndup(json_object_get_string(v), (size_t) json_object_get_string_len(v));
	if (json_object_object_get_ex(http, "headers", &v))
		for (size_t i = 0; i < json_object_array_length(v); i++)
			s->headers = curl_slist_append(s->headers, json_object_get_string(json_object_array_get_idx(v, i)));
	if (json_object_object_get_ex(http, "headers_env", &v))
	{
		for (size_t i = 0; i < json_object_array_length(v); i++)
		{
			json_object *h = json_object_array_get_idx(v, i);
			const char *env = json_object_get_string(json_object_object_get(h, "env"));
			const char *value = getenv(env);
			Str			line = {0};
			const char *hn = json_object_get_string(json_object_object_get(h, "header"));
			const char *prefix = json_object_get_string(json_object_object_get(h, "prefix"));

			if (value == NULL || value[0] == '\0' || strpbrk(value, "\r\n"))
			{
				char		m[512];

				snprintf(m, sizeof(m), "environment variable \"%s\" (headers_env[\"%s\"]) is not set in the worker's environment, "
						 "or holds a line break; no request was sent",
						 env, hn);
				step_fail(s, false, "28000", m, NULL, 0);
				return;
			}
			add_secret(s, value);
			str_append(&line, hn, strlen(hn));
			str_append(&line, ": ", 2);
			str_append(&line, prefix ? prefix : "", prefix ? strlen(prefix) : 0);
			str_append(&line, value, strlen(value));
			s->headers = curl_slist_append(s->headers, line.p);
			memset(line.p, 0, line.len);
			str_free(&line);
		}
	}
	if (!start_request(s, json_object_get_string(json_object_object_get(http, "url")), method ? method : "POST"))
		step_fail(s, true, "08000", "could not start the request", NULL, 0);
}

/* An http tool's response: {status, headers, body} or a classified failure. */
static void
http_finish(Step *s, CURLcode result, long status)
{
	json_object *out;
	json_object *hdrs = json_object_new_object();
	char	   *ctype;
	bool		binary;
	const char *data = s->resp.p ? s->resp.p : "";
	size_t		len = s->resp.len;

	if (result != CURLE_OK)
	{
		char		m[CURL_ERROR_SIZE + 64];

		json_object_put(hdrs);
		snprintf(m, sizeof(m), "http request failed: %s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(result));
		s->timed_out = result == CURLE_OPERATION_TIMEDOUT;
		step_fail(s, !s->too_large, s->timed_out ? "57014" : "08000", m, NULL, 0);
		return;
	}
	out = json_object_new_object();
	json_object_object_add(out, "status", json_object_new_int((int) status));
	json_object_object_add(out, "headers", hdrs);
	{
		char	   *all = clean_scrubbed(s, s->resp_headers.p ? s->resp_headers.p : "", s->resp_headers.len);

		ao_http_headers_into(hdrs, all);
		free(all);
	}
	ctype = response_header(s, "Content-Type");
	binary = !textual(ctype) || !ao_llm_text_is_clean(data, len);
	if (binary)
	{
		char	   *enc = base64((const unsigned char *) data, len);

		json_object_object_add(out, "body_base64", json_object_new_string(enc));
		json_object_object_add(out, "content_type", ctype ? json_object_new_string(ctype) : NULL);
		free(enc);
	}
	else
	{
		json_object *body = NULL;

		if (ctype && strstr(ctype, "json") && len > 0)
		{
			json_tokener *tok = json_tokener_new();

			body = json_tokener_parse_ex(tok, data, (int) len);
			if (json_tokener_get_error(tok) != json_tokener_success)
			{
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
	free(ctype);
	if (status >= 200 && status < 300)
	{
		step_succeed(s, out);
		return;
	}
	{
		char		m[64];
		char	   *ra = response_header(s, "Retry-After");
		char	   *detail = binary ? NULL : clean_scrubbed(s, data, len < 500 ? len : 500);

		snprintf(m, sizeof(m), "http tool returned status %ld", status);
		step_fail(s, status == 429 || status >= 500 || status == 408, status >= 500 ? "58000" : "22000",
				  m, detail, ra ? atof(ra) * 1000.0 : 0);
		free(ra);
		free(detail);
		json_object_put(out);
	}
}

/*-------------------------------------------------------------------------
 * The loop: claim, drive, flush, heartbeat, settle
 *-------------------------------------------------------------------------
 */

/* Claim up to the free capacity and start the steps. Returns how many. */
static int
claim(bool recover)
{
	char		id[16];
	char		n[16];
	const char *params[4];
	bool		failed;
	json_object *arr;
	int			got;

	snprintf(id, sizeof(id), "%d", worker_id);
	snprintf(n, sizeof(n), "%d", concurrency - nrunning);
	params[0] = id;
	params[1] = name;
	params[2] = n;
	params[3] = recover ? "true" : "false";
	arr = db_call("SELECT agentorch._worker_claim($1::int, $2, $3::int, $4::boolean)", 4, params, &failed);
	if (failed || arr == NULL)
		return 0;
	got = (int) json_object_array_length(arr);
	for (int i = 0; i < got; i++)
	{
		json_object *c = json_object_array_get_idx(arr, i);
		Step	   *s = ao_calloc(1, sizeof(Step));
		json_object *v;

		s->claim = json_object_get(c);
		s->run_id = json_object_get_int64(json_object_object_get(c, "run_id"));
		s->step_id = ao_strndup(json_object_get_string(json_object_object_get(c, "step_id")),
								strlen(json_object_get_string(json_object_object_get(c, "step_id"))));
		s->attempt = json_object_get_int(json_object_object_get(c, "attempt"));
		s->max_attempts = json_object_get_int(json_object_object_get(c, "max_attempts"));
		s->is_llm = strcmp(json_object_get_string(json_object_object_get(c, "kind")), "llm") == 0;
		s->timeout_ms = json_object_object_get_ex(c, "timeout_ms", &v) ? (long) json_object_get_int64(v) : 300000;
		s->traceparent = json_object_object_get_ex(c, "traceparent", &v) ? json_object_get_string(v) : NULL;
		s->chunk_attempt = json_object_get_int(json_object_object_get(c, "chunk_attempt"));
		s->need_reset = json_object_get_boolean(json_object_object_get(c, "need_reset"));
		s->reset_reason = json_object_get_string(json_object_object_get(c, "reset_reason"));
		s->next = steps;
		steps = s;
		nrunning++;
		if (s->is_llm)
			llm_start(s);
		else
			http_start(s);
	}
	json_object_put(arr);
	return got;
}

/* Hand a completed transfer to its kind. */
static void
transfer_done(Step *s, CURLcode result)
{
	long		status = 0;

	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(multi, s->easy);
	curl_easy_cleanup(s->easy);
	s->easy = NULL;
	if (s->is_llm)
		llm_finish(s, result, status);
	else
		http_finish(s, result, status);
}

/* One settle element of a finished (or released) step. */
static json_object *
settle_element(Step *s, bool release)
{
	json_object *e = json_object_new_object();
	json_object *chunks = json_object_new_array();
	int			policy;

	json_object_object_add(e, "run_id", json_object_new_int64(s->run_id));
	json_object_object_add(e, "step_id", json_object_new_string(s->step_id));
	json_object_object_add(e, "attempt", json_object_new_int(s->attempt));
	if (release)
	{
		json_object_object_add(e, "outcome", json_object_new_string("release"));
		json_object_object_add(e, "sent", json_object_new_boolean(0));	/* give the attempt back */
		policy = -1;
	}
	else
	{
		json_object_object_add(e, "outcome", json_object_new_string(s->ok ? "succeeded" : "failed"));
		if (s->ok)
			json_object_object_add(e, "output", scrub_json(s, s->output));
		else
			json_object_object_add(e, "error", scrub_json(s, s->error));
		json_object_object_add(e, "retryable", json_object_new_boolean(s->retryable));
		json_object_object_add(e, "retry_after_ms", json_object_new_double(s->retry_after_ms));
		/* as ao_policy_release counts: the step's own timeout is neutral */
		policy = (s->ok || !s->retryable) ? 1 : s->timed_out ? -1 : 0;
	}
	if (s->is_llm && (s->prompt_tokens > 0 || s->completion_tokens > 0 || s->cost > 0))
		json_object_object_add(e, "usage", usage_json(s));
	json_object_object_add(e, "policy", json_object_new_int(policy));
	json_object_object_add(e, "tokens", json_object_new_int64(s->prompt_tokens + s->completion_tokens));
	take_chunks(s, chunks);
	json_object_object_add(e, "chunks", chunks);
	return e;
}

/* Record every finished step in one call; they are freed. */
static void
settle_finished(void)
{
	json_object *arr = json_object_new_array();
	Step	   *done = NULL;
	bool		failed;
	const char *params[1];
	json_object *r;

	for (Step *s = steps, *next; s; s = next)
	{
		next = s->next;
		if (s->finished && s->easy == NULL)
		{
			unlink_step(s);
			s->next = done;
			done = s;
			json_object_array_add(arr, settle_element(s, false));
		}
	}
	if (json_object_array_length(arr) > 0)
	{
		params[0] = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN);
		r = db_call("SELECT agentorch._worker_settle($1::jsonb)", 1, params, &failed);
		json_object_put(r);
	}
	json_object_put(arr);
	while (done)
	{
		Step	   *next = done->next;

		free_step(done);
		done = next;
	}
}

/* Give back every step we hold (SIGTERM after the grace period). */
static void
release_all(void)
{
	json_object *arr = json_object_new_array();
	bool		failed;
	const char *params[1];
	json_object *r;

	for (Step *s = steps; s; s = s->next)
	{
		stop_transfer(s);
		json_object_array_add(arr, settle_element(s, true));
	}
	if (json_object_array_length(arr) > 0 && conn)
	{
		params[0] = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN);
		r = db_call("SELECT agentorch._worker_settle($1::jsonb)", 1, params, &failed);
		json_object_put(r);
		logmsg("released %d step(s)", (int) json_object_array_length(arr));
	}
	json_object_put(arr);
	drop_all_steps();
}

/* Write the queued chunks of every step that has some due (or all when force). */
static long long
flush_chunks(bool force, long long last_flush)
{
	json_object *arr = json_object_new_array();
	long long	now = now_ms();
	bool		due = force || now - last_flush >= flush_interval_ms;
	bool		failed;
	const char *params[1];
	json_object *r;

	for (Step *s = steps; s; s = s->next)
		if (s->chunks && (due || s->flush_now))
			take_chunks(s, arr);
	if (json_object_array_length(arr) == 0)
	{
		json_object_put(arr);
		return last_flush;
	}
	params[0] = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN);
	r = db_call("SELECT agentorch._worker_flush($1::jsonb)", 1, params, &failed);
	json_object_put(arr);
	drop_lost(r);
	json_object_put(r);
	return due ? now : last_flush;
}

/* Extend our leases; drop the steps that are not ours any more. */
static void
heartbeat(void)
{
	json_object *arr = json_object_new_array();
	char		id[16];
	const char *params[2];
	bool		failed;
	json_object *r;

	for (Step *s = steps; s; s = s->next)
	{
		json_object *k = json_object_new_array();

		if (s->finished)
		{
			json_object_put(k);
			continue;
		}
		json_object_array_add(k, json_object_new_int64(s->run_id));
		json_object_array_add(k, json_object_new_string(s->step_id));
		json_object_array_add(k, json_object_new_int(s->attempt));
		json_object_array_add(arr, k);
	}
	snprintf(id, sizeof(id), "%d", worker_id);
	params[0] = id;
	params[1] = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN);
	r = db_call("SELECT agentorch._worker_heartbeat($1::int, $2::jsonb)", 2, params, &failed);
	json_object_put(arr);
	if (r)
	{
		drop_lost(r);
		apply_settings(json_object_object_get(r, "settings"));
		json_object_put(r);
	}
}

/* Queued chunks of any step? */
static bool
any_chunks(bool only_urgent)
{
	for (Step *s = steps; s; s = s->next)
		if (s->chunks && (!only_urgent || s->flush_now))
			return true;
	return false;
}

static void
usage(FILE *f)
{
	fprintf(f,
			"Usage: agentorch-worker CONNINFO [--concurrency N] [--name NAME] [--poll-ms MS] [--grace-ms MS]\n"
			"\n"
			"Claims network steps (llm steps, http tools) of the agentorch database CONNINFO\n"
			"(a libpq connection string or URI) and sends their requests.\n"
			"  --concurrency N  steps in flight at most (default 100)\n"
			"  --name NAME      the name in agentorch.workers (default: worker-<host>-<pid>)\n"
			"  --poll-ms MS     how often an idle worker looks for ready steps (default 100)\n"
			"  --grace-ms MS    on SIGTERM, how long steps in flight may finish before they\n"
			"                   are released (default 5000)\n");
}

int
main(int argc, char **argv)
{
	static struct option opts[] = {
		{"concurrency", required_argument, NULL, 'c'},
		{"name", required_argument, NULL, 'n'},
		{"poll-ms", required_argument, NULL, 'p'},
		{"grace-ms", required_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	int			c;
	long long	next_claim = 0;
	long long	last_recover = 0;
	long long	last_heartbeat = 0;
	long long	last_flush = 0;
	long long	stop_deadline = 0;
	long long	reconnect_at = 0;
	bool		stopping = false;
	static char default_name[300];
	struct sigaction sa;

	while ((c = getopt_long(argc, argv, "c:n:p:g:h", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'c':
				concurrency = atoi(optarg);
				break;
			case 'n':
				name = optarg;
				break;
			case 'p':
				poll_ms = atoi(optarg);
				break;
			case 'g':
				grace_ms = atol(optarg);
				break;
			case 'h':
				usage(stdout);
				return 0;
			default:
				usage(stderr);
				return 2;
		}
	}
	if (optind != argc - 1 || concurrency < 1 || poll_ms < 1 || grace_ms < 0)
	{
		usage(stderr);
		return 2;
	}
	conninfo = argv[optind];
	if (gethostname(hostname, sizeof(hostname) - 1) != 0)
		strcpy(hostname, "unknown");
	if (name == NULL)
	{
		snprintf(default_name, sizeof(default_name), "worker-%s-%d", hostname, (int) getpid());
		name = default_name;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
	{
		fprintf(stderr, "agentorch-worker: could not initialise libcurl\n");
		return 1;
	}
	multi = curl_multi_init();

	for (;;)
	{
		long long	now = now_ms();
		int			running_transfers;
		CURLMsg    *msg;
		int			left;
		long		timeout;

		if (stop_requested && !stopping)
		{
			stopping = true;
			stop_deadline = now + grace_ms;
			logmsg("stopping: %d step(s) in flight", nrunning);
		}
		if (stopping && (nrunning == 0 || now >= stop_deadline))
			break;
		if (conn == NULL)
		{
			if (stopping)
				break;
			if (now < reconnect_at || !connect_and_register())
			{
				if (now >= reconnect_at)
					reconnect_at = now + 1000;
				usleep(50000);
				continue;
			}
			next_claim = 0;
		}
		if (!stopping && nrunning < concurrency && now >= next_claim)
		{
			bool		recover = now - last_recover >= 1000;
			int			want = concurrency - nrunning;
			int			got = claim(recover);

			if (recover)
				last_recover = now;
			next_claim = got < want ? now + poll_ms : 0;
		}
		curl_multi_perform(multi, &running_transfers);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			Step	   *s = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &s);
			if (s)
				transfer_done(s, msg->data.result);
			if (conn == NULL)
				break;			/* a tool call lost the connection: everything is gone */
		}
		if (conn == NULL)
			continue;
		settle_finished();
		if (conn && now_ms() - last_heartbeat >= (lease_ms / 3 < 1000 ? lease_ms / 3 : 1000))
		{
			heartbeat();
			last_heartbeat = now_ms();
		}
		if (conn && any_chunks(false))
			last_flush = flush_chunks(false, last_flush);
		/* how long we may sleep: the next flush, claim, heartbeat, at most 100 ms */
		now = now_ms();
		timeout = 100;
		if (any_chunks(true))
			timeout = 0;
		else if (any_chunks(false))
			timeout = (long) (flush_interval_ms - (now - last_flush) > 0 ? flush_interval_ms - (now - last_flush) : 0);
		if (!stopping && nrunning < concurrency && next_claim - now < timeout)
			timeout = next_claim > now ? (long) (next_claim - now) : 0;
		if (timeout > 0)
			curl_multi_poll(multi, NULL, 0, (int) timeout, NULL);
	}
	if (conn)
	{
		char		id[16];
		const char *params[1];
		bool		failed;

		release_all();
		snprintf(id, sizeof(id), "%d", worker_id);
		params[0] = id;
		json_object_put(db_call("SELECT agentorch._worker_exit($1::int)", 1, params, &failed));
		PQfinish(conn);
	}
	else
		drop_all_steps();
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	logmsg("stopped");
	return 0;
}
