/*-------------------------------------------------------------------------
 *
 * ao_json_schema.c
 *	  JSON Schema draft-07 validator on json-c, with PCRE2 for patterns.
 *
 * A validation run builds a small context: the table of "$id"s found by a
 * schema-aware walk of the root (so relative and "#name" references can be
 * resolved without any network access), a cache of compiled regular
 * expressions, the stack of "$ref" expansions in progress (to stop cycles
 * that do not consume the instance) and the JSON-pointer path of the
 * instance value being looked at.
 *
 * Subschemas whose outcome only matters as a yes/no answer (anyOf, oneOf,
 * not, if, contains) are evaluated "quietly": they report nothing and stop
 * at their first failure, and the applicator reports one summary line
 * instead. Everything else reports each problem with the instance path.
 *
 * Numbers are compared by their exact decimal value: integers as json-c
 * holds them, doubles by the text they were parsed from (json-c keeps it;
 * a double made without text counts as its shortest round-tripping
 * decimal form). So 1.5e300 > 1e300 although both are the same double
 * after rounding, 1e-400 > 0, and 18446744073709551617 differs from
 * 18446744073709551616 (json-c clamps such integers when it parses them:
 * ao_json_exact_numbers re-reads them as doubles that keep their digits).
 * const, enum and uniqueItems use the same exact equality.
 *
 * multipleOf is decided exactly with decimal arithmetic: with value =
 * A * 10^p and divisor = B * 10^q, value / divisor is an integer iff
 * p >= q and B divides A * 10^(p - q), computed modulo B in 64 bits. Any
 * exponent works (multipleOf 1e-1001 is evaluated exactly), but B must
 * fit in 64 bits (at most 19 significant digits, or 20 up to
 * 18446744073709551615): the
 * check refuses a divisor with more ("too precise to evaluate exactly")
 * rather than answer with floating point, and validation against such an
 * unchecked schema reports the value as not checkable.
 *
 * uniqueItems sorts canonical forms of the items (numbers as exact
 * decimals, object members by key), so it is O(n log n), not pairwise.
 * Regular expressions run under PCRE2 match and depth limits, and the
 * interrupt hook of ao_core.h is polled once per schema evaluation and in
 * long loops; an interrupted run reports "interrupted".
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_json_schema.c
 *
 *-------------------------------------------------------------------------
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "ao_json_schema.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>

/* Longest rendering of one JSON value inside a message, in bytes. */
#define JS_RENDER_MAX 80
/* How many enum values a message lists before eliding the rest. */
#define JS_ENUM_LIST_MAX 20
/* Longest pure "$ref" -> "$ref" chain ao_json_schema_check follows. */
#define JS_REF_CHAIN_MAX 64

/* A compiled "pattern" or "patternProperties" regular expression. */
typedef struct js_regex
{
	char	   *pattern;		/* NUL-terminated copy of the source */
	size_t		pattern_len;
	pcre2_code *code;			/* NULL when compilation failed */
	char	   *error;			/* compilation error message, or NULL */
} js_regex;

/* One schema object carrying an "$id" (entry 0 is always the root). */
typedef struct js_id
{
	json_object *node;
	char	   *uri;			/* resolved $id, empty fragment removed */
	char	   *base;			/* base URI in effect inside node */
	char	   *path;			/* JSON pointer of node inside the root */
} js_id;

/* One "$ref" expansion in progress. */
typedef struct js_ref_frame
{
	json_object *schema;
	json_object *instance;
} js_ref_frame;

/* State of one ao_json_schema_validate or ao_json_schema_check call. */
typedef struct js_ctx
{
	json_object *root;
	ao_problem_fn cb;
	void	   *arg;
	int			nproblems;
	int			quiet;			/* > 0: report nothing, stop at first failure */
	bool		aborted;		/* recursion limit hit or interrupted: unwind */
	int			depth;
	ao_buf		path;			/* instance (validate) or schema (check) path */
	const char *prefix;			/* prepended to messages (propertyNames) */
	ao_buf		render[2];		/* scratch buffers for rendered values */
	js_regex  **regexes;
	size_t		nregexes;
	size_t		regexes_cap;
	js_id	   *ids;
	size_t		nids;
	size_t		ids_cap;
	js_ref_frame *refs;
	size_t		nrefs;
	size_t		refs_cap;
	pcre2_compile_context *ccontext;
	pcre2_match_data *mdata;
	pcre2_match_context *mcontext;	/* match and depth limits */
	ao_buf	   *why;			/* when set: the first failure at quiet level why_quiet */
	int			why_quiet;
	size_t		why_path_len;	/* instance path length of the anyOf */
} js_ctx;

/* Outcome of resolving a "$ref". */
typedef enum js_ref_status
{
	JS_REF_OK,
	JS_REF_REMOTE,				/* names a document other than this schema */
	JS_REF_UNRESOLVED			/* this document, but no such location */
} js_ref_status;

/* A JSON number in the representation json-c holds it in. */
typedef enum js_num_kind
{
	JS_NUM_INT,					/* fits int64 */
	JS_NUM_UINT,				/* above INT64_MAX, fits uint64 */
	JS_NUM_DOUBLE
} js_num_kind;

typedef struct js_num
{
	js_num_kind kind;
	int64_t		i;
	uint64_t	u;
	double		d;
} js_num;

/* Result of js_num_cmp when a NaN is involved. */
#define JS_CMP_UNORDERED 2

/* Kinds of js_decimal. */
#define JS_DEC_FINITE 0
#define JS_DEC_NAN 1
#define JS_DEC_INF 2

/*
 * A number's exact value: (-1)^neg * digits * 10^exp, digits without
 * leading or trailing zeros ("" and neg = false for zero); or a NaN or an
 * infinity that has no digits (a double made without text).
 */
typedef struct js_decimal
{
	int			special;		/* JS_DEC_* */
	bool		neg;
	char	   *digits;
	size_t		ndigits;
	long long	exp;
} js_decimal;

/*
 * multipleOf divisors with more significant digits are refused (20 digits
 * are fine up to UINT64_MAX, see js_digits_fit_uint64).
 */
#define JS_MULTIPLE_OF_MAX_DIGITS 19

static bool js_validate(js_ctx *ctx, json_object *schema, json_object *inst,
						const char *base);
static void js_check_node(js_ctx *ctx, json_object *node, const char *base,
						  int depth);


/* ----------------------------------------------------------------------
 * Memory and reporting helpers
 * ----------------------------------------------------------------------
 */

/* malloc that aborts on failure, like the rest of the core. */
static void *
js_malloc(size_t size)
{
	return ao_malloc(size);
}

