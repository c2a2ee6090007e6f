/*-------------------------------------------------------------------------
 *
 * ao_llm_common.c
 *	  Shared parts of the LLM wire code: small json-c helpers, text made
 *	  safe for PostgreSQL (no NUL, well-formed UTF-8), provider names and
 *	  endpoints, the tool-name mapping (agentorch names <-> wire names both
 *	  providers accept), incremental JSON of structured output, error
 *	  classification (HTTP status, transport, Retry-After), results, usage and
 *	  cost.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/llm/ao_llm_common.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_llm_int.h"

/* ---------------------------------------------------------------------- */
/* Small helpers                                                          */
/* ---------------------------------------------------------------------- */

/*
 * malloc'd copy of n bytes of s, NUL-terminated (allocation failure aborts,
 * ao_core.h).
 */
char *
xstrndup(const char *s, size_t n)
{
	char	   *r = ao_malloc(n + 1);

	memcpy(r, s, n);
	r[n] = '\0';
	return r;
}

/* malloc'd copy of a C string. */
char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

/* realloc that never returns NULL (allocation failure aborts). */
void *
xrealloc(void *p, size_t n)
{
	return ao_realloc(p, n);
}

/* Member of an object, or NULL (also for JSON null and non-objects). */
json_object *
jget(json_object *obj, const char *key)
{
	json_object *v = NULL;

	if (obj == NULL || !json_object_is_type(obj, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(obj, key, &v))
		return NULL;
	return v;
}

/* String member, or NULL. */
const char *
jstr(json_object *obj, const char *key)
{
	json_object *v = jget(obj, key);

	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Is v (possibly NULL) of json type t? */
bool
jis(json_object *v, json_type t)
{
	return v != NULL && json_object_is_type(v, t);
}

/* Are the n bytes at s only white space? */
bool
is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* Copy src into dst (size cap), replacing control characters by spaces. */
static void
copy_printable(char *dst, size_t cap, const char *src, size_t n)
{
	size_t		o = 0;
	size_t		i;

	for (i = 0; i < n && o + 1 < cap; i++)
	{
		unsigned char c = (unsigned char) src[i];

		dst[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char) c;
	}
	/* cut short: do not leave half a UTF-8 sequence at the end */
	if (i < n)
	{
		size_t		k = o;

		while (k > 0 && ((unsigned char) dst[k - 1] & 0xC0) == 0x80)
			k--;
		if (k > 0 && (unsigned char) dst[k - 1] >= 0xC0)
		{
			unsigned char lead = (unsigned char) dst[k - 1];
			size_t		need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;

			if (o - (k - 1) < need)
				o = k - 1;
		}
	}
	dst[o] = '\0';
}

/* JSON text of any value (new malloc'ed string). */
char *
json_text_dup(json_object *v)
{
	size_t		len;
	const char *t;

	if (jis(v, json_type_string))
		return xstrdup(json_object_get_string(v));
	t = json_object_to_json_string_length(v, JSON_TEXT_FLAGS, &len);
	return xstrndup(t, len);
}

/* New JSON string with the JSON text of v. */
json_object *
json_text_string(json_object *v)
{
	size_t		len;
	const char *t = json_object_to_json_string_length(v, JSON_TEXT_FLAGS, &len);

	return json_object_new_string_len(t, (int) len);
}

/*
 * json-c's strict mode still reads NaN, Infinity and -Infinity; they are
 * not JSON (and jsonb refuses them), so a parsed value holding one is
 * rejected. (Its other leniencies, single-quoted member names, raw control
 * characters in strings and "1.", yield ordinary values and are accepted.)
 */
static bool
has_nonfinite(json_object *v)
{
	if (json_object_is_type(v, json_type_double))
		return !isfinite(json_object_get_double(v));
	if (json_object_is_type(v, json_type_array))
	{
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (has_nonfinite(json_object_array_get_idx(v, i)))
				return true;
	}
	else if (json_object_is_type(v, json_type_object))
	{
		struct json_object_iter it;

		json_object_object_foreachC(v, it)
		{
			if (has_nonfinite(it.val))
				return true;
		}
	}
	return false;
}

/* ---------------------------------------------------------------------- */
/* Text safe for PostgreSQL                                               */
/* ---------------------------------------------------------------------- */

/*
 * Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0
 * when it is not one: overlong forms, surrogates (U+D800..U+DFFF) and
 * code points above U+10FFFF are not well-formed (RFC 3629). NUL is
 * well-formed here; callers treat it separately.
 */
static size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF)
	{
		unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
		unsigned char hi = c == 0xED ? 0x9F : 0xBF;

		return (n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80) ? 3 : 0;
	}
	if (c >= 0xF0 && c <= 0xF4)
	{
		unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
		unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;

		return (n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 &&
				(s[3] & 0xC0) == 0x80) ? 4 : 0;
	}
	return 0;
}

/* See ao_llm.h. */
void
ao_http_headers_into(json_object *obj, char *text)
{
	char	   *save = NULL;

	for (char *line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save))
	{
		char	   *colon = strchr(line, ':');

		if (colon == NULL || strncmp(line, "HTTP/", 5) == 0)
			continue;
		*colon++ = '\0';
		for (char *c = line; *c; c++)
			*c = (char) (*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
		while (*colon == ' ')
			colon++;
		json_object_object_add(obj, line, json_object_new_string(colon));
	}
}

