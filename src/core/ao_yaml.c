/*-------------------------------------------------------------------------
 *
 * ao_yaml.c
 *	  YAML to JSON conversion on top of libyaml's event parser.
 *
 * libyaml does the scanning and parsing; this file turns its event stream
 * into json-c values with an explicit stack of open collections (so deep
 * input cannot exhaust the C stack), resolves plain scalars with the
 * YAML 1.2 core schema, honours the standard tags, expands aliases by deep
 * copy under a node budget, and refuses anything JSON cannot represent.
 * A collection is attached to its parent only when it is complete, which
 * keeps alias bookkeeping simple: an anchor being built is "pending", and
 * an alias to a pending anchor is a recursive alias.
 *
 * Every node and scalar byte produced is counted against the caller's
 * expansion limit (an alias counts its anchor's full expanded size, known
 * when the anchor is finished), so an alias bomb stops before it is
 * copied; the interrupt hook is polled once per libyaml event.
 *
 * Anchors live in a small open-addressing hash keyed by name; redefining
 * an anchor replaces its previous meaning, as YAML specifies.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_yaml.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_yaml.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define YAML_TAG_PREFIX		"tag:yaml.org,2002:"

/* Longest scalar quoted in an error message, in bytes. */
#define QUOTE_MAX			40

/* What a node's tag asks for. */
typedef enum yaml_tag_kind
{
	TAG_NONE,					/* no tag: resolve by style and content */
	TAG_NONSPECIFIC,			/* "!": a string, or the plain collection */
	TAG_STR,
	TAG_INT,
	TAG_FLOAT,
	TAG_BOOL,
	TAG_NULL,
	TAG_SEQ,
	TAG_MAP,
	TAG_OTHER					/* anything else: refused */
} yaml_tag_kind;

/* States of an anchor. */
typedef enum anchor_state
{
	ANCHOR_PENDING,				/* its collection is still being built */
	ANCHOR_SCALAR,				/* a scalar: text, tag and style kept */
	ANCHOR_NODE					/* a finished collection: value kept */
} anchor_state;

typedef struct yaml_anchor
{
	char	   *name;
	anchor_state state;
	json_object *value;			/* ANCHOR_NODE: our own reference */
	size_t		count;			/* ANCHOR_NODE: nodes in value */
	size_t		bytes;			/* ANCHOR_NODE: expanded size of value */
	char	   *text;			/* ANCHOR_SCALAR: raw value */
	size_t		len;
	yaml_tag_kind tag;
	int			plain;
} yaml_anchor;

/* One open sequence or mapping. */
typedef struct yaml_frame
{
	json_object *node;
	int			is_map;
	char	   *key;			/* mapping: key waiting for its value */
	size_t		anchor1;		/* anchor index + 1, or 0 */
	size_t		start_count;	/* b->nodes before this node */
	size_t		start_expanded; /* b->expanded before this node */
} yaml_frame;

typedef struct yaml_builder
{
	const char *text;
	size_t		len;
	yaml_frame *stack;
	size_t		depth,
				cap;
	json_object *root;
	yaml_anchor *anchors;
	size_t		nanchors,
				acap;
	size_t	   *aslots;			/* anchor index + 1, 0 = empty */
	size_t		amask;
	size_t		nodes;			/* nodes created, alias copies included */
	size_t		alias_nodes;	/* nodes created by alias expansion */
	size_t		expanded;		/* scalar bytes + nodes produced */
	size_t		max_expansion;
	int			documents;
	int			failed;			/* 0, or the negative AO_YAML_* code */
	ao_buf		msg;			/* the error message */
} yaml_builder;

/* realloc that aborts on failure, like the rest of the core (ao_core.c). */
static void *
yb_realloc(void *p, size_t size)
{
	return ao_realloc(p, size);
}

