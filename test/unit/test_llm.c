/*-------------------------------------------------------------------------
 *
 * test_llm.c
 *	  Unit tests of the LLM wire protocol layer (ao_llm): tool-name
 *	  mapping, request bodies and headers, streaming and non-streaming
 *	  decoding of recorded mock-server replies (fixtures/), chunking
 *	  invariance, malformed input, incremental JSON, cost and error
 *	  classification.
 *
 * The fixtures were recorded once from test/mock_llm with
 * fixtures/capture.sh; nothing here needs the network.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/test_llm.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ao_core.h"
#include "ao_json_schema.h"
#include "ao_llm.h"
#include "unit.h"

#ifndef AO_FIXTURES_DIR
#define AO_FIXTURES_DIR AO_SCHEMAS_DIR "/../test/unit/fixtures"
#endif

#define PLAIN (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

static unsigned int rng_state = 20260101u;

static unsigned int
rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return (rng_state >> 8) & 0xffffff;
}

static char *
read_fixture(const char *name, size_t *len)
{
	char		path[1024];
	FILE	   *f;
	char	   *buf;
	long		n;

	snprintf(path, sizeof(path), "%s/%s", AO_FIXTURES_DIR, name);
	f = fopen(path, "rb");
	if (f == NULL)
	{
		printf("# cannot open %s\n", path);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t) n + 1);
	if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n)
		abort();
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t) n;
	return buf;
}

static json_object *
J(const char *text)
{
	json_object *v = json_tokener_parse(text);

	if (v == NULL)
	{
		printf("# test bug: bad JSON literal: %s\n", text);
		abort();
	}
	return v;
}

static json_object *
fixture_json(const char *name)
{
	char	   *t = read_fixture(name, NULL);
	json_object *v = t ? json_tokener_parse(t) : NULL;

	free(t);
	return v;
}

/* Semantic JSON comparison; prints both on failure. Consumes got. */
static void
check_json(const char *name, json_object *got, json_object *want)
{
	if (!unit_ok(ao_json_equal(got, want), name))
	{
		printf("#   got:  %s\n", got ? json_object_to_json_string_ext(got, PLAIN) : "NULL");
		printf("#   want: %s\n", want ? json_object_to_json_string_ext(want, PLAIN) : "NULL");
	}
	json_object_put(got);
}

static void
check_json_text(const char *name, json_object *got, const char *want_text)
{
	json_object *want = J(want_text);

	check_json(name, got, want);
	json_object_put(want);
}

/* JSON pointer lookup for short checks ("/messages/0/role"); borrowed. */
static json_object *
at(json_object *root, const char *ptr)
{
	json_object *cur = root;
	char		tok[256];

	while (cur != NULL && *ptr == '/')
	{
		size_t		n = strcspn(ptr + 1, "/");

		memcpy(tok, ptr + 1, n);
		tok[n] = '\0';
		ptr += n + 1;
		if (json_object_is_type(cur, json_type_array))
			cur = json_object_array_get_idx(cur, (size_t) atoi(tok));
		else if (!json_object_object_get_ex(cur, tok, &cur))
			return NULL;
	}
	return cur;
}

static const char *
at_str(json_object *root, const char *ptr)
{
	json_object *v = at(root, ptr);

	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* ---------------------------------------------------------------------- */
/* Tool-name mapping                                                      */
/* ---------------------------------------------------------------------- */

/* Every entry legal, wire names distinct, both directions consistent. */
static bool
map_is_sound(const ao_llm_toolmap *m, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		const char *w = ao_llm_toolmap_wire(m, names[i]);

		if (w == NULL || !ao_llm_tool_name_is_legal(w) ||
			strcmp(w, AO_LLM_STRUCTURED_TOOL) == 0)
		{
			printf("# bad wire name for \"%s\": %s\n", names[i], w ? w : "NULL");
			return false;
		}
		if (ao_llm_toolmap_name(m, w) == NULL || strcmp(ao_llm_toolmap_name(m, w), names[i]) != 0)
		{
			printf("# wire \"%s\" does not map back to \"%s\"\n", w, names[i]);
			return false;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(names[k], names[i]) != 0 &&
				strcmp(ao_llm_toolmap_wire(m, names[k]), w) == 0)
			{
				printf("# collision: \"%s\" and \"%s\" -> %s\n", names[k], names[i], w);
				return false;
			}
	}
	return true;
}

static void
test_toolmap(void)
{
	ao_llm_toolmap *m = ao_llm_toolmap_new();
	ao_llm_toolmap *m2;
	const char *basic[] = {"get_time", "chart.create", "sql-query", "data/load"};
	const char *coll1[] = {"a.b", "a_b", "a:b", "a b"};
	const char *coll2[] = {"a b", "a:b", "a_b", "a.b"};
	char		long1[101],
				long2[101];
	const char *longs[2] = {long1, long2};
	json_object *saved;
	ao_problems probs;

	UNIT_OK(ao_llm_tool_name_is_legal("get_time") && ao_llm_tool_name_is_legal("A-9_z"),
			"legal names");
	UNIT_OK(!ao_llm_tool_name_is_legal("chart.create") && !ao_llm_tool_name_is_legal("") &&
			!ao_llm_tool_name_is_legal("a b") && !ao_llm_tool_name_is_legal(NULL),
			"illegal names");

	ao_llm_toolmap_add(m, basic, 4);
	UNIT_STREQ(ao_llm_toolmap_wire(m, "get_time"), "get_time", "legal name maps to itself");
	UNIT_STREQ(ao_llm_toolmap_wire(m, "chart.create"), "chart_create", "dot becomes underscore");
	UNIT_STREQ(ao_llm_toolmap_wire(m, "data/load"), "data_load", "slash becomes underscore");
	UNIT_STREQ(ao_llm_toolmap_name(m, "chart_create"), "chart.create", "mapped back");
	UNIT_OK(ao_llm_toolmap_name(m, "nope") == NULL && ao_llm_toolmap_wire(m, "nope") == NULL,
			"unknown names give NULL");
	UNIT_OK(ao_llm_toolmap_count(m) == 4, "count");
	ao_llm_toolmap_add(m, basic, 4);
	UNIT_OK(ao_llm_toolmap_count(m) == 4, "adding known names again changes nothing");
	ao_llm_toolmap_free(m);

	/* collisions: the legal a_b keeps its name, the others get distinct ones */
	m = ao_llm_toolmap_new();
	m2 = ao_llm_toolmap_new();
	ao_llm_toolmap_add(m, coll1, 4);
	ao_llm_toolmap_add(m2, coll2, 4);
	UNIT_STREQ(ao_llm_toolmap_wire(m, "a_b"), "a_b", "legal a_b keeps its name next to a.b");
	UNIT_OK(map_is_sound(m, coll1, 4), "a.b, a_b, a:b, a b map without collisions");
	{
		bool		same = true;

		for (int i = 0; i < 4; i++)
			same = same && strcmp(ao_llm_toolmap_wire(m, coll1[i]), ao_llm_toolmap_wire(m2, coll1[i])) == 0;
		UNIT_OK(same, "mapping does not depend on the order of the names");
	}
	{
		const char *w = ao_llm_toolmap_wire(m, "a.b");

		UNIT_OK(strncmp(w, "a_b_", 4) == 0 && strlen(w) == 12, "collision gets a hash suffix");
	}
	ao_llm_toolmap_free(m);
	ao_llm_toolmap_free(m2);

	/* incremental: an earlier assignment is kept, a legal name is displaced */
	m = ao_llm_toolmap_new();
	ao_llm_toolmap_add(m, coll1, 1);	/* a.b alone */
	UNIT_STREQ(ao_llm_toolmap_wire(m, "a.b"), "a_b", "a.b alone becomes a_b");
	ao_llm_toolmap_add(m, coll1 + 1, 1);	/* then a_b */
	UNIT_STREQ(ao_llm_toolmap_wire(m, "a.b"), "a_b", "earlier assignment is kept");
	UNIT_OK(map_is_sound(m, coll1, 2), "a later legal name is displaced, no collision");
	ao_llm_toolmap_free(m);

	/* long names: truncated + hash, distinct even with a shared prefix */
	memset(long1, 'x', 100);
	long1[100] = '\0';
	memcpy(long2, long1, sizeof(long1));
	long2[99] = 'y';
	m = ao_llm_toolmap_new();
	ao_llm_toolmap_add(m, longs, 2);
	UNIT_OK(map_is_sound(m, longs, 2) && strlen(ao_llm_toolmap_wire(m, long1)) == 64,
			"names over 64 characters: 64-character wire names, distinct");
	ao_llm_toolmap_free(m);

	/* exactly 64 legal characters keep their name */
	{
		char		n64[65];
		const char *one[1] = {n64};

		memset(n64, 'k', 64);
		n64[64] = '\0';
		m = ao_llm_toolmap_new();
		ao_llm_toolmap_add(m, one, 1);
		UNIT_STREQ(ao_llm_toolmap_wire(m, n64), n64, "64-character legal name kept");
		ao_llm_toolmap_free(m);
	}

	/* unicode, empty and reserved names */
	{
		const char *odd[] = {"m\xC3\xA9t\xC3\xA9o.pr\xC3\xA9vision", "", AO_LLM_STRUCTURED_TOOL,
		"\xE2\x9C\x93"};

		m = ao_llm_toolmap_new();
		ao_llm_toolmap_add(m, odd, 4);
		UNIT_STREQ(ao_llm_toolmap_wire(m, odd[0]), "m_t_o_pr_vision",
				   "a UTF-8 character becomes one underscore");
		UNIT_OK(strncmp(ao_llm_toolmap_wire(m, ""), "tool_", 5) == 0, "empty name gets tool_<hash>");
		UNIT_OK(strcmp(ao_llm_toolmap_wire(m, AO_LLM_STRUCTURED_TOOL), AO_LLM_STRUCTURED_TOOL) != 0,
				"a tool registered as structured_output does not take the reserved wire name");
		UNIT_OK(ao_llm_toolmap_name(m, AO_LLM_STRUCTURED_TOOL) == NULL,
				"the reserved wire name maps to no tool");
		UNIT_OK(map_is_sound(m, odd, 4), "odd names are sound");
		ao_llm_toolmap_free(m);
	}

	/* many random awkward names */
	{
		static const char alphabet[] = "ab_.-: /A1\xC3\xA9";
		char	   *names[300];
		bool		sound;

		for (int i = 0; i < 300; i++)
		{
			size_t		len = 1 + rng() % 80;

			names[i] = malloc(len + 1);
			for (size_t k = 0; k < len; k++)
				names[i][k] = alphabet[rng() % (sizeof(alphabet) - 1)];
			names[i][len] = '\0';
			/* keep UTF-8 valid: a lone lead byte becomes 'e' */
			for (size_t k = 0; k < len; k++)
				if ((unsigned char) names[i][k] == 0xC3 && (k + 1 == len || (unsigned char) names[i][k + 1] != 0xA9))
					names[i][k] = 'e';
		}
		m = ao_llm_toolmap_new();
		ao_llm_toolmap_add(m, (const char *const *) names, 300);
		sound = map_is_sound(m, (const char *const *) names, 300);
		UNIT_OK(sound, "300 random awkward names: legal, distinct, reversible");

		/* persisted and restored */
		saved = ao_llm_toolmap_to_json(m);
		ao_problems_init(&probs);
		m2 = ao_llm_toolmap_from_json(saved, ao_problems_add, &probs);
		UNIT_OK(m2 != NULL && probs.n == 0 && map_is_sound(m2, (const char *const *) names, 300) &&
				ao_llm_toolmap_count(m2) == ao_llm_toolmap_count(m),
				"to_json / from_json round trip");
		ao_problems_free(&probs);
		json_object_put(saved);
		ao_llm_toolmap_free(m2);
		ao_llm_toolmap_free(m);
		for (int i = 0; i < 300; i++)
			free(names[i]);
	}

	ao_problems_init(&probs);
	saved = J("{\"a.b\": \"a_b\", \"x\": \"a_b\", \"y\": \"bad.name\", \"z\": 5, \"s\": \"structured_output\"}");
	m = ao_llm_toolmap_from_json(saved, ao_problems_add, &probs);
	UNIT_OK(m == NULL && probs.n == 4, "from_json rejects duplicate, illegal, non-string and reserved wire names");
	UNIT_OK(probs.n == 4 && strcmp(probs.paths[0], "/x") == 0, "problem paths name the entries");
	ao_problems_free(&probs);
	json_object_put(saved);
}

/* ---------------------------------------------------------------------- */
/* Request bodies                                                         */
/* ---------------------------------------------------------------------- */

static json_object *
build(ao_llm_provider p, json_object *call, ao_llm_toolmap *map,
	  const ao_llm_request_opts *opts, ao_llm_spec *spec, ao_problems *probs)
{
	json_object *body = NULL;
	ao_problems local;
	int			n;

	ao_problems_init(&local);
	n = ao_llm_build_request(p, call, map, opts, &body, spec, ao_problems_add,
							 probs ? probs : &local);
	if (n > 0 && probs == NULL)
		for (size_t i = 0; i < local.n; i++)
			printf("# unexpected problem %s: %s\n", local.paths[i], local.messages[i]);
	ao_problems_free(&local);
	return body;
}

static void
test_build_golden(void)
{
	static const char *const cases[] = {"text", "tools", "weather", "after_tool", "structured", "wrapped"};
	static const char *const provs[] = {"openai", "anthropic"};

	for (size_t c = 0; c < 6; c++)
		for (int p = 0; p < 2; p++)
		{
			char		name[128];
			char		label[160];
			json_object *call;
			json_object *want;
			ao_llm_provider prov;
			ao_llm_spec spec;
			ao_llm_toolmap *map = ao_llm_toolmap_new();

			ao_llm_provider_parse(provs[p], &prov);
			snprintf(name, sizeof(name), "call_%s.json", cases[c]);
			call = fixture_json(name);
			snprintf(name, sizeof(name), "request_%s_%s.json", provs[p], cases[c]);
			want = fixture_json(name);
			snprintf(label, sizeof(label), "golden request body: %s %s", provs[p], cases[c]);
			check_json(label, build(prov, call, map, NULL, &spec, NULL), want);
			json_object_put(call);
			json_object_put(want);
			ao_llm_toolmap_free(map);
		}
}

