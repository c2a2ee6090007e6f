/*-------------------------------------------------------------------------
 *
 * ao_workflow.h
 *	  Structural checks of workflow definitions and agent plans, and their
 *	  flattened step list (PostgreSQL-free).
 *
 * A definition is first normalised (the design notes' {"workflow": {...}}
 * wrapper is kept, "kind" becomes "type"), then validated against its JSON
 * Schema, then checked as a graph: step ids unique across nesting, known
 * dependencies and branch targets, no cycles, every ${...} reference known
 * and reachable, and nothing that could make a model's text SQL: the
 * built-in database.query takes only a literal "query" (values go to bound
 * "params") and is never among an llm step's tools. Tools and jsonpath
 * conditions are handed to the caller through hooks, because only the
 * server can tell whether a tool exists or a jsonpath parses.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_workflow.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_WORKFLOW_H
#define AO_WORKFLOW_H

#include <json-c/json.h>

#include "ao_core.h"

/* Callbacks for what the core cannot judge alone; either may be NULL. */
typedef struct ao_workflow_hooks
{
	/* each tool a definition names (tool steps, compensate, llm tools) */
	void		(*tool) (void *arg, const char *path, const char *name);
	/* each jsonpath condition (when, while, branch cases) */
	void		(*condition) (void *arg, const char *path, const char *expr);
	void	   *arg;
} ao_workflow_hooks;

/* One step of a flattened definition, top-level and nested alike. */
typedef struct ao_wf_step
{
	const char *id;
	const char *type;			/* llm, tool, branch, parallel, loop, user_input */
	json_object *obj;			/* borrowed from the definition */
	char	   *path;			/* JSON pointer in the user's document */
	int			parent;			/* index of the enclosing parallel/loop, -1 */
	int			top;			/* index of the top-level ancestor (self if top) */
	int			in_loop;		/* inside a loop's body: ${item} allowed */
	const char **deps;			/* depends_on plus implicit branch edges */
	size_t		ndeps;
} ao_wf_step;

typedef struct ao_wf_steps
{
	ao_wf_step *steps;
	size_t		n;
} ao_wf_steps;

/*
 * Return a new reference to a normalised deep copy of def: every step's
 * "kind" renamed to "type" when "type" is absent. *base_path is set to
 * "/workflow" when def uses the wrapper form, else "".
 */
extern json_object *ao_workflow_normalize(json_object *def, const char **base_path);

/* The workflow object inside a normalised definition (borrowed). */
extern json_object *ao_workflow_body(json_object *normalized);

/*
 * Check a normalised definition: the JSON Schema first (schema may be NULL
 * to skip), then, if the document is shaped right, the graph and the
 * references. Returns the number of problems reported through cb.
 */
extern int	ao_workflow_check(json_object *normalized, json_object *schema,
							  const ao_workflow_hooks *hooks,
							  ao_problem_fn cb, void *arg);

/*
 * Flatten the steps of a workflow body (as returned by ao_workflow_body) in
 * document order, parents before children; base_path prefixes the paths.
 * Assumes a schema-valid body. Free with ao_wf_steps_free.
 */
extern void ao_wf_steps_build(json_object *body, const char *base_path, ao_wf_steps *out);
extern void ao_wf_steps_free(ao_wf_steps *s);
extern int	ao_wf_steps_find(const ao_wf_steps *s, const char *id);

/* Parse a DSL duration (number of seconds or "500ms", "2s", "1.5m", "1h") to milliseconds; -1 if invalid. */
extern double ao_duration_ms(json_object *value);

#endif							/* AO_WORKFLOW_H */