/* Copy n bytes of s into a new NUL-terminated string. */
static char *
js_strndup(const char *s, size_t n)
{
	char	   *p = js_malloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* Copy a C string. */
static char *
js_strdup(const char *s)
{
	return js_strndup(s, strlen(s));
}

/* Make room for need elements of size elem in a growable array. */
static void *
js_grow(void *array, size_t *cap, size_t need, size_t elem)
{
	size_t		ncap;

	if (need <= *cap)
		return array;
	ncap = *cap ? *cap * 2 : 8;
	while (ncap < need)
		ncap *= 2;
	array = ao_realloc(array, ncap * elem);
	*cap = ncap;
	return array;
}

/* qsort comparator for an array of C strings. */
static int
js_strptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Hand one problem to the callback (with the propertyNames prefix, if any). */
static void
js_emit(js_ctx *ctx, const char *path, const char *msg)
{
	ctx->nproblems++;
	if (ctx->cb == NULL)
		return;
	if (ctx->prefix != NULL)
	{
		ao_buf		full;

		ao_buf_init(&full);
		ao_buf_printf(&full, "%s: %s", ctx->prefix, msg);
		ctx->cb(ctx->arg, path, full.data);
		ao_buf_free(&full);
	}
	else
		ctx->cb(ctx->arg, path, msg);
}

/* Format a message and emit it at the current path. */
static void
js_vreport(js_ctx *ctx, const char *fmt, va_list ap)
__attribute__((format(printf, 2, 0)));

static void
js_vreport(js_ctx *ctx, const char *fmt, va_list ap)
{
	va_list		ap2;
	int			n;
	char	   *msg;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	msg = js_malloc((size_t) n + 1);
	vsnprintf(msg, (size_t) n + 1, fmt, ap);
	js_emit(ctx, ctx->path.data, msg);
	free(msg);
}

/* Report a problem at the current path unless evaluating quietly. */
/* Is an anyOf waiting for the first reason its current alternative fails? */
static bool
js_wants_why(js_ctx *ctx)
{
	return ctx->why != NULL && ctx->quiet == ctx->why_quiet && ctx->why->len == 0;
}

static void
js_fail(js_ctx *ctx, const char *fmt,...)
__attribute__((format(printf, 2, 3)));

static void
js_fail(js_ctx *ctx, const char *fmt,...)
{
	va_list		ap;

	if (ctx->quiet > 0)
	{
		/* anyOf/oneOf want to say why an alternative failed (its first reason) */
		if (js_wants_why(ctx))
		{
			char		msg[256];

			va_start(ap, fmt);
			vsnprintf(msg, sizeof(msg), fmt, ap);
			va_end(ap);
			if (ctx->path.len > ctx->why_path_len)
				ao_buf_printf(ctx->why, "%s: ", ctx->path.data + ctx->why_path_len);
			ao_buf_append(ctx->why, msg);
		}
		return;
	}
	va_start(ap, fmt);
	js_vreport(ctx, fmt, ap);
	va_end(ap);
}

/*
 * Stop the whole run: the schema recursed without end (or too deep). This
 * is a schema problem, so it is reported even inside quiet evaluation.
 */
static void
js_abort(js_ctx *ctx)
{
	if (ctx->aborted)
		return;
	ctx->aborted = true;
	js_emit(ctx, ctx->path.data, "schema recursion too deep");
}

/*
 * Poll the interrupt hook (ao_core.h); when it fires, stop the whole run
 * with one "interrupted" problem (reported even inside quiet evaluation)
 * and return true.
 */
static bool
js_interrupted(js_ctx *ctx)
{
	if (ctx->aborted)
		return true;
	if (!ao_interrupt_poll())
		return false;
	ctx->aborted = true;
	js_emit(ctx, "", AO_INTERRUPTED_MESSAGE);
	return true;
}

/* Append v as compact JSON, cut at JS_RENDER_MAX bytes. */
static void
js_render_append(ao_buf *b, json_object *v)
{
	const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
												   JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t		n = strlen(s);

	if (n > JS_RENDER_MAX)
	{
		size_t		cut = JS_RENDER_MAX;

		while (cut > 0 && ((unsigned char) s[cut] & 0xC0) == 0x80)
			cut--;
		ao_buf_append_n(b, s, cut);
		ao_buf_append(b, "...");
	}
	else
		ao_buf_append_n(b, s, n);
}

/* Render v into scratch buffer slot (0 or 1); valid until the slot's reuse. */
static const char *
js_render(js_ctx *ctx, int slot, json_object *v)
{
	ao_buf_reset(&ctx->render[slot]);
	js_render_append(&ctx->render[slot], v);
	return ctx->render[slot].data;
}

/* "s" unless n is 1, for "1 character" / "2 characters". */
static const char *
js_plural(uint64_t n, const char *many)
{
	return n == 1 ? "" : many;
}

/* The JSON type of a schema node, for "got ..." messages. */
static const char *
js_json_type_name(json_object *o)
{
	switch (json_object_get_type(o))
	{
		case json_type_null:
			return "null";
		case json_type_boolean:
			return "boolean";
		case json_type_int:
		case json_type_double:
			return "number";
		case json_type_string:
			return "string";
		case json_type_array:
			return "array";
		case json_type_object:
			return "object";
	}
	return "unknown";
}


/* ----------------------------------------------------------------------
 * Numbers
 * ----------------------------------------------------------------------
 */

/* True for json-c int and double values. */
static bool
js_is_number(json_object *o)
{
	return json_object_is_type(o, json_type_int) ||
		json_object_is_type(o, json_type_double);
}

/* Read an int in its exact representation (doubles: the double value). */
static void
js_num_get(json_object *o, js_num *n)
{
	if (json_object_is_type(o, json_type_int))
	{
		int64_t		i = json_object_get_int64(o);

		if (i == INT64_MAX)
		{
			/* json-c clamps uint64 values when read as int64 */
			n->kind = JS_NUM_UINT;
			n->u = json_object_get_uint64(o);
		}
		else
		{
			n->kind = JS_NUM_INT;
			n->i = i;
		}
	}
	else
	{
		n->kind = JS_NUM_DOUBLE;
		n->d = json_object_get_double(o);
	}
}

/* True for an ASCII digit. */
static bool
js_isdigit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Parse decimal text ("-12.5e-3", "1E+2") into sign, digits * 10^exp with
 * no leading or trailing zero digits. False (and nothing to free) when s is
 * not a decimal number, e.g. "inf", "NaN" or "0x1p3". Exponents beyond
 * 10^17 in size saturate there (no document can tell them apart).
 */
static bool
js_decimal_parse(const char *s, js_decimal *d)
{
	const char *p = s;
	size_t		lead = 0;
	bool		any = false;

	d->special = JS_DEC_FINITE;
	d->neg = false;
	d->digits = js_malloc(strlen(s) + 1);
	d->ndigits = 0;
	d->exp = 0;
	if (*p == '-' || *p == '+')
		d->neg = (*p++ == '-');
	for (; js_isdigit(*p); p++, any = true)
		d->digits[d->ndigits++] = *p;
	if (*p == '.' || *p == ',')
	{
		/* ',' in case LC_NUMERIC uses a decimal comma */
		for (p++; js_isdigit(*p); p++, any = true)
		{
			d->digits[d->ndigits++] = *p;
			d->exp--;
		}
	}
	if (!any)
		goto fail;
	if (*p == 'e' || *p == 'E')
	{
		bool		neg = false;
		long long	e = 0;

		p++;
		if (*p == '+' || *p == '-')
			neg = (*p++ == '-');
		if (!js_isdigit(*p))
			goto fail;
		for (; js_isdigit(*p); p++)
			if (e < 100000000000000000LL)
				e = e * 10 + (*p - '0');
		d->exp += neg ? -e : e;
	}
	if (*p != '\0')
		goto fail;
	while (lead < d->ndigits && d->digits[lead] == '0')
		lead++;
	memmove(d->digits, d->digits + lead, d->ndigits - lead);
	d->ndigits -= lead;
	while (d->ndigits > 0 && d->digits[d->ndigits - 1] == '0')
	{
		d->ndigits--;
		d->exp++;
	}
	d->digits[d->ndigits] = '\0';
	if (d->ndigits == 0)
	{
		d->neg = false;			/* -0 == 0 */
		d->exp = 0;
	}
	return true;

fail:
	free(d->digits);
	d->digits = NULL;
	return false;
}

/*
 * The exact decimal value of a json-c number. Integers are exact. A double
 * parsed from JSON text (or made by json_object_new_double_s, as the YAML
 * converter does) keeps its text, and that text is the number: 1e-400 is
 * not 0 and 1.5e300 is not the double nearest to it. A double without
 * text is taken at its shortest round-tripping decimal form (0.1 is 0.1).
 * NaN and infinities without text are "special". Free with
 * js_decimal_free.
 */
static void
js_decimal_get(json_object *o, js_decimal *d)
{
	char		buf[64];

	if (json_object_is_type(o, json_type_int))
	{
		js_num		n;

		js_num_get(o, &n);
		if (n.kind == JS_NUM_UINT)
			snprintf(buf, sizeof(buf), "%llu", (unsigned long long) n.u);
		else
			snprintf(buf, sizeof(buf), "%lld", (long long) n.i);
		if (js_decimal_parse(buf, d))
			return;
	}
	else
	{
		double		v = json_object_get_double(o);
		const char *text = json_object_get_userdata(o);

		/* the tokener's text, if that is what the userdata holds */
		if (text != NULL && strlen(text) < 100000000 &&
			js_decimal_parse(text, d))
		{
			double		t = strtod(text, NULL);

			if (t == v || (t == 0 && v == 0))
				return;
			free(d->digits);
		}
		if (isnan(v) || isinf(v))
		{
			memset(d, 0, sizeof(*d));
			d->special = isnan(v) ? JS_DEC_NAN : JS_DEC_INF;
			d->neg = v < 0;
			return;
		}
		for (int prec = 1; prec <= 17; prec++)
		{
			snprintf(buf, sizeof(buf), "%.*g", prec, v);
			if (strtod(buf, NULL) == v)
				break;
		}
		if (js_decimal_parse(buf, d))
			return;
	}
	memset(d, 0, sizeof(*d));
	d->special = JS_DEC_NAN;	/* cannot happen */
}

static void
js_decimal_free(js_decimal *d)
{
	free(d->digits);
	d->digits = NULL;
}

/* Compare two decimals exactly: -1, 0, 1 or JS_CMP_UNORDERED. */
static int
js_decimal_cmp(const js_decimal *a, const js_decimal *b)
{
	int			r;
	long long	pa,
				pb;
	size_t		n;

	if (a->special == JS_DEC_NAN || b->special == JS_DEC_NAN)
		return JS_CMP_UNORDERED;
	if (a->special == JS_DEC_INF || b->special == JS_DEC_INF)
	{
		int			ra = a->special == JS_DEC_INF ? (a->neg ? -2 : 2) : 0;
		int			rb = b->special == JS_DEC_INF ? (b->neg ? -2 : 2) : 0;

		return ra < rb ? -1 : (ra > rb ? 1 : 0);
	}
	if (a->ndigits == 0 || b->ndigits == 0)
	{
		if (a->ndigits == 0 && b->ndigits == 0)
			return 0;
		if (a->ndigits == 0)
			return b->neg ? 1 : -1;
		return a->neg ? -1 : 1;
	}
	if (a->neg != b->neg)
		return a->neg ? -1 : 1;
	/* same sign: compare magnitudes, then flip for negatives */
	pa = a->exp + (long long) a->ndigits;
	pb = b->exp + (long long) b->ndigits;
	if (pa != pb)
		r = pa < pb ? -1 : 1;
	else
	{
		n = a->ndigits < b->ndigits ? a->ndigits : b->ndigits;
		r = memcmp(a->digits, b->digits, n);
		if (r == 0)
			r = a->ndigits == b->ndigits ? 0 : (a->ndigits < b->ndigits ? -1 : 1);
		else
			r = r < 0 ? -1 : 1;
	}
	return a->neg ? -r : r;
}

/* Compare two json-c numbers exactly: -1, 0, 1 or JS_CMP_UNORDERED. */
static int
js_num_cmp_obj(json_object *a, json_object *b)
{
	js_decimal	da,
				db;
	int			r;

	if (json_object_is_type(a, json_type_int) && json_object_is_type(b, json_type_int))
	{
		js_num		na,
					nb;

		js_num_get(a, &na);
		js_num_get(b, &nb);
		if (na.kind == JS_NUM_INT && nb.kind == JS_NUM_INT)
			return na.i < nb.i ? -1 : (na.i > nb.i ? 1 : 0);
		if (na.kind == JS_NUM_UINT && nb.kind == JS_NUM_UINT)
			return na.u < nb.u ? -1 : (na.u > nb.u ? 1 : 0);
		return na.kind == JS_NUM_INT ? -1 : 1;
	}
	js_decimal_get(a, &da);
	js_decimal_get(b, &db);
	r = js_decimal_cmp(&da, &db);
	js_decimal_free(&da);
	js_decimal_free(&db);
	return r;
}

/* Sign of a number: -1, 0, 1, or JS_CMP_UNORDERED for NaN. */
static int
js_num_sign(json_object *o)
{
	js_decimal	d;
	int			r;

	js_decimal_get(o, &d);
	if (d.special == JS_DEC_NAN)
		r = JS_CMP_UNORDERED;
	else if (d.special == JS_DEC_INF || d.ndigits > 0)
		r = d.neg ? -1 : 1;
	else
		r = 0;
	js_decimal_free(&d);
	return r;
}

/* True for numbers with an integral exact value, in any representation. */
static bool
js_is_integer(json_object *o)
{
	js_decimal	d;
	bool		r;

	if (json_object_is_type(o, json_type_int))
		return true;
	if (!json_object_is_type(o, json_type_double))
		return false;
	js_decimal_get(o, &d);
	r = d.special == JS_DEC_FINITE && d.exp >= 0;
	js_decimal_free(&d);
	return r;
}

/*
 * Read a non-negative integral number (a count keyword such as maxLength),
 * saturating at UINT64_MAX. False if o is not one.
 */
static bool
js_get_count(json_object *o, uint64_t *out)
{
	js_num		n;

	if (!js_is_integer(o))
		return false;
	js_num_get(o, &n);
	switch (n.kind)
	{
		case JS_NUM_INT:
			if (n.i < 0)
				return false;
			*out = (uint64_t) n.i;
			return true;
		case JS_NUM_UINT:
			*out = n.u;
			return true;
		case JS_NUM_DOUBLE:
			if (n.d < 0)
				return false;
			*out = n.d >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t) n.d;
			return true;
	}
	return false;
}

/* (a + b) mod m for a, b < m, without overflow. */
static uint64_t
js_addmod(uint64_t a, uint64_t b, uint64_t m)
{
	return a >= m - b ? a - (m - b) : a + b;
}

/* (a * b) mod m for a, b < m, without overflow (shift and add). */
static uint64_t
js_mulmod(uint64_t a, uint64_t b, uint64_t m)
{
	uint64_t	r = 0;

	while (b > 0)
	{
		if (b & 1)
			r = js_addmod(r, a, m);
		a = js_addmod(a, a, m);
		b >>= 1;
	}
	return r;
}

/* (10^e) mod m. */
static uint64_t
js_pow10mod(unsigned long long e, uint64_t m)
{
	uint64_t	r = 1 % m;
	uint64_t	b = 10 % m;

	while (e > 0)
	{
		if (e & 1)
			r = js_mulmod(r, b, m);
		b = js_mulmod(b, b, m);
		e >>= 1;
	}
	return r;
}

/* Do the significant digits of d, as an integer, fit in a uint64? */
static bool
js_digits_fit_uint64(const js_decimal *d)
{
	return d->ndigits <= JS_MULTIPLE_OF_MAX_DIGITS ||
		(d->ndigits == 20 && strcmp(d->digits, "18446744073709551615") <= 0);
}

/*
 * Can multipleOf = divisor be evaluated exactly? Its significant digits
 * (the B of B * 10^q) must fit the 64-bit modular arithmetic below, and it
 * must be a finite number.
 */
static bool
js_multiple_of_evaluable(json_object *divisor)
{
	js_decimal	d;
	bool		r;

	js_decimal_get(divisor, &d);
	r = d.special == JS_DEC_FINITE && js_digits_fit_uint64(&d);
	js_decimal_free(&d);
	return r;
}

/*
 * Is value an integer multiple of divisor (> 0)? Exact, on the decimal
 * values: with value = A * 10^p and divisor = B * 10^q (A and B free of
 * trailing zeros), value / divisor is an integer iff A = 0, or p >= q and B
 * divides A * 10^(p - q). Returns 1 or 0, or -1 when it cannot be decided
 * exactly (B has more than JS_MULTIPLE_OF_MAX_DIGITS digits, or a value
 * or divisor is NaN or infinite without digits).
 */
static int
js_is_multiple(json_object *value, json_object *divisor)
{
	js_decimal	v,
				d;
	int			result;

	js_decimal_get(value, &v);
	js_decimal_get(divisor, &d);
	if (v.special != JS_DEC_FINITE || d.special != JS_DEC_FINITE ||
		!js_digits_fit_uint64(&d))
		result = -1;
	else if (d.ndigits == 0 || v.ndigits == 0)
		result = 1;
	else if (v.exp < d.exp)
		result = 0;				/* A has no factor 10 left to cancel */
	else
	{
		uint64_t	b = 0;
		uint64_t	r = 0;

		for (size_t i = 0; i < d.ndigits; i++)
			b = b * 10 + (uint64_t) (d.digits[i] - '0');
		for (size_t i = 0; i < v.ndigits; i++)
			r = js_addmod(js_mulmod(r, 10 % b, b),
						  (uint64_t) (v.digits[i] - '0') % b, b);
		r = js_mulmod(r, js_pow10mod((unsigned long long) (v.exp - d.exp), b), b);
		result = (r == 0);
	}
	js_decimal_free(&v);
	js_decimal_free(&d);
	return result;
}

/*
 * Append a canonical form of v to out: two values have the same form iff
 * they are equal in the JSON Schema sense (numbers by exact value, object
 * members in any order), NaN aside. Used to find duplicates for
 * uniqueItems by sorting instead of comparing every pair.
 */
