/*-------------------------------------------------------------------------
 *
 * ao_plan.h
 *	  Agent plans (schemas/AgentPlan.schema.json) without PostgreSQL:
 *	  semantic checks, the optimizer, the diff between two versions, and
 *	  the planner's prompt.
 *
 * A plan is a DAG of llm and tool steps written by a model. It is checked
 * after its JSON Schema: ids, dependencies, cycles, ${...} references,
 * tools the run may use and models that exist. Steps of earlier plan
 * versions that finished (or are still running) are "kept": the plan may
 * depend on them and reference their outputs, and a step of the plan with
 * a kept id stands for the kept step (it is not run again).
 *
 * The optimizer then rewrites a checked plan: kept ids are dropped, a
 * reference to a step becomes a dependency on it, identical tool calls
 * are made once, and when the plan declares an output, steps that cannot
 * reach it are dropped. Every change is recorded as a JSON object, so the
 * plans table says what the model wrote and what runs.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_plan.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_PLAN_H
#define AO_PLAN_H

#include <stddef.h>

#include <json-c/json.h>

#include "ao_core.h"

/* Largest number of characters of one finished step's output in a prompt. */
#define AO_PLAN_PROMPT_OUTPUT_CHARS 2000

/*
 * What a plan may use besides its own steps. The callbacks return NULL
 * when the name is fine, else a message (valid until the next call).
 * Either callback may be NULL (then nothing is checked).
 */
typedef struct ao_plan_env
{
	const char *const *kept;	/* ids of kept steps (borrowed) */
	size_t		nkept;
	const char *(*tool_problem) (void *arg, const char *tool);
	const char *(*model_problem) (void *arg, const char *model);
	void	   *arg;
	const char *const *open;	/* kept steps not finished yet (borrowed): a
								 * step that uses one depends on it */
	size_t		nopen;
} ao_plan_env;

/*
 * Check a plan that passed its JSON Schema. Problems go to cb with the
 * JSON pointer of what is wrong; returns their number.
 */
extern int	ao_plan_check(json_object *plan, const ao_plan_env *env,
						  ao_problem_fn cb, void *cbarg);

/*
 * Optimize a checked plan. Returns a new plan (a new reference) whose
 * steps carry their complete depends_on; appends one object per change to
 * the json array changes: {"action": "kept" | "dependency_added" |
 * "merged" | "dropped" | "parallel", ...}.
 */
extern json_object *ao_plan_optimize(json_object *plan, const ao_plan_env *env,
									 json_object *changes);

/*
 * {"added": [ids], "removed": [ids], "changed": [ids], "kept": [ids]}
 * between the steps of two plans (old_plan may be NULL: everything is
 * added). A step of the old plan that the new one does not name is "kept"
 * when it finished (env's kept ids: its output stays usable), else
 * "removed". env may be NULL. A new reference.
 */
extern json_object *ao_plan_diff(json_object *old_plan, json_object *new_plan,
								 const ao_plan_env *env);

/* What the planner is told. Every member may be NULL. */
typedef struct ao_plan_request
{
	json_object *input;			/* the run's input */
	json_object *tools;			/* {name: {kind, spec, input_schema, ...}} */
	json_object *previous_plan;	/* the last plan applied, if any */
	json_object *finished;		/* [{id, status, output, error}] of kept steps */
	const char *reason;			/* initial, error, condition, budget, stall */
	const char *problem;		/* why a new plan is needed (text) */
	json_object *rejected;		/* the plan the checks refused, if that is why */
	int			revision;		/* 0 for the first request */
	int			max_revisions;
} ao_plan_request;

/* The planner's system prompt (static text). */
extern const char *ao_plan_system_prompt(void);

/* The planner's user prompt for a request; malloc'd, free with free(). */
extern char *ao_plan_prompt(const ao_plan_request *req);

/*
 * The goal of a run's input: "prompt" or "goal" when a string, else the
 * last user message's text, else NULL. Borrowed from input.
 */
extern const char *ao_plan_goal(json_object *input);

#endif							/* AO_PLAN_H */
