/*-------------------------------------------------------------------------
 *
 * ao_template.c
 *	  Parsing, scanning and rendering of ${...} references in JSON values.
 *
 * One splitter (tpl_split) cuts a string into literal pieces and parsed
 * references; scanning and rendering are two visitors of those pieces, so
 * both agree on escapes, whole-string references and syntax errors. JSON
 * values are walked recursively with a depth limit far above anything a
 * workflow needs, so a hostile document cannot exhaust the stack.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_template.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_template.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Deeper JSON values are reported instead of walked. */
#define TPL_MAX_DEPTH	1000

static const char *const step_fields[] = {"output", "status", "error", NULL};

/* malloc-backed copy of n bytes plus a NUL; aborts on failure (ao_core.c). */
static char *
tpl_strndup(const char *s, size_t n)
{
	char	   *p = ao_malloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* Is c allowed in a name (root, step id, key)? */
static int
tpl_is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Whitespace allowed just inside ${ and }. */
static int
tpl_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Is the NUL-terminated key one of "output", "status", "error"? */
static int
tpl_is_field(const char *key)
{
	for (const char *const *f = step_fields; *f; f++)
		if (strcmp(key, *f) == 0)
			return 1;
	return 0;
}

/* Length of the UTF-8 sequence starting with byte c (1 for invalid bytes). */
static size_t
tpl_utf8_seq_len(unsigned char c)
{
	if (c >= 0xF0 && c <= 0xF4)
		return 4;
	if (c >= 0xE0)
		return c <= 0xEF ? 3 : 1;
	if (c >= 0xC2)
		return 2;
	return 1;
}

/*
 * Describe the unexpected character at expr[pos] (a whole UTF-8 sequence,
 * position counted in bytes from 1) into reason.
 */
static void
tpl_unexpected(ao_buf *reason, const char *expr, size_t len, size_t pos)
{
	size_t		n = tpl_utf8_seq_len((unsigned char) expr[pos]);

	if (n > len - pos)
		n = len - pos;
	ao_buf_printf(reason, "unexpected character \"%.*s\" at position %zu",
				  (int) n, expr + pos, pos + 1);
}

/* Release what ao_ref_parse allocated and reset the ref; ref may be zeroed. */
void
ao_ref_free(ao_ref *ref)
{
	if (ref == NULL)
		return;
	for (size_t i = 0; i < ref->nsegs; i++)
		free(ref->segs[i].key);
	free(ref->segs);
	free(ref->step_id);
	free(ref->field);
	free(ref->text);
	memset(ref, 0, sizeof(*ref));
}

/* Append "invalid reference ${text}: " + reason to err (if any). */
static int
tpl_parse_error(ao_buf *err, const ao_ref *ref, const char *reason)
{
	if (err)
		ao_buf_printf(err, "invalid reference ${%s}: %s", ref->text, reason);
	return -1;
}

/* Append one segment (key is taken over, or NULL for an index). */
static void
tpl_add_seg(ao_ref *ref, size_t *cap, char *key, long index)
{
	if (ref->nsegs == *cap)
	{
		*cap = *cap ? *cap * 2 : 4;
		ref->segs = ao_realloc(ref->segs, *cap * sizeof(ao_ref_seg));
	}
	ref->segs[ref->nsegs].key = key;
	ref->segs[ref->nsegs].index = index;
	ref->nsegs++;
}

/* Remove the first k segments, releasing their keys. */
static void
tpl_drop_segs(ao_ref *ref, size_t k)
{
	for (size_t i = 0; i < k; i++)
		free(ref->segs[i].key);
	memmove(ref->segs, ref->segs + k, (ref->nsegs - k) * sizeof(ao_ref_seg));
	ref->nsegs -= k;
}

/*
 * Parse an expression (see ao_template.h for the grammar). Returns 0, or -1
 * with "invalid reference ${...}: reason" (or "empty reference ${}")
 * appended to err; on error out is left zeroed.
 */
int
ao_ref_parse(const char *expr, size_t len, ao_ref *out, ao_buf *err)
{
	ao_ref		ref;
	size_t		pos,
				cap = 0;
	char	   *root;
	ao_buf		reason;

	memset(out, 0, sizeof(*out));
	memset(&ref, 0, sizeof(ref));
	while (len > 0 && tpl_is_space(expr[0]))
		expr++, len--;
	while (len > 0 && tpl_is_space(expr[len - 1]))
		len--;
	if (len == 0)
	{
		if (err)
			ao_buf_append(err, "empty reference ${}");
		return -1;
	}
	ref.text = tpl_strndup(expr, len);
	ao_buf_init(&reason);

	/* root name, then .name and [N] segments */
	for (pos = 0; pos < len && tpl_is_name_char(expr[pos]); pos++)
		;
	root = tpl_strndup(expr, pos);
	if (pos == 0)
		tpl_unexpected(&reason, expr, len, 0);
	while (pos < len && reason.len == 0)
	{
		char		c = expr[pos];
		size_t		start;

		if (c == '.')
		{
			start = ++pos;
			while (pos < len && tpl_is_name_char(expr[pos]))
				pos++;
			if (pos == start)
				ao_buf_append(&reason, "expected a name after \".\"");
			else
				tpl_add_seg(&ref, &cap, tpl_strndup(expr + start, pos - start), 0);
		}
		else if (c == '[')
		{
			long		index = 0;

			start = ++pos;
			while (pos < len && expr[pos] >= '0' && expr[pos] <= '9')
			{
				int			d = expr[pos] - '0';

				if (index > (LONG_MAX - d) / 10)
					break;
				index = index * 10 + d;
				pos++;
			}
			if (pos < len && expr[pos] >= '0' && expr[pos] <= '9')
				ao_buf_append(&reason, "array index is too large");
			else if (pos == start || pos >= len || expr[pos] != ']')
				ao_buf_append(&reason, "expected an array index such as [0] after \"[\"");
			else
			{
				pos++;
				tpl_add_seg(&ref, &cap, NULL, index);
			}
		}
		else
			tpl_unexpected(&reason, expr, len, pos);
	}

	if (reason.len == 0)
	{
		if (strcmp(root, "input") == 0)
			ref.root = AO_REF_INPUT;
		else if (strcmp(root, "memory") == 0)
			ref.root = AO_REF_MEMORY;
		else if (strcmp(root, "item") == 0)
			ref.root = AO_REF_ITEM;
		else if (strcmp(root, "index") == 0)
		{
			ref.root = AO_REF_INDEX;
			if (ref.nsegs > 0)
				ao_buf_append(&reason, "index is the loop iteration number and has no fields");
		}
		else
		{
			ref.root = AO_REF_STEP;
			if (strcmp(root, "steps") == 0 && ref.nsegs >= 2 &&
				ref.segs[0].key && ref.segs[1].key && tpl_is_field(ref.segs[1].key))
			{
				/* long form steps.<id>.<field>: the first segment is the id */
				free(root);
				root = ref.segs[0].key;
				ref.segs[0].key = NULL;
				tpl_drop_segs(&ref, 1);
			}
			if (ref.nsegs == 0 || ref.segs[0].key == NULL || !tpl_is_field(ref.segs[0].key))
				ao_buf_append(&reason, "a step reference must continue with .output, .status or .error");
			else
			{
				ref.step_id = root;
				root = NULL;
				ref.field = ref.segs[0].key;
				ref.segs[0].key = NULL;
				tpl_drop_segs(&ref, 1);
			}
		}
	}
	free(root);
	if (reason.len > 0)
	{
		tpl_parse_error(err, &ref, reason.data);
		ao_buf_free(&reason);
		ao_ref_free(&ref);
		return -1;
	}
	ao_buf_free(&reason);
	*out = ref;
	return 0;
}

/* Append the canonical text of a reference (short step form). */
void
ao_ref_format(const ao_ref *ref, ao_buf *out)
{
	switch (ref->root)
	{
		case AO_REF_INPUT:
			ao_buf_append(out, "input");
			break;
		case AO_REF_MEMORY:
			ao_buf_append(out, "memory");
			break;
		case AO_REF_ITEM:
			ao_buf_append(out, "item");
			break;
		case AO_REF_INDEX:
			ao_buf_append(out, "index");
			break;
		case AO_REF_STEP:
			ao_buf_printf(out, "%s.%s", ref->step_id, ref->field);
			break;
	}
	for (size_t i = 0; i < ref->nsegs; i++)
	{
		if (ref->segs[i].key)
			ao_buf_printf(out, ".%s", ref->segs[i].key);
		else
			ao_buf_printf(out, "[%ld]", ref->segs[i].index);
	}
}

/*
 * Receives one piece of a split string: a literal (ref == NULL; lit/len)
 * or a parsed reference (whole = it is the entire string).
 */
typedef void (*tpl_piece_fn) (void *arg, const char *lit, size_t len,
							  const ao_ref *ref, int whole);

/* Report a problem through an optional callback. */
static void
tpl_problem(ao_problem_fn cb, void *cbarg, const char *path, const char *msg)
{
	if (cb)
		cb(cbarg, path, msg);
}

/*
 * Split the len bytes at s into literal pieces and references, calling fn
 * for each in order; "$${" yields the literal "${". Syntax errors are
 * reported at path and skipped (an unterminated "${" ends the string).
 * Returns the number of syntax errors.
 */
static int
tpl_split(const char *s, size_t len, const char *path, tpl_piece_fn fn,
		  void *arg, ao_problem_fn cb, void *cbarg)
{
	size_t		i = 0,
				lit = 0;
	int			problems = 0;
	ao_buf		err;

	ao_buf_init(&err);
	while (i < len)
	{
		const char *close;
		ao_ref		ref;
		size_t		j;

		if (s[i] != '$')
		{
			i++;
			continue;
		}
		if (i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{')
		{
			/* escaped: keep one "$", continue at the "{" as plain text */
			fn(arg, s + lit, i + 1 - lit, NULL, 0);
			lit = i + 2;
			i += 3;
			continue;
		}
		if (i + 1 >= len || s[i + 1] != '{')
		{
			i++;
			continue;
		}
		if (i > lit)
			fn(arg, s + lit, i - lit, NULL, 0);
		close = memchr(s + i + 2, '}', len - i - 2);
		if (close == NULL)
		{
			tpl_problem(cb, cbarg, path,
						"unterminated reference: \"${\" without a closing \"}\"");
			problems++;
			lit = i = len;
			break;
		}
		j = (size_t) (close - s);
		ao_buf_reset(&err);
		if (ao_ref_parse(s + i + 2, j - i - 2, &ref, &err) != 0)
		{
			tpl_problem(cb, cbarg, path, err.data);
			problems++;
		}
		else
		{
			fn(arg, NULL, 0, &ref, i == 0 && j == len - 1);
			ao_ref_free(&ref);
		}
		lit = i = j + 1;
	}
	if (len > lit)
		fn(arg, s + lit, len - lit, NULL, 0);
	ao_buf_free(&err);
	return problems;
}

/* State of ao_template_scan. */
typedef struct scan_ctx
{
	ao_template_ref_fn fn;
	void	   *fnarg;
	ao_problem_fn cb;
	void	   *cbarg;
	const char *path;			/* path of the string being split */
	int			problems;
	int			interrupted;	/* ao_interrupt_poll fired: stop */
} scan_ctx;

/* Scan visitor: forward references, ignore literals. */
static void
scan_piece(void *arg, const char *lit, size_t len, const ao_ref *ref, int whole)
{
	scan_ctx   *c = arg;

	(void) lit;
	(void) len;
	if (ref && c->fn)
		c->fn(c->fnarg, c->path, ref, whole);
}

/* Walk a value, splitting every string; path is restored on return. */
static void
scan_value(json_object *v, ao_buf *path, scan_ctx *c, int depth)
{
	size_t		mark = path->len;

	if (c->interrupted)
		return;
	if (ao_interrupt_poll())
	{
		c->interrupted = 1;
		tpl_problem(c->cb, c->cbarg, path->data, AO_INTERRUPTED_MESSAGE);
		c->problems++;
		return;
	}
	if (depth > TPL_MAX_DEPTH)
	{
		tpl_problem(c->cb, c->cbarg, path->data, "value is nested too deeply");
		c->problems++;
		return;
	}
	switch (json_object_get_type(v))
	{
		case json_type_string:
			c->path = path->data;
			c->problems += tpl_split(json_object_get_string(v),
									 (size_t) json_object_get_string_len(v),
									 path->data, scan_piece, c, c->cb, c->cbarg);
			break;
		case json_type_array:
			for (size_t i = 0; i < json_object_array_length(v); i++)
			{
				ao_jsonptr_push_index(path, i);
				scan_value(json_object_array_get_idx(v, i), path, c, depth + 1);
				ao_buf_truncate(path, mark);
			}
			break;
		case json_type_object:
			{
				json_object_object_foreach(v, key, member)
				{
					ao_jsonptr_push_key(path, key);
					scan_value(member, path, c, depth + 1);
					ao_buf_truncate(path, mark);
				}
			}
			break;
		default:
			break;
	}
}

/* Find and check every reference in value (see ao_template.h). */
int
ao_template_scan(json_object *value, const char *base_path,
				 ao_template_ref_fn fn, void *fnarg,
				 ao_problem_fn cb, void *cbarg)
{
	scan_ctx	c = {fn, fnarg, cb, cbarg, NULL, 0, 0};
	ao_buf		path;

	ao_buf_init(&path);
	ao_buf_append(&path, base_path ? base_path : "");
	scan_value(value, &path, &c, 0);
	ao_buf_free(&path);
	return c.problems;
}

/* State of ao_template_render. */
typedef struct render_ctx
{
	ao_ref_resolve_fn resolve;
	void	   *rarg;
	ao_problem_fn cb;
	void	   *cbarg;
	const char *path;			/* path of the string being rendered */
	int			problems;
	ao_buf		text;			/* rendered text of the current string */
	int			whole;			/* current string is one resolved reference */
	json_object *whole_value;	/* its value (borrowed) */
	int			interrupted;	/* ao_interrupt_poll fired: stop */
} render_ctx;

/* Resolve a reference, reporting it when it does not resolve. */
static int
render_resolve(render_ctx *c, const ao_ref *ref, json_object **value)
{
	ao_buf		msg;

	*value = NULL;
	if (c->resolve && c->resolve(c->rarg, ref, value))
		return 1;
	*value = NULL;
	ao_buf_init(&msg);
	ao_buf_printf(&msg, "reference ${%s} does not resolve", ref->text);
	tpl_problem(c->cb, c->cbarg, c->path, msg.data);
	ao_buf_free(&msg);
	c->problems++;
	return 0;
}

/* Render visitor: build the text, or remember a whole-string value. */
static void
render_piece(void *arg, const char *lit, size_t len, const ao_ref *ref, int whole)
{
	render_ctx *c = arg;
	json_object *v;

	if (ref == NULL)
	{
		ao_buf_append_n(&c->text, lit, len);
		return;
	}
	if (!render_resolve(c, ref, &v))
		return;
	if (whole)
	{
		c->whole = 1;
		c->whole_value = v;
	}
	else if (json_object_is_type(v, json_type_string))
		ao_buf_append_n(&c->text, json_object_get_string(v),
						(size_t) json_object_get_string_len(v));
	else
		ao_buf_append(&c->text,
					  json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
													 JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Deep copy of a json-c value (NULL stays NULL); aborts on failure. */
static json_object *
tpl_deep_copy(json_object *v)
{
	json_object *copy = NULL;

	if (v == NULL)
		return NULL;
	if (json_object_deep_copy(v, &copy, NULL) != 0)
		ao_oom(0);
	return copy;
}

/* Render one value into a new one; path is restored on return. */
static json_object *
render_value(json_object *v, ao_buf *path, render_ctx *c, int depth)
{
	size_t		mark = path->len;
	json_object *result = NULL;

	if (c->interrupted)
		return NULL;
	if (ao_interrupt_poll())
	{
		c->interrupted = 1;
		tpl_problem(c->cb, c->cbarg, path->data, AO_INTERRUPTED_MESSAGE);
		c->problems++;
		return NULL;
	}
	if (depth > TPL_MAX_DEPTH)
	{
		tpl_problem(c->cb, c->cbarg, path->data, "value is nested too deeply");
		c->problems++;
		return NULL;
	}
	switch (json_object_get_type(v))
	{
		case json_type_string:
			c->path = path->data;
			ao_buf_reset(&c->text);
			c->whole = 0;
			c->whole_value = NULL;
			c->problems += tpl_split(json_object_get_string(v),
									 (size_t) json_object_get_string_len(v),
									 path->data, render_piece, c, c->cb, c->cbarg);
			if (c->whole)
				result = tpl_deep_copy(c->whole_value);
			else
				result = json_object_new_string_len(c->text.data, (int) c->text.len);
			break;
		case json_type_array:
			result = json_object_new_array_ext((int) json_object_array_length(v));
			for (size_t i = 0; i < json_object_array_length(v); i++)
			{
				ao_jsonptr_push_index(path, i);
				json_object_array_add(result,
									  render_value(json_object_array_get_idx(v, i),
												   path, c, depth + 1));
				ao_buf_truncate(path, mark);
			}
			break;
		case json_type_object:
			result = json_object_new_object();
			{
				json_object_object_foreach(v, key, member)
				{
					ao_jsonptr_push_key(path, key);
					json_object_object_add(result, key,
										   render_value(member, path, c, depth + 1));
					ao_buf_truncate(path, mark);
				}
			}
			break;
		default:
			result = tpl_deep_copy(v);
			break;
	}
	return result;
}

/* Render a template into a new value (see ao_template.h). */
int
ao_template_render(json_object *tmpl, ao_ref_resolve_fn resolve, void *rarg,
				   ao_problem_fn cb, void *cbarg, json_object **out)
{
	render_ctx	c;
	ao_buf		path;
	json_object *result;

	memset(&c, 0, sizeof(c));
	c.resolve = resolve;
	c.rarg = rarg;
	c.cb = cb;
	c.cbarg = cbarg;
	ao_buf_init(&c.text);
	ao_buf_init(&path);
	result = render_value(tmpl, &path, &c, 0);
	ao_buf_free(&path);
	ao_buf_free(&c.text);
	if (c.problems > 0)
	{
		json_object_put(result);
		result = NULL;
	}
	*out = result;
	return c.problems;
}

/*
 * Parse a key made only of decimal digits as an array index; -1 if it is
 * not one (or does not fit).
 */
static long
tpl_digit_key(const char *key)
{
	long		index = 0;

	if (*key == '\0')
		return -1;
	for (; *key; key++)
	{
		if (*key < '0' || *key > '9' || index > (LONG_MAX - 9) / 10)
			return -1;
		index = index * 10 + (*key - '0');
	}
	return index;
}

/* Member key of object v, 0 when v is not an object or has no such key. */
static int
tpl_member(json_object *v, const char *key, json_object **out)
{
	return json_object_is_type(v, json_type_object) &&
		json_object_object_get_ex(v, key, out);
}

/* Resolve a reference against a context object (see ao_template.h). */
int
ao_ref_resolve_in_context(void *context, const ao_ref *ref, json_object **value)
{
	json_object *cur = context;
	static const char *const roots[] = {"input", "memory", "item", "index", "steps"};

	*value = NULL;
	if (!tpl_member(cur, roots[ref->root], &cur))
		return 0;
	if (ref->root == AO_REF_STEP &&
		!(tpl_member(cur, ref->step_id, &cur) && tpl_member(cur, ref->field, &cur)))
		return 0;
	for (size_t i = 0; i < ref->nsegs; i++)
	{
		long		index = ref->segs[i].index;

		if (ref->segs[i].key)
		{
			if (tpl_member(cur, ref->segs[i].key, &cur))
				continue;
			if (!json_object_is_type(cur, json_type_array) ||
				(index = tpl_digit_key(ref->segs[i].key)) < 0)
				return 0;
		}
		if (!json_object_is_type(cur, json_type_array) ||
			(size_t) index >= json_object_array_length(cur))
			return 0;
		cur = json_object_array_get_idx(cur, (size_t) index);
	}
	*value = cur;
	return 1;
}

/* ao_template_scan callback of ao_template_has_reference: count it. */
static void
count_reference(void *arg, const char *path, const ao_ref *ref, int whole)
{
	(void) path;
	(void) ref;
	(void) whole;
	(*(int *) arg)++;
}

/* See ao_template.h. */
int
ao_template_has_reference(json_object *value)
{
	int			refs = 0;
	int			broken;

	broken = ao_template_scan(value, NULL, count_reference, &refs, NULL, NULL);
	return refs + broken > 0;
}
