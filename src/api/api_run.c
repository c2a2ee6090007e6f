/*-------------------------------------------------------------------------
 *
 * api_run.c
 *	  SQL API of runs: start, run_workflow, wait, follow, cancel, resume,
 *	  submit_input, graph, purge and metrics.
 *
 * Thin wrappers: runs are created by the coordinator (ao_start_run in
 * src/coordinator/coordinator.c). Each function checks its arguments,
 * decides what the caller may do -- reading runs as the caller, so
 * row-level security hides other roles' runs, which therefore "do not
 * exist" -- and then switches to the extension owner to call the state
 * layer, recording the caller as the run's owner. Work is announced to
 * the executors at commit (a rolled-back start wakes nobody).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/api/api_run.c
 *
 *-------------------------------------------------------------------------
 */
#include "api.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/jsonb.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include <math.h>

#include "storage/latch.h"
#include "pgstat.h"

#include "ao_json_schema.h"
#include "io.h"
#include "policy.h"
#include "ao_workflow.h"

PG_FUNCTION_INFO_V1(ao_sql_start);
PG_FUNCTION_INFO_V1(ao_sql_run_workflow);
PG_FUNCTION_INFO_V1(ao_sql_wait);
PG_FUNCTION_INFO_V1(ao_sql_follow);
PG_FUNCTION_INFO_V1(ao_sql_cancel);
PG_FUNCTION_INFO_V1(ao_sql_resume);
PG_FUNCTION_INFO_V1(ao_sql_submit_input);
PG_FUNCTION_INFO_V1(ao_sql_graph);
PG_FUNCTION_INFO_V1(ao_sql_purge);
PG_FUNCTION_INFO_V1(ao_sql_metrics);

/*
 * The arguments start() and start_many() share after their inputs:
 * orchestration, workflow (NULL when not given) and options ('{}').
 */
static void
start_arguments(FunctionCallInfo fcinfo, const char *what, char **orchestration, char **workflow,
				Jsonb **options)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	*orchestration = PG_ARGISNULL(1) ? NULL
		: DatumGetCString(DirectFunctionCall1(enum_out, PG_GETARG_DATUM(1)));
	*workflow = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	*options = PG_ARGISNULL(3) ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")))
		: PG_GETARG_JSONB_P(3);
}

/* start(input, orchestration DEFAULT NULL, workflow DEFAULT NULL, options DEFAULT '{}') */
Datum
ao_sql_start(PG_FUNCTION_ARGS)
{
	char	   *orchestration;
	char	   *workflow;
	Jsonb	   *options;

	start_arguments(fcinfo, "run input", &orchestration, &workflow, &options);
	{
		char	   *search_path = pstrdup(namespace_search_path);
		int			nest = ao_push_safe_search_path();
		int64		run = ao_start_run(PG_GETARG_JSONB_P(0), orchestration, workflow, options, search_path);

		AtEOXact_GUC(true, nest);
		PG_RETURN_INT64(run);
	}
}

/*
 * start_many(inputs jsonb[], orchestration DEFAULT NULL, workflow DEFAULT
 * NULL, options DEFAULT '{}') RETURNS SETOF bigint: one run per input, in
 * order, in this statement and transaction, each exactly as start() would
 * create it (same checks, same selection), all created by one call of the
 * state layer. An idempotency key would make them one run, so it is
 * refused here.
 */
PG_FUNCTION_INFO_V1(ao_sql_start_many);
Datum
ao_sql_start_many(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *orchestration;
	char	   *workflow;
	Jsonb	   *options;
	ArrayType  *inputs;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	   *search_path;
	int			nest;

	start_arguments(fcinfo, "run inputs", &orchestration, &workflow, &options);
	{
		json_object *opts = ao_json_from_jsonb(options);

		if (json_object_is_type(opts, json_type_object) &&
			json_object_object_get_ex(opts, "idempotency_key", NULL))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("start_many() takes no \"idempotency_key\" option"),
					 errhint("One key would make every input the same run; use start() per input for keys.")));
	}
	inputs = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(inputs) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("start_many() takes a one-dimensional array of run inputs")));
	deconstruct_array(inputs, JSONBOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);

	/* caller's search_path for the runs, then the safe one (as start()) */
	search_path = pstrdup(namespace_search_path);
	nest = ao_push_safe_search_path();
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	{
		Jsonb	  **each = palloc(sizeof(Jsonb *) * Max(n, 1));
		int64	   *ids;

		for (int i = 0; i < n; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("run input %d must not be null", i + 1)));
			each[i] = DatumGetJsonbP(elems[i]);
		}
		/* checked one by one, created together */
		ids = ao_start_runs(each, n, orchestration, workflow, options, search_path);
		for (int i = 0; i < n; i++)
		{
			Datum		value[1] = {Int64GetDatum(ids[i])};
			bool		isnull[1] = {false};

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, value, isnull);
		}
	}
	AtEOXact_GUC(true, nest);
	return (Datum) 0;
}