/* Is the text free of NUL bytes and well-formed UTF-8? (ao_llm.h) */
bool
ao_llm_text_is_clean(const char *s, size_t n)
{
	size_t		i = 0;

	while (i < n)
	{
		size_t		l;

		if (s[i] == '\0')
			return false;
		l = utf8_seq_len((const unsigned char *) s + i, n - i);
		if (l == 0)
			return false;
		i += l;
	}
	return true;
}

/*
 * A malloc'd copy without NUL bytes and with ill-formed UTF-8 replaced
 * (ao_llm.h).
 */
char *
ao_llm_text_sanitize(const char *s, size_t n, size_t *out_len)
{
	ao_buf		b;
	size_t		i = 0;

	ao_buf_init(&b);
	while (i < n)
	{
		size_t		l = s[i] == '\0' ? 0 : utf8_seq_len((const unsigned char *) s + i, n - i);

		if (l == 0)
		{
			ao_buf_append_n(&b, AO_LLM_REPLACEMENT_CHAR, 3);
			i++;
			continue;
		}
		ao_buf_append_n(&b, s + i, l);
		i += l;
	}
	if (out_len)
		*out_len = b.len;
	if (b.data == NULL)
		return xstrdup("");
	return b.data;
}

/* Make every string of a json value clean text, in place (ao_llm.h). */
size_t
ao_llm_json_sanitize(json_object *v)
{
	size_t		changed = 0;

	if (v == NULL)
		return 0;
	switch (json_object_get_type(v))
	{
		case json_type_string:
			{
				const char *s = json_object_get_string(v);
				size_t		n = (size_t) json_object_get_string_len(v);

				if (!ao_llm_text_is_clean(s, n))
				{
					size_t		len;
					char	   *clean = ao_llm_text_sanitize(s, n, &len);

					json_object_set_string_len(v, clean, (int) len);
					free(clean);
					changed++;
				}
				break;
			}
		case json_type_array:
			for (size_t i = 0; i < json_object_array_length(v); i++)
				changed += ao_llm_json_sanitize(json_object_array_get_idx(v, i));
			break;
		case json_type_object:
			{
				/* keys cannot change in place: collect the unclean ones first */
				size_t		nbad = 0;
				char	  **bad = NULL;

				json_object_object_foreach(v, key, val)
				{
					changed += ao_llm_json_sanitize(val);
					if (!ao_llm_text_is_clean(key, strlen(key)))
					{
						bad = xrealloc(bad, sizeof(char *) * (nbad + 1));
						bad[nbad++] = xstrdup(key);
					}
				}
				for (size_t i = 0; i < nbad; i++)
				{
					json_object *val = json_object_get(json_object_object_get(v, bad[i]));
					char	   *clean = ao_llm_text_sanitize(bad[i], strlen(bad[i]), NULL);

					json_object_object_del(v, bad[i]);
					json_object_object_add(v, clean, val);
					free(clean);
					free(bad[i]);
					changed++;
				}
				free(bad);
				break;
			}
		default:
			break;
	}
	return changed;
}

/* The JSON text with its \u0000 escapes written \ufffd (ao_llm.h). */
char *
ao_json_text_without_nul(const char *s, size_t n)
{
	char	   *copy = NULL;
	bool		in_string = false;

	for (size_t i = 0; i < n; i++)
	{
		if (!in_string)
			in_string = s[i] == '"';
		else if (s[i] == '"')
			in_string = false;
		else if (s[i] == '\\' && i + 1 < n)
		{
			if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0)
			{
				if (copy == NULL)
				{
					copy = ao_malloc(n + 1);
					memcpy(copy, s, n);
					copy[n] = '\0';
				}
				memcpy(copy + i + 2, "fffd", 4);
				i += 5;
			}
			else
				i++;			/* the escaped character */
		}
	}
	return copy;
}

/* Parse one complete JSON text strictly; NULL + message on failure. */
json_object *
parse_strict(struct json_tokener *tok, const char *s, size_t n, char *err, size_t errcap)
{
	json_object *v;
	enum json_tokener_error e;
	char	   *clean = ao_json_text_without_nul(s, n);

	/* a key keeps its \u0000 as U+FFFD instead of being cut short by json-c */
	if (clean != NULL)
	{
		v = parse_strict(tok, clean, n, err, errcap);
		free(clean);
		return v;
	}
	json_tokener_reset(tok);
	if (n > INT32_MAX)
	{
		snprintf(err, errcap, "JSON text too long");
		return NULL;
	}
	if (memchr(s, '\0', n) != NULL)
	{
		snprintf(err, errcap, "NUL byte in JSON text");
		return NULL;
	}
	v = json_tokener_parse_ex(tok, s, (int) n);
	e = json_tokener_get_error(tok);
	if (v == NULL && e == json_tokener_continue)
	{
		/* a top-level number or literal needs the end of input */
		v = json_tokener_parse_ex(tok, "", 1);
		if (v == NULL)
		{
			snprintf(err, errcap, is_blank(s, n) ? "empty JSON text"
					 : "JSON text ends before the value is complete");
			return NULL;
		}
	}
	else if (v == NULL)
	{
		snprintf(err, errcap, "%s at byte %zu", json_tokener_error_desc(e),
				 json_tokener_get_parse_end(tok));
		return NULL;
	}
	if (has_nonfinite(v))
	{
		json_object_put(v);
		snprintf(err, errcap, "NaN and Infinity are not JSON");
		return NULL;
	}
	/* \u0000 and lone surrogates decode to what PostgreSQL cannot store */
	(void) ao_llm_json_sanitize(v);
	return v;
}

