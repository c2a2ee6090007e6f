/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  SQL API: register_workflow, register_workflow_yaml, register_tool and
 *	  register_model -- the definitions runs are made of.
 *
 * Every registration checks the whole definition first and stores nothing
 * when anything is wrong. Rows are written as the extension owner; the
 * caller is recorded as created_by/owner. Workflows are versioned:
 * registering a changed definition adds a version, registering the latest
 * definition again returns its version. Only the role that created a
 * workflow name (or one with its privileges) may add versions, and only a
 * tool's owner may replace it, so one role cannot redirect another's runs.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/api/registry.c
 *
 *-------------------------------------------------------------------------
 */
#include "api.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/parser.h"
#include "catalog/namespace.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "ao_json_schema.h"
#include "ao_secret.h"
#include "ao_workflow.h"

PG_FUNCTION_INFO_V1(ao_sql_register_workflow);
PG_FUNCTION_INFO_V1(ao_sql_register_workflow_yaml);
PG_FUNCTION_INFO_V1(ao_sql_register_tool);
PG_FUNCTION_INFO_V1(ao_sql_register_model);

/* Refuse a name that does not match the pattern of its table's CHECK. */
static void
check_name(const char *name, const char *what, const char *extra_chars, int maxlen)
{
	size_t		len = strlen(name);
	bool		ok = len > 0 && (int) len <= maxlen;

	for (size_t i = 0; ok && i < len; i++)
	{
		char		c = name[i];

		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '_' ||
			(i > 0 && strchr(extra_chars, c) != NULL);
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid %s name \"%s\"", what, name),
				 errdetail("A %s name has 1 to %d characters: letters, digits and \"_\", and after the first character also any of \"%s\".",
						   what, maxlen, extra_chars)));
}

/*
 * Validate with a definition of orchestration-config.schema.json: a copy
 * of the document whose root "$ref" points at the definition (draft 7
 * ignores the siblings of $ref, so only the definition applies).
 */
static void
check_against_definition(json_object *value, const char *definition, const char *what)
{
	json_object *root = ao_load_schema("orchestration-config");
	json_object *copy = NULL;
	ao_problems *p = ao_problems_new();

	if (json_object_deep_copy(root, &copy, NULL) != 0)
		elog(ERROR, "out of memory copying a JSON Schema");
	ao_json_own(copy);
	json_object_object_add(copy, "$ref",
						   json_object_new_string(psprintf("#/definitions/%s", definition)));
	if (ao_json_schema_validate(copy, value, ao_problems_add, p) > 0)
		ao_problems_raise(p, ERRCODE_INVALID_PARAMETER_VALUE, psprintf("invalid %s", what));
}

/*
 * Store a checked workflow definition under name; returns its version.
 * Serialised per name by an advisory lock so concurrent registrations
 * get distinct versions.
 */
static int
store_workflow(const char *name, Jsonb *definition, json_object *normalized)
{
	json_object *body = ao_workflow_body(normalized);
	json_object *inner_name;
	Oid			caller = GetUserId();
	AoUserScope owner_scope;
	Oid			types[3] = {TEXTOID, JSONBOID, OIDOID};
	Datum		values[3];
	bool		isnull;
	int			version;

	/*
	 * The registry name is this argument; the definition's own "name" (and
	 * "version") are display text in any language (the design notes'
	 * example is named "데이터 분석 워크플로우").
	 */
	check_name(name, "workflow", ".-", 63);
	ao_require_schema_for_workflow(body);
	(void) inner_name;

	values[0] = CStringGetTextDatum(name);
	values[1] = JsonbPGetDatum(definition);
	values[2] = ObjectIdGetDatum(caller);

	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	SPI_execute_with_args("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('agentorch.workflow:' OPERATOR(pg_catalog.||) $1))",
						  1, types, values, NULL, false, 0);

	/* who created this name, and is the latest version identical? */
	if (SPI_execute_with_args("SELECT (SELECT created_by FROM agentorch.workflows "
							  "         WHERE name OPERATOR(pg_catalog.=) $1 ORDER BY version LIMIT 1), "
							  "       w.version, w.definition_hash OPERATOR(pg_catalog.=) "
							  "         pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to($2::text, 'UTF8')), 'hex') "
							  "FROM agentorch.workflows w WHERE w.name OPERATOR(pg_catalog.=) $1 "
							  "ORDER BY w.version DESC LIMIT 1",
							  2, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read agentorch.workflows");
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Oid			creator = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		int			latest = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		bool		same = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));

		if (!has_privs_of_role(caller, creator))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("workflow \"%s\" belongs to role \"%s\"", name,
							GetUserNameFromId(creator, true) ? GetUserNameFromId(creator, true) : "?"),
					 errhint("Only its creator (or a member of that role) can add versions; choose another name.")));
		if (same)
		{
			SPI_finish();
			ao_restore_user(&owner_scope);
			return latest;
		}
	}
	if (SPI_execute_with_args("INSERT INTO agentorch.workflows "
							  "  (name, version, definition, definition_hash, created_by) "
							  "SELECT $1, COALESCE(pg_catalog.max(version), 0) OPERATOR(pg_catalog.+) 1, $2, "
							  "  pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to($2::text, 'UTF8')), 'hex'), $3 "
							  "FROM agentorch.workflows WHERE name OPERATOR(pg_catalog.=) $1 "
							  "RETURNING version",
							  3, types, values, NULL, false, 1) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not insert into agentorch.workflows");
	version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	ao_restore_user(&owner_scope);
	return version;
}

