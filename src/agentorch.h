/*-------------------------------------------------------------------------
 *
 * agentorch.h
 *	  Declarations shared by the extension layer (everything under src/
 *	  that is not src/core): settings, the json-c bridge, problem
 *	  reporting and catalog helpers.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/agentorch.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AGENTORCH_H
#define AGENTORCH_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonb.h"

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

/* settings (agentorch.c) */
extern int	ao_max_definition_size;

/*
 * json-c bridge (pg_json.c). json-c objects are malloc'd; every object the
 * extension holds is "owned" by a memory context through a reset callback,
 * so an ERROR releases it with the context.
 */
extern json_object *ao_json_own(json_object *obj);
extern json_object *ao_json_from_jsonb(Jsonb *jb);
extern json_object *ao_json_from_cstring(const char *text, size_t len, const char *what);
extern Jsonb *ao_jsonb_from_json(json_object *obj);
extern Datum ao_jsonb_datum_from_json(json_object *obj);

/*
 * Problem lists (pg_json.c). A core ao_problems list owned by the current
 * memory context; returned as (path, message) rows or raised as one ERROR
 * whose DETAIL lists every problem.
 */
extern ao_problems *ao_problems_new(void);
extern void ao_problems_return(FunctionCallInfo fcinfo, ao_problems *p);
extern void ao_problems_raise(ao_problems *p, int sqlerrcode, const char *what) pg_attribute_noreturn();
extern void ao_check_size(Size size, const char *what);

/* catalog helpers (catalog.c) */
extern Oid	ao_extension_owner(void);
extern void ao_become_extension_owner(Oid *save_uid, int *save_sec);
extern void ao_restore_user(Oid save_uid, int save_sec);
extern json_object *ao_load_schema(const char *name);
extern bool ao_tool_exists(const char *name);
extern void ao_check_workflow_semantics(json_object *normalized, json_object *schema,
										ao_problems *problems);

/* shared by the validation and registration API (api_validate.c) */
extern json_object *ao_json_from_yaml_text(text *document);
extern ao_problems *ao_workflow_problems(Jsonb *definition, json_object **normalized_out);

/* graph rendering (api_graph.c) */
extern text *ao_render_graph(const char *definition, const char *title, const char *format,
							 const char *(*status) (void *arg, const char *step_id), void *arg);

#endif							/* AGENTORCH_H */