/* run_workflow(name, input DEFAULT '{}', options DEFAULT '{}') */
Datum
ao_sql_run_workflow(PG_FUNCTION_ARGS)
{
	Jsonb	   *empty = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("workflow name must not be null")));
	{
		char	   *search_path = pstrdup(namespace_search_path);
		int			nest = ao_push_safe_search_path();
		int64		run = ao_start_run(PG_ARGISNULL(1) ? empty : PG_GETARG_JSONB_P(1), "fixed",
									text_to_cstring(PG_GETARG_TEXT_PP(0)),
									PG_ARGISNULL(2) ? empty : PG_GETARG_JSONB_P(2), search_path);

		AtEOXact_GUC(true, nest);
		PG_RETURN_INT64(run);
	}
}

/*
 * The owner of a run the caller can see (row-level security applies), or
 * ERROR "does not exist". Also checks the caller may act for the owner.
 */
static Oid
visible_run_owner(int64 run)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	Oid			owner = InvalidOid;
	bool		isnull;

	values[0] = Int64GetDatum(run);
	SPI_connect();
	if (SPI_execute_with_args("SELECT owner FROM agentorch.runs WHERE id OPERATOR(pg_catalog.=) $1",
							  1, types, values, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
		owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("run %lld does not exist", (long long) run)));
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("run %lld belongs to another role", (long long) run)));
	return owner;
}

/*
 * ERROR when a step this session runs now belongs to run, or shares its
 * claim round with one of run's steps: what (cancel, resume, input) would
 * change the run under the steps its round holds.
 */
static void
not_in_own_round(int64 run, const char *what)
{
	if (ao_round_holds_run(run))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s run %lld from inside a step that runs with its steps", what, (long long) run),
				 errdetail("This session runs a batch of steps that includes steps of run %lld.", (long long) run),
				 errhint("To stop a run from inside it, let a step fail or branch on a condition; act on other runs from outside the step.")));
}

/* Call a boolean state-layer function on a run as the extension owner. */
static bool
state_bool(const char *sql, int nargs, Oid *types, Datum *values)
{
	AoUserScope owner_scope;
	bool		isnull;
	bool		result;

	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	if (SPI_execute_with_args(sql, nargs, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "agentorch: %s failed", sql);
	result = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	ao_restore_user(&owner_scope);
	if (result)
		ao_wake_at_commit();
	return result;
}

/* cancel(run_id, reason DEFAULT NULL) RETURNS boolean */
Datum
ao_sql_cancel(PG_FUNCTION_ARGS)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	visible_run_owner(PG_GETARG_INT64(0));
	not_in_own_round(PG_GETARG_INT64(0), "cancel");
	/*
	 * An executor executing a step of the run holds the run's lock until
	 * its batch ends: interrupt that step (it fails at once, the batch
	 * commits) instead of waiting as long as the step takes.
	 */
	(void) ao_interrupt_run(PG_GETARG_INT64(0));
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_ARGISNULL(1) ? CStringGetTextDatum("") : PG_GETARG_DATUM(1);
	if (!state_bool("SELECT agentorch._cancel($1, NULLIF($2, ''))", 2, types, values))
		PG_RETURN_BOOL(false);
	ao_note_cancel();
	ao_audit_kv("cancel", NULL, PG_GETARG_INT64(0), "reason", PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)), NULL);
	PG_RETURN_BOOL(true);
}

