/*-------------------------------------------------------------------------
 *
 * test_plan.c
 *	  Unit tests of ao_plan: plan checks (ids, dependencies, cycles,
 *	  references, tools, models, kept steps), the optimizer (kept ids,
 *	  implicit dependencies, merged tool calls, dropped steps, parallel
 *	  levels), the diff and the planner prompt.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/test_plan.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_plan.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
collect(void *arg, const char *path, const char *message)
{
	ao_buf_printf((ao_buf *) arg, "%s: %s\n", path, message);
}

static const char *
tool_problem(void *arg, const char *tool)
{
	(void) arg;
	if (strcmp(tool, "search") == 0 || strcmp(tool, "chart.create") == 0)
		return NULL;
	if (strcmp(tool, "secret_tool") == 0)
		return "permission denied for tool \"secret_tool\"";
	return "tool is not available to this run";
}

static const char *
model_problem(void *arg, const char *model)
{
	(void) arg;
	return strcmp(model, "fast") == 0 ? NULL : "unknown model";
}

static const char *const kept_ids[] = {"fetched"};
static const ao_plan_env env = {kept_ids, 1, tool_problem, model_problem, NULL, NULL, 0};
/* the same kept step, still running (or waiting for another attempt) */
static const ao_plan_env env_open = {kept_ids, 1, tool_problem, model_problem, NULL, kept_ids, 1};

/* Problems of a plan (JSON text) as "path: message\n" lines. */
static char *
check(const char *text)
{
	json_object *plan = json_tokener_parse(text);
	ao_buf		out;

	ao_buf_init(&out);
	if (plan == NULL)
		ao_buf_append(&out, "unparsable test plan\n");
	else
		(void) ao_plan_check(plan, &env, collect, &out);
	json_object_put(plan);
	return out.data;
}

static void
test_check(void)
{
	char	   *p;

	p = check("{\"goal\": \"g\", \"steps\": [{\"id\": \"a\", \"type\": \"tool\", \"tool\": \"search\", \"input\": {\"q\": \"${input.q}\"}},"
			  " {\"id\": \"b\", \"type\": \"llm\", \"prompt\": \"Sum up ${a.output} and ${fetched.output}\", \"depends_on\": [\"a\"]}]}");
	UNIT_STREQ(p, "", "a good plan has no problems (kept step referenced)");
	free(p);

	p = check("{\"goal\": \"g\", \"steps\": [{\"id\": \"a\", \"type\": \"llm\", \"prompt\": \"x\", \"depends_on\": [\"b\"]},"
			  " {\"id\": \"b\", \"type\": \"llm\", \"prompt\": \"y\", \"depends_on\": [\"a\"]}]}");
	UNIT_OK(strstr(p, "cycle: a -> b -> a") != NULL, "a cycle is reported");
	free(p);

	p = check("{\"goal\": \"g\", \"steps\": [{\"id\": \"a\", \"type\": \"tool\", \"tool\": \"nope\", \"input\": {}},"
			  " {\"id\": \"b\", \"type\": \"tool\", \"tool\": \"secret_tool\"},"
			  " {\"id\": \"c\", \"type\": \"tool\", \"tool\": \"database.query\", \"input\": {\"query\": \"DROP TABLE t\"}}]}");
	UNIT_STREQ(p,
			   "/steps/0/tool: tool is not available to this run\n"
			   "/steps/1/tool: permission denied for tool \"secret_tool\"\n"
			   "/steps/2/tool: database.query cannot be used in a plan: nothing a model writes is executed as SQL\n",
			   "unknown, denied and SQL tools are refused");
	free(p);

	p = check("{\"goal\": \"g\", \"steps\": [{\"id\": \"a\", \"type\": \"llm\", \"prompt\": \"${ghost.output} ${item}\", \"model\": \"huge\"},"
			  " {\"id\": \"a\", \"type\": \"llm\", \"prompt\": \"${a.output}\", \"depends_on\": [\"zz\", \"a\"]}]}");
	UNIT_OK(strstr(p, "/steps/0/model: unknown model") != NULL, "unknown model");
	UNIT_OK(strstr(p, "unknown step \"ghost\"") != NULL, "unknown reference");
	UNIT_OK(strstr(p, "only available inside a loop") != NULL, "${item} refused");
	UNIT_OK(strstr(p, "duplicate step id \"a\"") != NULL, "duplicate id");
	UNIT_OK(strstr(p, "unknown step \"zz\" in depends_on") != NULL, "unknown dependency");
	UNIT_OK(strstr(p, "depends on itself") != NULL, "self dependency");
	free(p);

	p = check("{\"goal\": \"g\", \"steps\": [{\"id\": \"input\", \"type\": \"llm\", \"prompt\": \"x\"},"
			  " {\"id\": \"memory\", \"type\": \"llm\", \"prompt\": \"y\"}]}");
	UNIT_OK(strstr(p, "/steps/0/id: step id \"input\" is reserved") != NULL &&
			strstr(p, "/steps/1/id: step id \"memory\" is reserved") != NULL, "reference roots are no step ids");
	free(p);

	p = check("{\"goal\": \"g\", \"steps\": [{\"id\": \"a\", \"type\": \"llm\", \"prompt\": \"${b.output}\"},"
			  " {\"id\": \"b\", \"type\": \"llm\", \"prompt\": \"${a.output}\"}]}");
	UNIT_OK(strstr(p, "cycle") != NULL, "a cycle made of references is reported");
	free(p);

	p = check("{\"goal\": \"g\", \"steps\": [{\"id\": \"a\", \"type\": \"llm\", \"prompt\": \"x ${unterminated\"}],"
			  " \"output\": {\"r\": \"${nobody.output}\"}}");
	UNIT_OK(strstr(p, "/steps/0/prompt") != NULL, "template syntax error reported at the prompt");
	UNIT_OK(strstr(p, "/output") != NULL && strstr(p, "unknown step \"nobody\"") != NULL, "output references checked");
	free(p);
}

