/*-------------------------------------------------------------------------
 *
 * runner_tool.c
 *	  The tool registry at run time and the transactional tool runners:
 *	  sql tools, function tools and the built-in database.query.
 *
 * Runners are called by the executor inside a step's subtransaction with
 * the run's owner as current user (see claim.c). Values from a step's
 * input reach SQL only as bound parameters: the statement text of a sql
 * tool is the registered one, its $n parameters take the input keys named
 * in "params", with types inferred by the parser (as for PREPARE without
 * types). Nothing an LLM or a user input produces is ever spliced into SQL
 * text; database.query runs the query text of its input, which is why it
 * runs read-only, as the owner, under a statement timeout.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/runner/runner_tool.c
 *
 *-------------------------------------------------------------------------
 */
#include "runner.h"

#include <math.h>

#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/params.h"
#include "parser/parse_param.h"
#include "parser/parser.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/syscache.h"
#include "storage/proc.h"

/*
 * Tools looked up in the current transaction, by run and name: a run's
 * tools are pinned when it starts and never change, and the executor runs
 * many steps of a run with the same tool in one transaction (a chain is
 * one batch), so each is read and parsed once per transaction. The cache
 * lives in a child of TopTransactionContext and goes with it (its json-c
 * objects are owned by that context). Entries are read-only.
 */
typedef struct ToolCacheEntry
{
	int64		run;
	AoTool	   *tool;
} ToolCacheEntry;
static MemoryContext tool_cache_cxt = NULL;
static LocalTransactionId tool_cache_lxid = InvalidLocalTransactionId;
static List *tool_cache = NIL;

/* beyond this many tools in one transaction (a long work() call), no caching */
#define AO_TOOL_CACHE_MAX 256

/*
 * Tools by the definition a run pinned (ao_tool_of_definition): the same
 * name and the very same definition (byte for byte) give the same tool,
 * whatever the run -- a batch of runs started together shares one. Also
 * per transaction, in the cache's context.
 */
typedef struct DefinitionCacheEntry
{
	char	   *name;
	Jsonb	   *definition;
	AoTool	   *tool;
} DefinitionCacheEntry;
static List *definition_cache = NIL;

/* A new transaction: the caches of the last one went with it. */
static void
tool_cache_ready(void)
{
	if (tool_cache_lxid != MyProc->lxid || tool_cache_cxt == NULL)
	{
		tool_cache_cxt = AllocSetContextCreate(TopTransactionContext, "agentorch tools",
											   ALLOCSET_SMALL_SIZES);
		tool_cache_lxid = MyProc->lxid;
		tool_cache = NIL;
		definition_cache = NIL;
	}
}

/*
 * A registered tool from the columns of its pinned definition (text, as
 * SQL's ->> and ->::text give them; NULL for a missing key), in the
 * current memory context. NULL when it has no kind or spec.
 */
static AoTool *
tool_from_columns(const char *name, char *kind, const char *spec, const char *schema,
				  const char *policy, char *path)
{
	AoTool	   *t;

	if (kind == NULL || spec == NULL)
		return NULL;
	t = palloc0(sizeof(AoTool));
	t->name = pstrdup(name);
	t->kind = kind;
	t->spec = ao_json_from_cstring(spec, strlen(spec), "tool spec");
	t->input_schema = schema && strcmp(schema, "null") != 0
		? ao_json_from_cstring(schema, strlen(schema), "tool input_schema") : NULL;
	t->policy = policy && strcmp(policy, "null") != 0
		? ao_json_from_cstring(policy, strlen(policy), "tool policy") : NULL;
	t->search_path = path ? path : AO_SAFE_SEARCH_PATH;
	return t;
}

/*
 * A member of a pinned definition as text: what d ->> key (as_text) or
 * (d -> key)::text gives; NULL when it is missing (or a JSON null, as_text).
 */
static char *
pinned_column(Jsonb *definition, const char *key, bool as_text)
{
	JsonbValue	v;

	if (!ao_jsonb_get_key(&definition->root, key, &v))
		return NULL;
	if (as_text)
	{
		if (v.type == jbvNull)
			return NULL;
		if (v.type == jbvString)
			return pnstrdup(v.val.string.val, v.val.string.len);
	}
	return JsonbToCString(NULL, &JsonbValueToJsonb(&v)->root, VARSIZE(definition));
}

/*
 * The tool a step of run calls, from the definition the run pinned for it
 * (runs.tools -> name, read with the step's claim; NULL: not at hand).
 * Without a definition, or for the built-in database.query (whose
 * search_path is the run's), ao_lookup_tool reads the run. Same result
 * and lifetime as ao_lookup_tool.
 */