/* A json-c tokener with the wire nesting limit (AO_LLM_JSON_DEPTH). */
struct json_tokener *
new_tokener(void)
{
	struct json_tokener *tok = json_tokener_new_ex(AO_LLM_JSON_DEPTH);

	if (tok == NULL)
		ao_oom(0);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	return tok;
}

/* ---------------------------------------------------------------------- */
/* Providers                                                              */
/* ---------------------------------------------------------------------- */

/* Provider from its name ("openai", "anthropic"); false when unknown. */
bool
ao_llm_provider_parse(const char *name, ao_llm_provider *out)
{
	if (name == NULL)
		return false;
	if (strcmp(name, "openai") == 0)
		*out = AO_LLM_OPENAI;
	else if (strcmp(name, "anthropic") == 0)
		*out = AO_LLM_ANTHROPIC;
	else
		return false;
	return true;
}

/* The name of a provider. */
const char *
ao_llm_provider_name(ao_llm_provider provider)
{
	return provider == AO_LLM_ANTHROPIC ? "anthropic" : "openai";
}

/* The path appended to a model's base_url for the provider's endpoint. */
const char *
ao_llm_endpoint_path(ao_llm_provider provider)
{
	return provider == AO_LLM_ANTHROPIC ? "/v1/messages" : "/chat/completions";
}

/* ---------------------------------------------------------------------- */
/* Tool-name mapping                                                      */
/* ---------------------------------------------------------------------- */

struct ao_llm_toolmap
{
	json_object *fwd;			/* registered -> wire */
	json_object *rev;			/* wire -> registered (null: reserved) */
	size_t		n;
};

/*
 * May a wire tool name contain this character (both providers:
 * [A-Za-z0-9_-])?
 */
static bool
tool_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '-';
}

/*
 * Is a name usable on the wire as it is (legal characters, 1 to
 * AO_LLM_TOOL_NAME_MAX bytes)?
 */
bool
ao_llm_tool_name_is_legal(const char *name)
{
	size_t		n;

	if (name == NULL)
		return false;
	n = strlen(name);
	if (n < 1 || n > AO_LLM_TOOL_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!tool_char_ok((unsigned char) name[i]))
			return false;
	return true;
}

/* An empty tool-name map. */
ao_llm_toolmap *
ao_llm_toolmap_new(void)
{
	ao_llm_toolmap *m = ao_calloc(1, sizeof(*m));

	m->fwd = json_object_new_object();
	m->rev = json_object_new_object();
	json_object_object_add(m->rev, AO_LLM_STRUCTURED_TOOL, NULL);
	return m;
}

/* Free a tool-name map (NULL is allowed). */
void
ao_llm_toolmap_free(ao_llm_toolmap *map)
{
	if (map == NULL)
		return;
	json_object_put(map->fwd);
	json_object_put(map->rev);
	free(map);
}

/* Is this wire name used already? */
static bool
wire_taken(const ao_llm_toolmap *m, const char *wire)
{
	return json_object_object_get_ex(m->rev, wire, NULL);
}

/* Record a name <-> wire name pair. */
static void
toolmap_set(ao_llm_toolmap *m, const char *name, const char *wire)
{
	json_object_object_add(m->fwd, name, json_object_new_string(wire));
	json_object_object_add(m->rev, wire, json_object_new_string(name));
	m->n++;
}

/* The wire name of a tool, or NULL. */
const char *
ao_llm_toolmap_wire(const ao_llm_toolmap *map, const char *name)
{
	return map != NULL && name != NULL ? jstr(map->fwd, name) : NULL;
}

/* The agentorch name of a wire name, or NULL. */
const char *
ao_llm_toolmap_name(const ao_llm_toolmap *map, const char *wire)
{
	return map != NULL && wire != NULL ? jstr(map->rev, wire) : NULL;
}

/* How many tools the map holds. */
size_t
ao_llm_toolmap_count(const ao_llm_toolmap *map)
{
	return map ? map->n : 0;
}

/* FNV-1a, 32 bits. */
static uint32_t
fnv1a(const char *s, size_t n, uint32_t h)
{
	for (size_t i = 0; i < n; i++)
	{
		h ^= (unsigned char) s[i];
		h *= 16777619u;
	}
	return h;
}

/* Replace each character outside [a-zA-Z0-9_-] (UTF-8 sequence = one) by "_". */
void
sanitize_name(const char *name, ao_buf *out)
{
	const unsigned char *s = (const unsigned char *) name;

	ao_buf_reset(out);
	while (*s)
	{
		if (tool_char_ok(*s))
			ao_buf_append_n(out, (const char *) s, 1);
		else
		{
			ao_buf_append_n(out, "_", 1);
			if (*s >= 0xC0)
			{
				s++;
				while (*s >= 0x80 && *s < 0xC0)
					s++;
				continue;
			}
		}
		s++;
	}
}

