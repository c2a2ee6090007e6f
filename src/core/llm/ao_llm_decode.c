/*-------------------------------------------------------------------------
 *
 * ao_llm_decode.c
 *	  The response decoder, one state machine for both providers and both
 *	  reply shapes: SSE events (ao_sse) and complete JSON bodies go through the
 *	  same internal emitters (dec_text, dec_tool_*, dec_json_*, dec_usage,
 *	  dec_finish), so a streamed reply and the same reply fetched without
 *	  streaming produce the same ao_llm_result. The provider-specific event
 *	  readers are dec_openai (ao_llm_openai.c) and dec_anthropic
 *	  (ao_llm_anthropic.c).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/llm/ao_llm_decode.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_llm_int.h"

/* ---------------------------------------------------------------------- */
/* Response decoding                                                      */
/* ---------------------------------------------------------------------- */

void
dec_error(ao_llm_decoder *d, ao_llm_errkind kind, bool retryable, const char *type,
		  const char *fmt,...)
__attribute__((format(printf, 5, 6)));

/* Record the decoder's error (the first one wins) and stop decoding. */
void
dec_error(ao_llm_decoder *d, ao_llm_errkind kind, bool retryable, const char *type,
		  const char *fmt,...)
{
	char		msg[sizeof(d->res.error.message)];
	va_list		ap;

	bool		fatal = kind != AO_LLM_ERR_OUTPUT && kind != AO_LLM_ERR_REFUSAL;

	/* the first error is kept, except that a fatal one replaces an output error */
	if (d->res.error.kind != AO_LLM_ERR_NONE && (!fatal || d->fatal))
		return;
	if (fatal)
		d->fatal = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	error_set(&d->res.error, kind, retryable, type, "%s", msg);
	if (d->cb.error)
		d->cb.error(d->arg, &d->res.error);
}

/* The HTTP status an error object is coded with (error.code or error.status as
 * a number or a string of digits, or a top-level status), or 0. */
static long
error_status(json_object *obj)
{
	json_object *err = jget(obj, "error");
	const char *const keys[] = {"code", "status", "status_code"};

	for (int k = 0; k < 3; k++)
	{
		json_object *v = jis(err, json_type_object) ? jget(err, keys[k]) : NULL;

		if (v == NULL)
			v = jget(obj, keys[k]);
		if (jis(v, json_type_int))
			return (long) json_object_get_int64(v);
		if (jis(v, json_type_string))
		{
			const char *t = json_object_get_string(v);
			size_t		n = strlen(t);

			if (n == 3 && t[0] >= '1' && t[0] <= '5' && t[1] >= '0' && t[1] <= '9' && t[2] >= '0' && t[2] <= '9')
				return atol(t);
		}
	}
	return 0;
}

/*
 * An error object the provider sent inside the reply (an SSE error event,
 * an error body).
 */
void
dec_provider_error(ao_llm_decoder *d, json_object *obj)
{
	const char *type;
	const char *code;
	const char *msg;
	const char *label;
	int			r;

	long		status;
	char		numbuf[24];

	error_fields(obj, &type, &code, &msg);
	label = code ? code : type;
	r = error_type_retryable(label);
	if (r < 0)
		r = error_type_retryable(type);
	/*
	 * An error coded with an HTTP status (OpenRouter and others send
	 * {"error": {"code": 400, ...}} inside a 200 stream) is retryable as
	 * that status would be: 408, 409, 429 and 5xx; any other 4xx is
	 * the request's fault and is not.
	 */
	status = error_status(obj);
	if (status >= 400 && status <= 599)
	{
		r = (status == 408 || status == 409 || status == 429 || status >= 500) ? 1 : 0;
		if (label == NULL)
		{
			snprintf(numbuf, sizeof(numbuf), "%ld", status);
			label = numbuf;
		}
	}
	/* unknown errors in the middle of a reply are most likely transient */
	if (label != NULL)
		dec_error(d, AO_LLM_ERR_PROVIDER, r != 0, label, "%s error (%s): %s",
				  ao_llm_provider_name(d->spec.provider), label, msg ? msg : "no message");
	else
		dec_error(d, AO_LLM_ERR_PROVIDER, r != 0, NULL, "%s error: %s",
				  ao_llm_provider_name(d->spec.provider), msg ? msg : "no message");
}