static void
test_build_openai(void)
{
	json_object *call = J("{\"model\": \"gpt-x\", \"system\": \"sys\", \"prompt\": \"go\","
						  " \"temperature\": 0.7, \"max_tokens\": 50, \"stop\": [\"END\"], \"stream\": true,"
						  " \"tools\": [{\"name\": \"chart.create\", \"description\": \"d\"},"
						  "            {\"name\": \"a_b\", \"input_schema\": {\"type\": \"object\"}},"
						  "            {\"name\": \"a.b\"}],"
						  " \"tool_choice\": {\"name\": \"chart.create\"},"
						  " \"response_schema\": {\"type\": \"object\", \"properties\": {}},"
						  " \"response_schema_name\": \"my plan!\", \"response_schema_strict\": true,"
						  " \"extra_body\": {\"seed\": 7, \"temperature\": 0.1}, \"ignored_key\": 1}");
	ao_llm_toolmap *map = ao_llm_toolmap_new();
	ao_llm_spec spec;
	ao_llm_request_opts opts = {0, true};
	json_object *body = build(AO_LLM_OPENAI, call, map, &opts, &spec, NULL);
	const char *text;
	size_t		len;

	UNIT_OK(body != NULL, "openai: full call builds");
	UNIT_STREQ(at_str(body, "/messages/0/role"), "system", "openai: system message first");
	UNIT_STREQ(at_str(body, "/messages/1/content"), "go", "openai: prompt is the user message");
	UNIT_STREQ(at_str(body, "/tools/0/type"), "function", "openai: tools are functions");
	UNIT_STREQ(at_str(body, "/tools/0/function/name"), "chart_create", "openai: tool name mapped");
	UNIT_STREQ(at_str(body, "/tools/1/function/name"), "a_b", "openai: legal a_b kept");
	UNIT_OK(strncmp(at_str(body, "/tools/2/function/name"), "a_b_", 4) == 0,
			"openai: a.b gets a distinct name");
	check_json_text("openai: default parameters schema", json_object_get(at(body, "/tools/0/function/parameters")),
					"{\"type\": \"object\", \"properties\": {}}");
	check_json_text("openai: tool_choice names the mapped function", json_object_get(at(body, "/tool_choice")),
					"{\"type\": \"function\", \"function\": {\"name\": \"chart_create\"}}");
	check_json_text("openai: response_format json_schema", json_object_get(at(body, "/response_format")),
					"{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"my_plan_\","
					" \"schema\": {\"type\": \"object\", \"properties\": {}}, \"strict\": true}}");
	UNIT_OK(at(body, "/max_completion_tokens") != NULL && at(body, "/max_tokens") == NULL,
			"openai: max_completion_tokens option");
	check_json_text("openai: stop", json_object_get(at(body, "/stop")), "[\"END\"]");
	check_json_text("openai: stream_options.include_usage", json_object_get(at(body, "/stream_options")),
					"{\"include_usage\": true}");
	UNIT_OK(json_object_get_int(at(body, "/seed")) == 7 &&
			json_object_get_double(at(body, "/temperature")) == 0.1,
			"openai: extra_body merged last, overriding");
	UNIT_OK(at(body, "/ignored_key") == NULL, "openai: unknown call keys are not sent");
	UNIT_OK(spec.provider == AO_LLM_OPENAI && spec.stream && spec.structured && !spec.structured_wrapped,
			"openai: spec");
	text = ao_llm_body_text(body, &len);
	UNIT_OK(text != NULL && len == strlen(text) && strstr(text, "\\/") == NULL && strchr(text, '\n') == NULL,
			"body text: compact, slashes not escaped");
	json_object_put(body);
	json_object_put(call);
	ao_llm_toolmap_free(map);

	/* tool_choice without tools is not sent; content null for tool-call-only turns */
	call = J("{\"model\": \"m\", \"tool_choice\": \"none\", \"messages\": ["
			 "{\"role\": \"user\", \"content\": {\"q\": 1}},"
			 "{\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c1\", \"name\": \"x.y\", \"arguments\": \"{\\\"k\\\": 2}\"}]},"
			 "{\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": [1, 2]},"
			 "{\"role\": \"developer\", \"content\": \"be brief\"}]}");
	map = ao_llm_toolmap_new();
	body = build(AO_LLM_OPENAI, call, map, NULL, &spec, NULL);
	UNIT_OK(body != NULL && at(body, "/tool_choice") == NULL, "openai: tool_choice without tools is left out");
	UNIT_STREQ(at_str(body, "/messages/0/content"), "{\"q\":1}", "openai: non-string user content sent as JSON text");
	UNIT_OK(json_object_is_type(at(body, "/messages/1"), json_type_object) &&
			json_object_object_get_ex(at(body, "/messages/1"), "content", NULL) &&
			at(body, "/messages/1/content") == NULL, "openai: assistant content null with tool calls");
	UNIT_STREQ(at_str(body, "/messages/1/tool_calls/0/function/name"), "x_y", "openai: history tool name mapped");
	UNIT_STREQ(at_str(body, "/messages/1/tool_calls/0/function/arguments"), "{\"k\": 2}",
			   "openai: arguments text passed as given");
	UNIT_STREQ(at_str(body, "/messages/2/content"), "[1,2]", "openai: tool result JSON as text");
	UNIT_STREQ(at_str(body, "/messages/3/role"), "developer", "openai: developer role kept");
	UNIT_OK(at(body, "/stream") == NULL && !spec.stream, "openai: no stream members when not streaming");
	json_object_put(body);
	json_object_put(call);
	ao_llm_toolmap_free(map);
}

static void
test_build_anthropic(void)
{
	json_object *call = J("{\"model\": \"claude-x\", \"system\": \"base\", \"stop\": \"END\","
						  " \"messages\": ["
						  "  {\"role\": \"system\", \"content\": \"extra rule\"},"
						  "  {\"role\": \"user\", \"content\": \"q1\"},"
						  "  {\"role\": \"user\", \"content\": \"q2\"},"
						  "  {\"role\": \"assistant\", \"content\": \"let me look\", \"tool_calls\": ["
						  "     {\"id\": \"t1\", \"name\": \"chart.create\", \"arguments\": {\"a\": 1}},"
						  "     {\"id\": \"t2\", \"name\": \"get_time\", \"arguments\": \"{\\\"tz\\\":\\\"UTC\\\"}\"}]},"
						  "  {\"role\": \"tool\", \"tool_call_id\": \"t1\", \"content\": \"ok\"},"
						  "  {\"role\": \"tool\", \"tool_call_id\": \"t2\", \"content\": {\"err\": \"boom\"}, \"is_error\": true}],"
						  " \"prompt\": \"and now?\","
						  " \"tools\": [{\"name\": \"chart.create\"}, {\"name\": \"get_time\"}],"
						  " \"tool_choice\": \"required\"}");
	ao_llm_toolmap *map = ao_llm_toolmap_new();
	ao_llm_spec spec;
	ao_llm_request_opts opts = {300, false};
	json_object *body = build(AO_LLM_ANTHROPIC, call, map, &opts, &spec, NULL);

	check_json_text("anthropic: conversation converted, merged and hoisted", body,
					"{\"model\": \"claude-x\", \"system\": \"base\\n\\nextra rule\","
					" \"messages\": ["
					"  {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"q1\"}, {\"type\": \"text\", \"text\": \"q2\"}]},"
					"  {\"role\": \"assistant\", \"content\": ["
					"     {\"type\": \"text\", \"text\": \"let me look\"},"
					"     {\"type\": \"tool_use\", \"id\": \"t1\", \"name\": \"chart_create\", \"input\": {\"a\": 1}},"
					"     {\"type\": \"tool_use\", \"id\": \"t2\", \"name\": \"get_time\", \"input\": {\"tz\": \"UTC\"}}]},"
					"  {\"role\": \"user\", \"content\": ["
					"     {\"type\": \"tool_result\", \"tool_use_id\": \"t1\", \"content\": \"ok\"},"
					"     {\"type\": \"tool_result\", \"tool_use_id\": \"t2\", \"content\": \"{\\\"err\\\":\\\"boom\\\"}\", \"is_error\": true},"
					"     {\"type\": \"text\", \"text\": \"and now?\"}]}],"
					" \"max_tokens\": 300, \"stop_sequences\": [\"END\"],"
					" \"tools\": [{\"name\": \"chart_create\", \"input_schema\": {\"type\": \"object\", \"properties\": {}}},"
					"            {\"name\": \"get_time\", \"input_schema\": {\"type\": \"object\", \"properties\": {}}}],"
					" \"tool_choice\": {\"type\": \"any\"}}");
	json_object_put(call);

	/* structured output together with tools: the model may call tools or answer */
	call = J("{\"model\": \"m\", \"prompt\": \"p\", \"tools\": [{\"name\": \"get_time\"}],"
			 " \"response_schema\": {\"type\": \"object\"}}");
	body = build(AO_LLM_ANTHROPIC, call, map, NULL, &spec, NULL);
	check_json_text("anthropic: structured + tools -> tool_choice any", json_object_get(at(body, "/tool_choice")),
					"{\"type\": \"any\"}");
	UNIT_STREQ(at_str(body, "/tools/1/name"), AO_LLM_STRUCTURED_TOOL, "anthropic: structured tool listed after the tools");
	UNIT_OK(json_object_get_int(at(body, "/max_tokens")) == AO_LLM_DEFAULT_MAX_TOKENS,
			"anthropic: default max_tokens");
	json_object_put(body);
	json_object_put(call);

	call = J("{\"model\": \"m\", \"prompt\": \"p\", \"tools\": [{\"name\": \"get_time\"}], \"tool_choice\": \"none\","
			 " \"response_schema\": {\"type\": \"object\"}}");
	body = build(AO_LLM_ANTHROPIC, call, map, NULL, &spec, NULL);
	check_json_text("anthropic: structured + tool_choice none -> structured tool forced",
					json_object_get(at(body, "/tool_choice")),
					"{\"type\": \"tool\", \"name\": \"structured_output\"}");
	json_object_put(body);
	json_object_put(call);

	call = J("{\"model\": \"m\", \"prompt\": \"p\", \"tools\": [{\"name\": \"get.time\"}],"
			 " \"tool_choice\": {\"name\": \"get.time\"}}");
	body = build(AO_LLM_ANTHROPIC, call, map, NULL, &spec, NULL);
	check_json_text("anthropic: named tool_choice mapped", json_object_get(at(body, "/tool_choice")),
					"{\"type\": \"tool\", \"name\": \"get_time_ad9385f2\"}");
	json_object_put(body);
	json_object_put(call);

	call = J("{\"model\": \"m\", \"prompt\": \"p\", \"tools\": [{\"name\": \"t\"}], \"tool_choice\": \"auto\"}");
	body = build(AO_LLM_ANTHROPIC, call, map, NULL, &spec, NULL);
	check_json_text("anthropic: tool_choice auto", json_object_get(at(body, "/tool_choice")), "{\"type\": \"auto\"}");
	json_object_put(body);
	json_object_put(call);
	ao_llm_toolmap_free(map);

	/* without a map the builder uses a temporary one */
	call = J("{\"model\": \"m\", \"prompt\": \"p\", \"tools\": [{\"name\": \"a.b\"}]}");
	body = build(AO_LLM_ANTHROPIC, call, NULL, NULL, NULL, NULL);
	UNIT_STREQ(at_str(body, "/tools/0/name"), "a_b", "builder works without a caller map");
	json_object_put(body);
	json_object_put(call);
}