/* NUL-terminated copy of n bytes. */
static char *
yb_strndup(const char *s, size_t n)
{
	char	   *p = yb_realloc(NULL, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/*
 * Start the error message at a 0-based line and column ("line L, column C:
 * ", 1-based) and return the buffer to append the rest to. Every caller
 * stops the conversion right after, so there is one error per call.
 */
static ao_buf *
yb_fail_at(yaml_builder *b, size_t line0, size_t column0)
{
	b->failed = AO_YAML_ERROR;
	ao_buf_reset(&b->msg);
	ao_buf_printf(&b->msg, "line %zu, column %zu: ", line0 + 1, column0 + 1);
	return &b->msg;
}

/* yb_fail_at for a libyaml mark. */
static ao_buf *
yb_fail(yaml_builder *b, yaml_mark_t mark)
{
	return yb_fail_at(b, mark.line, mark.column);
}

/*
 * Append s (len bytes) in double quotes, cut at QUOTE_MAX bytes on a UTF-8
 * character boundary with "..." when longer.
 */
static void
yb_append_quoted(ao_buf *out, const char *s, size_t len)
{
	size_t		n = len;

	if (n > QUOTE_MAX)
	{
		n = QUOTE_MAX;
		while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
			n--;
	}
	ao_buf_append(out, "\"");
	ao_buf_append_n(out, s, n);
	ao_buf_append(out, n < len ? "...\"" : "\"");
}

/* Append a tag as users write it: "!!int" for the standard ones. */
static void
yb_append_tag(ao_buf *out, const char *tag)
{
	size_t		plen = strlen(YAML_TAG_PREFIX);

	if (strncmp(tag, YAML_TAG_PREFIX, plen) == 0)
	{
		ao_buf_append(out, "!!");
		ao_buf_append(out, tag + plen);
	}
	else
		ao_buf_append(out, tag);
}

/*
 * Count bytes more of expanded output; past the limit, report and return
 * -1 (AO_YAML_TOO_LARGE).
 */
static int
yb_expand(yaml_builder *b, size_t bytes, yaml_mark_t mark)
{
	if (bytes > b->max_expansion - b->expanded)
	{
		ao_buf_printf(yb_fail(b, mark),
					  "YAML document expands to more than %zu bytes (aliases)",
					  b->max_expansion);
		b->failed = AO_YAML_TOO_LARGE;
		return -1;
	}
	b->expanded += bytes;
	return 0;
}

/* Classify a libyaml tag (NULL when the node has none). */
static yaml_tag_kind
yb_tag_kind(const yaml_char_t *utag)
{
	static const struct
	{
		const char *name;
		yaml_tag_kind kind;
	}			known[] = {
		{"str", TAG_STR}, {"int", TAG_INT}, {"float", TAG_FLOAT},
		{"bool", TAG_BOOL}, {"null", TAG_NULL}, {"seq", TAG_SEQ},
		{"map", TAG_MAP},
	};
	const char *tag = (const char *) utag;
	size_t		plen = strlen(YAML_TAG_PREFIX);

	if (tag == NULL)
		return TAG_NONE;
	if (strcmp(tag, "!") == 0)
		return TAG_NONSPECIFIC;
	if (strncmp(tag, YAML_TAG_PREFIX, plen) != 0)
		return TAG_OTHER;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(tag + plen, known[i].name) == 0)
			return known[i].kind;
	return TAG_OTHER;
}

/*
 * Check that a tag suits a node kind ("scalar", "sequence", "mapping");
 * report and return -1 otherwise.
 */
static int
yb_check_tag(yaml_builder *b, const yaml_char_t *tag, const char *kind,
			 yaml_mark_t mark)
{
	yaml_tag_kind k = yb_tag_kind(tag);
	int			ok;

	if (k == TAG_OTHER)
	{
		ao_buf	   *m = yb_fail(b, mark);

		ao_buf_append(m, "unsupported tag ");
		yb_append_tag(m, (const char *) tag);
		ao_buf_append(m, " (supported: !!str, !!int, !!float, !!bool, !!null, !!seq, !!map)");
		return -1;
	}
	if (strcmp(kind, "sequence") == 0)
		ok = k == TAG_NONE || k == TAG_NONSPECIFIC || k == TAG_SEQ;
	else if (strcmp(kind, "mapping") == 0)
		ok = k == TAG_NONE || k == TAG_NONSPECIFIC || k == TAG_MAP;
	else
		ok = k != TAG_SEQ && k != TAG_MAP;
	if (!ok)
	{
		ao_buf	   *m = yb_fail(b, mark);

		ao_buf_append(m, "tag ");
		yb_append_tag(m, (const char *) tag);
		ao_buf_printf(m, " cannot be applied to a %s", kind);
		return -1;
	}
	return 0;
}

/* Core-schema null: "", "~", null, Null, NULL. */
static int
yb_is_null(const char *s, size_t len)
{
	return len == 0 || (len == 1 && s[0] == '~') ||
		(len == 4 && (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 ||
					  memcmp(s, "NULL", 4) == 0));
}

/* Core-schema boolean; sets *val. yes/no/on/off are not booleans. */
static int
yb_is_bool(const char *s, size_t len, int *val)
{
	if (len == 4 && (memcmp(s, "true", 4) == 0 || memcmp(s, "True", 4) == 0 ||
					 memcmp(s, "TRUE", 4) == 0))
	{
		*val = 1;
		return 1;
	}
	if (len == 5 && (memcmp(s, "false", 5) == 0 || memcmp(s, "False", 5) == 0 ||
					 memcmp(s, "FALSE", 5) == 0))
	{
		*val = 0;
		return 1;
	}
	return 0;
}

/* Is c a digit of the given base (8, 10 or 16)? Returns its value or -1. */
static int
yb_digit(char c, int base)
{
	int			d = -1;

	if (c >= '0' && c <= '9')
		d = c - '0';
	else if (base == 16 && c >= 'a' && c <= 'f')
		d = c - 'a' + 10;
	else if (base == 16 && c >= 'A' && c <= 'F')
		d = c - 'A' + 10;
	return d < base ? d : -1;
}

/* Result of matching a core-schema integer. */
typedef enum int_match
{
	INT_NO,						/* not an integer */
	INT_OK,						/* *val holds it */
	INT_BIG_DECIMAL,			/* decimal outside int64 */
	INT_BIG_RADIX				/* octal or hex outside int64 */
} int_match;

/* Match [-+]?[0-9]+, 0o[0-7]+ or 0x[0-9a-fA-F]+ and convert. */
static int_match
yb_match_int(const char *s, size_t len, int64_t *val)
{
	int			base = 10;
	size_t		i = 0;
	int			neg = 0;
	uint64_t	mag = 0,
				limit;
	int			overflow = 0;

	if (len > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x'))
	{
		base = s[1] == 'o' ? 8 : 16;
		i = 2;
	}
	else if (len > 0 && (s[0] == '-' || s[0] == '+'))
	{
		neg = s[0] == '-';
		i = 1;
	}
	if (i >= len)
		return INT_NO;
	limit = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
	for (; i < len; i++)
	{
		int			d = yb_digit(s[i], base);

		if (d < 0)
			return INT_NO;
		if (mag > (limit - (uint64_t) d) / (uint64_t) base)
			overflow = 1;
		else
			mag = mag * (uint64_t) base + (uint64_t) d;
	}
	if (overflow)
		return base == 10 ? INT_BIG_DECIMAL : INT_BIG_RADIX;
	if (neg)
		*val = mag == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) mag;
	else
		*val = (int64_t) mag;
	return INT_OK;
}

/*
 * Match the core-schema float syntax
 *	 [-+]? ( "." [0-9]+ | [0-9]+ ( "." [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
 * (which includes plain decimal integers) and append the same number as
 * valid JSON text to out: "+" dropped, leading zeros trimmed, "0" before a
 * bare ".", "0" after a trailing ".", the exponent copied as written.
 */
static int
yb_match_float(const char *s, size_t len, ao_buf *out)
{
	size_t		i = 0,
				int_start,
				int_len,
				frac_start = 0,
				frac_len = 0,
				exp_start;
	int			dot = 0;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		i++;
	int_start = i;
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	int_len = i - int_start;
	if (i < len && s[i] == '.')
	{
		dot = 1;
		frac_start = ++i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		frac_len = i - frac_start;
	}
	if (int_len == 0 && frac_len == 0)
		return 0;
	exp_start = i;
	if (i < len && (s[i] == 'e' || s[i] == 'E'))
	{
		size_t		exp_digits = ++i;

		if (i < len && (s[i] == '-' || s[i] == '+'))
			exp_digits = ++i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == exp_digits)
			return 0;
	}
	if (i != len)
		return 0;

	if (s[0] == '-')
		ao_buf_append(out, "-");
	while (int_len > 1 && s[int_start] == '0')
		int_start++, int_len--;
	if (int_len == 0)
		ao_buf_append(out, "0");
	else
		ao_buf_append_n(out, s + int_start, int_len);
	if (dot)
	{
		ao_buf_append(out, ".");
		if (frac_len == 0)
			ao_buf_append(out, "0");
		else
			ao_buf_append_n(out, s + frac_start, frac_len);
	}
	ao_buf_append_n(out, s + exp_start, len - exp_start);
	return 1;
}

