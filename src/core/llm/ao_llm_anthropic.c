/*-------------------------------------------------------------------------
 *
 * ao_llm_anthropic.c
 *	  The Anthropic Messages wire format: the request body (system apart,
 *	  alternating roles merged, tool_use/tool_result blocks, the
 *	  structured-output tool) and the decoding of its replies (SSE events
 *	  message_start, content_block_start/delta/stop, message_delta,
 *	  message_stop, error; or one complete JSON body).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/llm/ao_llm_anthropic.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_llm_int.h"

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

/* Append an anthropic message, merging it into the previous one of the same role. */
static void
anthropic_push(json_object *out, const char *role, json_object *content)
{
	size_t		n = json_object_array_length(out);
	json_object *last = n > 0 ? json_object_array_get_idx(out, n - 1) : NULL;
	json_object *m;

	if (last != NULL && strcmp(jstr(last, "role"), role) == 0)
	{
		json_object *prev = jget(last, "content");
		json_object *blocks = json_object_new_array();
		json_object *parts[2] = {prev, content};

		for (int k = 0; k < 2; k++)
		{
			json_object *c = parts[k];

			if (jis(c, json_type_array))
			{
				for (size_t i = 0; i < json_object_array_length(c); i++)
					json_object_array_add(blocks, json_object_get(json_object_array_get_idx(c, i)));
			}
			else
			{
				json_object *b = json_object_new_object();

				json_object_object_add(b, "type", json_object_new_string("text"));
				json_object_object_add(b, "text", json_object_get(c));
				json_object_array_add(blocks, b);
			}
		}
		json_object_put(content);
		json_object_object_add(last, "content", blocks);
		return;
	}
	m = json_object_new_object();
	json_object_object_add(m, "role", json_object_new_string(role));
	json_object_object_add(m, "content", content);
	json_object_array_add(out, m);
}

/*
 * The Anthropic Messages request body of a checked call; fills *spec for
 * the decoder.
 */