/* Pick a free wire name for an illegal (or displaced) registered name. */
static void
toolmap_assign(ao_llm_toolmap *m, const char *name)
{
	ao_buf		base;
	ao_buf		cand;
	uint32_t	salt = 0;

	ao_buf_init(&base);
	ao_buf_init(&cand);
	sanitize_name(name, &base);
	if (base.len >= 1 && base.len <= AO_LLM_TOOL_NAME_MAX && !wire_taken(m, base.data))
	{
		toolmap_set(m, name, base.data);
		goto done;
	}
	if (base.len == 0)
		ao_buf_append(&base, "tool");
	/* leave room for "_" + 8 hex digits */
	ao_buf_truncate(&base, AO_LLM_TOOL_NAME_MAX - 9);
	for (;;)
	{
		uint32_t	h = fnv1a(name, strlen(name), 2166136261u);

		if (salt > 0)
		{
			char		sb[16];
			int			sl = snprintf(sb, sizeof(sb), "#%u", salt);

			h = fnv1a(sb, (size_t) sl, h);
		}
		ao_buf_reset(&cand);
		ao_buf_printf(&cand, "%s_%08x", base.data, h);
		if (!wire_taken(m, cand.data))
			break;
		salt++;
	}
	toolmap_set(m, name, cand.data);
done:
	ao_buf_free(&base);
	ao_buf_free(&cand);
}

