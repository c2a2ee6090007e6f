/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Catalog helpers of the extension layer: the extension owner, the
 *	  schema version installed in this database (ao_schema_at_least,
 *	  ao_require_schema), acting as that owner for agentorch's own
 *	  bookkeeping, the stored JSON Schemas, tool lookup, and the
 *	  server-side half of workflow checks (tools exist, conditions are
 *	  valid jsonpath), and the check of the SQL functions' interval
 *	  arguments (ao_interval_arg_ms).
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
 *	  src/common/catalog.c
 *
 *-------------------------------------------------------------------------
 */
#include "common.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "executor/tuptable.h"
#include "utils/snapmgr.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/guc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "nodes/value.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "storage/proc.h"

#include "ao_json_schema.h"
#include "ao_workflow.h"

/* Tools every database has without registering them. */
static const char *const builtin_tools[] = {"database.query", NULL};

/* ao_schema_version's cache: valid for one transaction and command. */
static LocalTransactionId schema_cached_lxid = InvalidLocalTransactionId;
static CommandId schema_cached_cid = InvalidCommandId;
static int	schema_cached_version = -1;
static char schema_cached_text[NAMEDATALEN];
static Oid	schema_cached_owner = InvalidOid;

/*
 * Read agentorch's extversion and extowner from pg_extension into the
 * cache (an index lookup; "", -1 and InvalidOid when the extension is not
 * installed). ERRORs on a
 * version string that is not major.minor[.patch], which cannot happen with
 * the scripts this library ships.
 */
static void
schema_version_lookup(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;

	schema_cached_version = -1;
	schema_cached_text[0] = '\0';
	schema_cached_owner = InvalidOid;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("agentorch"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);
		char	   *vtext = isnull ? pstrdup("") : TextDatumGetCString(d);
		int			major = 0,
					minor = 0,
					patch = 0;

		if (sscanf(vtext, "%d.%d.%d", &major, &minor, &patch) < 2 ||
			major < 0 || minor < 0 || minor > 99 || patch < 0 || patch > 99)
			elog(ERROR, "unrecognized agentorch version \"%s\" in pg_extension", vtext);
		strlcpy(schema_cached_text, vtext, sizeof(schema_cached_text));
		schema_cached_version = AO_SCHEMA_VERSION(major, minor, patch);
		schema_cached_owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
		pfree(vtext);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * agentorch's schema version in this database as AO_SCHEMA_VERSION(major,
 * minor, patch), or -1 when the extension is not installed. Needs a
 * transaction. Cheap on hot paths: the value is cached for the current
 * transaction and command, so a version changed by ALTER EXTENSION ...
 * UPDATE is seen by the next command of the same transaction (the update
 * wrote, so the command counter moved) and by every later transaction.
 * (No syscache callback: pg_extension's syscache exists only on newer
 * minor releases of PostgreSQL 15.)
 */
int
ao_schema_version(void)
{
	CommandId	cid = GetCurrentCommandId(false);

	if (schema_cached_lxid != MyProc->lxid || schema_cached_cid != cid)
	{
		/* invalidate first: an ERROR inside the lookup leaves no stale value */
		schema_cached_lxid = InvalidLocalTransactionId;
		schema_version_lookup();
		schema_cached_lxid = MyProc->lxid;
		schema_cached_cid = cid;
	}
	return schema_cached_version;
}

/*
 * The role that owns the agentorch extension (and its tables), read with
 * the version (the hot path switches owner per step; a statement here was
 * parsed and planned in every transaction). ERRORs if the extension is not
 * installed in this database.
 */
Oid
ao_extension_owner(void)
{
	(void) ao_schema_version();
	if (!OidIsValid(schema_cached_owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"agentorch\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION agentorch.")));
	return schema_cached_owner;
}

/*
 * Is agentorch's schema in this database at major.minor or newer? False
 * when the extension is not installed.
 */
bool
ao_schema_at_least(int major, int minor)
{
	return ao_schema_version() >= AO_SCHEMA_VERSION(major, minor, 0);
}