/* Check a definition and store it, raising every problem at once. */
static int
register_definition(const char *name, Jsonb *definition)
{
	json_object *normalized;
	ao_problems *p = ao_workflow_problems(definition, &normalized);

	if (p->n > 0)
	{
		/* a tool the caller may not use is a privilege error, not bad input */
		for (size_t i = 0; i < p->n; i++)
			if (strncmp(p->messages[i], AO_TOOL_DENIED_PREFIX, strlen(AO_TOOL_DENIED_PREFIX)) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("%s (at %s) in workflow \"%s\"", p->messages[i], p->paths[i], name),
						 errdetail("%s", ao_problems_detail(p)),
						 errhint("The tool's owner can allow it with agentorch.grant_tool().")));
		ao_problems_raise(p, ERRCODE_INVALID_PARAMETER_VALUE,
						  psprintf("invalid workflow definition \"%s\"", name));
	}
	{
		int			version = store_workflow(name, definition, normalized);

		ao_audit_kv("register_workflow", name, 0, "version", psprintf("%d", version), NULL);
		return version;
	}
}

/* register_workflow(name text, definition jsonb) RETURNS int */
Datum
ao_sql_register_workflow(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(register_definition(text_to_cstring(PG_GETARG_TEXT_PP(0)),
										PG_GETARG_JSONB_P(1)));
}

/* register_workflow_yaml(name text, definition text) RETURNS int */
Datum
ao_sql_register_workflow_yaml(PG_FUNCTION_ARGS)
{
	json_object *obj = ao_json_from_yaml_text(PG_GETARG_TEXT_PP(1));

	PG_RETURN_INT32(register_definition(text_to_cstring(PG_GETARG_TEXT_PP(0)),
										ao_jsonb_from_json(obj)));
}

/* Borrowed string member, or NULL. */
static const char *
member_string(json_object *obj, const char *key)
{
	json_object *v;

	if (json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

/*
 * Parse the statement of a sql tool. A syntax error is re-raised naming
 * the tool, with its position inside the tool's statement (not the
 * caller's query). Parsing touches no shared state, so catching the error
 * without a subtransaction is safe: it is re-thrown at once.
 */
static List *
parse_tool_sql(const char *name, const char *sql)
{
	MemoryContext caller = CurrentMemoryContext;
	List	   *volatile stmts = NIL;

	PG_TRY();
	{
		stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("invalid statement in sql tool \"%s\": %s", name, edata->message),
				 internalerrposition(edata->cursorpos),
				 internalerrquery(sql)));
	}
	PG_END_TRY();
	return stmts;
}