static void
test_build_errors(void)
{
	static const struct
	{
		int			provider;
		const char *call;
		const char *path;
		const char *message_part;
	}			cases[] = {
		{AO_LLM_OPENAI, "[1]", "", "must be a JSON object"},
		{AO_LLM_OPENAI, "{\"prompt\": \"p\"}", "/model", "model"},
		{AO_LLM_OPENAI, "{\"model\": \"\", \"prompt\": \"p\"}", "/model", "non-empty"},
		{AO_LLM_OPENAI, "{\"model\": \"m\"}", "", "prompt"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"messages\": [{\"role\": \"system\", \"content\": \"s\"}]}", "", "user turn"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": 5}", "/prompt", "string"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"system\": []}", "/system", "string"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"temperature\": 2.5}", "/temperature", "0 to 2"},
		{AO_LLM_ANTHROPIC, "{\"model\": \"m\", \"prompt\": \"p\", \"temperature\": 1.5}", "/temperature", "0 to 1"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"temperature\": \"hot\"}", "/temperature", "number"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"max_tokens\": 0}", "/max_tokens", "positive"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"max_tokens\": 1.5}", "/max_tokens", "positive"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"stream\": \"yes\"}", "/stream", "boolean"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"stop\": [1]}", "/stop", "strings"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"extra_body\": 1}", "/extra_body", "object"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"response_schema\": true}", "/response_schema", "Schema"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"response_schema_name\": \"\"}", "/response_schema_name", "non-empty"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"response_schema_strict\": 1}", "/response_schema_strict", "boolean"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"tools\": {}}", "/tools", "array"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"tools\": [\"x\"]}", "/tools/0", "object"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"tools\": [{\"name\": \"\"}]}", "/tools/0/name", "name"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"tools\": [{\"name\": \"t\"}, {\"name\": \"t\"}]}", "/tools/1/name", "twice"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"tools\": [{\"name\": \"t\", \"description\": 1}]}", "/tools/0/description", "string"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"tools\": [{\"name\": \"t\", \"input_schema\": []}]}", "/tools/0/input_schema", "Schema"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"tool_choice\": \"always\"}", "/tool_choice", "auto"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"tool_choice\": \"required\"}", "/tool_choice", "needs"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"tools\": [{\"name\": \"t\"}], \"tool_choice\": {\"name\": \"u\"}}", "/tool_choice/name", "not in"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"messages\": {}}", "/messages", "array"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"messages\": [3]}", "/messages/0", "object"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"messages\": [{\"content\": \"x\"}]}", "/messages/0/role", "role"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"messages\": [{\"role\": \"robot\"}]}", "/messages/0/role", "unknown role"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"messages\": [{\"role\": \"assistant\", \"content\": 4}]}", "/messages/0/content", "string"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"messages\": [{\"role\": \"assistant\", \"tool_calls\": {}}]}", "/messages/0/tool_calls", "array"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"name\": \"t\"}]}]}", "/messages/0/tool_calls/0/id", "id"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c\"}]}]}", "/messages/0/tool_calls/0/name", "name"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c\", \"name\": \"t\", \"arguments\": \"{oops\"}]}]}", "/messages/0/tool_calls/0/arguments", "not valid JSON"},
		{AO_LLM_ANTHROPIC, "{\"model\": \"m\", \"prompt\": \"p\", \"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c\", \"name\": \"t\", \"arguments\": \"[1]\"}]}]}", "/messages/0/tool_calls/0/arguments", "JSON object"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"prompt\": \"p\", \"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c\", \"name\": \"t\", \"arguments\": 3}]}]}", "/messages/0/tool_calls/0/arguments", "object"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"messages\": [{\"role\": \"tool\", \"tool_call_id\": \"zz\", \"content\": \"r\"}]}", "/messages/0/tool_call_id", "answers no earlier tool call"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"messages\": [{\"role\": \"tool\", \"content\": \"r\"}]}", "/messages/0/tool_call_id", "tool_call_id"},
		{AO_LLM_OPENAI, "{\"model\": \"m\", \"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c\", \"name\": \"t\"}]}, {\"role\": \"tool\", \"tool_call_id\": \"c\", \"is_error\": \"yes\"}]}", "/messages/1/is_error", "boolean"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		json_object *call = J(cases[i].call);
		ao_problems probs;
		json_object *body;
		bool		found = false;
		char		label[200];

		ao_problems_init(&probs);
		body = build((ao_llm_provider) cases[i].provider, call, NULL, NULL, NULL, &probs);
		for (size_t k = 0; k < probs.n; k++)
			if (strcmp(probs.paths[k], cases[i].path) == 0 &&
				strstr(probs.messages[k], cases[i].message_part) != NULL)
				found = true;
		snprintf(label, sizeof(label), "bad call rejected at \"%s\" (%s)", cases[i].path, cases[i].message_part);
		if (!unit_ok(body == NULL && found, label))
			for (size_t k = 0; k < probs.n; k++)
				printf("#   problem %s: %s\n", probs.paths[k], probs.messages[k]);
		ao_problems_free(&probs);
		json_object_put(body);
		json_object_put(call);
	}

	{
		json_object *body = (json_object *) 1;
		int			n = ao_llm_build_request((ao_llm_provider) 9, NULL, NULL, NULL, &body, NULL, NULL, NULL);

		UNIT_OK(n == 1 && body == NULL, "unknown provider rejected, no callback needed");
	}
}

/* ---------------------------------------------------------------------- */
/* Headers                                                                */
/* ---------------------------------------------------------------------- */

static void
test_headers(void)
{
	ao_llm_headers h;
	const char *key = "sk-test-SECRET-0123";
	ao_llm_provider p;

	UNIT_OK(ao_llm_provider_parse("openai", &p) && p == AO_LLM_OPENAI &&
			ao_llm_provider_parse("anthropic", &p) && p == AO_LLM_ANTHROPIC &&
			!ao_llm_provider_parse("OpenAI", &p) && !ao_llm_provider_parse(NULL, &p),
			"provider names");
	UNIT_STREQ(ao_llm_endpoint_path(AO_LLM_OPENAI), "/chat/completions", "openai path");
	UNIT_STREQ(ao_llm_endpoint_path(AO_LLM_ANTHROPIC), "/v1/messages", "anthropic path");

	UNIT_OK(ao_llm_build_headers(AO_LLM_OPENAI, key, NULL, true, &h) && h.n == 3, "openai headers");
	UNIT_STREQ(h.lines[0], "Content-Type: application/json", "content type");
	UNIT_STREQ(h.lines[1], "Accept: text/event-stream", "streaming accept");
	UNIT_OK(h.secret[2] && !h.secret[0] && !h.secret[1] &&
			strncmp(h.lines[2], "Authorization: Bearer ", 22) == 0 &&
			strcmp(h.lines[2] + 22, key) == 0, "bearer auth line, marked secret");
	ao_llm_headers_free(&h);
	UNIT_OK(h.n == 0 && h.lines[0] == NULL, "headers freed");

	UNIT_OK(ao_llm_build_headers(AO_LLM_ANTHROPIC, key, NULL, false, &h) && h.n == 4, "anthropic headers");
	UNIT_STREQ(h.lines[1], "Accept: application/json", "non-streaming accept");
	UNIT_OK(h.secret[2] && strncmp(h.lines[2], "x-api-key: ", 11) == 0 && strcmp(h.lines[2] + 11, key) == 0,
			"x-api-key line, marked secret");
	UNIT_STREQ(h.lines[3], "anthropic-version: " AO_LLM_ANTHROPIC_VERSION, "anthropic-version default");
	ao_llm_headers_free(&h);

	UNIT_OK(ao_llm_build_headers(AO_LLM_ANTHROPIC, "", "2099-01-01", true, &h) && h.n == 3 &&
			strcmp(h.lines[2], "anthropic-version: 2099-01-01") == 0 && !h.secret[2],
			"no key: no auth line; custom version");
	ao_llm_headers_free(&h);
	UNIT_OK(ao_llm_build_headers(AO_LLM_OPENAI, NULL, NULL, true, &h) && h.n == 2, "NULL key: no auth line");
	ao_llm_headers_free(&h);
	UNIT_OK(!ao_llm_build_headers(AO_LLM_OPENAI, "sk-x\r\nX-Evil: 1", NULL, true, &h) && h.n == 0,
			"key with CR LF refused (header injection)");
	UNIT_OK(!ao_llm_build_headers(AO_LLM_ANTHROPIC, "k", "v\n1", true, &h) && h.n == 0,
			"version with LF refused");
}

/* ---------------------------------------------------------------------- */
/* Decoding                                                               */
/* ---------------------------------------------------------------------- */

/* Records every callback in order, so two decodings can be compared. */
typedef struct trace
{
	ao_buf		log;
	ao_buf		partial;
	bool		partial_ok;		/* so_far always equalled the deltas so far */
	int			json_done;
	int			finish;
	int			errors;
} trace;

static void
tr_text(void *arg, const char *delta, size_t len)
{
	trace	   *t = arg;

	ao_buf_append(&t->log, "t[");
	ao_buf_append_n(&t->log, delta, len);
	ao_buf_append(&t->log, "]");
}

static void
tr_start(void *arg, size_t index, const ao_llm_tool_call *call)
{
	trace	   *t = arg;

	ao_buf_printf(&t->log, "s%zu:%s/%s/%d/%s;", index, call->name, call->wire_name,
				  call->known, call->id);
}

static void
tr_delta(void *arg, size_t index, const char *delta, size_t len)
{
	trace	   *t = arg;

	ao_buf_printf(&t->log, "d%zu[", index);
	ao_buf_append_n(&t->log, delta, len);
	ao_buf_append(&t->log, "]");
}

static void
tr_done(void *arg, size_t index, const ao_llm_tool_call *call)
{
	trace	   *t = arg;

	ao_buf_printf(&t->log, "e%zu:%s;", index,
				  call->arguments ? json_object_to_json_string_ext(call->arguments, PLAIN) : "INVALID");
}

static void
tr_partial(void *arg, const char *delta, size_t len, const char *so_far, size_t so_far_len)
{
	trace	   *t = arg;

	ao_buf_append(&t->log, "p[");
	ao_buf_append_n(&t->log, delta, len);
	ao_buf_append(&t->log, "]");
	ao_buf_append_n(&t->partial, delta, len);
	if (so_far_len != t->partial.len || memcmp(so_far, t->partial.data, so_far_len) != 0)
		t->partial_ok = false;
}

static void
tr_json(void *arg, json_object *value)
{
	trace	   *t = arg;

	t->json_done++;
	ao_buf_printf(&t->log, "j:%s;", value ? json_object_to_json_string_ext(value, PLAIN) : "null");
}

static void
tr_usage(void *arg, const ao_llm_usage *u)
{
	trace	   *t = arg;

	ao_buf_printf(&t->log, "u%lld/%lld/%lld/%lld;", (long long) u->input_tokens,
				  (long long) u->output_tokens, (long long) u->cached_input_tokens,
				  (long long) u->cache_write_tokens);
}

static void
tr_finish(void *arg, const char *reason)
{
	trace	   *t = arg;

	t->finish++;
	ao_buf_printf(&t->log, "f:%s;", reason);
}

static void
tr_error(void *arg, const ao_llm_error *e)
{
	trace	   *t = arg;

	t->errors++;
	ao_buf_printf(&t->log, "x:%s/%d/%s;", ao_llm_errkind_name(e->kind), e->retryable, e->message);
}

static const ao_llm_callbacks trace_cb = {
	tr_text, tr_start, tr_delta, tr_done, tr_partial, tr_json, tr_usage, tr_finish, tr_error
};

static void
trace_init(trace *t)
{
	memset(t, 0, sizeof(*t));
	ao_buf_init(&t->log);
	ao_buf_init(&t->partial);
	t->partial_ok = true;
}

static void
trace_free(trace *t)
{
	ao_buf_free(&t->log);
	ao_buf_free(&t->partial);
}

/* Everything in a result, as one string. */
static void
result_sig(const ao_llm_result *r, ao_buf *out)
{
	json_object *o = ao_llm_result_to_json(r);

	ao_buf_append(out, json_object_to_json_string_ext(o, PLAIN));
	ao_buf_printf(out, "|id=%s|model=%s|raw=%s|complete=%d|err=%s/%d/%s|st=%s|",
				  r->id ? r->id : "-", r->model ? r->model : "-",
				  r->raw_finish_reason ? r->raw_finish_reason : "-", r->complete,
				  ao_llm_errkind_name(r->error.kind), r->error.retryable, r->error.message,
				  r->structured_text ? r->structured_text : "-");
	for (size_t i = 0; i < r->n_tool_calls; i++)
		ao_buf_printf(out, "args%zu=%s|", i, r->tool_calls[i].arguments_text);
	json_object_put(o);
}

/*
 * Decode bytes fed in chunks of the given sizes (0-terminated; the rest at
 * once), with every callback traced. Returns the trace + result signature
 * (caller frees); *ok gets the finish return value.
 */
static char *
decode_sig(const char *in, size_t len, const ao_llm_spec *spec, const ao_llm_toolmap *map,
		   const size_t *sizes, const ao_llm_limits *limits, bool *ok, trace *keep)
{
	trace		t;
	ao_llm_decoder *d;
	size_t		off = 0;
	ao_buf		sig;
	bool		fin;

	trace_init(&t);
	d = ao_llm_decoder_new(spec, map, &trace_cb, &t, limits);
	for (int i = 0; sizes != NULL && sizes[i] != 0 && off < len; i++)
	{
		size_t		n = sizes[i] < len - off ? sizes[i] : len - off;

		ao_llm_decoder_feed(d, in + off, n);
		off += n;
	}
	if (off < len)
		ao_llm_decoder_feed(d, in + off, len - off);
	fin = ao_llm_decoder_finish(d);
	if (ok)
		*ok = fin;
	ao_buf_init(&sig);
	ao_buf_append(&sig, t.log.data);
	ao_buf_append(&sig, "\n");
	result_sig(ao_llm_decoder_result(d), &sig);
	ao_buf_printf(&sig, "|fin=%d|partial_ok=%d", fin, t.partial_ok);
	ao_llm_decoder_free(d);
	if (keep)
		*keep = t;
	else
		trace_free(&t);
	return sig.data;
}

/* The chunked decodings of in that differ from the one-chunk decoding (0 = none). */
static int
chunking_differences(const char *in, size_t len, const ao_llm_spec *spec,
					 const ao_llm_toolmap *map, const ao_llm_limits *limits,
					 bool every_split, int random_rounds)
{
	char	   *ref = decode_sig(in, len, spec, map, NULL, limits, NULL, NULL);
	size_t	   *sizes = malloc((len + 2) * sizeof(size_t));
	int			bad = 0;

	for (size_t split = 1; every_split && split < len && bad < 3; split++)
	{
		size_t		one[2] = {split, 0};
		char	   *got = decode_sig(in, len, spec, map, one, limits, NULL, NULL);

		if (strcmp(got, ref) != 0)
		{
			printf("# split at %zu differs:\n#  got  %s\n#  want %s\n", split, got, ref);
			bad++;
		}
		free(got);
	}
	if (every_split && bad == 0)
	{
		char	   *got;

		for (size_t k = 0; k < len; k++)
			sizes[k] = 1;
		sizes[len] = 0;
		got = decode_sig(in, len, spec, map, sizes, limits, NULL, NULL);
		if (strcmp(got, ref) != 0)
		{
			printf("# byte-by-byte differs\n");
			bad++;
		}
		free(got);
	}
	for (int round = 0; round < random_rounds && bad == 0; round++)
	{
		size_t		k = 0;
		char	   *got;

		for (size_t total = 0; total < len; k++)
		{
			sizes[k] = 1 + rng() % (round % 2 ? 7 : 300);
			total += sizes[k];
		}
		sizes[k] = 0;
		got = decode_sig(in, len, spec, map, sizes, limits, NULL, NULL);
		if (strcmp(got, ref) != 0)
		{
			printf("# random chunking %d differs\n", round);
			bad++;
		}
		free(got);
	}
	free(sizes);
	free(ref);
	return bad;
}

static ao_llm_toolmap *
fixture_map(void)
{
	ao_llm_toolmap *m = ao_llm_toolmap_new();
	const char *names[] = {"chart.create", "get_time", "get_weather"};

	ao_llm_toolmap_add(m, names, 3);
	return m;
}

/*
 * A compact, id-free summary of a result for expectations:
 * {"text", "tools": [[name, known, arguments]], "output", "finish",
 *  "in", "out", "error", "retryable", "complete"}
 */
static json_object *
summary(const ao_llm_result *r)
{
	json_object *o = json_object_new_object();
	json_object *tools = json_object_new_array();

	json_object_object_add(o, "text", json_object_new_string_len(r->text, (int) r->text_len));
	for (size_t i = 0; i < r->n_tool_calls; i++)
	{
		json_object *t = json_object_new_array();

		json_object_array_add(t, json_object_new_string(r->tool_calls[i].name));
		json_object_array_add(t, json_object_new_boolean(r->tool_calls[i].known));
		json_object_array_add(t, r->tool_calls[i].arguments ? json_object_get(r->tool_calls[i].arguments)
							  : json_object_new_string("INVALID"));
		json_object_array_add(tools, t);
	}
	json_object_object_add(o, "tools", tools);
	json_object_object_add(o, "output", json_object_get(r->structured));
	json_object_object_add(o, "finish", r->finish_reason ? json_object_new_string(r->finish_reason) : NULL);
	json_object_object_add(o, "in", json_object_new_int64(r->usage.input_tokens));
	json_object_object_add(o, "out", json_object_new_int64(r->usage.output_tokens));
	json_object_object_add(o, "error", json_object_new_string(ao_llm_errkind_name(r->error.kind)));
	json_object_object_add(o, "retryable", json_object_new_boolean(r->error.retryable));
	json_object_object_add(o, "complete", json_object_new_boolean(r->complete));
	return o;
}

#define HELLO "Hello from the mock! Streaming works, token by token."
#define OK_END "\"error\": \"none\", \"retryable\": false, \"complete\": true}"
#define ANALYSIS "{\"summary\": \"Sales rose 20% quarter over quarter.\", \"chart_data\": [{\"label\": \"Q1\", \"value\": 100}, {\"label\": \"Q2\", \"value\": 120}]}"
#define WEATHER_ARGS "{\"city\": \"Paris\", \"unit\": \"celsius\", \"days\": [1, 2, 3], \"note\": \"na\xC3\xAFve \\\"quoted\\\" \xE2\x9C\x93\"}"

typedef struct fixture_case
{
	const char *file;
	ao_llm_provider provider;
	bool		structured;
	bool		wrapped;
	const char *want;			/* summary() */
} fixture_case;

static const fixture_case fixture_cases[] = {
	/* openai */
	{"openai_stream_text.txt", AO_LLM_OPENAI, false, false,
	"{\"text\": \"" HELLO "\", \"tools\": [], \"output\": null, \"finish\": \"stop\", \"in\": 16, \"out\": 12, " OK_END},
	{"openai_text.txt", AO_LLM_OPENAI, false, false,
	"{\"text\": \"" HELLO "\", \"tools\": [], \"output\": null, \"finish\": \"stop\", \"in\": 16, \"out\": 12, " OK_END},
	{"openai_stream_tools.txt", AO_LLM_OPENAI, false, false,
		"{\"text\": \"Calling two tools.\", \"tools\": [[\"chart.create\", true, {\"a\": 1}], [\"get_time\", true, {\"tz\": \"UTC\"}]],"
	" \"output\": null, \"finish\": \"tool_calls\", \"in\": 10, \"out\": 8, " OK_END},
	{"openai_tools.txt", AO_LLM_OPENAI, false, false,
		"{\"text\": \"Calling two tools.\", \"tools\": [[\"chart.create\", true, {\"a\": 1}], [\"get_time\", true, {\"tz\": \"UTC\"}]],"
	" \"output\": null, \"finish\": \"tool_calls\", \"in\": 10, \"out\": 8, " OK_END},
	{"openai_stream_weather.txt", AO_LLM_OPENAI, false, false,
		"{\"text\": \"\", \"tools\": [[\"get_weather\", true, " WEATHER_ARGS "]],"
	" \"output\": null, \"finish\": \"tool_calls\", \"in\": 13, \"out\": 10, " OK_END},
	{"openai_weather.txt", AO_LLM_OPENAI, false, false,
		"{\"text\": \"\", \"tools\": [[\"get_weather\", true, " WEATHER_ARGS "]],"
	" \"output\": null, \"finish\": \"tool_calls\", \"in\": 13, \"out\": 10, " OK_END},
	{"openai_stream_after_tool.txt", AO_LLM_OPENAI, false, false,
		"{\"text\": \"It is {\\\"temp_c\\\":21,\\\"sky\\\":\\\"sunny\\\"} in Paris today.\", \"tools\": [],"
	" \"output\": null, \"finish\": \"stop\", \"in\": 34, \"out\": 21, " OK_END},
	{"openai_stream_structured.txt", AO_LLM_OPENAI, true, false,
	"{\"text\": \"\", \"tools\": [], \"output\": " ANALYSIS ", \"finish\": \"stop\", \"in\": 10, \"out\": 15, " OK_END},
	{"openai_structured.txt", AO_LLM_OPENAI, true, false,
	"{\"text\": \"\", \"tools\": [], \"output\": " ANALYSIS ", \"finish\": \"stop\", \"in\": 10, \"out\": 15, " OK_END},
	{"openai_stream_wrapped.txt", AO_LLM_OPENAI, true, true,
	"{\"text\": \"\", \"tools\": [], \"output\": [\"red\", \"red\", \"red\"], \"finish\": \"stop\", \"in\": 9, \"out\": 4, " OK_END},
	{"openai_wrapped.txt", AO_LLM_OPENAI, true, true,
	"{\"text\": \"\", \"tools\": [], \"output\": [\"red\", \"red\", \"red\"], \"finish\": \"stop\", \"in\": 9, \"out\": 4, " OK_END},
	{"openai_stream_error.txt", AO_LLM_OPENAI, false, false,
		"{\"text\": \"Hello from\", \"tools\": [], \"output\": null, \"finish\": null, \"in\": -1, \"out\": -1,"
	" \"error\": \"provider\", \"retryable\": true, \"complete\": false}"},
	{"openai_stream_malformed.txt", AO_LLM_OPENAI, false, false,
		"{\"text\": \"Hello from\", \"tools\": [], \"output\": null, \"finish\": null, \"in\": -1, \"out\": -1,"
	" \"error\": \"protocol\", \"retryable\": true, \"complete\": false}"},
	{"openai_stream_drop.txt", AO_LLM_OPENAI, false, false,
		"{\"text\": \"Hello from\", \"tools\": [], \"output\": null, \"finish\": null, \"in\": -1, \"out\": -1,"
	" \"error\": \"truncated\", \"retryable\": true, \"complete\": false}"},
	{"openai_stream_invalid_json.txt", AO_LLM_OPENAI, true, false,
		"{\"text\": \"\", \"tools\": [], \"output\": null, \"finish\": \"stop\", \"in\": 10, \"out\": 15,"
	" \"error\": \"output\", \"retryable\": true, \"complete\": true}"},
	{"openai_stream_tools_invalid_json.txt", AO_LLM_OPENAI, false, false,
		"{\"text\": \"\", \"tools\": [[\"get_weather\", true, \"INVALID\"]], \"output\": null, \"finish\": \"tool_calls\","
	" \"in\": 13, \"out\": 10, \"error\": \"output\", \"retryable\": true, \"complete\": true}"},
	{"openai_invalid_json.txt", AO_LLM_OPENAI, false, false,
		"{\"text\": \"\", \"tools\": [], \"output\": null, \"finish\": null, \"in\": -1, \"out\": -1,"
	" \"error\": \"protocol\", \"retryable\": true, \"complete\": false}"},
	/* anthropic */
	{"anthropic_stream_text.txt", AO_LLM_ANTHROPIC, false, false,
	"{\"text\": \"" HELLO "\", \"tools\": [], \"output\": null, \"finish\": \"stop\", \"in\": 13, \"out\": 12, " OK_END},
	{"anthropic_text.txt", AO_LLM_ANTHROPIC, false, false,
	"{\"text\": \"" HELLO "\", \"tools\": [], \"output\": null, \"finish\": \"stop\", \"in\": 13, \"out\": 12, " OK_END},
	{"anthropic_stream_tools.txt", AO_LLM_ANTHROPIC, false, false,
		"{\"text\": \"Calling two tools.\", \"tools\": [[\"chart.create\", true, {\"a\": 1}], [\"get_time\", true, {\"tz\": \"UTC\"}]],"
	" \"output\": null, \"finish\": \"tool_calls\", \"in\": 10, \"out\": 8, " OK_END},
	{"anthropic_tools.txt", AO_LLM_ANTHROPIC, false, false,
		"{\"text\": \"Calling two tools.\", \"tools\": [[\"chart.create\", true, {\"a\": 1}], [\"get_time\", true, {\"tz\": \"UTC\"}]],"
	" \"output\": null, \"finish\": \"tool_calls\", \"in\": 10, \"out\": 8, " OK_END},
	{"anthropic_stream_weather.txt", AO_LLM_ANTHROPIC, false, false,
		"{\"text\": \"\", \"tools\": [[\"get_weather\", true, " WEATHER_ARGS "]],"
	" \"output\": null, \"finish\": \"tool_calls\", \"in\": 13, \"out\": 10, " OK_END},
	{"anthropic_weather.txt", AO_LLM_ANTHROPIC, false, false,
		"{\"text\": \"\", \"tools\": [[\"get_weather\", true, " WEATHER_ARGS "]],"
	" \"output\": null, \"finish\": \"tool_calls\", \"in\": 13, \"out\": 10, " OK_END},
	{"anthropic_stream_after_tool.txt", AO_LLM_ANTHROPIC, false, false,
		"{\"text\": \"It is {\\\"temp_c\\\":21,\\\"sky\\\":\\\"sunny\\\"} in Paris today.\", \"tools\": [],"
	" \"output\": null, \"finish\": \"stop\", \"in\": 34, \"out\": 21, " OK_END},
	{"anthropic_stream_structured.txt", AO_LLM_ANTHROPIC, true, false,
	"{\"text\": \"\", \"tools\": [], \"output\": " ANALYSIS ", \"finish\": \"stop\", \"in\": 10, \"out\": 15, " OK_END},
	{"anthropic_structured.txt", AO_LLM_ANTHROPIC, true, false,
	"{\"text\": \"\", \"tools\": [], \"output\": " ANALYSIS ", \"finish\": \"stop\", \"in\": 10, \"out\": 15, " OK_END},
	{"anthropic_stream_wrapped.txt", AO_LLM_ANTHROPIC, true, true,
	"{\"text\": \"\", \"tools\": [], \"output\": [\"red\", \"red\", \"red\"], \"finish\": \"stop\", \"in\": 9, \"out\": 4, " OK_END},
	{"anthropic_wrapped.txt", AO_LLM_ANTHROPIC, true, true,
	"{\"text\": \"\", \"tools\": [], \"output\": [\"red\", \"red\", \"red\"], \"finish\": \"stop\", \"in\": 9, \"out\": 4, " OK_END},
	{"anthropic_stream_error.txt", AO_LLM_ANTHROPIC, false, false,
		"{\"text\": \"Hello from\", \"tools\": [], \"output\": null, \"finish\": null, \"in\": 13, \"out\": 1,"
	" \"error\": \"provider\", \"retryable\": true, \"complete\": false}"},
	{"anthropic_stream_malformed.txt", AO_LLM_ANTHROPIC, false, false,
		"{\"text\": \"Hello from\", \"tools\": [], \"output\": null, \"finish\": null, \"in\": 13, \"out\": 1,"
	" \"error\": \"protocol\", \"retryable\": true, \"complete\": false}"},
	{"anthropic_stream_drop.txt", AO_LLM_ANTHROPIC, false, false,
		"{\"text\": \"Hello from\", \"tools\": [], \"output\": null, \"finish\": null, \"in\": 13, \"out\": 1,"
	" \"error\": \"truncated\", \"retryable\": true, \"complete\": false}"},
	{"anthropic_stream_invalid_json.txt", AO_LLM_ANTHROPIC, true, false,
		"{\"text\": \"\", \"tools\": [], \"output\": null, \"finish\": \"stop\", \"in\": 10, \"out\": 15,"
	" \"error\": \"output\", \"retryable\": true, \"complete\": true}"},
	{"anthropic_stream_tools_invalid_json.txt", AO_LLM_ANTHROPIC, false, false,
		"{\"text\": \"\", \"tools\": [[\"get_weather\", true, \"INVALID\"]], \"output\": null, \"finish\": \"tool_calls\","
	" \"in\": 13, \"out\": 10, \"error\": \"output\", \"retryable\": true, \"complete\": true}"},
	{"anthropic_invalid_json.txt", AO_LLM_ANTHROPIC, false, false,
		"{\"text\": \"\", \"tools\": [], \"output\": null, \"finish\": null, \"in\": -1, \"out\": -1,"
	" \"error\": \"protocol\", \"retryable\": true, \"complete\": false}"},
};

static void
test_fixtures(void)
{
	ao_llm_toolmap *map = fixture_map();

	for (size_t i = 0; i < sizeof(fixture_cases) / sizeof(fixture_cases[0]); i++)
	{
		const fixture_case *fc = &fixture_cases[i];
		ao_llm_spec spec = {fc->provider, true, fc->structured, fc->wrapped};
		size_t		len;
		char	   *in = read_fixture(fc->file, &len);
		ao_llm_result res;
		bool		ok;
		char		label[200];

		if (in == NULL)
		{
			UNIT_OK(0, fc->file);
			continue;
		}
		ok = ao_llm_parse_response(&spec, map, in, len, &res);
		snprintf(label, sizeof(label), "decode %s", fc->file);
		check_json_text(label, summary(&res), fc->want);
		snprintf(label, sizeof(label), "decode %s: return value matches the error", fc->file);
		UNIT_OK(ok == (res.error.kind == AO_LLM_ERR_NONE && res.complete), label);
		ao_llm_result_free(&res);

		/* the whole trace and result must not depend on chunking */
		snprintf(label, sizeof(label), "chunking invariance (every split, byte by byte, random): %s", fc->file);
		UNIT_OK(chunking_differences(in, len, &spec, map, NULL, true, 50) == 0, label);
		free(in);
	}
	ao_llm_toolmap_free(map);
}

/* Details the summary does not show. */
static void
test_fixture_details(void)
{
	ao_llm_toolmap *map = fixture_map();
	ao_llm_spec spec = {AO_LLM_OPENAI, true, false, false};
	size_t		len;
	char	   *in;
	trace		t;
	char	   *sig;
	ao_llm_result res;

	/* openai tools: callback order and ids */
	in = read_fixture("openai_stream_tools.txt", &len);
	sig = decode_sig(in, len, &spec, map, NULL, NULL, NULL, &t);
	UNIT_OK(strstr(t.log.data, "t[.]s0:chart.create/chart_create/1/call_mock000006;d0[{\"a\"]d0[:1}]"
				   "e0:{\"a\":1};s1:get_time/get_time/1/call_mock000007;") != NULL,
			"openai tool calls: start, deltas, the first ends when the second starts");
	UNIT_OK(strstr(t.log.data, "e1:{\"tz\":\"UTC\"};f:tool_calls;u10/8/-1/-1;") != NULL,
			"openai tool calls: last ends before finish, usage chunk after");
	UNIT_OK(t.finish == 1 && t.errors == 0, "one finish, no error");
	free(sig);
	trace_free(&t);
	ao_llm_parse_response(&spec, map, in, len, &res);
	UNIT_STREQ(res.tool_calls[0].id, "call_mock000006", "tool call id kept");
	UNIT_STREQ(res.tool_calls[0].wire_name, "chart_create", "wire name kept");
	UNIT_STREQ(res.tool_calls[0].arguments_text, "{\"a\":1}", "arguments text as received");
	UNIT_STREQ(res.id, "chatcmpl-mock000008", "response id");
	UNIT_STREQ(res.model, "mock-model", "model");
	UNIT_STREQ(res.raw_finish_reason, "tool_calls", "raw finish reason");
	ao_llm_result_free(&res);
	free(in);

	/* anthropic tools: block stop ends each call */
	spec.provider = AO_LLM_ANTHROPIC;
	in = read_fixture("anthropic_stream_tools.txt", &len);
	sig = decode_sig(in, len, &spec, map, NULL, NULL, NULL, &t);
	UNIT_OK(strncmp(t.log.data, "u10/1/0/0;t[Calling]", 20) == 0,
			"anthropic: usage from message_start, then text");
	UNIT_OK(strstr(t.log.data, "s0:chart.create/chart_create/1/toolu_mock000050;d0[{\"a\"]d0[:1}]e0:{\"a\":1};s1:") != NULL,
			"anthropic tool calls: the empty first partial_json is not a delta; stop ends the call");
	UNIT_OK(strstr(t.log.data, "u10/8/0/0;f:tool_calls;") != NULL, "anthropic: message_delta usage, finish");
	free(sig);
	trace_free(&t);
	ao_llm_parse_response(&spec, map, in, len, &res);
	UNIT_STREQ(res.raw_finish_reason, "tool_use", "anthropic raw stop reason");
	ao_llm_result_free(&res);
	free(in);

	/* structured: partial JSON is consistent and the value is emitted once */
	spec.structured = true;
	in = read_fixture("anthropic_stream_structured.txt", &len);
	sig = decode_sig(in, len, &spec, map, NULL, NULL, NULL, &t);
	UNIT_OK(t.partial_ok && t.json_done == 1 && t.finish == 1, "anthropic structured: partials consistent, one json_done");
	UNIT_OK(strstr(t.log.data, "s0:") == NULL && strstr(t.log.data, "f:stop;") != NULL,
			"anthropic structured: the forced tool is not a tool call, finish is stop");
	ao_llm_parse_response(&spec, map, in, len, &res);
	UNIT_OK(res.structured_text != NULL && strcmp(res.structured_text, t.partial.data) == 0,
			"structured_text is the concatenated partials");
	ao_llm_result_free(&res);
	free(sig);
	trace_free(&t);
	free(in);

	spec.provider = AO_LLM_OPENAI;
	in = read_fixture("openai_stream_structured.txt", &len);
	sig = decode_sig(in, len, &spec, map, NULL, NULL, NULL, &t);
	UNIT_OK(t.partial_ok && t.json_done == 1 && strstr(t.log.data, "t[") == NULL,
			"openai structured: content goes to json_partial, not text");
	UNIT_OK(strstr(t.log.data, "]j:{\"summary\"") != NULL && strstr(t.log.data, "j:") < strstr(t.log.data, "f:stop"),
			"openai structured: json_done right after the closing brace, before finish");
	free(sig);
	trace_free(&t);
	free(in);

	/* the wrapped value: partials show the wrapper, the value is unwrapped */
	spec.structured_wrapped = true;
	in = read_fixture("openai_stream_wrapped.txt", &len);
	sig = decode_sig(in, len, &spec, map, NULL, NULL, NULL, &t);
	UNIT_OK(strncmp(t.partial.data, "{\"value\":", 9) == 0 && strstr(t.log.data, "j:[\"red\",\"red\",\"red\"];") != NULL,
			"wrapped: partial text has the wrapper, json_done the unwrapped value");
	free(sig);
	trace_free(&t);
	free(in);

	/* unknown tool names are reported as such */
	{
		ao_llm_toolmap *empty = ao_llm_toolmap_new();

		spec.structured = spec.structured_wrapped = false;
		in = read_fixture("openai_stream_tools.txt", &len);
		ao_llm_parse_response(&spec, empty, in, len, &res);
		UNIT_OK(res.n_tool_calls == 2 && !res.tool_calls[0].known &&
				strcmp(res.tool_calls[0].name, "chart_create") == 0,
				"a wire name missing from the map: known=false, name = wire name");
		ao_llm_result_free(&res);
		ao_llm_parse_response(&spec, NULL, in, len, &res);
		UNIT_OK(res.n_tool_calls == 2 && !res.tool_calls[1].known, "no map at all works too");
		ao_llm_result_free(&res);
		free(in);
		ao_llm_toolmap_free(empty);
	}

	/* error messages */
	spec.provider = AO_LLM_ANTHROPIC;
	in = read_fixture("anthropic_stream_error.txt", &len);
	ao_llm_parse_response(&spec, map, in, len, &res);
	UNIT_STREQ(res.error.message, "anthropic error (overloaded_error): Overloaded (mock stream_error)",
			   "anthropic error event message");
	UNIT_STREQ(res.error.type, "overloaded_error", "error type");
	ao_llm_result_free(&res);
	free(in);
	spec.provider = AO_LLM_OPENAI;
	in = read_fixture("openai_stream_malformed.txt", &len);
	ao_llm_parse_response(&spec, map, in, len, &res);
	UNIT_OK(strncmp(res.error.message, "malformed JSON in server-sent event data", 40) == 0,
			"malformed data: message");
	ao_llm_result_free(&res);
	free(in);
	spec.structured = true;
	in = read_fixture("openai_stream_invalid_json.txt", &len);
	ao_llm_parse_response(&spec, map, in, len, &res);
	UNIT_OK(strncmp(res.error.message, "structured output is not valid JSON", 35) == 0 &&
			res.structured == NULL && res.structured_text != NULL,
			"broken structured output: message, text kept, no value");
	ao_llm_result_free(&res);
	free(in);
	ao_llm_toolmap_free(map);
}

/* A streamed reply and the same reply without streaming give the same result. */
static void
test_stream_vs_plain(void)
{
	static const char *const cases[] = {"text", "tools", "weather", "structured", "wrapped"};
	ao_llm_toolmap *map = fixture_map();

	for (int p = 0; p < 2; p++)
		for (size_t c = 0; c < 5; c++)
		{
			const char *prov = p ? "anthropic" : "openai";
			ao_llm_spec spec = {p ? AO_LLM_ANTHROPIC : AO_LLM_OPENAI, true,
			c >= 3, c == 4};
			char		f1[128],
						f2[128],
						label[200];
			size_t		l1,
						l2;
			char	   *b1,
					   *b2;
			ao_llm_result r1,
						r2;
			json_object *want;

			snprintf(f1, sizeof(f1), "%s_stream_%s.txt", prov, cases[c]);
			snprintf(f2, sizeof(f2), "%s_%s.txt", prov, cases[c]);
			b1 = read_fixture(f1, &l1);
			b2 = read_fixture(f2, &l2);
			ao_llm_parse_response(&spec, map, b1, l1, &r1);
			ao_llm_parse_response(&spec, map, b2, l2, &r2);
			snprintf(label, sizeof(label), "streamed and plain replies agree: %s %s", prov, cases[c]);
			want = summary(&r2);
			check_json(label, summary(&r1), want);
			json_object_put(want);
			ao_llm_result_free(&r1);
			ao_llm_result_free(&r2);
			free(b1);
			free(b2);
		}
	ao_llm_toolmap_free(map);
}

/* ---------------------------------------------------------------------- */
/* Malformed and edge-case input                                          */
/* ---------------------------------------------------------------------- */

static ao_llm_result
decode_str(ao_llm_provider p, bool structured, const char *in, const ao_llm_limits *limits,
		   bool *ok)
{
	ao_llm_spec spec = {p, true, structured, false};
	ao_llm_decoder *d = ao_llm_decoder_new(&spec, NULL, NULL, NULL, limits);
	ao_llm_result r;
	bool		fin;

	ao_llm_decoder_feed(d, in, strlen(in));
	fin = ao_llm_decoder_finish(d);
	if (ok)
		*ok = fin;
	ao_llm_decoder_take_result(d, &r);
	ao_llm_decoder_free(d);
	return r;
}

static void
expect_error(const char *name, ao_llm_provider p, bool structured, const char *in,
			 ao_llm_errkind kind, bool retryable, const char *msg_part)
{
	bool		ok;
	ao_llm_result r = decode_str(p, structured, in, NULL, &ok);
	char		label[240];

	snprintf(label, sizeof(label), "%s -> %s", name, ao_llm_errkind_name(kind));
	if (!unit_ok(!ok && r.error.kind == kind && r.error.retryable == retryable &&
				 (msg_part == NULL || strstr(r.error.message, msg_part) != NULL), label))
		printf("#   got %s retryable=%d: %s\n", ao_llm_errkind_name(r.error.kind),
			   r.error.retryable, r.error.message);
	ao_llm_result_free(&r);
}

#define OA(x) "data: " x "\n\n"
#define OA_CHUNK(delta) OA("{\"choices\":[{\"index\":0,\"delta\":" delta ",\"finish_reason\":null}]}")
#define OA_FINISH(reason) OA("{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"" reason "\"}]}")
#define AN(type, x) "event: " type "\ndata: " x "\n\n"

static void
test_malformed(void)
{
	bool		ok;
	ao_llm_result r;
	ao_llm_limits small = {64, 0};
	ao_llm_limits tiny_out = {0, 10};

	expect_error("empty body", AO_LLM_OPENAI, false, "", AO_LLM_ERR_TRUNCATED, true, "empty response body");
	expect_error("blank body", AO_LLM_OPENAI, false, "\n\r\n  ", AO_LLM_ERR_TRUNCATED, true, "empty");
	expect_error("not SSE, not JSON", AO_LLM_OPENAI, false, "<html>oops</html>", AO_LLM_ERR_TRUNCATED, true,
				 "before [DONE]");
	expect_error("data is not JSON", AO_LLM_OPENAI, false, OA("{not json}"), AO_LLM_ERR_PROTOCOL, true,
				 "malformed JSON in server-sent event data");
	expect_error("data is a JSON array", AO_LLM_OPENAI, false, OA("[1,2]"), AO_LLM_ERR_PROTOCOL, true,
				 "not a JSON object");
	expect_error("data has trailing garbage", AO_LLM_OPENAI, false, OA("{} {}"), AO_LLM_ERR_PROTOCOL, true,
				 "malformed");
	expect_error("invalid UTF-8 in data", AO_LLM_OPENAI, false,
				 OA_CHUNK("{\"content\":\"bad \xC3\x28\"}"), AO_LLM_ERR_PROTOCOL, true, "malformed");
	expect_error("anthropic: data is not JSON", AO_LLM_ANTHROPIC, false, AN("message_start", "{"),
				 AO_LLM_ERR_PROTOCOL, true, "malformed");
	expect_error("anthropic: delta for a block never started", AO_LLM_ANTHROPIC, false,
				 AN("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}"),
				 AO_LLM_ERR_PROTOCOL, true, "not started");
	expect_error("anthropic: block started twice", AO_LLM_ANTHROPIC, false,
				 AN("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
				 AN("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"),
				 AO_LLM_ERR_PROTOCOL, true, "started twice");
	expect_error("anthropic: block index missing", AO_LLM_ANTHROPIC, false,
				 AN("content_block_start", "{\"type\":\"content_block_start\",\"content_block\":{\"type\":\"text\"}}"),
				 AO_LLM_ERR_PROTOCOL, true, "index");
	expect_error("anthropic: block index absurd", AO_LLM_ANTHROPIC, false,
				 AN("content_block_start", "{\"type\":\"content_block_start\",\"index\":99999999,\"content_block\":{\"type\":\"text\"}}"),
				 AO_LLM_ERR_PROTOCOL, true, "index");
	expect_error("anthropic: tool_use without name", AO_LLM_ANTHROPIC, false,
				 AN("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"x\"}}"),
				 AO_LLM_ERR_PROTOCOL, true, "without a name");
	expect_error("anthropic: no message_stop", AO_LLM_ANTHROPIC, false,
				 AN("message_start", "{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}"),
				 AO_LLM_ERR_TRUNCATED, true, "message_stop");
	expect_error("anthropic: error event", AO_LLM_ANTHROPIC, false,
				 AN("error", "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}"),
				 AO_LLM_ERR_PROVIDER, false, "invalid_request_error");
	expect_error("openai: tool call without a name", AO_LLM_OPENAI, false,
				 OA_CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"arguments\":\"{}\"}}]}"),
				 AO_LLM_ERR_PROTOCOL, true, "without a function name");
	expect_error("openai: delta for a tool call that already ended", AO_LLM_OPENAI, false,
				 OA_CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{\"}}]}")
				 OA_CHUNK("{\"tool_calls\":[{\"index\":1,\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}")
				 OA_CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"}\"}}]}"),
				 AO_LLM_ERR_PROTOCOL, true, "after the call ended");
	expect_error("openai: error chunk (insufficient_quota is permanent)", AO_LLM_OPENAI, false,
				 OA("{\"error\":{\"message\":\"quota\",\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}}"),
				 AO_LLM_ERR_PROVIDER, false, "quota");
	expect_error("openai: error chunk with unknown type is retryable", AO_LLM_OPENAI, false,
				 OA("{\"error\":{\"message\":\"hmm\"}}"), AO_LLM_ERR_PROVIDER, true, "openai error: hmm");
	expect_error("openai: JSON body with an error", AO_LLM_OPENAI, false,
				 "{\"error\":{\"message\":\"nope\",\"type\":\"invalid_request_error\"}}", AO_LLM_ERR_PROVIDER, false, "nope");
	expect_error("openai: JSON body without choices", AO_LLM_OPENAI, false, "{\"id\":\"x\"}",
				 AO_LLM_ERR_PROTOCOL, true, "choices");
	expect_error("openai: JSON body that is cut", AO_LLM_OPENAI, false, "{\"choices\":[",
				 AO_LLM_ERR_PROTOCOL, true, "response body");
	expect_error("anthropic: JSON body without content", AO_LLM_ANTHROPIC, false, "{\"type\":\"message\"}",
				 AO_LLM_ERR_PROTOCOL, true, "content");
	expect_error("anthropic: JSON error body", AO_LLM_ANTHROPIC, false,
				 "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
				 AO_LLM_ERR_PROVIDER, true, "Overloaded");
	expect_error("structured: text after the JSON value", AO_LLM_OPENAI, true,
				 OA_CHUNK("{\"content\":\"{}\"}") OA_CHUNK("{\"content\":\" x\"}") OA_FINISH("stop") OA("[DONE]"),
				 AO_LLM_ERR_OUTPUT, true, "unexpected text after the JSON value");
	expect_error("structured: no output at all", AO_LLM_OPENAI, true,
				 OA_FINISH("stop") OA("[DONE]"), AO_LLM_ERR_OUTPUT, true, "no structured output");
	expect_error("structured: cut by max_tokens is permanent", AO_LLM_OPENAI, true,
				 OA_CHUNK("{\"content\":\"{\\\"a\\\": [1,\"}") OA_FINISH("length") OA("[DONE]"),
				 AO_LLM_ERR_OUTPUT, false, "max_tokens");
	expect_error("structured: refusal", AO_LLM_OPENAI, true,
				 OA_CHUNK("{\"refusal\":\"I can't\"}") OA_CHUNK("{\"refusal\":\" help.\"}") OA_FINISH("stop") OA("[DONE]"),
				 AO_LLM_ERR_REFUSAL, false, "I can't help.");
	{
		ao_llm_spec spec = {AO_LLM_OPENAI, true, true, true};
		const char *in = OA_CHUNK("{\"content\":\"{\\\"x\\\":1}\"}") OA_FINISH("stop") OA("[DONE]");

		UNIT_OK(!ao_llm_parse_response(&spec, NULL, in, strlen(in), &r) &&
				r.error.kind == AO_LLM_ERR_OUTPUT && strstr(r.error.message, "\"value\"") != NULL,
				"structured: wrapped schema but no \"value\" member -> output");
		ao_llm_result_free(&r);
	}
	expect_error("tool arguments not an object", AO_LLM_OPENAI, false,
				 OA_CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}")
				 OA_FINISH("tool_calls") OA("[DONE]"), AO_LLM_ERR_OUTPUT, true, "not a JSON object");

	/* limits */
	r = decode_str(AO_LLM_OPENAI, false,
				   OA_CHUNK("{\"content\":\"this event is much longer than sixty-four bytes\"}") OA("[DONE]"),
				   &small, &ok);
	UNIT_OK(!ok && r.error.kind == AO_LLM_ERR_TOO_LARGE && !r.error.retryable &&
			strstr(r.error.message, "64 bytes") != NULL, "event over max_event_bytes -> too_large");
	ao_llm_result_free(&r);
	r = decode_str(AO_LLM_OPENAI, false,
				   OA_CHUNK("{\"content\":\"0123456\"}") OA_CHUNK("{\"content\":\"789ab\"}") OA_FINISH("stop") OA("[DONE]"),
				   &tiny_out, &ok);
	UNIT_OK(!ok && r.error.kind == AO_LLM_ERR_TOO_LARGE && strcmp(r.text, "0123456") == 0,
			"output over max_output_bytes -> too_large, text up to the limit");
	ao_llm_result_free(&r);
	r = decode_str(AO_LLM_OPENAI, false, "{\"choices\":[{\"message\":{\"content\":\"far too long\"}}]}", &tiny_out, &ok);
	UNIT_OK(!ok && r.error.kind == AO_LLM_ERR_TOO_LARGE, "JSON body over max_output_bytes -> too_large");
	ao_llm_result_free(&r);

	/* the good cases of the same shapes */
	r = decode_str(AO_LLM_OPENAI, false,
				   ": keep-alive comment\n\n" OA_CHUNK("{\"content\":\"hi\"}") OA_FINISH("stop"), NULL, &ok);
	UNIT_OK(ok && r.complete && strcmp(r.text, "hi") == 0,
			"openai: finish reason without [DONE] is complete; comments ignored");
	ao_llm_result_free(&r);
	r = decode_str(AO_LLM_OPENAI, false,
				   OA_CHUNK("{\"tool_calls\":[{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\"\"}}]}")
				   OA_CHUNK("{\"tool_calls\":[{\"function\":{\"arguments\":\":1}\"}}]}")
				   OA_CHUNK("{\"tool_calls\":[{\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":{\"y\":2}}}]}")
				   OA_FINISH("function_call") OA("[DONE]"), NULL, &ok);
	UNIT_OK(ok && r.n_tool_calls == 2 && strcmp(r.tool_calls[0].arguments_text, "{\"x\":1}") == 0 &&
			json_object_get_int(json_object_object_get(r.tool_calls[1].arguments, "y")) == 2 &&
			strcmp(r.finish_reason, "tool_calls") == 0,
			"openai: tool calls without index, object arguments, legacy function_call finish");
	ao_llm_result_free(&r);
	r = decode_str(AO_LLM_OPENAI, false,
				   OA_CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}")
				   OA_FINISH("tool_calls") OA("[DONE]"), NULL, &ok);
	UNIT_OK(ok && r.n_tool_calls == 1 && strcmp(r.tool_calls[0].id, "call_0") == 0 &&
			json_object_object_length(r.tool_calls[0].arguments) == 0,
			"openai: missing id synthesized, empty arguments read as {}");
	ao_llm_result_free(&r);
	r = decode_str(AO_LLM_OPENAI, false,
				   OA("{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other\"}},{\"index\":0,\"delta\":{\"content\":\"first\"}}]}")
				   OA_FINISH("stop") OA("[DONE]"), NULL, &ok);
	UNIT_OK(ok && strcmp(r.text, "first") == 0, "openai: only choice 0 is used");
	ao_llm_result_free(&r);
	r = decode_str(AO_LLM_OPENAI, true,
				   OA_CHUNK("{\"content\":\"4\"}") OA_CHUNK("{\"content\":\"2\"}") OA_FINISH("stop") OA("[DONE]"), NULL, &ok);
	UNIT_OK(ok && json_object_get_int(r.structured) == 42, "structured: a top-level number completes at the end");
	ao_llm_result_free(&r);
	r = decode_str(AO_LLM_OPENAI, false,
				   OA("{\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":5,\"prompt_tokens_details\":{\"cached_tokens\":60}}}")
				   OA_FINISH("stop") OA("[DONE]"), NULL, &ok);
	UNIT_OK(ok && r.usage.input_tokens == 100 && r.usage.output_tokens == 5 && r.usage.cached_input_tokens == 60 &&
			r.usage.cache_write_tokens == -1, "openai: cached prompt tokens");
	ao_llm_result_free(&r);
	r = decode_str(AO_LLM_ANTHROPIC, false,
				   AN("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":5,\"cache_creation_input_tokens\":7,\"cache_read_input_tokens\":11,\"output_tokens\":1}}}")
				   AN("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}")
				   AN("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}")
				   AN("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}")
				   AN("content_block_start", "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"Hi\"}}")
				   AN("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"}}")
				   AN("content_block_start", "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{\"k\":1}}}")
				   AN("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":2}")
				   AN("some_future_event", "{\"type\":\"some_future_event\"}")
				   AN("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":9}}")
				   AN("message_stop", "{\"type\":\"message_stop\"}"), NULL, &ok);
	UNIT_OK(ok && strcmp(r.text, "Hi!") == 0 && r.usage.input_tokens == 23 && r.usage.cached_input_tokens == 11 &&
			r.usage.cache_write_tokens == 7 && r.usage.output_tokens == 9 && strcmp(r.finish_reason, "length") == 0 &&
			r.n_tool_calls == 1 && strcmp(r.tool_calls[0].arguments_text, "{\"k\":1}") == 0,
			"anthropic: thinking ignored, initial text, input given at block start, cache usage, max_tokens -> length");
	ao_llm_result_free(&r);

	r = decode_str(AO_LLM_OPENAI, false,
				   "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
				   "{\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},"
				   "{\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]},"
				   "\"finish_reason\":\"tool_calls\"}]}", NULL, &ok);
	UNIT_OK(ok && r.n_tool_calls == 2 && strcmp(r.tool_calls[1].name, "g") == 0 &&
			strcmp(r.tool_calls[1].id, "call_1") == 0,
			"openai non-streamed: tool calls without ids stay separate calls");
	ao_llm_result_free(&r);
	{
		ao_buf		in;

		ao_buf_init(&in);
		for (int i = 0; i < 5000; i++)
			ao_buf_append(&in, i % 2 ? "\n" : "\r");
		ao_buf_append(&in, OA_CHUNK("{\"content\":\"late start\"}") OA_FINISH("stop"));
		r = decode_str(AO_LLM_OPENAI, false, in.data, NULL, &ok);
		UNIT_OK(ok && strcmp(r.text, "late start") == 0, "long blank prefix before an SSE stream");
		ao_llm_result_free(&r);
		ao_buf_free(&in);
	}
	r = decode_str(AO_LLM_ANTHROPIC, false,
				   " \r\n{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"plain\"}],\"stop_reason\":\"end_turn\"}",
				   NULL, &ok);
	UNIT_OK(ok && strcmp(r.text, "plain") == 0 && strcmp(r.finish_reason, "stop") == 0,
			"JSON body after blanks is read as a non-streamed reply");
	ao_llm_result_free(&r);

	/* a fatal error later in the stream replaces an earlier output error */
	{
		trace		t;
		ao_llm_spec spec = {AO_LLM_OPENAI, true, false, false};
		const char *in = OA_CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{\"}}]}")
			OA_CHUNK("{\"tool_calls\":[{\"index\":1,\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}")
			OA("{\"error\":{\"message\":\"down\",\"type\":\"server_error\"}}");
		char	   *sig = decode_sig(in, strlen(in), &spec, NULL, NULL, NULL, &ok, &t);

		UNIT_OK(!ok && t.errors == 2 && strstr(sig, "err=provider/1/openai error (server_error): down") != NULL,
				"fatal error after an output error: reported too, and kept in the result");
		free(sig);
		trace_free(&t);
	}

	/* a fatal error stops the decoder; later input is ignored */
	{
		ao_llm_spec spec = {AO_LLM_OPENAI, true, false, false};
		ao_llm_decoder *d = ao_llm_decoder_new(&spec, NULL, NULL, NULL, NULL);
		const char *bad = OA("{oops");
		const char *good = OA_CHUNK("{\"content\":\"late\"}") OA("[DONE]");

		UNIT_OK(!ao_llm_decoder_feed(d, bad, strlen(bad)), "feed returns false after a fatal error");
		UNIT_OK(!ao_llm_decoder_feed(d, good, strlen(good)) && ao_llm_decoder_result(d)->text_len == 0,
				"input after a fatal error is ignored");
		UNIT_OK(!ao_llm_decoder_finish(d) && ao_llm_decoder_result(d)->error.kind == AO_LLM_ERR_PROTOCOL,
				"finish keeps the first error");
		UNIT_OK(!ao_llm_decoder_finish(d), "finish twice is harmless");
		ao_llm_decoder_free(d);
	}

	/* pre-parsed events */
	{
		ao_llm_spec spec = {AO_LLM_ANTHROPIC, true, false, false};
		ao_llm_decoder *d = ao_llm_decoder_new(&spec, NULL, NULL, NULL, NULL);
		const char *e1 = "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"A\"}}";
		const char *e2 = "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}";

		ao_llm_decoder_event(d, NULL, e1, strlen(e1));
		ao_llm_decoder_event(d, "message_delta", e2, strlen(e2));
		UNIT_OK(ao_llm_decoder_finish(d) && strcmp(ao_llm_decoder_result(d)->text, "A") == 0 &&
				strcmp(ao_llm_decoder_result(d)->finish_reason, "stop") == 0,
				"ao_llm_decoder_event with pre-parsed SSE events");
		ao_llm_decoder_free(d);
	}
}