static char *
changes_of(const char *text, char **plan_out)
{
	json_object *plan = json_tokener_parse(text);
	json_object *changes = json_object_new_array();
	json_object *opt = ao_plan_optimize(plan, &env, changes);
	char	   *r = strdup(json_object_to_json_string_ext(changes, JSON_C_TO_STRING_PLAIN));

	*plan_out = strdup(json_object_to_json_string_ext(opt, JSON_C_TO_STRING_PLAIN));
	/* the input plan is left as it was */
	UNIT_OK(json_object_array_length(json_object_object_get(plan, "steps")) > 0, "input plan untouched");
	json_object_put(plan);
	json_object_put(opt);
	json_object_put(changes);
	return r;
}

static void
test_optimize(void)
{
	char	   *plan;
	char	   *c;

	c = changes_of("{\"goal\": \"g\", \"steps\": ["
				   "{\"id\": \"fetched\", \"type\": \"tool\", \"tool\": \"search\"},"
				   "{\"id\": \"s1\", \"type\": \"tool\", \"tool\": \"search\", \"input\": {\"q\": \"x\"}},"
				   "{\"id\": \"s2\", \"type\": \"tool\", \"tool\": \"search\", \"input\": {\"q\": \"x\"}},"
				   "{\"id\": \"s3\", \"type\": \"tool\", \"tool\": \"search\", \"input\": {\"q\": \"y\"}},"
				   "{\"id\": \"sum\", \"type\": \"llm\", \"prompt\": \"${s1.output} ${s2.output} ${ steps.s2.output}\", \"depends_on\": [\"s2\", \"fetched\"]}]}",
				   &plan);
	UNIT_OK(strstr(c, "{\"action\":\"kept\",\"step\":\"fetched\"") != NULL, "kept id dropped");
	UNIT_OK(strstr(c, "{\"action\":\"merged\",\"step\":\"s2\",\"into\":\"s1\"}") != NULL, "identical calls merged");
	UNIT_OK(strstr(plan, "\"s2\"") == NULL && strstr(plan, "${s1.output} ${s1.output} ${ steps.s1.output}") != NULL,
			"references retargeted to the kept call");
	UNIT_OK(strstr(plan, "\"depends_on\":[\"s1\"]") != NULL, "depends_on retargeted and deduplicated");
	UNIT_OK(strstr(c, "{\"action\":\"parallel\",\"steps\":[\"s1\",\"s3\"]}") != NULL, "independent steps run in parallel");
	free(plan);
	free(c);

	c = changes_of("{\"goal\": \"g\", \"steps\": ["
				   "{\"id\": \"a\", \"type\": \"llm\", \"prompt\": \"p\"},"
				   "{\"id\": \"b\", \"type\": \"llm\", \"prompt\": \"uses ${a.output}\"},"
				   "{\"id\": \"orphan\", \"type\": \"llm\", \"prompt\": \"q\"}],"
				   " \"output\": {\"answer\": \"${b.output}\"}}", &plan);
	UNIT_OK(strstr(c, "{\"action\":\"dependency_added\",\"step\":\"b\",\"on\":\"a\"") != NULL, "reference becomes a dependency");
	UNIT_OK(strstr(c, "{\"action\":\"dropped\",\"step\":\"orphan\"") != NULL, "step not reaching the output dropped");
	UNIT_OK(strstr(plan, "orphan") == NULL, "dropped step gone from the plan");
	free(plan);
	free(c);

	/* a kept step that has not finished is waited for, named or referenced */
	{
		json_object *in = json_tokener_parse("{\"goal\": \"g\", \"steps\": ["
											 "{\"id\": \"fetched\", \"type\": \"llm\", \"prompt\": \"again\"},"
											 "{\"id\": \"u\", \"type\": \"llm\", \"prompt\": \"${fetched.output}\"},"
											 "{\"id\": \"v\", \"type\": \"llm\", \"prompt\": \"v\", \"depends_on\": [\"fetched\"]}]}");
		json_object *ch = json_object_new_array();
		json_object *opt = ao_plan_optimize(in, &env_open, ch);
		const char *o = json_object_to_json_string_ext(opt, JSON_C_TO_STRING_PLAIN);
		const char *cs = json_object_to_json_string_ext(ch, JSON_C_TO_STRING_PLAIN);

		UNIT_OK(strstr(o, "\"id\":\"fetched\"") == NULL, "open kept step: not planned again");
		UNIT_OK(strstr(o, "\"prompt\":\"${fetched.output}\",\"depends_on\":[\"fetched\"]") != NULL,
				"open kept step: a reference to it becomes a dependency");
		UNIT_OK(strstr(o, "\"prompt\":\"v\",\"depends_on\":[\"fetched\"]") != NULL,
				"open kept step: a listed dependency on it stays");
		UNIT_OK(strstr(cs, "{\"action\":\"dependency_added\",\"step\":\"u\",\"on\":\"fetched\"") != NULL,
				"open kept step: the dependency is a change");
		json_object_put(in);
		json_object_put(ch);
		json_object_put(opt);
	}
}