/* Refuse a tool spec that cannot work, with a message saying what to fix. */
static void
check_tool_spec(const char *name, const char *kind, json_object *spec, const char *search_path)
{
	if (!json_object_is_type(spec, json_type_object))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("spec of tool \"%s\" must be a JSON object", name)));

	if (strcmp(kind, "sql") == 0)
	{
		const char *sql = member_string(spec, "sql");
		json_object *params;
		List	   *stmts;

		if (sql == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("sql tool \"%s\" needs a \"sql\" string in its spec", name),
					 errhint("For example {\"sql\": \"SELECT * FROM t WHERE id = $1\", \"params\": [\"id\"]}.")));
		if (json_object_object_get_ex(spec, "params", &params))
		{
			bool		ok = json_object_is_type(params, json_type_array);

			for (size_t i = 0; ok && i < json_object_array_length(params); i++)
				ok = json_object_is_type(json_object_array_get_idx(params, i), json_type_string);
			if (!ok)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("\"params\" of sql tool \"%s\" must be an array of input key names", name)));
		}
		if (strstr(sql, "${") != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a ${...} reference cannot be used inside the statement of sql tool \"%s\"", name),
					 errdetail("A tool's statement is a literal: nothing a model or an input writes is executed as SQL."),
					 errhint("Write $1, $2, ... and name the input keys they take in \"params\".")));
		stmts = parse_tool_sql(name, sql);
		if (list_length(stmts) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("sql tool \"%s\" must contain exactly one statement", name)));
	}
	else if (strcmp(kind, "function") == 0)
	{
		const char *fn = member_string(spec, "function");
		Oid			types[1] = {TEXTOID};
		Datum		values[1];
		bool		found;
		int			nest;

		if (fn == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("function tool \"%s\" needs a \"function\" name in its spec", name),
					 errhint("For example {\"function\": \"myschema.my_fn\"} for my_fn(jsonb).")));

		values[0] = CStringGetTextDatum(fn);
		/* resolved as it will be when the tool runs: with the captured path */
		nest = NewGUCNestLevel();
		(void) set_config_option("search_path", search_path, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		SPI_connect();
		found = SPI_execute_with_args("SELECT pg_catalog.to_regprocedure($1 OPERATOR(pg_catalog.||) '(pg_catalog.jsonb)') IS NOT NULL",
									  1, types, values, NULL, true, 1) == SPI_OK_SELECT &&
			SPI_processed == 1 &&
			DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &found));
		SPI_finish();
		AtEOXact_GUC(true, nest);
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("function %s(jsonb) does not exist", fn),
					 errhint("A function tool calls a function taking one jsonb argument.")));
	}
	else if (strcmp(kind, "http") == 0)
	{
		const char *url = member_string(spec, "url");
		const char *method = member_string(spec, "method");
		json_object *headers;

		if (url == NULL || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("http tool \"%s\" needs an http:// or https:// \"url\" in its spec", name)));
		if (method && strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 &&
			strcmp(method, "PUT") != 0 && strcmp(method, "PATCH") != 0 &&
			strcmp(method, "DELETE") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unsupported HTTP method \"%s\" in tool \"%s\"", method, name),
					 errhint("Use GET, POST, PUT, PATCH or DELETE.")));
		if (json_object_object_get_ex(spec, "headers", &headers))
		{
			bool		ok = json_object_is_type(headers, json_type_object);

			if (ok)
			{
				json_object_object_foreach(headers, k, v)
				{
					(void) k;
					ok = ok && json_object_is_type(v, json_type_string);
				}
			}
			if (!ok)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("\"headers\" of http tool \"%s\" must be an object of strings", name)));
			{
				json_object_object_foreach(headers, hk, hv)
				{
					if (ao_header_looks_secret(hk, json_object_get_string(hv)))
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								 errmsg("header \"%s\" of http tool \"%s\" looks like a credential", hk, name),
								 errdetail("Tool specs are readable by every role."),
								 errhint("Keep the value in an environment variable of the server and name it in "
										 "\"headers_env\": {\"%s\": {\"env\": \"MY_SERVICE_TOKEN\", \"prefix\": \"Bearer \"}}.", hk)));
				}
			}
		}
		if (json_object_object_get_ex(spec, "headers_env", &headers))
		{
			/*
			 * Naming a server credential is an administrator's act, as
			 * registering a model is: a role that could attach any *_TOKEN
			 * of the server to requests of its own could act with the
			 * administrator's credentials or send them to another allowed
			 * host. Other roles use such a tool once granted it.
			 */
			if (!superuser())
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("only superusers may register tools that send server credentials (headers_env)"),
						 errhint("A superuser registers the tool and grants it with agentorch.grant_tool().")));
			ao_check_headers_env(headers, psprintf("http tool \"%s\"", name));
		}
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown tool kind \"%s\"", kind),
				 errhint("A tool kind is sql, function or http.")));
}

/*
 * register_tool(name, kind, spec, input_schema DEFAULT NULL, policy DEFAULT '{}')
 * Creates or replaces a tool; replacing needs the privileges of its owner.
 */
