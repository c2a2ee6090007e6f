/*-------------------------------------------------------------------------
 *
 * test_robustness.c
 *	  Unit tests of the core's defences against hostile input: the YAML
 *	  expansion limit (alias bombs), the out-of-memory handler, interrupts
 *	  (YAML, JSON Schema, templates, DAG checks), PCRE2 match limits,
 *	  uniqueItems in O(n log n) and exact number semantics in JSON Schema.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/test_robustness.c
 *
 *-------------------------------------------------------------------------
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "ao_dag.h"
#include "ao_json_schema.h"
#include "ao_template.h"
#include "ao_yaml.h"
#include "unit.h"

/* Seconds since an arbitrary point (monotonic). */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Parse JSON keeping every number exact, as the server does. */
static json_object *
parse(const char *text)
{
	json_object *v = ao_json_parse_exact(text);

	if (v == NULL)
	{
		printf("# cannot parse test JSON: %s\n", text);
		abort();
	}
	return v;
}

/* Problems of one validation, "[path] message" joined by "\n". */
static ao_buf problems_text;
static int	problems_count;

static void
collect(void *arg, const char *path, const char *message)
{
	(void) arg;
	if (problems_count++ > 0)
		ao_buf_append(&problems_text, "\n");
	ao_buf_printf(&problems_text, "[%s] %s", path, message);
}

static void
reset_problems(void)
{
	ao_buf_reset(&problems_text);
	problems_count = 0;
}

/* Validate texts; returns the number of problems (text in problems_text). */
static int
validate(const char *schema, const char *instance)
{
	json_object *s = parse(schema);
	json_object *i = parse(instance);
	int			n;

	reset_problems();
	n = ao_json_schema_validate(s, i, collect, NULL);
	json_object_put(s);
	json_object_put(i);
	return n;
}

/* Check a schema text; returns the number of problems. */
static int
check(const char *schema)
{
	json_object *s = parse(schema);
	int			n;

	reset_problems();
	n = ao_json_schema_check(s, collect, NULL);
	json_object_put(s);
	return n;
}

/* ----------------------------------------------------------------------
 * Interrupt hooks
 * ----------------------------------------------------------------------
 */

static long polls;				/* polls seen */
static long fire_after;			/* fire from this poll on (< 0: never) */
static long polls_after_fire;	/* polls seen once firing */
static double fire_at;			/* or: fire from this time on (0: never) */

static int
counting_hook(void)
{
	polls++;
	if ((fire_after >= 0 && polls > fire_after) || (fire_at > 0 && now() >= fire_at))
	{
		polls_after_fire++;
		return 1;
	}
	return 0;
}

static void
arm_hook(long after, double at)
{
	polls = 0;
	polls_after_fire = 0;
	fire_after = after;
	fire_at = at;
	ao_interrupt_clear();
	ao_interrupt_check = counting_hook;
}

static void
disarm_hook(void)
{
	ao_interrupt_check = NULL;
	ao_interrupt_clear();
}

/* ----------------------------------------------------------------------
 * 1. YAML expansion limit
 * ----------------------------------------------------------------------
 */