/*
 * ERROR (0A000) unless agentorch's schema in this database is at
 * major.minor or newer: feature (e.g. "agentorch.foo()") needs SQL objects
 * that ALTER EXTENSION agentorch UPDATE creates. Without the extension,
 * the "not installed" error of ao_extension_owner.
 */
void
ao_require_schema(int major, int minor, const char *feature)
{
	int			version = ao_schema_version();

	if (version < 0)
		(void) ao_extension_owner();	/* raises "not installed" */
	if (version < AO_SCHEMA_VERSION(major, minor, 0))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s needs agentorch %d.%d.0 in this database (installed: %s)",
						feature, major, minor, schema_cached_text),
				 errhint("Run ALTER EXTENSION agentorch UPDATE.")));
}

/*
 * agentorch._require_schema(major int, minor int, feature text) RETURNS
 * text: ao_require_schema from SQL, returning the installed version. Not
 * part of any install script (a database at an older version could not
 * call it); the upgrade tests create it themselves to watch the check
 * across ALTER EXTENSION ... UPDATE.
 */
PG_FUNCTION_INFO_V1(ao_sql_require_schema);
Datum
ao_sql_require_schema(PG_FUNCTION_ARGS)
{
	ao_require_schema(PG_GETARG_INT32(0), PG_GETARG_INT32(1),
					  text_to_cstring(PG_GETARG_TEXT_PP(2)));
	PG_RETURN_TEXT_P(cstring_to_text(schema_cached_text));
}

/*
 * Switch the current user to the extension owner for agentorch's own
 * bookkeeping, under the safe search_path (AO_SAFE_SEARCH_PATH) in a new
 * GUC nest level -- what fmgr_security_definer does for a SECURITY
 * DEFINER function -- so that no object of the caller's search_path (an
 * operator, a function, a type early on the path) can ever be reached
 * with the owner's rights. The previous identity and nest level are saved
 * in scope for ao_restore_user; on ERROR, (sub)transaction abort restores
 * both.
 */
void
ao_become_extension_owner(AoUserScope *scope)
{
	Oid			owner = ao_extension_owner();

	GetUserIdAndSecContext(&scope->uid, &scope->sec);
	SetUserIdAndSecContext(owner, scope->sec | SECURITY_LOCAL_USERID_CHANGE);
	scope->nest = ao_push_safe_search_path();
}

/* Undo ao_become_extension_owner: the settings, then the user. */
void
ao_restore_user(AoUserScope *scope)
{
	AtEOXact_GUC(true, scope->nest);
	SetUserIdAndSecContext(scope->uid, scope->sec);
}

/*
 * In the PG_CATCH of an internal subtransaction: copy the error out (into
 * caller), clear it, roll the subtransaction back and restore the caller's
 * memory context and resource owner -- what every "this step's failure,
 * not the batch's" path does. Returns the error for the caller to record,
 * rethrow or FreeErrorData.
 */
ErrorData *
ao_abort_subxact(MemoryContext caller, ResourceOwner owner)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(caller);
	edata = CopyErrorData();
	FlushErrorState();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(caller);
	CurrentResourceOwner = owner;
	return edata;
}

/*
 * Open a GUC nest level with search_path set to AO_SAFE_SEARCH_PATH;
 * returns the level for AtEOXact_GUC(true, level). SQL run inside can then
 * only name pg_catalog's objects unqualified.
 */