/* Random damage to recorded replies: never a crash, and still chunking-invariant. */
static void
test_fuzz(void)
{
	static const char *const files[] = {
		"openai_stream_tools.txt", "openai_stream_structured.txt", "openai_tools.txt",
		"anthropic_stream_tools.txt", "anthropic_stream_structured.txt", "anthropic_weather.txt",
		"anthropic_stream_weather.txt", "openai_stream_wrapped.txt",
	};
	static const char *const inserts[] = {"\n\n", "\r", "\"", "}", "data: ", "event: error\n", "\\", "\xC3", "[DONE]", ":"};
	ao_llm_toolmap *map = fixture_map();
	int			bad = 0;
	int			rounds = 1500;

	for (int round = 0; round < rounds; round++)
	{
		size_t		fi = rng() % (sizeof(files) / sizeof(files[0]));
		size_t		len;
		char	   *orig = read_fixture(files[fi], &len);
		ao_buf		b;
		int			nmut = 1 + rng() % 4;
		ao_llm_spec spec = {strncmp(files[fi], "openai", 6) == 0 ? AO_LLM_OPENAI : AO_LLM_ANTHROPIC,
		true, strstr(files[fi], "structured") != NULL || strstr(files[fi], "wrapped") != NULL,
		strstr(files[fi], "wrapped") != NULL};

		ao_buf_init(&b);
		ao_buf_append_n(&b, orig, len);
		free(orig);
		for (int m = 0; m < nmut && b.len > 2; m++)
		{
			size_t		pos = rng() % b.len;
			ao_buf		nb;

			ao_buf_init(&nb);
			switch (rng() % 4)
			{
				case 0:			/* change a byte */
					b.data[pos] = (char) (rng() & 0xff);
					break;
				case 1:			/* delete a range */
					{
						size_t		n = 1 + rng() % 40;

						if (pos + n > b.len)
							n = b.len - pos;
						ao_buf_append_n(&nb, b.data, pos);
						ao_buf_append_n(&nb, b.data + pos + n, b.len - pos - n);
						ao_buf_free(&b);
						b = nb;
						continue;
					}
				case 2:			/* insert something meaningful */
					{
						const char *ins = inserts[rng() % (sizeof(inserts) / sizeof(inserts[0]))];

						ao_buf_append_n(&nb, b.data, pos);
						ao_buf_append(&nb, ins);
						ao_buf_append_n(&nb, b.data + pos, b.len - pos);
						ao_buf_free(&b);
						b = nb;
						continue;
					}
				default:		/* truncate */
					ao_buf_truncate(&b, pos);
					break;
			}
			ao_buf_free(&nb);
		}
		bad += chunking_differences(b.data, b.len, &spec, map, NULL, false, 3);
		ao_buf_free(&b);
	}
	UNIT_OK(bad == 0, "1500 damaged replies: no crash, results independent of chunking");
	ao_llm_toolmap_free(map);
}

