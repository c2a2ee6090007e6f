/*-------------------------------------------------------------------------
 *
 * ao_llm.c
 *	  LLM wire protocol: requests, tool-name mapping, response decoding,
 *	  incremental JSON, cost and error classification (see ao_llm.h).
 *
 * The decoder is one state machine for both providers and both reply
 * shapes: SSE events (ao_sse) and complete JSON bodies go through the same
 * internal emitters (dec_text, dec_tool_*, dec_json_*, dec_usage,
 * dec_finish), so a streamed reply and the same reply fetched without
 * streaming produce the same ao_llm_result.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/llm/ao_llm_decode.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_llm.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ao_sse.h"

/* Nesting limit of json-c's tokener for wire JSON and model output. */
#define AO_LLM_JSON_DEPTH 128
#define AO_LLM_DEFAULT_MAX_OUTPUT (16 * 1024 * 1024)
/* Highest Anthropic content block index accepted. */
#define AO_LLM_MAX_BLOCKS 4096

#define JSON_TEXT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ---------------------------------------------------------------------- */
/* Small helpers                                                          */
/* ---------------------------------------------------------------------- */

static char *
xstrndup(const char *s, size_t n)
{
	char	   *r = ao_malloc(n + 1);

	memcpy(r, s, n);
	r[n] = '\0';
	return r;
}

static char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

static void *
xrealloc(void *p, size_t n)
{
	return ao_realloc(p, n);
}

/* Member of an object, or NULL (also for JSON null and non-objects). */
static json_object *
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
static const char *
jstr(json_object *obj, const char *key)
{
	json_object *v = jget(obj, key);

	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool
jis(json_object *v, json_type t)
{
	return v != NULL && json_object_is_type(v, t);
}

static bool
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
static char *
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
static json_object *
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

/* Parse one complete JSON text strictly; NULL + message on failure. */
static json_object *
parse_strict(struct json_tokener *tok, const char *s, size_t n, char *err, size_t errcap)
{
	json_object *v;
	enum json_tokener_error e;

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

static struct json_tokener *
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

const char *
ao_llm_provider_name(ao_llm_provider provider)
{
	return provider == AO_LLM_ANTHROPIC ? "anthropic" : "openai";
}

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

static bool
tool_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '-';
}

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

ao_llm_toolmap *
ao_llm_toolmap_new(void)
{
	ao_llm_toolmap *m = ao_calloc(1, sizeof(*m));

	m->fwd = json_object_new_object();
	m->rev = json_object_new_object();
	json_object_object_add(m->rev, AO_LLM_STRUCTURED_TOOL, NULL);
	return m;
}

void
ao_llm_toolmap_free(ao_llm_toolmap *map)
{
	if (map == NULL)
		return;
	json_object_put(map->fwd);
	json_object_put(map->rev);
	free(map);
}

static bool
wire_taken(const ao_llm_toolmap *m, const char *wire)
{
	return json_object_object_get_ex(m->rev, wire, NULL);
}

static void
toolmap_set(ao_llm_toolmap *m, const char *name, const char *wire)
{
	json_object_object_add(m->fwd, name, json_object_new_string(wire));
	json_object_object_add(m->rev, wire, json_object_new_string(name));
	m->n++;
}

const char *
ao_llm_toolmap_wire(const ao_llm_toolmap *map, const char *name)
{
	return map != NULL && name != NULL ? jstr(map->fwd, name) : NULL;
}

const char *
ao_llm_toolmap_name(const ao_llm_toolmap *map, const char *wire)
{
	return map != NULL && wire != NULL ? jstr(map->rev, wire) : NULL;
}

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
static void
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

static int
cmp_strp(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

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

json_object *
ao_llm_toolmap_to_json(const ao_llm_toolmap *map)
{
	json_object *out = json_object_new_object();
	struct json_object_iter it;

	json_object_object_foreachC(map->fwd, it)
		json_object_object_add(out, it.key, json_object_get(it.val));
	return out;
}

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

		s->value = v;
		s->state = AO_JSON_COMPLETE;
		if (has_nonfinite(v))
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
	s->value = v;
	s->state = AO_JSON_COMPLETE;
	if (has_nonfinite(v))
		return js_fail(s, "NaN and Infinity are not JSON");
	return s->state;
}

ao_json_stream_state
ao_json_stream_state_of(const ao_json_stream *s)
{
	return s->state;
}

const char *
ao_json_stream_text(const ao_json_stream *s, size_t *len)
{
	if (len)
		*len = s->text.len;
	return s->text.data;
}

json_object *
ao_json_stream_value(const ao_json_stream *s)
{
	return s->state == AO_JSON_COMPLETE ? s->value : NULL;
}

const char *
ao_json_stream_error(const ao_json_stream *s)
{
	return s->state == AO_JSON_ERROR ? s->err : "";
}

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

static bool
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
static json_object *
content_value(json_object *content)
{
	if (content == NULL)
		return json_object_new_string("");
	if (jis(content, json_type_string) || jis(content, json_type_array))
		return json_object_get(content);
	return json_text_string(content);
}

/* A tool call's arguments as an object (validated before). */
static json_object *
args_object(json_object *args)
{
	if (args == NULL)
		return json_object_new_object();
	if (jis(args, json_type_object))
		return json_object_get(args);
	return json_tokener_parse(json_object_get_string(args));
}

/* A tool call's arguments as JSON text (openai). */
static json_object *
args_text(json_object *args)
{
	if (args == NULL)
		return json_object_new_string("{}");
	if (jis(args, json_type_string))
		return json_object_get(args);
	return json_text_string(args);
}

static const char *
wire_of(const ao_llm_toolmap *map, const char *name)
{
	const char *w = ao_llm_toolmap_wire(map, name);

	return w ? w : name;
}

/* Schema for structured output, wrapped when its top level is not an object. */
static json_object *
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

static json_object *
default_input_schema(void)
{
	json_object *s = json_object_new_object();

	json_object_object_add(s, "type", json_object_new_string("object"));
	json_object_object_add(s, "properties", json_object_new_object());
	return s;
}

static json_object *
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

static json_object *
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
							   json_object_new_string("Give the final answer: call this tool with the answer as its input, which must follow the input schema."));
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

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */
/* ---------------------------------------------------------------------- */

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

