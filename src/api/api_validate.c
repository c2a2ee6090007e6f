/*-------------------------------------------------------------------------
 *
 * api_validate.c
 *	  SQL API: yaml_to_jsonb, validate_json, is_valid_json,
 *	  validate_workflow and validate_plan.
 *
 * Thin wrappers: each converts its arguments, calls the core and turns the
 * problems into rows. A validate_* function returns no rows for a valid
 * document and one (path, message) row per problem otherwise; it raises an
 * ERROR only when it cannot judge at all (malformed schema, oversized
 * input).
 *
 * The core polls for interrupts (ao_core.h): when it stops with
 * "interrupted", its partial result is dropped and CHECK_FOR_INTERRUPTS()
 * raises the cancel; should that return, the call simply runs again.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/api/api_validate.c
 *
 *-------------------------------------------------------------------------
 */
#include "api.h"

#include "miscadmin.h"
#include "utils/builtins.h"

#include "ao_json_schema.h"
#include "ao_workflow.h"
#include "ao_yaml.h"

PG_FUNCTION_INFO_V1(ao_sql_yaml_to_jsonb);
PG_FUNCTION_INFO_V1(ao_sql_validate_json);
PG_FUNCTION_INFO_V1(ao_sql_is_valid_json);
PG_FUNCTION_INFO_V1(ao_sql_validate_workflow);
PG_FUNCTION_INFO_V1(ao_sql_validate_plan);

/* yaml_to_jsonb(document text) RETURNS jsonb */
Datum
ao_sql_yaml_to_jsonb(PG_FUNCTION_ARGS)
{
	json_object *obj = ao_json_from_yaml_text(PG_GETARG_TEXT_PP(0));

	if (obj == NULL || json_object_is_type(obj, json_type_null))
		return DirectFunctionCall1(jsonb_in, CStringGetDatum("null"));
	return ao_jsonb_datum_from_json(obj);
}

/*
 * Parse and check a user-supplied JSON Schema; an unusable schema is an
 * ERROR listing its problems.
 */
static json_object *
usable_schema(Jsonb *jb)
{
	json_object *schema = ao_json_from_jsonb(jb);
	ao_problems *p = ao_problems_new();
	int			n;
	int			rounds = 0;

	for (;;)
	{
		ao_interrupt_clear();
		n = ao_json_schema_check(schema, ao_problems_add, p);
		if (!ao_interrupted())
			break;
		ao_problems_free(p);
		ao_core_interrupted(&rounds);
	}
	if (n > 0)
		ao_problems_raise(p, ERRCODE_INVALID_PARAMETER_VALUE, "invalid JSON Schema");
	return schema;
}

/* ao_json_schema_validate into p, honouring interrupts; problem count. */
static int
validate_interruptible(json_object *schema, json_object *instance, ao_problems *p)
{
	int			n;
	int			rounds = 0;

	for (;;)
	{
		ao_interrupt_clear();
		n = ao_json_schema_validate(schema, instance, ao_problems_add, p);
		if (!ao_interrupted())
			return n;
		ao_problems_free(p);
		ao_core_interrupted(&rounds);
	}
}

/* validate_json(instance jsonb, schema jsonb) RETURNS TABLE(path, message) */
Datum
ao_sql_validate_json(PG_FUNCTION_ARGS)
{
	json_object *schema = usable_schema(PG_GETARG_JSONB_P(1));
	json_object *instance = ao_json_from_jsonb(PG_GETARG_JSONB_P(0));
	ao_problems *p = ao_problems_new();

	validate_interruptible(schema, instance, p);
	ao_problems_return(fcinfo, p);
	return (Datum) 0;
}

/* is_valid_json(instance jsonb, schema jsonb) RETURNS boolean */
Datum
ao_sql_is_valid_json(PG_FUNCTION_ARGS)
{
	json_object *schema = usable_schema(PG_GETARG_JSONB_P(1));
	json_object *instance = ao_json_from_jsonb(PG_GETARG_JSONB_P(0));
	ao_problems *p = ao_problems_new();

	PG_RETURN_BOOL(validate_interruptible(schema, instance, p) == 0);
}

/* validate_workflow(definition jsonb) RETURNS TABLE(path, message) */
Datum
ao_sql_validate_workflow(PG_FUNCTION_ARGS)
{
	ao_problems_return(fcinfo, ao_workflow_problems(PG_GETARG_JSONB_P(0), NULL));
	return (Datum) 0;
}

/* validate_plan(plan jsonb) RETURNS TABLE(path, message) */
Datum
ao_sql_validate_plan(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(0);
	json_object *plan;
	ao_problems *p = ao_problems_new();

	ao_check_size(VARSIZE(jb), "plan");
	plan = ao_json_from_jsonb(jb);
	ao_check_workflow_semantics(plan, ao_load_schema("AgentPlan"), p);
	/*
	 * and, for a plan the workflow checks pass, what the planner checks
	 * besides (database.query, models, references as dependencies), which
	 * would otherwise repeat their problems in other words
	 */
	if (p->n == 0)
		ao_planner_check_plan(plan, p);
	ao_problems_return(fcinfo, p);
	return (Datum) 0;
}