/* ---------------------------------------------------------------------- */
/* Incremental JSON                                                       */
/* ---------------------------------------------------------------------- */

static void
test_json_stream(void)
{
	ao_json_stream *s = ao_json_stream_new(0);
	const char *doc = "{\"a\": [1, 2, {\"b\": \"x\\u00e9\"}], \"c\": null}";
	size_t		n = strlen(doc);
	bool		more_until_end = true;
	size_t		len;

	for (size_t i = 0; i + 1 < n; i++)
		more_until_end = more_until_end && ao_json_stream_feed(s, doc + i, 1) == AO_JSON_MORE;
	UNIT_OK(more_until_end, "json stream: MORE until the last byte");
	UNIT_OK(ao_json_stream_feed(s, doc + n - 1, 1) == AO_JSON_COMPLETE && ao_json_stream_value(s) != NULL,
			"json stream: COMPLETE on the closing brace");
	UNIT_OK(ao_json_stream_feed(s, " \n\t", 3) == AO_JSON_COMPLETE, "json stream: trailing blanks are fine");
	UNIT_OK(strcmp(ao_json_stream_text(s, &len), "{\"a\": [1, 2, {\"b\": \"x\\u00e9\"}], \"c\": null} \n\t") == 0 &&
			len == n + 3, "json stream: text so far");
	UNIT_OK(ao_json_stream_finish(s) == AO_JSON_COMPLETE && ao_json_stream_error(s)[0] == '\0',
			"json stream: finish after complete");
	UNIT_OK(ao_json_stream_feed(s, "x", 1) == AO_JSON_ERROR &&
			strstr(ao_json_stream_error(s), "unexpected text") != NULL &&
			ao_json_stream_value(s) == NULL, "json stream: text after the value is an error");
	UNIT_OK(ao_json_stream_feed(s, " ", 1) == AO_JSON_ERROR, "json stream: errors are sticky");
	ao_json_stream_free(s);

	/* a key with \u0000 keeps it (as U+FFFD), split across pieces too */
	s = ao_json_stream_new(0);
	ao_json_stream_feed(s, "{\"role\": \"user\", \"role\\u", strlen("{\"role\": \"user\", \"role\\u"));
	ao_json_stream_feed(s, "0000x\": \"admin\"}", strlen("0000x\": \"admin\"}"));
	UNIT_OK(ao_json_stream_state_of(s) == AO_JSON_COMPLETE &&
			strcmp(json_object_get_string(json_object_object_get(ao_json_stream_value(s), "role")), "user") == 0 &&
			json_object_object_length(ao_json_stream_value(s)) == 2,
			"json stream: a key with \\u0000 is not cut short onto another key");
	ao_json_stream_free(s);

	s = ao_json_stream_new(0);
	ao_json_stream_feed(s, "-12", 3);
	UNIT_OK(ao_json_stream_state_of(s) == AO_JSON_MORE && ao_json_stream_finish(s) == AO_JSON_COMPLETE &&
			json_object_get_int(ao_json_stream_value(s)) == -12, "json stream: top-level number needs finish");
	ao_json_stream_free(s);

	s = ao_json_stream_new(0);
	ao_json_stream_feed(s, "tr", 2);
	ao_json_stream_feed(s, "ue", 2);
	UNIT_OK(ao_json_stream_finish(s) == AO_JSON_COMPLETE && json_object_get_boolean(ao_json_stream_value(s)),
			"json stream: literal split across pieces");
	ao_json_stream_free(s);

	s = ao_json_stream_new(0);
	UNIT_OK(ao_json_stream_feed(s, "{\"a\":1,}", 8) == AO_JSON_ERROR && strstr(ao_json_stream_error(s), "byte") != NULL,
			"json stream: trailing comma rejected (strict), with the position");
	ao_json_stream_free(s);

	s = ao_json_stream_new(0);
	UNIT_OK(ao_json_stream_feed(s, "{\"a\": 'x'}", 10) == AO_JSON_ERROR, "json stream: single-quoted string rejected");
	ao_json_stream_free(s);

	s = ao_json_stream_new(0);
	UNIT_OK(ao_json_stream_feed(s, "[1, NaN]", 8) == AO_JSON_ERROR && strstr(ao_json_stream_error(s), "NaN") != NULL,
			"json stream: NaN rejected");
	ao_json_stream_free(s);

	s = ao_json_stream_new(0);
	ao_json_stream_feed(s, "-Infinity", 9);
	UNIT_OK(ao_json_stream_finish(s) == AO_JSON_ERROR, "json stream: top-level -Infinity rejected at finish");
	ao_json_stream_free(s);

	s = ao_json_stream_new(0);
	ao_json_stream_feed(s, "{\"a\": [1", 8);
	UNIT_OK(ao_json_stream_finish(s) == AO_JSON_ERROR && strstr(ao_json_stream_error(s), "ends before") != NULL,
			"json stream: incomplete at the end");
	ao_json_stream_free(s);

	s = ao_json_stream_new(0);
	ao_json_stream_feed(s, "  ", 2);
	UNIT_OK(ao_json_stream_finish(s) == AO_JSON_ERROR && strstr(ao_json_stream_error(s), "empty") != NULL,
			"json stream: blank text is an error");
	ao_json_stream_free(s);

	s = ao_json_stream_new(0);
	UNIT_OK(ao_json_stream_feed(s, "\"a\0b\"", 5) == AO_JSON_ERROR, "json stream: raw NUL rejected");
	ao_json_stream_free(s);

	s = ao_json_stream_new(0);
	UNIT_OK(ao_json_stream_feed(s, "\"\xC3\x28\"", 4) == AO_JSON_ERROR, "json stream: invalid UTF-8 rejected");
	ao_json_stream_free(s);

	s = ao_json_stream_new(8);
	ao_json_stream_feed(s, "[1,2,3,", 7);
	UNIT_OK(ao_json_stream_feed(s, "4,5]", 4) == AO_JSON_ERROR && strstr(ao_json_stream_error(s), "8 bytes") != NULL,
			"json stream: size limit");
	ao_json_stream_free(s);

	{
		ao_buf		deep;

		ao_buf_init(&deep);
		for (int i = 0; i < 100; i++)
			ao_buf_append(&deep, "[");
		for (int i = 0; i < 100; i++)
			ao_buf_append(&deep, "]");
		s = ao_json_stream_new(0);
		UNIT_OK(ao_json_stream_feed(s, deep.data, deep.len) == AO_JSON_COMPLETE, "json stream: 100 levels deep");
		ao_json_stream_free(s);
		ao_buf_reset(&deep);
		for (int i = 0; i < 500; i++)
			ao_buf_append(&deep, "[");
		s = ao_json_stream_new(0);
		UNIT_OK(ao_json_stream_feed(s, deep.data, deep.len) == AO_JSON_ERROR, "json stream: 500 levels refused, no crash");
		ao_json_stream_free(s);
		ao_buf_free(&deep);
	}
}

