/*-------------------------------------------------------------------------
 *
 * ao_llm.h
 *	  LLM wire protocol for agentorch's PostgreSQL-free core: request
 *	  bodies and headers, tool-name mapping, streaming (SSE) and
 *	  non-streaming response decoding, incremental JSON for structured
 *	  output, cost, and error classification, for two providers:
 *
 *	  "openai"     OpenAI Chat Completions (and compatible servers)
 *	  "anthropic"  Anthropic Messages API
 *
 * No I/O happens here: the caller sends the body and headers (libcurl in
 * the extension), feeds the response bytes to a decoder, and classifies
 * HTTP or transport failures with ao_llm_classify_*.
 *
 * The provider-neutral call description (the input of
 * ao_llm_build_request) is a JSON object:
 *
 *   model                  string, required
 *   system                 string
 *   messages               conversation, array of
 *                            {"role": "system"|"developer"|"user", "content": string}
 *                            {"role": "assistant", "content": string|null,
 *                             "tool_calls": [{"id", "name", "arguments": object|string}]}
 *                            {"role": "tool", "tool_call_id", "content": any, "is_error": bool}
 *                          (tool names are the registered names; a tool
 *                          message must answer an earlier tool call; non-string
 *                          content is sent as its JSON text, except that an
 *                          array as user content is passed through as
 *                          provider-specific content parts)
 *   prompt                 string, appended as the last user message
 *   temperature            number 0..2 (0..1 for anthropic)
 *   max_tokens             integer >= 1 (anthropic default: opts->default_max_tokens)
 *   stop                   string or array of strings
 *   response_schema        JSON Schema object: structured output
 *   response_schema_name   string (openai json_schema name, default "response")
 *   response_schema_strict boolean (openai strict mode, default false)
 *   tools                  [{"name", "description", "input_schema"}]
 *   tool_choice            "auto" | "none" | "required" | {"name": tool}
 *                          (sent only when tools are)
 *   stream                 boolean (default false)
 *   extra_body             object merged last into the body (provider-specific
 *                          parameters; its keys override the built ones)
 * Other keys are ignored.
 *
 * Structured output. openai: response_format {type: json_schema,
 * json_schema: {name, schema, strict}}, the JSON arrives as the message
 * content. anthropic: a tool named AO_LLM_STRUCTURED_TOOL whose
 * input_schema is the schema, forced with tool_choice {type: tool, name}
 * (or {type: any} when other tools are offered too, so that the model may
 * still call them); the JSON arrives as that tool's input. A schema whose
 * top level is not {"type": "object"} is sent wrapped as
 * {"type": "object", "properties": {"value": schema}, "required": ["value"]}
 * for both providers (spec.structured_wrapped); the decoder unwraps the
 * final value, while json_partial text shows the wrapper.
 *
 * Finish reasons are normalized to openai's names: anthropic end_turn and
 * stop_sequence -> "stop", max_tokens -> "length", tool_use ->
 * "tool_calls" (or "stop" when only the structured-output tool was
 * called), refusal -> "content_filter"; openai function_call ->
 * "tool_calls"; others are passed through (raw_finish_reason keeps the
 * original).
 *
 * Result JSON (ao_llm_result_to_json), which is also a valid assistant
 * message for the next request's "messages":
 *   {"role": "assistant",
 *    "content": text, or the structured-output JSON text, or null,
 *    "tool_calls": [{"id", "name", "arguments"}],   (when any)
 *    "output": structured value,                    (when structured)
 *    "refusal": text,                               (openai, when refused)
 *    "finish_reason": "stop"|"length"|"tool_calls"|"content_filter"|raw,
 *    "usage": {"input_tokens", "output_tokens", "cached_input_tokens",
 *              "cache_write_tokens"}}               (known ones only)
 *
 * Secrets: the API key only ever goes into the header lines built by
 * ao_llm_build_headers (marked secret there and wiped by
 * ao_llm_headers_free); no message produced here contains it.
 *
 * Memory: everything is malloc-backed and allocation failure aborts (see
 * ao_core.c); returned json_objects are new references the caller puts.
 * Request bodies share (reference) sub-objects of the call description,
 * such as schemas; do not modify either afterwards.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/llm/ao_llm.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_LLM_H
#define AO_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "ao_core.h"

/* ---------------------------------------------------------------------- */
/* Text safe for PostgreSQL                                               */
/* ---------------------------------------------------------------------- */