int
ao_push_safe_search_path(void)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("search_path", AO_SAFE_SEARCH_PATH, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

/*
 * Load a JSON Schema from agentorch._schemas (generated from schemas/) as
 * an owned json-c object. ERRORs if it is missing, which means a broken
 * installation. Parsed schemas are kept for the process, per extension
 * version (the table changes only with the extension's scripts): start()
 * checked every run's input against a schema read and parsed anew.
 * Callers get a reference of their own and must not change the schema.
 */
#define AO_MAX_CACHED_SCHEMAS 8
static struct
{
	char		name[NAMEDATALEN];
	int			version;
	json_object *schema;		/* the cache's reference */
}			cached_schemas[AO_MAX_CACHED_SCHEMAS];
static int	ncached_schemas = 0;

json_object *
ao_load_schema(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	char	   *text = NULL;
	MemoryContext caller = CurrentMemoryContext;
	int			version = ao_schema_version();
	json_object *schema;

	for (int i = 0; i < ncached_schemas; i++)
		if (cached_schemas[i].version == version && strcmp(cached_schemas[i].name, name) == 0)
			return ao_json_own(json_object_get(cached_schemas[i].schema));

	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	if (ao_spi_exec("SELECT schema::text FROM agentorch._schemas "
					"WHERE name OPERATOR(pg_catalog.=) $1",
					1, argtypes, values, NULL, 0) == SPI_OK_SELECT &&
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
	schema = ao_json_from_cstring(text, strlen(text), "stored JSON Schema");
	if (ncached_schemas < AO_MAX_CACHED_SCHEMAS && strlen(name) < NAMEDATALEN)
	{
		strlcpy(cached_schemas[ncached_schemas].name, name, NAMEDATALEN);
		cached_schemas[ncached_schemas].version = version;
		cached_schemas[ncached_schemas].schema = json_object_get(schema);
		ncached_schemas++;
		/* kept unchanged for the backend's life: validations reuse its preparation */
		ao_json_schema_keep(schema);
	}
	return schema;
}

/*
 * Scan keys sk[0..nkeys) for "the first nkeys columns of the btree index idx
 * equal keys" (each column's equality operator of its operator family).
 */
void
ao_index_equal_keys(Relation idx, int nkeys, const Datum *keys, ScanKeyData *sk)
{
	Assert(nkeys > 0 && nkeys <= IndexRelationGetNumberOfKeyAttributes(idx));
	for (int i = 0; i < nkeys; i++)
	{
		Oid			type = idx->rd_opcintype[i];
		Oid			eq = get_opfamily_member(idx->rd_opfamily[i], type, type, BTEqualStrategyNumber);

		ScanKeyEntryInitialize(&sk[i], 0, i + 1, BTEqualStrategyNumber, type, idx->rd_indcollation[i],
							   get_opcode(eq), keys[i]);
	}
}

/*
 * Read the rows of agentorch.<table> whose first nkeys columns of the
 * index agentorch.<index> equal keys (values of those columns' types),
 * as a statement run through SPI would see them, in index order
 * (BackwardScanDirection: from the last). found(arg, slot) is called for
 * each row until it returns false. No SQL is parsed or planned, so what a session's first start()
 * reads this way costs it little more than its next. The caller checks
 * privileges (it reads as the extension owner, or checks the table's).
 */
void
ao_index_scan(const char *table, const char *index, int nkeys, const Datum *keys, ScanDirection dir,
			  bool (*found) (void *arg, TupleTableSlot *slot), void *arg)
{
	Oid			nsp = get_namespace_oid("agentorch", false);
	Oid			heap_id = get_relname_relid(table, nsp);
	Oid			index_id = get_relname_relid(index, nsp);
	Relation	heap;
	Relation	idx;
	ScanKeyData sk[INDEX_MAX_KEYS];
	IndexScanDesc scan;
	TupleTableSlot *slot;

	if (!OidIsValid(heap_id) || !OidIsValid(index_id))
		elog(ERROR, "agentorch: agentorch.%s or its index %s is missing", table, index);
	heap = table_open(heap_id, AccessShareLock);
	idx = index_open(index_id, AccessShareLock);
	ao_index_equal_keys(idx, nkeys, keys, sk);
	slot = table_slot_create(heap, NULL);
	/*
	 * What a statement run through SPI would see: this transaction's writes
	 * so far (a workflow registered earlier in the same statement), and
	 * under READ COMMITTED what others committed since the statement began.
	 */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	scan = index_beginscan(heap, idx, GetActiveSnapshot(), nkeys, 0);
	index_rescan(scan, sk, nkeys, NULL, 0);
	while (index_getnext_slot(scan, dir, slot))
		if (!found(arg, slot))
			break;
	index_endscan(scan);
	PopActiveSnapshot();
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(heap, AccessShareLock);
}

/* A column of a row read by ao_index_scan, by name. */
Datum
ao_slot_column(TupleTableSlot *slot, const char *column, bool *isnull)
{
	TupleDesc	desc = slot->tts_tupleDescriptor;

	for (int a = 0; a < desc->natts; a++)
		if (!TupleDescAttr(desc, a)->attisdropped && strcmp(NameStr(TupleDescAttr(desc, a)->attname), column) == 0)
			return slot_getattr(slot, a + 1, isnull);
	elog(ERROR, "agentorch: column %s is missing", column);
	return (Datum) 0;
}

/* ao_tool_access's reading of a tool's row and grants. */
typedef struct ToolRow
{
	bool		exists;
	Oid			owner;
	Oid			role;
	bool		granted;
	bool		pin;			/* ao_pin_tools: make the definition it pins */
	Jsonb	   *pinned;
} ToolRow;

static bool tool_found(void *arg, TupleTableSlot *slot);

static bool
grant_found(void *arg, TupleTableSlot *slot)
{
	ToolRow    *t = arg;
	bool		isnull;

	if (has_privs_of_role(t->role, DatumGetObjectId(ao_slot_column(slot, "grantee", &isnull))))
		t->granted = true;
	return !t->granted;
}

/*
 * One read of a tool (as the extension owner): may role use it (see
 * ao_tool_access), and with pinned, the definition a run pins (NULL for a
 * built-in tool).
 */
static AoToolAccess
read_tool(const char *name, Oid role, Jsonb **pinned)
{
	Datum		key = CStringGetTextDatum(name);
	ToolRow		t = {0};
	AoUserScope owner_scope;

	if (pinned)
		*pinned = NULL;
	for (const char *const *b = builtin_tools; *b; b++)
		if (strcmp(*b, name) == 0)
			return AO_TOOL_USABLE;
	t.role = role;
	t.pin = pinned != NULL;
	ao_become_extension_owner(&owner_scope);
	ao_index_scan("tools", "tools_pkey", 1, &key, ForwardScanDirection, tool_found, &t);
	if (t.exists && OidIsValid(role))
		ao_index_scan("tool_grants", "tool_grants_pkey", 1, &key, ForwardScanDirection, grant_found, &t);
	ao_restore_user(&owner_scope);
	if (pinned)
		*pinned = t.pinned;
	if (!t.exists)
		return AO_TOOL_MISSING;
	if (!OidIsValid(role) || t.granted || superuser_arg(role) || has_privs_of_role(role, t.owner))
		return AO_TOOL_USABLE;
	return AO_TOOL_DENIED;
}

/* Does a tool of this name exist (registered or built in)? */
bool
ao_tool_exists(const char *name)
{
	return ao_tool_access(name, InvalidOid) != AO_TOOL_MISSING;
}

/*
 * May role use the tool (in a workflow it registers, in a run, offered to
 * a model)? Built-in tools: everyone. A registered tool: its owner (and
 * members of the owner role), superusers, and roles granted it with
 * grant_tool (or members of such a role). With role InvalidOid only
 * existence is checked. Read as the extension owner.
 */
AoToolAccess
ao_tool_access(const char *name, Oid role)
{
	return read_tool(name, role, NULL);
}

/*
 * The names of the registered tools role may use whose code it may trust,
 * as a JSON array: what a planner may plan with when the run names no
 * tools. Those role owns (itself or through membership in the owning
 * role), and those a superuser owns that role may use (granted to it, or
 * role is a superuser): a superuser's code could do anything anyway, so
 * running it with the rights of the run's owner gives nothing away. Not
 * an ordinary role's tool granted to role: it runs its author's code with
 * the rights of the run's owner, which the owner chooses by naming the
 * tool (options.tools, a workflow step), never a model by picking it (its
 * author wrote the description the model reads, and may grant it to
 * anyone). Read as the extension owner.
 */
json_object *
ao_usable_tool_names(Oid role)
{
	json_object *names = ao_json_own(json_object_new_array());
	AoUserScope owner_scope;

	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	if (ao_spi_exec("SELECT t.name, t.owner FROM agentorch.tools t ORDER BY t.name",
					0, NULL, NULL, NULL, 0) == SPI_OK_SELECT)
	{
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			Oid			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));

			/* the access check's rule (has_privs_of_role: NOINHERIT counts), less superuser's "every role" */
			if (owner == role || (is_member_of_role_nosuper(role, owner) && has_privs_of_role(role, owner)) ||
				(superuser_arg(owner) && ao_tool_access(name, role) == AO_TOOL_USABLE))
				json_object_array_add(names, json_object_new_string(name));
		}
	}
	SPI_finish();
	ao_restore_user(&owner_scope);
	return names;
}

