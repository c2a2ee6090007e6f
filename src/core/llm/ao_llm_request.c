/*-------------------------------------------------------------------------
 *
 * ao_llm_request.c
 *	  Requests: the provider-neutral call description is checked
 *	  (messages, tools, structured output) and handed to the provider's
 *	  builder (ao_llm_openai.c, ao_llm_anthropic.c); the content helpers both
 *	  builders use; the request body text and headers.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/llm/ao_llm_request.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_llm_int.h"

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

typedef struct req_ctx
{
	ao_problem_fn cb;
	void	   *arg;
	int			n;
} req_ctx;

static void
req_problem(req_ctx *c, const char *path, const char *fmt,...)
__attribute__((format(printf, 3, 4)));

/* Report a problem of the call description at a path. */
static void
req_problem(req_ctx *c, const char *path, const char *fmt,...)
{
	char		msg[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->n++;
	if (c->cb)
		c->cb(c->arg, path, msg);
}

/* Is v a json number (int or double)? */
bool
is_number(json_object *v)
{
	return jis(v, json_type_int) || jis(v, json_type_double);
}

/* Is the tool call id answered already known among ids (object used as a set)? */
static void
check_tool_call(req_ctx *c, json_object *tc, const char *path, json_object *ids,
				json_object *names)
{
	char		p[200];
	const char *id = jstr(tc, "id");
	const char *name = jstr(tc, "name");
	json_object *args = jget(tc, "arguments");

	if (!jis(tc, json_type_object))
	{
		req_problem(c, path, "tool call must be an object");
		return;
	}
	snprintf(p, sizeof(p), "%s/id", path);
	if (id == NULL || id[0] == '\0')
		req_problem(c, p, "tool call needs an \"id\" string");
	else
		json_object_object_add(ids, id, NULL);
	snprintf(p, sizeof(p), "%s/name", path);
	if (name == NULL || name[0] == '\0')
		req_problem(c, p, "tool call needs a \"name\" string");
	else
		json_object_object_add(names, name, NULL);
	snprintf(p, sizeof(p), "%s/arguments", path);
	if (args != NULL && !jis(args, json_type_object))
	{
		if (jis(args, json_type_string))
		{
			struct json_tokener *tok = new_tokener();
			char		err[128];
			json_object *v = parse_strict(tok, json_object_get_string(args),
										  (size_t) json_object_get_string_len(args),
										  err, sizeof(err));

			if (v == NULL)
				req_problem(c, p, "arguments text is not valid JSON: %s", err);
			else if (!jis(v, json_type_object))
				req_problem(c, p, "arguments must be a JSON object");
			json_object_put(v);
			json_tokener_free(tok);
		}
		else
			req_problem(c, p, "arguments must be an object or its JSON text");
	}
}

/*
 * Validate the call description; collects every tool name it mentions into
 * names (an object used as an ordered set).
 */
static void
validate_call(req_ctx *c, ao_llm_provider provider, json_object *call, json_object *names)
{
	json_object *v;
	json_object *tools = jget(call, "tools");
	json_object *msgs = jget(call, "messages");
	json_object *ids = json_object_new_object();
	json_object *offered = json_object_new_object();
	bool		have_turn = false;
	char		p[160];

	v = jget(call, "model");
	if (!jis(v, json_type_string) || json_object_get_string_len(v) == 0)
		req_problem(c, "/model", "\"model\" must be a non-empty string");
	v = jget(call, "system");
	if (v != NULL && !jis(v, json_type_string))
		req_problem(c, "/system", "\"system\" must be a string");
	v = jget(call, "prompt");
	if (v != NULL && !jis(v, json_type_string))
		req_problem(c, "/prompt", "\"prompt\" must be a string");
	if (jis(v, json_type_string))
		have_turn = true;
	v = jget(call, "stream");
	if (v != NULL && !jis(v, json_type_boolean))
		req_problem(c, "/stream", "\"stream\" must be a boolean");
	v = jget(call, "temperature");
	if (v != NULL)
	{
		double		t = json_object_get_double(v);
		double		max = provider == AO_LLM_ANTHROPIC ? 1.0 : 2.0;

		if (!is_number(v) || isnan(t) || t < 0 || t > max)
			req_problem(c, "/temperature", "\"temperature\" must be a number from 0 to %g for %s",
						max, ao_llm_provider_name(provider));
	}
	v = jget(call, "max_tokens");
	if (v != NULL && (!jis(v, json_type_int) || json_object_get_int64(v) < 1 ||
					  json_object_get_int64(v) > INT32_MAX))
		req_problem(c, "/max_tokens", "\"max_tokens\" must be a positive integer");
	v = jget(call, "stop");
	if (v != NULL && !jis(v, json_type_string))
	{
		bool		ok = jis(v, json_type_array);

		for (size_t i = 0; ok && i < json_object_array_length(v); i++)
			ok = jis(json_object_array_get_idx(v, i), json_type_string);
		if (!ok)
			req_problem(c, "/stop", "\"stop\" must be a string or an array of strings");
	}
	v = jget(call, "extra_body");
	if (v != NULL && !jis(v, json_type_object))
		req_problem(c, "/extra_body", "\"extra_body\" must be an object");

	/* structured output */
	v = jget(call, "response_schema");
	if (v != NULL && !jis(v, json_type_object))
		req_problem(c, "/response_schema", "\"response_schema\" must be a JSON Schema object");
	v = jget(call, "response_schema_name");
	if (v != NULL && (!jis(v, json_type_string) || json_object_get_string_len(v) == 0))
		req_problem(c, "/response_schema_name", "\"response_schema_name\" must be a non-empty string");
	v = jget(call, "response_schema_strict");
	if (v != NULL && !jis(v, json_type_boolean))
		req_problem(c, "/response_schema_strict", "\"response_schema_strict\" must be a boolean");

	/* tools */
	if (tools != NULL && !jis(tools, json_type_array))
		req_problem(c, "/tools", "\"tools\" must be an array");
	else if (tools != NULL)
	{
		for (size_t i = 0; i < json_object_array_length(tools); i++)
		{
			json_object *t = json_object_array_get_idx(tools, i);
			const char *name = jstr(t, "name");
			json_object *d = jget(t, "description");
			json_object *s = jget(t, "input_schema");

			snprintf(p, sizeof(p), "/tools/%zu", i);
			if (!jis(t, json_type_object))
			{
				req_problem(c, p, "tool must be an object");
				continue;
			}
			snprintf(p, sizeof(p), "/tools/%zu/name", i);
			if (name == NULL || name[0] == '\0')
				req_problem(c, p, "tool needs a \"name\" string");
			else if (json_object_object_get_ex(offered, name, NULL))
				req_problem(c, p, "tool \"%s\" is listed twice", name);
			else
			{
				json_object_object_add(offered, name, NULL);
				json_object_object_add(names, name, NULL);
			}
			snprintf(p, sizeof(p), "/tools/%zu/description", i);
			if (d != NULL && !jis(d, json_type_string))
				req_problem(c, p, "\"description\" must be a string");
			snprintf(p, sizeof(p), "/tools/%zu/input_schema", i);
			if (s != NULL && !jis(s, json_type_object))
				req_problem(c, p, "\"input_schema\" must be a JSON Schema object");
		}
	}
	v = jget(call, "tool_choice");
	if (v != NULL)
	{
		const char *s = jis(v, json_type_string) ? json_object_get_string(v) : NULL;
		const char *name = jstr(v, "name");

		if (s != NULL)
		{
			if (strcmp(s, "auto") != 0 && strcmp(s, "none") != 0 && strcmp(s, "required") != 0)
				req_problem(c, "/tool_choice", "\"tool_choice\" must be \"auto\", \"none\", \"required\" or {\"name\": tool}");
			else if (strcmp(s, "required") == 0 && json_object_object_length(offered) == 0)
				req_problem(c, "/tool_choice", "\"tool_choice\" \"required\" needs \"tools\"");
		}
		else if (name == NULL)
			req_problem(c, "/tool_choice", "\"tool_choice\" must be \"auto\", \"none\", \"required\" or {\"name\": tool}");
		else if (!json_object_object_get_ex(offered, name, NULL))
			req_problem(c, "/tool_choice/name", "tool \"%s\" is not in \"tools\"", name);
	}

	/* messages */
	if (msgs != NULL && !jis(msgs, json_type_array))
		req_problem(c, "/messages", "\"messages\" must be an array");
	else if (msgs != NULL)
	{
		for (size_t i = 0; i < json_object_array_length(msgs); i++)
		{
			json_object *m = json_object_array_get_idx(msgs, i);
			const char *role = jstr(m, "role");
			json_object *content = jget(m, "content");

			snprintf(p, sizeof(p), "/messages/%zu", i);
			if (!jis(m, json_type_object))
			{
				req_problem(c, p, "message must be an object");
				continue;
			}
			snprintf(p, sizeof(p), "/messages/%zu/role", i);
			if (role == NULL)
			{
				req_problem(c, p, "message needs a \"role\"");
				continue;
			}
			if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
				continue;
			if (strcmp(role, "user") == 0)
			{
				have_turn = true;
				continue;
			}
			if (strcmp(role, "assistant") == 0)
			{
				json_object *tcs = jget(m, "tool_calls");

				have_turn = true;
				snprintf(p, sizeof(p), "/messages/%zu/content", i);
				if (content != NULL && !jis(content, json_type_string))
					req_problem(c, p, "assistant \"content\" must be a string or null");
				snprintf(p, sizeof(p), "/messages/%zu/tool_calls", i);
				if (tcs != NULL && !jis(tcs, json_type_array))
					req_problem(c, p, "\"tool_calls\" must be an array");
				else if (tcs != NULL)
				{
					for (size_t k = 0; k < json_object_array_length(tcs); k++)
					{
						snprintf(p, sizeof(p), "/messages/%zu/tool_calls/%zu", i, k);
						check_tool_call(c, json_object_array_get_idx(tcs, k), p, ids, names);
					}
				}
				continue;
			}
			if (strcmp(role, "tool") == 0)
			{
				const char *id = jstr(m, "tool_call_id");
				json_object *ie = jget(m, "is_error");

				have_turn = true;
				snprintf(p, sizeof(p), "/messages/%zu/tool_call_id", i);
				if (id == NULL)
					req_problem(c, p, "tool message needs a \"tool_call_id\" string");
				else if (!json_object_object_get_ex(ids, id, NULL))
					req_problem(c, p, "tool result \"%s\" answers no earlier tool call", id);
				snprintf(p, sizeof(p), "/messages/%zu/is_error", i);
				if (ie != NULL && !jis(ie, json_type_boolean))
					req_problem(c, p, "\"is_error\" must be a boolean");
				continue;
			}
			req_problem(c, p, "unknown role \"%s\" (use system, user, assistant or tool)", role);
		}
	}
	if (!have_turn)
		req_problem(c, "", "llm call needs a \"prompt\" or \"messages\" with a user turn");
	json_object_put(ids);
	json_object_put(offered);
}

/* Content of a user/system message for the wire: strings and arrays as is. */
json_object *
content_value(json_object *content)
{
	if (content == NULL)
		return json_object_new_string("");
	if (jis(content, json_type_string) || jis(content, json_type_array))
		return json_object_get(content);
	return json_text_string(content);
}

/* A tool call's arguments as an object (validated before). */
json_object *
args_object(json_object *args)
{
	if (args == NULL)
		return json_object_new_object();
	if (jis(args, json_type_object))
		return json_object_get(args);
	return json_tokener_parse(json_object_get_string(args));
}

/* A tool call's arguments as JSON text (openai). */
json_object *
args_text(json_object *args)
{
	if (args == NULL)
		return json_object_new_string("{}");
	if (jis(args, json_type_string))
		return json_object_get(args);
	return json_text_string(args);
}

/* The wire name of a tool (the name itself when the map does not know it). */
const char *
wire_of(const ao_llm_toolmap *map, const char *name)
{
	const char *w = ao_llm_toolmap_wire(map, name);

	return w ? w : name;
}

/* Schema for structured output, wrapped when its top level is not an object. */
json_object *
structured_schema(json_object *schema, bool *wrapped)
{
	json_object *w;
	json_object *props;
	json_object *req;
	const char *type = jstr(schema, "type");

	if (type != NULL && strcmp(type, "object") == 0)
	{
		*wrapped = false;
		return json_object_get(schema);
	}
	*wrapped = true;
	w = json_object_new_object();
	props = json_object_new_object();
	req = json_object_new_array();
	json_object_object_add(w, "type", json_object_new_string("object"));
	json_object_object_add(props, "value", json_object_get(schema));
	json_object_object_add(w, "properties", props);
	json_object_array_add(req, json_object_new_string("value"));
	json_object_object_add(w, "required", req);
	json_object_object_add(w, "additionalProperties", json_object_new_boolean(0));
	return w;
}

/* The input schema of a tool that gives none: any object. */
json_object *
default_input_schema(void)
{
	json_object *s = json_object_new_object();

	json_object_object_add(s, "type", json_object_new_string("object"));
	json_object_object_add(s, "properties", json_object_new_object());
	return s;
}

/*
 * Check a call description and build the provider's request body; returns
 * the number of problems reported (ao_llm.h).
 */
int
ao_llm_build_request(ao_llm_provider provider, json_object *call,
					 ao_llm_toolmap *map, const ao_llm_request_opts *opts,
					 json_object **body, ao_llm_spec *spec,
					 ao_problem_fn cb, void *arg)
{
	req_ctx		c = {cb, arg, 0};
	json_object *names;
	json_object *extra;
	ao_llm_spec sp;
	ao_llm_request_opts defaults = {0, false};
	ao_llm_toolmap *tmp = NULL;

	*body = NULL;
	if (provider != AO_LLM_OPENAI && provider != AO_LLM_ANTHROPIC)
	{
		req_problem(&c, "", "unknown LLM provider");
		return c.n;
	}
	if (!jis(call, json_type_object))
	{
		req_problem(&c, "", "llm call must be a JSON object");
		return c.n;
	}
	names = json_object_new_object();
	validate_call(&c, provider, call, names);
	if (c.n > 0)
	{
		json_object_put(names);
		return c.n;
	}

	/* map every tool name the call mentions, as one set */
	if (map == NULL)
		map = tmp = ao_llm_toolmap_new();
	{
		size_t		n = (size_t) json_object_object_length(names);
		const char **list = ao_calloc(n, sizeof(char *));
		size_t		k = 0;
		struct json_object_iter it;

		json_object_object_foreachC(names, it)
			list[k++] = it.key;
		ao_llm_toolmap_add(map, list, k);
		free(list);
	}
	json_object_put(names);

	memset(&sp, 0, sizeof(sp));
	sp.provider = provider;
	sp.stream = json_object_get_boolean(jget(call, "stream"));
	sp.structured = jget(call, "response_schema") != NULL;
	if (opts == NULL)
		opts = &defaults;
	*body = provider == AO_LLM_OPENAI ? build_openai(call, map, opts, &sp)
		: build_anthropic(call, map, opts, &sp);
	if ((extra = jget(call, "extra_body")) != NULL)
	{
		struct json_object_iter it;

		json_object_object_foreachC(extra, it)
			json_object_object_add(*body, it.key, json_object_get(it.val));
	}
	if (spec != NULL)
		*spec = sp;
	ao_llm_toolmap_free(tmp);
	return 0;
}

/* The JSON text of a request body, as sent. */
const char *
ao_llm_body_text(json_object *body, size_t *len)
{
	size_t		l;
	const char *t = json_object_to_json_string_length(body, JSON_TEXT_FLAGS, &l);

	if (len)
		*len = l;
	return t;
}

/* ---------------------------------------------------------------------- */
/* Headers                                                                */
/* ---------------------------------------------------------------------- */

/* May the text go into an HTTP header (no control characters)? */
static bool
header_value_ok(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char) *s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static void
header_add(ao_llm_headers *h, bool secret, const char *fmt,...)
__attribute__((format(printf, 3, 4)));

/* Add a formatted header line; a secret one is wiped when freed. */
static void
header_add(ao_llm_headers *h, bool secret, const char *fmt,...)
{
	va_list		ap;
	int			n;
	char	   *line;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	line = ao_malloc((size_t) n + 1);
	va_start(ap, fmt);
	vsnprintf(line, (size_t) n + 1, fmt, ap);
	va_end(ap);
	h->secret[h->n] = secret;
	h->lines[h->n++] = line;
}

/*
 * The provider's request headers (content type, key, version); false when a
 * value is unsafe.
 */
bool
ao_llm_build_headers(ao_llm_provider provider, const char *api_key,
					 const char *anthropic_version, bool stream,
					 ao_llm_headers *out)
{
	memset(out, 0, sizeof(*out));
	if (!header_value_ok(api_key) || !header_value_ok(anthropic_version))
		return false;
	header_add(out, false, "Content-Type: application/json");
	header_add(out, false, "Accept: %s", stream ? "text/event-stream" : "application/json");
	if (provider == AO_LLM_ANTHROPIC)
	{
		if (api_key != NULL && api_key[0] != '\0')
			header_add(out, true, "x-api-key: %s", api_key);
		header_add(out, false, "anthropic-version: %s",
				   anthropic_version && anthropic_version[0] ? anthropic_version :
				   AO_LLM_ANTHROPIC_VERSION);
	}
	else if (api_key != NULL && api_key[0] != '\0')
		header_add(out, true, "Authorization: Bearer %s", api_key);
	return true;
}

/* Free header lines, wiping the secret ones first. */
void
ao_llm_headers_free(ao_llm_headers *h)
{
	for (size_t i = 0; i < h->n; i++)
	{
		if (h->secret[i])
		{
			volatile char *p = h->lines[i];

			while (*p)
				*p++ = '\0';
		}
		free(h->lines[i]);
		h->lines[i] = NULL;
	}
	h->n = 0;
}