/* Account for n more bytes of model output; false (and an error) past the limit. */
bool
dec_count(ao_llm_decoder *d, size_t n)
{
	if (n > d->max_output - d->out_bytes)
	{
		dec_error(d, AO_LLM_ERR_TOO_LARGE, false, NULL,
				  "model output exceeds %zu bytes", d->max_output);
		return false;
	}
	d->out_bytes += n;
	return true;
}

/* Set a result string field once: later values do not replace it. */
void
dec_set_str(char **field, const char *value)
{
	if (*field == NULL && value != NULL)
		*field = xstrdup(value);
}

/* Text of the reply: appended to the result and passed to on_text. */
void
dec_text(ao_llm_decoder *d, const char *s, size_t n)
{
	if (d->fatal || n == 0 || !dec_count(d, n))
		return;
	ao_buf_append_n(&d->text, s, n);
	d->res.text = d->text.data;
	d->res.text_len = d->text.len;
	if (d->cb.text)
		d->cb.text(d->arg, s, n);
}

/*
 * A tool call begins (its id and wire name); returns its index, or
 * (size_t) -1 after an error.
 */
size_t
dec_tool_begin(ao_llm_decoder *d, const char *id, const char *wire, long pindex)
{
	size_t		i = d->res.n_tool_calls;
	ao_llm_tool_call *tc;
	const char *name;

	if (i >= AO_LLM_MAX_TOOL_CALLS)
	{
		dec_error(d, AO_LLM_ERR_TOO_LARGE, false, NULL,
				  "more than %d tool calls in one reply", AO_LLM_MAX_TOOL_CALLS);
		return (size_t) -1;
	}
	if (i == d->tools_cap)
	{
		d->tools_cap = d->tools_cap ? d->tools_cap * 2 : 4;
		d->res.tool_calls = xrealloc(d->res.tool_calls, d->tools_cap * sizeof(ao_llm_tool_call));
		d->tools = xrealloc(d->tools, d->tools_cap * sizeof(dec_tool));
	}
	tc = &d->res.tool_calls[i];
	memset(tc, 0, sizeof(*tc));
	if (id != NULL && id[0] != '\0')
		tc->id = xstrdup(id);
	else
	{
		char		buf[32];

		snprintf(buf, sizeof(buf), "call_%zu", i);
		tc->id = xstrdup(buf);
	}
	name = ao_llm_toolmap_name(d->map, wire);
	tc->wire_name = xstrdup(wire);
	tc->name = xstrdup(name ? name : wire);
	tc->known = name != NULL;
	ao_buf_init(&d->tools[i].args);
	d->tools[i].done = false;
	d->tools[i].pindex = pindex;
	d->res.n_tool_calls++;
	if (d->cb.tool_call_start)
		d->cb.tool_call_start(d->arg, i, tc);
	return i;
}

/* More argument text of tool call i. */
void
dec_tool_args(ao_llm_decoder *d, size_t i, const char *s, size_t n)
{
	if (d->fatal || i >= d->res.n_tool_calls || n == 0)
		return;
	if (d->tools[i].done)
	{
		dec_error(d, AO_LLM_ERR_PROTOCOL, true, NULL,
				  "arguments for tool call %zu arrived after the call ended", i);
		return;
	}
	if (!dec_count(d, n))
		return;
	ao_buf_append_n(&d->tools[i].args, s, n);
	if (d->cb.tool_call_delta)
		d->cb.tool_call_delta(d->arg, i, s, n);
}

/*
 * Tool call i is complete: parse its arguments and pass it to
 * on_tool_call_done.
 */