/* ---------------------------------------------------------------------- */
/* Cost                                                                   */
/* ---------------------------------------------------------------------- */

static bool
near(double a, double b)
{
	return a - b < 1e-9 && b - a < 1e-9;
}

static void
test_cost(void)
{
	ao_llm_price p;
	ao_llm_usage u = {1000000, 1000000, -1, -1};
	ao_problems probs;
	json_object *o;

	ao_llm_price_init(&p, 3.0, 15.0);
	UNIT_OK(near(ao_llm_cost(&p, &u), 18.0), "cost: 1M in at 3 + 1M out at 15 = 18");
	u.input_tokens = 2000;
	u.output_tokens = 500;
	UNIT_OK(near(ao_llm_cost(&p, &u), 0.006 + 0.0075), "cost: small counts");
	u.cached_input_tokens = 1000;
	UNIT_OK(near(ao_llm_cost(&p, &u), 0.006 + 0.0075), "cost: cached tokens at the input price by default");
	p.cached_input_per_mtok = 0.3;
	p.cache_write_per_mtok = 3.75;
	u.cache_write_tokens = 500;
	UNIT_OK(near(ao_llm_cost(&p, &u), (500 * 3.0 + 1000 * 0.3 + 500 * 3.75 + 500 * 15.0) / 1e6),
			"cost: cached and cache-write prices");
	u.input_tokens = u.output_tokens = u.cached_input_tokens = u.cache_write_tokens = -1;
	UNIT_OK(ao_llm_cost(&p, &u) == 0, "cost: unknown usage costs 0");

	ao_problems_init(&probs);
	o = J("{\"input_per_mtok\": 2.5, \"output_per_mtok\": 10}");
	UNIT_OK(ao_llm_price_from_json(o, &p, ao_problems_add, &probs) && p.input_per_mtok == 2.5 &&
			p.output_per_mtok == 10 && p.cached_input_per_mtok < 0 && probs.n == 0, "prices from JSON");
	json_object_put(o);
	o = J("{\"input_per_mtok\": -1, \"cached_input_per_mtok\": \"x\"}");
	UNIT_OK(!ao_llm_price_from_json(o, &p, ao_problems_add, &probs) && probs.n == 3,
			"bad prices: negative, missing, not a number");
	json_object_put(o);
	ao_problems_free(&probs);
}