/* resume(run_id) RETURNS boolean */
Datum
ao_sql_resume(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];

	visible_run_owner(PG_GETARG_INT64(0));
	not_in_own_round(PG_GETARG_INT64(0), "resume");
	values[0] = PG_GETARG_DATUM(0);
	if (!state_bool("SELECT agentorch._resume($1)", 1, types, values))
		PG_RETURN_BOOL(false);
	ao_audit("resume", NULL, PG_GETARG_INT64(0), NULL);
	PG_RETURN_BOOL(true);
}

/* submit_input(run_id, step_id, value) RETURNS boolean */
Datum
ao_sql_submit_input(PG_FUNCTION_ARGS)
{
	Oid			types[3] = {INT8OID, TEXTOID, JSONBOID};
	Datum		values[3];

	visible_run_owner(PG_GETARG_INT64(0));
	not_in_own_round(PG_GETARG_INT64(0), "submit input to");
	ao_check_size(VARSIZE(PG_GETARG_JSONB_P(2)), "input value");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);
	if (!state_bool("SELECT agentorch._submit_input($1, $2, $3)", 3, types, values))
		PG_RETURN_BOOL(false);
	/* the step, not the value (it may be anything the role would not log) */
	ao_audit("submit_input", text_to_cstring(PG_GETARG_TEXT_PP(1)), PG_GETARG_INT64(0), NULL);
	PG_RETURN_BOOL(true);
}

/*
 * wait(run_id, timeout) RETURNS agentorch.runs: the run once it has
 * finished or is waiting for input, or as it is when the timeout passes.
 * Each look is a fresh snapshot (READ COMMITTED); between looks the
 * session sleeps until an executor announces progress.
 */
Datum
ao_sql_wait(PG_FUNCTION_ARGS)
{
	int64		run = PG_GETARG_INT64(0);
	int64		timeout_ms = ao_interval_arg_ms(PG_GETARG_INTERVAL_P(1), "timeout");
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	Oid			types[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(run);
	for (;;)
	{
		char	   *status;
		long		remaining;

		SPI_connect();
		/* a kept plan: a session's waits are not planned again each time */
		ao_spi_exec_generic("SELECT r.*, r.xmin, r.status::text FROM agentorch.runs r WHERE r.id OPERATOR(pg_catalog.=) $1",
							1, types, values, NULL, SPI_OK_SELECT);
		if (SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("run %lld does not exist", (long long) run)));
		status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, SPI_tuptable->tupdesc->natts);
		{
			bool		isnull;
			TransactionId xmin = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
																	 SPI_tuptable->tupdesc->natts - 1, &isnull));

			/* executors cannot see a run before its transaction commits */
			if (strcmp(status, "running") == 0 && TransactionIdIsCurrentTransactionId(xmin))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("run %lld was started in this transaction and cannot run before it commits",
								(long long) run),
						 errhint("Commit, then call agentorch.wait(); or run it here with agentorch.work().")));
		}
		remaining = (long) ((deadline - GetCurrentTimestamp()) / 1000);
		if (strcmp(status, "running") != 0 && strcmp(status, "pending") != 0)
			remaining = 0;
		if (remaining <= 0)
		{
			TupleDesc	rettype;
			HeapTuple	tup;
			Datum		result;
			int			natts;
			Datum	   *vals;
			bool	   *nulls;

			if (get_call_result_type(fcinfo, NULL, &rettype) != TYPEFUNC_COMPOSITE)
				elog(ERROR, "agentorch.wait must return a composite");
			natts = rettype->natts;
			vals = palloc(sizeof(Datum) * SPI_tuptable->tupdesc->natts);
			nulls = palloc(sizeof(bool) * SPI_tuptable->tupdesc->natts);
			heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, vals, nulls);
			tup = heap_form_tuple(BlessTupleDesc(rettype), vals, nulls);
			(void) natts;
			result = SPI_datumTransfer(HeapTupleGetDatum(tup), false, -1);
			SPI_finish();
			ao_wait_for_progress_done();
			return result;
		}
		SPI_finish();
		ao_wait_for_progress(Min(remaining, 1000));
	}
}

/* State of a follow() call across its value-per-call invocations. */
typedef struct FollowState
{
	int64		run;
	int64		last_seq;
	TimestampTz deadline;
	bool		done;
	List	   *buffered;		/* HeapTuples in multi_call_memory_ctx */
} FollowState;