/* qsort comparator of C string pointers. */
static int
cmp_strp(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * Add tools, giving each a unique legal wire name (its own when legal and
 * free), deterministically.
 */
void
ao_llm_toolmap_add(ao_llm_toolmap *map, const char *const *names, size_t n)
{
	const char **rest = ao_calloc(n, sizeof(char *));
	size_t		nrest = 0;

	/* 1: legal names keep their own name when it is free */
	for (size_t i = 0; i < n; i++)
	{
		const char *name = names[i];

		if (name == NULL || jget(map->fwd, name) != NULL)
			continue;
		if (ao_llm_tool_name_is_legal(name) && !wire_taken(map, name))
			toolmap_set(map, name, name);
		else
			rest[nrest++] = name;
	}
	/* 2: the others in byte order, so the result does not depend on order */
	qsort(rest, nrest, sizeof(char *), cmp_strp);
	for (size_t i = 0; i < nrest; i++)
		if (jget(map->fwd, rest[i]) == NULL)
			toolmap_assign(map, rest[i]);
	free(rest);
}

/* The map as a json object {name: wire name}. */
json_object *
ao_llm_toolmap_to_json(const ao_llm_toolmap *map)
{
	json_object *out = json_object_new_object();
	struct json_object_iter it;

	json_object_object_foreachC(map->fwd, it)
		json_object_object_add(out, it.key, json_object_get(it.val));
	return out;
}

/* Rebuild a map from ao_llm_toolmap_to_json's object; problems go to cb. */
ao_llm_toolmap *
ao_llm_toolmap_from_json(json_object *obj, ao_problem_fn cb, void *arg)
{
	ao_llm_toolmap *m;
	int			bad = 0;
	ao_buf		path;
	struct json_object_iter it;

	if (!jis(obj, json_type_object))
	{
		if (cb)
			cb(arg, "", "tool map must be a JSON object");
		return NULL;
	}
	m = ao_llm_toolmap_new();
	ao_buf_init(&path);
	json_object_object_foreachC(obj, it)
	{
		const char *k = it.key;
		const char *wire = jis(it.val, json_type_string) ? json_object_get_string(it.val) : NULL;
		const char *msg = NULL;

		if (wire == NULL)
			msg = "wire name must be a string";
		else if (!ao_llm_tool_name_is_legal(wire))
			msg = "wire name is not a legal function name";
		else if (wire_taken(m, wire))
			msg = strcmp(wire, AO_LLM_STRUCTURED_TOOL) == 0 ?
				"wire name is reserved for structured output" :
				"wire name is used twice";
		if (msg != NULL)
		{
			bad++;
			ao_buf_reset(&path);
			ao_jsonptr_push_key(&path, k);
			if (cb)
				cb(arg, path.data, msg);
			continue;
		}
		toolmap_set(m, k, wire);
	}
	ao_buf_free(&path);
	if (bad)
	{
		ao_llm_toolmap_free(m);
		return NULL;
	}
	return m;
}

/* ---------------------------------------------------------------------- */
/* Incremental JSON                                                       */
/* ---------------------------------------------------------------------- */

struct ao_json_stream
{
	struct json_tokener *tok;
	ao_buf		text;
	json_object *value;
	ao_json_stream_state state;
	size_t		max;
	char		err[160];
};

/*
 * The value of a stream's complete text, parsed again when the text has a
 * \u0000 escape (json-c cuts a key short at it: see
 * ao_json_text_without_nul); v when it has none or cannot be parsed again.
 */
static json_object *
without_nul_keys(ao_json_stream *s, json_object *v)
{
	char		err[160];
	json_object *again;
	struct json_tokener *tok;
	char	   *clean = s->text.data ? ao_json_text_without_nul(s->text.data, s->text.len) : NULL;

	if (clean == NULL)
		return v;
	tok = new_tokener();
	again = parse_strict(tok, clean, s->text.len, err, sizeof(err));
	json_tokener_free(tok);
	free(clean);
	if (again == NULL)
		return v;
	json_object_put(v);
	return again;
}

/* A parser of a JSON text that arrives in pieces, of at most max_bytes. */
ao_json_stream *
ao_json_stream_new(size_t max_bytes)
{
	ao_json_stream *s = ao_calloc(1, sizeof(*s));

	s->tok = new_tokener();
	ao_buf_init(&s->text);
	s->state = AO_JSON_MORE;
	s->max = max_bytes;
	return s;
}

/* Free an incremental JSON parser (NULL is allowed). */
void
ao_json_stream_free(ao_json_stream *s)
{
	if (s == NULL)
		return;
	json_tokener_free(s->tok);
	json_object_put(s->value);
	ao_buf_free(&s->text);
	free(s);
}

static ao_json_stream_state
js_fail(ao_json_stream *s, const char *fmt,...)
__attribute__((format(printf, 2, 3)));

/* Put the parser in its failed state with a message. */
static ao_json_stream_state
js_fail(ao_json_stream *s, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	s->state = AO_JSON_ERROR;
	return s->state;
}

/* Feed the next piece of the text; returns the parser's state. */
ao_json_stream_state
ao_json_stream_feed(ao_json_stream *s, const char *text, size_t len)
{
	size_t		before = s->text.len;
	json_object *v;
	enum json_tokener_error e;

	if (s->state == AO_JSON_ERROR || len == 0)
		return s->state;
	if (s->max > 0 && (len > s->max || before > s->max - len))
		return js_fail(s, "JSON text exceeds %zu bytes", s->max);
	if (len > INT32_MAX)
		return js_fail(s, "JSON text piece too long");
	ao_buf_append_n(&s->text, text, len);
	if (memchr(text, '\0', len) != NULL)
		return js_fail(s, "NUL byte in JSON text");
	if (s->state == AO_JSON_COMPLETE)
	{
		if (!is_blank(text, len))
			return js_fail(s, "unexpected text after the JSON value at byte %zu", before);
		return s->state;
	}
	v = json_tokener_parse_ex(s->tok, text, (int) len);
	e = json_tokener_get_error(s->tok);
	if (v != NULL)
	{
		size_t		end = json_tokener_get_parse_end(s->tok);

		s->value = without_nul_keys(s, v);	/* v may be freed */
		s->state = AO_JSON_COMPLETE;
		if (has_nonfinite(s->value))
			return js_fail(s, "NaN and Infinity are not JSON");
		if (end < len && !is_blank(text + end, len - end))
			return js_fail(s, "unexpected text after the JSON value at byte %zu", before + end);
		return s->state;
	}
	if (e == json_tokener_continue)
		return s->state;
	return js_fail(s, "%s at byte %zu", json_tokener_error_desc(e),
				   before + json_tokener_get_parse_end(s->tok));
}

/*
 * The text is complete: parse what is left; returns the parser's state
 * (failed when the text is not one JSON value).
 */
ao_json_stream_state
ao_json_stream_finish(ao_json_stream *s)
{
	json_object *v;

	if (s->state != AO_JSON_MORE)
		return s->state;
	if (is_blank(s->text.data, s->text.len))
		return js_fail(s, "empty JSON text");
	v = json_tokener_parse_ex(s->tok, "", 1);
	if (v == NULL)
		return js_fail(s, "JSON text ends before the value is complete (after %zu bytes)",
					   s->text.len);
	s->value = without_nul_keys(s, v);	/* v may be freed */
	s->state = AO_JSON_COMPLETE;
	if (has_nonfinite(s->value))
		return js_fail(s, "NaN and Infinity are not JSON");
	return s->state;
}

/* The parser's state (in progress, done, failed). */
ao_json_stream_state
ao_json_stream_state_of(const ao_json_stream *s)
{
	return s->state;
}

/* The text fed so far. */
const char *
ao_json_stream_text(const ao_json_stream *s, size_t *len)
{
	if (len)
		*len = s->text.len;
	return s->text.data;
}

/* The parsed value once done (borrowed), else NULL. */
json_object *
ao_json_stream_value(const ao_json_stream *s)
{
	return s->state == AO_JSON_COMPLETE ? s->value : NULL;
}

/* Why the parser failed, or NULL. */
const char *
ao_json_stream_error(const ao_json_stream *s)
{
	return s->state == AO_JSON_ERROR ? s->err : "";
}

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */
/* ---------------------------------------------------------------------- */

/* The name of an error kind, as errors report it. */
const char *
ao_llm_errkind_name(ao_llm_errkind kind)
{
	switch (kind)
	{
		case AO_LLM_ERR_NONE:
			return "none";
		case AO_LLM_ERR_HTTP:
			return "http";
		case AO_LLM_ERR_TRANSPORT:
			return "transport";
		case AO_LLM_ERR_PROVIDER:
			return "provider";
		case AO_LLM_ERR_PROTOCOL:
			return "protocol";
		case AO_LLM_ERR_TRUNCATED:
			return "truncated";
		case AO_LLM_ERR_TOO_LARGE:
			return "too_large";
		case AO_LLM_ERR_OUTPUT:
			return "output";
		case AO_LLM_ERR_REFUSAL:
			return "refusal";
	}
	return "unknown";
}

void
error_set(ao_llm_error *e, ao_llm_errkind kind, bool retryable, const char *type,
		  const char *fmt,...)
__attribute__((format(printf, 5, 6)));

/* Fill an error (kind, retryable, provider type) with a formatted message. */
void
error_set(ao_llm_error *e, ao_llm_errkind kind, bool retryable, const char *type,
		  const char *fmt,...)
{
	va_list		ap;
	char		msg[sizeof(e->message)];

	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->retryable = retryable;
	e->retry_after_ms = -1;
	copy_printable(e->type, sizeof(e->type), type ? type : "", type ? strlen(type) : 0);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	copy_printable(e->message, sizeof(e->message), msg, strlen(msg));
}

/* 1 retryable, 0 permanent, -1 unknown: a provider error type or code. */
int
error_type_retryable(const char *type)
{
	static const char *const retry[] = {
		"rate_limit_error", "overloaded_error", "api_error", "server_error",
		"rate_limit_exceeded", "timeout", "timeout_error", "service_unavailable",
		"internal_error", "server_is_overloaded", "requests", "tokens", NULL
	};
	static const char *const permanent[] = {
		"invalid_request_error", "authentication_error", "permission_error",
		"not_found_error", "request_too_large", "insufficient_quota",
		"invalid_api_key", "context_length_exceeded", "billing_error",
		"model_not_found", "invalid_prompt", NULL
	};

	if (type == NULL || type[0] == '\0')
		return -1;
	for (int i = 0; retry[i]; i++)
		if (strcmp(type, retry[i]) == 0)
			return 1;
	for (int i = 0; permanent[i]; i++)
		if (strcmp(type, permanent[i]) == 0)
			return 0;
	return -1;
}

/*
 * Read the provider's error shape: *type gets the code (preferred) or
 * type, msg the message. Returns false when obj holds no error.
 */
bool
error_fields(json_object *obj, const char **type, const char **code, const char **msg)
{
	json_object *err = jget(obj, "error");

	*type = *code = *msg = NULL;
	if (jis(err, json_type_object))
	{
		*msg = jstr(err, "message");
		*type = jstr(err, "type");
		*code = jstr(err, "code");
		return true;
	}
	if (jis(err, json_type_string))
	{
		*msg = json_object_get_string(err);
		return true;
	}
	if (jstr(obj, "message") != NULL || jstr(obj, "detail") != NULL)
	{
		*msg = jstr(obj, "message") ? jstr(obj, "message") : jstr(obj, "detail");
		*type = jstr(obj, "type");
		return true;
	}
	return false;
}

/*
 * Days since 1970-01-01 of a proleptic Gregorian date (for HTTP dates in
 * Retry-After).
 */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t		era;
	unsigned	yoe;
	unsigned	doy;
	unsigned	doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned) (y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t) doe - 719468;
}

