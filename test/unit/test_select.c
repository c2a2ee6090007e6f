/*-------------------------------------------------------------------------
 *
 * test_select.c
 *	  Unit tests of ao_select: input features, each match feature, the
 *	  priority chain, the default decision and the rules document checks.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/test_select.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_select.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Problem callback: append "path: message\n" to the ao_buf in arg. */
static void
collect(void *arg, const char *path, const char *message)
{
	ao_buf_printf((ao_buf *) arg, "%s: %s\n", path, message);
}

/* Does match (JSON text) hold for input (JSON text)? 1, 0 or -1. */
static int
matches(const char *match, const char *input)
{
	json_object *m = json_tokener_parse(match);
	json_object *in = json_tokener_parse(input);
	ao_select_facts f;
	char	   *error = NULL;
	int			r;

	ao_select_facts_init(&f, in);
	r = ao_select_match(m, in, &f, &error);
	if (error)
		printf("#   %s\n", error);
	free(error);
	ao_select_facts_free(&f);
	json_object_put(m);
	json_object_put(in);
	return r;
}

/* The facts of an input (JSON text); the caller frees them. */
static ao_select_facts
facts_of(const char *input)
{
	json_object *in = json_tokener_parse(input);
	ao_select_facts f;

	ao_select_facts_init(&f, in);
	json_object_put(in);
	return f;
}

static void
test_facts(void)
{
	ao_select_facts f;

	f = facts_of("{\"prompt\": \"What is the capital of France?\"}");
	UNIT_STREQ(f.text, "What is the capital of France?", "facts: prompt is the text");
	UNIT_STREQ(f.intent, "question", "intent: question mark");
	UNIT_OK(f.words == 6, "facts: words counted");
	UNIT_OK(f.complexity < 10, "complexity: short question is low");
	ao_select_facts_free(&f);

	f = facts_of("{\"prompt\": \"how do I reset a password\"}");
	UNIT_STREQ(f.intent, "question", "intent: interrogative word without '?'");
	ao_select_facts_free(&f);

	f = facts_of("{\"prompt\": \"Summarize this report\"}");
	UNIT_STREQ(f.intent, "command", "intent: imperative is a command");
	ao_select_facts_free(&f);

	f = facts_of("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, "
				 "{\"role\": \"assistant\", \"content\": \"hello\"}, "
				 "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"and now?\"}]}]}");
	UNIT_STREQ(f.intent, "conversation", "intent: several messages are a conversation");
	UNIT_STREQ(f.text, "and now?", "facts: last user message's parts are the text");
	ao_select_facts_free(&f);

	f = facts_of("{\"prompt\": \"Hello there!\"}");
	UNIT_STREQ(f.intent, "conversation", "intent: a short greeting is conversation");
	ao_select_facts_free(&f);

	f = facts_of("{\"n\": 1}");
	UNIT_STREQ(f.intent, "none", "intent: no text");
	UNIT_OK(f.complexity == 0, "complexity: no text is 0");
	ao_select_facts_free(&f);

	f = facts_of("{\"goal\": \"What is 2+2?\"}");
	UNIT_OK(f.words == 3 && strcmp(f.text, "What is 2+2?") == 0, "facts: a planner's goal is read like a prompt");
	ao_select_facts_free(&f);

	f = facts_of("{\"prompt\": \"First load the sales data, then compute totals by region and "
				 "afterwards draw a chart; finally write a summary:\\n- revenue\\n- margin\\n1. north\\n2. south\"}");
	UNIT_OK(f.complexity >= 50, "complexity: clauses, enumerations and steps raise the score");
	ao_select_facts_free(&f);
}