/* [-+]?.inf in any of the core spellings. */
static int
yb_is_inf(const char *s, size_t len)
{
	if (len > 0 && (s[0] == '-' || s[0] == '+'))
		s++, len--;
	return len == 4 && (memcmp(s, ".inf", 4) == 0 || memcmp(s, ".Inf", 4) == 0 ||
						memcmp(s, ".INF", 4) == 0);
}

/* .nan in any of the core spellings. */
static int
yb_is_nan(const char *s, size_t len)
{
	return len == 4 && (memcmp(s, ".nan", 4) == 0 || memcmp(s, ".NaN", 4) == 0 ||
						memcmp(s, ".NAN", 4) == 0);
}

/*
 * Build a double from JSON number text, keeping the text for output so no
 * digit is lost. Reports a number too large for a double.
 */
static int
yb_make_double(yaml_builder *b, const char *json, const char *s, size_t len,
			   yaml_mark_t mark, json_object **out)
{
	double		d = strtod(json, NULL);

	if (isinf(d))
	{
		ao_buf	   *m = yb_fail(b, mark);

		ao_buf_append(m, "number ");
		yb_append_quoted(m, s, len);
		ao_buf_append(m, " is out of range");
		return -1;
	}
	*out = json_object_new_double_s(d, json);
	return 0;
}