static void
test_yaml_expansion(void)
{
	ao_buf		doc,
				err;
	json_object *v = NULL;
	int			rc;
	double		t0;

	/* the bomb of the issue: 299 KB that expands to 198 MB */
	ao_buf_init(&doc);
	ao_buf_init(&err);
	ao_buf_append(&doc, "a: &a ");
	for (int i = 0; i < 2000; i++)
		ao_buf_append(&doc, "x");
	ao_buf_append(&doc, "\nb: [");
	for (int i = 0; i < 99000; i++)
		ao_buf_append(&doc, i ? ",*a" : "*a");
	ao_buf_append(&doc, "]");
	t0 = now();
	rc = ao_yaml_parse(doc.data, doc.len, &v, &err);
	UNIT_OK(rc == AO_YAML_TOO_LARGE && v == NULL, "alias bomb refused with AO_YAML_TOO_LARGE");
	UNIT_OK(strstr(err.data, "YAML document expands to more than 16777216 bytes (aliases)") != NULL,
			"alias bomb: message names the limit");
	if (strstr(err.data, "expands") == NULL)
		printf("#   got: %.200s\n", err.data);
	UNIT_OK(strncmp(err.data, "line 2, column ", 15) == 0, "alias bomb: message has a position");
	UNIT_OK(now() - t0 < 5.0, "alias bomb refused quickly");

	/* a caller-supplied limit, exactly at the boundary */
	{
		const char *y = "a: &a [xxxxx, yyyyy]\nb: [*a, *a, *a]";

		/* 1 map + 2 "a" + (1 seq + 6 + 6) + 2 "b" + 1 seq + 3 * 13 = 58 */
		ao_buf_reset(&err);
		rc = ao_yaml_parse_limited(y, strlen(y), 58, &v, &err);
		UNIT_OK(rc == AO_YAML_OK && v != NULL, "expansion exactly at the limit is accepted");
		json_object_put(v);
		ao_buf_reset(&err);
		rc = ao_yaml_parse_limited(y, strlen(y), 57, &v, &err);
		UNIT_OK(rc == AO_YAML_TOO_LARGE && v == NULL, "one byte over the limit is refused");
		UNIT_STREQ(err.data, "line 2, column 13: YAML document expands to more than 57 bytes (aliases)",
				   "limit message");
	}

	/* scalar aliases count their text every time; keys count too */
	{
		const char *y = "k: &s hello\nl: [*s, *s]";

		/* 1 + 2 + 6 + 2 + 1 + 6 + 6 = 24 */
		rc = ao_yaml_parse_limited(y, strlen(y), 24, &v, &err);
		UNIT_OK(rc == AO_YAML_OK, "scalar aliases at the limit");
		json_object_put(v);
		rc = ao_yaml_parse_limited(y, strlen(y), 23, &v, &err);
		UNIT_OK(rc == AO_YAML_TOO_LARGE, "scalar aliases over the limit");
	}

	/* plain documents are unaffected by the default limit */
	rc = ao_yaml_parse("a: [1, 2, {b: c}]", 17, &v, &err);
	UNIT_OK(rc == AO_YAML_OK && v != NULL, "ordinary YAML still converts");
	json_object_put(v);

	ao_buf_free(&doc);
	ao_buf_free(&err);
}

/* ----------------------------------------------------------------------
 * 2. Out of memory
 * ----------------------------------------------------------------------
 */

static jmp_buf oom_jump;
static size_t oom_size;
static int	oom_calls;

static void
test_oom_handler(size_t size)
{
	oom_calls++;
	oom_size = size;
	longjmp(oom_jump, 1);
}

static void
test_oom(void)
{
	ao_buf		b;
	volatile int reached = 0;

	ao_set_oom_handler(test_oom_handler);

	oom_calls = 0;
	if (setjmp(oom_jump) == 0)
	{
		(void) ao_malloc(AO_ALLOC_MAX + 1);
		reached = 1;
	}
	UNIT_OK(oom_calls == 1 && oom_size == AO_ALLOC_MAX + 1 && !reached,
			"ao_malloc: a huge request goes to the handler with its size");

	oom_calls = 0;
	reached = 0;
	if (setjmp(oom_jump) == 0)
	{
		(void) ao_realloc(NULL, SIZE_MAX);
		reached = 1;
	}
	UNIT_OK(oom_calls == 1 && oom_size == SIZE_MAX && !reached, "ao_realloc: huge request");

	oom_calls = 0;
	reached = 0;
	if (setjmp(oom_jump) == 0)
	{
		(void) ao_calloc(SIZE_MAX / 2, 4);
		reached = 1;
	}
	UNIT_OK(oom_calls == 1 && !reached, "ao_calloc: overflowing count * size");

	/* a core path: growing a buffer (ao_buf_append_n) by an absurd size */
	ao_buf_init(&b);
	ao_buf_append(&b, "abc");
	oom_calls = 0;
	reached = 0;
	if (setjmp(oom_jump) == 0)
	{
		ao_buf_append_n(&b, "x", SIZE_MAX - 2);
		reached = 1;
	}
	UNIT_OK(oom_calls == 1 && !reached && strcmp(b.data, "abc") == 0,
			"ao_buf_append_n: failure reaches the handler, buffer intact");
	ao_buf_free(&b);

	/* ordinary allocations do not call it */
	oom_calls = 0;
	free(ao_malloc(100));
	free(ao_strndup("abc", 3));
	UNIT_OK(oom_calls == 0, "successful allocations do not call the handler");

	ao_set_oom_handler(NULL);
}

/* ----------------------------------------------------------------------
 * 3. Interrupts, regex limits, uniqueItems
 * ----------------------------------------------------------------------
 */