json_object *
build_anthropic(json_object *call, const ao_llm_toolmap *map, const ao_llm_request_opts *opts,
				ao_llm_spec *spec)
{
	json_object *body = json_object_new_object();
	json_object *out = json_object_new_array();
	json_object *msgs = jget(call, "messages");
	json_object *tools = jget(call, "tools");
	json_object *schema = jget(call, "response_schema");
	json_object *choice = jget(call, "tool_choice");
	json_object *wtools = json_object_new_array();
	json_object *v;
	ao_buf		system;
	const char *prompt = jstr(call, "prompt");
	const char *choice_s = jis(choice, json_type_string) ? json_object_get_string(choice) : NULL;
	size_t		ntools = tools ? json_object_array_length(tools) : 0;

	ao_buf_init(&system);
	if (jstr(call, "system") != NULL)
		ao_buf_append(&system, jstr(call, "system"));
	for (size_t i = 0; msgs != NULL && i < json_object_array_length(msgs); i++)
	{
		json_object *m = json_object_array_get_idx(msgs, i);
		const char *role = jstr(m, "role");
		json_object *content = jget(m, "content");

		if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
		{
			char	   *t = content ? json_text_dup(content) : xstrdup("");

			if (system.len > 0)
				ao_buf_append(&system, "\n\n");
			ao_buf_append(&system, t);
			free(t);
		}
		else if (strcmp(role, "user") == 0)
			anthropic_push(out, "user", content_value(content));
		else if (strcmp(role, "assistant") == 0)
		{
			json_object *tcs = jget(m, "tool_calls");
			size_t		ncalls = tcs ? json_object_array_length(tcs) : 0;

			if (ncalls == 0)
				anthropic_push(out, "assistant", content ? json_object_get(content) :
							   json_object_new_string(""));
			else
			{
				json_object *blocks = json_object_new_array();

				if (content != NULL && json_object_get_string_len(content) > 0)
				{
					json_object *b = json_object_new_object();

					json_object_object_add(b, "type", json_object_new_string("text"));
					json_object_object_add(b, "text", json_object_get(content));
					json_object_array_add(blocks, b);
				}
				for (size_t k = 0; k < ncalls; k++)
				{
					json_object *tc = json_object_array_get_idx(tcs, k);
					json_object *b = json_object_new_object();

					json_object_object_add(b, "type", json_object_new_string("tool_use"));
					json_object_object_add(b, "id", json_object_get(jget(tc, "id")));
					json_object_object_add(b, "name", json_object_new_string(wire_of(map, jstr(tc, "name"))));
					json_object_object_add(b, "input", args_object(jget(tc, "arguments")));
					json_object_array_add(blocks, b);
				}
				anthropic_push(out, "assistant", blocks);
			}
		}
		else
		{
			/* tool result: a tool_result block in a user message */
			json_object *blocks = json_object_new_array();
			json_object *b = json_object_new_object();

			json_object_object_add(b, "type", json_object_new_string("tool_result"));
			json_object_object_add(b, "tool_use_id", json_object_get(jget(m, "tool_call_id")));
			json_object_object_add(b, "content", jis(content, json_type_string) ?
								   json_object_get(content) :
								   content == NULL ? json_object_new_string("") :
								   json_text_string(content));
			if (json_object_get_boolean(jget(m, "is_error")))
				json_object_object_add(b, "is_error", json_object_new_boolean(1));
			json_object_array_add(blocks, b);
			anthropic_push(out, "user", blocks);
		}
	}
	if (prompt != NULL)
		anthropic_push(out, "user", json_object_get(jget(call, "prompt")));

	json_object_object_add(body, "model", json_object_get(jget(call, "model")));
	if (system.len > 0)
		json_object_object_add(body, "system", json_object_new_string_len(system.data, (int) system.len));
	ao_buf_free(&system);
	json_object_object_add(body, "messages", out);
	if ((v = jget(call, "max_tokens")) != NULL)
		json_object_object_add(body, "max_tokens", json_object_get(v));
	else
		json_object_object_add(body, "max_tokens",
							   json_object_new_int(opts->default_max_tokens > 0 ?
												   opts->default_max_tokens :
												   AO_LLM_DEFAULT_MAX_TOKENS));
	if ((v = jget(call, "temperature")) != NULL)
		json_object_object_add(body, "temperature", json_object_get(v));
	if ((v = jget(call, "stop")) != NULL)
	{
		if (jis(v, json_type_string))
		{
			json_object *arr = json_object_new_array();

			json_object_array_add(arr, json_object_get(v));
			json_object_object_add(body, "stop_sequences", arr);
		}
		else
			json_object_object_add(body, "stop_sequences", json_object_get(v));
	}
	for (size_t i = 0; i < ntools; i++)
	{
		json_object *t = json_object_array_get_idx(tools, i);
		json_object *wt = json_object_new_object();
		json_object *s = jget(t, "input_schema");

		json_object_object_add(wt, "name", json_object_new_string(wire_of(map, jstr(t, "name"))));
		if ((v = jget(t, "description")) != NULL)
			json_object_object_add(wt, "description", json_object_get(v));
		json_object_object_add(wt, "input_schema", s ? json_object_get(s) : default_input_schema());
		json_object_array_add(wtools, wt);
	}
	if (schema != NULL)
	{
		json_object *wt = json_object_new_object();
		json_object *tc = json_object_new_object();
		bool		others = ntools > 0 && (choice_s == NULL || strcmp(choice_s, "none") != 0);

		json_object_object_add(wt, "name", json_object_new_string(AO_LLM_STRUCTURED_TOOL));
		json_object_object_add(wt, "description",
							   json_object_new_string("Give the final answer: call this tool with the answer as its input, "
													  "which must follow the input schema."));
		json_object_object_add(wt, "input_schema", structured_schema(schema, &spec->structured_wrapped));
		json_object_array_add(wtools, wt);
		if (choice != NULL && choice_s == NULL)
		{
			/* a named tool is forced this turn */
			json_object_object_add(tc, "type", json_object_new_string("tool"));
			json_object_object_add(tc, "name", json_object_new_string(wire_of(map, jstr(choice, "name"))));
		}
		else if (others)
			json_object_object_add(tc, "type", json_object_new_string("any"));
		else
		{
			json_object_object_add(tc, "type", json_object_new_string("tool"));
			json_object_object_add(tc, "name", json_object_new_string(AO_LLM_STRUCTURED_TOOL));
		}
		json_object_object_add(body, "tools", wtools);
		json_object_object_add(body, "tool_choice", tc);
	}
	else
	{
		if (ntools > 0)
			json_object_object_add(body, "tools", wtools);
		else
			json_object_put(wtools);
		if (choice != NULL && ntools > 0)
		{
			json_object *tc = json_object_new_object();

			if (choice_s == NULL)
			{
				json_object_object_add(tc, "type", json_object_new_string("tool"));
				json_object_object_add(tc, "name", json_object_new_string(wire_of(map, jstr(choice, "name"))));
			}
			else
				json_object_object_add(tc, "type", json_object_new_string(strcmp(choice_s, "required") == 0 ? "any" : choice_s));
			json_object_object_add(body, "tool_choice", tc);
		}
	}
	if (spec->stream)
		json_object_object_add(body, "stream", json_object_new_boolean(1));
	return body;
}