/*
 * Resolve a scalar into a new json-c value (*out, NULL for null) according
 * to its tag (already checked to suit a scalar) and style. Returns 0, or
 * -1 after reporting an error at mark.
 */
static int
yb_scalar(yaml_builder *b, yaml_tag_kind tag, const char *s, size_t len,
		  int plain, yaml_mark_t mark, json_object **out)
{
	int64_t		ival = 0;
	int			bval;
	const char *want;
	ao_buf	   *m;

	*out = NULL;
	if (tag == TAG_NONE && !plain)
		tag = TAG_STR;			/* quoted and block scalars are strings */
	if (tag == TAG_NONSPECIFIC || tag == TAG_STR)
	{
		*out = json_object_new_string_len(s, (int) len);
		return 0;
	}
	if ((tag == TAG_NONE || tag == TAG_NULL) && yb_is_null(s, len))
		return 0;
	if ((tag == TAG_NONE || tag == TAG_BOOL) && yb_is_bool(s, len, &bval))
	{
		*out = json_object_new_boolean(bval);
		return 0;
	}
	if (tag == TAG_NONE || tag == TAG_INT || tag == TAG_FLOAT)
	{
		int_match	im = yb_match_int(s, len, &ival);
		ao_buf		num;
		int			matched = 1;
		int			rc = 0;

		if (yb_is_inf(s, len) || yb_is_nan(s, len))
		{
			m = yb_fail(b, mark);
			ao_buf_append(m, "YAML value ");
			yb_append_quoted(m, s, len);
			ao_buf_printf(m, " (%s) cannot be represented in JSON; quote it to keep it as a string",
						  yb_is_nan(s, len) ? "not a number" : "infinity");
			return -1;
		}
		if (im == INT_BIG_RADIX)
		{
			m = yb_fail(b, mark);
			ao_buf_append(m, "integer ");
			yb_append_quoted(m, s, len);
			ao_buf_append(m, " is out of range");
			return -1;
		}
		if (im == INT_OK && tag != TAG_FLOAT)
		{
			*out = json_object_new_int64(ival);
			return 0;
		}

		/*
		 * Left: a decimal integer beyond int64, float syntax, or !!float of
		 * an integer. Doubles keep their JSON text, so no digit is lost.
		 */
		ao_buf_init(&num);
		if (im == INT_OK)
			ao_buf_printf(&num, "%lld.0", (long long) ival);
		else if (tag == TAG_INT && im == INT_NO)
			matched = 0;
		else if (yb_match_float(s, len, &num))
		{
			if (tag == TAG_FLOAT && strpbrk(num.data, ".eE") == NULL)
				ao_buf_append(&num, ".0");
		}
		else
			matched = 0;
		if (matched)
			rc = yb_make_double(b, num.data, s, len, mark, out);
		ao_buf_free(&num);
		if (matched)
			return rc;
	}
	if (tag == TAG_NONE)
	{
		*out = json_object_new_string_len(s, (int) len);
		return 0;
	}
	want = tag == TAG_INT ? "!!int" : tag == TAG_FLOAT ? "!!float" :
		tag == TAG_BOOL ? "!!bool" : "!!null";
	m = yb_fail(b, mark);
	yb_append_quoted(m, s, len);
	ao_buf_printf(m, " is not a valid %s", want);
	return -1;
}

