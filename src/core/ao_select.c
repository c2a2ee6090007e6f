/*-------------------------------------------------------------------------
 *
 * ao_select.c
 *	  Rule-based orchestration selection: input features, rule matching,
 *	  the priority chain and the default decision (see ao_select.h).
 *
 * Everything here is deterministic and bounded by the input's size; the
 * only unbounded-looking work, regular expressions, runs under PCRE2's
 * match and depth limits (the JSON Schema validator's).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_select.c
 *
 *-------------------------------------------------------------------------
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "ao_select.h"
#include "ao_json_schema.h"

#include <ctype.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The text of one message's content: a string, or the "text" of its parts. */
static void
content_text(json_object *content, ao_buf *out)
{
	if (json_object_is_type(content, json_type_string))
		ao_buf_append(out, json_object_get_string(content));
	else if (json_object_is_type(content, json_type_array))
	{
		size_t		n = json_object_array_length(content);

		for (size_t i = 0; i < n; i++)
		{
			json_object *t;

			if (json_object_object_get_ex(json_object_array_get_idx(content, i), "text", &t) &&
				json_object_is_type(t, json_type_string))
			{
				if (out->len > 0)
					ao_buf_append(out, " ");
				ao_buf_append(out, json_object_get_string(t));
			}
		}
	}
}

/* Is w (lower case) the first word of s (case-insensitively)? */
static int
starts_with_word(const char *s, const char *w)
{
	size_t		n = strlen(w);

	for (size_t i = 0; i < n; i++)
		if (tolower((unsigned char) s[i]) != w[i])
			return 0;
	return !isalnum((unsigned char) s[n]);
}

/* Count occurrences of needle (lower case) in the lower-cased text. */
static int
count_of(const char *lower, const char *needle)
{
	int			c = 0;
	size_t		n = strlen(needle);

	for (const char *p = strstr(lower, needle); p; p = strstr(p + n, needle))
		c++;
	return c;
}

/* Lower-case ASCII copy of s (malloc'd). */
static char *
lower_copy(const char *s)
{
	size_t		n = strlen(s);
	char	   *l = ao_malloc(n + 1);

	for (size_t i = 0; i <= n; i++)
		l[i] = (char) tolower((unsigned char) s[i]);
	return l;
}

static int
cap(int v, int max)
{
	return v > max ? max : v;
}

/* Is the word starting at text[i] (length n) delimited by non-alnum? */
static int
at_word_boundary(const char *text, size_t i, size_t n)
{
	return (i == 0 || !isalnum((unsigned char) text[i - 1])) &&
		!isalnum((unsigned char) text[i + n]);
}

/* Does lower (lower-cased text) contain word (any case) at word boundaries? */
static int
has_word(const char *lower, const char *word)
{
	char	   *w = lower_copy(word);
	size_t		n = strlen(w);
	int			found = 0;

	if (n > 0)
		for (const char *p = strstr(lower, w); p && !found; p = strstr(p + 1, w))
			found = at_word_boundary(lower, (size_t) (p - lower), n);
	free(w);
	return found;
}