/* ---------------------------------------------------------------------- */
/* Error classification                                                   */
/* ---------------------------------------------------------------------- */

static bool
utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *) s;

	while (*p)
	{
		int			n = *p < 0x80 ? 0 : *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 : *p >= 0xC0 ? 1 : -1;

		if (n < 0)
			return false;
		p++;
		for (int i = 0; i < n; i++, p++)
			if ((*p & 0xC0) != 0x80)
				return false;
	}
	return true;
}

/* Split a recorded HTTP response into status, Retry-After and body. */
static void
classify_fixture(const char *file, ao_llm_provider p, ao_llm_error *e)
{
	size_t		len;
	char	   *raw = read_fixture(file, &len);
	char	   *body = strstr(raw, "\r\n\r\n");
	long		status = strtol(raw + 9, NULL, 10);
	char		retry[64] = "";
	char	   *h;

	*body = '\0';
	body += 4;
	for (h = strstr(raw, "\r\n"); h != NULL; h = strstr(h + 2, "\r\n"))
		if (strncasecmp(h + 2, "Retry-After:", 12) == 0)
			sscanf(h + 14, " %63[^\r]", retry);
	ao_llm_classify_http(p, status, body, strlen(body), retry[0] ? retry : NULL, 0, e);
	free(raw);
}

static void
test_classify(void)
{
	static const struct
	{
		const char *file;
		int			provider;
		long		status;
		bool		retryable;
		double		retry_after;
		const char *type;
		const char *message;
	}			cases[] = {
		{"openai_http_429.txt", AO_LLM_OPENAI, 429, true, 3000, "rate_limit_exceeded",
		"HTTP 429 (rate_limit_exceeded): Rate limit reached (mock). Please try again in 3s."},
		{"openai_http_500.txt", AO_LLM_OPENAI, 500, true, -1, "server_error", NULL},
		{"openai_http_401.txt", AO_LLM_OPENAI, 401, false, -1, "invalid_request_error", NULL},
		{"openai_http_400.txt", AO_LLM_OPENAI, 400, false, -1, "invalid_request_error",
		"HTTP 400 (invalid_request_error): Invalid 'tools': function name 'chart.create' must match ^[a-zA-Z0-9_-]{1,64}$"},
		{"anthropic_http_429.txt", AO_LLM_ANTHROPIC, 429, true, 3000, "rate_limit_error", NULL},
		{"anthropic_http_500.txt", AO_LLM_ANTHROPIC, 500, true, -1, "api_error", NULL},
		{"anthropic_http_529.txt", AO_LLM_ANTHROPIC, 529, true, -1, "overloaded_error", NULL},
		{"anthropic_http_401.txt", AO_LLM_ANTHROPIC, 401, false, -1, "authentication_error", NULL},
		{"anthropic_http_400.txt", AO_LLM_ANTHROPIC, 400, false, -1, "invalid_request_error",
		"HTTP 400 (invalid_request_error): max_tokens: Field required"},
	};
	ao_llm_error e;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		char		label[200];

		classify_fixture(cases[i].file, (ao_llm_provider) cases[i].provider, &e);
		snprintf(label, sizeof(label), "classify %s: %s%s", cases[i].file,
				 cases[i].retryable ? "retryable" : "permanent",
				 cases[i].retry_after >= 0 ? " with retry-after" : "");
		if (!unit_ok(e.kind == AO_LLM_ERR_HTTP && e.http_status == cases[i].status &&
					 e.retryable == cases[i].retryable && e.retry_after_ms == cases[i].retry_after &&
					 strcmp(e.type, cases[i].type) == 0 &&
					 (cases[i].message == NULL || strcmp(e.message, cases[i].message) == 0), label))
			printf("#   got status %ld retryable %d retry %g type %s: %s\n", e.http_status,
				   e.retryable, e.retry_after_ms, e.type, e.message);
	}

	{
		const char *quota = "{\"error\":{\"message\":\"You exceeded your current quota\","
			"\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}}";

		ao_llm_classify_http(AO_LLM_OPENAI, 429, quota, strlen(quota), NULL, 0, &e);
	}
	UNIT_OK(!e.retryable && strcmp(e.type, "insufficient_quota") == 0, "429 insufficient_quota is permanent");
	ao_llm_classify_http(AO_LLM_OPENAI, 502, "<html><body>Bad\ngateway</body></html>", 37, NULL, 0, &e);
	UNIT_OK(e.retryable && strcmp(e.message, "HTTP 502: <html><body>Bad gateway</body></html>") == 0,
			"non-JSON 502: retryable, body start in the message without control characters");
	ao_llm_classify_http(AO_LLM_OPENAI, 503, "", 0, "120", 0, &e);
	UNIT_OK(e.retryable && strcmp(e.message, "HTTP 503") == 0 && e.retry_after_ms == 120000, "empty 503 body");
	ao_llm_classify_http(AO_LLM_OPENAI, 404, "{\"detail\":\"Not Found\"}", 22, NULL, 0, &e);
	UNIT_OK(!e.retryable && strcmp(e.message, "HTTP 404: Not Found") == 0, "404 with a {detail} body");
	ao_llm_classify_http(AO_LLM_OPENAI, 403, "{\"error\":\"forbidden\"}", 21, NULL, 0, &e);
	UNIT_OK(!e.retryable && strcmp(e.message, "HTTP 403: forbidden") == 0, "403 with a string error");
	ao_llm_classify_http(AO_LLM_OPENAI, 408, NULL, 0, NULL, 0, &e);
	UNIT_OK(e.retryable, "408 is retryable");
	ao_llm_classify_http(AO_LLM_OPENAI, 422, NULL, 0, NULL, 0, &e);
	UNIT_OK(!e.retryable, "422 is permanent");
	{
		char		longbody[2000];
		ao_buf		msg;

		memset(longbody, 'z', sizeof(longbody));
		ao_llm_classify_http(AO_LLM_ANTHROPIC, 500, longbody, sizeof(longbody), NULL, 0, &e);
		UNIT_OK(strlen(e.message) < 300, "long non-JSON body is shortened");
		ao_buf_init(&msg);
		ao_buf_append(&msg, "{\"error\":{\"type\":\"x\",\"message\":\"");
		for (int i = 0; i < 400; i++)
			ao_buf_append(&msg, "\xE2\x9C\x93");
		ao_buf_append(&msg, "\"}}");
		ao_llm_classify_http(AO_LLM_ANTHROPIC, 400, msg.data, msg.len, NULL, 0, &e);
		UNIT_OK(utf8_valid(e.message) && strlen(e.message) > 250, "long message cut on a UTF-8 boundary");
		ao_buf_free(&msg);
	}

	/* Retry-After */
	UNIT_OK(ao_llm_parse_retry_after("3", 0) == 3000, "retry-after seconds");
	UNIT_OK(ao_llm_parse_retry_after(" 1.5 ", 0) == 1500, "retry-after fractional seconds, blanks");
	UNIT_OK(ao_llm_parse_retry_after("0", 0) == 0, "retry-after 0");
	UNIT_OK(ao_llm_parse_retry_after(NULL, 0) == -1 && ao_llm_parse_retry_after("", 0) == -1 &&
			ao_llm_parse_retry_after("soon", 0) == -1 && ao_llm_parse_retry_after("-5", 0) == -1 &&
			ao_llm_parse_retry_after("1.2.3", 0) == -1, "retry-after garbage is -1");
	/* 784111777 = Sun, 06 Nov 1994 08:49:37 GMT */
	UNIT_OK(ao_llm_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111767.0) == 10000,
			"retry-after HTTP-date, 10 s ahead");
	UNIT_OK(ao_llm_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111800.0) == 0,
			"retry-after HTTP-date in the past is 0");
	UNIT_OK(ao_llm_parse_retry_after("Thu, 01 Jan 2026 00:00:00 GMT", 1767225590.0) == 10000,
			"retry-after HTTP-date in 2026");
	UNIT_OK(ao_llm_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", 0) == -1 &&
			ao_llm_parse_retry_after("Sun Nov  6 08:49:37 1994", 0) == -1 &&
			ao_llm_parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", 0) == -1,
			"obsolete date forms and bad months are -1");

	/* transport */
	ao_llm_classify_transport(7, "Failed to connect", &e);
	UNIT_OK(e.kind == AO_LLM_ERR_TRANSPORT && e.retryable && strcmp(e.message, "transport error 7: Failed to connect") == 0,
			"couldn't connect: retryable");
	ao_llm_classify_transport(28, "Timeout was reached", &e);
	UNIT_OK(e.retryable, "timeout: retryable");
	ao_llm_classify_transport(56, NULL, &e);
	UNIT_OK(e.retryable && strstr(e.message, "unknown") != NULL, "recv failure: retryable");
	ao_llm_classify_transport(60, "SSL peer certificate", &e);
	UNIT_OK(!e.retryable, "certificate problem: permanent");
	ao_llm_classify_transport(3, "URL malformed", &e);
	UNIT_OK(!e.retryable, "malformed URL: permanent");
	UNIT_STREQ(ao_llm_errkind_name(AO_LLM_ERR_TOO_LARGE), "too_large", "error kind names");
}

/* ---------------------------------------------------------------------- */
/* A whole tool-calling turn                                              */
/* ---------------------------------------------------------------------- */