/*
 * PostgreSQL text and jsonb hold neither NUL nor ill-formed UTF-8, but a
 * provider may send both (a "\u0000" or a lone "\ud800" escape in its
 * JSON). Every JSON value the decoder parses (wire events, tool
 * arguments, structured output) is sanitized: each NUL and each byte of an
 * ill-formed UTF-8 sequence becomes U+FFFD (the replacement character).
 */
#define AO_LLM_REPLACEMENT_CHAR "\xEF\xBF\xBD"

/* Well-formed UTF-8 without NUL? */
extern bool ao_llm_text_is_clean(const char *s, size_t n);

/*
 * HTTP response headers (of an http tool or a provider) into a JSON
 * object: one "name: value" per line, names lower-cased, status lines
 * ("HTTP/...") and lines without a colon skipped, later duplicates win.
 * Adds to obj; text is modified in place.
 */
extern void ao_http_headers_into(json_object *obj, char *text);
/* A malloc'd, NUL-terminated clean copy (see above); *out_len its length. */
extern char *ao_llm_text_sanitize(const char *s, size_t n, size_t *out_len);
/* Sanitize every string and key of v in place; returns how many changed. */
extern size_t ao_llm_json_sanitize(json_object *v);

/*
 * A copy of the JSON text s[0..n) with every \u0000 escape written \ufffd
 * (malloc'd, NUL-terminated), or NULL when it has none. json-c keeps an
 * object's keys as C strings: a key with \u0000 would be cut short there
 * ("a\u0000b" and "a" one key, the later winning), so keys are cleaned
 * before parsing; values are cleaned after it (ao_llm_json_sanitize).
 */
extern char *ao_json_text_without_nul(const char *s, size_t n);

/* ---------------------------------------------------------------------- */
/* Providers                                                              */
/* ---------------------------------------------------------------------- */

typedef enum ao_llm_provider
{
	AO_LLM_OPENAI = 1,
	AO_LLM_ANTHROPIC = 2
} ao_llm_provider;

/* "openai" / "anthropic" (exact). Returns false for anything else. */
extern bool ao_llm_provider_parse(const char *name, ao_llm_provider *out);
extern const char *ao_llm_provider_name(ao_llm_provider provider);

/*
 * Path to append to the provider's base URL, following the SDKs'
 * conventions: openai "/chat/completions" (base URL ends with /v1, e.g.
 * https://api.openai.com/v1), anthropic "/v1/messages" (base URL
 * https://api.anthropic.com).
 */
extern const char *ao_llm_endpoint_path(ao_llm_provider provider);

/* ---------------------------------------------------------------------- */
/* Tool-name mapping                                                      */
/* ---------------------------------------------------------------------- */

/*
 * Provider function names must match ^[a-zA-Z0-9_-]{1,64}$ (both
 * providers). A toolmap is a bijection between registered tool names
 * ("chart.create") and wire names ("chart_create"), kept by the caller for
 * a whole conversation (ao_llm_toolmap_to_json / _from_json to persist it).
 *
 * Assignment, for names not yet in the map:
 *	1. a legal name maps to itself when that wire name is free;
 *	2. otherwise every character outside [a-zA-Z0-9_-] (a UTF-8 sequence
 *	   counts as one) becomes "_"; if the result is 1..64 characters and
 *	   free it is used;
 *	3. otherwise: the sanitized name cut to 55 bytes + "_" + 8 hex digits
 *	   of the FNV-1a hash of the registered name (re-hashed with a counter
 *	   in the unlikely case that is taken too).
 * ao_llm_toolmap_add processes legal names first and the others in byte
 * order, so the result depends only on the set of names added together
 * (and on what the map already held). The wire name AO_LLM_STRUCTURED_TOOL
 * is reserved for structured output and never assigned to a tool.
 */
#define AO_LLM_TOOL_NAME_MAX 64
#define AO_LLM_STRUCTURED_TOOL "structured_output"

typedef struct ao_llm_toolmap ao_llm_toolmap;

extern ao_llm_toolmap *ao_llm_toolmap_new(void);
extern void ao_llm_toolmap_free(ao_llm_toolmap *map);
/* Add a set of registered names (duplicates and known names are skipped). */
extern void ao_llm_toolmap_add(ao_llm_toolmap *map, const char *const *names, size_t n);
/* registered -> wire, or NULL when unknown */
extern const char *ao_llm_toolmap_wire(const ao_llm_toolmap *map, const char *name);
/* wire -> registered, or NULL when unknown (or the structured-output tool) */
extern const char *ao_llm_toolmap_name(const ao_llm_toolmap *map, const char *wire);
extern size_t ao_llm_toolmap_count(const ao_llm_toolmap *map);
/* {"registered": "wire", ...} (new reference) */
extern json_object *ao_llm_toolmap_to_json(const ao_llm_toolmap *map);
/*
 * Rebuild a map saved by ao_llm_toolmap_to_json. Problems (not an object,
 * illegal or duplicate or reserved wire names) go to cb; returns NULL when
 * there was any.
 */
