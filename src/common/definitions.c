/*-------------------------------------------------------------------------
 *
 * definitions.c
 *	  Reading and checking workflow definitions, shared by the SQL API
 *	  (validate_*, register_*), the selector and the claim loop: YAML to
 *	  json-c, the full problem list of a workflow, interrupts of long core
 *	  computations.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/common/definitions.c
 *
 *-------------------------------------------------------------------------
 */
#include "common.h"

#include "miscadmin.h"

#include "ao_workflow.h"
#include "ao_yaml.h"

/*
 * A core call stopped because of an interrupt and its results are freed:
 * let PostgreSQL process it (normally an ERROR). If that returns, the
 * caller runs the call again; after many rounds, give up with an ERROR.
 */
void
ao_core_interrupted(int *rounds)
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
		ao_core_interrupted(&rounds);
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