/*
 * follow(run_id, after_seq, timeout) RETURNS SETOF agentorch.chunks: the
 * run's chunks as they are committed, value per call, so a cursor or
 * psql's FETCH_COUNT shows them live. Ends after the final chunk or when
 * the timeout passes. Each poll is a fresh snapshot.
 */
Datum
ao_sql_follow(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	FollowState *st;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;
		TupleDesc	tupdesc;

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "agentorch.follow must return a composite");
		funcctx->tuple_desc = BlessTupleDesc(tupdesc);
		st = palloc0(sizeof(FollowState));
		st->run = PG_GETARG_INT64(0);
		st->last_seq = PG_GETARG_INT64(1);
		st->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   ao_interval_arg_ms(PG_GETARG_INTERVAL_P(2), "timeout"));
		funcctx->user_fctx = st;
		MemoryContextSwitchTo(old);
		visible_run_owner(st->run);
	}
	funcctx = SRF_PERCALL_SETUP();
	st = funcctx->user_fctx;

	while (st->buffered == NIL && !st->done)
	{
		Oid			types[2] = {INT8OID, INT8OID};
		Datum		values[2];
		bool		finished = false;
		long		remaining;

		values[0] = Int64GetDatum(st->run);
		values[1] = Int64GetDatum(st->last_seq);
		SPI_connect();
		if (SPI_execute_with_args("SELECT c.*, r.status::text, r.last_chunk_seq "
								  "FROM agentorch.chunks c LEFT JOIN agentorch.runs r ON r.id OPERATOR(pg_catalog.=) $1 "
								  "WHERE c.run_id OPERATOR(pg_catalog.=) $1 AND c.seq OPERATOR(pg_catalog.>) $2 "
								  "ORDER BY c.seq LIMIT 1000",
								  2, types, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "agentorch: could not read chunks");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			TupleDesc	desc = SPI_tuptable->tupdesc;
			Datum	   *vals = palloc(sizeof(Datum) * desc->natts);
			bool	   *nulls = palloc(sizeof(bool) * desc->natts);
			MemoryContext old;
			HeapTuple	tup;
			char	   *kind;

			heap_deform_tuple(SPI_tuptable->vals[i], desc, vals, nulls);
			kind = SPI_getvalue(SPI_tuptable->vals[i], desc, 5);
			old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
			tup = heap_form_tuple(funcctx->tuple_desc, vals, nulls);
			st->buffered = lappend(st->buffered, tup);
			MemoryContextSwitchTo(old);
			st->last_seq = DatumGetInt64(vals[1]);
			if (kind && strcmp(kind, "final") == 0)
			{
				char	   *status = SPI_getvalue(SPI_tuptable->vals[i], desc, desc->natts - 1);
				char	   *last_chunk = SPI_getvalue(SPI_tuptable->vals[i], desc, desc->natts);

				/*
				 * A run resumed after this final chunk goes on, or went on and
				 * finished again later: the stream ends at the final chunk
				 * that is the finished run's last (runs.last_chunk_seq).
				 */
				if (status == NULL ||
					(strcmp(status, "running") != 0 && strcmp(status, "pending") != 0 &&
					 strcmp(status, "waiting") != 0 && atoll(last_chunk) <= st->last_seq))
				{
					finished = true;
					break;
				}
			}
		}
		SPI_finish();
		if (finished)
			st->done = true;
		if (st->buffered != NIL)
			break;
		remaining = (long) ((st->deadline - GetCurrentTimestamp()) / 1000);
		if (remaining <= 0)
		{
			st->done = true;
			break;
		}
		ao_wait_for_progress(Min(remaining, 1000));
	}
	ao_wait_for_progress_done();

	if (st->buffered != NIL)
	{
		HeapTuple	tup = linitial(st->buffered);

		st->buffered = list_delete_first(st->buffered);
		SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(tup));
	}
	SRF_RETURN_DONE(funcctx);
}

/* Status callback of graph(): look a step up in the fetched list. */
typedef struct StepStatuses
{
	int			n;
	char	  **ids;
	char	  **statuses;
} StepStatuses;

