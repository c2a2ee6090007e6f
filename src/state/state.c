/*-------------------------------------------------------------------------
 *
 * state.c
 *	  C side of the state layer: calls into the plpgsql functions of
 *	  sql/agentorch_state.sql, and the transitions the executors make in
 *	  C (a network step leased and given back, a transactional step's
 *	  attempt begun, usage added). Nothing else writes run or step state;
 *	  triggers check every status change against the state machines
 *	  (README.md in this folder draws them and the lock order).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/state/state.c
 *
 *-------------------------------------------------------------------------
 */
#include "state.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/timestamp.h"
#include "access/htup_details.h"
#include "commands/trigger.h"
#include "utils/builtins.h"
#include "utils/rel.h"

/* Call a state-layer function that takes (run bigint, step text, ...). */
void
ao_state_call(const char *sql, int64 run, const char *step, int nextra, Oid *extra_types,
			  Datum *extra_values, const char *extra_nulls)
{
	Oid			types[8] = {INT8OID, TEXTOID};
	Datum		values[8];
	char		nulls[8];

	Assert(run > 0 && step != NULL && nextra >= 0 && nextra <= 6);
	values[0] = Int64GetDatum(run);
	values[1] = CStringGetTextDatum(step);
	nulls[0] = nulls[1] = ' ';
	for (int i = 0; i < nextra; i++)
	{
		types[2 + i] = extra_types[i];
		values[2 + i] = extra_values[i];
		nulls[2 + i] = extra_nulls ? extra_nulls[i] : ' ';
	}
	ao_spi_exec(sql, 2 + nextra, types, values, nulls, 0);
}

/*
 * Lock a run's row until this transaction ends, as agentorch._lock_run
 * does, without a plpgsql call: an update that changes nothing, so that
 * the updates of the run in the steps' subtransactions that follow do not
 * turn its xmax into a MultiXact. Callers lock runs in id order.
 */
void
ao_state_lock_run(int64 run)
{
	Oid			t[1] = {INT8OID};
	Datum		v[1];

	Assert(run > 0);
	v[0] = Int64GetDatum(run);
	ao_spi_exec("UPDATE agentorch.runs SET last_event_seq = last_event_seq WHERE id OPERATOR(pg_catalog.=) $1",
				1, t, v, NULL, 0);
}

/*
 * A ready network step is leased by worker (a backend pid) for lease_ms:
 * running, its attempt counted, its input recorded, step_started.
 * attempt < 0 counts the next attempt; otherwise it is the attempt number.
 */
void
ao_state_lease_step(int64 run, const char *step, int attempt, int lease_ms, int worker, Jsonb *input)
{
	Oid			t[4] = {INT4OID, INT4OID, INT4OID, JSONBOID};
	Datum		v[4];
	char		n[4] = {' ', ' ', ' ', input ? ' ' : 'n'};

	Assert(lease_ms > 0 && worker > 0);
	v[0] = Int32GetDatum(attempt);
	v[1] = Int32GetDatum(lease_ms);
	v[2] = Int32GetDatum(worker);
	v[3] = input ? JsonbPGetDatum(input) : (Datum) 0;
	ao_state_call("UPDATE agentorch.steps SET status = 'running', "
				  "  attempt = CASE WHEN $3 < 0 THEN attempt + 1 ELSE $3 END, "
				  "  started_at = pg_catalog.now(), worker = $5, input = COALESCE($6, input), "
				  "  lease_until = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $4 / 1000.0) "
				  "WHERE run_id = $1 AND step_id = $2",
				  run, step, 4, t, v, n);
	ao_state_call("SELECT agentorch._step_transition($1, $2, 'running', (SELECT attempt FROM agentorch.steps "
				  " WHERE run_id = $1 AND step_id = $2), 'step_started')",
				  run, step, 0, NULL, NULL, NULL);
}

/*
 * A leased step is given back without an outcome (its bulkhead or rate
 * limit deferred it): ready again after delay_ms. The attempt is given
 * back too unless a request of it was sent (attempt_spent).
 */
void
ao_state_release_step(int64 run, const char *step, int delay_ms, bool attempt_spent)
{
	Oid			t[2] = {INT4OID, BOOLOID};
	Datum		v[2];

	v[0] = Int32GetDatum(delay_ms);
	v[1] = BoolGetDatum(attempt_spent);
	ao_state_call("UPDATE agentorch.steps SET status = 'ready', attempt = attempt - CASE WHEN $4 THEN 0 ELSE 1 END, "
				  "  lease_until = NULL, worker = NULL, "
				  "  not_before = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $3 / 1000.0) "
				  "WHERE run_id = $1 AND step_id = $2",
				  run, step, 2, t, v, NULL);
}

