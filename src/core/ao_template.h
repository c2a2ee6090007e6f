/*-------------------------------------------------------------------------
 *
 * ao_template.h
 *	  ${...} references inside JSON string values: parsing, scanning and
 *	  rendering.
 *
 * A workflow's step inputs, prompts and outputs are JSON values whose
 * strings may contain references such as ${input.region},
 * ${load_data.output}, ${analyze.output.rows[0].name}, ${memory.k},
 * ${item} or ${index}. "$${" is an escaped literal "${". A string that is
 * exactly one reference renders to the referenced JSON value (its type is
 * kept); references inside longer strings render as text (strings raw,
 * any other value as its compact JSON, null as "null"). Object keys are
 * never templates.
 *
 * Expression grammar (spaces allowed only just inside ${ and }):
 *	  ref	  := root ( "." name | "[" digits "]" )*
 *	  name	  := [A-Za-z0-9_-]+
 *	  root	  := "input" | "memory" | "item" | "index" | step
 *	  step	  := name "." field | "steps." name "." field
 *	  field	  := "output" | "status" | "error"
 * "index" takes no further segments (it is the loop iteration number).
 * "steps.<id>.<field>..." is the long form of "<id>.<field>...": it applies
 * when the root is "steps" and its second segment is a field name, so a
 * step that is itself called "steps" stays reachable as ${steps.output} or
 * ${steps.output.x}.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_template.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_TEMPLATE_H
#define AO_TEMPLATE_H

#include <stddef.h>

#include <json-c/json.h>

#include "ao_core.h"

typedef enum ao_ref_root
{
	AO_REF_INPUT,
	AO_REF_MEMORY,
	AO_REF_ITEM,
	AO_REF_INDEX,
	AO_REF_STEP
} ao_ref_root;

/* One path segment after the root: an object key, or an array index. */
typedef struct ao_ref_seg
{
	char	   *key;			/* NULL => array index */
	long		index;
} ao_ref_seg;

/* A parsed reference; every string is owned (malloc'd) by the ref. */
typedef struct ao_ref
{
	ao_ref_root root;
	char	   *step_id;		/* AO_REF_STEP only, else NULL */
	char	   *field;			/* AO_REF_STEP only: "output", "status" or
								 * "error", else NULL */
	ao_ref_seg *segs;			/* segments after the root (and after the
								 * field for a step) */
	size_t		nsegs;
	char	   *text;			/* the expression as written, without ${ }
								 * and surrounding spaces, for messages */
} ao_ref;

/*
 * Parse the len bytes at expr (the text between "${" and "}", spaces
 * around it allowed) into *out. Returns 0, or -1 with a message in err
 * (appended; err may be NULL) such as
 *	 invalid reference ${foo.bar}: a step reference must continue with
 *	 .output, .status or .error
 * On error *out holds nothing to free (ao_ref_free on it is harmless).
 */
extern int	ao_ref_parse(const char *expr, size_t len, ao_ref *out, ao_buf *err);

/* Release what a successful ao_ref_parse allocated; ref itself is not freed. */
extern void ao_ref_free(ao_ref *ref);

/*
 * Append the canonical form of ref (short step form, e.g.
 * "load_data.output.rows[0].name") to out.
 */
extern void ao_ref_format(const ao_ref *ref, ao_buf *out);

/*
 * Receives one reference found by ao_template_scan: path is the JSON pointer
 * of the string holding it, whole is 1 when the string is exactly this one
 * reference. Arguments are valid only during the call.
 */
typedef void (*ao_template_ref_fn) (void *arg, const char *path,
									const ao_ref *ref, int whole);

/*
 * Walk every string in value (recursively; object keys are not templates)
 * and call fn (may be NULL) for each reference, in document order, with the
 * JSON pointer base_path (NULL means "") + the string's inner path. Syntax
 * errors (unterminated "${", empty "${}", invalid expression) go to cb (may
 * be NULL) with the string's path; scanning goes on after them. Returns the
 * number of syntax problems.
 */
/*
 * Both walks poll ao_interrupt_check (ao_core.h) once per value; when it
 * fires they stop and report one more problem, AO_INTERRUPTED_MESSAGE.
 */
extern int	ao_template_scan(json_object *value, const char *base_path,
							 ao_template_ref_fn fn, void *fnarg,
							 ao_problem_fn cb, void *cbarg);

/*
 * Resolve one reference. Returns 1 and sets *value to a borrowed pointer
 * when the reference resolves (a NULL *value is then a JSON null, which
 * json-c cannot tell apart from "no value" otherwise), or 0 when it does
 * not resolve.
 */
typedef int (*ao_ref_resolve_fn) (void *arg, const ao_ref *ref,
								  json_object **value);

/*
 * Render tmpl into a NEW value stored in *out (NULL is a JSON null): a
 * string that is exactly one reference becomes a deep copy of the
 * referenced value, references inside longer strings are replaced by text,
 * "$${" becomes "${", everything else is copied. Every syntax error and
 * every reference that does not resolve (message
 * "reference ${x.y} does not resolve") is reported to cb (may be NULL) with
 * the string's JSON pointer relative to tmpl. Returns the number of
 * problems; when it is not 0, *out is NULL and nothing needs freeing.
 */
extern int	ao_template_render(json_object *tmpl, ao_ref_resolve_fn resolve,
							   void *rarg, ao_problem_fn cb, void *cbarg,
							   json_object **out);

/*
 * A resolver (usable as ao_ref_resolve_fn) over a context object
 *	 {"input": .., "memory": .., "item": .., "index": ..,
 *	  "steps": {"<id>": {"output": .., "status": .., "error": ..}}}
 * Keys walk objects; an index, or a key made only of digits, walks arrays.
 * A member that is absent (as opposed to null) does not resolve.
 */
extern int	ao_ref_resolve_in_context(void *context, const ao_ref *ref,
									  json_object **value);

/*
 * Does value hold a "${" that rendering would treat as a reference,
 * well-formed or not? An escaped "$${" (literal text) does not count.
 * (Used to keep SQL statements literal: DESIGN.md section 9.)
 */
extern int	ao_template_has_reference(json_object *value);

#endif							/* AO_TEMPLATE_H */