static void
js_canonical_append(ao_buf *out, json_object *v)
{
	switch (json_object_get_type(v))
	{
		case json_type_null:
			ao_buf_append(out, "n");
			break;
		case json_type_boolean:
			ao_buf_append(out, json_object_get_boolean(v) ? "t" : "f");
			break;
		case json_type_int:
		case json_type_double:
			{
				js_decimal	d;

				js_decimal_get(v, &d);
				if (d.special == JS_DEC_NAN)
					ao_buf_append(out, "#nan");
				else if (d.special == JS_DEC_INF)
					ao_buf_append(out, d.neg ? "#-inf" : "#inf");
				else if (d.ndigits == 0)
					ao_buf_append(out, "#0");
				else
					ao_buf_printf(out, "#%s%se%lld", d.neg ? "-" : "", d.digits, d.exp);
				js_decimal_free(&d);
				break;
			}
		case json_type_string:
			ao_buf_printf(out, "s%d:", json_object_get_string_len(v));
			ao_buf_append_n(out, json_object_get_string(v),
							(size_t) json_object_get_string_len(v));
			break;
		case json_type_array:
			ao_buf_append(out, "[");
			for (size_t i = 0; i < json_object_array_length(v); i++)
			{
				js_canonical_append(out, json_object_array_get_idx(v, i));
				ao_buf_append(out, ",");
			}
			ao_buf_append(out, "]");
			break;
		case json_type_object:
			{
				size_t		n = (size_t) json_object_object_length(v);
				const char **keys = js_malloc((n ? n : 1) * sizeof(char *));
				size_t		k = 0;

				{
					json_object_object_foreach(v, key, val)
					{
						(void) val;
						keys[k++] = key;
					}
				}
				qsort(keys, k, sizeof(char *), js_strptr_cmp);
				ao_buf_append(out, "{");
				for (size_t i = 0; i < k; i++)
				{
					ao_buf_printf(out, "%zu:", strlen(keys[i]));
					ao_buf_append(out, keys[i]);
					js_canonical_append(out, json_object_object_get(v, keys[i]));
					ao_buf_append(out, ",");
				}
				ao_buf_append(out, "}");
				free(keys);
				break;
			}
	}
}


/* ----------------------------------------------------------------------
 * Equality
 * ----------------------------------------------------------------------
 */

/* JSON Schema equality of two values (numbers by value, objects unordered). */
bool
ao_json_equal(json_object *a, json_object *b)
{
	json_type	ta = json_object_get_type(a);
	json_type	tb = json_object_get_type(b);

	if (js_is_number(a) && js_is_number(b))
		return js_num_cmp_obj(a, b) == 0;
	if (ta != tb)
		return false;
	switch (ta)
	{
		case json_type_null:
			return true;
		case json_type_boolean:
			return !json_object_get_boolean(a) == !json_object_get_boolean(b);
		case json_type_string:
			return json_object_get_string_len(a) == json_object_get_string_len(b) &&
				memcmp(json_object_get_string(a), json_object_get_string(b),
					   (size_t) json_object_get_string_len(a)) == 0;
		case json_type_array:
			{
				size_t		n = json_object_array_length(a);

				if (n != json_object_array_length(b))
					return false;
				for (size_t i = 0; i < n; i++)
					if (!ao_json_equal(json_object_array_get_idx(a, i),
									   json_object_array_get_idx(b, i)))
						return false;
				return true;
			}
		case json_type_object:
			{
				if (json_object_object_length(a) != json_object_object_length(b))
					return false;
				{
					/* the iteration macro declares variables: give it a block */
					json_object_object_foreach(a, key, val)
					{
						json_object *other;

						if (!json_object_object_get_ex(b, key, &other) ||
							!ao_json_equal(val, other))
							return false;
					}
				}
				return true;
			}
		default:
			return false;
	}
}


/* ----------------------------------------------------------------------
 * URI references (RFC 3986 section 5) for "$id" and "$ref"
 * ----------------------------------------------------------------------
 */

/* The components of a URI reference; NULL pointers are undefined parts. */
typedef struct js_uri
{
	const char *scheme;
	size_t		scheme_len;
	const char *auth;
	size_t		auth_len;
	const char *path;			/* always defined, maybe empty */
	size_t		path_len;
	const char *query;
	size_t		query_len;
	const char *frag;
	size_t		frag_len;
} js_uri;

/* Split s into components (RFC 3986 appendix B). */
static void
js_uri_parse(const char *s, js_uri *u)
{
	const char *p = s;
	const char *q = s;

	memset(u, 0, sizeof(*u));
	while (*q && *q != ':' && *q != '/' && *q != '?' && *q != '#')
		q++;
	if (*q == ':' && q > p)
	{
		u->scheme = p;
		u->scheme_len = (size_t) (q - p);
		p = q + 1;
	}
	if (p[0] == '/' && p[1] == '/')
	{
		p += 2;
		for (q = p; *q && *q != '/' && *q != '?' && *q != '#'; q++)
			;
		u->auth = p;
		u->auth_len = (size_t) (q - p);
		p = q;
	}
	for (q = p; *q && *q != '?' && *q != '#'; q++)
		;
	u->path = p;
	u->path_len = (size_t) (q - p);
	p = q;
	if (*p == '?')
	{
		for (q = ++p; *q && *q != '#'; q++)
			;
		u->query = p;
		u->query_len = (size_t) (q - p);
		p = q;
	}
	if (*p == '#')
	{
		u->frag = p + 1;
		u->frag_len = strlen(p + 1);
	}
}

/* Append path (len bytes) to out with "." and ".." segments removed. */
static void
js_remove_dot_segments(ao_buf *out, const char *path, size_t len)
{
	char	   *in = js_strndup(path, len);
	char	   *p = in;

	while (*p)
	{
		if (strncmp(p, "../", 3) == 0)
			p += 3;
		else if (strncmp(p, "./", 2) == 0)
			p += 2;
		else if (strncmp(p, "/./", 3) == 0)
			p += 2;
		else if (strcmp(p, "/.") == 0)
		{
			/* "/." becomes "/" */
			p[1] = '/';
			p += 1;
		}
		else if (strncmp(p, "/../", 4) == 0 || strcmp(p, "/..") == 0)
		{
			char	   *slash;

			/* "/../x" becomes "/x", a final "/.." becomes "/" */
			if (p[3] == '\0')
			{
				p[2] = '/';
				p += 2;
			}
			else
				p += 3;
			slash = strrchr(out->data, '/');
			ao_buf_truncate(out, slash ? (size_t) (slash - out->data) : 0);
		}
		else if (strcmp(p, ".") == 0 || strcmp(p, "..") == 0)
			break;
		else
		{
			char	   *end = strchr(p + 1, '/');
			size_t		n = end ? (size_t) (end - p) : strlen(p);

			ao_buf_append_n(out, p, n);
			p += n;
		}
	}
	free(in);
}

/* Resolve reference ref against base (RFC 3986 5.2.2); malloc'd result. */
static char *
js_uri_resolve(const char *base, const char *ref)
{
	js_uri		b,
				r;
	const char *scheme;
	size_t		scheme_len;
	const char *auth;
	size_t		auth_len;
	const char *query;
	size_t		query_len;
	ao_buf		path,
				out;

	js_uri_parse(base, &b);
	js_uri_parse(ref, &r);
	ao_buf_init(&path);
	if (r.scheme || r.auth)
	{
		scheme = r.scheme ? r.scheme : b.scheme;
		scheme_len = r.scheme ? r.scheme_len : b.scheme_len;
		auth = r.auth;
		auth_len = r.auth_len;
		js_remove_dot_segments(&path, r.path, r.path_len);
		query = r.query;
		query_len = r.query_len;
	}
	else
	{
		scheme = b.scheme;
		scheme_len = b.scheme_len;
		auth = b.auth;
		auth_len = b.auth_len;
		if (r.path_len == 0)
		{
			ao_buf_append_n(&path, b.path, b.path_len);
			query = r.query ? r.query : b.query;
			query_len = r.query ? r.query_len : b.query_len;
		}
		else
		{
			if (r.path[0] == '/')
				js_remove_dot_segments(&path, r.path, r.path_len);
			else
			{
				ao_buf		merged;
				const char *slash = NULL;

				ao_buf_init(&merged);
				for (size_t i = 0; i < b.path_len; i++)
					if (b.path[i] == '/')
						slash = b.path + i;
				if (b.auth && b.path_len == 0)
					ao_buf_append(&merged, "/");
				else if (slash)
					ao_buf_append_n(&merged, b.path, (size_t) (slash - b.path) + 1);
				ao_buf_append_n(&merged, r.path, r.path_len);
				js_remove_dot_segments(&path, merged.data, merged.len);
				ao_buf_free(&merged);
			}
			query = r.query;
			query_len = r.query_len;
		}
	}

	ao_buf_init(&out);
	if (scheme)
	{
		ao_buf_append_n(&out, scheme, scheme_len);
		ao_buf_append(&out, ":");
	}
	if (auth)
	{
		ao_buf_append(&out, "//");
		ao_buf_append_n(&out, auth, auth_len);
	}
	ao_buf_append_n(&out, path.data, path.len);
	if (query)
	{
		ao_buf_append(&out, "?");
		ao_buf_append_n(&out, query, query_len);
	}
	if (r.frag)
	{
		ao_buf_append(&out, "#");
		ao_buf_append_n(&out, r.frag, r.frag_len);
	}
	ao_buf_free(&path);
	return out.data;
}

/* Decode %XX escapes of a URI fragment (a "%00" is kept as is). */
static char *
js_percent_decode(const char *s)
{
	char	   *out = js_malloc(strlen(s) + 1);
	char	   *o = out;

	while (*s)
	{
		if (s[0] == '%' && s[1] && s[2] &&
			strchr("0123456789abcdefABCDEF", s[1]) &&
			strchr("0123456789abcdefABCDEF", s[2]) &&
			!(s[1] == '0' && s[2] == '0'))
		{
			char		hex[3] = {s[1], s[2], '\0'};

			*o++ = (char) strtol(hex, NULL, 16);
			s += 3;
		}
		else
			*o++ = *s++;
	}
	*o = '\0';
	return out;
}


/* ----------------------------------------------------------------------
 * Schema lookups: keywords, the $id table, $ref resolution
 * ----------------------------------------------------------------------
 */

/* The member name of object schema, or NULL (absent or JSON null). */
static json_object *
js_kw(json_object *schema, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(schema, name, &v))
		return NULL;
	return v;
}