void
dec_tool_end(ao_llm_decoder *d, size_t i)
{
	ao_llm_tool_call *tc;
	dec_tool   *t;
	char		err[160];

	if (i >= d->res.n_tool_calls || d->tools[i].done)
		return;
	tc = &d->res.tool_calls[i];
	t = &d->tools[i];
	t->done = true;
	tc->arguments_text = xstrndup(t->args.data, t->args.len);
	if (is_blank(t->args.data, t->args.len))
		tc->arguments = json_object_new_object();
	else
	{
		json_object *v = parse_strict(d->tok, t->args.data, t->args.len, err, sizeof(err));

		if (v != NULL && !jis(v, json_type_object))
		{
			json_object_put(v);
			v = NULL;
			snprintf(err, sizeof(err), "not a JSON object");
		}
		tc->arguments = v;
		if (v == NULL)
			dec_error(d, AO_LLM_ERR_OUTPUT, true, NULL,
					  "arguments of tool call \"%s\" are invalid: %s", tc->name, err);
	}
	if (d->cb.tool_call_done)
		d->cb.tool_call_done(d->arg, i, tc);
}

/*
 * The structured output is complete: unwrap it when wrapped and pass it on
 * once.
 */
static void
dec_json_value(ao_llm_decoder *d)
{
	json_object *v = ao_json_stream_value(d->js);

	if (d->json_value_emitted)
		return;
	d->json_value_emitted = true;
	if (d->spec.structured_wrapped)
	{
		json_object *inner = NULL;

		if (!jis(v, json_type_object) || !json_object_object_get_ex(v, "value", &inner))
		{
			dec_error(d, AO_LLM_ERR_OUTPUT, true, NULL,
					  "structured output lacks the \"value\" member of its wrapper");
			return;
		}
		v = inner;
	}
	(void) ao_llm_json_sanitize(v);
	d->res.structured = json_object_get(v);
	if (d->cb.json_done)
		d->cb.json_done(d->arg, v);
}

/*
 * More text of the structured output (partial JSON passed to
 * on_json_partial).
 */
void
dec_json_feed(ao_llm_decoder *d, const char *s, size_t n)
{
	ao_json_stream_state st;
	const char *all;
	size_t		all_len;

	if (d->fatal || n == 0)
		return;
	if (d->js == NULL)
		d->js = ao_json_stream_new(0);
	if (ao_json_stream_state_of(d->js) == AO_JSON_ERROR || !dec_count(d, n))
		return;
	st = ao_json_stream_feed(d->js, s, n);
	if (st == AO_JSON_ERROR)
	{
		dec_error(d, AO_LLM_ERR_OUTPUT, true, NULL, "structured output is not valid JSON: %s",
				  ao_json_stream_error(d->js));
		return;
	}
	all = ao_json_stream_text(d->js, &all_len);
	if (d->cb.json_partial)
		d->cb.json_partial(d->arg, s, n, all, all_len);
	if (st == AO_JSON_COMPLETE)
		dec_json_value(d);
}

/* The structured output is over: complete it or report why it is not. */
static void
dec_json_end(ao_llm_decoder *d)
{
	bool		cut;
	const char *text;
	size_t		len;

	if (d->json_ended || !d->spec.structured)
		return;
	d->json_ended = true;
	cut = d->res.finish_reason != NULL && strcmp(d->res.finish_reason, "length") == 0;
	if (d->js == NULL)
	{
		if (d->res.n_tool_calls > 0 || d->fatal)
			return;				/* the model called tools first */
		if (d->refusal.len > 0)
			dec_error(d, AO_LLM_ERR_REFUSAL, false, NULL, "the model refused: %s", d->refusal.data);
		else if (cut)
			dec_error(d, AO_LLM_ERR_OUTPUT, false, NULL,
					  "no structured output: the reply was cut off by max_tokens");
		else
			dec_error(d, AO_LLM_ERR_OUTPUT, true, NULL, "the reply has no structured output");
		return;
	}
	text = ao_json_stream_text(d->js, &len);
	d->res.structured_text = xstrndup(text, len);
	d->res.structured_len = len;
	if (ao_json_stream_state_of(d->js) == AO_JSON_ERROR)
		return;					/* reported when it happened */
	if (ao_json_stream_finish(d->js) == AO_JSON_COMPLETE)
		dec_json_value(d);
	else if (cut)
		dec_error(d, AO_LLM_ERR_OUTPUT, false, NULL,
				  "structured output was cut off by max_tokens: %s", ao_json_stream_error(d->js));
	else
		dec_error(d, AO_LLM_ERR_OUTPUT, true, NULL, "structured output is not valid JSON: %s",
				  ao_json_stream_error(d->js));
}

