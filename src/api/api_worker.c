/*-------------------------------------------------------------------------
 *
 * api_worker.c
 *	  SQL-callable wrappers of the external workers' server side
 *	  (runner/remote.c): agentorch._worker_claim, _worker_call_tools,
 *	  _worker_fallback, _worker_slot_done, _worker_retry_delay,
 *	  _worker_settings, _worker_wake. Declared in
 *	  sql/agentorch_workers.sql, internal (EXECUTE revoked from PUBLIC; an
 *	  administrator grants the worker-facing ones to the worker's role).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/api/api_worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "api.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "policy.h"

PG_FUNCTION_INFO_V1(ao_sql_worker_claim);
PG_FUNCTION_INFO_V1(ao_sql_worker_call_tools);
PG_FUNCTION_INFO_V1(ao_sql_worker_fallback);
PG_FUNCTION_INFO_V1(ao_sql_worker_slot_done);
PG_FUNCTION_INFO_V1(ao_sql_worker_retry_delay);
PG_FUNCTION_INFO_V1(ao_sql_worker_settings);
PG_FUNCTION_INFO_V1(ao_sql_worker_wake);

/* _worker_claim(worker int, name text, n int, recover bool) RETURNS jsonb: claimed steps. */
Datum
ao_sql_worker_claim(PG_FUNCTION_ARGS)
{
	ao_require_schema(0, 2, "external workers");
	PG_RETURN_JSONB_P(ao_remote_claim(PG_GETARG_INT32(0), text_to_cstring(PG_GETARG_TEXT_PP(1)),
									  PG_GETARG_INT32(2), PG_GETARG_BOOL(3)));
}

/* _worker_call_tools(run bigint, step text, attempt int, calls jsonb) RETURNS jsonb (NULL: not ours). */
Datum
ao_sql_worker_call_tools(PG_FUNCTION_ARGS)
{
	Jsonb	   *r = ao_remote_call_tools(PG_GETARG_INT64(0), text_to_cstring(PG_GETARG_TEXT_PP(1)),
										 PG_GETARG_INT32(2), PG_GETARG_JSONB_P(3));

	if (r == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(r);
}

/*
 * _worker_fallback(run bigint, step text, attempt int, model text) RETURNS
 * jsonb: {"model": {...}}, {"defer_ms": n} (its policies say not now), or
 * NULL (not usable, or the step is not ours).
 */
Datum
ao_sql_worker_fallback(PG_FUNCTION_ARGS)
{
	long		defer_ms = 0;
	Jsonb	   *m = ao_remote_fallback(PG_GETARG_INT64(0), text_to_cstring(PG_GETARG_TEXT_PP(1)),
									   PG_GETARG_INT32(2), text_to_cstring(PG_GETARG_TEXT_PP(3)), &defer_ms);
	json_object *o = ao_json_own(json_object_new_object());

	if (m != NULL)
		json_object_object_add(o, "model", json_object_get(ao_json_from_jsonb(m)));
	else if (defer_ms > 0)
		json_object_object_add(o, "defer_ms", json_object_new_int64(defer_ms));
	else
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(ao_jsonb_from_json(o));
}

/*
 * _worker_slot_done(run bigint, step text, outcome int, tokens float8,
 * counted int): give back a step's slot and lock; counted 1 (succeeded)
 * or 2 (failed) counts the step in metrics() as an executor's is.
 */
Datum
ao_sql_worker_slot_done(PG_FUNCTION_ARGS)
{
	int			counted = PG_GETARG_INT32(4);

	ao_remote_slot_done(PG_GETARG_INT64(0), text_to_cstring(PG_GETARG_TEXT_PP(1)),
						PG_GETARG_INT32(2), PG_GETARG_FLOAT8(3));
	if (counted == 1 || counted == 2)
		ao_count_steps(counted == 1 ? 1 : 0, counted == 2 ? 1 : 0);
	PG_RETURN_VOID();
}

/* _worker_retry_delay(spec jsonb, attempt int, retry_after_ms float8) RETURNS float8: the policy layer's delay. */
Datum
ao_sql_worker_retry_delay(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(ao_retry_delay_ms(ao_json_from_jsonb(PG_GETARG_JSONB_P(0)), PG_GETARG_INT32(1),
									   PG_GETARG_FLOAT8(2)));
}

/* _worker_settings() RETURNS jsonb: the settings a worker follows. */
Datum
ao_sql_worker_settings(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(ao_remote_settings());
}

/* _worker_wake(): wake the executors and wait() sleepers when this transaction commits. */
Datum
ao_sql_worker_wake(PG_FUNCTION_ARGS)
{
	ao_wake_at_commit();
	PG_RETURN_VOID();
}