static void
test_interrupts(void)
{
	ao_buf		doc,
				err;
	json_object *v = NULL;
	int			rc;

	/* YAML: polled per event */
	ao_buf_init(&doc);
	ao_buf_init(&err);
	ao_buf_append(&doc, "[");
	for (int i = 0; i < 10000; i++)
		ao_buf_printf(&doc, "%s%d", i ? "," : "", i);
	ao_buf_append(&doc, "]");
	arm_hook(100, 0);
	rc = ao_yaml_parse(doc.data, doc.len, &v, &err);
	UNIT_OK(rc == AO_YAML_INTERRUPTED && v == NULL, "YAML: interrupted conversion returns AO_YAML_INTERRUPTED");
	UNIT_STREQ(err.data, "interrupted", "YAML: message");
	UNIT_OK(ao_interrupted() && polls_after_fire == 1, "YAML: stops at the first firing poll");
	disarm_hook();
	rc = ao_yaml_parse(doc.data, doc.len, &v, &err);
	UNIT_OK(rc == AO_YAML_OK && json_object_array_length(v) == 10000 && !ao_interrupted(),
			"YAML: no hook, no interruption");
	json_object_put(v);

	/* JSON Schema validation: polled per schema evaluation */
	{
		json_object *s = parse("{\"items\":{\"type\":\"integer\"}}");
		json_object *i = parse(doc.data);
		int			n;

		arm_hook(500, 0);
		reset_problems();
		n = ao_json_schema_validate(s, i, collect, NULL);
		UNIT_OK(n == 1 && ao_interrupted(), "validate: interrupted run reports one problem");
		UNIT_STREQ(problems_text.data, "[] interrupted", "validate: the problem is \"interrupted\" at the root");
		UNIT_OK(polls_after_fire == 1, "validate: no evaluation after the interrupt");
		disarm_hook();
		UNIT_OK(ao_json_schema_validate(s, i, NULL, NULL) == 0, "validate: valid without the hook");

		/* quiet evaluation (anyOf) still reports the interruption */
		json_object_put(s);
		s = parse("{\"anyOf\":[{\"items\":{\"type\":\"string\"}},{\"items\":{\"type\":\"integer\"}}]}");
		arm_hook(3000, 0);
		reset_problems();
		n = ao_json_schema_validate(s, i, collect, NULL);
		UNIT_OK(n == 1 && strcmp(problems_text.data, "[] interrupted") == 0,
				"validate: interruption inside anyOf is reported");
		disarm_hook();
		json_object_put(s);
		json_object_put(i);
	}

	/* schema check */
	arm_hook(0, 0);
	UNIT_OK(check("{\"properties\":{\"a\":{\"type\":\"string\"}}}") == 1 &&
			strcmp(problems_text.data, "[] interrupted") == 0, "check: interrupted");
	disarm_hook();

	/* templates */
	{
		json_object *t = parse("{\"a\":\"x\",\"b\":[\"y\",\"z\"]}");
		json_object *out = NULL;

		arm_hook(2, 0);
		reset_problems();
		rc = ao_template_render(t, NULL, NULL, collect, NULL, &out);
		UNIT_OK(rc == 1 && out == NULL && strstr(problems_text.data, "interrupted") != NULL,
				"template render: interrupted");
		arm_hook(2, 0);
		reset_problems();
		rc = ao_template_scan(t, "", NULL, NULL, collect, NULL);
		UNIT_OK(rc == 1 && strstr(problems_text.data, "interrupted") != NULL,
				"template scan: interrupted");
		disarm_hook();
		json_object_put(t);
	}

	/* DAG check: a long cycle, interrupted before the cycle search */
	{
		enum
		{
		N = 3000};
		static ao_dag_node nodes[N];
		static char ids[N][16];
		static const char *deps[N][1];

		for (int k = 0; k < N; k++)
			snprintf(ids[k], sizeof(ids[k]), "s%d", k);
		for (int k = 0; k < N; k++)
		{
			deps[k][0] = ids[(k + 1) % N];
			nodes[k].id = ids[k];
			nodes[k].deps = deps[k];
			nodes[k].ndeps = 1;
			nodes[k].path = NULL;
		}
		arm_hook(2, 0);
		reset_problems();
		rc = ao_dag_check(nodes, N, collect, NULL);
		UNIT_OK(rc == 1 && strcmp(problems_text.data, "[] interrupted") == 0, "DAG check: interrupted");
		disarm_hook();
		reset_problems();
		rc = ao_dag_check(nodes, N, collect, NULL);
		UNIT_OK(rc == 1 && strncmp(problems_text.data, "[] cycle: s0 -> s1 -> ", 22) == 0,
				"DAG check: the cycle without the hook");
	}

	/* a slow validation stops within ~100 ms of the interrupt */
	{
		ao_buf		inst;
		json_object *s = parse("{\"patternProperties\":{\"^\\\\d+(a+)+$\":{}}}");
		json_object *i;
		double		t0,
					t1;

		ao_buf_init(&inst);
		ao_buf_append(&inst, "{");
		for (int k = 0; k < 2000; k++)
			ao_buf_printf(&inst, "%s\"%daaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\":1", k ? "," : "", k);
		ao_buf_append(&inst, "}");
		i = parse(inst.data);
		t0 = now();
		arm_hook(-1, t0 + 0.05);
		ao_json_schema_validate(s, i, NULL, NULL);
		t1 = now();
		disarm_hook();
		UNIT_OK(t1 - t0 < 0.05 + 0.1, "interrupt honoured within 100 ms (catastrophic patterns)");
		printf("# stopped after %.3f s\n", t1 - t0);
		json_object_put(s);
		json_object_put(i);
		ao_buf_free(&inst);
	}

	ao_buf_free(&doc);
	ao_buf_free(&err);
}