/* Add the tool names a list of workflow steps uses (recursively) to *names. */
static void
collect_step_tools(json_object *steps, List **names)
{
	if (steps == NULL || !json_object_is_type(steps, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(steps); i++)
	{
		json_object *s = json_object_array_get_idx(steps, i);
		json_object *v;

		if (!json_object_is_type(s, json_type_object))
			continue;
		if (json_object_object_get_ex(s, "tool", &v) && json_object_is_type(v, json_type_string))
			*names = list_append_unique(*names, makeString(pstrdup(json_object_get_string(v))));
		if (json_object_object_get_ex(s, "compensate", &v) && json_object_is_type(v, json_type_object) &&
			json_object_object_get_ex(v, "tool", &v) && json_object_is_type(v, json_type_string))
			*names = list_append_unique(*names, makeString(pstrdup(json_object_get_string(v))));
		if (json_object_object_get_ex(s, "tools", &v) && json_object_is_type(v, json_type_array))
		{
			for (size_t j = 0; j < json_object_array_length(v); j++)
			{
				json_object *n = json_object_array_get_idx(v, j);

				if (json_object_is_type(n, json_type_string))
					*names = list_append_unique(*names, makeString(pstrdup(json_object_get_string(n))));
			}
		}
		if (json_object_object_get_ex(s, "steps", &v))
			collect_step_tools(v, names);
		if (json_object_object_get_ex(s, "step", &v) && json_object_is_type(v, json_type_object))
		{
			json_object *wrap = json_object_new_array();

			json_object_array_add(wrap, json_object_get(v));
			collect_step_tools(wrap, names);
			json_object_put(wrap);
		}
	}
}

/*
 * read_tool's row: its owner, and when asked the definition as a run pins
 * it: {kind, spec, input_schema, policy, owner, search_path} and the md5 of
 * that object's text as "hash".
 */
static bool
tool_found(void *arg, TupleTableSlot *slot)
{
	static const char *const keys[] = {"kind", "spec", "input_schema", "policy", "owner", "search_path", "hash"};
	ToolRow    *t = arg;
	JsonbValue	values[7];
	bool		isnull;
	Datum		d;
	char	   *printed;
	char		hash[33];

	t->exists = true;
	t->owner = DatumGetObjectId(ao_slot_column(slot, "owner", &isnull));
	if (!t->pin)
		return false;
	d = ao_slot_column(slot, "kind", &isnull);
	values[0] = ao_jv_string(isnull ? NULL : TextDatumGetCString(d));
	d = ao_slot_column(slot, "spec", &isnull);
	values[1] = ao_jv_jsonb(isnull ? NULL : DatumGetJsonbPCopy(d));
	d = ao_slot_column(slot, "input_schema", &isnull);
	values[2] = ao_jv_jsonb(isnull ? NULL : DatumGetJsonbPCopy(d));
	d = ao_slot_column(slot, "policy", &isnull);
	values[3] = ao_jv_jsonb(isnull ? NULL : DatumGetJsonbPCopy(d));
	/* an oid is a JSON string in jsonb_build_object */
	d = ao_slot_column(slot, "owner", &isnull);
	values[4] = ao_jv_string(isnull ? NULL : DatumGetCString(DirectFunctionCall1(oidout, d)));
	d = ao_slot_column(slot, "search_path", &isnull);
	values[5] = ao_jv_string(isnull ? NULL : TextDatumGetCString(d));
	printed = JsonbToCString(NULL, &ao_jsonb_object(6, keys, values)->root, -1);
	ao_md5_hex(printed, strlen(printed), hash);
	values[6] = ao_jv_string(hash);
	t->pinned = ao_jsonb_object(7, keys, values);
	return false;
}

/*
 * The definitions of the tools a run uses, pinned when it starts: steps
 * is the run's steps array (or NULL), extra a JSON array of further tool
 * names (tools offered to the model of a simple run) or NULL. ERRORs when
 * a tool does not exist (42704) or role may not use it (42501). Returns
 * {name: {kind, spec, input_schema, policy, owner, search_path, hash}}.
 */
Jsonb *
ao_pin_tools(json_object *steps, json_object *extra, Oid role)
{
	List	   *names = NIL;
	ListCell   *lc;
	const char **keys;
	JsonbValue *values;
	int			n = 0;

	collect_step_tools(steps, &names);
	if (extra && json_object_is_type(extra, json_type_array))
	{
		json_object *wrap;
		json_object *step;

		/* tools offered to a model (or a planner): never SQL text */
		for (size_t i = 0; i < json_object_array_length(extra); i++)
			if (json_object_is_type(json_object_array_get_idx(extra, i), json_type_string) &&
				strcmp(json_object_get_string(json_object_array_get_idx(extra, i)), "database.query") == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("database.query cannot be offered to a model as a tool"),
						 errdetail("Nothing a model writes is executed as SQL."),
						 errhint("Register a sql tool with a fixed statement and offer that.")));
		wrap = json_object_new_array();
		step = json_object_new_object();

		json_object_object_add(step, "tools", json_object_get(extra));
		json_object_array_add(wrap, step);
		collect_step_tools(wrap, &names);
		json_object_put(wrap);
	}
	keys = palloc(sizeof(char *) * Max(list_length(names), 1));
	values = palloc(sizeof(JsonbValue) * Max(list_length(names), 1));
	/* each tool read once: may the role use it, and its definition as it is now */
	foreach(lc, names)
	{
		const char *name = strVal(lfirst(lc));
		Jsonb	   *pinned;

		switch (read_tool(name, role, &pinned))
		{
			case AO_TOOL_MISSING:
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("tool \"%s\" does not exist", name)));
				break;
			case AO_TOOL_DENIED:
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied for tool \"%s\"", name),
						 errhint("Its owner can allow it with agentorch.grant_tool('%s', '%s').",
								 name, GetUserNameFromId(role, true) ? GetUserNameFromId(role, true) : "?")));
				break;
			case AO_TOOL_USABLE:
				break;
		}
		if (pinned != NULL)
		{
			keys[n] = name;
			values[n++] = ao_jv_jsonb(pinned);
		}
	}
	return ao_jsonb_object(n, keys, values);
}