/* FNV-1a hash of a NUL-terminated anchor name. */
static size_t
yb_hash(const char *s)
{
	uint64_t	h = UINT64_C(14695981039346656037);

	for (; *s; s++)
	{
		h ^= (unsigned char) *s;
		h *= UINT64_C(1099511628211);
	}
	return (size_t) h;
}

/* Slot of anchor name in the hash: its index + 1, or an empty slot. */
static size_t
yb_anchor_slot(const yaml_builder *b, const char *name)
{
	size_t		pos = yb_hash(name) & b->amask;

	while (b->aslots[pos] != 0 && strcmp(b->anchors[b->aslots[pos] - 1].name, name) != 0)
		pos = (pos + 1) & b->amask;
	return pos;
}

/* The anchor called name, or NULL. */
static yaml_anchor *
yb_anchor_find(const yaml_builder *b, const char *name)
{
	size_t		pos;

	if (b->aslots == NULL)
		return NULL;
	pos = yb_anchor_slot(b, name);
	return b->aslots[pos] ? &b->anchors[b->aslots[pos] - 1] : NULL;
}

/* Drop what an anchor currently means, keeping its name. */
static void
yb_anchor_clear(yaml_anchor *a)
{
	json_object_put(a->value);
	free(a->text);
	a->value = NULL;
	a->text = NULL;
	a->len = 0;
	a->count = 0;
}

/*
 * Define (or redefine) anchor name and return its index, cleared and in
 * the given state.
 */
static size_t
yb_anchor_define(yaml_builder *b, const char *name, anchor_state state)
{
	size_t		pos;
	yaml_anchor *a;

	if (b->nanchors * 2 >= b->amask)
	{
		/* grow the hash (and the array) and re-insert everything */
		size_t		cap = b->amask ? (b->amask + 1) * 2 : 16;

		free(b->aslots);
		b->aslots = yb_realloc(NULL, cap * sizeof(size_t));
		memset(b->aslots, 0, cap * sizeof(size_t));
		b->amask = cap - 1;
		for (size_t i = 0; i < b->nanchors; i++)
			b->aslots[yb_anchor_slot(b, b->anchors[i].name)] = i + 1;
	}
	pos = yb_anchor_slot(b, name);
	if (b->aslots[pos] == 0)
	{
		if (b->nanchors == b->acap)
		{
			b->acap = b->acap ? b->acap * 2 : 8;
			b->anchors = yb_realloc(b->anchors, b->acap * sizeof(yaml_anchor));
		}
		a = &b->anchors[b->nanchors];
		memset(a, 0, sizeof(*a));
		a->name = yb_strndup(name, strlen(name));
		b->aslots[pos] = ++b->nanchors;
	}
	a = &b->anchors[b->aslots[pos] - 1];
	yb_anchor_clear(a);
	a->state = state;
	return b->aslots[pos] - 1;
}