/* A ready step is put off before it started: due after delay_ms (no attempt, no event). */
void
ao_state_defer_step(int64 run, const char *step, int delay_ms)
{
	Oid			t[1] = {INT4OID};
	Datum		v[1];

	v[0] = Int32GetDatum(delay_ms);
	ao_state_call("UPDATE agentorch.steps SET not_before = pg_catalog.clock_timestamp() "
				  "  + pg_catalog.make_interval(secs => $3 / 1000.0) WHERE run_id = $1 AND step_id = $2",
				  run, step, 1, t, v, NULL);
}

/*
 * A transactional step's attempt is counted when it is claimed (the claim
 * statement's update): is it still ready (and, run_must_be_open, its run
 * still open)? An earlier step of the round may have failed or finished
 * the run.
 */
bool
ao_state_still_claimable(int64 run, const char *step, bool run_must_be_open)
{
	if (run_must_be_open)
		ao_state_call("SELECT 1 FROM agentorch.steps s JOIN agentorch.runs r ON r.id = s.run_id "
					  "WHERE s.run_id = $1 AND s.step_id = $2 AND s.status::text = 'ready' "
					  "  AND r.status IN ('running', 'waiting')",
					  run, step, 0, NULL, NULL, NULL);
	else
		ao_state_call("SELECT 1 FROM agentorch.steps s "
					  "WHERE s.run_id = $1 AND s.step_id = $2 AND s.status::text = 'ready'",
					  run, step, 0, NULL, NULL, NULL);
	return SPI_processed > 0;
}

/*
 * A claimed step that is not run after all (its lock is busy, the batch ran
 * out of time, its run closed): the claim's attempt, start time and worker
 * are put back as they were; with delay_ms >= 0 it is also due only after
 * delay_ms.
 */
void
ao_state_unclaim_step(int64 run, const char *step, int attempt, TimestampTz started_at, int worker,
					  int delay_ms)
{
	Oid			t[4] = {INT4OID, TIMESTAMPTZOID, INT4OID, INT4OID};
	Datum		v[4];
	char		n[4] = {' ', started_at ? ' ' : 'n', worker ? ' ' : 'n', ' '};

	v[0] = Int32GetDatum(attempt);
	v[1] = TimestampTzGetDatum(started_at);
	v[2] = Int32GetDatum(worker);
	v[3] = Int32GetDatum(delay_ms);
	ao_state_call("UPDATE agentorch.steps SET attempt = $3, started_at = $4, worker = $5, "
				  "  not_before = CASE WHEN $6 < 0 THEN not_before "
				  "                    ELSE pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $6 / 1000.0) END "
				  "WHERE run_id = $1 AND step_id = $2",
				  run, step, 4, t, v, n);
}

/* A transactional step's rendered input, recorded with its attempt. */
void
ao_state_record_input(int64 run, const char *step, Jsonb *input)
{
	Oid			t[1] = {JSONBOID};
	Datum		v[1];

	if (input == NULL)
		return;
	v[0] = JsonbPGetDatum(input);
	ao_state_call("UPDATE agentorch.steps SET input = $3 WHERE run_id = $1 AND step_id = $2",
				  run, step, 1, t, v, NULL);
}

/* The usage of a step's requests ({prompt_tokens, completion_tokens, cost}) is added to the step and its run. */
void
ao_state_add_usage(int64 run, const char *step, Jsonb *usage)
{
	Oid			t[1] = {JSONBOID};
	Datum		v[1];

	v[0] = JsonbPGetDatum(usage);
	ao_state_call("UPDATE agentorch.steps SET prompt_tokens = prompt_tokens + COALESCE(($3->>'prompt_tokens')::bigint, 0), "
				  "  completion_tokens = completion_tokens + COALESCE(($3->>'completion_tokens')::bigint, 0), "
				  "  cost = cost + COALESCE(($3->>'cost')::numeric, 0) "
				  "WHERE run_id = $1 AND step_id = $2",
				  run, step, 1, t, v, NULL);
	ao_state_call("UPDATE agentorch.runs SET prompt_tokens = prompt_tokens + COALESCE(($3->>'prompt_tokens')::bigint, 0), "
				  "  completion_tokens = completion_tokens + COALESCE(($3->>'completion_tokens')::bigint, 0), "
				  "  cost = cost + COALESCE(($3->>'cost')::numeric, 0) "
				  "WHERE id = $1 AND $2 IS NOT NULL",
				  run, step, 1, t, v, NULL);
}

