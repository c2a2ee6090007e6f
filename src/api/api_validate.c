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
#include "common.h"

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

/*
 * A core call stopped because of an interrupt and its results are freed:
 * let PostgreSQL process it (normally an ERROR). If that returns, the
 * caller runs the call again; after many rounds, give up with an ERROR.
 */
static void
core_interrupted(int *rounds)
{
	ao_interrupt_clear();
	CHECK_FOR_INTERRUPTS();
	if (++*rounds >= 100)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("agentorch computation interrupted")));
}

/*
 * Parse a YAML document into an owned json-c object; malformed YAML is an
 * ERROR naming line and column, a document expanding to more than
 * agentorch.max_yaml_expansion bytes (alias bombs) is 54000. Shared with
 * register_workflow_yaml.
 */
json_object *
ao_json_from_yaml_text(text *document)
{
	ao_buf		err;
	json_object *obj;
	int			rc;
	int			rounds = 0;

	ao_check_size(VARSIZE_ANY_EXHDR(document), "YAML document");
	for (;;)
	{
		ao_buf_init(&err);
		ao_interrupt_clear();
		rc = ao_yaml_parse_limited(VARDATA_ANY(document), VARSIZE_ANY_EXHDR(document),
								   (size_t) ao_max_yaml_expansion, &obj, &err);
		if (rc != AO_YAML_INTERRUPTED)
			break;
		ao_buf_free(&err);
		core_interrupted(&rounds);
	}
	if (rc != AO_YAML_OK)
	{
		char	   *msg = pstrdup(err.data);

		ao_buf_free(&err);
		if (rc == AO_YAML_TOO_LARGE)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("YAML document expands to more than %d bytes (aliases); limit agentorch.max_yaml_expansion",
							ao_max_yaml_expansion),
					 errdetail("%s", msg)));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid YAML document"),
				 errdetail("%s", msg)));
	}
	ao_buf_free(&err);
	if (obj == NULL)
		obj = json_object_new_null();	/* an empty document is null */
	return ao_json_own(obj);
}

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
		core_interrupted(&rounds);
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
		core_interrupted(&rounds);
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

/*
 * Check a workflow definition (jsonb) completely, returning the problem
 * list. Shared with register_workflow.
 */
ao_problems *
ao_workflow_problems(Jsonb *definition, json_object **normalized_out)
{
	json_object *def;
	json_object *normalized;
	ao_problems *p = ao_problems_new();

	ao_check_size(VARSIZE(definition), "workflow definition");
	def = ao_json_from_jsonb(definition);
	normalized = ao_json_own(ao_workflow_normalize(def, NULL));
	ao_check_workflow_semantics(normalized, ao_load_schema("FixedWorkflow"), p);
	if (normalized_out)
		*normalized_out = normalized;
	return p;
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
	ao_problems_return(fcinfo, p);
	return (Datum) 0;
}