AoTool *
ao_tool_of_definition(int64 run, const char *name, Jsonb *definition)
{
	ListCell   *lc;
	MemoryContext old;
	DefinitionCacheEntry *e;

	if (name == NULL || definition == NULL || !JB_ROOT_IS_OBJECT(definition) ||
		strcmp(name, "database.query") == 0)
		return ao_lookup_tool(run, name);
	tool_cache_ready();
	foreach(lc, definition_cache)
	{
		e = lfirst(lc);
		if (strcmp(e->name, name) == 0 && VARSIZE(e->definition) == VARSIZE(definition) &&
			memcmp(e->definition, definition, VARSIZE(definition)) == 0)
			return e->tool;
	}
	if (list_length(definition_cache) >= AO_TOOL_CACHE_MAX)
		return ao_lookup_tool(run, name);
	old = MemoryContextSwitchTo(tool_cache_cxt);
	e = palloc(sizeof(DefinitionCacheEntry));
	e->name = pstrdup(name);
	e->definition = (Jsonb *) pg_detoast_datum_copy((struct varlena *) definition);
	e->tool = tool_from_columns(name, pinned_column(definition, "kind", true),
								pinned_column(definition, "spec", false),
								pinned_column(definition, "input_schema", false),
								pinned_column(definition, "policy", false),
								pinned_column(definition, "search_path", true));
	definition_cache = lappend(definition_cache, e);
	MemoryContextSwitchTo(old);
	return e->tool;
}

/*
 * Look up a tool of a run by name: the definition the run pinned when it
 * started (runs.tools, see agentorch._tool), or the built-in
 * database.query, which runs with the search_path of the session that
 * started the run. Returns NULL when it does not exist. Read as the
 * extension owner, so that work() and run_sync() in an ordinary role's
 * session can read it. The result is shared and read-only; it lives until
 * the end of the transaction (or the caller's memory context, past the
 * cache's size).
 */
AoTool *
ao_lookup_tool(int64 run, const char *name)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	AoTool	   *t = NULL;
	MemoryContext caller = CurrentMemoryContext;
	AoUserScope owner_scope;
	ListCell   *lc;

	if (name == NULL)
		return NULL;
	tool_cache_ready();
	foreach(lc, tool_cache)
	{
		ToolCacheEntry *e = lfirst(lc);

		if (e->run == run && strcmp(e->tool->name, name) == 0)
			return e->tool;
	}

	values[0] = Int64GetDatum(run);
	values[1] = CStringGetTextDatum(name);
	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	/* the columns tool_from_columns takes, as pinned_column reads them from a definition in hand */
	ao_spi_exec("SELECT d OPERATOR(pg_catalog.->>) 'kind', (d OPERATOR(pg_catalog.->) 'spec')::text, "
				"  (d OPERATOR(pg_catalog.->) 'input_schema')::text, (d OPERATOR(pg_catalog.->) 'policy')::text, "
				"  CASE WHEN $2 OPERATOR(pg_catalog.=) 'database.query' THEN r.search_path "
				"       ELSE d OPERATOR(pg_catalog.->>) 'search_path' END "
				"FROM agentorch.runs r, LATERAL (SELECT r.tools OPERATOR(pg_catalog.->) $2 AS d) x "
				"WHERE r.id OPERATOR(pg_catalog.=) $1",
				2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		keep = list_length(tool_cache) < AO_TOOL_CACHE_MAX;
		MemoryContext spi = MemoryContextSwitchTo(keep ? tool_cache_cxt : caller);
		char	   *kind = SPI_getvalue(tup, desc, 1);
		char	   *spec = SPI_getvalue(tup, desc, 2);
		char	   *schema = SPI_getvalue(tup, desc, 3);
		char	   *policy = SPI_getvalue(tup, desc, 4);
		char	   *path = SPI_getvalue(tup, desc, 5);

		if (strcmp(name, "database.query") == 0)
		{
			t = palloc0(sizeof(AoTool));
			t->name = pstrdup(name);
			t->kind = "builtin";
			t->search_path = path ? path : AO_SAFE_SEARCH_PATH;
		}
		else
			t = tool_from_columns(name, kind, spec, schema, policy, path);
		if (t && keep)
		{
			ToolCacheEntry *e = palloc(sizeof(ToolCacheEntry));

			e->run = run;
			e->tool = t;
			tool_cache = lappend(tool_cache, e);
		}
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	ao_restore_user(&owner_scope);
	MemoryContextSwitchTo(caller);
	return t;
}