/* The member name if it is a string, else NULL. */
static const char *
js_kw_string(json_object *schema, const char *name)
{
	json_object *v = js_kw(schema, name);

	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* True for values usable as a schema: objects and booleans. */
static bool
js_is_schema(json_object *o)
{
	return json_object_is_type(o, json_type_object) ||
		json_object_is_type(o, json_type_boolean);
}

/* The $id table entry of schema object node, or NULL. */
static js_id *
js_find_node(js_ctx *ctx, json_object *node)
{
	for (size_t i = 0; i < ctx->nids; i++)
		if (ctx->ids[i].node == node)
			return &ctx->ids[i];
	return NULL;
}

/* The $id table entry whose resolved URI is uri, or NULL. */
static js_id *
js_find_uri(js_ctx *ctx, const char *uri)
{
	for (size_t i = 0; i < ctx->nids; i++)
		if (strcmp(ctx->ids[i].uri, uri) == 0)
			return &ctx->ids[i];
	return NULL;
}

/* Record node's resolved $id (takes ownership of uri); returns the entry. */
static js_id *
js_add_id(js_ctx *ctx, json_object *node, char *uri)
{
	js_id	   *e;
	size_t		len = strlen(uri);
	char	   *hash;

	if (len > 0 && uri[len - 1] == '#')
		uri[len - 1] = '\0';
	ctx->ids = js_grow(ctx->ids, &ctx->ids_cap, ctx->nids + 1, sizeof(js_id));
	e = &ctx->ids[ctx->nids++];
	e->node = node;
	e->uri = uri;
	e->base = js_strdup(uri);
	hash = strchr(e->base, '#');
	if (hash)
		*hash = '\0';
	e->path = js_strdup(ctx->path.data);
	return e;
}

/*
 * The base URI in effect inside schema object node, given the base of its
 * parent: changed by a string "$id" unless a "$ref" sibling overrides it
 * (draft 7 ignores every sibling of "$ref"). *owned receives a string to
 * free when the id was not in the table.
 */
static const char *
js_enter_base(js_ctx *ctx, json_object *node, const char *base, char **owned)
{
	const char *id = js_kw_string(node, "$id");
	js_id	   *e;
	char	   *hash;

	*owned = NULL;
	if (id == NULL || js_kw(node, "$ref") != NULL)
		return base;
	e = js_find_node(ctx, node);
	if (e)
		return e->base;
	*owned = js_uri_resolve(base, id);
	hash = strchr(*owned, '#');
	if (hash)
		*hash = '\0';
	return *owned;
}

/* Push a keyword and, when key != NULL, a member name onto ctx->path. */
static size_t
js_path_push(js_ctx *ctx, const char *keyword, const char *key)
{
	size_t		mark = ctx->path.len;

	ao_jsonptr_push_key(&ctx->path, keyword);
	if (key)
		ao_jsonptr_push_key(&ctx->path, key);
	return mark;
}

/* Walk every subschema of node for the $id table. */
static void
js_collect(js_ctx *ctx, json_object *node, const char *base, int depth)
{
	static const char *const single[] = {
		"additionalItems", "additionalProperties", "contains", "propertyNames",
		"not", "if", "then", "else", "items"
	};
	static const char *const arrays[] = {"items", "allOf", "anyOf", "oneOf"};
	static const char *const maps[] = {
		"properties", "patternProperties", "definitions", "dependencies"
	};
	const char *id;

	if (!json_object_is_type(node, json_type_object) ||
		depth > 4 * AO_JSON_SCHEMA_MAX_DEPTH)
		return;
	id = js_kw_string(node, "$id");
	if (node != ctx->root && id != NULL && js_kw(node, "$ref") == NULL)
		base = js_add_id(ctx, node, js_uri_resolve(base, id))->base;

	for (size_t k = 0; k < sizeof(single) / sizeof(single[0]); k++)
	{
		json_object *sub = js_kw(node, single[k]);

		if (json_object_is_type(sub, json_type_object))
		{
			size_t		mark = js_path_push(ctx, single[k], NULL);

			js_collect(ctx, sub, base, depth + 1);
			ao_buf_truncate(&ctx->path, mark);
		}
	}
	for (size_t k = 0; k < sizeof(arrays) / sizeof(arrays[0]); k++)
	{
		json_object *arr = js_kw(node, arrays[k]);

		if (!json_object_is_type(arr, json_type_array))
			continue;
		for (size_t i = 0; i < json_object_array_length(arr); i++)
		{
			size_t		mark = js_path_push(ctx, arrays[k], NULL);

			ao_jsonptr_push_index(&ctx->path, i);
			js_collect(ctx, json_object_array_get_idx(arr, i), base, depth + 1);
			ao_buf_truncate(&ctx->path, mark);
		}
	}
	for (size_t k = 0; k < sizeof(maps) / sizeof(maps[0]); k++)
	{
		json_object *map = js_kw(node, maps[k]);

		if (!json_object_is_type(map, json_type_object))
			continue;
		{
			json_object_object_foreach(map, key, sub)
			{
				size_t		mark = js_path_push(ctx, maps[k], key);

				js_collect(ctx, sub, base, depth + 1);
				ao_buf_truncate(&ctx->path, mark);
			}
		}
	}
}

/*
 * Follow a JSON pointer (a URI fragment, percent-encoded, "" or "/...")
 * from the $id entry doc. The base URI of the target is that of the last
 * $id-carrying schema passed on the way.
 */
static js_ref_status
js_walk_pointer(js_ctx *ctx, js_id *doc, const char *frag,
				json_object **target, const char **target_base)
{
	char	   *ptr = js_percent_decode(frag);
	const char *p = ptr;
	json_object *cur = doc->node;
	const char *base = doc->base;
	js_ref_status status = JS_REF_OK;
	ao_buf		tok;

	ao_buf_init(&tok);
	while (*p == '/')
	{
		json_object *next = NULL;

		ao_buf_reset(&tok);
		for (p++; *p && *p != '/'; p++)
		{
			if (*p == '~' && (p[1] == '0' || p[1] == '1'))
			{
				ao_buf_append(&tok, p[1] == '0' ? "~" : "/");
				p++;
			}
			else if (*p == '~')
				status = JS_REF_UNRESOLVED;
			else
				ao_buf_append_n(&tok, p, 1);
		}
		if (status != JS_REF_OK)
			break;
		if (json_object_is_type(cur, json_type_object))
		{
			if (!json_object_object_get_ex(cur, tok.data, &next))
				status = JS_REF_UNRESOLVED;
		}
		else if (json_object_is_type(cur, json_type_array))
		{
			size_t		idx = 0;
			bool		ok = tok.len > 0 && tok.len < 10 &&
				!(tok.data[0] == '0' && tok.len > 1);

			for (size_t i = 0; ok && i < tok.len; i++)
			{
				ok = js_isdigit(tok.data[i]);
				idx = idx * 10 + (size_t) (tok.data[i] - '0');
			}
			if (ok && idx < json_object_array_length(cur))
				next = json_object_array_get_idx(cur, idx);
			else
				status = JS_REF_UNRESOLVED;
		}
		else
			status = JS_REF_UNRESOLVED;
		if (status != JS_REF_OK)
			break;
		cur = next;
		if (json_object_is_type(cur, json_type_object))
		{
			js_id	   *e = js_find_node(ctx, cur);

			if (e && js_kw(cur, "$ref") == NULL)
				base = e->base;
		}
	}
	if (status == JS_REF_OK && *p != '\0')
		status = JS_REF_UNRESOLVED;
	if (status == JS_REF_OK)
	{
		*target = cur;
		*target_base = base;
	}
	ao_buf_free(&tok);
	free(ptr);
	return status;
}

/*
 * Resolve ref against base: a "#name" location-independent id, or a
 * document (the root or a subschema with that absolute $id) plus an
 * optional JSON-pointer fragment.
 */
static js_ref_status
js_resolve_ref(js_ctx *ctx, const char *ref, const char *base,
			   json_object **target, const char **target_base)
{
	char	   *abs = js_uri_resolve(base, ref);
	char	   *hash = strchr(abs, '#');
	const char *frag = "";
	js_id	   *doc;
	js_ref_status status;

	if (hash && hash[1] != '\0' && hash[1] != '/')
	{
		js_id	   *e = js_find_uri(ctx, abs);

		if (e)
		{
			*target = e->node;
			*target_base = e->base;
			free(abs);
			return JS_REF_OK;
		}
	}
	if (hash)
	{
		*hash = '\0';
		frag = hash + 1;
	}
	doc = js_find_uri(ctx, abs);
	if (doc == NULL)
		status = JS_REF_REMOTE;
	else if (*frag != '\0' && *frag != '/')
		status = JS_REF_UNRESOLVED;
	else
		status = js_walk_pointer(ctx, doc, frag, target, target_base);
	free(abs);
	return status;
}


/* ----------------------------------------------------------------------
 * Regular expressions
 * ----------------------------------------------------------------------
 */

/*
 * The compiled form of pattern (cached per run). Compiled in UTF mode with
 * ECMA-262 flavoured options: \d \w \s stay ASCII (no PCRE2_UCP), "$"
 * matches only at the very end, \uHHHH escapes are understood.
 */
static js_regex *
js_regex_get(js_ctx *ctx, const char *pattern, size_t len)
{
	js_regex   *re;
	int			errcode;
	PCRE2_SIZE	erroffset;
	uint32_t	options = PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY;

	for (size_t i = 0; i < ctx->nregexes; i++)
	{
		re = ctx->regexes[i];
		if (re->pattern_len == len && memcmp(re->pattern, pattern, len) == 0)
			return re;
	}
#ifdef PCRE2_MATCH_INVALID_UTF
	options |= PCRE2_MATCH_INVALID_UTF;
#endif
	if (ctx->ccontext == NULL)
	{
		ctx->ccontext = pcre2_compile_context_create(NULL);
		if (ctx->ccontext == NULL)
			ao_oom(0);
#ifdef PCRE2_EXTRA_ALT_BSUX
		pcre2_set_compile_extra_options(ctx->ccontext, PCRE2_EXTRA_ALT_BSUX);
#endif
	}
	re = js_malloc(sizeof(js_regex));
	re->pattern = js_strndup(pattern, len);
	re->pattern_len = len;
	re->error = NULL;
	re->code = pcre2_compile((PCRE2_SPTR) pattern, len, options, &errcode,
							 &erroffset, ctx->ccontext);
	if (re->code == NULL)
	{
		PCRE2_UCHAR msg[256];
		ao_buf		err;

		if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
			strcpy((char *) msg, "unknown error");
		ao_buf_init(&err);
		ao_buf_printf(&err, "%s at offset %zu", (char *) msg, (size_t) erroffset);
		re->error = err.data;
	}
	ctx->regexes = js_grow(ctx->regexes, &ctx->regexes_cap, ctx->nregexes + 1,
						   sizeof(js_regex *));
	ctx->regexes[ctx->nregexes++] = re;
	return re;
}

/* Search subject for re: 1 match, 0 no match, negative PCRE2 error. */
static int
js_regex_match(js_ctx *ctx, js_regex *re, const char *subject, size_t len)
{
	int			rc;

	if (ctx->mdata == NULL)
	{
		ctx->mdata = pcre2_match_data_create(1, NULL);
		if (ctx->mdata == NULL)
			ao_oom(0);
	}
	if (ctx->mcontext == NULL)
	{
		ctx->mcontext = pcre2_match_context_create(NULL);
		if (ctx->mcontext == NULL)
			ao_oom(0);
		pcre2_set_match_limit(ctx->mcontext, AO_JSON_SCHEMA_MATCH_LIMIT);
		pcre2_set_depth_limit(ctx->mcontext, AO_JSON_SCHEMA_DEPTH_LIMIT);
	}
	rc = pcre2_match(re->code, (PCRE2_SPTR) subject, len, 0, 0, ctx->mdata,
					 ctx->mcontext);
	if (rc >= 0)
		return 1;
	return rc == PCRE2_ERROR_NOMATCH ? 0 : rc;
}

/* Text of a PCRE2 matching error, in buf. */
static const char *
js_regex_error_text(int rc, char *buf, size_t size)
{
	if (pcre2_get_error_message(rc, (PCRE2_UCHAR *) buf, size) < 0)
		snprintf(buf, size, "error %d", rc);
	return buf;
}

/*
 * Does key match the patternProperties pattern? 1 or 0; a pattern that
 * does not compile matches nothing (the check reports it). A pattern that
 * cannot be run to the end (match or depth limit) is reported at the key
 * and returns -1.
 */
static int
js_pattern_matches(js_ctx *ctx, js_regex *re, const char *key)
{
	int			rc;
	char		errbuf[256];
	size_t		mark;

	if (re->code == NULL)
		return 0;
	rc = js_regex_match(ctx, re, key, strlen(key));
	if (rc >= 0)
		return rc;
	mark = ctx->path.len;
	ao_jsonptr_push_key(&ctx->path, key);
	js_fail(ctx, "property name \"%s\" could not be checked against pattern \"%s\": %s",
			key, re->pattern, js_regex_error_text(rc, errbuf, sizeof(errbuf)));
	ao_buf_truncate(&ctx->path, mark);
	return -1;
}


/* ----------------------------------------------------------------------
 * Validation
 * ----------------------------------------------------------------------
 */

/*
 * After a failed step: record it and, when evaluating quietly (only the
 * yes/no answer matters) or unwinding, return false at once.
 */
#define JS_STEP(ok) \
	do { \
		if (!(ok)) \
		{ \
			valid = false; \
			if (ctx->quiet > 0 || ctx->aborted) \
				return false; \
		} \
	} while (0)

/* The draft-07 type of an instance, "integer" for integral numbers. */
static const char *
js_instance_type(json_object *inst)
{
	if (js_is_number(inst))
		return js_is_integer(inst) ? "integer" : "number";
	return js_json_type_name(inst);
}

/* Does inst belong to the draft-07 type name t? */
static bool
js_type_matches(const char *t, json_object *inst)
{
	if (strcmp(t, "integer") == 0)
		return js_is_integer(inst);
	if (strcmp(t, "number") == 0)
		return js_is_number(inst);
	return strcmp(t, js_json_type_name(inst)) == 0;
}

/* The "type" keyword. */
static bool
js_validate_type(js_ctx *ctx, json_object *type, json_object *inst)
{
	bool		ok = false;
	ao_buf	   *names = &ctx->render[0];

	if (json_object_is_type(type, json_type_string))
		ok = js_type_matches(json_object_get_string(type), inst);
	else if (json_object_is_type(type, json_type_array))
	{
		for (size_t i = 0; !ok && i < json_object_array_length(type); i++)
		{
			json_object *t = json_object_array_get_idx(type, i);

			ok = json_object_is_type(t, json_type_string) &&
				js_type_matches(json_object_get_string(t), inst);
		}
	}
	else
		return true;			/* malformed: ignored, the check reports it */
	if (ok)
		return true;
	if (ctx->quiet > 0 && !js_wants_why(ctx))
		return false;

	ao_buf_reset(names);
	if (json_object_is_type(type, json_type_string))
		ao_buf_append(names, json_object_get_string(type));
	else
	{
		for (size_t i = 0; i < json_object_array_length(type); i++)
		{
			json_object *t = json_object_array_get_idx(type, i);

			if (i > 0)
				ao_buf_append(names, " or ");
			if (json_object_is_type(t, json_type_string))
				ao_buf_append(names, json_object_get_string(t));
			else
				js_render_append(names, t);
		}
	}
	js_fail(ctx, "expected type %s, got %s", names->data, js_instance_type(inst));
	return false;
}

/* Keywords for any instance type: type, enum, const. */
static bool
js_validate_generic(js_ctx *ctx, json_object *schema, json_object *inst)
{
	bool		valid = true;
	json_object *kw;

	if ((kw = js_kw(schema, "type")) != NULL)
		JS_STEP(js_validate_type(ctx, kw, inst));

	if (json_object_is_type(kw = js_kw(schema, "enum"), json_type_array))
	{
		size_t		n = json_object_array_length(kw);
		bool		found = false;

		for (size_t i = 0; !found && i < n; i++)
		{
			if ((i & 1023) == 1023 && js_interrupted(ctx))
				return false;
			found = ao_json_equal(inst, json_object_array_get_idx(kw, i));
		}
		if (!found && ctx->quiet == 0)
		{
			ao_buf	   *list = &ctx->render[1];

			ao_buf_reset(list);
			for (size_t i = 0; i < n && i < JS_ENUM_LIST_MAX; i++)
			{
				if (i > 0)
					ao_buf_append(list, ", ");
				js_render_append(list, json_object_array_get_idx(kw, i));
			}
			if (n > JS_ENUM_LIST_MAX)
				ao_buf_printf(list, ", ... (%zu more)", n - JS_ENUM_LIST_MAX);
			if (n == 0)
				js_fail(ctx, "value %s is not allowed: enum is empty",
						js_render(ctx, 0, inst));
			else
				js_fail(ctx, "value %s is not one of the allowed values: %s",
						js_render(ctx, 0, inst), list->data);
		}
		JS_STEP(found);
	}

	if (json_object_object_get_ex(schema, "const", &kw))
	{
		bool		ok = ao_json_equal(inst, kw);

		if (!ok && ctx->quiet == 0)
			js_fail(ctx, "value %s is not equal to const %s",
					js_render(ctx, 0, inst), js_render(ctx, 1, kw));
		JS_STEP(ok);
	}
	return valid;
}

/* Numeric keywords: minimum, maximum, exclusive*, multipleOf. */
static bool
js_validate_number(js_ctx *ctx, json_object *schema, json_object *inst)
{
	bool		valid = true;
	json_object *kw;
	int			c;

	if (js_is_number(kw = js_kw(schema, "minimum")))
	{
		c = js_num_cmp_obj(inst, kw);
		if (c < 0 || c == JS_CMP_UNORDERED)
			js_fail(ctx, "value %s is less than minimum %s",
					js_render(ctx, 0, inst), js_render(ctx, 1, kw));
		JS_STEP(c == 0 || c == 1);
	}
	if (js_is_number(kw = js_kw(schema, "maximum")))
	{
		c = js_num_cmp_obj(inst, kw);
		if (c > 0)
			js_fail(ctx, "value %s is greater than maximum %s",
					js_render(ctx, 0, inst), js_render(ctx, 1, kw));
		JS_STEP(c <= 0);
	}
	if (js_is_number(kw = js_kw(schema, "exclusiveMinimum")))
	{
		c = js_num_cmp_obj(inst, kw);
		if (c != 1)
			js_fail(ctx, "value %s is not greater than exclusiveMinimum %s",
					js_render(ctx, 0, inst), js_render(ctx, 1, kw));
		JS_STEP(c == 1);
	}
	if (js_is_number(kw = js_kw(schema, "exclusiveMaximum")))
	{
		c = js_num_cmp_obj(inst, kw);
		if (c != -1)
			js_fail(ctx, "value %s is not less than exclusiveMaximum %s",
					js_render(ctx, 0, inst), js_render(ctx, 1, kw));
		JS_STEP(c == -1);
	}
	if (js_is_number(kw = js_kw(schema, "multipleOf")) && js_num_sign(kw) == 1)
	{
		int			m = js_is_multiple(inst, kw);

		if (m == 0)
			js_fail(ctx, "value %s is not a multiple of %s",
					js_render(ctx, 0, inst), js_render(ctx, 1, kw));
		else if (m < 0)
			js_fail(ctx, "value %s cannot be checked exactly against multipleOf %s",
					js_render(ctx, 0, inst), js_render(ctx, 1, kw));
		JS_STEP(m == 1);
	}
	return valid;
}

/* String keywords: minLength, maxLength, pattern. */
static bool
js_validate_string(js_ctx *ctx, json_object *schema, json_object *inst)
{
	bool		valid = true;
	const char *s = json_object_get_string(inst);
	size_t		len = (size_t) json_object_get_string_len(inst);
	uint64_t	limit;
	json_object *kw;

	if (js_get_count(js_kw(schema, "minLength"), &limit))
	{
		bool		ok = ao_utf8_length(s, len) >= limit;

		if (!ok)
			js_fail(ctx, "string is shorter than %llu character%s",
					(unsigned long long) limit, js_plural(limit, "s"));
		JS_STEP(ok);
	}
	if (js_get_count(js_kw(schema, "maxLength"), &limit))
	{
		bool		ok = ao_utf8_length(s, len) <= limit;

		if (!ok)
			js_fail(ctx, "string is longer than %llu character%s",
					(unsigned long long) limit, js_plural(limit, "s"));
		JS_STEP(ok);
	}
	if (json_object_is_type(kw = js_kw(schema, "pattern"), json_type_string))
	{
		js_regex   *re = js_regex_get(ctx, json_object_get_string(kw),
									  (size_t) json_object_get_string_len(kw));
		int			rc;
		char		errbuf[256];

		if (re->code == NULL)
		{
			js_fail(ctx, "invalid regular expression \"%s\" in pattern: %s",
					re->pattern, re->error);
			JS_STEP(false);
		}
		else if ((rc = js_regex_match(ctx, re, s, len)) != 1)
		{
			if (rc == 0)
				js_fail(ctx, "does not match pattern \"%s\"", re->pattern);
			else
				js_fail(ctx, "pattern \"%s\" could not be evaluated: %s",
						re->pattern, js_regex_error_text(rc, errbuf, sizeof(errbuf)));
			JS_STEP(false);
		}
	}
	return valid;
}

/* Validate array element i against sub, at path .../i. */
static bool
js_validate_item(js_ctx *ctx, json_object *sub, json_object *arr, size_t i,
				 const char *base)
{
	size_t		mark = ctx->path.len;
	bool		ok;

	ao_jsonptr_push_index(&ctx->path, i);
	ok = js_validate(ctx, sub, json_object_array_get_idx(arr, i), base);
	ao_buf_truncate(&ctx->path, mark);
	return ok;
}

/* Validate object member key against sub, at path .../key. */
static bool
js_validate_member(js_ctx *ctx, json_object *sub, const char *key,
				   json_object *val, const char *base)
{
	size_t		mark = ctx->path.len;
	bool		ok;

	ao_jsonptr_push_key(&ctx->path, key);
	ok = js_validate(ctx, sub, val, base);
	ao_buf_truncate(&ctx->path, mark);
	return ok;
}

/* One array item's canonical form, for uniqueItems. */
typedef struct js_canon
{
	char	   *text;
	size_t		len;
	size_t		index;
} js_canon;

/* Order canonical forms by text, then by item index. */
static int
js_canon_cmp(const void *pa, const void *pb)
{
	const js_canon *a = pa;
	const js_canon *b = pb;
	size_t		n = a->len < b->len ? a->len : b->len;
	int			r = memcmp(a->text, b->text, n);

	if (r != 0)
		return r;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return a->index < b->index ? -1 : (a->index > b->index ? 1 : 0);
}

/* Order (first, duplicate) index pairs by the duplicate. */
static int
js_pair_cmp(const void *pa, const void *pb)
{
	const size_t *a = pa;
	const size_t *b = pb;

	return a[1] < b[1] ? -1 : (a[1] > b[1] ? 1 : 0);
}

/*
 * uniqueItems in O(n log n): sort the items' canonical forms, so equal
 * items are neighbours. Reports, as the pairwise definition would, each
 * item j that equals an earlier one, with the first item i it equals, in
 * the order of j.
 */
static bool
js_validate_unique(js_ctx *ctx, json_object *inst, size_t n)
{
	js_canon   *c = js_malloc(n * sizeof(js_canon));
	size_t	   *pairs = NULL;
	size_t		npairs = 0;
	size_t		built = 0;
	bool		ok = true;

	for (; built < n; built++)
	{
		ao_buf		b;

		if ((built & 255) == 0 && js_interrupted(ctx))
			break;
		ao_buf_init(&b);
		js_canonical_append(&b, json_object_array_get_idx(inst, built));
		c[built].text = b.data;
		c[built].len = b.len;
		c[built].index = built;
	}
	if (built == n)
	{
		qsort(c, n, sizeof(js_canon), js_canon_cmp);
		pairs = js_malloc(n * 2 * sizeof(size_t));
		for (size_t g = 0; g < n;)
		{
			size_t		e = g + 1;

			while (e < n && c[e].len == c[g].len &&
				   memcmp(c[e].text, c[g].text, c[g].len) == 0)
				e++;
			for (size_t k = g + 1; k < e; k++)
			{
				/* same form: equal, unless a NaN is involved */
				if (ao_json_equal(json_object_array_get_idx(inst, c[g].index),
								  json_object_array_get_idx(inst, c[k].index)))
				{
					pairs[2 * npairs] = c[g].index;
					pairs[2 * npairs + 1] = c[k].index;
					npairs++;
				}
			}
			g = e;
		}
		qsort(pairs, npairs, 2 * sizeof(size_t), js_pair_cmp);
		ok = npairs == 0;
		for (size_t k = 0; k < npairs && ctx->quiet == 0; k++)
			js_fail(ctx, "array items %zu and %zu are equal, but uniqueItems is true",
					pairs[2 * k], pairs[2 * k + 1]);
	}
	else
		ok = false;
	for (size_t k = 0; k < built; k++)
		free(c[k].text);
	free(c);
	free(pairs);
	return ok;
}

/* Array keywords: items, additionalItems, contains, sizes, uniqueItems. */
static bool
js_validate_array(js_ctx *ctx, json_object *schema, json_object *inst,
				  const char *base)
{
	bool		valid = true;
	size_t		n = json_object_array_length(inst);
	json_object *items = js_kw(schema, "items");
	json_object *kw;
	uint64_t	limit;

	if (json_object_is_type(items, json_type_array))
	{
		size_t		npos = json_object_array_length(items);
		json_object *more = js_kw(schema, "additionalItems");

		for (size_t i = 0; i < n && i < npos; i++)
			JS_STEP(js_validate_item(ctx, json_object_array_get_idx(items, i),
									 inst, i, base));
		if (json_object_is_type(more, json_type_boolean) &&
			!json_object_get_boolean(more))
		{
			for (size_t i = npos; i < n; i++)
			{
				size_t		mark = ctx->path.len;

				ao_jsonptr_push_index(&ctx->path, i);
				js_fail(ctx, "additional item is not allowed: items defines %zu position%s",
						npos, js_plural(npos, "s"));
				ao_buf_truncate(&ctx->path, mark);
				JS_STEP(false);
			}
		}
		else if (js_is_schema(more))
		{
			for (size_t i = npos; i < n; i++)
				JS_STEP(js_validate_item(ctx, more, inst, i, base));
		}
	}
	else if (js_is_schema(items))
	{
		for (size_t i = 0; i < n; i++)
			JS_STEP(js_validate_item(ctx, items, inst, i, base));
	}

	if (js_is_schema(kw = js_kw(schema, "contains")))
	{
		bool		found = false;

		ctx->quiet++;
		for (size_t i = 0; !found && !ctx->aborted && i < n; i++)
			found = js_validate_item(ctx, kw, inst, i, base);
		ctx->quiet--;
		if (ctx->aborted)
			return false;
		if (!found)
			js_fail(ctx, "array does not contain an item matching the contains schema");
		JS_STEP(found);
	}

	if (js_get_count(js_kw(schema, "minItems"), &limit))
	{
		if (n < limit)
			js_fail(ctx, "array has fewer than %llu item%s",
					(unsigned long long) limit, js_plural(limit, "s"));
		JS_STEP(n >= limit);
	}
	if (js_get_count(js_kw(schema, "maxItems"), &limit))
	{
		if (n > limit)
			js_fail(ctx, "array has more than %llu item%s",
					(unsigned long long) limit, js_plural(limit, "s"));
		JS_STEP(n <= limit);
	}

	kw = js_kw(schema, "uniqueItems");
	if (json_object_is_type(kw, json_type_boolean) && json_object_get_boolean(kw) && n > 1)
		JS_STEP(js_validate_unique(ctx, inst, n));
	return valid;
}

/*
 * 1 when key is covered by "properties" or "patternProperties", 0 when
 * not, -1 when a pattern could not be evaluated (reported).
 */
static int
js_property_is_declared(js_ctx *ctx, json_object *props, json_object *patterns,
						const char *key)
{
	if (json_object_is_type(props, json_type_object) &&
		json_object_object_get_ex(props, key, NULL))
		return 1;
	if (json_object_is_type(patterns, json_type_object))
	{
		json_object_object_foreach(patterns, pattern, sub)
		{
			int			m;

			(void) sub;
			if (js_interrupted(ctx))
				return -1;
			m = js_pattern_matches(ctx, js_regex_get(ctx, pattern, strlen(pattern)), key);
			if (m != 0)
				return m;
		}
	}
	return 0;
}

/* Validate one property name against the propertyNames schema. */
static bool
js_validate_property_name(js_ctx *ctx, json_object *names, const char *key,
						  const char *base)
{
	const char *saved = ctx->prefix;
	json_object *str = json_object_new_string(key);
	ao_buf		prefix;
	size_t		mark = ctx->path.len;
	bool		ok;

	if (str == NULL)
		ao_oom(0);
	ao_buf_init(&prefix);
	ao_buf_printf(&prefix, "property name \"%s\"", key);
	ctx->prefix = prefix.data;
	ao_jsonptr_push_key(&ctx->path, key);
	ok = js_validate(ctx, names, str, base);
	ao_buf_truncate(&ctx->path, mark);
	ctx->prefix = saved;
	ao_buf_free(&prefix);
	json_object_put(str);
	return ok;
}

/*
 * Object keywords: required, properties, patternProperties,
 * additionalProperties, propertyNames, dependencies, sizes.
 */
static bool
js_validate_object(js_ctx *ctx, json_object *schema, json_object *inst,
				   const char *base)
{
	bool		valid = true;
	json_object *props = js_kw(schema, "properties");
	json_object *patterns = js_kw(schema, "patternProperties");
	json_object *kw;
	uint64_t	limit;
	uint64_t	count = (uint64_t) json_object_object_length(inst);

	if (json_object_is_type(kw = js_kw(schema, "required"), json_type_array))
	{
		for (size_t i = 0; i < json_object_array_length(kw); i++)
		{
			json_object *name = json_object_array_get_idx(kw, i);

			if (json_object_is_type(name, json_type_string) &&
				!json_object_object_get_ex(inst, json_object_get_string(name), NULL))
			{
				js_fail(ctx, "missing required property \"%s\"",
						json_object_get_string(name));
				JS_STEP(false);
			}
		}
	}

	if (json_object_is_type(props, json_type_object))
	{
		json_object_object_foreach(props, key, sub)
		{
			json_object *val;

			if (json_object_object_get_ex(inst, key, &val))
				JS_STEP(js_validate_member(ctx, sub, key, val, base));
		}
	}

	if (json_object_is_type(patterns, json_type_object))
	{
		json_object_object_foreach(patterns, pattern, sub)
		{
			js_regex   *re = js_regex_get(ctx, pattern, strlen(pattern));

			if (re->code == NULL)
			{
				js_fail(ctx, "invalid regular expression \"%s\" in patternProperties: %s",
						re->pattern, re->error);
				JS_STEP(false);
				continue;
			}
			{
				json_object_object_foreach(inst, key, val)
				{
					/* re stays valid: regexes are individually allocated */
					int			m;

					if (js_interrupted(ctx))
						return false;
					m = js_pattern_matches(ctx, re, key);
					if (m < 0)
						JS_STEP(false);
					else if (m == 1)
						JS_STEP(js_validate_member(ctx, sub, key, val, base));
				}
			}
		}
	}

	if (js_is_schema(kw = js_kw(schema, "additionalProperties")))
	{
		bool		forbidden = json_object_is_type(kw, json_type_boolean) &&
			!json_object_get_boolean(kw);

		json_object_object_foreach(inst, key, val)
		{
			int			declared = js_property_is_declared(ctx, props, patterns, key);

			if (declared < 0)
				JS_STEP(false);
			if (declared != 0)
				continue;
			if (forbidden)
			{
				size_t		mark = ctx->path.len;

				ao_jsonptr_push_key(&ctx->path, key);
				js_fail(ctx, "additional property \"%s\" is not allowed", key);
				ao_buf_truncate(&ctx->path, mark);
				JS_STEP(false);
			}
			else
				JS_STEP(js_validate_member(ctx, kw, key, val, base));
		}
	}

	if (js_is_schema(kw = js_kw(schema, "propertyNames")))
	{
		json_object_object_foreach(inst, key, val)
		{
			(void) val;
			JS_STEP(js_validate_property_name(ctx, kw, key, base));
		}
	}

	if (json_object_is_type(kw = js_kw(schema, "dependencies"), json_type_object))
	{
		json_object_object_foreach(kw, key, dep)
		{
			if (!json_object_object_get_ex(inst, key, NULL))
				continue;
			if (json_object_is_type(dep, json_type_array))
			{
				for (size_t i = 0; i < json_object_array_length(dep); i++)
				{
					json_object *name = json_object_array_get_idx(dep, i);

					if (json_object_is_type(name, json_type_string) &&
						!json_object_object_get_ex(inst, json_object_get_string(name), NULL))
					{
						js_fail(ctx, "property \"%s\" requires property \"%s\" (dependencies)",
								key, json_object_get_string(name));
						JS_STEP(false);
					}
				}
			}
			else if (js_is_schema(dep))
				JS_STEP(js_validate(ctx, dep, inst, base));
		}
	}

	if (js_get_count(js_kw(schema, "minProperties"), &limit))
	{
		if (count < limit)
			js_fail(ctx, "object has fewer than %llu propert%s",
					(unsigned long long) limit, limit == 1 ? "y" : "ies");
		JS_STEP(count >= limit);
	}
	if (js_get_count(js_kw(schema, "maxProperties"), &limit))
	{
		if (count > limit)
			js_fail(ctx, "object has more than %llu propert%s",
					(unsigned long long) limit, limit == 1 ? "y" : "ies");
		JS_STEP(count <= limit);
	}
	return valid;
}

/* Validate inst against sub without reporting; true when it matches. */
static bool
js_matches_quietly(js_ctx *ctx, json_object *sub, json_object *inst,
				   const char *base)
{
	bool		ok;

	ctx->quiet++;
	ok = js_validate(ctx, sub, inst, base);
	ctx->quiet--;
	return ok;
}

/*
 * Does inst match sub? Evaluated quietly, with the first reason it does
 * not appended to reasons ("; or " between alternatives) when reasons is
 * not NULL.
 */
static bool
js_matches_why(js_ctx *ctx, json_object *sub, json_object *inst, const char *base, ao_buf *reasons)
{
	ao_buf		why;
	ao_buf	   *save_why = ctx->why;
	int			save_quiet = ctx->why_quiet;
	size_t		save_len = ctx->why_path_len;
	bool		ok;

	if (reasons == NULL)
		return js_matches_quietly(ctx, sub, inst, base);
	ao_buf_init(&why);
	ctx->why = &why;
	ctx->why_quiet = ctx->quiet + 1;
	ctx->why_path_len = ctx->path.len;
	ok = js_matches_quietly(ctx, sub, inst, base);
	ctx->why = save_why;
	ctx->why_quiet = save_quiet;
	ctx->why_path_len = save_len;
	if (!ok && why.len > 0 && reasons->len < 400)
	{
		if (reasons->len > 0)
			ao_buf_append(reasons, "; or ");
		ao_buf_append(reasons, why.data);
	}
	ao_buf_free(&why);
	return ok;
}

/* Applicators: allOf, anyOf, oneOf, not, if/then/else. */
static bool
js_validate_combinators(js_ctx *ctx, json_object *schema, json_object *inst,
						const char *base)
{
	bool		valid = true;
	json_object *kw;

	if (json_object_is_type(kw = js_kw(schema, "allOf"), json_type_array))
	{
		for (size_t i = 0; i < json_object_array_length(kw); i++)
			JS_STEP(js_validate(ctx, json_object_array_get_idx(kw, i), inst, base));
	}

	if (json_object_is_type(kw = js_kw(schema, "anyOf"), json_type_array))
	{
		bool		found = false;
		ao_buf		reasons;

		ao_buf_init(&reasons);
		for (size_t i = 0; !found && i < json_object_array_length(kw); i++)
			found = js_matches_why(ctx, json_object_array_get_idx(kw, i), inst, base,
								   ctx->quiet > 0 ? NULL : &reasons);
		if (!ctx->aborted && !found)
		{
			/* say what each alternative missed: "missing ... "prompt"; or ..." */
			if (reasons.len > 0)
				js_fail(ctx, "does not match any of the allowed alternatives: %s", reasons.data);
			else
				js_fail(ctx, "does not match any of the allowed alternatives");
		}
		ao_buf_free(&reasons);
		if (ctx->aborted)
			return false;
		JS_STEP(found);
	}

	if (json_object_is_type(kw = js_kw(schema, "oneOf"), json_type_array))
	{
		size_t		matches = 0;

		for (size_t i = 0; i < json_object_array_length(kw); i++)
		{
			if (js_matches_quietly(ctx, json_object_array_get_idx(kw, i), inst, base))
				matches++;
			if (ctx->aborted)
				return false;
			if (matches > 1 && ctx->quiet > 0)
				break;
		}
		if (matches == 0)
			js_fail(ctx, "does not match any of the allowed alternatives");
		else if (matches > 1)
			js_fail(ctx, "matches %zu alternatives of oneOf, expected exactly one",
					matches);
		JS_STEP(matches == 1);
	}

	if (js_is_schema(kw = js_kw(schema, "not")))
	{
		bool		matched = js_matches_quietly(ctx, kw, inst, base);

		if (ctx->aborted)
			return false;
		if (matched)
			js_fail(ctx, "must not match the schema in \"not\"");
		JS_STEP(!matched);
	}

	if (js_is_schema(kw = js_kw(schema, "if")))
	{
		bool		cond = js_matches_quietly(ctx, kw, inst, base);
		json_object *branch;

		if (ctx->aborted)
			return false;
		branch = js_kw(schema, cond ? "then" : "else");
		if (js_is_schema(branch))
			JS_STEP(js_validate(ctx, branch, inst, base));
	}
	return valid;
}

/* Validate every keyword of schema object (no "$ref") against inst. */
static bool
js_validate_keywords(js_ctx *ctx, json_object *schema, json_object *inst,
					 const char *base)
{
	bool		valid = true;

	JS_STEP(js_validate_generic(ctx, schema, inst));
	switch (json_object_get_type(inst))
	{
		case json_type_int:
		case json_type_double:
			JS_STEP(js_validate_number(ctx, schema, inst));
			break;
		case json_type_string:
			JS_STEP(js_validate_string(ctx, schema, inst));
			break;
		case json_type_array:
			JS_STEP(js_validate_array(ctx, schema, inst, base));
			break;
		case json_type_object:
			JS_STEP(js_validate_object(ctx, schema, inst, base));
			break;
		default:
			break;
	}
	JS_STEP(js_validate_combinators(ctx, schema, inst, base));
	return valid;
}

/*
 * Follow "$ref" and validate inst against its target. Coming back to the
 * same target for the same instance value is an endless loop: abort.
 */
static bool
js_validate_ref(js_ctx *ctx, const char *ref, json_object *inst, const char *base)
{
	json_object *target = NULL;
	const char *target_base = NULL;
	js_ref_status status = js_resolve_ref(ctx, ref, base, &target, &target_base);
	bool		ok;

	if (status == JS_REF_REMOTE)
	{
		js_fail(ctx, "remote $ref \"%s\" is not supported", ref);
		return false;
	}
	if (status == JS_REF_UNRESOLVED)
	{
		js_fail(ctx, "$ref \"%s\" cannot be resolved", ref);
		return false;
	}
	for (size_t i = 0; i < ctx->nrefs; i++)
	{
		if (ctx->refs[i].schema == target && ctx->refs[i].instance == inst)
		{
			js_abort(ctx);
			return false;
		}
	}
	ctx->refs = js_grow(ctx->refs, &ctx->refs_cap, ctx->nrefs + 1,
						sizeof(js_ref_frame));
	ctx->refs[ctx->nrefs].schema = target;
	ctx->refs[ctx->nrefs].instance = inst;
	ctx->nrefs++;
	ok = js_validate(ctx, target, inst, target_base);
	ctx->nrefs--;
	return ok;
}

/* Validate inst against schema (object or boolean); true when valid. */
static bool
js_validate(js_ctx *ctx, json_object *schema, json_object *inst, const char *base)
{
	const char *ref;
	char	   *owned = NULL;
	bool		valid;

	if (js_interrupted(ctx))
		return false;
	if (json_object_is_type(schema, json_type_boolean))
	{
		if (json_object_get_boolean(schema))
			return true;
		js_fail(ctx, "value is not allowed here (schema is false)");
		return false;
	}
	if (!json_object_is_type(schema, json_type_object))
	{
		js_fail(ctx, "invalid schema: expected an object or a boolean, got %s",
				js_json_type_name(schema));
		return false;
	}
	if (ctx->depth >= AO_JSON_SCHEMA_MAX_DEPTH)
	{
		js_abort(ctx);
		return false;
	}
	ctx->depth++;
	if ((ref = js_kw_string(schema, "$ref")) != NULL)
		valid = js_validate_ref(ctx, ref, inst, base);
	else
	{
		base = js_enter_base(ctx, schema, base, &owned);
		valid = js_validate_keywords(ctx, schema, inst, base);
		free(owned);
	}
	ctx->depth--;
	return valid;
}


/* ----------------------------------------------------------------------
 * Context setup
 * ----------------------------------------------------------------------
 */

/* Prepare a run: empty buffers and the $id table of root. */
static void
js_ctx_init(js_ctx *ctx, json_object *root, ao_problem_fn cb, void *arg)
{
	const char *id;

	memset(ctx, 0, sizeof(*ctx));
	ctx->root = root;
	ctx->cb = cb;
	ctx->arg = arg;
	ao_buf_init(&ctx->path);
	ao_buf_init(&ctx->render[0]);
	ao_buf_init(&ctx->render[1]);

	id = json_object_is_type(root, json_type_object) ? js_kw_string(root, "$id") : NULL;
	if (id != NULL && js_kw(root, "$ref") == NULL)
		js_add_id(ctx, root, js_uri_resolve("", id));
	else
		js_add_id(ctx, root, js_strdup(""));
	js_collect(ctx, root, ctx->ids[0].base, 0);
	ao_buf_reset(&ctx->path);
}

/* Release everything a run allocated. */
static void
js_ctx_free(js_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nregexes; i++)
	{
		pcre2_code_free(ctx->regexes[i]->code);
		free(ctx->regexes[i]->pattern);
		free(ctx->regexes[i]->error);
		free(ctx->regexes[i]);
	}
	free(ctx->regexes);
	for (size_t i = 0; i < ctx->nids; i++)
	{
		free(ctx->ids[i].uri);
		free(ctx->ids[i].base);
		free(ctx->ids[i].path);
	}
	free(ctx->ids);
	free(ctx->refs);
	pcre2_compile_context_free(ctx->ccontext);
	pcre2_match_data_free(ctx->mdata);
	pcre2_match_context_free(ctx->mcontext);
	ao_buf_free(&ctx->path);
	ao_buf_free(&ctx->render[0]);
	ao_buf_free(&ctx->render[1]);
}