/*
 * The delay a Retry-After value asks for (delta seconds or an HTTP date,
 * see ao_llm.h), or -1 when it is unusable.
 */
double
ao_llm_parse_retry_after(const char *value, double now_epoch_s)
{
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	const char *s = value;
	size_t		n;
	char		wd[4],
				mon[4],
				tz[4];
	int			day,
				year,
				hh,
				mm,
				ss,
				used = 0;

	if (s == NULL)
		return -1;
	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	if (n == 0)
		return -1;
	if (s[0] >= '0' && s[0] <= '9')
	{
		double		secs = 0;
		double		scale = 0;

		for (size_t i = 0; i < n; i++)
		{
			if (s[i] >= '0' && s[i] <= '9')
			{
				if (scale > 0)
				{
					scale /= 10;
					secs += (s[i] - '0') * scale;
				}
				else
					secs = secs * 10 + (s[i] - '0');
			}
			else if (s[i] == '.' && scale == 0)
				scale = 1;
			else
				return -1;
		}
		if (secs > 1e9)
			secs = 1e9;
		return secs * 1000.0;
	}
	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	if (n != 29 ||
		sscanf(s, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d %3[A-Z]%n",
			   wd, &day, mon, &year, &hh, &mm, &ss, tz, &used) != 8 ||
		used != 29 || strcmp(tz, "GMT") != 0)
		return -1;
	for (int m = 0; m < 12; m++)
	{
		if (strcmp(mon, months[m]) == 0)
		{
			double		t;

			if (day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
				return -1;
			t = (double) days_from_civil(year, (unsigned) m + 1, (unsigned) day) * 86400.0 +
				hh * 3600.0 + mm * 60.0 + ss;
			return t > now_epoch_s ? (t - now_epoch_s) * 1000.0 : 0;
		}
	}
	return -1;
}

/*
 * Classify a non-2xx HTTP reply (status, provider error body): kind,
 * retryable, message.
 */
void
ao_llm_classify_http(ao_llm_provider provider, long status,
					 const char *body, size_t len,
					 const char *retry_after, double now_epoch_s,
					 ao_llm_error *out)
{
	json_object *obj = NULL;
	const char *type = NULL;
	const char *code = NULL;
	const char *msg = NULL;
	const char *label;
	bool		retryable;
	char		text[300];

	(void) provider;
	if (body != NULL && len > 0)
	{
		struct json_tokener *tok = new_tokener();
		char		err[64];

		obj = parse_strict(tok, body, len, err, sizeof(err));
		json_tokener_free(tok);
	}
	if (obj != NULL)
		error_fields(obj, &type, &code, &msg);
	label = code ? code : type;

	retryable = status == 408 || status == 409 || status == 429 ||
		(status >= 500 && status <= 599);
	if (status == 429 && label && strcmp(label, "insufficient_quota") == 0)
		retryable = false;		/* out of credit: retrying does not help */

	if (msg != NULL)
		copy_printable(text, sizeof(text), msg, strlen(msg));
	else if (obj == NULL && body != NULL && len > 0)
		copy_printable(text, 201, body, len);	/* not JSON: the start of it */
	else
		text[0] = '\0';

	if (text[0] != '\0' && label != NULL)
		error_set(out, AO_LLM_ERR_HTTP, retryable, label, "HTTP %ld (%s): %s", status, label, text);
	else if (text[0] != '\0')
		error_set(out, AO_LLM_ERR_HTTP, retryable, label, "HTTP %ld: %s", status, text);
	else
		error_set(out, AO_LLM_ERR_HTTP, retryable, label, "HTTP %ld", status);
	out->http_status = status;
	out->retry_after_ms = ao_llm_parse_retry_after(retry_after, now_epoch_s);
	json_object_put(obj);
}

/*
 * Classify a transport failure (a curl code): retryable unless it cannot
 * succeed again.
 */
void
ao_llm_classify_transport(int curl_code, const char *message, ao_llm_error *out)
{
	static const int permanent[] = {1, 3, 4, 43, 48, 53, 58, 59, 60, 66, 77, 83, 90, 91, 98, 0};
	bool		retryable = true;

	for (int i = 0; permanent[i]; i++)
		if (curl_code == permanent[i])
			retryable = false;
	error_set(out, AO_LLM_ERR_TRANSPORT, retryable, NULL, "transport error %d: %s", curl_code,
			  message && message[0] ? message : "unknown");
}

/* ---------------------------------------------------------------------- */
/* Results                                                                */
/* ---------------------------------------------------------------------- */

/* Usage with every count unknown (-1). */
void
usage_init(ao_llm_usage *u)
{
	u->input_tokens = u->output_tokens = -1;
	u->cached_input_tokens = u->cache_write_tokens = -1;
}

/* Free what a tool call holds and zero it. */
static void
tool_call_clear(ao_llm_tool_call *tc)
{
	free(tc->id);
	free(tc->name);
	free(tc->wire_name);
	free(tc->arguments_text);
	json_object_put(tc->arguments);
	memset(tc, 0, sizeof(*tc));
}

/* Free what a result holds (the struct itself is the caller's). */
void
ao_llm_result_free(ao_llm_result *r)
{
	if (r == NULL)
		return;
	free(r->id);
	free(r->model);
	free(r->text);
	free(r->refusal);
	for (size_t i = 0; i < r->n_tool_calls; i++)
		tool_call_clear(&r->tool_calls[i]);
	free(r->tool_calls);
	free(r->structured_text);
	json_object_put(r->structured);
	free(r->finish_reason);
	free(r->raw_finish_reason);
	memset(r, 0, sizeof(*r));
	usage_init(&r->usage);
	r->error.retry_after_ms = -1;
}

/* The known token counts as a json object. */
json_object *
ao_llm_usage_to_json(const ao_llm_usage *u)
{
	json_object *o = json_object_new_object();

	if (u->input_tokens >= 0)
		json_object_object_add(o, "input_tokens", json_object_new_int64(u->input_tokens));
	if (u->output_tokens >= 0)
		json_object_object_add(o, "output_tokens", json_object_new_int64(u->output_tokens));
	if (u->cached_input_tokens >= 0)
		json_object_object_add(o, "cached_input_tokens", json_object_new_int64(u->cached_input_tokens));
	if (u->cache_write_tokens >= 0)
		json_object_object_add(o, "cache_write_tokens", json_object_new_int64(u->cache_write_tokens));
	return o;
}

/* A result as the json object described in ao_llm.h. */
json_object *
ao_llm_result_to_json(const ao_llm_result *r)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "role", json_object_new_string("assistant"));
	if (r->text != NULL && r->text_len > 0)
		json_object_object_add(o, "content", json_object_new_string_len(r->text, (int) r->text_len));
	else if (r->structured_text != NULL && r->n_tool_calls == 0)
		json_object_object_add(o, "content", json_object_new_string_len(r->structured_text,
																		(int) r->structured_len));
	else
		json_object_object_add(o, "content", NULL);
	if (r->n_tool_calls > 0)
	{
		json_object *arr = json_object_new_array();

		for (size_t i = 0; i < r->n_tool_calls; i++)
		{
			const ao_llm_tool_call *tc = &r->tool_calls[i];
			json_object *t = json_object_new_object();

			json_object_object_add(t, "id", json_object_new_string(tc->id));
			json_object_object_add(t, "name", json_object_new_string(tc->name));
			if (tc->arguments != NULL)
				json_object_object_add(t, "arguments", json_object_get(tc->arguments));
			else
				json_object_object_add(t, "arguments",
									   json_object_new_string(tc->arguments_text ? tc->arguments_text : ""));
			json_object_array_add(arr, t);
		}
		json_object_object_add(o, "tool_calls", arr);
	}
	if (r->structured != NULL)
		json_object_object_add(o, "output", json_object_get(r->structured));
	if (r->refusal != NULL)
		json_object_object_add(o, "refusal", json_object_new_string(r->refusal));
	if (r->finish_reason != NULL)
		json_object_object_add(o, "finish_reason", json_object_new_string(r->finish_reason));
	json_object_object_add(o, "usage", ao_llm_usage_to_json(&r->usage));
	return o;
}