static void
test_conversation_loop(void)
{
	static const char *const provs[] = {"openai", "anthropic"};

	for (int p = 0; p < 2; p++)
	{
		ao_llm_provider prov = p ? AO_LLM_ANTHROPIC : AO_LLM_OPENAI;
		json_object *call = fixture_json("call_tools.json");
		ao_llm_toolmap *map = ao_llm_toolmap_new();
		ao_llm_spec spec;
		json_object *body = build(prov, call, map, NULL, &spec, NULL);
		char		file[64];
		char		label[160];
		size_t		len;
		char	   *reply;
		ao_llm_result r;
		json_object *msgs = json_object_new_array();
		json_object *assistant;

		snprintf(file, sizeof(file), "%s_stream_tools.txt", provs[p]);
		reply = read_fixture(file, &len);
		ao_llm_parse_response(&spec, map, reply, len, &r);
		free(reply);
		json_object_put(body);

		/* the next request: the reply as the assistant turn, then the tool results */
		assistant = ao_llm_result_to_json(&r);
		json_object_array_add(msgs, J("{\"role\": \"user\", \"content\": \"Use both tools now\"}"));
		json_object_array_add(msgs, assistant);
		for (size_t i = 0; i < r.n_tool_calls; i++)
		{
			json_object *m = json_object_new_object();

			json_object_object_add(m, "role", json_object_new_string("tool"));
			json_object_object_add(m, "tool_call_id", json_object_new_string(r.tool_calls[i].id));
			json_object_object_add(m, "content", J("{\"ok\": true}"));
			json_object_array_add(msgs, m);
		}
		json_object_object_del(call, "prompt");
		json_object_object_add(call, "messages", msgs);
		body = build(prov, call, map, NULL, &spec, NULL);
		snprintf(label, sizeof(label), "%s: the decoded reply and tool results make a valid next request", provs[p]);
		UNIT_OK(body != NULL, label);
		snprintf(label, sizeof(label), "%s: assistant tool calls sent back under their wire names", provs[p]);
		if (prov == AO_LLM_OPENAI)
		{
			UNIT_OK(body != NULL && strcmp(at_str(body, "/messages/1/tool_calls/0/function/name"), "chart_create") == 0 &&
					strcmp(at_str(body, "/messages/1/tool_calls/0/function/arguments"), "{\"a\":1}") == 0 &&
					strcmp(at_str(body, "/messages/1/content"), "Calling two tools.") == 0 &&
					strcmp(at_str(body, "/messages/3/tool_call_id"), r.tool_calls[1].id) == 0, label);
		}
		else
		{
			UNIT_OK(body != NULL && strcmp(at_str(body, "/messages/1/content/1/name"), "chart_create") == 0 &&
					strcmp(at_str(body, "/messages/1/content/0/text"), "Calling two tools.") == 0 &&
					strcmp(at_str(body, "/messages/2/content/1/tool_use_id"), r.tool_calls[1].id) == 0 &&
					json_object_array_length(at(body, "/messages")) == 3, label);
		}
		json_object_put(body);
		json_object_put(call);
		ao_llm_result_free(&r);
		ao_llm_toolmap_free(map);
	}
}

/* ---------------------------------------------------------------------- */
/* HTTP response headers into JSON (http tools, executors and workers)    */
/* ---------------------------------------------------------------------- */

static void
test_http_headers(void)
{
	char		text[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Twice: one\r\n"
		"no colon here\r\nx-twice:   two\r\nEmpty:\r\n\r\nHTTP/2 404\r\n";
	json_object *h = json_object_new_object();

	ao_http_headers_into(h, text);
	UNIT_STREQ(json_object_get_string(json_object_object_get(h, "content-type")), "text/plain",
			   "headers: names lower-cased, value after the colon and its spaces");
	UNIT_STREQ(json_object_get_string(json_object_object_get(h, "x-twice")), "two",
			   "headers: a later duplicate wins");
	UNIT_STREQ(json_object_get_string(json_object_object_get(h, "empty")), "", "headers: an empty value");
	UNIT_OK(json_object_object_length(h) == 3, "headers: status lines and lines without a colon are skipped");
	json_object_put(h);
}

/* ---------------------------------------------------------------------- */
/* Text PostgreSQL can store; provider edge cases from recorded streams   */
/* ---------------------------------------------------------------------- */

static void
test_sanitize(void)
{
	size_t		len;
	char	   *c;
	json_object *v;
	bool		ok;
	ao_llm_result r;

	UNIT_OK(ao_llm_text_is_clean("plain", 5), "sanitize: ASCII is clean");
	UNIT_OK(ao_llm_text_is_clean("caf\xC3\xA9 \xF0\x9F\x98\x80", 10), "sanitize: well-formed UTF-8 is clean");
	UNIT_OK(!ao_llm_text_is_clean("a\0b", 3), "sanitize: a NUL is not clean");
	UNIT_OK(!ao_llm_text_is_clean("GIF89a\x01\x00\xff", 9), "sanitize: binary bytes are not clean");
	UNIT_OK(!ao_llm_text_is_clean("\xED\xA0\x80", 3), "sanitize: an encoded surrogate is not clean");
	UNIT_OK(!ao_llm_text_is_clean("\xC0\xAF", 2), "sanitize: an overlong form is not clean");
	UNIT_OK(!ao_llm_text_is_clean("\xC3", 1), "sanitize: a cut sequence is not clean");
	c = ao_llm_text_sanitize("a\0b\xC3", 4, &len);
	UNIT_OK(len == 8 && memcmp(c, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD", 8) == 0 && c[8] == '\0',
			"sanitize: NUL and a cut sequence become U+FFFD");
	free(c);

	/* (json-c itself turns a lone surrogate escape into U+FFFD) */
	v = json_tokener_parse("{\"k\": [\"x\\u0000y\", {\"\xC3\": \"ok\"}], \"n\": 1}");
	UNIT_OK(v != NULL && ao_llm_json_sanitize(v) == 2, "sanitize: a NUL string and an ill-formed key are fixed");
	UNIT_STREQ(json_object_to_json_string_ext(v, PLAIN),
			   "{\"k\":[\"x\xEF\xBF\xBDy\",{\"\xEF\xBF\xBD\":\"ok\"}],\"n\":1}",
			   "sanitize: the JSON holds U+FFFD in their place");
	json_object_put(v);

	/* keys: \u0000 escapes become \ufffd before json-c sees them (it keeps keys as C strings) */
	c = ao_json_text_without_nul("{\"a\\u0000b\": 1, \"a\": 2, \"s\": \"\\\\u0000\"}",
								 strlen("{\"a\\u0000b\": 1, \"a\": 2, \"s\": \"\\\\u0000\"}"));
	UNIT_STREQ(c, "{\"a\\ufffdb\": 1, \"a\": 2, \"s\": \"\\\\u0000\"}",
			   "without NUL: a \\u0000 escape is rewritten, an escaped backslash followed by u0000 is not");
	free(c);
	UNIT_OK(ao_json_text_without_nul("{\"a\": \"b\"}", strlen("{\"a\": \"b\"}")) == NULL, "without NUL: NULL when there is none");
	/* a tool call whose arguments carry such a key: both keys arrive */
	r = decode_str(AO_LLM_OPENAI, false,
				   OA_CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
							"\"arguments\":\"{\\\"role\\\":\\\"user\\\",\\\"role\\\\u0000x\\\":\\\"admin\\\"}\"}}]}")
				   OA_FINISH("tool_calls") OA("[DONE]"), NULL, &ok);
	UNIT_OK(ok && r.n_tool_calls == 1 && json_object_object_length(r.tool_calls[0].arguments) == 2 &&
			strcmp(json_object_get_string(json_object_object_get(r.tool_calls[0].arguments, "role")), "user") == 0,
			"without NUL: a tool call's \"role\\u0000x\" does not overwrite its \"role\"");
	ao_llm_result_free(&r);

	/* a streamed reply with \u0000 in its text: decoded, and clean */
	r = decode_str(AO_LLM_OPENAI, false,
				   OA_CHUNK("{\"content\":\"nul:\\u0000!\"}") OA_FINISH("stop") OA("[DONE]"), NULL, &ok);
	UNIT_OK(ok && r.text_len == 8 && memcmp(r.text, "nul:\xEF\xBF\xBD!", 8) == 0,
			"sanitize: \\u0000 in streamed text becomes U+FFFD");
	ao_llm_result_free(&r);
	r = decode_str(AO_LLM_OPENAI, true,
				   OA_CHUNK("{\"content\":\"{\\\"a\\\": \\\"x\\\\u0000\\\"}\"}") OA_FINISH("stop") OA("[DONE]"), NULL, &ok);
	UNIT_OK(ok && r.structured != NULL &&
			strcmp(json_object_get_string(json_object_object_get(r.structured, "a")), "x\xEF\xBF\xBD") == 0,
			"sanitize: \\u0000 inside structured output becomes U+FFFD");
	ao_llm_result_free(&r);

	/* an error chunk that carries usage (recorded from OpenRouter) */
	r = decode_str(AO_LLM_OPENAI, false,
				   OA_CHUNK("{\"content\":\"Hi\"}")
				   OA("{\"error\":{\"code\":400,\"message\":\"Provider returned error\"},"
					  "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}"), NULL, &ok);
	UNIT_OK(!ok && r.error.kind == AO_LLM_ERR_PROVIDER && !r.error.retryable,
			"provider error coded 400 in a stream is not retryable");
	UNIT_OK(strstr(r.error.message, "400") != NULL, "provider error coded 400: the message names the code");
	UNIT_OK(r.usage.input_tokens == 12 && r.usage.output_tokens == 3, "an error chunk's usage is kept");
	ao_llm_result_free(&r);
	expect_error("provider error coded \"429\"", AO_LLM_OPENAI, false,
				 OA("{\"error\":{\"code\":\"429\",\"message\":\"slow down\"}}"), AO_LLM_ERR_PROVIDER, true, "429");
	expect_error("provider error coded 408", AO_LLM_OPENAI, false,
				 OA("{\"error\":{\"code\":408,\"message\":\"timeout\"}}"), AO_LLM_ERR_PROVIDER, true, "408");
	expect_error("provider error coded 409", AO_LLM_OPENAI, false,
				 OA("{\"error\":{\"code\":409,\"message\":\"conflict\"}}"), AO_LLM_ERR_PROVIDER, true, NULL);
	expect_error("provider error coded 502", AO_LLM_OPENAI, false,
				 OA("{\"error\":{\"code\":502,\"message\":\"upstream\"}}"), AO_LLM_ERR_PROVIDER, true, NULL);
	expect_error("provider error coded 404", AO_LLM_OPENAI, false,
				 OA("{\"error\":{\"code\":404,\"message\":\"no such model\"}}"), AO_LLM_ERR_PROVIDER, false, NULL);
	expect_error("provider error with status 422", AO_LLM_OPENAI, false,
				 OA("{\"error\":{\"status\":422,\"message\":\"bad\"}}"), AO_LLM_ERR_PROVIDER, false, NULL);
	{
		ao_llm_error e;

		const char *body400 = "{\"error\":{\"message\":\"bad\",\"type\":\"server_error\"}}";

		ao_llm_classify_http(AO_LLM_OPENAI, 400, body400, strlen(body400), NULL, 0, &e);
		UNIT_OK(!e.retryable, "HTTP 400 is not retryable");
		ao_llm_classify_http(AO_LLM_OPENAI, 425, NULL, 0, NULL, 0, &e);
		UNIT_OK(!e.retryable, "HTTP 425 is not retryable (only 408, 409, 429 of the 4xx are)");
		ao_llm_classify_http(AO_LLM_OPENAI, 409, NULL, 0, NULL, 0, &e);
		UNIT_OK(e.retryable, "HTTP 409 is retryable");
	}
}
/* ---------------------------------------------------------------------- */
/* What a finished request comes to (ao_llm_finish_reply)                 */
/* ---------------------------------------------------------------------- */

static ao_llm_reply_outcome
finish_reply(const char *stream, int curl_code, const char *transport_error, long status,
			 const char *body, ao_llm_result *res, ao_llm_error *e)
{
	ao_llm_spec spec = {AO_LLM_OPENAI, true, false, false};
	ao_llm_decoder *d = ao_llm_decoder_new(&spec, NULL, NULL, NULL, NULL);
	ao_llm_reply reply = {AO_LLM_OPENAI, false, curl_code, transport_error, status,
	body, body ? strlen(body) : 0, NULL, 0};
	ao_llm_reply_outcome o;

	if (stream)
		ao_llm_decoder_feed(d, stream, strlen(stream));
	o = ao_llm_finish_reply(&reply, d, res, e);
	ao_llm_decoder_free(d);
	return o;
}

static void
test_finish_reply(void)
{
	static const char answer[] =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}],"
		"\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
	static const char tool_call[] =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\","
		"\"function\":{\"name\":\"x\",\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"%s\"}]}\n\ndata: [DONE]\n\n";
	char		buf[1024];
	ao_llm_result res;
	ao_llm_error e;

	UNIT_OK(finish_reply(answer, 0, NULL, 200, NULL, &res, &e) == AO_LLM_REPLY_ANSWER &&
			res.text_len == 2 && res.usage.input_tokens == 3, "a clean answer is the answer, usage taken");
	ao_llm_result_free(&res);

	snprintf(buf, sizeof(buf), tool_call, "tool_calls");
	UNIT_OK(finish_reply(buf, 0, NULL, 200, NULL, &res, &e) == AO_LLM_REPLY_TOOL_CALLS && res.n_tool_calls == 1,
			"tool calls are run");
	ao_llm_result_free(&res);

	snprintf(buf, sizeof(buf), tool_call, "length");
	UNIT_OK(finish_reply(buf, 0, NULL, 200, NULL, &res, &e) == AO_LLM_REPLY_CUT_OFF,
			"tool calls cut off by max_tokens are a failure of their own");
	ao_llm_result_free(&res);

	UNIT_OK(finish_reply(NULL, 7, "Failed to connect", 0, NULL, &res, &e) == AO_LLM_REPLY_FAILED &&
			e.kind == AO_LLM_ERR_TRANSPORT && e.retryable && res.n_tool_calls == 0 && res.text == NULL,
			"no connection: a retryable transport failure, nothing decoded");

	UNIT_OK(finish_reply(NULL, 0, NULL, 429, "{\"error\": {\"message\": \"slow down\"}}", &res, &e) == AO_LLM_REPLY_FAILED &&
			e.kind == AO_LLM_ERR_HTTP && e.retryable && e.http_status == 429, "429: retryable");
	UNIT_OK(finish_reply(NULL, 0, NULL, 400, "{\"error\": {\"message\": \"bad\"}}", &res, &e) == AO_LLM_REPLY_FAILED &&
			!e.retryable, "400: permanent");

	UNIT_OK(finish_reply("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"h", 56, "Recv failure", 200, NULL,
						 &res, &e) == AO_LLM_REPLY_FAILED && e.kind == AO_LLM_ERR_TRANSPORT && e.retryable,
			"a stream broken off by the transport: the transport's retryable failure");
	ao_llm_result_free(&res);

	UNIT_OK(finish_reply("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"h", 0, NULL, 200, NULL,
						 &res, &e) == AO_LLM_REPLY_FAILED && e.retryable,
			"a stream that ends early: retryable");
	ao_llm_result_free(&res);

	UNIT_OK(finish_reply("data: {not json}\n\n", 0, NULL, 200, NULL, &res, &e) == AO_LLM_REPLY_FAILED && e.retryable,
			"a stream that breaks the protocol: retryable");
	ao_llm_result_free(&res);
}


int
main(void)
{
	test_toolmap();
	test_build_golden();
	test_build_openai();
	test_build_anthropic();
	test_build_errors();
	test_headers();
	test_fixtures();
	test_fixture_details();
	test_stream_vs_plain();
	test_malformed();
	test_fuzz();
	test_json_stream();
	test_cost();
	test_classify();
	test_conversation_loop();
	test_sanitize();
	test_http_headers();
	test_finish_reply();
	return unit_done();
}
