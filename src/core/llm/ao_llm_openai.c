/*-------------------------------------------------------------------------
 *
 * ao_llm_openai.c
 *	  The OpenAI-compatible chat completions wire format: the request body
 *	  (messages, tools, response_format or the structured-output tool,
 *	  stream_options) and the decoding of its replies (streamed chunks with
 *	  choices[0].delta and a final usage chunk, or one complete JSON body).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/llm/ao_llm_openai.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_llm_int.h"

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

/*
 * The OpenAI chat completions request body of a checked call; fills *spec
 * for the decoder.
 */
json_object *
build_openai(json_object *call, const ao_llm_toolmap *map, const ao_llm_request_opts *opts,
			 ao_llm_spec *spec)
{
	json_object *body = json_object_new_object();
	json_object *out = json_object_new_array();
	json_object *msgs = jget(call, "messages");
	json_object *tools = jget(call, "tools");
	json_object *schema = jget(call, "response_schema");
	json_object *choice = jget(call, "tool_choice");
	json_object *v;
	const char *system = jstr(call, "system");
	const char *prompt = jstr(call, "prompt");

	json_object_object_add(body, "model", json_object_get(jget(call, "model")));
	if (system != NULL)
	{
		json_object *m = json_object_new_object();

		json_object_object_add(m, "role", json_object_new_string("system"));
		json_object_object_add(m, "content", json_object_get(jget(call, "system")));
		json_object_array_add(out, m);
	}
	for (size_t i = 0; msgs != NULL && i < json_object_array_length(msgs); i++)
	{
		json_object *m = json_object_array_get_idx(msgs, i);
		const char *role = jstr(m, "role");
		json_object *content = jget(m, "content");
		json_object *o = json_object_new_object();

		if (strcmp(role, "assistant") == 0)
		{
			json_object *tcs = jget(m, "tool_calls");
			bool		has_calls = tcs != NULL && json_object_array_length(tcs) > 0;

			json_object_object_add(o, "role", json_object_new_string("assistant"));
			if (content != NULL && (json_object_get_string_len(content) > 0 || !has_calls))
				json_object_object_add(o, "content", json_object_get(content));
			else
				json_object_object_add(o, "content", has_calls ? NULL : json_object_new_string(""));
			if (has_calls)
			{
				json_object *arr = json_object_new_array();

				for (size_t k = 0; k < json_object_array_length(tcs); k++)
				{
					json_object *tc = json_object_array_get_idx(tcs, k);
					json_object *wtc = json_object_new_object();
					json_object *fn = json_object_new_object();

					json_object_object_add(wtc, "id", json_object_get(jget(tc, "id")));
					json_object_object_add(wtc, "type", json_object_new_string("function"));
					json_object_object_add(fn, "name", json_object_new_string(wire_of(map, jstr(tc, "name"))));
					json_object_object_add(fn, "arguments", args_text(jget(tc, "arguments")));
					json_object_object_add(wtc, "function", fn);
					json_object_array_add(arr, wtc);
				}
				json_object_object_add(o, "tool_calls", arr);
			}
		}
		else if (strcmp(role, "tool") == 0)
		{
			json_object_object_add(o, "role", json_object_new_string("tool"));
			json_object_object_add(o, "tool_call_id", json_object_get(jget(m, "tool_call_id")));
			json_object_object_add(o, "content", jis(content, json_type_string) ?
								   json_object_get(content) :
								   content == NULL ? json_object_new_string("") :
								   json_text_string(content));
		}
		else
		{
			json_object_object_add(o, "role", json_object_new_string(role));
			json_object_object_add(o, "content", strcmp(role, "user") == 0 ?
								   content_value(content) :
								   jis(content, json_type_string) ? json_object_get(content) :
								   content == NULL ? json_object_new_string("") :
								   json_text_string(content));
		}
		json_object_array_add(out, o);
	}
	if (prompt != NULL)
	{
		json_object *m = json_object_new_object();

		json_object_object_add(m, "role", json_object_new_string("user"));
		json_object_object_add(m, "content", json_object_get(jget(call, "prompt")));
		json_object_array_add(out, m);
	}
	json_object_object_add(body, "messages", out);

	if ((v = jget(call, "temperature")) != NULL)
		json_object_object_add(body, "temperature", json_object_get(v));
	if ((v = jget(call, "max_tokens")) != NULL)
		json_object_object_add(body, opts->openai_max_completion_tokens ?
							   "max_completion_tokens" : "max_tokens", json_object_get(v));
	if ((v = jget(call, "stop")) != NULL)
		json_object_object_add(body, "stop", json_object_get(v));
	if (tools != NULL && json_object_array_length(tools) > 0)
	{
		json_object *arr = json_object_new_array();

		for (size_t i = 0; i < json_object_array_length(tools); i++)
		{
			json_object *t = json_object_array_get_idx(tools, i);
			json_object *wt = json_object_new_object();
			json_object *fn = json_object_new_object();
			json_object *s = jget(t, "input_schema");

			json_object_object_add(wt, "type", json_object_new_string("function"));
			json_object_object_add(fn, "name", json_object_new_string(wire_of(map, jstr(t, "name"))));
			if ((v = jget(t, "description")) != NULL)
				json_object_object_add(fn, "description", json_object_get(v));
			json_object_object_add(fn, "parameters", s ? json_object_get(s) : default_input_schema());
			json_object_object_add(wt, "function", fn);
			json_object_array_add(arr, wt);
		}
		json_object_object_add(body, "tools", arr);
	}
	if (choice != NULL && tools != NULL && json_object_array_length(tools) > 0)
	{
		if (jis(choice, json_type_string))
			json_object_object_add(body, "tool_choice", json_object_get(choice));
		else
		{
			json_object *tc = json_object_new_object();
			json_object *fn = json_object_new_object();

			json_object_object_add(tc, "type", json_object_new_string("function"));
			json_object_object_add(fn, "name", json_object_new_string(wire_of(map, jstr(choice, "name"))));
			json_object_object_add(tc, "function", fn);
			json_object_object_add(body, "tool_choice", tc);
		}
	}
	if (schema != NULL)
	{
		json_object *rf = json_object_new_object();
		json_object *js = json_object_new_object();
		const char *name = jstr(call, "response_schema_name");
		json_object *strict = jget(call, "response_schema_strict");
		ao_buf		nb;

		ao_buf_init(&nb);
		sanitize_name(name ? name : "response", &nb);
		ao_buf_truncate(&nb, AO_LLM_TOOL_NAME_MAX);
		json_object_object_add(rf, "type", json_object_new_string("json_schema"));
		json_object_object_add(js, "name", json_object_new_string(nb.data));
		json_object_object_add(js, "schema", structured_schema(schema, &spec->structured_wrapped));
		json_object_object_add(js, "strict", json_object_new_boolean(strict ? json_object_get_boolean(strict) : 0));
		json_object_object_add(rf, "json_schema", js);
		json_object_object_add(body, "response_format", rf);
		ao_buf_free(&nb);
	}
	if (spec->stream)
	{
		json_object *so = json_object_new_object();

		json_object_object_add(body, "stream", json_object_new_boolean(1));
		json_object_object_add(so, "include_usage", json_object_new_boolean(1));
		json_object_object_add(body, "stream_options", so);
	}
	return body;
}