/* Push one SQL value onto a jsonb being built, keeping numbers and booleans typed. */
static void
push_datum(JsonbParseState **state, Datum value, bool isnull, Oid type, JsonbIteratorToken token)
{
	JsonbValue	v;

	if (isnull)
	{
		v.type = jbvNull;
		pushJsonbValue(state, token, &v);
		return;
	}
	switch (type)
	{
		case BOOLOID:
			v.type = jbvBool;
			v.val.boolean = DatumGetBool(value);
			break;
		case INT2OID:
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int2_numeric, value));
			break;
		case INT4OID:
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int4_numeric, value));
			break;
		case INT8OID:
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int8_numeric, value));
			break;
		case NUMERICOID:
			if (numeric_is_nan(DatumGetNumeric(value)) || numeric_is_inf(DatumGetNumeric(value)))
				goto as_text;
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(value);
			break;
		case FLOAT4OID:
		case FLOAT8OID:
			{
				double		d = type == FLOAT4OID ? DatumGetFloat4(value) : DatumGetFloat8(value);

				if (isnan(d) || isinf(d))
					goto as_text;
				v.type = jbvNumeric;
				v.val.numeric = DatumGetNumeric(DirectFunctionCall1(float8_numeric, Float8GetDatum(d)));
			}
			break;
		case JSONBOID:
			{
				Jsonb	   *jb = DatumGetJsonbP(value);

				v.type = jbvBinary;
				v.val.binary.data = &jb->root;
				v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
			}
			break;
		case JSONOID:
			{
				Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																	CStringGetDatum(TextDatumGetCString(value))));

				v.type = jbvBinary;
				v.val.binary.data = &jb->root;
				v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
			}
			break;
		default:
	as_text:
			{
				Oid			out;
				bool		varlena;
				char	   *s;

				getTypeOutputInfo(type, &out, &varlena);
				s = OidOutputFunctionCall(out, value);
				v.type = jbvString;
				v.val.string.val = s;
				v.val.string.len = strlen(s);
			}
			break;
	}
	pushJsonbValue(state, token, &v);
}

/*
 * The rows of the last SPI result as a jsonb array of objects keyed by
 * column name (into the given context).
 */
static Jsonb *
rows_to_jsonb(MemoryContext into)
{
	MemoryContext old = MemoryContextSwitchTo(into);
	JsonbParseState *state = NULL;
	TupleDesc	desc = SPI_tuptable->tupdesc;
	JsonbValue *res;

	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		for (int c = 1; c <= desc->natts; c++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, c - 1);
			JsonbValue	key;
			bool		isnull;
			Datum		d;

			if (att->attisdropped)
				continue;
			key.type = jbvString;
			key.val.string.val = NameStr(att->attname);
			key.val.string.len = strlen(NameStr(att->attname));
			pushJsonbValue(&state, WJB_KEY, &key);
			d = SPI_getbinval(SPI_tuptable->vals[r], desc, c, &isnull);
			push_datum(&state, d, isnull, att->atttypid, WJB_VALUE);
		}
		pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	}
	res = pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	{
		/* built in `into`: SPI's memory goes away at SPI_finish */
		Jsonb	   *result = JsonbValueToJsonb(res);

		MemoryContextSwitchTo(old);
		return result;
	}
}

/* The result of the last SPI statement: rows, or {"rows_affected": n}. */
static Jsonb *
spi_result(MemoryContext into)
{
	if (SPI_tuptable != NULL)
		return rows_to_jsonb(into);
	{
		MemoryContext old = MemoryContextSwitchTo(into);
		Jsonb	   *r = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
														   CStringGetDatum(psprintf("{\"rows_affected\": " UINT64_FORMAT "}",
																					SPI_processed))));

		MemoryContextSwitchTo(old);
		return r;
	}
}

/* Refuse results with more rows than agentorch.max_result_rows. */
static void
check_row_limit(const char *tool)
{
	if (SPI_processed > (uint64) ao_max_result_rows)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("tool \"%s\" returned more than %d rows", tool, ao_max_result_rows),
				 errhint("Add a LIMIT, or raise agentorch.max_result_rows.")));
}

/* Parser setup that lets the parser infer parameter types (like PREPARE without types). */
typedef struct VarParams
{
	Oid		   *types;
	int			n;
} VarParams;

static void
setup_var_params(ParseState *pstate, void *arg)
{
	VarParams  *vp = arg;

	setup_parse_variable_parameters(pstate, &vp->types, &vp->n);
}

/*
 * Convert one input value (json-c) to a parameter of the given type:
 * strings by their text, other JSON by its JSON text, JSON null to NULL.
 */
