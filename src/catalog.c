/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Catalog helpers of the extension layer: the extension owner, acting
 *	  as that owner for agentorch's own bookkeeping, the stored JSON
 *	  Schemas, tool lookup, and the server-side half of workflow checks
 *	  (tools exist, conditions are valid jsonpath).
 *
 * Writes to agentorch's tables are done as the extension owner (the
 * tables' owner) inside SetUserIdAndSecContext with
 * SECURITY_LOCAL_USERID_CHANGE, the way PostgreSQL itself switches user
 * for maintenance work. The previous user is restored on the normal path;
 * on ERROR, (sub)transaction abort restores it.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/catalog.c
 *
 *-------------------------------------------------------------------------
 */
#include "agentorch.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "ao_workflow.h"

/* Tools every database has without registering them. */
static const char *const builtin_tools[] = {"database.query", NULL};

/*
 * The role that owns the agentorch extension (and its tables). ERRORs if
 * the extension is not installed in this database.
 */
Oid
ao_extension_owner(void)
{
	Oid			owner = InvalidOid;
	bool		isnull;
	int			ret;

	SPI_connect();
	ret = SPI_execute("SELECT extowner FROM pg_catalog.pg_extension "
					  "WHERE extname OPERATOR(pg_catalog.=) 'agentorch'", true, 1);
	if (ret == SPI_OK_SELECT && SPI_processed == 1)
		owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"agentorch\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION agentorch.")));
	return owner;
}

/*
 * Switch the current user to the extension owner for agentorch's own
 * bookkeeping; the previous identity is saved for ao_restore_user.
 */
void
ao_become_extension_owner(Oid *save_uid, int *save_sec)
{
	Oid			owner = ao_extension_owner();

	GetUserIdAndSecContext(save_uid, save_sec);
	SetUserIdAndSecContext(owner, *save_sec | SECURITY_LOCAL_USERID_CHANGE);
}

/* Undo ao_become_extension_owner. */
void
ao_restore_user(Oid save_uid, int save_sec)
{
	SetUserIdAndSecContext(save_uid, save_sec);
}

/*
 * Load a JSON Schema from agentorch._schemas (generated from schemas/) as
 * an owned json-c object. ERRORs if it is missing, which means a broken
 * installation.
 */
json_object *
ao_load_schema(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	char	   *text = NULL;
	MemoryContext caller = CurrentMemoryContext;

	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	if (SPI_execute_with_args("SELECT schema::text FROM agentorch._schemas "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	if (text == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("JSON Schema \"%s\" is missing from agentorch._schemas", name),
				 errhint("Reinstall the extension.")));
	return ao_json_from_cstring(text, strlen(text), "stored JSON Schema");
}

/* Does a tool of this name exist (registered or built in)? */
bool
ao_tool_exists(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		found;

	for (const char *const *b = builtin_tools; *b; b++)
		if (strcmp(*b, name) == 0)
			return true;
	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	found = SPI_execute_with_args("SELECT 1 FROM agentorch.tools "
								  "WHERE name OPERATOR(pg_catalog.=) $1",
								  1, argtypes, values, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1;
	SPI_finish();
	return found;
}

/*
 * Try to parse expr as a jsonpath; on failure return the parser's message
 * (palloc'd in the caller's context), else NULL. jsonpath_in can only
 * report errors by ERROR in PostgreSQL 15, so the parse runs in a
 * subtransaction that is rolled back on failure, as PL/pgSQL does for an
 * EXCEPTION block.
 */
static char *
jsonpath_error(const char *expr)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	char	   *volatile message = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	PG_TRY();
	{
		(void) DirectFunctionCall1(jsonpath_in, CStringGetDatum(expr));
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		message = edata->message;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	CurrentResourceOwner = owner;
	return message;
}

/* What the core's hooks collect for the server-side checks. */
typedef struct collected
{
	ao_problems tools;			/* (path, tool name) */
	ao_problems conditions;		/* (path, jsonpath text) */
} collected;

/* Hook: remember a tool name; checked after the core returns. */
static void
collect_tool(void *arg, const char *path, const char *name)
{
	ao_problems_add(&((collected *) arg)->tools, path, name);
}

/* Hook: remember a condition; parsed after the core returns. */
static void
collect_condition(void *arg, const char *path, const char *expr)
{
	ao_problems_add(&((collected *) arg)->conditions, path, expr);
}

/* Reset callback: free what the hooks collected. */
static void
release_collected(void *arg)
{
	collected  *c = arg;

	ao_problems_free(&c->tools);
	ao_problems_free(&c->conditions);
}

/*
 * Check a normalised workflow or plan completely: the core's schema, graph
 * and reference checks, then the server-side ones the core hands out
 * through hooks (tools exist, conditions parse as jsonpath). Problems are
 * appended to problems. The hooks only collect, because core callbacks
 * must not ERROR (the core holds malloc'd state while it runs).
 */
void
ao_check_workflow_semantics(json_object *normalized, json_object *schema,
							ao_problems *problems)
{
	collected  *c = palloc(sizeof(collected));
	MemoryContextCallback *cb = palloc(sizeof(MemoryContextCallback));
	ao_workflow_hooks hooks;

	ao_problems_init(&c->tools);
	ao_problems_init(&c->conditions);
	cb->func = release_collected;
	cb->arg = c;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);

	hooks.tool = collect_tool;
	hooks.condition = collect_condition;
	hooks.arg = c;
	/* a document that fails its schema hands out no tools or conditions */
	(void) ao_workflow_check(normalized, schema, &hooks, ao_problems_add, problems);

	for (size_t i = 0; i < c->tools.n; i++)
	{
		if (!ao_tool_exists(c->tools.messages[i]))
		{
			char	   *msg = psprintf("unknown tool \"%s\"", c->tools.messages[i]);

			ao_problems_add(problems, c->tools.paths[i], msg);
		}
	}
	for (size_t i = 0; i < c->conditions.n; i++)
	{
		char	   *err = jsonpath_error(c->conditions.messages[i]);

		if (err)
			ao_problems_add(problems, c->conditions.paths[i],
							psprintf("invalid jsonpath condition: %s", err));
	}
}
