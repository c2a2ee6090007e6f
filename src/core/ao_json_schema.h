/*-------------------------------------------------------------------------
 *
 * ao_json_schema.h
 *	  JSON Schema (draft-07) validation for agentorch's PostgreSQL-free core.
 *
 * The validator works directly on json-c trees. Regular expressions
 * ("pattern", "patternProperties") are compiled with PCRE2 in UTF mode,
 * without Unicode properties so that \d and \w stay ASCII as in ECMA-262.
 * "format" is treated as an annotation. Only references inside the schema
 * document are supported: "#..." JSON pointers, "$id"-named subschemas
 * (absolute or "#name"), and relative references resolved against "$id"
 * base URIs; anything that would need fetching another document is a
 * "remote $ref" and is refused.
 *
 * Numbers are compared by their exact decimal value (json-c keeps the text
 * of parsed doubles; integers beyond 64 bits need ao_json_parse_exact or
 * ao_json_exact_numbers, as json-c's tokener clamps them).
 *
 * Long evaluations poll ao_interrupt_check (ao_core.h) once per schema
 * evaluation and in long loops; when it fires the run stops and reports
 * one problem, AO_INTERRUPTED_MESSAGE, at path "".
 *
 * Problems are reported through ao_problem_fn (see ao_core.h): for
 * ao_json_schema_validate the path is a JSON pointer into the instance,
 * for ao_json_schema_check a JSON pointer into the schema.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_json_schema.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_JSON_SCHEMA_H
#define AO_JSON_SCHEMA_H

#include <stdbool.h>

#include <json-c/json.h>

#include "ao_core.h"

/*
 * Validation stops descending after this many nested schema evaluations
 * and reports "schema recursion too deep"; a "$ref" cycle that comes back
 * to the same schema for the same instance value is reported immediately.
 */
#define AO_JSON_SCHEMA_MAX_DEPTH 256

/*
 * Limits of one PCRE2 match ("pattern", "patternProperties"): a pattern
 * that backtracks catastrophically ("^(a+)+$" on "aaaa...!") stops after
 * AO_JSON_SCHEMA_MATCH_LIMIT internal steps (milliseconds) and the value is
 * reported as not checkable ("... could not be evaluated: match limit
 * exceeded") instead of running for minutes.
 */
#define AO_JSON_SCHEMA_MATCH_LIMIT 1000000
#define AO_JSON_SCHEMA_DEPTH_LIMIT 100000

/*
 * Validate instance against a draft-07 schema. "#..." $refs resolve against
 * schema (the root). Reports each problem through cb (which may be NULL to
 * only count) with path = JSON pointer into the instance ("" = root) and a
 * lower-case message. Returns the number of problems (0 = valid).
 */
extern int	ao_json_schema_validate(json_object *schema, json_object *instance,
									ao_problem_fn cb, void *arg);

/*
 * Keep schema prepared: later ao_json_schema_validate calls with this very
 * object skip building its $id table and reuse the regexes they compiled.
 * For schemas that live as long as the process and are never changed
 * (the stored schemas a backend caches); the object is referenced and
 * never released. Validations against one kept schema must not nest.
 */
extern void ao_json_schema_keep(json_object *schema);

/*
 * Check that a schema is usable: it is an object or boolean, keywords have
 * the right types, patterns compile, $refs resolve inside the document and
 * do not form a pure $ref cycle. Remote references are refused with
 * "remote $ref \"...\" is not supported", and a multipleOf whose
 * significant digits do not fit in 64 bits (e.g. 1.234567890123456789012)
 * with "multipleOf has too many significant digits to be evaluated
 * exactly" (any exponent is fine: 1e-1001 is evaluated exactly). path =
 * JSON pointer into the schema. Returns the number of problems (0 =
 * usable).
 */
extern int	ao_json_schema_check(json_object *schema, ao_problem_fn cb, void *arg);

/* Convenience wrapper: true when ao_json_schema_validate finds no problem. */
extern bool ao_json_schema_is_valid(json_object *schema, json_object *instance);

/*
 * JSON Schema equality: same type and value, where numbers compare by
 * mathematical value (1 == 1.0), arrays element-wise and objects
 * regardless of member order. JSON null may be NULL or a null object.
 */
extern bool ao_json_equal(json_object *a, json_object *b);

/*
 * json-c's tokener clamps integers outside int64/uint64 (1e23 written out
 * becomes 18446744073709551615). Given parsed = the tokener's result for
 * text (len bytes, parsed with tokener_flags and depth), this returns a
 * value in which every such integer is instead a double that keeps its
 * exact text (json_object_get_string gives the digits as written), so the
 * validator compares it exactly. Returns parsed itself when text has no
 * such integer; otherwise releases parsed and returns the new value.
 */
extern json_object *ao_json_exact_numbers(json_object *parsed, const char *text,
										  size_t len, int tokener_flags, int depth);

/* json_tokener_parse(text) followed by ao_json_exact_numbers. */
extern json_object *ao_json_parse_exact(const char *text);

#endif							/* AO_JSON_SCHEMA_H */