static void
test_regex_limits(void)
{
	ao_buf		inst;
	double		t0;
	int			n;

	/* patternProperties with catastrophic backtracking over 60 keys */
	ao_buf_init(&inst);
	ao_buf_append(&inst, "{");
	for (int k = 0; k < 60; k++)
		ao_buf_printf(&inst, "%s\"%02daaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\":1", k ? "," : "", k);
	ao_buf_append(&inst, "}");
	t0 = now();
	n = validate("{\"patternProperties\":{\"^\\\\d+(a+)+$\":{}}}", inst.data);
	UNIT_OK(now() - t0 < 3.0, "patternProperties: catastrophic pattern over 60 keys is bounded");
	UNIT_OK(n == 60 && strstr(problems_text.data,
							  "[/00aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!] property name \"00aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\" could not be checked against pattern \"^\\d+(a+)+$\": match limit exceeded") != NULL,
			"patternProperties: a key the pattern cannot decide is a problem");
	if (n != 60)
		printf("# n=%d: %.300s\n", n, problems_text.data);

	/* additionalProperties needs the same patterns */
	n = validate("{\"patternProperties\":{\"^\\\\d+(a+)+$\":{}},\"additionalProperties\":false}",
				 "{\"1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\":1}");
	UNIT_OK(n >= 1 && strstr(problems_text.data, "match limit exceeded") != NULL,
			"additionalProperties: undecidable key is a problem, not a silent miss");

	/* "pattern" on a string */
	t0 = now();
	n = validate("{\"pattern\":\"^(\\\\w+\\\\s?)*$\"}",
				 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\"");
	UNIT_OK(n == 1 && strstr(problems_text.data, "could not be evaluated: match limit exceeded") != NULL &&
			now() - t0 < 1.0, "pattern: catastrophic backtracking stops at the match limit");
	if (n != 1)
		printf("# n=%d: %.300s\n", n, problems_text.data);

	/* ordinary patterns still work */
	UNIT_OK(validate("{\"patternProperties\":{\"^a\":{\"type\":\"integer\"}}}", "{\"ab\":\"x\",\"b\":1}") == 1 &&
			strcmp(problems_text.data, "[/ab] expected type integer, got string") == 0,
			"patternProperties: ordinary matching unchanged");
	ao_buf_free(&inst);
}