Datum
ao_sql_register_tool(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *kind;
	json_object *spec;
	Oid			caller = GetUserId();
	AoUserScope owner_scope;
	Oid			types[7] = {TEXTOID, TEXTOID, JSONBOID, JSONBOID, JSONBOID, OIDOID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	char	   *search_path;
	int			nest;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tool name, kind and spec must not be null")));
	/* the caller's search_path, kept for the tool; then only the safe one */
	search_path = pstrdup(namespace_search_path);
	nest = ao_push_safe_search_path();	/* popped at exit; abort pops it on ERROR */
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
	check_name(name, "tool", ".:-", 200);
	if (strcmp(name, "database.query") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("tool \"database.query\" is built in and cannot be replaced")));
	ao_check_size(VARSIZE(PG_GETARG_JSONB_P(2)), "tool spec");
	spec = ao_json_from_jsonb(PG_GETARG_JSONB_P(2));
	check_tool_spec(name, kind, spec, search_path);

	if (!PG_ARGISNULL(3))
	{
		json_object *schema = ao_json_from_jsonb(PG_GETARG_JSONB_P(3));
		ao_problems *p = ao_problems_new();

		if (ao_json_schema_check(schema, ao_problems_add, p) > 0)
			ao_problems_raise(p, ERRCODE_INVALID_PARAMETER_VALUE,
							  psprintf("invalid input_schema of tool \"%s\"", name));
		values[3] = JsonbPGetDatum(PG_GETARG_JSONB_P(3));
	}
	else
		nulls[3] = 'n';
	if (!PG_ARGISNULL(4))
	{
		check_against_definition(ao_json_from_jsonb(PG_GETARG_JSONB_P(4)), "tool_policy",
								 psprintf("policy of tool \"%s\"", name));
		values[4] = JsonbPGetDatum(PG_GETARG_JSONB_P(4));
	}
	else
		values[4] = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(kind);
	values[2] = JsonbPGetDatum(PG_GETARG_JSONB_P(2));
	values[5] = ObjectIdGetDatum(caller);
	values[6] = CStringGetTextDatum(search_path);

	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	if (SPI_execute_with_args("SELECT owner FROM agentorch.tools WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
							  1, types, values, NULL, false, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		Oid			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1, &isnull));

		if (!has_privs_of_role(caller, owner))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("tool \"%s\" belongs to another role", name),
					 errhint("Only its owner (or a member of that role) can replace it.")));
	}
	if (SPI_execute_with_args("INSERT INTO agentorch.tools (name, kind, spec, input_schema, policy, owner, search_path) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7) "
							  "ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, spec = EXCLUDED.spec, "
							  "  input_schema = EXCLUDED.input_schema, policy = EXCLUDED.policy, "
							  "  search_path = EXCLUDED.search_path, updated_at = pg_catalog.now()",
							  7, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store tool \"%s\"", name);
	SPI_finish();
	ao_restore_user(&owner_scope);
	AtEOXact_GUC(true, nest);
	ao_audit_kv("register_tool", name, 0, "kind", kind, NULL);
	PG_RETURN_VOID();
}

/*
 * register_model(name, provider, spec): creates or replaces a logical
 * model. EXECUTE is revoked from PUBLIC in the install script.
 */
Datum
ao_sql_register_model(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *provider = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Jsonb	   *jb = PG_GETARG_JSONB_P(2);
	json_object *spec;
	AoUserScope owner_scope;
	Oid			types[3] = {TEXTOID, TEXTOID, JSONBOID};
	Datum		values[3];

	check_name(name, "model", ".:-", 100);
	if (strcmp(provider, "openai") != 0 && strcmp(provider, "anthropic") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown provider \"%s\"", provider),
				 errhint("Use \"openai\" for any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, LM Studio) or \"anthropic\".")));
	ao_check_size(VARSIZE(jb), "model spec");
	spec = ao_json_from_jsonb(jb);
	if (json_object_is_type(spec, json_type_object) &&
		(json_object_object_get_ex(spec, "api_key", NULL) ||
		 json_object_object_get_ex(spec, "key", NULL)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model specs must not contain API keys"),
				 errhint("Put the key in an environment variable of the server and name it in \"api_key_env\".")));
	check_against_definition(spec, "model_spec", psprintf("spec of model \"%s\"", name));
	{
		json_object *v;

		if (json_object_object_get_ex(spec, "api_key_env", &v) && json_object_is_type(v, json_type_string))
			ao_check_api_key_env(json_object_get_string(v), psprintf("model \"%s\"", name));
		if (json_object_object_get_ex(spec, "base_url", &v) && json_object_is_type(v, json_type_string))
			ao_check_model_host(json_object_get_string(v), psprintf("model \"%s\"", name));
	}

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(provider);
	values[2] = JsonbPGetDatum(jb);
	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO agentorch.models (name, provider, spec) VALUES ($1, $2, $3) "
							  "ON CONFLICT (name) DO UPDATE SET provider = EXCLUDED.provider, "
							  "  spec = EXCLUDED.spec, updated_at = pg_catalog.now()",
							  3, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store model \"%s\"", name);
	SPI_finish();
	ao_restore_user(&owner_scope);
	ao_audit_kv("register_model", name, 0, "provider", provider, NULL);
	PG_RETURN_VOID();
}