/* Remember a scalar under an anchor. */
static void
yb_anchor_scalar(yaml_builder *b, const char *name, const char *s, size_t len,
				 yaml_tag_kind tag, int plain)
{
	size_t		i = yb_anchor_define(b, name, ANCHOR_SCALAR);	/* may move anchors */
	yaml_anchor *a = &b->anchors[i];

	a->text = yb_strndup(s, len);
	a->len = len;
	a->tag = tag;
	a->plain = plain;
}

/*
 * Attach a finished node to the open collection (or make it the root).
 * Takes ownership of v.
 */
static void
yb_attach(yaml_builder *b, json_object *v)
{
	yaml_frame *f;

	if (b->depth == 0)
	{
		b->root = v;
		return;
	}
	f = &b->stack[b->depth - 1];
	if (!f->is_map)
		json_object_array_add(f->node, v);
	else
	{
		json_object_object_add(f->node, f->key, v);
		free(f->key);
		f->key = NULL;
	}
}

/* Is the open collection a mapping waiting for a key? */
static int
yb_expect_key(const yaml_builder *b)
{
	return b->depth > 0 && b->stack[b->depth - 1].is_map &&
		b->stack[b->depth - 1].key == NULL;
}

/*
 * Take a mapping key (len bytes): refuse NUL bytes and duplicates, else
 * keep it until its value arrives.
 */
static int
yb_key(yaml_builder *b, const char *s, size_t len, yaml_mark_t mark)
{
	yaml_frame *f = &b->stack[b->depth - 1];

	if (memchr(s, '\0', len) != NULL)
	{
		ao_buf_append(yb_fail(b, mark), "mapping key contains a NUL character");
		return -1;
	}
	if (json_object_object_get_ex(f->node, s, NULL))
	{
		ao_buf	   *m = yb_fail(b, mark);

		ao_buf_append(m, "duplicate key ");
		yb_append_quoted(m, s, len);
		return -1;
	}
	if (yb_expand(b, len + 1, mark) != 0)
		return -1;
	f->key = yb_strndup(s, len);
	return 0;
}

/* Handle a scalar event, as a key or a value. */
static int
yb_on_scalar(yaml_builder *b, const yaml_event_t *ev)
{
	const char *s = (const char *) ev->data.scalar.value;
	size_t		len = ev->data.scalar.length;
	int			plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	yaml_tag_kind tag = yb_tag_kind(ev->data.scalar.tag);
	json_object *v;

	if (yb_check_tag(b, ev->data.scalar.tag, "scalar", ev->start_mark) != 0)
		return -1;
	if (ev->data.scalar.anchor)
		yb_anchor_scalar(b, (const char *) ev->data.scalar.anchor, s, len, tag, plain);
	if (yb_expect_key(b))
		return yb_key(b, s, len, ev->start_mark);
	if (yb_expand(b, len + 1, ev->start_mark) != 0)
		return -1;
	if (yb_scalar(b, tag, s, len, plain, ev->start_mark, &v) != 0)
		return -1;
	b->nodes++;
	yb_attach(b, v);
	return 0;
}

/* Handle an alias event: expand it by deep copy under the node budget. */
static int
yb_on_alias(yaml_builder *b, const yaml_event_t *ev)
{
	const char *name = (const char *) ev->data.alias.anchor;
	yaml_anchor *a = yb_anchor_find(b, name);
	json_object *v = NULL;

	if (a == NULL)
	{
		ao_buf_printf(yb_fail(b, ev->start_mark), "alias *%s has no anchor &%s before it",
					  name, name);
		return -1;
	}
	if (a->state == ANCHOR_PENDING)
	{
		ao_buf_printf(yb_fail(b, ev->start_mark),
					  "alias *%s refers to a node that contains it (recursive alias)", name);
		return -1;
	}
	if (yb_expect_key(b))
	{
		if (a->state != ANCHOR_SCALAR)
		{
			ao_buf_printf(yb_fail(b, ev->start_mark),
						  "complex mapping keys are not supported; alias *%s used as a key is not a scalar",
						  name);
			return -1;
		}
		return yb_key(b, a->text, a->len, ev->start_mark);
	}
	if (b->alias_nodes + (a->state == ANCHOR_SCALAR ? 1 : a->count) > AO_YAML_MAX_ALIAS_NODES)
	{
		ao_buf_printf(yb_fail(b, ev->start_mark),
					  "aliases expand to more than %d nodes; refusing a possible \"billion laughs\" document",
					  AO_YAML_MAX_ALIAS_NODES);
		return -1;
	}
	if (yb_expand(b, a->state == ANCHOR_SCALAR ? a->len + 1 : a->bytes,
				  ev->start_mark) != 0)
		return -1;
	if (a->state == ANCHOR_SCALAR)
	{
		if (yb_scalar(b, a->tag, a->text, a->len, a->plain, ev->start_mark, &v) != 0)
			return -1;
		b->alias_nodes++;
		b->nodes++;
	}
	else
	{
		if (a->value != NULL && json_object_deep_copy(a->value, &v, NULL) != 0)
			ao_oom(0);
		b->alias_nodes += a->count;
		b->nodes += a->count;
	}
	yb_attach(b, v);
	return 0;
}