/* ---------------------------------------------------------------------- */
/* Cost                                                                   */
/* ---------------------------------------------------------------------- */

/*
 * A price per million input and output tokens (cache prices default to the
 * input price).
 */
void
ao_llm_price_init(ao_llm_price *p, double input_per_mtok, double output_per_mtok)
{
	p->input_per_mtok = input_per_mtok;
	p->output_per_mtok = output_per_mtok;
	p->cached_input_per_mtok = -1;
	p->cache_write_per_mtok = -1;
}

/* Read a model's price object; problems go to cb; false on a problem. */
bool
ao_llm_price_from_json(json_object *obj, ao_llm_price *out, ao_problem_fn cb, void *arg)
{
	static const char *const keys[] = {"input_per_mtok", "output_per_mtok",
	"cached_input_per_mtok", "cache_write_per_mtok"};
	double		vals[4] = {0, 0, -1, -1};
	bool		ok = true;

	if (!jis(obj, json_type_object))
	{
		if (cb)
			cb(arg, "", "prices must be a JSON object");
		return false;
	}
	for (int i = 0; i < 4; i++)
	{
		json_object *v = jget(obj, keys[i]);
		char		path[64];

		snprintf(path, sizeof(path), "/%s", keys[i]);
		if (v == NULL && i < 2)
		{
			ok = false;
			if (cb)
				cb(arg, path, "price is required");
		}
		else if (v != NULL && (!is_number(v) || !(json_object_get_double(v) >= 0) ||
							   isinf(json_object_get_double(v))))
		{
			ok = false;
			if (cb)
				cb(arg, path, "price must be a non-negative number");
		}
		else if (v != NULL)
			vals[i] = json_object_get_double(v);
	}
	if (ok)
	{
		out->input_per_mtok = vals[0];
		out->output_per_mtok = vals[1];
		out->cached_input_per_mtok = vals[2];
		out->cache_write_per_mtok = vals[3];
	}
	return ok;
}