/* The message is over: end open tool calls and the structured output. */
void
dec_close(ao_llm_decoder *d)
{
	if (d->closed || d->fatal)
		return;
	d->closed = true;
	for (size_t i = 0; i < d->res.n_tool_calls; i++)
		dec_tool_end(d, i);
	if (d->refusal.len > 0 && d->res.refusal == NULL)
		d->res.refusal = xstrndup(d->refusal.data, d->refusal.len);
	if (d->spec.structured)
		dec_json_end(d);
	else if (d->refusal.len > 0 && d->text.len == 0 && d->res.n_tool_calls == 0)
		dec_error(d, AO_LLM_ERR_REFUSAL, false, NULL, "the model refused: %s", d->refusal.data);
}

/*
 * Record the provider's finish reason, mapped to
 * stop/length/tool_calls/content_filter.
 */
void
dec_finish_reason(ao_llm_decoder *d, const char *raw)
{
	const char *norm = raw;

	if (d->fatal || d->finish_seen)
		return;
	d->finish_seen = true;
	if (d->spec.provider == AO_LLM_ANTHROPIC)
	{
		if (strcmp(raw, "end_turn") == 0 || strcmp(raw, "stop_sequence") == 0)
			norm = "stop";
		else if (strcmp(raw, "max_tokens") == 0 ||
				 strcmp(raw, "model_context_window_exceeded") == 0)
			norm = "length";
		else if (strcmp(raw, "tool_use") == 0)
			norm = d->res.n_tool_calls > 0 ? "tool_calls" : "stop";
		else if (strcmp(raw, "refusal") == 0)
			norm = "content_filter";
	}
	else if (strcmp(raw, "function_call") == 0)
		norm = "tool_calls";
	d->res.raw_finish_reason = xstrdup(raw);
	d->res.finish_reason = xstrdup(norm);
	dec_close(d);
	if (d->cb.finish && !d->fatal)
		d->cb.finish(d->arg, d->res.finish_reason);
}

/* A token count member: >= 0 when present and an integer. */
int64_t
jcount(json_object *obj, const char *key)
{
	json_object *v = jget(obj, key);

	if (!jis(v, json_type_int) || json_object_get_int64(v) < 0)
		return -1;
	return json_object_get_int64(v);
}

/* Record token counts (negative: not reported, keeps what is known). */
void
dec_usage(ao_llm_decoder *d, int64_t in, int64_t out, int64_t cached, int64_t written)
{
	ao_llm_usage *u = &d->res.usage;

	if (in < 0 && out < 0 && cached < 0 && written < 0)
		return;
	if (in >= 0)
		u->input_tokens = in;
	if (out >= 0)
		u->output_tokens = out;
	if (cached >= 0)
		u->cached_input_tokens = cached;
	if (written >= 0)
		u->cache_write_tokens = written;
	if (d->cb.usage)
		d->cb.usage(d->arg, u);
}

/* The string value and length of a member, or NULL. */
const char *
jstrlen(json_object *obj, const char *key, size_t *len)
{
	json_object *v = jget(obj, key);

	if (!jis(v, json_type_string))
		return NULL;
	*len = (size_t) json_object_get_string_len(v);
	return json_object_get_string(v);
}