/* Handle the start of a sequence or mapping: push a frame. */
static int
yb_on_start(yaml_builder *b, const yaml_event_t *ev, int is_map)
{
	const yaml_char_t *tag = is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
	const yaml_char_t *anchor = is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
	yaml_frame *f;

	if (yb_expect_key(b))
	{
		ao_buf_append(yb_fail(b, ev->start_mark),
					  "complex mapping keys are not supported; keys must be scalars");
		return -1;
	}
	if (yb_check_tag(b, tag, is_map ? "mapping" : "sequence", ev->start_mark) != 0)
		return -1;
	if (b->depth >= AO_YAML_MAX_DEPTH)
	{
		ao_buf_printf(yb_fail(b, ev->start_mark),
					  "nesting deeper than %d levels is not supported", AO_YAML_MAX_DEPTH);
		return -1;
	}
	if (yb_expand(b, 1, ev->start_mark) != 0)
		return -1;
	if (b->depth == b->cap)
	{
		b->cap = b->cap ? b->cap * 2 : 16;
		b->stack = yb_realloc(b->stack, b->cap * sizeof(yaml_frame));
	}
	f = &b->stack[b->depth++];
	memset(f, 0, sizeof(*f));
	f->is_map = is_map;
	f->node = is_map ? json_object_new_object() : json_object_new_array();
	f->start_count = b->nodes++;
	f->start_expanded = b->expanded - 1;
	if (anchor)
		f->anchor1 = yb_anchor_define(b, (const char *) anchor, ANCHOR_PENDING) + 1;
	return 0;
}

/* Handle the end of a sequence or mapping: pop, anchor and attach it. */
static void
yb_on_end(yaml_builder *b)
{
	yaml_frame	f = b->stack[--b->depth];

	/*
	 * Finish the anchor unless the same name was redefined inside this
	 * node: that later definition is then the one aliases see.
	 */
	if (f.anchor1 && b->anchors[f.anchor1 - 1].state == ANCHOR_PENDING)
	{
		yaml_anchor *a = &b->anchors[f.anchor1 - 1];

		a->state = ANCHOR_NODE;
		a->value = json_object_get(f.node);
		a->count = b->nodes - f.start_count;
		a->bytes = b->expanded - f.start_expanded;
	}
	free(f.key);				/* NULL: libyaml always pairs keys */
	yb_attach(b, f.node);
}

/* Dispatch one event; returns -1 after reporting an error. */
static int
yb_event(yaml_builder *b, const yaml_event_t *ev)
{
	switch (ev->type)
	{
		case YAML_DOCUMENT_START_EVENT:
			if (++b->documents > 1)
			{
				ao_buf_append(yb_fail(b, ev->start_mark),
							  "multiple YAML documents are not supported");
				return -1;
			}
			return 0;
		case YAML_SCALAR_EVENT:
			return yb_on_scalar(b, ev);
		case YAML_ALIAS_EVENT:
			return yb_on_alias(b, ev);
		case YAML_SEQUENCE_START_EVENT:
			return yb_on_start(b, ev, 0);
		case YAML_MAPPING_START_EVENT:
			return yb_on_start(b, ev, 1);
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			yb_on_end(b);
			return 0;
		default:
			return 0;
	}
}