static void
test_match_features(void)
{
	const char *q = "{\"prompt\": \"Where is my Invoice for order 42?\", \"customer\": 7}";

	UNIT_OK(matches("{}", q) == 1, "match: empty matches everything");
	UNIT_OK(matches("{\"keywords\": [\"refund\", \"invoice\"]}", q) == 1, "keywords: any, case-insensitive");
	UNIT_OK(matches("{\"keywords\": [\"voice\"]}", q) == 0, "keywords: word boundaries");
	UNIT_OK(matches("{\"keywords\": {\"all\": [\"invoice\", \"order\"]}}", q) == 1, "keywords: all present");
	UNIT_OK(matches("{\"keywords\": {\"all\": [\"invoice\", \"refund\"]}}", q) == 0, "keywords: all, one missing");
	UNIT_OK(matches("{\"keywords\": {\"any\": [\"refund\"], \"all\": [\"invoice\"]}}", q) == 0,
			"keywords: any and all both apply");
	UNIT_OK(matches("{\"keywords\": [\"my invoice\"]}", q) == 1, "keywords: phrases");
	UNIT_OK(matches("{\"keywords\": [\"Über\"]}", "{\"prompt\": \"über alles\"}") == 1,
			"keywords: Unicode case (Über / über)");
	UNIT_OK(matches("{\"keywords\": [\"über\"]}", "{\"prompt\": \"ÜBER ALLES\"}") == 1,
			"keywords: Unicode case (über / ÜBER)");
	UNIT_OK(matches("{\"keywords\": [\"été\"]}", "{\"prompt\": \"Un Été chaud\"}") == 1,
			"keywords: Unicode case (été / Été)");
	UNIT_OK(matches("{\"keywords\": [\"데이터\"]}", "{\"prompt\": \"데이터를 분석해줘\"}") == 1,
			"keywords: a Korean word with its particle still matches");
	UNIT_OK(matches("{\"keywords\": [\"a.b\"]}", "{\"prompt\": \"see axb\"}") == 0,
			"keywords: punctuation in a keyword is literal");
	UNIT_OK(matches("{\"keywords\": [\"(x\"]}", "{\"prompt\": \"call (x here\"}") == 1,
			"keywords: a keyword that would be a bad regex is taken literally");
	UNIT_OK(matches("{\"regex\": \"order [0-9]+\"}", q) == 1, "regex: found");
	UNIT_OK(matches("{\"regex\": [\"^refund\", \"(?i)INVOICE\"]}", q) == 1, "regex: any of a list");
	UNIT_OK(matches("{\"regex\": \"invoice\"}", q) == 0, "regex: case-sensitive by default");
	UNIT_OK(matches("{\"regex\": \"(\"}", q) == -1, "regex: a bad pattern is an error");
	UNIT_OK(matches("{\"regex\": \"(a+)+$\"}",
					"{\"prompt\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab\"}") == -1,
			"regex: catastrophic backtracking stops at the match limit");
	UNIT_OK(matches("{\"intent\": \"question\"}", q) == 1, "intent: question");
	UNIT_OK(matches("{\"intent\": [\"command\", \"conversation\"]}", q) == 0, "intent: not in the list");
	UNIT_OK(matches("{\"complexity\": {\"max\": 20}}", q) == 1, "complexity: below max");
	UNIT_OK(matches("{\"complexity\": {\"min\": 21}}", q) == 0, "complexity: below min");
	UNIT_OK(matches("{\"keys\": [\"customer\", \"prompt\"]}", q) == 1, "keys: all present");
	UNIT_OK(matches("{\"keys\": [\"customer\", \"region\"]}", q) == 0, "keys: one missing");
	UNIT_OK(matches("{\"tools\": [\"crm.lookup\"]}",
					"{\"prompt\": \"x\", \"tools\": [\"crm.lookup\"]}") == 1, "tools: required by the input");
	UNIT_OK(matches("{\"tools\": [\"crm.lookup\"]}",
					"{\"prompt\": \"x\", \"tools\": [{\"name\": \"crm.lookup\"}]}") == 1, "tools: required as objects");
	UNIT_OK(matches("{\"tools\": [\"chart.create\"]}",
					"{\"prompt\": \"use chart.create for the totals\"}") == 1, "tools: mentioned in the text");
	UNIT_OK(matches("{\"tools\": {\"all\": [\"chart.create\", \"crm.lookup\"]}}",
					"{\"prompt\": \"use chart.create\"}") == 0, "tools: all, one missing");
	UNIT_OK(matches("{\"intent\": \"question\", \"keywords\": [\"refund\"]}", q) == 0,
			"match: every feature must hold");
}