static void
test_unique_items(void)
{
	ao_buf		doc;
	double		t0;
	int			n;

	/* 30,000 distinct items: was 9.4 s (pairwise), now a sort */
	ao_buf_init(&doc);
	ao_buf_append(&doc, "[");
	for (int i = 0; i < 30000; i++)
		ao_buf_printf(&doc, "%s{\"id\":%d,\"v\":[%d.5,\"s%d\"]}", i ? "," : "", i, i, i);
	ao_buf_append(&doc, "]");
	t0 = now();
	n = validate("{\"uniqueItems\":true}", doc.data);
	UNIT_OK(n == 0 && now() - t0 < 2.0, "uniqueItems: 30,000 items in well under 2 s");
	printf("# uniqueItems over 30000 items: %.3f s\n", now() - t0);

	/* 30,000 equal items: every duplicate reported against item 0 */
	ao_buf_reset(&doc);
	ao_buf_append(&doc, "[");
	for (int i = 0; i < 30000; i++)
		ao_buf_append(&doc, i ? ",1" : "1");
	ao_buf_append(&doc, "]");
	t0 = now();
	n = validate("{\"uniqueItems\":true}", doc.data);
	UNIT_OK(n == 29999 && now() - t0 < 2.0, "uniqueItems: 30,000 equal items");

	UNIT_OK(validate("{\"uniqueItems\":true}", "[1,2,1,2,1]") == 3, "three duplicates");
	UNIT_STREQ(problems_text.data,
			   "[] array items 0 and 2 are equal, but uniqueItems is true\n"
			   "[] array items 1 and 3 are equal, but uniqueItems is true\n"
			   "[] array items 0 and 4 are equal, but uniqueItems is true",
			   "duplicates reported in order, each with the first equal item");
	UNIT_OK(validate("{\"uniqueItems\":true}", "[1, 1.0]") == 1, "1 and 1.0 are equal");
	UNIT_OK(validate("{\"uniqueItems\":true}", "[0, -0, 0.0, 0e10]") == 3, "zeros are equal");
	UNIT_OK(validate("{\"uniqueItems\":true}", "[{\"a\":1,\"b\":[2]},{\"b\":[2.0],\"a\":1e0}]") == 1,
			"objects: member order irrelevant, numbers by value");
	UNIT_OK(validate("{\"uniqueItems\":true}", "[[1,2],[2,1],\"1\",1,true,null,{},[],\"\"]") == 0,
			"distinct kinds and orders are unique");
	UNIT_OK(validate("{\"uniqueItems\":true}", "[{\"a\":\"b:c\"},{\"a:b\":\"c\"}]") == 0,
			"canonical forms do not collide across keys and strings");
	UNIT_OK(validate("{\"uniqueItems\":true}",
					 "[18446744073709551616, 18446744073709551617, 1e-400, 0]") == 0,
			"big and tiny numbers are compared exactly");
	UNIT_OK(validate("{\"uniqueItems\":true}", "[100000000000000000000000, 1e23]") == 1,
			"a 24-digit integer equals 1e23");
	ao_buf_free(&doc);
}

/* ----------------------------------------------------------------------
 * 4. Exact numbers
 * ----------------------------------------------------------------------
 */

