/*-------------------------------------------------------------------------
 *
 * api_graph.c
 *	  SQL API: workflow_graph -- a registered workflow's DAG as Mermaid or
 *	  Graphviz dot text, rendered by the core (ao_graph.c).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/api/api_graph.c
 *
 *-------------------------------------------------------------------------
 */
#include "api.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "ao_graph.h"
#include "ao_workflow.h"

PG_FUNCTION_INFO_V1(ao_sql_workflow_graph);

/* Refuse formats other than mermaid and dot. */
static void
check_format(const char *format)
{
	if (strcmp(format, "mermaid") != 0 && strcmp(format, "dot") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown graph format \"%s\"", format),
				 errhint("Use \"mermaid\" or \"dot\".")));
}

/*
 * Render a stored definition (jsonb text) as a graph; status/arg colour the
 * nodes for a run, or are NULL. Returns palloc'd text.
 */
text *
ao_render_graph(const char *definition, const char *title, const char *format,
				ao_graph_status_fn status, void *arg)
{
	json_object *def = ao_json_from_cstring(definition, strlen(definition), "stored workflow");
	const char *base;
	json_object *normalized = ao_json_own(ao_workflow_normalize(def, &base));
	ao_wf_steps steps;
	ao_buf		out;
	text	   *result;

	check_format(format);
	ao_wf_steps_build(ao_workflow_body(normalized), base, &steps);
	ao_buf_init(&out);
	ao_graph_render(&steps, title, format, status, arg, &out);
	ao_wf_steps_free(&steps);
	result = cstring_to_text_with_len(out.data, out.len);
	ao_buf_free(&out);
	return result;
}

/* workflow_graph(name text, format text DEFAULT 'mermaid', version int DEFAULT NULL) */
Datum
ao_sql_workflow_graph(PG_FUNCTION_ARGS)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	char	   *name;
	char	   *format;
	char	   *definition = NULL;
	MemoryContext caller = CurrentMemoryContext;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	format = text_to_cstring(PG_GETARG_TEXT_PP(1));
	check_format(format);
	values[0] = PG_GETARG_DATUM(0);
	if (PG_ARGISNULL(2))
		nulls[1] = 'n';
	else
		values[1] = PG_GETARG_DATUM(2);

	SPI_connect();
	if (SPI_execute_with_args("SELECT definition::text FROM agentorch.workflows "
							  "WHERE name OPERATOR(pg_catalog.=) $1 "
							  "  AND ($2 IS NULL OR version OPERATOR(pg_catalog.=) $2) "
							  "ORDER BY version DESC LIMIT 1",
							  2, types, values, nulls, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		definition = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	if (definition == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 PG_ARGISNULL(2)
				 ? errmsg("workflow \"%s\" does not exist", name)
				 : errmsg("workflow \"%s\" has no version %d", name, PG_GETARG_INT32(2))));
	PG_RETURN_TEXT_P(ao_render_graph(definition, name, format, NULL, NULL));
}