static Datum
json_to_param(json_object *v, Oid type, bool *isnull)
{
	const char *text;
	Oid			in;
	Oid			ioparam;

	*isnull = (v == NULL || json_object_is_type(v, json_type_null));
	if (*isnull)
		return (Datum) 0;
	if (json_object_is_type(v, json_type_string) && type != JSONOID && type != JSONBOID)
		text = json_object_get_string(v);
	else
		text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	getTypeInputInfo(type, &in, &ioparam);
	return OidInputFunctionCall(in, (char *) text, ioparam, -1);
}

/*
 * Kept plans of sql tools, by statement text: a tool runs the same
 * statement for every step, so it is parsed and planned once per process.
 * The plan cache replans after DDL, and for a different user where
 * row-level security applies, so sharing a plan between run owners is
 * safe (privileges are checked at every execution).
 */
#define AO_MAX_TOOL_PLANS 256
typedef struct ToolPlan
{
	char	   *sql;
	SPIPlanPtr	plan;
	VarParams  *params;			/* parser hook argument: lives as long as the plan */
} ToolPlan;
static ToolPlan tool_plans[AO_MAX_TOOL_PLANS];
static int	ntool_plans = 0;

/*
 * The plan of a sql tool's statement, prepared with inferred parameter
 * types; sets *vp to its parameters.
 */
static SPIPlanPtr
prepared_tool_plan(const char *tool, const char *sql, VarParams *vp)
{
	SPIPlanPtr	plan;
	VarParams  *pvp;

	for (int i = 0; i < ntool_plans; i++)
		if (strcmp(tool_plans[i].sql, sql) == 0)
		{
			*vp = *tool_plans[i].params;
			return tool_plans[i].plan;
		}

	/*
	 * The plan cache calls the parser setup hook again whenever it replans,
	 * with the same argument: so the argument, and the type array the parser
	 * fills, must live as long as the kept plan.
	 */
	pvp = MemoryContextAllocZero(TopMemoryContext, sizeof(VarParams));
	plan = SPI_prepare_params(sql, setup_var_params, pvp, 0);
	if (plan == NULL)
		elog(ERROR, "agentorch: could not prepare the statement of tool \"%s\": %s",
			 tool, SPI_result_code_string(SPI_result));
	{
		Oid		   *types = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * Max(pvp->n, 1));

		memcpy(types, pvp->types, sizeof(Oid) * pvp->n);
		pvp->types = types;
	}
	*vp = *pvp;
	if (ntool_plans < AO_MAX_TOOL_PLANS)
	{
		SPI_keepplan(plan);
		tool_plans[ntool_plans].sql = MemoryContextStrdup(TopMemoryContext, sql);
		tool_plans[ntool_plans].plan = plan;
		tool_plans[ntool_plans].params = pvp;
		ntool_plans++;
	}
	return plan;
}

/* Run a sql tool: its statement with the named input keys bound in order. */
static Jsonb *
run_sql_tool(AoTool *t, json_object *input, MemoryContext into)
{
	const char *sql = json_object_get_string(json_object_object_get(t->spec, "sql"));
	json_object *params = json_object_object_get(t->spec, "params");
	size_t		nparams = params ? json_object_array_length(params) : 0;
	VarParams	vp = {NULL, 0};
	SPIPlanPtr	plan;
	int			nargs;
	ParamListInfo paramLI;
	Jsonb	   *result;

	plan = prepared_tool_plan(t->name, sql, &vp);
	/* the parser wrote the number and types of $n into vp while preparing */
	nargs = vp.n;
	if ((size_t) nargs != nparams)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sql tool \"%s\" has %d parameters but its spec names %zu", t->name, nargs, nparams),
				 errhint("List one input key per $n in \"params\".")));
	paramLI = makeParamList(nargs);
	for (int i = 0; i < nargs; i++)
	{
		const char *key = json_object_get_string(json_object_array_get_idx(params, i));
		json_object *v = NULL;
		ParamExternData *prm = &paramLI->params[i];

		json_object_object_get_ex(input, key, &v);
		prm->ptype = vp.types[i] == UNKNOWNOID ? TEXTOID : vp.types[i];
		prm->value = json_to_param(v, prm->ptype, &prm->isnull);
		prm->pflags = PARAM_FLAG_CONST;
	}
	if (SPI_execute_plan_with_paramlist(plan, paramLI, false, ao_max_result_rows + 1) < 0)
		elog(ERROR, "agentorch: tool \"%s\" failed", t->name);
	check_row_limit(t->name);
	result = spi_result(into);
	return result;
}