/* Cost of the usage at the price (unknown counts as 0). */
double
ao_llm_cost(const ao_llm_price *price, const ao_llm_usage *usage)
{
	double		input = usage->input_tokens > 0 ? (double) usage->input_tokens : 0;
	double		output = usage->output_tokens > 0 ? (double) usage->output_tokens : 0;
	double		cached = usage->cached_input_tokens > 0 ? (double) usage->cached_input_tokens : 0;
	double		written = usage->cache_write_tokens > 0 ? (double) usage->cache_write_tokens : 0;
	double		cached_price = price->cached_input_per_mtok >= 0 ?
		price->cached_input_per_mtok : price->input_per_mtok;
	double		write_price = price->cache_write_per_mtok >= 0 ?
		price->cache_write_per_mtok : price->input_per_mtok;
	double		plain = input - cached - written;

	if (plain < 0)
		plain = 0;
	return (plain * price->input_per_mtok + cached * cached_price +
			written * write_price + output * price->output_per_mtok) / 1e6;
}

/* Is the reply cut off by max_tokens (finish_reason "length")? */
static bool
reply_cut_off(const ao_llm_result *res)
{
	return res->finish_reason != NULL && strcmp(res->finish_reason, "length") == 0;
}

ao_llm_reply_outcome
ao_llm_finish_reply(const ao_llm_reply *reply, ao_llm_decoder *decoder, ao_llm_result *res, ao_llm_error *err)
{
	bool		structured_answer;

	memset(res, 0, sizeof(*res));
	memset(err, 0, sizeof(*err));
	if (reply->transport_error != NULL && reply->http_status == 0)
	{
		ao_llm_classify_transport(reply->curl_code, reply->transport_error, err);
		return AO_LLM_REPLY_FAILED;
	}
	if (reply->http_status >= 300)
	{
		ao_llm_classify_http(reply->provider, reply->http_status, reply->body, reply->body_len,
							 reply->retry_after, reply->now_epoch_s, err);
		return AO_LLM_REPLY_FAILED;
	}
	(void) ao_llm_decoder_finish(decoder);
	ao_llm_decoder_take_result(decoder, res);
	if (reply->transport_error != NULL &&
		(res->error.kind == AO_LLM_ERR_NONE || res->error.kind == AO_LLM_ERR_TRUNCATED))
	{
		ao_llm_classify_transport(reply->curl_code, reply->transport_error, err);
		return AO_LLM_REPLY_FAILED;
	}
	if (res->error.kind != AO_LLM_ERR_NONE && res->error.kind != AO_LLM_ERR_OUTPUT)
	{
		*err = res->error;
		if (err->kind == AO_LLM_ERR_PROTOCOL || err->kind == AO_LLM_ERR_TRUNCATED)
			err->retryable = true;
		return AO_LLM_REPLY_FAILED;
	}
	/* Anthropic's structured output arrives as a call of its own tool */
	structured_answer = reply->structured && reply->provider == AO_LLM_ANTHROPIC && res->structured;
	if (res->n_tool_calls > 0 && !structured_answer)
		return reply_cut_off(res) ? AO_LLM_REPLY_CUT_OFF : AO_LLM_REPLY_TOOL_CALLS;
	return AO_LLM_REPLY_ANSWER;
}