extern ao_llm_toolmap *ao_llm_toolmap_from_json(json_object *obj, ao_problem_fn cb, void *arg);
extern bool ao_llm_tool_name_is_legal(const char *name);

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

/* What the decoder must know about the request it decodes the reply of. */
typedef struct ao_llm_spec
{
	ao_llm_provider provider;
	bool		stream;
	bool		structured;		/* response_schema was given */
	bool		structured_wrapped; /* the schema was wrapped in {"value": ...} */
} ao_llm_spec;

typedef struct ao_llm_request_opts
{
	int			default_max_tokens; /* anthropic max_tokens when not given; 0 = 1024 */
	bool		openai_max_completion_tokens;	/* send max_completion_tokens
												 * instead of max_tokens */
} ao_llm_request_opts;

#define AO_LLM_DEFAULT_MAX_TOKENS 1024

/*
 * Build the request body for provider from the call description. Tool
 * names (tools, tool_choice, and tool calls in messages) are added to map
 * and sent as wire names. opts may be NULL. Problems are reported with a
 * JSON pointer into call; returns their number, and on success (0) sets
 * *body (new reference) and *spec (spec may be NULL).
 */
extern int	ao_llm_build_request(ao_llm_provider provider, json_object *call,
								 ao_llm_toolmap *map, const ao_llm_request_opts *opts,
								 json_object **body, ao_llm_spec *spec,
								 ao_problem_fn cb, void *arg);

/* Serialize a body as sent: compact, "/" not escaped. Valid until body is freed. */
extern const char *ao_llm_body_text(json_object *body, size_t *len);

#define AO_LLM_ANTHROPIC_VERSION "2023-06-01"
#define AO_LLM_MAX_HEADERS 6

/*
 * Header lines ("Name: value") for curl_slist_append. The auth line
 * (openai "Authorization: Bearer <key>", anthropic "x-api-key: <key>") is
 * marked secret: print "<name>: [redacted]" if you must log it.
 */
typedef struct ao_llm_headers
{
	size_t		n;
	char	   *lines[AO_LLM_MAX_HEADERS];
	bool		secret[AO_LLM_MAX_HEADERS];
} ao_llm_headers;

/*
 * Content-Type, Accept (text/event-stream when streaming, else
 * application/json), the auth line when api_key is non-empty, and for
 * anthropic "anthropic-version: <anthropic_version or the default>".
 * Returns false (and no lines) when the key or version holds a control
 * character (CR, LF, ...), which would inject headers.
 */
extern bool ao_llm_build_headers(ao_llm_provider provider, const char *api_key,
								 const char *anthropic_version, bool stream,
								 ao_llm_headers *out);
/* Free the lines; the secret ones are zeroed first. */
extern void ao_llm_headers_free(ao_llm_headers *h);

/* ---------------------------------------------------------------------- */
/* Results and errors                                                     */
/* ---------------------------------------------------------------------- */

typedef enum ao_llm_errkind
{
	AO_LLM_ERR_NONE = 0,
	AO_LLM_ERR_HTTP,			/* non-2xx status (ao_llm_classify_http) */
	AO_LLM_ERR_TRANSPORT,		/* connection, TLS, timeout (ao_llm_classify_transport) */
	AO_LLM_ERR_PROVIDER,		/* an error reported by the provider in a 2xx body
								 * or stream */
	AO_LLM_ERR_PROTOCOL,		/* the response is not the provider's wire format */
	AO_LLM_ERR_TRUNCATED,		/* the stream ended before the end of the message */
	AO_LLM_ERR_TOO_LARGE,		/* an event or the output exceeded its limit */
	AO_LLM_ERR_OUTPUT,			/* the model's JSON (structured output, tool
								 * arguments) is invalid or incomplete */
	AO_LLM_ERR_REFUSAL			/* the model refused (openai "refusal") */
} ao_llm_errkind;