static void
error_set(ao_llm_error *e, ao_llm_errkind kind, bool retryable, const char *type,
		  const char *fmt,...)
__attribute__((format(printf, 5, 6)));

static void
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
static int
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
static bool
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

static void
usage_init(ao_llm_usage *u)
{
	u->input_tokens = u->output_tokens = -1;
	u->cached_input_tokens = u->cache_write_tokens = -1;
}

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

void
ao_llm_price_init(ao_llm_price *p, double input_per_mtok, double output_per_mtok)
{
	p->input_per_mtok = input_per_mtok;
	p->output_per_mtok = output_per_mtok;
	p->cached_input_per_mtok = -1;
	p->cache_write_per_mtok = -1;
}

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

/* ---------------------------------------------------------------------- */
/* Response decoding                                                      */
/* ---------------------------------------------------------------------- */

#define AO_LLM_MAX_TOOL_CALLS 1024

typedef enum dec_block_kind
{
	BLK_NONE = 0,				/* not started */
	BLK_IGNORE,					/* thinking, server tools, unknown kinds */
	BLK_TEXT,
	BLK_TOOL,
	BLK_STRUCT					/* the structured-output tool */
} dec_block_kind;

typedef struct dec_block
{
	dec_block_kind kind;
	size_t		tool;			/* BLK_TOOL: index of the tool call */
	char	   *start_input;	/* non-empty input given at block start */
} dec_block;

typedef struct dec_tool
{
	ao_buf		args;
	bool		done;
	long		pindex;			/* openai: the provider's tool_calls index */
} dec_tool;

typedef enum dec_mode
{
	MODE_UNDECIDED = 0,
	MODE_SSE,
	MODE_JSON
} dec_mode;

struct ao_llm_decoder
{
	ao_llm_spec spec;
	const ao_llm_toolmap *map;
	ao_llm_callbacks cb;
	void	   *arg;
	size_t		max_event;
	size_t		max_output;
	ao_sse_parser *sse;
	dec_mode	mode;
	ao_buf		body;			/* JSON body, or the blank prefix while undecided */
	struct json_tokener *tok;	/* wire JSON and tool arguments */
	ao_llm_result res;
	ao_buf		text;			/* res.text aliases text.data */
	ao_buf		refusal;
	ao_json_stream *js;			/* structured output */
	bool		json_value_emitted;
	bool		json_ended;
	dec_tool   *tools;			/* parallel to res.tool_calls */
	size_t		tools_cap;
	dec_block  *blocks;			/* anthropic content blocks by index */
	size_t		nblocks;
	bool		fatal;
	bool		finished;
	bool		closed;
	bool		saw_end;		/* [DONE] / message_stop / a complete JSON body */
	bool		finish_seen;
	bool		struct_block_seen;
	size_t		out_bytes;
};

static void
dec_error(ao_llm_decoder *d, ao_llm_errkind kind, bool retryable, const char *type,
		  const char *fmt,...)
__attribute__((format(printf, 5, 6)));

static void
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

static void
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
static bool
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

static void
dec_set_str(char **field, const char *value)
{
	if (*field == NULL && value != NULL)
		*field = xstrdup(value);
}

static void
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

static size_t
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

static void
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

static void
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

static void
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
static void
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

static void
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
static int64_t
jcount(json_object *obj, const char *key)
{
	json_object *v = jget(obj, key);

	if (!jis(v, json_type_int) || json_object_get_int64(v) < 0)
		return -1;
	return json_object_get_int64(v);
}

static void
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

static void
dec_openai_usage(ao_llm_decoder *d, json_object *u)
{
	if (!jis(u, json_type_object))
		return;
	dec_usage(d, jcount(u, "prompt_tokens"), jcount(u, "completion_tokens"),
			  jcount(jget(u, "prompt_tokens_details"), "cached_tokens"), -1);
}

static void
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

/* The string value and length of a member, or NULL. */
static const char *
jstrlen(json_object *obj, const char *key, size_t *len)
{
	json_object *v = jget(obj, key);

	if (!jis(v, json_type_string))
		return NULL;
	*len = (size_t) json_object_get_string_len(v);
	return json_object_get_string(v);
}

/* Arguments given as text (usual) or as an object (some servers). */
static void
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

static void
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

static void
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

static void
dec_free_tools(ao_llm_decoder *d)
{
	for (size_t i = 0; i < d->res.n_tool_calls; i++)
		ao_buf_free(&d->tools[i].args);
	free(d->tools);
	d->tools = NULL;
	d->tools_cap = 0;
}

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

const ao_llm_result *
ao_llm_decoder_result(const ao_llm_decoder *d)
{
	return &d->res;
}

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