/*-------------------------------------------------------------------------
 * Tool ownership: grant_tool, revoke_tool, drop_tool
 *-------------------------------------------------------------------------
 */

/*
 * Lock a tool's row and check that the caller owns it (or is a member of
 * the owner role, or a superuser). ERRORs 42704 when it does not exist,
 * 42501 when the caller may not manage it. Call as the extension owner,
 * with caller the identity from before the switch.
 */
static void
check_tool_owner(const char *tool, Oid caller, const char *action)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	Oid			owner;

	values[0] = CStringGetTextDatum(tool);
	if (SPI_execute_with_args("SELECT owner FROM agentorch.tools WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
							  1, types, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tool \"%s\" does not exist", tool)));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!has_privs_of_role(caller, owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only the owner of tool \"%s\" can %s it", tool, action)));
}

/* grant_tool(tool, grantee) / revoke_tool(tool, grantee). */
static void
change_tool_grant(FunctionCallInfo fcinfo, bool grant)
{
	char	   *tool = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			grantee = PG_GETARG_OID(1);
	Oid			caller = GetUserId();
	Oid			types[3] = {TEXTOID, OIDOID, OIDOID};
	Datum		values[3];
	AoUserScope owner_scope;

	values[0] = CStringGetTextDatum(tool);
	values[1] = ObjectIdGetDatum(grantee);
	values[2] = ObjectIdGetDatum(caller);
	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	check_tool_owner(tool, caller, grant ? "grant" : "revoke");
	if (SPI_execute_with_args(grant
							  ? "INSERT INTO agentorch.tool_grants (tool, grantee, granted_by) VALUES ($1, $2, $3) "
							  "ON CONFLICT (tool, grantee) DO NOTHING"
							  : "DELETE FROM agentorch.tool_grants WHERE tool OPERATOR(pg_catalog.=) $1 "
							  "AND grantee OPERATOR(pg_catalog.=) $2",
							  grant ? 3 : 2, types, values, NULL, false, 0) < 0)
		elog(ERROR, "agentorch: could not change the grants of tool \"%s\"", tool);
	SPI_finish();
	ao_restore_user(&owner_scope);
	ao_audit_kv(grant ? "grant_tool" : "revoke_tool", tool, 0,
				"grantee", GetUserNameFromId(grantee, true), NULL);
}

/* grant_tool(tool text, grantee regrole) RETURNS void */
PG_FUNCTION_INFO_V1(ao_sql_grant_tool);
Datum
ao_sql_grant_tool(PG_FUNCTION_ARGS)
{
	change_tool_grant(fcinfo, true);
	PG_RETURN_VOID();
}

/* revoke_tool(tool text, grantee regrole) RETURNS void */
PG_FUNCTION_INFO_V1(ao_sql_revoke_tool);
Datum
ao_sql_revoke_tool(PG_FUNCTION_ARGS)
{
	change_tool_grant(fcinfo, false);
	PG_RETURN_VOID();
}

/*
 * drop_tool(tool text) RETURNS boolean: its owner (or a superuser) drops
 * it with its grants. Runs in flight keep the definition they pinned.
 */
PG_FUNCTION_INFO_V1(ao_sql_drop_tool);
Datum
ao_sql_drop_tool(PG_FUNCTION_ARGS)
{
	char	   *tool = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			caller = GetUserId();
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	AoUserScope owner_scope;

	if (strcmp(tool, "database.query") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("tool \"database.query\" is built in and cannot be dropped")));
	values[0] = CStringGetTextDatum(tool);
	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	check_tool_owner(tool, caller, "drop");
	if (SPI_execute_with_args("DELETE FROM agentorch.tools WHERE name OPERATOR(pg_catalog.=) $1",
							  1, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "agentorch: could not drop tool \"%s\"", tool);
	SPI_finish();
	ao_restore_user(&owner_scope);
	ao_audit("drop_tool", tool, 0, NULL);
	PG_RETURN_BOOL(true);
}