typedef struct ao_llm_error
{
	ao_llm_errkind kind;
	bool		retryable;
	long		http_status;	/* 0 when not an HTTP error */
	double		retry_after_ms; /* -1 when not given */
	char		type[64];		/* provider error type or code, "" if none */
	char		message[512];	/* human-readable, never holds the key */
} ao_llm_error;

extern const char *ao_llm_errkind_name(ao_llm_errkind kind);

/* Token counts; -1 = not reported. input_tokens includes cached ones. */
typedef struct ao_llm_usage
{
	int64_t		input_tokens;
	int64_t		output_tokens;
	int64_t		cached_input_tokens;	/* read from the prompt cache */
	int64_t		cache_write_tokens; /* anthropic cache_creation_input_tokens */
} ao_llm_usage;

typedef struct ao_llm_tool_call
{
	char	   *id;				/* provider's call id (synthesized if absent) */
	char	   *name;			/* registered name; the wire name when unknown */
	char	   *wire_name;
	bool		known;			/* the wire name is in the toolmap */
	char	   *arguments_text; /* as received ("" is read as {}) */
	json_object *arguments;		/* parsed object; NULL when invalid */
} ao_llm_tool_call;

typedef struct ao_llm_result
{
	char	   *id;				/* response id, or NULL */
	char	   *model;			/* model reported by the provider, or NULL */
	char	   *text;			/* assistant text (never NULL) */
	size_t		text_len;
	char	   *refusal;		/* openai refusal text, or NULL */
	ao_llm_tool_call *tool_calls;
	size_t		n_tool_calls;
	char	   *structured_text;	/* raw structured-output JSON text, or NULL */
	size_t		structured_len;
	json_object *structured;	/* parsed (unwrapped) value, or NULL */
	ao_llm_usage usage;
	char	   *finish_reason;	/* normalized (see ao_llm.h top), or NULL */
	char	   *raw_finish_reason;	/* as the provider sent it, or NULL */
	bool		complete;		/* the end of the message was seen */
	ao_llm_error error;			/* first error; kind NONE when fine */
} ao_llm_result;

extern void ao_llm_result_free(ao_llm_result *r);
/* See the top of this file. New reference. */
extern json_object *ao_llm_result_to_json(const ao_llm_result *r);
/* {"input_tokens", ...} with the known counts only. New reference. */
extern json_object *ao_llm_usage_to_json(const ao_llm_usage *u);

/* ---------------------------------------------------------------------- */
/* Response decoding                                                      */
/* ---------------------------------------------------------------------- */

/*
 * Callbacks (any may be NULL). Pointers are valid only during the call.
 * Tool-call index = ordinal of the call in this response (0, 1, ...).
 *   text            a text delta (not sent for structured output)
 *   tool_call_start id and names known, arguments not yet
 *   tool_call_delta a piece of the arguments JSON text
 *   tool_call_done  arguments complete (call->arguments NULL if invalid)
 *   json_partial    a piece of the structured-output JSON, and all so far
 *   json_done       the complete structured value (unwrapped)
 *   usage           the token counts so far, each time they change
 *   finish          the normalized finish reason
 *   error           an error. The result keeps the first one, except that a
 *                   fatal error (anything but OUTPUT/REFUSAL) replaces an
 *                   earlier output error, and error is then called again.
 */
typedef struct ao_llm_callbacks
{
	void		(*text) (void *arg, const char *delta, size_t len);
	void		(*tool_call_start) (void *arg, size_t index, const ao_llm_tool_call *call);
	void		(*tool_call_delta) (void *arg, size_t index, const char *delta, size_t len);
	void		(*tool_call_done) (void *arg, size_t index, const ao_llm_tool_call *call);
	void		(*json_partial) (void *arg, const char *delta, size_t len,
								 const char *so_far, size_t so_far_len);
	void		(*json_done) (void *arg, json_object *value);
	void		(*usage) (void *arg, const ao_llm_usage *usage);
	void		(*finish) (void *arg, const char *finish_reason);
	void		(*error) (void *arg, const ao_llm_error *error);
} ao_llm_callbacks;

typedef struct ao_llm_limits
{
	size_t		max_event_bytes;	/* one SSE event; 0 = AO_SSE_DEFAULT_MAX_EVENT */
	size_t		max_output_bytes;	/* text + tool arguments + structured
									 * output, and a non-SSE body; 0 = 16 MiB */
} ao_llm_limits;

typedef struct ao_llm_decoder ao_llm_decoder;

