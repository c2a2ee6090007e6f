/*-------------------------------------------------------------------------
 *
 * ao_select.h
 *	  Rule-based orchestration selection, without PostgreSQL.
 *
 * The selector looks at a run's input and decides which orchestration
 * type runs it. This file holds the part that needs no database: the
 * features derived from the input (its text, intent and complexity
 * score), the test of one rule's "match" object against an input, the
 * priority chain over a list of rules, the default decision when no rule
 * matches, and the semantic check of a rules document (beyond its JSON
 * Schema, schemas/SelectorRules.schema.json).
 *
 * Features:
 *	- text: the input's "prompt" (a string), else the content of the last
 *	  message of "messages" whose role is "user" (a string, or the "text"
 *	  of its parts), else "".
 *	- intent: "conversation" when "messages" holds more than one message
 *	  or the text is a short greeting (hi, hello, thanks, ..., at most four
 *	  words); else "question" when the text ends with '?' or begins with an
 *	  interrogative word (what, how, why, ... is, can, should, ...); else
 *	  "command" when there is text; else "none".
 *	- complexity, 0..100: words/4 (at most 40) + 5 per clause connector
 *	  (";", " and ", " then ", " but ", " because ", " if ", " while ",
 *	  " unless ", at most 20) + 5 per enumeration item (list lines,
 *	  "1." / "2)" markers, commas, at most 20) + 5 per step word (first,
 *	  second, next, finally, afterwards, "step", at most 20).
 *
 * A rule's match object: every key present must hold (AND); an empty
 * match matches everything.
 *	keywords	array (any) or {"any": [...], "all": [...]}: words or phrases
 *				found in the text, case-insensitively (ASCII), at word
 *				boundaries
 *	regex		string or array (any): PCRE2 pattern found in the text
 *				(UTF-8; match and depth limits as the JSON Schema validator)
 *	intent		string or array: one of question, command, conversation
 *	complexity	{"min": n, "max": n}: inclusive range of the score
 *	tools		array (any) or {"any": [...], "all": [...]}: tool names
 *				required by the input ("tools": an array of names) or
 *				mentioned in its text
 *	keys		array: top-level input keys that must all be present
 *
 * Rules are tried in the order given (the caller sorts them: highest
 * priority first, then by id); the first match decides.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_select.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_SELECT_H
#define AO_SELECT_H

#include <json-c/json.h>

#include "ao_core.h"

/* A short question: intent question, at most this many words and score. */
#define AO_SELECT_SHORT_WORDS 40
#define AO_SELECT_SHORT_COMPLEXITY 30

/* What the selector knows about an input. text is malloc'd. */
typedef struct ao_select_facts
{
	char	   *text;			/* the text the rules look at */
	const char *intent;			/* question | command | conversation | none */
	int			words;
	int			complexity;		/* 0..100 */
} ao_select_facts;

/* One rule, as the caller loaded it (strings borrowed). */
typedef struct ao_select_rule
{
	const char *name;
	json_object *match;
	const char *orchestration;
	const char *workflow;		/* fixed only */
} ao_select_rule;

/* A decision. reason is malloc'd; the other strings are borrowed/static. */
typedef struct ao_select_decision
{
	const char *orchestration;
	const char *workflow;
	double		confidence;
	const char *source;			/* "rules" or "default" */
	const char *rule;			/* the matching rule's name, or NULL */
	char	   *reason;
} ao_select_decision;

extern void ao_select_facts_init(ao_select_facts *f, json_object *input);
extern void ao_select_facts_free(ao_select_facts *f);

/*
 * Does match hold for input? 1 yes, 0 no, -1 when a regular expression
 * could not be run (bad pattern, match limit): *error (malloc'd) says why.
 */
extern int	ao_select_match(json_object *match, json_object *input,
							const ao_select_facts *facts, char **error);

/*
 * Try rules in order; the first that matches fills *d (source "rules")
 * and its index is returned. -1 when none matched; a rule whose test
 * fails with an error counts as not matching, and the error goes to cb.
 */
extern int	ao_select_rules(const ao_select_rule *rules, size_t n, json_object *input,
							const ao_select_facts *facts, ao_select_decision *d,
							ao_problem_fn cb, void *arg);

/*
 * The decision without a matching rule: a workflow argument means fixed;
 * an input that is one llm request (it has response_schema, tools, model,
 * system, temperature or max_tokens) or a short question means simple;
 * anything else planner.
 */
extern void ao_select_default(json_object *input, const char *workflow,
							  const ao_select_facts *facts, ao_select_decision *d);

/*
 * Semantic problems of a rules document that passed its JSON Schema:
 * duplicate names, fixed without workflow, regular expressions that do not
 * compile. Returns the number of problems reported to cb.
 */
extern int	ao_select_check_rules(json_object *doc, ao_problem_fn cb, void *arg);

#endif							/* AO_SELECT_H */