static const char *
status_of(void *arg, const char *step_id)
{
	StepStatuses *s = arg;

	for (int i = 0; i < s->n; i++)
		if (strcmp(s->ids[i], step_id) == 0)
			return s->statuses[i];
	return NULL;
}

/* graph(run_id, format DEFAULT 'mermaid'): the run's DAG with each step's status. */
Datum
ao_sql_graph(PG_FUNCTION_ARGS)
{
	int64		run = PG_GETARG_INT64(0);
	char	   *format = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	char	   *definition = NULL;
	StepStatuses st = {0};
	MemoryContext caller = CurrentMemoryContext;

	visible_run_owner(run);
	values[0] = Int64GetDatum(run);
	SPI_connect();
	/*
	 * A planner or reactive run shows every version of its plan: each
	 * planner step leads to the steps of the plan it wrote, and steps a
	 * later version replaced are marked superseded.
	 */
	if (SPI_execute_with_args("SELECT COALESCE(w.definition, "
							  "  CASE WHEN r.orchestration OPERATOR(pg_catalog.=) ANY ('{planner,reactive}'::agentorch.orchestration_type[]) THEN "
							  "  pg_catalog.jsonb_build_object('steps', (SELECT pg_catalog.jsonb_agg(s.spec OPERATOR(pg_catalog.||) "
							  "     pg_catalog.jsonb_build_object('depends_on', "
							  "       CASE WHEN s.depends_on OPERATOR(pg_catalog.=) '{}' AND s.spec OPERATOR(pg_catalog.?) 'planned_by' "
							  "       THEN pg_catalog.jsonb_build_array(s.spec OPERATOR(pg_catalog.->) 'planned_by') "
							  "       ELSE pg_catalog.to_jsonb(s.depends_on) END) "
							  "     ORDER BY s.ord) "
							  "     FROM agentorch.steps s WHERE s.run_id OPERATOR(pg_catalog.=) r.id AND s.parent_step_id IS NULL)) END, "
							  "  r.plan, "
							  "  pg_catalog.jsonb_build_object('steps', (SELECT pg_catalog.jsonb_agg(s.spec ORDER BY s.ord) "
							  "     FROM agentorch.steps s WHERE s.run_id OPERATOR(pg_catalog.=) r.id AND s.parent_step_id IS NULL)))::text "
							  "FROM agentorch.runs r LEFT JOIN agentorch.workflows w "
							  "  ON w.name OPERATOR(pg_catalog.=) r.workflow_name AND w.version OPERATOR(pg_catalog.=) r.workflow_version "
							  "WHERE r.id OPERATOR(pg_catalog.=) $1",
							  1, types, values, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		definition = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		MemoryContextSwitchTo(spi);
	}
	if (SPI_execute_with_args("SELECT step_id, CASE WHEN error OPERATOR(pg_catalog.->>) 'superseded' OPERATOR(pg_catalog.=) 'true' "
							  "  THEN 'superseded' ELSE status::text END FROM agentorch.steps WHERE run_id OPERATOR(pg_catalog.=) $1",
							  1, types, values, NULL, true, 0) == SPI_OK_SELECT)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		st.n = (int) SPI_processed;
		st.ids = palloc(sizeof(char *) * (st.n + 1));
		st.statuses = palloc(sizeof(char *) * (st.n + 1));
		for (int i = 0; i < st.n; i++)
		{
			st.ids[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			st.statuses[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		}
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	if (definition == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("run %lld has no definition", (long long) run)));
	PG_RETURN_TEXT_P(ao_render_graph(definition, psprintf("run %lld", (long long) run), format,
									 status_of, &st));
}

/*
 * purge(older_than): delete finished runs older than the interval -- all
 * runs for a superuser, the caller's own otherwise.
 */
Datum
ao_sql_purge(PG_FUNCTION_ARGS)
{
	Oid			types[2] = {INTERVALOID, OIDOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	AoUserScope owner_scope;
	bool		isnull;
	int64		n;

	(void) ao_interval_arg_ms(PG_GETARG_INTERVAL_P(0), "older_than");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = ObjectIdGetDatum(GetUserId());
	if (superuser())
		nulls[1] = 'n';
	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	if (SPI_execute_with_args("SELECT agentorch._purge($1, $2)", 2, types, values, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "agentorch: purge failed");
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	ao_restore_user(&owner_scope);
	ao_audit_kv("purge", NULL, 0,
				"older_than", DatumGetCString(DirectFunctionCall1(interval_out, PG_GETARG_DATUM(0))),
				"deleted", psprintf(INT64_FORMAT, n), NULL);
	PG_RETURN_INT64(n);
}

/*
 * metrics(): counters of this server's executors (shared memory) and the
 * state of the runs the caller can see.
 */
Datum
ao_sql_metrics(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint64		done,
				failed,
				commits;
	int			executors;

	InitMaterializedSRF(fcinfo, 0);
	ao_shared_metrics(&done, &failed, &commits, &executors);
	{
		const char *names[] = {"executors", "steps_done_total", "steps_failed_total", "executor_commits_total",
		"step_locks_held"};
		double		vals[] = {executors, (double) done, (double) failed, (double) commits,
		Max(ao_step_locks_held(), 0)};

		for (int i = 0; i < lengthof(names); i++)
		{
			Datum		v[2];
			bool		n[2] = {false, false};

			v[0] = CStringGetTextDatum(names[i]);
			v[1] = Float8GetDatum(vals[i]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
		}
	}
	ao_policy_metrics(rsinfo->setResult, rsinfo->setDesc);
	SPI_connect();
	/* runs by status in one scan (a count per status was a scan each: seconds with a million runs) */
	if (SPI_execute("(SELECT 'runs_' OPERATOR(pg_catalog.||) s::text, COALESCE(c.n, 0)::float8 "
					"FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::agentorch.run_status)) WITH ORDINALITY AS u(s, ord) "
					"LEFT JOIN (SELECT r.status, pg_catalog.count(*) AS n FROM agentorch.runs r GROUP BY r.status) c "
					"ON c.status OPERATOR(pg_catalog.=) u.s ORDER BY u.ord) "
					"UNION ALL SELECT 'steps_ready', pg_catalog.count(*)::float8 FROM agentorch.steps WHERE status = 'ready' "
					"UNION ALL SELECT 'steps_running', pg_catalog.count(*)::float8 FROM agentorch.steps WHERE status = 'running' "
					"UNION ALL SELECT 'steps_waiting', pg_catalog.count(*)::float8 FROM agentorch.steps WHERE status = 'waiting'",
					true, 0) == SPI_OK_SELECT)
	{
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			Datum		v[2];
			bool		n[2];

			v[0] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &n[0]);
			v[1] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &n[1]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
		}
	}
	SPI_finish();
	return (Datum) 0;
}

/*-------------------------------------------------------------------------
 * run_sync
 *-------------------------------------------------------------------------
 */

/* State of a run_sync() call across its value-per-call invocations. */
typedef struct SyncState
{
	int64		run;
	int64		last_seq;
	int			attempt;
	int			max_attempts;
	Oid			owner;
	char	   *spec;			/* step spec (text) */
	char	   *options;		/* run options (text) */
	void	   *step;			/* the inline network step */
	bool		done;
	List	   *buffered;		/* HeapTuples of chunks not yet returned */
} SyncState;

/* Run a statement as the extension owner (the caller's transaction). */
static void
as_owner_exec(const char *sql, int nargs, Oid *types, Datum *values)
{
	AoUserScope owner_scope;

	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	if (SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0) < 0)
		elog(ERROR, "agentorch: failed: %s", sql);
	SPI_finish();
	ao_restore_user(&owner_scope);
}

/* Start (or restart, for another attempt) the inline llm step of a sync run. */
static void
sync_start_attempt(SyncState *st, MemoryContext cxt)
{
	Oid			types[4] = {INT8OID, INT4OID, INT4OID, INT4OID};
	Datum		values[4];
	Jsonb	   *context = NULL;
	MemoryContext old;
	AoUserScope owner_scope;

	st->attempt++;
	values[0] = Int64GetDatum(st->run);
	values[1] = Int32GetDatum(st->attempt);
	values[2] = Int32GetDatum(MyProcPid);
	values[3] = Int32GetDatum(ao_lease_ms);
	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	ao_state_lease_step(st->run, "main", st->attempt, ao_lease_ms, MyProcPid, NULL);
	SPI_finish();
	ao_restore_user(&owner_scope);
	/* the state layer's functions are the extension owner's */
	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	/* not read-only: the run was created earlier in this statement */
	if (SPI_execute_with_args("SELECT agentorch._context($1)", 1, types, values, NULL, false, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		old = MemoryContextSwitchTo(cxt);
		if (!isnull)
			context = DatumGetJsonbPCopy(d);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	ao_restore_user(&owner_scope);
	if (context == NULL)
		elog(ERROR, "agentorch: run %lld has no context", (long long) st->run);
	old = MemoryContextSwitchTo(cxt);
	st->step = ao_net_inline_start(st->run, "main", st->attempt, st->max_attempts, st->owner,
								   st->spec, st->options,
								   DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))),
								   context, cxt);
	MemoryContextSwitchTo(old);
}

/* Read the run's chunks after last_seq (as the caller) into the buffer. */
static void
sync_fetch(SyncState *st, FuncCallContext *funcctx)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2];

	values[0] = Int64GetDatum(st->run);
	values[1] = Int64GetDatum(st->last_seq);
	SPI_connect();
	if (SPI_execute_with_args("SELECT * FROM agentorch.chunks WHERE run_id = $1 AND seq > $2 ORDER BY seq",
							  2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "agentorch: could not read chunks");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum	   *vals = palloc(sizeof(Datum) * desc->natts);
		bool	   *nulls = palloc(sizeof(bool) * desc->natts);
		MemoryContext old;

		heap_deform_tuple(SPI_tuptable->vals[i], desc, vals, nulls);
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		st->buffered = lappend(st->buffered, heap_form_tuple(funcctx->tuple_desc, vals, nulls));
		MemoryContextSwitchTo(old);
		st->last_seq = DatumGetInt64(vals[1]);
	}
	SPI_finish();
}

