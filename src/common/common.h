/*-------------------------------------------------------------------------
 *
 * common.h
 *	  The bottom of the PostgreSQL side (src/common): every header of a
 *	  layer above includes it first. Settings, the json-c bridge, problem
 *	  reporting, catalog helpers, workflow definitions, kept SPI plans.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/common/common.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AGENTORCH_H
#define AGENTORCH_H

#include "postgres.h"

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "access/sdir.h"
#include "access/skey.h"
#include "executor/tuptable.h"
#include "utils/relcache.h"
#include "utils/jsonb.h"
#include "utils/resowner.h"
#include "utils/palloc.h"
#include "datatype/timestamp.h"

/*
 * PostgreSQL declares a SQL-callable C function named json_object (in
 * fmgrprotos.h), json-c a type of that name. The function is never called
 * here, so it is renamed while its header is read; afterwards the include
 * guard keeps it out and json_object means json-c's type everywhere.
 * Every file of the extension layer includes this header first.
 */
#define json_object ao_pg_json_object_function
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#undef json_object

#include <json-c/json.h>

#include "ao_core.h"
#include "guc.h"


/*
 * json-c bridge (pg_json.c). json-c objects are malloc'd; every object the
 * extension holds is "owned" by a memory context through a reset callback,
 * so an ERROR releases it with the context.
 */
extern json_object *ao_json_own(json_object *obj);
extern json_object *ao_json_from_jsonb(Jsonb *jb);
extern json_object *ao_json_from_cstring(const char *text, size_t len, const char *what);
extern Jsonb *ao_jsonb_from_json(json_object *obj);
extern JsonbValue ao_jv_string(const char *s);
extern JsonbValue ao_jv_int(int64 i);
extern JsonbValue ao_jv_jsonb(Jsonb *j);
extern Jsonb *ao_jsonb_object(int n, const char *const *keys, JsonbValue *values);
extern bool ao_jsonb_get_key(JsonbContainer *c, const char *key, JsonbValue *out);
extern Datum ao_jsonb_datum_from_json(json_object *obj);

/*
 * Problem lists (pg_json.c). A core ao_problems list owned by the current
 * memory context; returned as (path, message) rows or raised as one ERROR
 * whose DETAIL lists every problem.
 */
extern ao_problems *ao_problems_new(void);
extern void ao_problems_return(FunctionCallInfo fcinfo, ao_problems *p);
extern char *ao_problems_detail(ao_problems *p);
extern Jsonb *ao_error_jsonb(int sqlerrcode, const char *message, const char *detail);
extern void ao_problems_raise(ao_problems *p, int sqlerrcode, const char *what) pg_attribute_noreturn();
extern void ao_check_size(Size size, const char *what);

/* catalog helpers (catalog.c) */
extern Oid	ao_extension_owner(void);
/*
 * The search_path every SQL statement of the extension runs under: only
 * pg_catalog's objects can be named unqualified (pg_temp last, so a
 * temporary object never shadows one). See DESIGN.md section 9.
 */
#define AO_SAFE_SEARCH_PATH "pg_catalog, pg_temp"

/*
 * Deepest JSON nesting the extension converts to json-c (the template
 * renderer's limit too): what PostgreSQL's own jsonb parser accepts with
 * the default max_stack_depth (2MB) is of this order.
 */
#define AO_MAX_JSON_DEPTH 10000

/* Timeout of transactional steps when neither they nor the settings give one. */
#define AO_DEFAULT_STEP_TIMEOUT_MS 60000

/* Saved identity and GUC nest level of ao_become_extension_owner. */
typedef struct AoUserScope
{
	Oid			uid;
	int			sec;
	int			nest;
} AoUserScope;