/* Report a libyaml parser failure with line and column. */
static void
yb_parser_error(yaml_builder *b, const yaml_parser_t *p)
{
	ao_buf	   *m;

	if (p->error == YAML_READER_ERROR)
	{
		/* reader errors carry a byte offset, not a mark */
		size_t		off = p->problem_offset < b->len ? p->problem_offset : b->len;
		size_t		line = 0,
					bol = 0;

		for (size_t i = 0; i < off; i++)
			if (b->text[i] == '\n')
				line++, bol = i + 1;
		m = yb_fail_at(b, line, ao_utf8_length(b->text + bol, off - bol));
		ao_buf_append(m, p->problem ? p->problem : "invalid input");
		if (p->problem_value >= 0 && p->problem && strstr(p->problem, "octet"))
			ao_buf_printf(m, " (byte 0x%02X)", (unsigned) p->problem_value);
		else if (p->problem_value >= 0)
			ao_buf_printf(m, " (U+%04X)", (unsigned) p->problem_value);
		return;
	}
	if (p->error == YAML_MEMORY_ERROR)
	{
		ao_buf_append(yb_fail(b, p->mark), "out of memory while parsing YAML");
		return;
	}
	m = yb_fail(b, p->problem_mark);
	ao_buf_append(m, p->problem ? p->problem : "invalid YAML");
	if (p->context)
		ao_buf_printf(m, " (%s started at line %zu, column %zu)", p->context,
					  p->context_mark.line + 1, p->context_mark.column + 1);
}

/* Release everything the builder holds (the root only if still owned). */
static void
yb_cleanup(yaml_builder *b)
{
	for (size_t i = b->depth; i-- > 0;)
	{
		json_object_put(b->stack[i].node);
		free(b->stack[i].key);
	}
	free(b->stack);
	for (size_t i = 0; i < b->nanchors; i++)
	{
		yb_anchor_clear(&b->anchors[i]);
		free(b->anchors[i].name);
	}
	free(b->anchors);
	free(b->aslots);
	ao_buf_free(&b->msg);
}

/* Convert YAML to a json-c value under an expansion limit (see ao_yaml.h). */
int
ao_yaml_parse_limited(const char *text, size_t len, size_t max_expansion,
					  json_object **out, ao_buf *err)
{
	yaml_builder b;
	yaml_parser_t parser;

	*out = NULL;
	memset(&b, 0, sizeof(b));
	b.text = text ? text : "";
	b.len = text ? len : 0;
	b.max_expansion = max_expansion;
	ao_buf_init(&b.msg);
	if (!yaml_parser_initialize(&parser))
		ao_oom(0);
	yaml_parser_set_input_string(&parser, (const unsigned char *) b.text, b.len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
	for (;;)
	{
		yaml_event_t ev;
		int			done;
		int			rc;

		if (ao_interrupt_poll())
		{
			b.failed = AO_YAML_INTERRUPTED;
			ao_buf_reset(&b.msg);
			ao_buf_append(&b.msg, AO_INTERRUPTED_MESSAGE);
			break;
		}
		if (!yaml_parser_parse(&parser, &ev))
		{
			yb_parser_error(&b, &parser);
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		rc = yb_event(&b, &ev);
		yaml_event_delete(&ev);
		if (rc != 0 || done)
			break;
	}
	yaml_parser_delete(&parser);
	if (b.failed)
	{
		if (err)
			ao_buf_append(err, b.msg.data);
		json_object_put(b.root);
		b.root = NULL;
	}
	*out = b.root;
	yb_cleanup(&b);
	return b.failed;
}

/* Convert YAML under the default expansion limit (see ao_yaml.h). */
int
ao_yaml_parse(const char *text, size_t len, json_object **out, ao_buf *err)
{
	return ao_yaml_parse_limited(text, len, AO_YAML_DEFAULT_MAX_EXPANSION, out, err);
}

/* Convert YAML, returning the value; err is reset first (see ao_yaml.h). */
json_object *
ao_yaml_to_json(const char *text, size_t len, ao_buf *err)
{
	json_object *out;

	if (err)
		ao_buf_reset(err);
	ao_yaml_parse(text, len, &out, err);
	return out;
}