/* ---------------------------------------------------------------------- */
/* Response decoding                                                      */
/* ---------------------------------------------------------------------- */

/* Record an OpenAI usage object (the final stream chunk, a JSON body). */
static void
dec_openai_usage(ao_llm_decoder *d, json_object *u)
{
	if (!jis(u, json_type_object))
		return;
	dec_usage(d, jcount(u, "prompt_tokens"), jcount(u, "completion_tokens"),
			  jcount(jget(u, "prompt_tokens_details"), "cached_tokens"), -1);
}

/*
 * One entry of delta.tool_calls (or message.tool_calls when whole): begin,
 * extend or end a tool call.
 */
static void
dec_openai_tool_delta(ao_llm_decoder *d, json_object *tc, bool whole)
{
	json_object *jidx = jget(tc, "index");
	json_object *fn = jget(tc, "function");
	const char *id = jstr(tc, "id");
	const char *name = jstr(fn, "name");
	size_t		n = d->res.n_tool_calls;
	long		pidx;
	size_t		i;

	if (whole)
		pidx = -1 - (long) n;	/* a complete message: every entry is a call */
	else if (jis(jidx, json_type_int))
		pidx = (long) json_object_get_int64(jidx);
	else if (n > 0 && (id == NULL || strcmp(id, d->res.tool_calls[n - 1].id) == 0))
		pidx = d->tools[n - 1].pindex;	/* no index: continues the last call */
	else
		pidx = -1 - (long) n;	/* no index: a new call */
	for (i = n; i > 0; i--)
		if (d->tools[i - 1].pindex == pidx)
			break;
	if (i == 0)
	{
		/* a new call: the previous ones are complete */
		for (size_t k = 0; k < n; k++)
			dec_tool_end(d, k);
		if (name == NULL || name[0] == '\0')
		{
			dec_error(d, AO_LLM_ERR_PROTOCOL, true, NULL,
					  "tool call %ld starts without a function name", pidx);
			return;
		}
		i = dec_tool_begin(d, id, name, pidx);
		if (i == (size_t) -1)
			return;
	}
	else
		i--;
	dec_tool_args_value(d, i, jget(fn, "arguments"));
}

/*
 * Decode one OpenAI chunk or JSON body: choices[0] delta or message, finish
 * reason, usage, errors.
 */
void
dec_openai(ao_llm_decoder *d, json_object *obj)
{
	json_object *choices = jget(obj, "choices");

	if (jget(obj, "error") != NULL)
	{
		/* an error chunk may still say what the request cost (OpenRouter) */
		dec_openai_usage(d, jget(obj, "usage"));
		dec_provider_error(d, obj);
		return;
	}
	dec_set_str(&d->res.id, jstr(obj, "id"));
	dec_set_str(&d->res.model, jstr(obj, "model"));
	for (size_t c = 0; jis(choices, json_type_array) && c < json_object_array_length(choices); c++)
	{
		json_object *ch = json_object_array_get_idx(choices, c);
		json_object *idx = jget(ch, "index");
		json_object *delta = jget(ch, "delta");
		bool		whole = delta == NULL;
		json_object *tcs;
		const char *s;
		size_t		len = 0;

		if (idx != NULL && json_object_get_int64(idx) != 0)
			continue;			/* only the first choice is used */
		if (whole)
			delta = jget(ch, "message");	/* a complete (non-streamed) choice */
		if ((s = jstrlen(delta, "content", &len)) != NULL)
		{
			if (d->spec.structured)
				dec_json_feed(d, s, len);
			else
				dec_text(d, s, len);
		}
		if ((s = jstrlen(delta, "refusal", &len)) != NULL && dec_count(d, len))
			ao_buf_append_n(&d->refusal, s, len);
		tcs = jget(delta, "tool_calls");
		for (size_t k = 0; jis(tcs, json_type_array) && k < json_object_array_length(tcs); k++)
			dec_openai_tool_delta(d, json_object_array_get_idx(tcs, k), whole);
		if ((s = jstr(ch, "finish_reason")) != NULL)
			dec_finish_reason(d, s);
	}
	dec_openai_usage(d, jget(obj, "usage"));
}