static void
test_diff_and_prompt(void)
{
	json_object *a = json_tokener_parse("{\"goal\": \"g\", \"steps\": [{\"id\": \"x\", \"type\": \"llm\", \"prompt\": \"1\"},"
										" {\"id\": \"y\", \"type\": \"llm\", \"prompt\": \"2\"}]}");
	json_object *b = json_tokener_parse("{\"goal\": \"g\", \"steps\": [{\"id\": \"x\", \"type\": \"llm\", \"prompt\": \"1\"},"
										" {\"id\": \"y\", \"type\": \"llm\", \"prompt\": \"3\"}, {\"id\": \"z\", \"type\": \"llm\", \"prompt\": \"4\"}]}");
	json_object *d = ao_plan_diff(a, b, NULL);
	json_object *d2 = ao_plan_diff(b, a, &env);
	json_object *d0 = ao_plan_diff(NULL, a, NULL);
	json_object *input = json_tokener_parse("{\"prompt\": \"Compare ${prices}\", \"region\": \"EU\"}");
	json_object *tools = json_tokener_parse("{\"search\": {\"kind\": \"http\", \"spec\": {\"description\": \"web search\"}, "
											"\"input_schema\": {\"type\": \"object\"}}}");
	ao_plan_request req = {0};
	char	   *p;

	UNIT_STREQ(json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN),
			   "{\"added\":[\"z\"],\"removed\":[],\"changed\":[\"y\"],\"kept\":[]}", "diff: added and changed");
	UNIT_STREQ(json_object_to_json_string_ext(d2, JSON_C_TO_STRING_PLAIN),
			   "{\"added\":[],\"removed\":[\"z\"],\"changed\":[\"y\"],\"kept\":[]}", "diff: removed");
	UNIT_STREQ(json_object_to_json_string_ext(d0, JSON_C_TO_STRING_PLAIN),
			   "{\"added\":[\"x\",\"y\"],\"removed\":[],\"changed\":[],\"kept\":[]}", "diff from nothing");

	{
		json_object *o = json_tokener_parse("{\"goal\": \"g\", \"steps\": [{\"id\": \"fetched\", \"type\": \"llm\", \"prompt\": \"1\"},"
											" {\"id\": \"gone\", \"type\": \"llm\", \"prompt\": \"2\"}]}");
		json_object *dk = ao_plan_diff(o, a, &env);

		UNIT_STREQ(json_object_to_json_string_ext(dk, JSON_C_TO_STRING_PLAIN),
				   "{\"added\":[\"x\",\"y\"],\"removed\":[\"gone\"],\"changed\":[],\"kept\":[\"fetched\"]}",
				   "diff: a finished step the new plan does not name is kept");
		json_object_put(dk);
		json_object_put(o);
	}
	req.input = input;
	req.tools = tools;
	p = ao_plan_prompt(&req);
	UNIT_OK(strncmp(p, "Task:\nCompare ${prices}\n", 24) == 0, "prompt starts with the goal");
	UNIT_OK(strstr(p, "- search (http tool): web search") != NULL, "tools listed with descriptions");
	UNIT_OK(strstr(p, "revision") == NULL, "first request mentions no revision");
	free(p);
	req.revision = 2;
	req.max_revisions = 3;
	req.reason = "error";
	req.problem = "step fetch failed: HTTP 500";
	req.previous_plan = a;
	req.finished = json_tokener_parse("[{\"id\": \"x\", \"status\": \"succeeded\", \"output\": \"done\"}]");
	req.tools = NULL;
	p = ao_plan_prompt(&req);
	UNIT_OK(strstr(p, "revision 2 of the plan (at most 3 revisions); reason: error") != NULL, "revision announced");
	UNIT_OK(strstr(p, "- x (succeeded): \"done\"") != NULL, "finished steps listed");
	UNIT_OK(strstr(p, "step fetch failed: HTTP 500") != NULL, "the problem is given");
	UNIT_OK(strstr(p, "(none: use llm steps only)") != NULL, "no tools said so");
	free(p);
	{
		json_object *m = json_tokener_parse("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}");

		UNIT_STREQ(ao_plan_goal(m), "hi", "goal from the last user message");
		json_object_put(m);
	}
	json_object_put(req.finished);
	json_object_put(a);
	json_object_put(b);
	json_object_put(d);
	json_object_put(d2);
	json_object_put(d0);
	json_object_put(input);
	json_object_put(tools);
}

int
main(void)
{
	test_check();
	test_optimize();
	test_diff_and_prompt();
	return unit_done();
}