/*
 * The state machines (README.md in this folder draws them): may a step or
 * a run go from status from to status to? A status not listed as a "from"
 * is one of the ends named in the last entry.
 */
typedef struct Transitions
{
	const char *from;
	const char *const *to;
} Transitions;

static const Transitions step_transitions[] = {
	{"pending", (const char *const[]) {"ready", "skipped", "cancelled", NULL}},
	{"ready", (const char *const[]) {"running", "waiting", "succeeded", "failed", "skipped", "cancelled", "pending", NULL}},
	{"running", (const char *const[]) {"ready", "succeeded", "failed", "skipped", "cancelled", "pending", NULL}},
	{"waiting", (const char *const[]) {"succeeded", "failed", "cancelled", "pending", NULL}},
	{"succeeded", (const char *const[]) {"compensated", NULL}},
	/* pending: resume() runs a step whose effects were undone again */
	{"compensated", (const char *const[]) {"pending", NULL}},
	/* failed, cancelled, skipped: resume(), a new plan */
	{NULL, (const char *const[]) {"pending", "ready", NULL}},
};

static const Transitions run_transitions[] = {
	{"pending", (const char *const[]) {"running", "failed", "cancelled", NULL}},
	{"running", (const char *const[]) {"waiting", "succeeded", "failed", "cancelled", NULL}},
	{"waiting", (const char *const[]) {"running", "succeeded", "failed", "cancelled", NULL}},
	{"succeeded", (const char *const[]) {NULL}},
	/* failed, cancelled: resume() */
	{NULL, (const char *const[]) {"running", NULL}},
};

static bool
transition_allowed(const Transitions *machine, const char *from, const char *to)
{
	const Transitions *t = machine;

	while (t->from != NULL && strcmp(t->from, from) != 0)
		t++;
	for (const char *const *n = t->to; *n; n++)
		if (strcmp(*n, to) == 0)
			return true;
	return false;
}

/*
 * The trigger steps_transition or runs_transition (is_step tells which):
 * the row's status change must be one its state machine allows; anything
 * else is an internal error naming it, never applied. ERRORs unless called
 * as a BEFORE UPDATE row trigger.
 */
static Datum
check_transition(FunctionCallInfo fcinfo, bool is_step)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	int			attnum;
	bool		isnull;
	const char *from;
	const char *to;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_BY_UPDATE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "agentorch: a transition check must be called as a BEFORE UPDATE row trigger");
	desc = RelationGetDescr(td->tg_relation);
	attnum = SPI_fnumber(desc, "status");
	if (attnum <= 0)
		elog(ERROR, "agentorch: a transition check's table has no status column");
	from = DatumGetCString(DirectFunctionCall1(enum_out, heap_getattr(td->tg_trigtuple, attnum, desc, &isnull)));
	to = DatumGetCString(DirectFunctionCall1(enum_out, heap_getattr(td->tg_newtuple, attnum, desc, &isnull)));
	if (strcmp(from, to) != 0 && !transition_allowed(is_step ? step_transitions : run_transitions, from, to))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 is_step ?
				 errmsg("illegal step transition %s -> %s (run %s, step %s)", from, to,
						SPI_getvalue(td->tg_newtuple, desc, SPI_fnumber(desc, "run_id")),
						SPI_getvalue(td->tg_newtuple, desc, SPI_fnumber(desc, "step_id"))) :
				 errmsg("illegal run transition %s -> %s (run %s)", from, to,
						SPI_getvalue(td->tg_newtuple, desc, SPI_fnumber(desc, "id")))));
	return PointerGetDatum(td->tg_newtuple);
}

/* Trigger steps_transition (_check_step_transition). */
PG_FUNCTION_INFO_V1(ao_sql_check_step_transition);
Datum
ao_sql_check_step_transition(PG_FUNCTION_ARGS)
{
	return check_transition(fcinfo, true);
}

/* Trigger runs_transition (_check_run_transition). */
PG_FUNCTION_INFO_V1(ao_sql_check_run_transition);
Datum
ao_sql_check_run_transition(PG_FUNCTION_ARGS)
{
	return check_transition(fcinfo, false);
}