/*
 * A decoder for one response. map (may be NULL) turns wire tool names back
 * into registered names; it must outlive the decoder. cb and limits may be
 * NULL.
 */
extern ao_llm_decoder *ao_llm_decoder_new(const ao_llm_spec *spec, const ao_llm_toolmap *map,
										  const ao_llm_callbacks *cb, void *arg,
										  const ao_llm_limits *limits);
extern void ao_llm_decoder_free(ao_llm_decoder *d);

/*
 * Feed response body bytes, split anywhere. The body may be an SSE stream
 * or, when its first non-blank byte is "{", a JSON body (a non-streaming
 * reply, or a server that ignored "stream": true), decoded at finish.
 * Returns false once a fatal error occurred (the rest is ignored, so the
 * caller may abort the transfer). Errors in the model's output (invalid
 * tool arguments or structured JSON) are not fatal: decoding continues so
 * that usage and the finish reason are still collected.
 */
extern bool ao_llm_decoder_feed(ao_llm_decoder *d, const char *bytes, size_t len);

/* Feed one already-parsed SSE event (type NULL = "message"). */
extern bool ao_llm_decoder_event(ao_llm_decoder *d, const char *type,
								 const char *data, size_t len);

/*
 * End of the body: decodes a JSON body, closes open tool calls and
 * structured output, and reports AO_LLM_ERR_TRUNCATED when the message
 * did not end (no [DONE] / message_stop and no finish reason). Returns
 * true when the result is complete and has no error.
 */
extern bool ao_llm_decoder_finish(ao_llm_decoder *d);

/* The result so far (owned by the decoder). */
extern const ao_llm_result *ao_llm_decoder_result(const ao_llm_decoder *d);
/*
 * Move the result out, after finish (the caller frees it with
 * ao_llm_result_free); the decoder is then only good for freeing.
 */
extern void ao_llm_decoder_take_result(ao_llm_decoder *d, ao_llm_result *out);

/*
 * Non-streaming reply: decode a complete body into *out (which the caller
 * frees with ao_llm_result_free, also on failure). Same as a decoder fed
 * the whole body. Returns true when complete without error.
 */
extern bool ao_llm_parse_response(const ao_llm_spec *spec, const ao_llm_toolmap *map,
								  const char *body, size_t len, ao_llm_result *out);

/* ---------------------------------------------------------------------- */
/* Incremental JSON (json-c's json_tokener, strict, UTF-8 validated)       */
/* ---------------------------------------------------------------------- */

/*
 * Text is fed in pieces as it arrives; the state says whether a complete
 * value has been read. Nesting deeper than 128 levels, NUL bytes, invalid
 * UTF-8, NaN/Infinity, and anything but blanks after the value are errors.
 * json-c's strict mode still accepts single-quoted member names, raw
 * control characters inside strings and numbers such as "1."; those give
 * ordinary values and are let through.
 */

typedef enum ao_json_stream_state
{
	AO_JSON_MORE = 0,			/* valid so far, value not complete */
	AO_JSON_COMPLETE,			/* a complete value; only blanks may follow */
	AO_JSON_ERROR				/* invalid (sticky) */
} ao_json_stream_state;

typedef struct ao_json_stream ao_json_stream;

/* max_bytes = 0: no limit. */
extern ao_json_stream *ao_json_stream_new(size_t max_bytes);
extern void ao_json_stream_free(ao_json_stream *s);
extern ao_json_stream_state ao_json_stream_feed(ao_json_stream *s, const char *text, size_t len);
/* End of input: completes a top-level number or literal, or fails. */
extern ao_json_stream_state ao_json_stream_finish(ao_json_stream *s);
extern ao_json_stream_state ao_json_stream_state_of(const ao_json_stream *s);
/* All text fed so far (NUL-terminated). */
extern const char *ao_json_stream_text(const ao_json_stream *s, size_t *len);
/* The complete value (borrowed), or NULL. */
extern json_object *ao_json_stream_value(const ao_json_stream *s);
/* Why it failed ("" when it did not). */
extern const char *ao_json_stream_error(const ao_json_stream *s);

/* ---------------------------------------------------------------------- */
/* Cost                                                                   */
/* ---------------------------------------------------------------------- */

/*
 * Prices in currency units per million tokens. A negative cached or
 * cache-write price means "same as input"; ao_llm_price_init sets them so.
 */
typedef struct ao_llm_price
{
	double		input_per_mtok;
	double		output_per_mtok;
	double		cached_input_per_mtok;
	double		cache_write_per_mtok;
} ao_llm_price;

