/*-------------------------------------------------------------------------
 *
 * template_pg.c
 *	  ${...} rendering for the executor and the state layer: the core's
 *	  renderer (ao_template.c) over a run context given as jsonb.
 *
 * At run time a reference to a member that is absent renders as JSON
 * null: validation already proved every step and root exists, and an
 * optional field (a comment left out of a user's answer, say) must not
 * fail a run.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/common/template_pg.c
 *
 *-------------------------------------------------------------------------
 */
#include "common.h"

#include "ao_template.h"

PG_FUNCTION_INFO_V1(ao_sql_render);

/* Resolver: the core's context resolver, with absent members as null. */
static int
resolve_or_null(void *context, const ao_ref *ref, json_object **value)
{
	if (!ao_ref_resolve_in_context(context, ref, value))
		*value = NULL;
	return 1;
}

/*
 * Render a template (jsonb) against a context (jsonb). Syntax errors --
 * impossible for validated definitions -- are an ERROR listing them.
 */
Jsonb *
ao_render_jsonb(Jsonb *tmpl, Jsonb *context)
{
	json_object *t = ao_json_from_jsonb(tmpl);
	json_object *ctx = ao_json_from_jsonb(context);
	json_object *out = NULL;
	ao_problems *p = ao_problems_new();

	if (ao_template_render(t, resolve_or_null, ctx, ao_problems_add, p, &out) > 0)
		ao_problems_raise(p, ERRCODE_INVALID_PARAMETER_VALUE, "invalid template");
	if (out == NULL)
		return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("null")));
	ao_json_own(out);
	return ao_jsonb_from_json(out);
}

/* agentorch._render(template jsonb, context jsonb) RETURNS jsonb */
Datum
ao_sql_render(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(ao_render_jsonb(PG_GETARG_JSONB_P(0), PG_GETARG_JSONB_P(1)));
}