/*
 * A new channel token (palloc'd): 26 lowercase base32 characters (130 bits
 * of strong randomness, ao_random_bytes), the secret part of a run's
 * NOTIFY channel.
 */
char *
ao_new_channel_token(void)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	uint8		bytes[26];
	char	   *token = palloc(27);

	ao_random_bytes(bytes, sizeof(bytes));
	for (int i = 0; i < 26; i++)
		token[i] = alphabet[bytes[i] & 31];
	token[26] = '\0';
	return token;
}

/* _channel_token() RETURNS text: ao_new_channel_token (the column default of runs). */
PG_FUNCTION_INFO_V1(ao_sql_channel_token);
Datum
ao_sql_channel_token(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(ao_new_channel_token()));
}

/*
 * Try to parse expr as a jsonpath; on failure return the parser's message
 * (palloc'd in the caller's context), else NULL. jsonpath_in can only
 * report errors by ERROR in PostgreSQL 15, so the parse runs in a
 * subtransaction that is rolled back on failure, as PL/pgSQL does for an
 * EXCEPTION block.
 */
char *
ao_jsonpath_error(const char *expr)
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
		message = ao_abort_subxact(caller, owner)->message;
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
		switch (ao_tool_access(c->tools.messages[i], GetUserId()))
		{
			case AO_TOOL_MISSING:
				ao_problems_add(problems, c->tools.paths[i],
								psprintf("unknown tool \"%s\"", c->tools.messages[i]));
				break;
			case AO_TOOL_DENIED:
				ao_problems_add(problems, c->tools.paths[i],
								psprintf(AO_TOOL_DENIED_PREFIX "\"%s\"", c->tools.messages[i]));
				break;
			case AO_TOOL_USABLE:
				break;
		}
	}
	for (size_t i = 0; i < c->conditions.n; i++)
	{
		char	   *err = ao_jsonpath_error(c->conditions.messages[i]);

		if (err)
			ao_problems_add(problems, c->conditions.paths[i],
							psprintf("invalid jsonpath condition: %s", err));
	}
}