/* ----------------------------------------------------------------------
 * Schema checking
 * ----------------------------------------------------------------------
 */

/* Report a problem at path + "/keyword". */
static void
js_check_fail_at(js_ctx *ctx, const char *keyword, const char *fmt,...)
__attribute__((format(printf, 3, 4)));

static void
js_check_fail_at(js_ctx *ctx, const char *keyword, const char *fmt,...)
{
	size_t		mark = ctx->path.len;
	va_list		ap;

	if (keyword)
		ao_jsonptr_push_key(&ctx->path, keyword);
	va_start(ap, fmt);
	js_vreport(ctx, fmt, ap);
	va_end(ap);
	ao_buf_truncate(&ctx->path, mark);
}

/* Check a pattern compiles; report at path + "/keyword" (+ "/key"). */
static void
js_check_pattern(js_ctx *ctx, const char *pattern, size_t len,
				 const char *keyword, const char *key)
{
	js_regex   *re = js_regex_get(ctx, pattern, len);

	if (re->code == NULL)
	{
		size_t		mark = js_path_push(ctx, keyword, key);

		js_fail(ctx, "invalid regular expression \"%s\": %s", re->pattern, re->error);
		ao_buf_truncate(&ctx->path, mark);
	}
}

/* Check the schema under node/keyword (/key) (/index). */
static void
js_check_sub(js_ctx *ctx, json_object *sub, const char *keyword,
			 const char *key, const size_t *index, const char *base, int depth)
{
	size_t		mark = js_path_push(ctx, keyword, key);

	if (index)
		ao_jsonptr_push_index(&ctx->path, *index);
	js_check_node(ctx, sub, base, depth + 1);
	ao_buf_truncate(&ctx->path, mark);
}