static void
test_chain_and_default(void)
{
	json_object *m1 = json_tokener_parse("{\"keywords\": [\"report\"]}");
	json_object *m2 = json_tokener_parse("{\"intent\": \"question\"}");
	json_object *m3 = json_tokener_parse("{\"regex\": \"(\"}");
	ao_select_rule rules[3] = {
		{"broken", m3, "simple", NULL},
		{"reports", m1, "fixed", "monthly"},
		{"questions", m2, "simple", NULL},
	};
	json_object *in = json_tokener_parse("{\"prompt\": \"Can I get the report?\"}");
	ao_select_facts f;
	ao_select_decision d;
	ao_buf		errs;
	int			i;

	ao_buf_init(&errs);
	ao_select_facts_init(&f, in);
	i = ao_select_rules(rules, 3, in, &f, &d, collect, &errs);
	UNIT_OK(i == 1, "chain: the first matching rule in order decides");
	UNIT_STREQ(d.orchestration, "fixed", "chain: the rule's orchestration");
	UNIT_STREQ(d.workflow, "monthly", "chain: the rule's workflow");
	UNIT_STREQ(d.rule, "reports", "chain: the rule's name");
	UNIT_STREQ(d.source, "rules", "chain: source rules");
	UNIT_STREQ(errs.data, "rule \"broken\": regular expression \"(\" does not compile: missing closing parenthesis at offset 1\n",
			   "chain: a failing rule is reported and skipped");
	free(d.reason);
	i = ao_select_rules(rules + 2, 1, in, &f, &d, NULL, NULL);
	UNIT_OK(i == 0 && strcmp(d.orchestration, "simple") == 0 && d.workflow == NULL,
			"chain: a simple rule has no workflow");
	free(d.reason);
	ao_select_facts_free(&f);
	json_object_put(in);

	in = json_tokener_parse("{\"prompt\": \"Weather?\"}");
	ao_select_facts_init(&f, in);
	UNIT_OK(ao_select_rules(rules, 1, in, &f, &d, NULL, NULL) == -1, "chain: no match");
	ao_select_default(in, "monthly", &f, &d);
	UNIT_OK(strcmp(d.orchestration, "fixed") == 0 && strcmp(d.workflow, "monthly") == 0 &&
			strcmp(d.source, "default") == 0, "default: a workflow argument means fixed");
	free(d.reason);
	ao_select_default(in, NULL, &f, &d);
	UNIT_STREQ(d.orchestration, "simple", "default: a short question is simple");
	free(d.reason);
	ao_select_facts_free(&f);
	json_object_put(in);

	in = json_tokener_parse("{\"prompt\": \"Write a poem about the sea\"}");
	ao_select_facts_init(&f, in);
	ao_select_default(in, NULL, &f, &d);
	UNIT_STREQ(d.orchestration, "planner", "default: a command is planner");
	UNIT_STREQ(d.reason, "no rule matched; not a short question (intent command, 6 words, complexity 1)",
			   "default: the reason names the features");
	free(d.reason);
	ao_select_facts_free(&f);
	json_object_put(in);

	json_object_put(m1);
	json_object_put(m2);
	json_object_put(m3);
	ao_buf_free(&errs);
}

static void
test_check_rules(void)
{
	json_object *doc = json_tokener_parse(
										  "{\"rules\": [{\"name\": \"a\", \"match\": {}, \"orchestration\": \"simple\"},"
										  " {\"name\": \"a\", \"match\": {\"regex\": [\"ok\", \"[\"]}, \"orchestration\": \"fixed\"}]}");
	ao_buf		out;

	ao_buf_init(&out);
	UNIT_OK(ao_select_check_rules(doc, collect, &out) == 3, "check: three problems");
	UNIT_STREQ(out.data,
			   "/rules/1/name: rule name \"a\" is also used by rule 0\n"
			   "/rules/1: a fixed rule needs a \"workflow\"\n"
			   "/rules/1/match/regex/1: regular expression \"[\" does not compile: missing terminating ] for character class at offset 1\n",
			   "check: duplicate name, fixed without workflow, bad regex");
	json_object_put(doc);
	ao_buf_free(&out);
}

int
main(void)
{
	test_facts();
	test_match_features();
	test_chain_and_default();
	test_check_rules();
	return unit_done();
}