/* Write the step's queued chunks (as the extension owner). */
static void
sync_flush(SyncState *st)
{
	AoUserScope owner_scope;

	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	(void) ao_llm_flush_pending(st->step);
	SPI_finish();
	ao_restore_user(&owner_scope);
}

/*
 * Record the outcome of the finished attempt; returns false when another
 * attempt was started instead.
 */
static bool
sync_settle(SyncState *st, MemoryContext cxt)
{
	AoNetOutcome o = ao_net_inline_outcome(st->step);
	Datum		values[3];

	sync_flush(st);
	values[0] = Int64GetDatum(st->run);
	if (o.deferred || (!o.ok && o.retryable && st->attempt < st->max_attempts))
	{
		double		delay = o.deferred ? (double) o.defer_ms
			: ao_retry_delay_ms(NULL, st->attempt, o.retry_after_ms);

		if (!o.deferred)
		{
			Oid			t[3] = {INT8OID, JSONBOID, FLOAT8OID};
			Datum		v[3];

			v[0] = values[0];
			v[1] = JsonbPGetDatum(o.error);
			v[2] = Float8GetDatum(delay);
			as_owner_exec("SELECT agentorch._step_transition($1, 'main', 'ready', "
						  "  (SELECT attempt FROM agentorch.steps WHERE run_id = $1 AND step_id = 'main'), "
						  "  'step_retrying', pg_catalog.jsonb_build_object('error', $2, 'delay_ms', $3))",
						  3, t, v);
		}
		else
			st->attempt--;		/* a deferral spends no attempt */
		ao_net_inline_free(st->step);
		st->step = NULL;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 (long) Min(delay, ao_retry_max_ms), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		sync_start_attempt(st, cxt);
		return false;
	}
	values[1] = o.ok ? JsonbPGetDatum(o.output) : (Datum) 0;
	values[2] = o.ok ? (Datum) 0 : JsonbPGetDatum(o.error);
	{
		Oid			t[4] = {INT8OID, JSONBOID, JSONBOID, JSONBOID};
		Datum		v[4];
		char		n[4] = {' ', o.ok ? ' ' : 'n', o.ok ? 'n' : ' ', o.usage ? ' ' : 'n'};
		AoUserScope owner_scope;

		v[0] = values[0];
		v[1] = values[1];
		v[2] = values[2];
		v[3] = o.usage ? JsonbPGetDatum(o.usage) : (Datum) 0;
		ao_become_extension_owner(&owner_scope);
		SPI_connect();
		if (SPI_execute_with_args(o.ok
								  ? "SELECT agentorch._finish_step($1, 'main', 'succeeded', $2, $3, $4)"
								  : "SELECT agentorch._finish_step($1, 'main', 'failed', $2, $3, $4)",
								  4, t, v, n, false, 0) < 0)
			elog(ERROR, "agentorch: could not record the run_sync outcome");
		SPI_finish();
		ao_restore_user(&owner_scope);
	}
	ao_net_inline_free(st->step);
	st->step = NULL;
	return true;
}