/* ---------------------------------------------------------------------- */
/* Response decoding                                                      */
/* ---------------------------------------------------------------------- */

/*
 * Record an Anthropic usage object (message_start, message_delta, a JSON
 * body).
 */
void
dec_anthropic_usage(ao_llm_decoder *d, json_object *u)
{
	int64_t		in = jcount(u, "input_tokens");
	int64_t		w = jcount(u, "cache_creation_input_tokens");
	int64_t		r = jcount(u, "cache_read_input_tokens");
	int64_t		total = -1;

	if (!jis(u, json_type_object))
		return;
	/* anthropic's input_tokens excludes the cache; ours includes it */
	if (in >= 0 || w >= 0 || r >= 0)
		total = (in > 0 ? in : 0) + (w > 0 ? w : 0) + (r > 0 ? r : 0);
	dec_usage(d, total, jcount(u, "output_tokens"), r, w);
}

/*
 * The content block an event names by "index" (created when create); NULL
 * after a protocol error.
 */
static dec_block *
dec_block_at(ao_llm_decoder *d, json_object *obj, bool create)
{
	json_object *jidx = jget(obj, "index");
	int64_t		idx = jis(jidx, json_type_int) ? json_object_get_int64(jidx) : -1;

	if (idx < 0 || idx >= AO_LLM_MAX_BLOCKS)
	{
		dec_error(d, AO_LLM_ERR_PROTOCOL, true, NULL, "content block event without a valid index");
		return NULL;
	}
	if ((size_t) idx >= d->nblocks)
	{
		if (!create)
		{
			dec_error(d, AO_LLM_ERR_PROTOCOL, true, NULL,
					  "event for content block %lld, which was not started", (long long) idx);
			return NULL;
		}
		d->blocks = xrealloc(d->blocks, (size_t) (idx + 1) * sizeof(dec_block));
		memset(d->blocks + d->nblocks, 0, ((size_t) idx + 1 - d->nblocks) * sizeof(dec_block));
		d->nblocks = (size_t) idx + 1;
	}
	if (create && d->blocks[idx].kind != BLK_NONE)
	{
		dec_error(d, AO_LLM_ERR_PROTOCOL, true, NULL, "content block %lld started twice", (long long) idx);
		return NULL;
	}
	if (!create && d->blocks[idx].kind == BLK_NONE)
	{
		dec_error(d, AO_LLM_ERR_PROTOCOL, true, NULL,
				  "event for content block %lld, which was not started", (long long) idx);
		return NULL;
	}
	return &d->blocks[idx];
}

/*
 * content_block_start: what kind of block begins (text, tool_use, the
 * structured-output tool, or ignored).
 */