extern void ao_become_extension_owner(AoUserScope *scope);
extern void ao_restore_user(AoUserScope *scope);
extern int	ao_push_safe_search_path(void);
extern ErrorData *ao_abort_subxact(MemoryContext caller, ResourceOwner owner);
extern json_object *ao_load_schema(const char *name);
extern void ao_index_scan(const char *table, const char *index, int nkeys, const Datum *keys, ScanDirection dir,
						  bool (*found) (void *arg, TupleTableSlot *slot), void *arg);
extern Datum ao_slot_column(TupleTableSlot *slot, const char *column, bool *isnull);
extern void ao_index_equal_keys(Relation idx, int nkeys, const Datum *keys, ScanKeyData *sk);
extern bool ao_tool_exists(const char *name);


/* May a role use a tool? (catalog.c) */
typedef enum AoToolAccess
{
	AO_TOOL_MISSING,
	AO_TOOL_DENIED,
	AO_TOOL_USABLE
} AoToolAccess;
extern AoToolAccess ao_tool_access(const char *name, Oid role);
#define AO_TOOL_DENIED_PREFIX "permission denied for tool "
extern Jsonb *ao_pin_tools(json_object *steps, json_object *extra, Oid role);
extern json_object *ao_usable_tool_names(Oid role);

/* Why expr is not a jsonpath (palloc'd message), or NULL when it is one. */
extern char *ao_jsonpath_error(const char *expr);

/* A new run's channel token (catalog.c; the default of runs.channel_token). */
extern char *ao_new_channel_token(void);

/* digest.c */
extern void ao_random_bytes(void *buf, size_t len);
extern bool ao_digest_ready(void);
extern void ao_md5_hex(const void *data, size_t len, char *hex);

/*
 * The schema version of agentorch in this database (pg_extension.extversion).
 * One library serves every schema version it can be updated from: a
 * database stays at its version until ALTER EXTENSION agentorch UPDATE, and
 * its runs keep running meanwhile. C code that needs SQL objects of a newer
 * version asks ao_schema_at_least() (to fall back) or ao_require_schema()
 * (to refuse with 0A000 and a hint to update). Versions are compared as
 * AO_SCHEMA_VERSION(major, minor, patch).
 */
#define AO_SCHEMA_VERSION(major, minor, patch) ((major) * 10000 + (minor) * 100 + (patch))
extern int	ao_schema_version(void);
extern bool ao_schema_at_least(int major, int minor);
extern void ao_require_schema(int major, int minor, const char *feature);
/* The options start() takes (coordinator.c checks them; select() takes them too). */
#define AO_RUN_OPTION_NAMES \
	"model", "priority", "timeout", "idempotency_key", "version", "metadata", \
	"traceparent", "tools", "max_replans", "planner_model", "budget", "replan_when", \
	"stall_timeout"

extern int64 ao_interval_arg_ms(Interval *iv, const char *argument);
extern void ao_check_known_keys(json_object *obj, const char *const *known, const char *what, const char *hint);
extern void ao_require_schema_for_workflow(json_object *body);

/* agentorch.audit_log: an action of the calling role (catalog.c). */
extern void ao_audit(const char *action, const char *object, int64 run, Jsonb *detail);
extern void ao_audit_kv(const char *action, const char *object, int64 run,...);
extern void ao_check_workflow_semantics(json_object *normalized, json_object *schema,
										ao_problems *problems);

/* workflow definitions (definitions.c) */
extern void ao_core_interrupted(int *rounds);
extern json_object *ao_json_from_yaml_text(text *document);
extern ao_problems *ao_workflow_problems(Jsonb *definition, json_object **normalized_out);

/* kept plans of the extension's literal statements (spi.c) */
extern int	ao_spi_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
						int expected);
extern int	ao_spi_exec_generic(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
								int expected);
extern int	ao_spi_exec_read_only(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
								  int expected, long tcount);
extern int	ao_spi_exec_literal(const char *sql, int nargs, Oid *types, Datum *values,
								const char *nulls);


/* templates (template_pg.c) */
extern Jsonb *ao_render_jsonb(Jsonb *tmpl, Jsonb *context);



#endif							/* AGENTORCH_H */
