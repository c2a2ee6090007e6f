/*-------------------------------------------------------------------------
 *
 * ao_yaml.h
 *	  YAML to JSON conversion with libyaml.
 *
 * Workflows and rule files may be written in YAML; they are converted to
 * JSON before anything else looks at them, so YAML only needs to describe
 * what JSON can hold. Plain scalars follow the YAML 1.2 core schema:
 *	  null	  null Null NULL ~ (and an empty value)
 *	  bool	  true True TRUE false False FALSE (yes/no/on/off stay strings)
 *	  int	  [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+ (a decimal integer outside
 *			  the int64 range becomes a number with its exact digits kept;
 *			  octal or hex out of range is an error)
 *	  float	  [-+]?(.[0-9]+|[0-9]+(.[0-9]*)?)([eE][-+]?[0-9]+)? (the digits
 *			  are kept exactly; .inf and .nan are errors, JSON cannot hold
 *			  them)
 *	  anything else is a string.
 * Quoted and block scalars are always strings. The tags !!str, !!int,
 * !!float, !!bool, !!null, !!seq, !!map and the non-specific "!" are
 * honoured; other tags are refused. Mapping keys must be scalars and are
 * taken as strings exactly as written ("<<" is an ordinary key: merge keys
 * are a YAML 1.1 feature); duplicate keys are refused. Aliases are
 * expanded by deep copy, at most AO_YAML_MAX_ALIAS_NODES nodes in total
 * (a "billion laughs" document is refused), and the whole document may
 * expand to at most max_expansion bytes: the bytes of every scalar (value
 * or key) produced plus one per node, counting each alias expansion in
 * full, so a short document that repeats a long anchored scalar many times
 * is refused before it is built ("YAML document expands to more than N
 * bytes (aliases)"). One document per input;
 * collections nest at most AO_YAML_MAX_DEPTH levels. Every error message
 * starts with "line L, column C: " (1-based).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_yaml.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_YAML_H
#define AO_YAML_H

#include <stddef.h>

#include <json-c/json.h>

#include "ao_core.h"

/* Nodes that alias expansion may copy into one document, in total. */
#define AO_YAML_MAX_ALIAS_NODES 100000

/* Deepest nesting of sequences and mappings. */
#define AO_YAML_MAX_DEPTH 256

/* Expanded size allowed by ao_yaml_parse and ao_yaml_to_json, in bytes. */
#define AO_YAML_DEFAULT_MAX_EXPANSION ((size_t) 16 * 1024 * 1024)

/* Results of ao_yaml_parse_limited (every failure is negative). */
#define AO_YAML_OK			0
#define AO_YAML_ERROR		(-1)	/* malformed or unsupported YAML */
#define AO_YAML_TOO_LARGE	(-2)	/* expands to more than max_expansion */
#define AO_YAML_INTERRUPTED (-3)	/* ao_interrupt_check fired (ao_core.h) */

/*
 * Convert len bytes of YAML (UTF-8) into a new json-c value stored in *out
 * (NULL is a JSON null, e.g. for an empty document), refusing documents
 * that expand to more than max_expansion bytes (see above). Returns
 * AO_YAML_OK, or one of the negative codes with *out = NULL and a message
 * appended to err (may be NULL); the message of AO_YAML_INTERRUPTED is
 * AO_INTERRUPTED_MESSAGE. The interrupt hook is polled once per event.
 */
extern int	ao_yaml_parse_limited(const char *text, size_t len,
								  size_t max_expansion, json_object **out,
								  ao_buf *err);

/*
 * ao_yaml_parse_limited with AO_YAML_DEFAULT_MAX_EXPANSION. Returns 0, or a
 * negative code with *out = NULL and a message appended to err (may be
 * NULL), such as
 *	 line 3, column 5: mapping values are not allowed in this context
 */
extern int	ao_yaml_parse(const char *text, size_t len, json_object **out,
						  ao_buf *err);

/*
 * The same conversion returning the value: a new json-c value, or NULL
 * either for a JSON null result or on error. err (may be NULL) is reset
 * first, so after a NULL result an empty err means "JSON null" and a
 * non-empty one holds the error message.
 */
extern json_object *ao_yaml_to_json(const char *text, size_t len, ao_buf *err);

#endif							/* AO_YAML_H */