static void
dec_anthropic_block_start(ao_llm_decoder *d, json_object *obj)
{
	json_object *cb = jget(obj, "content_block");
	const char *btype = jstr(cb, "type");
	dec_block  *b = dec_block_at(d, obj, true);
	const char *s;
	size_t		len;

	if (b == NULL)
		return;
	b->kind = BLK_IGNORE;
	if (btype != NULL && strcmp(btype, "text") == 0)
	{
		b->kind = BLK_TEXT;
		if ((s = jstrlen(cb, "text", &len)) != NULL)
			dec_text(d, s, len);
	}
	else if (btype != NULL && strcmp(btype, "tool_use") == 0)
	{
		const char *name = jstr(cb, "name");
		json_object *input = jget(cb, "input");

		if (name == NULL || name[0] == '\0')
		{
			dec_error(d, AO_LLM_ERR_PROTOCOL, true, NULL, "tool_use block without a name");
			return;
		}
		if (jis(input, json_type_object) && json_object_object_length(input) > 0)
			b->start_input = json_text_dup(input);
		if (d->spec.structured && !d->struct_block_seen &&
			strcmp(name, AO_LLM_STRUCTURED_TOOL) == 0)
		{
			b->kind = BLK_STRUCT;
			d->struct_block_seen = true;
		}
		else
		{
			size_t		i = dec_tool_begin(d, jstr(cb, "id"), name, -1);

			if (i == (size_t) -1)
				return;
			b->kind = BLK_TOOL;
			b->tool = i;
		}
	}
}

/*
 * Decode one Anthropic event (an SSE event by type, or a whole JSON body
 * with sse_type NULL).
 */
void
dec_anthropic(ao_llm_decoder *d, const char *sse_type, json_object *obj)
{
	const char *type = jstr(obj, "type");

	if (type == NULL)
		type = sse_type ? sse_type : "";
	if (strcmp(type, "message_start") == 0)
	{
		json_object *m = jget(obj, "message");

		dec_set_str(&d->res.id, jstr(m, "id"));
		dec_set_str(&d->res.model, jstr(m, "model"));
		dec_anthropic_usage(d, jget(m, "usage"));
	}
	else if (strcmp(type, "content_block_start") == 0)
		dec_anthropic_block_start(d, obj);
	else if (strcmp(type, "content_block_delta") == 0)
	{
		dec_block  *b = dec_block_at(d, obj, false);
		json_object *delta = jget(obj, "delta");
		const char *dtype = jstr(delta, "type");
		const char *s;
		size_t		len;

		if (b == NULL || dtype == NULL)
			return;
		if (strcmp(dtype, "text_delta") == 0 && b->kind == BLK_TEXT &&
			(s = jstrlen(delta, "text", &len)) != NULL)
			dec_text(d, s, len);
		else if (strcmp(dtype, "input_json_delta") == 0 &&
				 (s = jstrlen(delta, "partial_json", &len)) != NULL)
		{
			if (b->kind == BLK_TOOL)
				dec_tool_args(d, b->tool, s, len);
			else if (b->kind == BLK_STRUCT)
				dec_json_feed(d, s, len);
		}
		/* thinking_delta, signature_delta, citations_delta: not ours */
	}
	else if (strcmp(type, "content_block_stop") == 0)
	{
		dec_block  *b = dec_block_at(d, obj, false);

		if (b == NULL)
			return;
		if (b->kind == BLK_TOOL)
		{
			if (d->tools[b->tool].args.len == 0 && b->start_input != NULL)
				dec_tool_args(d, b->tool, b->start_input, strlen(b->start_input));
			dec_tool_end(d, b->tool);
		}
		else if (b->kind == BLK_STRUCT && d->js == NULL && b->start_input != NULL)
			dec_json_feed(d, b->start_input, strlen(b->start_input));
		/* the structured output is ended with the message (see dec_close) */
	}
	else if (strcmp(type, "message_delta") == 0)
	{
		const char *stop = jstr(jget(obj, "delta"), "stop_reason");

		dec_anthropic_usage(d, jget(obj, "usage"));
		if (stop != NULL)
			dec_finish_reason(d, stop);
	}
	else if (strcmp(type, "message_stop") == 0)
	{
		d->saw_end = true;
		dec_close(d);
	}
	else if (strcmp(type, "error") == 0)
		dec_provider_error(d, obj);
	/* ping and unknown events are ignored */
}