/* Fill f from input: text, intent, word count, complexity score. */
void
ao_select_facts_init(ao_select_facts *f, json_object *input)
{
	static const char *const interrogatives[] = {
		"what", "how", "why", "when", "where", "who", "whom", "whose", "which",
		"is", "are", "was", "were", "can", "could", "do", "does", "did", "should",
		"would", "will", "may", "might", "shall", "has", "have", NULL
	};
	static const char *const connectors[] = {
		";", " and ", " then ", " but ", " because ", " if ", " while ", " unless ",
		" after ", " before ", NULL
	};
	static const char *const greetings[] = {
		"hi", "hello", "hey", "thanks", "thank", "bye", "goodbye", "good", NULL
	};
	static const char *const step_words[] = {
		"first", "second", "third", "next", "finally", "afterwards", "step", "steps", NULL
	};
	json_object *v;
	ao_buf		text;
	int			nmessages = 0;
	const char *s;
	char	   *lower;
	size_t		len;
	int			clauses = 0;
	int			items = 0;
	int			steps = 0;
	int			in_word = 0;

	ao_buf_init(&text);
	ao_buf_append(&text, "");
	if (json_object_is_type(input, json_type_object))
	{
		if (json_object_object_get_ex(input, "prompt", &v) && json_object_is_type(v, json_type_string))
			ao_buf_append(&text, json_object_get_string(v));
		/* a planner's input may state its goal instead of a prompt */
		if (text.len == 0 && json_object_object_get_ex(input, "goal", &v) && json_object_is_type(v, json_type_string))
			ao_buf_append(&text, json_object_get_string(v));
		if (json_object_object_get_ex(input, "messages", &v) && json_object_is_type(v, json_type_array))
		{
			nmessages = (int) json_object_array_length(v);
			if (text.len == 0)
				for (int i = nmessages - 1; i >= 0; i--)
				{
					json_object *m = json_object_array_get_idx(v, (size_t) i);
					json_object *role;
					json_object *content;

					if (json_object_is_type(m, json_type_object) &&
						json_object_object_get_ex(m, "role", &role) &&
						json_object_is_type(role, json_type_string) &&
						strcmp(json_object_get_string(role), "user") == 0 &&
						json_object_object_get_ex(m, "content", &content))
					{
						content_text(content, &text);
						break;
					}
				}
		}
	}
	f->text = text.data;
	s = f->text;
	len = strlen(s);

	/* words */
	f->words = 0;
	for (size_t i = 0; i < len; i++)
	{
		int			sp = isspace((unsigned char) s[i]);

		if (!sp && !in_word)
			f->words++;
		in_word = !sp;
	}

	/* intent */
	while (*s && isspace((unsigned char) *s))
		s++;
	{
		size_t		end = strlen(s);

		while (end > 0 && isspace((unsigned char) s[end - 1]))
			end--;
		if (nmessages > 1)
			f->intent = "conversation";
		else if (end == 0)
			f->intent = "none";
		else
		{
			int			q = s[end - 1] == '?';
			int			greeting = 0;

			for (const char *const *w = greetings; *w && !greeting && f->words <= 4; w++)
				greeting = starts_with_word(s, *w);
			if (greeting)
			{
				f->intent = "conversation";
				goto intent_done;
			}

			for (const char *const *w = interrogatives; *w && !q; w++)
				q = starts_with_word(s, *w);
			f->intent = q ? "question" : "command";
		}
	}
intent_done:

	/* complexity */
	lower = lower_copy(f->text);
	for (const char *const *c = connectors; *c; c++)
		clauses += count_of(lower, *c);
	items += count_of(lower, ",");
	for (size_t i = 0; i < len; i++)
	{
		/* list lines: "- x", "* x", "1. x", "2) x" at the start of a line */
		if (i == 0 || lower[i - 1] == '\n')
		{
			size_t		j = i;

			while (lower[j] == ' ' || lower[j] == '\t')
				j++;
			if ((lower[j] == '-' || lower[j] == '*') && lower[j + 1] == ' ')
				items++;
			else if (isdigit((unsigned char) lower[j]))
			{
				while (isdigit((unsigned char) lower[j]))
					j++;
				if ((lower[j] == '.' || lower[j] == ')') && lower[j + 1] == ' ')
					items++;
			}
		}
	}
	for (const char *const *w = step_words; *w; w++)
		steps += has_word(lower, *w) ? 1 : 0;
	free(lower);
	f->complexity = cap(f->words / 4, 40) + cap(5 * clauses, 20) + cap(5 * items, 20) +
		cap(5 * steps, 20);
}

void
ao_select_facts_free(ao_select_facts *f)
{
	free(f->text);
	f->text = NULL;
}

/* A json value as a list: an array as is, a string as a one-element view. */
static size_t
list_len(json_object *v)
{
	if (json_object_is_type(v, json_type_array))
		return json_object_array_length(v);
	return v ? 1 : 0;
}

static const char *
list_str(json_object *v, size_t i)
{
	if (json_object_is_type(v, json_type_array))
		return json_object_get_string(json_object_array_get_idx(v, i));
	return json_object_get_string(v);
}