/* Arguments given as text (usual) or as an object (some servers). */
void
dec_tool_args_value(ao_llm_decoder *d, size_t i, json_object *args)
{
	if (jis(args, json_type_string))
		dec_tool_args(d, i, json_object_get_string(args), (size_t) json_object_get_string_len(args));
	else if (jis(args, json_type_object))
	{
		size_t		len;
		const char *t = json_object_to_json_string_length(args, JSON_TEXT_FLAGS, &len);

		dec_tool_args(d, i, t, len);
	}
}

/* Parse the JSON of one SSE data field; NULL (and an error) when malformed. */
static json_object *
dec_parse_wire(ao_llm_decoder *d, const char *data, size_t len, const char *what)
{
	char		err[160];
	json_object *obj = parse_strict(d->tok, data, len, err, sizeof(err));

	if (obj == NULL)
	{
		dec_error(d, AO_LLM_ERR_PROTOCOL, true, NULL, "malformed JSON in %s: %s", what, err);
		return NULL;
	}
	if (!jis(obj, json_type_object))
	{
		json_object_put(obj);
		dec_error(d, AO_LLM_ERR_PROTOCOL, true, NULL, "%s is not a JSON object", what);
		return NULL;
	}
	return obj;
}

/* Decode one SSE event of the reply (type may be NULL for OpenAI). */
bool
ao_llm_decoder_event(ao_llm_decoder *d, const char *type, const char *data, size_t len)
{
	json_object *obj;

	if (d->fatal || d->finished)
		return !d->fatal;
	if (len == 0 || is_blank(data, len))
		return true;
	if (d->spec.provider == AO_LLM_OPENAI && len == 6 && memcmp(data, "[DONE]", 6) == 0)
	{
		d->saw_end = true;
		dec_close(d);
		return !d->fatal;
	}
	obj = dec_parse_wire(d, data, len, "server-sent event data");
	if (obj == NULL)
		return false;
	if (d->spec.provider == AO_LLM_ANTHROPIC)
		dec_anthropic(d, type, obj);
	else
		dec_openai(d, obj);
	json_object_put(obj);
	return !d->fatal;
}

/*
 * ao_sse callback: one event to the decoder; non-zero stops the parser
 * after an error.
 */
static int
dec_sse_event(void *arg, const ao_sse_event *ev)
{
	ao_llm_decoder *d = arg;

	ao_llm_decoder_event(d, ev->type, ev->data, ev->data_len);
	return d->fatal ? 1 : 0;
}