/* Check "$ref": it resolves locally, to a schema, without a pure cycle. */
static void
js_check_ref(js_ctx *ctx, json_object *ref, const char *base)
{
	const char *r;
	json_object *target = NULL;
	const char *target_base = NULL;
	js_ref_status status;
	json_object *seen[JS_REF_CHAIN_MAX];
	size_t		nseen = 0;

	if (!json_object_is_type(ref, json_type_string))
	{
		js_check_fail_at(ctx, "$ref", "$ref must be a string");
		return;
	}
	r = json_object_get_string(ref);
	status = js_resolve_ref(ctx, r, base, &target, &target_base);
	if (status == JS_REF_REMOTE)
	{
		js_check_fail_at(ctx, "$ref", "remote $ref \"%s\" is not supported", r);
		return;
	}
	if (status == JS_REF_UNRESOLVED)
	{
		js_check_fail_at(ctx, "$ref", "$ref \"%s\" cannot be resolved", r);
		return;
	}
	if (!js_is_schema(target))
	{
		js_check_fail_at(ctx, "$ref", "$ref \"%s\" does not point to a schema (got %s)",
						 r, js_json_type_name(target));
		return;
	}

	/* follow the chain of schemas that are nothing but a "$ref" */
	for (;;)
	{
		const char *next = json_object_is_type(target, json_type_object) ?
			js_kw_string(target, "$ref") : NULL;

		if (next == NULL)
			return;
		for (size_t i = 0; i < nseen; i++)
		{
			if (seen[i] == target)
			{
				js_check_fail_at(ctx, "$ref", "$ref \"%s\" is circular", r);
				return;
			}
		}
		if (nseen == JS_REF_CHAIN_MAX)
		{
			js_check_fail_at(ctx, "$ref", "$ref \"%s\" starts a chain of more than %d $refs",
							 r, JS_REF_CHAIN_MAX);
			return;
		}
		seen[nseen++] = target;
		if (js_resolve_ref(ctx, next, target_base, &target, &target_base) != JS_REF_OK)
			return;				/* reported where that $ref is checked */
	}
}