/* Is name one of the input's "tools" (strings, or objects with "name")? */
static int
tool_required(json_object *input, const char *name)
{
	json_object *tools;

	if (!json_object_object_get_ex(input, "tools", &tools) ||
		!json_object_is_type(tools, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(tools); i++)
	{
		json_object *t = json_object_array_get_idx(tools, i);
		json_object *n;

		if (json_object_is_type(t, json_type_object) && json_object_object_get_ex(t, "name", &n))
			t = n;
		if (json_object_is_type(t, json_type_string) && strcmp(json_object_get_string(t), name) == 0)
			return 1;
	}
	return 0;
}

/*
 * An any/all test: spec is an array (any) or {"any": [...], "all": [...]};
 * test(ctx, item) says whether one item holds.
 */
static int
any_all(json_object *spec, int (*test) (void *ctx, const char *item), void *ctx)
{
	json_object *any = NULL;
	json_object *all = NULL;

	if (json_object_is_type(spec, json_type_object))
	{
		json_object_object_get_ex(spec, "any", &any);
		json_object_object_get_ex(spec, "all", &all);
	}
	else
		any = spec;
	if (any && list_len(any) > 0)
	{
		int			hit = 0;

		for (size_t i = 0; i < list_len(any) && !hit; i++)
			hit = test(ctx, list_str(any, i));
		if (!hit)
			return 0;
	}
	if (all)
		for (size_t i = 0; i < list_len(all); i++)
			if (!test(ctx, list_str(all, i)))
				return 0;
	return 1;
}

typedef struct match_ctx
{
	json_object *input;
	const char *text;			/* the input's text, as written */
	const char *lower;
} match_ctx;

static int	regex_find(const char *pattern, const char *text, uint32_t extra_options, char **error);

/*
 * Does text contain word at word boundaries (no ASCII letter or digit on
 * either side: a keyword matches inside "데이터를" as it did before), in
 * any case -- Unicode case, so "Über" matches "über" and "ÜBER" (PCRE2 in
 * UTF mode, the word quoted)? A word that cannot be matched matches
 * nothing.
 */
static int
has_keyword(const char *text, const char *word)
{
	ao_buf		pattern;
	char	   *error = NULL;
	int			found;

	if (word[0] == '\0')
		return 0;
	ao_buf_init(&pattern);
	ao_buf_append(&pattern, "(?<![A-Za-z0-9])");
	for (const char *c = word; *c; c++)
	{
		/* PCRE2 takes any ASCII non-alphanumeric escaped as itself */
		if ((unsigned char) *c < 0x80 && !isalnum((unsigned char) *c))
			ao_buf_append(&pattern, "\\");
		ao_buf_append_n(&pattern, c, 1);
	}
	ao_buf_append(&pattern, "(?![A-Za-z0-9])");
	found = regex_find(pattern.data, text, PCRE2_CASELESS, &error);
	ao_buf_free(&pattern);
	free(error);
	return found == 1;
}

static int
test_keyword(void *ctx, const char *item)
{
	return has_keyword(((match_ctx *) ctx)->text, item);
}

static int
test_tool(void *ctx, const char *item)
{
	match_ctx  *m = ctx;

	return tool_required(m->input, item) || has_keyword(m->text, item);
}

/*
 * Run pattern against text (PCRE2, UTF-8, plus extra_options): 1 found,
 * 0 not, -1 error (message in *error).
 */
static int
regex_find(const char *pattern, const char *text, uint32_t extra_options, char **error)
{
	int			errcode;
	PCRE2_SIZE	erroffset;
	uint32_t	options = PCRE2_UTF | extra_options;
	pcre2_code *code;
	pcre2_match_data *md;
	pcre2_match_context *mc;
	int			rc;
	ao_buf		err;

#ifdef PCRE2_MATCH_INVALID_UTF
	options |= PCRE2_MATCH_INVALID_UTF;
#endif
	code = pcre2_compile((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED, options, &errcode,
						 &erroffset, NULL);
	if (code == NULL)
	{
		PCRE2_UCHAR msg[256];

		ao_buf_init(&err);
		if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
			strcpy((char *) msg, "unknown error");
		ao_buf_printf(&err, "regular expression \"%s\" does not compile: %s at offset %zu",
					  pattern, (char *) msg, (size_t) erroffset);
		*error = err.data;
		return -1;
	}
	md = pcre2_match_data_create(1, NULL);
	mc = pcre2_match_context_create(NULL);
	if (md == NULL || mc == NULL)
		ao_oom(0);
	pcre2_set_match_limit(mc, AO_JSON_SCHEMA_MATCH_LIMIT);
	pcre2_set_depth_limit(mc, AO_JSON_SCHEMA_DEPTH_LIMIT);
	rc = pcre2_match(code, (PCRE2_SPTR) text, strlen(text), 0, 0, md, mc);
	pcre2_match_data_free(md);
	pcre2_match_context_free(mc);
	pcre2_code_free(code);
	if (rc >= 0)
		return 1;
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	{
		PCRE2_UCHAR msg[256];

		if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0)
			snprintf((char *) msg, sizeof(msg), "error %d", rc);
		ao_buf_init(&err);
		ao_buf_printf(&err, "regular expression \"%s\" could not be run: %s", pattern, (char *) msg);
	}
	*error = err.data;
	return -1;
}

int
ao_select_match(json_object *match, json_object *input, const ao_select_facts *facts,
				char **error)
{
	json_object *v;
	match_ctx	m;
	char	   *lower;
	int			result = 1;

	*error = NULL;
	if (!json_object_is_type(match, json_type_object))
		return 1;
	lower = lower_copy(facts->text);
	m.input = input;
	m.lower = lower;
	m.text = facts->text;

	if (json_object_object_get_ex(match, "intent", &v))
	{
		int			hit = 0;

		for (size_t i = 0; i < list_len(v) && !hit; i++)
			hit = strcmp(list_str(v, i), facts->intent) == 0;
		result = hit;
	}
	if (result && json_object_object_get_ex(match, "complexity", &v))
	{
		json_object *b;

		if (json_object_object_get_ex(v, "min", &b) && facts->complexity < json_object_get_double(b))
			result = 0;
		if (json_object_object_get_ex(v, "max", &b) && facts->complexity > json_object_get_double(b))
			result = 0;
	}
	if (result && json_object_object_get_ex(match, "keys", &v))
		for (size_t i = 0; i < list_len(v) && result; i++)
			result = json_object_is_type(input, json_type_object) &&
				json_object_object_get_ex(input, list_str(v, i), NULL);
	if (result && json_object_object_get_ex(match, "keywords", &v))
		result = any_all(v, test_keyword, &m);
	if (result && json_object_object_get_ex(match, "tools", &v))
		result = any_all(v, test_tool, &m);
	if (result && json_object_object_get_ex(match, "regex", &v))
	{
		int			hit = 0;

		for (size_t i = 0; i < list_len(v) && hit == 0; i++)
			hit = regex_find(list_str(v, i), facts->text, 0, error);
		result = hit;
	}
	free(lower);
	return result;
}

int
ao_select_rules(const ao_select_rule *rules, size_t n, json_object *input,
				const ao_select_facts *facts, ao_select_decision *d,
				ao_problem_fn cb, void *arg)
{
	for (size_t i = 0; i < n; i++)
	{
		char	   *error = NULL;
		int			r = ao_select_match(rules[i].match, input, facts, &error);

		if (r < 0)
		{
			ao_buf		path;

			ao_buf_init(&path);
			ao_buf_printf(&path, "rule \"%s\"", rules[i].name);
			if (cb)
				cb(arg, path.data, error);
			ao_buf_free(&path);
			free(error);
			continue;
		}
		if (r == 1)
		{
			ao_buf		reason;

			ao_buf_init(&reason);
			ao_buf_printf(&reason, "rule \"%s\" matched (intent %s, complexity %d)",
						  rules[i].name, facts->intent, facts->complexity);
			d->orchestration = rules[i].orchestration;
			d->workflow = strcmp(rules[i].orchestration, "fixed") == 0 ? rules[i].workflow : NULL;
			d->confidence = 1.0;
			d->source = "rules";
			d->rule = rules[i].name;
			d->reason = reason.data;
			return (int) i;
		}
	}
	return -1;
}

/*
 * The first key of input that only a single llm request has (a response
 * schema, tools offered to the model, a model, a system prompt, sampling
 * settings), or NULL.
 */
static const char *
llm_request_key(json_object *input)
{
	static const char *const keys[] = {"response_schema", "tools", "model", "system", "temperature", "max_tokens", NULL};

	if (input == NULL || !json_object_is_type(input, json_type_object))
		return NULL;
	for (const char *const *k = keys; *k; k++)
		if (json_object_object_get_ex(input, *k, NULL))
			return *k;
	return NULL;
}

void
ao_select_default(json_object *input, const char *workflow, const ao_select_facts *facts,
				  ao_select_decision *d)
{
	ao_buf		reason;
	const char *llm_key;

	ao_buf_init(&reason);
	d->source = "default";
	d->rule = NULL;
	d->workflow = NULL;
	if (workflow)
	{
		d->orchestration = "fixed";
		d->workflow = workflow;
		d->confidence = 1.0;
		ao_buf_printf(&reason, "no rule matched; a workflow was named");
	}
	else if ((llm_key = llm_request_key(input)) != NULL)
	{
		/* response_schema, tools, model... describe one llm call: simple */
		d->orchestration = "simple";
		d->confidence = 0.8;
		ao_buf_printf(&reason, "no rule matched; the input is one llm request (it has \"%s\")", llm_key);
	}
	else if (strcmp(facts->intent, "question") == 0 && facts->words <= AO_SELECT_SHORT_WORDS &&
			 facts->complexity <= AO_SELECT_SHORT_COMPLEXITY)
	{
		d->orchestration = "simple";
		d->confidence = 0.8;
		ao_buf_printf(&reason, "no rule matched; a short question (%d word%s, complexity %d)",
					  facts->words, facts->words == 1 ? "" : "s", facts->complexity);
	}
	else
	{
		d->orchestration = "planner";
		d->confidence = 0.5;
		ao_buf_printf(&reason, "no rule matched; not a short question (intent %s, %d word%s, complexity %d)",
					  facts->intent, facts->words, facts->words == 1 ? "" : "s", facts->complexity);
	}
	d->reason = reason.data;
}

/* Report the regular expressions of v (string or array) that do not compile. */
static int
check_regexes(json_object *v, ao_buf *path, ao_problem_fn cb, void *arg)
{
	int			problems = 0;
	size_t		base = path->len;

	for (size_t i = 0; i < list_len(v); i++)
	{
		char	   *error = NULL;

		if (json_object_is_type(v, json_type_array))
			ao_jsonptr_push_index(path, i);
		if (regex_find(list_str(v, i), "", 0, &error) < 0 && strstr(error, "does not compile"))
		{
			cb(arg, path->data, error);
			problems++;
		}
		free(error);
		ao_buf_truncate(path, base);
	}
	return problems;
}

int
ao_select_check_rules(json_object *doc, ao_problem_fn cb, void *arg)
{
	json_object *rules;
	int			problems = 0;
	ao_buf		path;
	size_t		n;

	if (!json_object_object_get_ex(doc, "rules", &rules) ||
		!json_object_is_type(rules, json_type_array))
		return 0;
	ao_buf_init(&path);
	n = json_object_array_length(rules);
	for (size_t i = 0; i < n; i++)
	{
		json_object *r = json_object_array_get_idx(rules, i);
		json_object *name = NULL;
		json_object *orch = NULL;
		json_object *match = NULL;
		json_object *re;

		ao_buf_reset(&path);
		ao_buf_append(&path, "/rules");
		ao_jsonptr_push_index(&path, i);
		json_object_object_get_ex(r, "name", &name);
		json_object_object_get_ex(r, "orchestration", &orch);
		for (size_t j = 0; j < i && name; j++)
		{
			json_object *other;

			if (json_object_object_get_ex(json_object_array_get_idx(rules, j), "name", &other) &&
				strcmp(json_object_get_string(other), json_object_get_string(name)) == 0)
			{
				size_t		base = path.len;
				ao_buf		msg;

				ao_buf_init(&msg);
				ao_buf_printf(&msg, "rule name \"%s\" is also used by rule %zu",
							  json_object_get_string(name), j);
				ao_jsonptr_push_key(&path, "name");
				cb(arg, path.data, msg.data);
				ao_buf_free(&msg);
				ao_buf_truncate(&path, base);
				problems++;
				break;
			}
		}
		if (orch && strcmp(json_object_get_string(orch), "fixed") == 0 &&
			!json_object_object_get_ex(r, "workflow", NULL))
		{
			cb(arg, path.data, "a fixed rule needs a \"workflow\"");
			problems++;
		}
		if (json_object_object_get_ex(r, "match", &match) &&
			json_object_object_get_ex(match, "regex", &re))
		{
			size_t		base = path.len;

			ao_jsonptr_push_key(&path, "match");
			ao_jsonptr_push_key(&path, "regex");
			problems += check_regexes(re, &path, cb, arg);
			ao_buf_truncate(&path, base);
		}
	}
	ao_buf_free(&path);
	return problems;
}