/* A complete (non-streamed) JSON body. */
static void
dec_json_body(ao_llm_decoder *d)
{
	json_object *obj = dec_parse_wire(d, d->body.data, d->body.len, "response body");
	const char *s;
	size_t		len;

	if (obj == NULL)
		return;
	if (jget(obj, "error") != NULL ||
		(jstr(obj, "type") != NULL && strcmp(jstr(obj, "type"), "error") == 0))
	{
		dec_provider_error(d, obj);
		json_object_put(obj);
		return;
	}
	if (d->spec.provider == AO_LLM_OPENAI)
	{
		json_object *choices = jget(obj, "choices");

		if (!jis(choices, json_type_array) || json_object_array_length(choices) == 0)
		{
			if (jstr(obj, "message") != NULL || jstr(obj, "detail") != NULL)
				dec_provider_error(d, obj);
			else
				dec_error(d, AO_LLM_ERR_PROTOCOL, true, NULL, "response has no \"choices\"");
			json_object_put(obj);
			return;
		}
		dec_openai(d, obj);
	}
	else
	{
		json_object *content = jget(obj, "content");

		if (!jis(content, json_type_array))
		{
			dec_error(d, AO_LLM_ERR_PROTOCOL, true, NULL, "response has no \"content\" array");
			json_object_put(obj);
			return;
		}
		dec_set_str(&d->res.id, jstr(obj, "id"));
		dec_set_str(&d->res.model, jstr(obj, "model"));
		dec_anthropic_usage(d, jget(obj, "usage"));
		for (size_t i = 0; i < json_object_array_length(content) && !d->fatal; i++)
		{
			json_object *b = json_object_array_get_idx(content, i);
			const char *btype = jstr(b, "type");

			if (btype == NULL)
				continue;
			if (strcmp(btype, "text") == 0 && (s = jstrlen(b, "text", &len)) != NULL)
				dec_text(d, s, len);
			else if (strcmp(btype, "tool_use") == 0)
			{
				const char *name = jstr(b, "name");
				json_object *input = jget(b, "input");
				const char *t;

				if (name == NULL || name[0] == '\0')
				{
					dec_error(d, AO_LLM_ERR_PROTOCOL, true, NULL, "tool_use block without a name");
					break;
				}
				t = input ? json_object_to_json_string_length(input, JSON_TEXT_FLAGS, &len) : "{}";
				if (input == NULL)
					len = 2;
				if (d->spec.structured && !d->struct_block_seen &&
					strcmp(name, AO_LLM_STRUCTURED_TOOL) == 0)
				{
					d->struct_block_seen = true;
					dec_json_feed(d, t, len);
				}
				else
				{
					size_t		k = dec_tool_begin(d, jstr(b, "id"), name, -1);

					if (k == (size_t) -1)
						break;
					dec_tool_args(d, k, t, len);
					dec_tool_end(d, k);
				}
			}
		}
		if ((s = jstr(obj, "stop_reason")) != NULL)
			dec_finish_reason(d, s);
	}
	if (!d->fatal)
	{
		d->saw_end = true;
		dec_close(d);
	}
	json_object_put(obj);
}

/*
 * A decoder for the reply of a request built with spec and map, calling cb
 * with arg.
 */
ao_llm_decoder *
ao_llm_decoder_new(const ao_llm_spec *spec, const ao_llm_toolmap *map,
				   const ao_llm_callbacks *cb, void *arg, const ao_llm_limits *limits)
{
	ao_llm_decoder *d = ao_calloc(1, sizeof(*d));

	d->spec = *spec;
	d->map = map;
	if (cb != NULL)
		d->cb = *cb;
	d->arg = arg;
	d->max_event = limits && limits->max_event_bytes ? limits->max_event_bytes : AO_SSE_DEFAULT_MAX_EVENT;
	d->max_output = limits && limits->max_output_bytes ? limits->max_output_bytes : AO_LLM_DEFAULT_MAX_OUTPUT;
	d->sse = ao_sse_new(d->max_event, dec_sse_event, d);
	d->tok = new_tokener();
	ao_buf_init(&d->body);
	ao_buf_init(&d->text);
	ao_buf_init(&d->refusal);
	usage_init(&d->res.usage);
	d->res.error.retry_after_ms = -1;
	d->res.text = d->text.data;
	return d;
}

/* Free the decoder's per-tool-call state. */
static void
dec_free_tools(ao_llm_decoder *d)
{
	for (size_t i = 0; i < d->res.n_tool_calls; i++)
		ao_buf_free(&d->tools[i].args);
	free(d->tools);
	d->tools = NULL;
	d->tools_cap = 0;
}

/* Free a decoder and its result (NULL is allowed). */
void
ao_llm_decoder_free(ao_llm_decoder *d)
{
	if (d == NULL)
		return;
	ao_sse_free(d->sse);
	json_tokener_free(d->tok);
	ao_json_stream_free(d->js);
	dec_free_tools(d);
	for (size_t i = 0; i < d->nblocks; i++)
		free(d->blocks[i].start_input);
	free(d->blocks);
	d->res.text = NULL;			/* owned by d->text */
	ao_llm_result_free(&d->res);
	ao_buf_free(&d->body);
	ao_buf_free(&d->text);
	ao_buf_free(&d->refusal);
	free(d);
}

/*
 * Feed response bytes (SSE or a JSON body, decided from the first non-blank
 * byte); false after an error.
 */