/* Check a keyword holding a non-negative integer. */
static void
js_check_count(js_ctx *ctx, json_object *node, const char *keyword)
{
	json_object *v = js_kw(node, keyword);
	uint64_t	n;

	if (json_object_object_get_ex(node, keyword, NULL) && !js_get_count(v, &n))
		js_check_fail_at(ctx, keyword, "%s must be a non-negative integer", keyword);
}

/* Check the "type" keyword. */
static void
js_check_type(js_ctx *ctx, json_object *type)
{
	static const char *const names[] = {
		"array", "boolean", "integer", "null", "number", "object", "string"
	};
	size_t		n = json_object_is_type(type, json_type_array) ?
		json_object_array_length(type) : 1;

	if (!json_object_is_type(type, json_type_string) &&
		!json_object_is_type(type, json_type_array))
	{
		js_check_fail_at(ctx, "type", "type must be a type name or an array of type names");
		return;
	}
	for (size_t i = 0; i < n; i++)
	{
		json_object *t = json_object_is_type(type, json_type_array) ?
			json_object_array_get_idx(type, i) : type;
		bool		known = false;

		if (!json_object_is_type(t, json_type_string))
		{
			js_check_fail_at(ctx, "type", "type must be a type name or an array of type names");
			return;
		}
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			known = known || strcmp(names[k], json_object_get_string(t)) == 0;
		if (!known)
			js_check_fail_at(ctx, "type", "unknown type \"%s\"", json_object_get_string(t));
		for (size_t j = 0; j < i; j++)
			if (ao_json_equal(t, json_object_array_get_idx(type, j)))
				js_check_fail_at(ctx, "type", "duplicate type \"%s\" in type",
								 json_object_get_string(t));
	}
}

/* Check an array of strings ("required", array "dependencies" values). */
static void
js_check_string_array(js_ctx *ctx, json_object *arr, const char *keyword,
					  const char *key)
{
	size_t		mark = js_path_push(ctx, keyword, key);

	if (!json_object_is_type(arr, json_type_array))
		js_fail(ctx, "%s must be an array of strings", keyword);
	else
	{
		for (size_t i = 0; i < json_object_array_length(arr); i++)
		{
			json_object *s = json_object_array_get_idx(arr, i);

			if (!json_object_is_type(s, json_type_string))
			{
				js_fail(ctx, "%s must be an array of strings", keyword);
				break;
			}
			for (size_t j = 0; j < i; j++)
				if (ao_json_equal(s, json_object_array_get_idx(arr, j)))
					js_fail(ctx, "duplicate property \"%s\" in %s",
							json_object_get_string(s), keyword);
		}
	}
	ao_buf_truncate(&ctx->path, mark);
}