extern void ao_llm_price_init(ao_llm_price *p, double input_per_mtok, double output_per_mtok);
/*
 * From {"input_per_mtok", "output_per_mtok", "cached_input_per_mtok"?,
 * "cache_write_per_mtok"?} (non-negative numbers; the first two required).
 */
extern bool ao_llm_price_from_json(json_object *obj, ao_llm_price *out,
								   ao_problem_fn cb, void *arg);
/* Unknown counts count as 0. */
extern double ao_llm_cost(const ao_llm_price *price, const ao_llm_usage *usage);

/* ---------------------------------------------------------------------- */
/* Error classification                                                   */
/* ---------------------------------------------------------------------- */

/*
 * Retry-After value in milliseconds: delta-seconds ("120", fractions such
 * as "1.5" accepted) or an IMF-fixdate HTTP-date ("Sun, 06 Nov 1994
 * 08:49:37 GMT", relative to now_epoch_s, clamped at 0). -1 when NULL,
 * empty or unparsable. The obsolete RFC 850 and asctime date forms are
 * not supported.
 */
extern double ao_llm_parse_retry_after(const char *value, double now_epoch_s);

/*
 * Classify a non-2xx HTTP reply. Retryable: 408, 409, 429 (except
 * openai "insufficient_quota"), every 5xx (anthropic 529 overloaded
 * included). Permanent: other 4xx (400, 401, 403, 404, 413, 422, ...).
 * The message is built from the provider's error body (openai
 * {"error": {"message", "type", "code"}}, anthropic {"type": "error",
 * "error": {"type", "message"}}, or other JSON/plain text, shortened).
 * retry_after is the Retry-After header value or NULL.
 */
extern void ao_llm_classify_http(ao_llm_provider provider, long status,
								 const char *body, size_t len,
								 const char *retry_after, double now_epoch_s,
								 ao_llm_error *out);

/*
 * Classify a libcurl failure (CURLcode as int, message from
 * curl_easy_strerror or the error buffer). Retryable unless the request
 * itself or the TLS setup is wrong: unsupported protocol (1), malformed
 * URL (3), feature not built in (4), bad argument or unknown option (43,
 * 48), TLS engine, cipher, certificate, CA, issuer, pinning or client
 * certificate problems (53, 58, 59, 60, 66, 77, 83, 90, 91, 98).
 */
extern void ao_llm_classify_transport(int curl_code, const char *message, ao_llm_error *out);

/*
 * The end of one request of an llm turn, as the transport saw it: what
 * ao_llm_finish_reply decides from.
 */
typedef struct ao_llm_reply
{
	ao_llm_provider provider;
	bool		structured;		/* the step asked for structured output */
	int			curl_code;		/* the transfer's CURLcode, as int */
	const char *transport_error;	/* NULL when the transfer completed */
	long		http_status;	/* 0: no status was received */
	const char *body;			/* the body of a non-2xx reply */
	size_t		body_len;
	const char *retry_after;	/* its Retry-After header, or NULL */
	double		now_epoch_s;
} ao_llm_reply;

typedef enum ao_llm_reply_outcome
{
	AO_LLM_REPLY_FAILED,		/* *err says why: fail the attempt, or fall back */
	AO_LLM_REPLY_CUT_OFF,		/* stopped by max_tokens inside a tool call */
	AO_LLM_REPLY_TOOL_CALLS,	/* run the tool calls and ask again */
	AO_LLM_REPLY_ANSWER			/* the answer (an output error included) */
} ao_llm_reply_outcome;

/*
 * Decide what a finished request comes to, the same way for the executors
 * and agentorch-worker. A transport error or a non-2xx status fails it
 * (classified by ao_llm_classify_transport / ao_llm_classify_http);
 * otherwise the decoder is finished and its result taken into *res (the
 * caller counts its usage whatever the outcome, and frees it; *res is
 * zeroed when nothing was decoded). A transfer broken off after a clean
 * or truncated stream is the transport's failure; an error in the stream
 * fails it (retryable when the stream broke the protocol or ended early).
 * Tool calls (other than Anthropic's structured-output tool) are run --
 * unless the reply was cut off by max_tokens inside them, which is a
 * permanent failure.
 */
extern ao_llm_reply_outcome ao_llm_finish_reply(const ao_llm_reply *reply, ao_llm_decoder *decoder,
												ao_llm_result *res, ao_llm_error *err);

#endif							/* AO_LLM_H */