bool
ao_llm_decoder_feed(ao_llm_decoder *d, const char *bytes, size_t len)
{
	if (d->fatal || d->finished || len == 0)
		return !d->fatal;
	if (d->mode == MODE_UNDECIDED)
	{
		size_t		i = 0;

		while (i < len && (bytes[i] == ' ' || bytes[i] == '\t' || bytes[i] == '\r' || bytes[i] == '\n'))
			i++;
		if (i < len)
			d->mode = (bytes[i] == '{' || bytes[i] == '[') ? MODE_JSON : MODE_SSE;
		else if (d->body.len + len > 4096)
			d->mode = MODE_SSE; /* only blank lines so far: it is no JSON body */
		if (d->mode == MODE_SSE && d->body.len > 0)
		{
			/* the blank prefix held back belongs to the stream */
			ao_sse_feed(d->sse, d->body.data, d->body.len);
			ao_buf_reset(&d->body);
		}
	}
	if (d->mode == MODE_SSE)
	{
		if (ao_sse_feed(d->sse, bytes, len) == AO_SSE_TOO_LARGE)
			dec_error(d, AO_LLM_ERR_TOO_LARGE, false, NULL,
					  "a server-sent event exceeds %zu bytes", d->max_event);
	}
	else
	{
		if (len > d->max_output || d->body.len > d->max_output - len)
			dec_error(d, AO_LLM_ERR_TOO_LARGE, false, NULL,
					  "response body exceeds %zu bytes", d->max_output);
		else
			ao_buf_append_n(&d->body, bytes, len);
	}
	return !d->fatal;
}

/* The response ended: finish decoding and check it was complete. */
bool
ao_llm_decoder_finish(ao_llm_decoder *d)
{
	if (!d->finished)
	{
		d->finished = true;
		if (!d->fatal && d->mode == MODE_JSON)
			dec_json_body(d);
		else if (!d->fatal && d->mode == MODE_SSE)
			(void) ao_sse_finish(d->sse);	/* a cut event is caught below */
		if (!d->fatal)
		{
			if (d->saw_end || d->finish_seen)
				dec_close(d);
			else if (d->mode == MODE_UNDECIDED)
				dec_error(d, AO_LLM_ERR_TRUNCATED, true, NULL, "empty response body");
			else
				dec_error(d, AO_LLM_ERR_TRUNCATED, true, NULL, "%s",
						  d->spec.provider == AO_LLM_OPENAI ?
						  "stream ended before [DONE] or a finish reason" :
						  "stream ended before message_stop");
		}
		d->res.complete = !d->fatal && (d->saw_end || d->finish_seen);
	}
	return d->res.complete && d->res.error.kind == AO_LLM_ERR_NONE;
}

/* The result so far (borrowed). */
const ao_llm_result *
ao_llm_decoder_result(const ao_llm_decoder *d)
{
	return &d->res;
}

/* Move the result out of the decoder into *out. */
void
ao_llm_decoder_take_result(ao_llm_decoder *d, ao_llm_result *out)
{
	*out = d->res;
	out->text = d->text.data;
	out->text_len = d->text.len;
	ao_buf_init(&d->text);
	dec_free_tools(d);
	memset(&d->res, 0, sizeof(d->res));
	usage_init(&d->res.usage);
	d->res.error.retry_after_ms = -1;
	d->res.text = d->text.data;
	d->finished = true;
}

/* Decode a complete response body in one call. */
bool
ao_llm_parse_response(const ao_llm_spec *spec, const ao_llm_toolmap *map,
					  const char *body, size_t len, ao_llm_result *out)
{
	ao_llm_decoder *d = ao_llm_decoder_new(spec, map, NULL, NULL, NULL);
	bool		ok;

	ao_llm_decoder_feed(d, body, len);
	ok = ao_llm_decoder_finish(d);
	ao_llm_decoder_take_result(d, out);
	ao_llm_decoder_free(d);
	return ok;
}