/* Run a function tool: fn(input jsonb), its result as jsonb. */
static Jsonb *
run_function_tool(AoTool *t, Jsonb *input, MemoryContext into)
{
	const char *fn = json_object_get_string(json_object_object_get(t->spec, "function"));
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	Oid			fnoid;
	bool		isnull;
	char	   *sql;

	values[0] = CStringGetTextDatum(psprintf("%s(pg_catalog.jsonb)", fn));
	/*
	 * This runs with the tool's captured search_path: our own SQL here names
	 * nothing unqualified (no ::oid cast, which would find a domain "oid"
	 * early on that path); the regprocedure datum is the function's oid.
	 */
	if (SPI_execute_with_args("SELECT pg_catalog.to_regprocedure($1)", 1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "agentorch: could not look up function %s", fn);
	fnoid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull || !OidIsValid(fnoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s(jsonb) of tool \"%s\" does not exist", fn, t->name)));
	sql = psprintf("SELECT pg_catalog.to_jsonb(%s($1))",
				   quote_qualified_identifier(get_namespace_name(get_func_namespace(fnoid)),
											  get_func_name(fnoid)));
	types[0] = JSONBOID;
	values[0] = JsonbPGetDatum(input);
	if (SPI_execute_with_args(sql, 1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "agentorch: tool \"%s\" failed", t->name);
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(into);
		Jsonb	   *r = isnull ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("null")))
			: DatumGetJsonbPCopy(d);

		MemoryContextSwitchTo(old);
		return r;
	}
}

/*
 * database.query: {"query": "SELECT ... $1", "params": [v1, ...]} -- one
 * read-only statement, run in a read-only transaction state with the
 * query timeout. The query is a literal of the step's definition (checked
 * by validation and by the executor); values reach it only as bound
 * parameters, their types inferred by the parser (unknown ones as text).
 */
static Jsonb *
run_database_query(json_object *input, MemoryContext into)
{
	json_object *q = NULL;
	json_object *params = NULL;
	const char *query;
	size_t		nparams;
	VarParams	vp = {NULL, 0};
	SPIPlanPtr	plan;
	ParamListInfo paramLI;

	if (!json_object_object_get_ex(input, "query", &q) || !json_object_is_type(q, json_type_string))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("database.query needs an input {\"query\": \"SELECT ...\"}")));
	if (json_object_object_get_ex(input, "params", &params) && !json_object_is_type(params, json_type_array))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"params\" of database.query must be an array of values bound to $1, $2, ...")));
	nparams = params ? json_object_array_length(params) : 0;
	query = json_object_get_string(q);
	if (list_length(raw_parser(query, RAW_PARSE_DEFAULT)) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("database.query runs exactly one statement")));
	(void) set_config_option("transaction_read_only", "on", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	plan = prepared_tool_plan("database.query", query, &vp);
	if ((size_t) vp.n != nparams)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("database.query has %d parameters but \"params\" has %zu values", vp.n, nparams),
				 errhint("Give one value in \"params\" per $n of the query.")));
	paramLI = makeParamList(vp.n);
	for (int i = 0; i < vp.n; i++)
	{
		ParamExternData *prm = &paramLI->params[i];

		prm->ptype = vp.types[i] == UNKNOWNOID ? TEXTOID : vp.types[i];
		prm->value = json_to_param(json_object_array_get_idx(params, i), prm->ptype, &prm->isnull);
		prm->pflags = PARAM_FLAG_CONST;
	}
	if (SPI_execute_plan_with_paramlist(plan, paramLI, false, ao_max_result_rows + 1) < 0)
		elog(ERROR, "agentorch: database.query failed");
	check_row_limit("database.query");
	return spi_result(into);
}

/*
 * Run a transactional tool with the current user already switched to the
 * run's owner (claim.c does that). ERRORs on failure; the result is
 * allocated in `into`.
 */
Jsonb *
ao_run_tool_as_owner(AoTool *t, Jsonb *input, MemoryContext into)
{
	json_object *in = ao_json_from_jsonb(input);
	Jsonb	   *result;
	int			timeout_set = 0;

	(void) timeout_set;
	SPI_connect();
	if (strcmp(t->kind, "builtin") == 0)
		result = run_database_query(in, into);
	else if (strcmp(t->kind, "sql") == 0)
		result = run_sql_tool(t, in, into);
	else if (strcmp(t->kind, "function") == 0)
		result = run_function_tool(t, input, into);
	else
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tool \"%s\" of kind %s does not run in a transaction", t->name, t->kind)));
	SPI_finish();
	return result;
}