static void
test_numbers(void)
{
	json_object *v;

	/* the cases of the issue (each was valid before) */
	UNIT_OK(validate("{\"maximum\":1e20}", "100000000000000000000000") == 1,
			"100000000000000000000000 is above maximum 1e20");
	UNIT_STREQ(problems_text.data, "[] value 100000000000000000000000 is greater than maximum 1e20",
			   "big integer keeps its digits in messages");
	UNIT_OK(validate("{\"maximum\":1e300}", "1.5e300") == 1, "1.5e300 is above maximum 1e300");
	UNIT_OK(validate("{\"const\":18446744073709551616}", "18446744073709551617") == 1,
			"18446744073709551617 is not const 18446744073709551616");
	UNIT_OK(validate("{\"maximum\":0}", "1e-400") == 1, "1e-400 is above maximum 0");
	UNIT_OK(validate("{\"exclusiveMinimum\":0}", "1e-400") == 0, "1e-400 is above exclusiveMinimum 0");
	UNIT_OK(validate("{\"minimum\":0}", "-1e-400") == 1, "-1e-400 is below minimum 0");

	/* the same values as the server sees them (jsonb prints them out) */
	{
		char		big[400];

		strcpy(big, "15");
		for (int i = 0; i < 299; i++)
			strcat(big, "0");
		UNIT_OK(validate("{\"maximum\":1e300}", big) == 1, "1.5e300 written out in full is above 1e300");
		UNIT_OK(validate("{\"const\":1.5e300}", big) == 0, "and equals 1.5e300");
	}

	/* equal values stay equal */
	UNIT_OK(validate("{\"const\":18446744073709551617}", "18446744073709551617") == 0, "bignum const");
	UNIT_OK(validate("{\"enum\":[1,100000000000000000000000]}", "1e23") == 0, "bignum enum");
	UNIT_OK(validate("{\"const\":1}", "1.0") == 0, "1 == 1.0");
	UNIT_OK(validate("{\"const\":0.1}", "1e-1") == 0, "0.1 == 1e-1");
	UNIT_OK(validate("{\"maximum\":-100000000000000000000000}", "-99999999999999999999999") == 1,
			"negative bignums compare exactly");
	UNIT_OK(validate("{\"maximum\":9007199254740993}", "9007199254740993.0") == 0,
			"2^53+1 written as a double is not rounded");
	UNIT_OK(validate("{\"maximum\":9007199254740992}", "9007199254740993.0") == 1,
			"2^53+1 > 2^53 although they are the same double");

	/* integers by exact value */
	UNIT_OK(validate("{\"type\":\"integer\"}", "1e-400") == 1, "1e-400 is not an integer");
	UNIT_OK(validate("{\"type\":\"integer\"}", "1e400") == 0, "1e400 is an integer");
	UNIT_OK(validate("{\"type\":\"integer\"}", "100000000000000000000000") == 0, "bignum is an integer");

	/* multipleOf: decided exactly, or refused */
	UNIT_OK(check("{\"multipleOf\":1e-1001}") == 0, "multipleOf 1e-1001 is a usable schema");
	UNIT_OK(validate("{\"multipleOf\":1e-1001}", "1") == 0, "1 is a multiple of 1e-1001");
	UNIT_OK(validate("{\"multipleOf\":1e-1001}", "1e-1002") == 1, "1e-1002 is not a multiple of 1e-1001");
	UNIT_OK(validate("{\"multipleOf\":3e-1001}", "9e-1001") == 0, "9e-1001 is a multiple of 3e-1001");
	UNIT_OK(validate("{\"multipleOf\":7}", "100000000000000000000000") == 1, "10^23 is no multiple of 7");
	UNIT_OK(validate("{\"multipleOf\":1e20}", "100000000000000000000000") == 0, "10^23 is a multiple of 1e20");
	UNIT_OK(check("{\"multipleOf\":1.234567890123456789012345}") == 1 &&
			strcmp(problems_text.data,
				   "[/multipleOf] multipleOf has too many significant digits to be evaluated exactly (at most 19)") == 0,
			"multipleOf with 25 significant digits is refused by the check");
	UNIT_OK(validate("{\"multipleOf\":1.234567890123456789012345}", "1") == 1 &&
			strstr(problems_text.data, "cannot be checked exactly") != NULL,
			"unchecked: such a multipleOf never passes silently");
	UNIT_OK(check("{\"multipleOf\":18446744073709551615}") == 0, "a uint64 divisor is fine");
	UNIT_OK(check("{\"multipleOf\":1e-400}") == 0 && check("{\"multipleOf\":-1e-400}") == 1,
			"multipleOf sign by exact value");

	/* ao_json_exact_numbers keeps the digits and leaves strings alone */
	v = parse("{\"n\":100000000000000000000000,\"s\":\"100000000000000000000000\",\"m\":-99999999999999999999,\"u\":18446744073709551615}");
	UNIT_STREQ(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
			   "{\"n\":100000000000000000000000,\"s\":\"100000000000000000000000\",\"m\":-99999999999999999999,\"u\":18446744073709551615}",
			   "exact parse round-trips big integers and strings");
	json_object_put(v);
	{
		const char *t = "[\"a\\\"1\", 123456789012345678901234567890]";
		json_tokener *tok = json_tokener_new();
		json_object *o;

		json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
		o = json_tokener_parse_ex(tok, t, (int) strlen(t) + 1);
		json_tokener_free(tok);
		o = ao_json_exact_numbers(o, t, strlen(t), JSON_TOKENER_STRICT, JSON_TOKENER_DEFAULT_DEPTH);
		UNIT_STREQ(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
				   "[\"a\\\"1\",123456789012345678901234567890]", "strict parse with escapes");
		json_object_put(o);
	}
	{
		json_object *a = parse("18446744073709551616");
		json_object *b = parse("18446744073709551617");
		json_object *c = parse("1.8446744073709551616e19");

		UNIT_OK(!ao_json_equal(a, b) && ao_json_equal(a, c), "ao_json_equal on exact values");
		json_object_put(a);
		json_object_put(b);
		json_object_put(c);
	}
}

int
main(void)
{
	ao_buf_init(&problems_text);
	test_yaml_expansion();
	test_oom();
	test_interrupts();
	test_regex_limits();
	test_unique_items();
	test_numbers();
	ao_buf_free(&problems_text);
	return unit_done();
}