/*
 * Record an action of the calling role in agentorch.audit_log (written as
 * the extension owner). Call it in the caller's security context, after the
 * action succeeded; object, run (0) and detail (NULL) may be absent. Does
 * nothing in a database still at 0.1.0 (no audit log there).
 */
void
ao_audit(const char *action, const char *object, int64 run, Jsonb *detail)
{
	Oid			actor = GetUserId();
	Oid			types[5] = {OIDOID, TEXTOID, TEXTOID, INT8OID, JSONBOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', object ? ' ' : 'n', run > 0 ? ' ' : 'n', detail ? ' ' : 'n'};
	AoUserScope owner_scope;

	if (!ao_schema_at_least(0, 2))
		return;
	values[0] = ObjectIdGetDatum(actor);
	values[1] = CStringGetTextDatum(action);
	values[2] = object ? CStringGetTextDatum(object) : (Datum) 0;
	values[3] = Int64GetDatum(run);
	values[4] = detail ? JsonbPGetDatum(detail) : (Datum) 0;
	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	if (ao_spi_exec("INSERT INTO agentorch.audit_log (actor, action, object, run_id, detail) "
					"VALUES ($1, $2, $3, $4, $5)", 5, types, values, nulls, 0) != SPI_OK_INSERT)
		elog(ERROR, "agentorch: could not write the audit log");
	SPI_finish();
	ao_restore_user(&owner_scope);
}

/* ao_audit with a detail object built from key/value string pairs (NULL-terminated). */
void
ao_audit_kv(const char *action, const char *object, int64 run,...)
{
	va_list		ap;
	json_object *d = ao_json_own(json_object_new_object());
	const char *k;

	va_start(ap, run);
	while ((k = va_arg(ap, const char *)) != NULL)
	{
		const char *v = va_arg(ap, const char *);

		json_object_object_add(d, k, v ? json_object_new_string(v) : NULL);
	}
	va_end(ap);
	ao_audit(action, object, run, json_object_object_length(d) > 0 ? ao_jsonb_from_json(d) : NULL);
}

/*
 * Milliseconds of an interval argument of a SQL function (months as 30
 * days); a negative one is an ERROR (22023) naming the argument.
 */
int64
ao_interval_arg_ms(Interval *iv, const char *argument)
{
	int64		ms = iv->time / 1000 + (int64) iv->day * 86400000 + (int64) iv->month * 30 * 86400000;

	if (ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", argument)));
	return ms;
}

/* Does step s, or a step nested in it (parallel steps, a loop's step), declare an output_schema? */
static bool
step_uses_output_schema(json_object *s)
{
	json_object *nested;

	if (!json_object_is_type(s, json_type_object))
		return false;
	if (json_object_object_get_ex(s, "output_schema", NULL))
		return true;
	if (json_object_object_get_ex(s, "step", &nested) && step_uses_output_schema(nested))
		return true;
	if (json_object_object_get_ex(s, "steps", &nested) && json_object_is_type(nested, json_type_array))
		for (size_t i = 0; i < json_object_array_length(nested); i++)
			if (step_uses_output_schema(json_object_array_get_idx(nested, i)))
				return true;
	return false;
}

/*
 * A workflow body (normalized) that needs this database's SQL objects to be
 * at 0.2.0: a step's output_schema is checked by 0.2.0's state layer only,
 * so in a database still at 0.1.0 it is refused (0A000) rather than ignored.
 */
void
ao_require_schema_for_workflow(json_object *body)
{
	if (step_uses_output_schema(body))	/* the body is shaped as a step with steps */
		ao_require_schema(0, 2, "a step's output_schema");
}