/*
 * run_sync(input, options DEFAULT '{}') RETURNS SETOF agentorch.chunks:
 * a simple run executed in this session and this transaction, its chunks
 * returned value per call as they arrive (a cursor, or psql with
 * FETCH_COUNT 1, shows tokens live). The run and its chunks are rows like
 * any other, visible to others when the transaction commits. This is the
 * one place where a transaction stays open across network I/O: the
 * caller's, by the caller's choice.
 */
static Datum run_sync_call(FunctionCallInfo fcinfo, const char *search_path);

PG_FUNCTION_INFO_V1(ao_sql_run_sync);
Datum
ao_sql_run_sync(PG_FUNCTION_ARGS)
{
	/* each call runs under the safe search_path; the caller's is the run's */
	char	   *search_path = pstrdup(namespace_search_path);
	int			nest = ao_push_safe_search_path();
	Datum		result = run_sync_call(fcinfo, search_path);

	AtEOXact_GUC(true, nest);
	return result;
}

/* One value-per-call invocation of run_sync(). */
static Datum
run_sync_call(FunctionCallInfo fcinfo, const char *search_path)
{
	FuncCallContext *funcctx;
	SyncState  *st;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;
		TupleDesc	tupdesc;
		Jsonb	   *options;
		int64		run;
		Oid			types[1] = {INT8OID};
		Datum		values[1];

		if (PG_ARGISNULL(0))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("run input must not be null")));
		options = PG_ARGISNULL(1) ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")))
			: PG_GETARG_JSONB_P(1);
		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "agentorch.run_sync must return a composite");
		funcctx->tuple_desc = BlessTupleDesc(tupdesc);
		st = palloc0(sizeof(SyncState));
		funcctx->user_fctx = st;
		MemoryContextSwitchTo(old);

		run = ao_start_run(PG_GETARG_JSONB_P(0), "simple", NULL, options, search_path);
		st->run = run;
		values[0] = Int64GetDatum(run);
		SPI_connect();
		if (SPI_execute_with_args("SELECT s.spec::text, r.options::text, s.max_attempts, r.owner "
								  "FROM agentorch.steps s JOIN agentorch.runs r ON r.id = s.run_id "
								  "WHERE s.run_id = $1 AND s.step_id = 'main'",
								  1, types, values, NULL, false, 1) == SPI_OK_SELECT && SPI_processed == 1)
		{
			bool		isnull;

			old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
			st->spec = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			st->options = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
			MemoryContextSwitchTo(old);
			st->max_attempts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
			st->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
		}
		SPI_finish();
		if (st->spec == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("run %lld was not created", (long long) run)));
		sync_fetch(st, funcctx);	/* "run started" */
		sync_start_attempt(st, funcctx->multi_call_memory_ctx);
	}
	funcctx = SRF_PERCALL_SETUP();
	st = funcctx->user_fctx;

	while (st->buffered == NIL && !st->done)
	{
		AoNetOutcome o;

		if (st->step == NULL)
		{
			st->done = true;
			break;
		}
		o = ao_net_inline_outcome(st->step);
		if (o.finished)
		{
			if (sync_settle(st, funcctx->multi_call_memory_ctx))
				st->done = true;
			sync_fetch(st, funcctx);
			continue;
		}
		ao_net_inline_drive(st->step, ao_flush_interval_ms);
		if (!ao_net_inline_outcome(st->step).finished)
		{
			sync_flush(st);
			sync_fetch(st, funcctx);
		}
	}
	if (st->buffered != NIL)
	{
		HeapTuple	tup = linitial(st->buffered);

		st->buffered = list_delete_first(st->buffered);
		SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(tup));
	}
	SRF_RETURN_DONE(funcctx);
}