/* Check one schema node and, recursively, all its subschemas. */
static void
js_check_node(js_ctx *ctx, json_object *node, const char *base, int depth)
{
	static const char *const strings[] = {
		"$schema", "title", "description", "$comment", "format"
	};
	static const char *const counts[] = {
		"minLength", "maxLength", "minItems", "maxItems", "minProperties",
		"maxProperties"
	};
	static const char *const numbers[] = {
		"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"
	};
	static const char *const single[] = {
		"additionalItems", "additionalProperties", "contains", "propertyNames",
		"not", "if", "then", "else"
	};
	static const char *const lists[] = {"allOf", "anyOf", "oneOf"};
	static const char *const maps[] = {"properties", "definitions"};
	json_object *kw;
	char	   *owned = NULL;

	if (js_interrupted(ctx))
		return;
	if (json_object_is_type(node, json_type_boolean))
		return;
	if (!json_object_is_type(node, json_type_object))
	{
		js_fail(ctx, "schema must be an object or a boolean, got %s",
				js_json_type_name(node));
		return;
	}
	if (depth > 4 * AO_JSON_SCHEMA_MAX_DEPTH)
	{
		js_fail(ctx, "schema nesting too deep");
		return;
	}

	if (json_object_object_get_ex(node, "$id", &kw))
	{
		if (!json_object_is_type(kw, json_type_string))
			js_check_fail_at(ctx, "$id", "$id must be a string");
		else
			base = js_enter_base(ctx, node, base, &owned);
	}
	if (json_object_object_get_ex(node, "$ref", &kw))
		js_check_ref(ctx, kw, base);

	for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]); k++)
		if (json_object_object_get_ex(node, strings[k], &kw) &&
			!json_object_is_type(kw, json_type_string))
			js_check_fail_at(ctx, strings[k], "%s must be a string", strings[k]);
	if (json_object_object_get_ex(node, "type", &kw))
		js_check_type(ctx, kw);
	if (json_object_object_get_ex(node, "enum", &kw) &&
		!json_object_is_type(kw, json_type_array))
		js_check_fail_at(ctx, "enum", "enum must be an array");
	if (json_object_object_get_ex(node, "required", &kw))
		js_check_string_array(ctx, kw, "required", NULL);
	for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++)
		js_check_count(ctx, node, counts[k]);
	for (size_t k = 0; k < sizeof(numbers) / sizeof(numbers[0]); k++)
		if (json_object_object_get_ex(node, numbers[k], &kw) && !js_is_number(kw))
			js_check_fail_at(ctx, numbers[k], "%s must be a number", numbers[k]);
	if (json_object_object_get_ex(node, "multipleOf", &kw))
	{
		if (!js_is_number(kw) || js_num_sign(kw) != 1)
			js_check_fail_at(ctx, "multipleOf", "multipleOf must be a number greater than 0");
		else if (!js_multiple_of_evaluable(kw))
			js_check_fail_at(ctx, "multipleOf",
							 "multipleOf has too many significant digits to be evaluated exactly (at most %d)",
							 JS_MULTIPLE_OF_MAX_DIGITS);
	}
	if (json_object_object_get_ex(node, "uniqueItems", &kw) &&
		!json_object_is_type(kw, json_type_boolean))
		js_check_fail_at(ctx, "uniqueItems", "uniqueItems must be a boolean");
	if (json_object_object_get_ex(node, "pattern", &kw))
	{
		if (!json_object_is_type(kw, json_type_string))
			js_check_fail_at(ctx, "pattern", "pattern must be a string");
		else
			js_check_pattern(ctx, json_object_get_string(kw),
							 (size_t) json_object_get_string_len(kw), "pattern", NULL);
	}

	for (size_t k = 0; k < sizeof(single) / sizeof(single[0]); k++)
		if (json_object_object_get_ex(node, single[k], &kw))
			js_check_sub(ctx, kw, single[k], NULL, NULL, base, depth);

	if (json_object_object_get_ex(node, "items", &kw))
	{
		if (json_object_is_type(kw, json_type_array))
		{
			for (size_t i = 0; i < json_object_array_length(kw); i++)
				js_check_sub(ctx, json_object_array_get_idx(kw, i), "items", NULL, &i,
							 base, depth);
		}
		else if (js_is_schema(kw))
			js_check_sub(ctx, kw, "items", NULL, NULL, base, depth);
		else
			js_check_fail_at(ctx, "items", "items must be a schema or an array of schemas");
	}

	for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++)
	{
		if (!json_object_object_get_ex(node, lists[k], &kw))
			continue;
		if (!json_object_is_type(kw, json_type_array) ||
			json_object_array_length(kw) == 0)
		{
			js_check_fail_at(ctx, lists[k], "%s must be a non-empty array of schemas",
							 lists[k]);
			continue;
		}
		for (size_t i = 0; i < json_object_array_length(kw); i++)
			js_check_sub(ctx, json_object_array_get_idx(kw, i), lists[k], NULL, &i,
						 base, depth);
	}

	for (size_t k = 0; k < sizeof(maps) / sizeof(maps[0]); k++)
	{
		if (!json_object_object_get_ex(node, maps[k], &kw))
			continue;
		if (!json_object_is_type(kw, json_type_object))
		{
			js_check_fail_at(ctx, maps[k], "%s must be an object", maps[k]);
			continue;
		}
		{
			json_object_object_foreach(kw, key, sub)
				js_check_sub(ctx, sub, maps[k], key, NULL, base, depth);
		}
	}

	if (json_object_object_get_ex(node, "patternProperties", &kw))
	{
		if (!json_object_is_type(kw, json_type_object))
			js_check_fail_at(ctx, "patternProperties", "patternProperties must be an object");
		else
		{
			json_object_object_foreach(kw, pattern, sub)
			{
				js_check_pattern(ctx, pattern, strlen(pattern), "patternProperties", pattern);
				js_check_sub(ctx, sub, "patternProperties", pattern, NULL, base, depth);
			}
		}
	}

	if (json_object_object_get_ex(node, "dependencies", &kw))
	{
		if (!json_object_is_type(kw, json_type_object))
			js_check_fail_at(ctx, "dependencies", "dependencies must be an object");
		else
		{
			json_object_object_foreach(kw, key, dep)
			{
				if (json_object_is_type(dep, json_type_array))
					js_check_string_array(ctx, dep, "dependencies", key);
				else if (js_is_schema(dep))
					js_check_sub(ctx, dep, "dependencies", key, NULL, base, depth);
				else
				{
					size_t		mark = js_path_push(ctx, "dependencies", key);

					js_fail(ctx, "dependency must be a schema or an array of strings");
					ao_buf_truncate(&ctx->path, mark);
				}
			}
		}
	}
	free(owned);
}


/* ----------------------------------------------------------------------
 * Public entry points
 * ----------------------------------------------------------------------
 */

/*
 * Schemas kept prepared (ao_json_schema_keep): the context of a run over
 * each -- its $id table, and the regexes compiled so far -- outlives the
 * run, so the next validation against the same schema object starts at
 * once. The list only grows; its schemas are referenced, so their
 * addresses are never reused for another object.
 */
typedef struct js_kept
{
	json_object *schema;
	js_ctx		ctx;
} js_kept;

static js_kept **kept_schemas = NULL;
static size_t nkept_schemas = 0;
static size_t kept_schemas_cap = 0;

/* The kept context of schema, or NULL. */
static js_ctx *
js_kept_ctx(json_object *schema)
{
	for (size_t i = 0; i < nkept_schemas; i++)
		if (kept_schemas[i]->schema == schema)
			return &kept_schemas[i]->ctx;
	return NULL;
}

/* Keep schema prepared for later validations; see header. */
void
ao_json_schema_keep(json_object *schema)
{
	js_kept    *k;

	if (schema == NULL || js_kept_ctx(schema) != NULL)
		return;
	k = ao_calloc(1, sizeof(js_kept));
	k->schema = json_object_get(schema);
	js_ctx_init(&k->ctx, schema, NULL, NULL);
	kept_schemas = js_grow(kept_schemas, &kept_schemas_cap, nkept_schemas + 1, sizeof(js_kept *));
	kept_schemas[nkept_schemas++] = k;
}

/*
 * Ready a kept context for another run: everything a run sets is reset
 * (also after a run that was left by a longjmp), what describes the
 * schema is kept.
 */
static void
js_ctx_rearm(js_ctx *ctx, ao_problem_fn cb, void *arg)
{
	ctx->cb = cb;
	ctx->arg = arg;
	ctx->nproblems = 0;
	ctx->quiet = 0;
	ctx->aborted = false;
	ctx->depth = 0;
	ctx->prefix = NULL;
	ctx->nrefs = 0;
	ctx->why = NULL;
	ctx->why_quiet = 0;
	ctx->why_path_len = 0;
	ao_buf_reset(&ctx->path);
	ao_buf_reset(&ctx->render[0]);
	ao_buf_reset(&ctx->render[1]);
}

/* Validate instance against schema, reporting problems; see header. */
int
ao_json_schema_validate(json_object *schema, json_object *instance,
						ao_problem_fn cb, void *arg)
{
	js_ctx		own;
	js_ctx	   *ctx = js_kept_ctx(schema);
	bool		valid;
	int			n;

	if (ctx != NULL)
		js_ctx_rearm(ctx, cb, arg);
	else
	{
		ctx = &own;
		js_ctx_init(ctx, schema, cb, arg);
	}
	valid = js_validate(ctx, schema, instance, ctx->ids[0].base);
	if (!valid && ctx->nproblems == 0)
		js_emit(ctx, "", "does not match the schema");
	n = ctx->nproblems;
	if (ctx == &own)
		js_ctx_free(ctx);
	return n;
}

/* Check that schema is usable, reporting problems; see header. */
int
ao_json_schema_check(json_object *schema, ao_problem_fn cb, void *arg)
{
	js_ctx		ctx;
	int			n;

	js_ctx_init(&ctx, schema, cb, arg);
	for (size_t i = 1; i < ctx.nids; i++)
	{
		for (size_t j = 0; j < i; j++)
		{
			if (strcmp(ctx.ids[i].uri, ctx.ids[j].uri) == 0)
			{
				ao_buf_reset(&ctx.path);
				ao_buf_append(&ctx.path, ctx.ids[i].path);
				js_check_fail_at(&ctx, "$id", "duplicate $id \"%s\" (also at \"%s\")",
								 ctx.ids[i].uri, ctx.ids[j].path);
				break;
			}
		}
	}
	ao_buf_reset(&ctx.path);
	js_check_node(&ctx, schema, ctx.ids[0].base, 0);
	n = ctx.nproblems;
	js_ctx_free(&ctx);
	return n;
}

/* True when instance is valid against schema. */
bool
ao_json_schema_is_valid(json_object *schema, json_object *instance)
{
	return ao_json_schema_validate(schema, instance, NULL, NULL) == 0;
}


/* ----------------------------------------------------------------------
 * Exact numbers from JSON text
 * ----------------------------------------------------------------------
 */

/* Marker appended to integers json-c would clamp: a no-op exponent. */
#define JS_BIGNUM_MARK "E+0"

/*
 * Is tok (n bytes) a JSON integer that json-c cannot hold exactly (below
 * INT64_MIN or above UINT64_MAX)?
 */
static bool
js_is_big_integer(const char *tok, size_t n)
{
	bool		neg = n > 0 && tok[0] == '-';
	const char *d = tok + (neg ? 1 : 0);
	size_t		nd = n - (neg ? 1 : 0);
	const char *limit = neg ? "9223372036854775808" : "18446744073709551615";
	size_t		nl = strlen(limit);

	if (nd == 0 || (d[0] == '0' && nd > 1))
		return false;
	for (size_t i = 0; i < nd; i++)
		if (!js_isdigit(d[i]))
			return false;
	return nd > nl || (nd == nl && memcmp(d, limit, nl) > 0);
}

/*
 * Copy JSON text with JS_BIGNUM_MARK after every integer json-c would
 * clamp, so the tokener makes it a double that keeps its text. Strings
 * and comments are skipped. NULL when there is no such integer.
 */
static char *
js_bignum_rewrite(const char *text, size_t len, size_t *out_len)
{
	ao_buf		out;
	bool		any = false;
	size_t		copied = 0;
	size_t		i = 0;

	ao_buf_init(&out);
	while (i < len)
	{
		char		c = text[i];

		if (c == '"' || c == '\'')
		{
			/* json-c accepts single-quoted strings unless strict */
			for (i++; i < len && text[i] != c; i++)
				if (text[i] == '\\')
					i++;
			i++;
		}
		else if (c == '/' && i + 1 < len && text[i + 1] == '/')
		{
			while (i < len && text[i] != '\n')
				i++;
		}
		else if (c == '/' && i + 1 < len && text[i + 1] == '*')
		{
			for (i += 2; i + 1 < len && !(text[i] == '*' && text[i + 1] == '/'); i++)
				;
			i += 2;
		}
		else if (c == '-' || js_isdigit(c))
		{
			size_t		start = i;

			while (i < len && (js_isdigit(text[i]) || text[i] == '-' || text[i] == '+' ||
							   text[i] == '.' || text[i] == 'e' || text[i] == 'E'))
				i++;
			if (js_is_big_integer(text + start, i - start))
			{
				ao_buf_append_n(&out, text + copied, i - copied);
				ao_buf_append(&out, JS_BIGNUM_MARK);
				copied = i;
				any = true;
			}
		}
		else
			i++;
	}
	if (!any)
	{
		ao_buf_free(&out);
		return NULL;
	}
	ao_buf_append_n(&out, text + copied, len - copied);
	*out_len = out.len;
	return out.data;
}

/* Drop JS_BIGNUM_MARK from the text of the doubles it made. */
static void
js_bignum_restore(json_object *v)
{
	if (json_object_is_type(v, json_type_double))
	{
		const char *t = json_object_get_userdata(v);
		size_t		n = t ? strlen(t) : 0;
		size_t		m = strlen(JS_BIGNUM_MARK);

		if (n > m && strcmp(t + n - m, JS_BIGNUM_MARK) == 0 &&
			js_is_big_integer(t, n - m))
			json_object_set_serializer(v, json_object_userdata_to_json_string,
									   ao_strndup(t, n - m), json_object_free_userdata);
	}
	else if (json_object_is_type(v, json_type_array))
	{
		for (size_t i = 0; i < json_object_array_length(v); i++)
			js_bignum_restore(json_object_array_get_idx(v, i));
	}
	else if (json_object_is_type(v, json_type_object))
	{
		json_object_object_foreach(v, key, val)
		{
			(void) key;
			js_bignum_restore(val);
		}
	}
}

/* Re-parse text so integers beyond 64 bits stay exact; see header. */
json_object *
ao_json_exact_numbers(json_object *parsed, const char *text, size_t len,
					  int tokener_flags, int depth)
{
	size_t		n = 0;
	char	   *rewritten = js_bignum_rewrite(text, len, &n);
	json_tokener *tok;
	json_object *exact;

	if (rewritten == NULL)
		return parsed;
	tok = json_tokener_new_ex(depth);
	if (tok == NULL)
		ao_oom(0);
	json_tokener_set_flags(tok, tokener_flags);
	exact = json_tokener_parse_ex(tok, rewritten, (int) n + 1);
	if (json_tokener_get_error(tok) == json_tokener_success &&
		json_tokener_get_parse_end(tok) >= n)
	{
		js_bignum_restore(exact);
		json_object_put(parsed);
		parsed = exact;
	}
	else
		json_object_put(exact);
	json_tokener_free(tok);
	free(rewritten);
	return parsed;
}

/* json_tokener_parse keeping every number exact; see header. */
json_object *
ao_json_parse_exact(const char *text)
{
	json_object *v = json_tokener_parse(text);

	if (v == NULL)
		return NULL;
	return ao_json_exact_numbers(v, text, strlen(text), 0, JSON_TOKENER_DEFAULT_DEPTH);
}
