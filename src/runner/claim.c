/*-------------------------------------------------------------------------
 *
 * claim.c
 *	  The claim loop of an executor: claims ready steps, runs them by kind
 *	  (the transactional runners are here), and hands each outcome to the
 *	  state layer (sql/agentorch_state.sql). The executor's main loop that
 *	  calls it is in src/worker/worker.c.
 *
 * Transactional steps (sql and function tools, database.query, branch,
 * parallel, loop, user_input) are claimed, executed and completed in one
 * transaction: each step runs in its own subtransaction, so one failure
 * does not roll back its neighbours, and one commit completes many steps
 * exactly once. A crash before the commit leaves them ready again. Steps
 * that a completion makes ready are picked up in the same transaction
 * (up to the batch size), so a chain of transactional steps costs one
 * commit, not one per step. The work of a claim round is set-based where
 * it can be: a claim takes a run's ready steps together (steps_ready's
 * order), and at the round's end the state layer records its plain
 * successes and settles its runs together (ao_state_finish_successes,
 * ao_state_settle_runs in src/state/finish.c). The steps that a round of
 * plain successes made ready are begun directly, without a claim
 * statement, when the last claim found nothing more to take (a chain).
 *
 * Network steps (llm, http tools) are never run inside a transaction;
 * they are leased and driven by the network runner (runner_net.c).
 *
 * Tools run as the run's owner: inside the step's subtransaction the user
 * is switched with SECURITY_LOCAL_USERID_CHANGE and
 * SECURITY_RESTRICTED_OPERATION, and a GUC nest level is unwound
 * afterwards, the way PostgreSQL runs maintenance work as a table owner;
 * aborting the subtransaction restores everything on error.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/runner/claim.c
 *
 *-------------------------------------------------------------------------
 */
#include "runner.h"

#include "ao_template.h"

#include "access/xact.h"
#include "common/pg_prng.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "ao_backoff.h"
#include "ao_json_schema.h"
#include "ao_workflow.h"

static int	executor_id = 0;

/*
 * Simulation (agentorch.simulate): the executor runs one throwaway run in
 * the caller's subtransaction, with every tool, llm and user_input step's
 * output taken from the mocks instead of executed.
 */
static int64 sim_run = 0;
static json_object *sim_mocks = NULL;

/*
 * Lock order across claims: a transaction waits for run locks only in
 * ascending run id order, also across the claims it makes (the cascade
 * loop in process_steps, several work() calls in one transaction). This
 * is the highest run id the current transaction has locked; later claims
 * leave runs below it to others.
 */
static LocalTransactionId locked_lxid = InvalidLocalTransactionId;
static int64 locked_max_run = 0;

/* The highest run id locked by the current transaction (0 = none). */
static int64
max_locked_run(void)
{
	if (locked_lxid != MyProc->lxid)
	{
		locked_lxid = MyProc->lxid;
		locked_max_run = 0;
	}
	return locked_max_run;
}

/*
 * Crash-loop protection. A transactional step runs inside the transaction
 * that completes it, so if it crashes the server, nothing of the attempt
 * is committed and the restarted executor would run it again, forever.
 * So after a start that follows a crash (or the server's start) an executor is "careful" for its first
 * AO_CAREFUL_STEPS steps: it commits crashes = crashes + 1 on a step before running it
 * (completion resets it), and a step with AO_MAX_CRASHES recorded crashes
 * fails instead of running again.
 */
#define AO_MAX_CRASHES 3
#define AO_CAREFUL_STEPS 8
static int	careful_left = 0;

/* A cancel() interrupted a step: end the batch (process_steps) at once. */
static bool end_batch_now = false;

/* ... and claim nothing of that run for a moment (claim()). */
static int64 cancelled_run = 0;
static TimestampTz cancelled_run_until = 0;

/* A claimed step, as the claim query returns it. */
/* A claimed step (its attempt begun); input is set when its runner renders it. */
typedef AoAttempt Claimed;

/*
 * Successes recorded together at the end of a claim round
 * (ao_state_finish_successes), instead of one _finish_step call each: the
 * plain ones -- a tool step that succeeded, top-level, of no plan, without
 * output_schema, compensates or planner in its spec. Before anything else
 * changes the state of a run (a failure, a retry, a branch, a child, a
 * cancel), that run's pending successes are written first (flush_successes),
 * so no transition can overtake them. A flush inside a step's
 * subtransaction is kept with it: if the subtransaction is rolled back,
 * the successes it wrote are pending again (successes_rolled_back).
 */
typedef struct PendingSuccess
{
	int64		run_id;
	char	   *step_id;
	Jsonb	   *output;
	Jsonb	   *input;			/* NULL: none to record */
	int			written_at;		/* transaction nest level that wrote it; 0: pending */
} PendingSuccess;

static List *pending_successes = NIL;
static MemoryContext pending_cxt = NULL;	/* NULL: not in process_steps */
static int	pending_base_level = 0;	/* the nest level process_steps runs at */

/*
 * The run whose state a slow path of this round changed last (flush_successes
 * marks it): its next claimed steps are checked before they run, since a
 * failure may have cancelled them or closed the run.
 */
static int64 touched_run = 0;

/* The steps (Claimed) of the claim round in progress; NIL between rounds. */
static List *round_steps = NIL;

/* How many of its steps the claim round in progress deferred as plain successes. */
static int	round_deferred = 0;

/* The outcome of running one step. */
typedef struct Outcome
{
	bool		ok;
	Jsonb	   *output;			/* on success */
	Jsonb	   *error;			/* on failure: {message, sqlstate, detail, hint} */
	bool		retryable;
	long		defer_ms;		/* > 0: not run (its tool's limits), due again after this */
} Outcome;

/* Remember which executor this is (used as steps.worker). */
void
ao_executor_startup(int index, bool after_crash)
{
	executor_id = MyProcPid;	/* steps.worker: the pid holding a step */
	/* the executor before this one stopped normally (SIGTERM, DROP ...): no crash to count */
	careful_left = after_crash ? AO_CAREFUL_STEPS : 0;
}

/*-------------------------------------------------------------------------
 * SPI helpers (all within an SPI connection opened by the caller)
 *-------------------------------------------------------------------------
 */

/* A jsonb Datum from C text. */
static Datum
jsonb_datum(const char *text)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(text));
}

/* Copy a jsonb result column out of SPI memory into the caller's context. */
static Jsonb *
spi_jsonb(int row, int col, MemoryContext into)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);
	MemoryContext old;
	Jsonb	   *result;

	if (isnull)
		return NULL;
	old = MemoryContextSwitchTo(into);
	result = DatumGetJsonbPCopy(d);
	MemoryContextSwitchTo(old);
	return result;
}

/* Error jsonb from an ErrorData. */
static Jsonb *
error_jsonb(ErrorData *edata)
{
	json_object *o = ao_json_own(json_object_new_object());

	json_object_object_add(o, "message", json_object_new_string(edata->message ? edata->message : "error"));
	json_object_object_add(o, "sqlstate", json_object_new_string(unpack_sql_state(edata->sqlerrcode)));
	if (edata->detail)
		json_object_object_add(o, "detail", json_object_new_string(edata->detail));
	if (edata->hint)
		json_object_object_add(o, "hint", json_object_new_string(edata->hint));
	return ao_jsonb_from_json(o);
}


/*
 * Errors worth another attempt: not syntax or access rule violations
 * (class 42), not data exceptions (22), integrity violations (23),
 * unsupported features (0A), PL/pgSQL raises (P0), writes in a read-only
 * query (25006) or exceeded limits (54000); timeouts, serialization
 * failures, resource shortages and the like are.
 */
static bool
retryable_sqlstate(int sqlerrcode)
{
	int			class = ERRCODE_TO_CATEGORY(sqlerrcode);

	return class != ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION &&	/* 42 */
		class != ERRCODE_DATA_EXCEPTION &&	/* 22 */
		class != ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION &&	/* 23 */
		class != ERRCODE_FEATURE_NOT_SUPPORTED &&	/* 0A */
		class != ERRCODE_PLPGSQL_ERROR &&	/* P0 */
		sqlerrcode != ERRCODE_READ_ONLY_SQL_TRANSACTION &&	/* the same again */
		sqlerrcode != ERRCODE_PROGRAM_LIMIT_EXCEEDED;	/* a limit: the same again */
}

/*-------------------------------------------------------------------------
 * Templates and conditions
 *-------------------------------------------------------------------------
 */

/* The template context of a step: the run's context plus item/index. */
static Jsonb *
step_context(Claimed *c, MemoryContext into)
{
	Oid			types[3] = {INT8OID, JSONBOID, INT4OID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = Int64GetDatum(c->run_id);
	if (c->iteration >= 0)
	{
		values[1] = c->item ? JsonbPGetDatum(c->item) : jsonb_datum("null");
		values[2] = Int32GetDatum(c->iteration);
	}
	else
		nulls[1] = nulls[2] = 'n';
	ao_spi_exec("SELECT agentorch._context($1, $2, $3)", 3, types, values, nulls, SPI_OK_SELECT);
	return spi_jsonb(0, 1, into);
}

/* Evaluate a jsonpath predicate against the context (null counts as false). */
static bool
condition_holds(Jsonb *context, const char *condition)
{
	Oid			types[2] = {JSONBOID, TEXTOID};
	Datum		values[2];
	bool		isnull;
	Datum		d;

	values[0] = JsonbPGetDatum(context);
	values[1] = CStringGetTextDatum(condition);
	ao_spi_exec("SELECT pg_catalog.jsonb_path_match($1, $2::jsonpath, '{}', true)",
			 2, types, values, NULL, SPI_OK_SELECT);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return !isnull && DatumGetBool(d);
}

/* Member of the step spec as an owned json-c object (borrowed member), or NULL. */
static json_object *
spec_member(json_object *spec, const char *key)
{
	json_object *v;

	if (json_object_object_get_ex(spec, key, &v))
		return v;
	return NULL;
}

/*-------------------------------------------------------------------------
 * Running steps
 *-------------------------------------------------------------------------
 */

/*
 * Timeout of a transactional step in ms: the step's own, else the tool
 * policy's, else agentorch.step_timeout, else AO_DEFAULT_STEP_TIMEOUT_MS:
 * no step holds an executor (and the runs of its batch) without bound.
 */
static int
step_timeout_ms(json_object *spec, json_object *policy)
{
	json_object *t = spec ? spec_member(spec, "timeout") : NULL;
	double		ms = -1;

	if (t)
		ms = ao_duration_ms(t);
	if (ms < 0 && policy && (t = spec_member(policy, "timeout")))
		ms = ao_duration_ms(t);
	if (ms < 0)
		ms = ao_step_timeout_ms > 0 ? ao_step_timeout_ms : AO_DEFAULT_STEP_TIMEOUT_MS;
	return (int) AO_CAP_STEP_TIMEOUT(ms);
}

/* Shortest wait of a transactional tool step held back by its tool's limits. */
#define AO_TOOL_DEFER_MIN_MS 250

/* A step cut short by its run's deadline: failed as _recover fails the run (57014), not retried. */
static Jsonb *
deadline_error(void)
{
	return ao_error_jsonb(ERRCODE_QUERY_CANCELED, "run deadline exceeded", NULL);
}

/*
 * Run a tool step as the run's owner inside a subtransaction. Returns the
 * outcome; never ERRORs for failures of the tool itself. deadline (0:
 * none): the run's; the tool's statement timeout ends there at the latest.
 */
static Outcome
run_tool_as(Oid run_owner, int64 run, const char *tool, Jsonb *tool_definition, json_object *spec, Jsonb *input,
			TimestampTz deadline)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile Outcome out = {0};
	volatile bool cut_by_deadline = false;
	char	   *volatile policy_name = NULL;	/* set: the tool's limits were acquired */
	AoLimits	limits;
	uint64		probe = 0;		/* the half-open breaker's probe ticket, or 0 */
	AoTool	   *t;

	t = ao_tool_of_definition(run, tool, tool_definition);
	if (t != NULL && strcmp(t->kind, "builtin") == 0)
	{
		/*
		 * Nothing an LLM writes is executed as SQL: database.query runs only
		 * the literal query of its step's definition (validation refuses a
		 * ${...} reference in it; this also holds for definitions stored by
		 * older versions), and is never run for a model's function call.
		 */
		json_object *lit = spec ? spec_member(spec, "input") : NULL;
		json_object *q = lit && json_object_is_type(lit, json_type_object)
			? json_object_object_get(lit, "query") : NULL;

		if (spec == NULL ||
			(lit != NULL && !json_object_is_type(lit, json_type_object)) ||
			(q != NULL && (!json_object_is_type(q, json_type_string) || ao_template_has_reference(q))))
		{
			out.error = ao_error_jsonb(ERRCODE_INSUFFICIENT_PRIVILEGE, spec == NULL
									   ? "database.query cannot be called by a model"
									   : "database.query runs only a literal query of its step's definition",
									   "Values reach a query only as bound parameters (\"params\": [...] for $1, $2, ...).");
			return out;
		}
	}
	if (t == NULL)
	{
		out.error = ao_error_jsonb(ERRCODE_UNDEFINED_OBJECT, psprintf("tool \"%s\" does not exist", tool), NULL);
		return out;
	}
	if (t->input_schema)
	{
		ao_problems *p = ao_problems_new();
		json_object *in = ao_json_from_jsonb(input);

		if (ao_json_schema_validate(t->input_schema, in, ao_problems_add, p) > 0)
		{
			out.error = ao_error_jsonb(ERRCODE_INVALID_PARAMETER_VALUE, psprintf("input of tool \"%s\" does not match its input_schema", tool),
									   ao_problems_detail(p));
			return out;
		}
	}
	if (strcmp(t->kind, "http") == 0)
	{
		out.error = ao_error_jsonb(ERRCODE_FEATURE_NOT_SUPPORTED, psprintf("http tool \"%s\" cannot run inside a transaction", tool), NULL);
		return out;
	}
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(run_owner)))
	{
		out.error = ao_error_jsonb(ERRCODE_UNDEFINED_OBJECT, "the role that started this run no longer exists", NULL);
		return out;
	}
	if (deadline != 0 && deadline <= GetCurrentTimestamp())
	{
		out.error = deadline_error();
		return out;
	}
	/*
	 * The tool's circuit breaker, bulkhead and rate limit (shared with every
	 * executor), when its policy names them: unlike a network target's, a
	 * transactional tool has no breaker by default (its failures are mostly
	 * its input's).
	 */
	if (t->policy != NULL &&
		(json_object_object_get_ex(t->policy, "circuit_breaker", NULL) ||
		 json_object_object_get_ex(t->policy, "max_concurrency", NULL) ||
		 json_object_object_get_ex(t->policy, "rate_limit", NULL)))
	{
		long		wait_ms = 0;
		AoDecision	d;

		ao_policy_limits_from_json(t->policy, &limits);
		policy_name = psprintf("tool:%s", tool);
		d = ao_policy_acquire(policy_name, &limits, 0, &wait_ms, &probe);
		if (d != AO_ALLOW)
		{
			bool		before_deadline = deadline == 0 ||
				TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms) < deadline;

			/* a step waits (spending no attempt); a model's call of the tool is told */
			/*
			 * Each try is a claim and an unclaim: a step behind a full
			 * bulkhead comes back every AO_TOOL_DEFER_MIN_MS, not every
			 * 50 ms as a network request does.
			 */
			if (spec != NULL && (d == AO_DEFER || before_deadline))
				out.defer_ms = Max(wait_ms, AO_TOOL_DEFER_MIN_MS);
			else if (d == AO_DEFER)
			{
				out.error = ao_error_jsonb(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
										   psprintf("tool \"%s\" is at its limits (max_concurrency or rate_limit)", tool),
										   "Call it again later.");
				out.retryable = true;
			}
			else
			{
				out.error = ao_error_jsonb(ERRCODE_CANNOT_CONNECT_NOW, psprintf("circuit breaker of tool:%s is open", tool),
										   spec != NULL ? "Too many consecutive failures; the run's deadline comes before the cooldown ends."
										   : "Too many consecutive failures; calls resume after the cooldown.");
				out.retryable = spec == NULL;
			}
			return out;
		}
	}

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	PG_TRY();
	{
		Oid			save_uid;
		int			save_sec;
		int			nest;
		int			timeout = step_timeout_ms(spec, t->policy);
		Jsonb	   *result;

		GetUserIdAndSecContext(&save_uid, &save_sec);
		SetUserIdAndSecContext(run_owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		nest = NewGUCNestLevel();
		/* the tool's SQL runs with the path captured for it, as the owner */
		(void) set_config_option("search_path", t->search_path, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		if (strcmp(t->kind, "builtin") == 0 && (timeout <= 0 || timeout > ao_query_timeout_ms))
			timeout = ao_query_timeout_ms;
		/* the run's deadline cuts the step short as it cuts an llm step's request */
		if (deadline != 0)
		{
			int64		left_ms = (deadline - GetCurrentTimestamp() + 999) / 1000;

			if (timeout <= 0 || left_ms < timeout)
			{
				timeout = (int) Max(left_ms, 1);
				cut_by_deadline = true;
			}
		}
		if (timeout > 0)
			enable_timeout_after(STATEMENT_TIMEOUT, timeout);
		result = ao_run_tool_as_owner(t, input, caller);
		if (timeout > 0)
			disable_timeout(STATEMENT_TIMEOUT, false);
		AtEOXact_GUC(false, nest);
		SetUserIdAndSecContext(save_uid, save_sec);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
		out.ok = true;
		out.output = result;
		if (policy_name)
			ao_policy_release(policy_name, &limits, 1, 0, probe);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		disable_timeout(STATEMENT_TIMEOUT, false);
		edata = ao_abort_subxact(caller, owner);
		/*
		 * For the tool's breaker, as for a model's: a failure that may pass
		 * (a retryable SQLSTATE: serialization, deadlock, connection,
		 * resources) counts; a permanent one is an answer (bad input, which
		 * a caller could send on purpose to open a breaker every user of
		 * the tool shares); a timeout, which the step's author chooses, or
		 * a cancel counts for nothing.
		 */
		if (policy_name)
			ao_policy_release(policy_name, &limits,
							  edata->sqlerrcode == ERRCODE_QUERY_CANCELED ? -1 :
							  retryable_sqlstate(edata->sqlerrcode) ? 0 : 1, 0, probe);
		/* cancel() of the run is not the tool's failure: the step's guard handles it */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && ao_cancelled_by_request(run, false))
			ReThrowError(edata);
		out.ok = false;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && cut_by_deadline && deadline <= GetCurrentTimestamp())
			out.error = deadline_error();	/* not retried: the run is past its deadline */
		else
		{
			out.error = error_jsonb(edata);
			out.retryable = retryable_sqlstate(edata->sqlerrcode);
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();

	/*
	 * An executor's session serves every role's steps: a session advisory
	 * lock the tool took (pg_advisory_lock) goes with the step, or it would
	 * be held for as long as the executor lives, and whoever else waits for
	 * its key would wait as long. (Step locks are not session locks there:
	 * src/policy/locks.c.) In the caller's own session (work(), run_sync)
	 * its locks are its own.
	 */
	if (ao_my_executor_index >= 0)
		LockReleaseSession(USER_LOCKMETHOD);
	return out;
}

/*
 * Run a transactional tool for an LLM's function call as the run's owner
 * (caller: in a transaction with an SPI connection). Returns true with
 * *output, or false with *error.
 */
bool
ao_call_tool_as(Oid run_owner, int64 run, const char *tool, Jsonb *input, Jsonb **output, Jsonb **error)
{
	Outcome		o = run_tool_as(run_owner, run, tool, NULL, NULL, input, 0);

	*output = o.output;
	*error = o.error;
	return o.ok;
}

/* Render a template member of the spec against the context (missing = JSON null). */
static Jsonb *
render_member(json_object *spec, const char *key, Jsonb *context)
{
	json_object *v = spec_member(spec, key);

	if (v == NULL)
		return NULL;
	if (context == NULL)		/* no ${...} anywhere in the step */
		return ao_jsonb_from_json(v);
	return ao_render_jsonb(ao_jsonb_from_json(v), context);
}

/* See runner.h: one line per failed step, with its SQLSTATE and message. */
void
ao_log_step_failure(int64 run, const char *step, Jsonb *error)
{
	char	   *text;

	if (ao_log_level == 0)
		return;
	text = error ? JsonbToCString(NULL, &error->root, VARSIZE(error)) : "{}";
	ao_log("agentorch: run %lld step %s failed: %s", (long long) run, step, text);
}

/* May this success wait for the end of the round (see PendingSuccess)? */
static bool
defer_success(Claimed *c, json_object *spec)
{
	static const char *const special[] = {"output_schema", "compensates", "planner", NULL};

	if (!c->plain || sim_run != 0 || pending_cxt == NULL || !ao_schema_at_least(0, 2))
		return false;
	for (const char *const *k = special; *k; k++)
		if (json_object_object_get_ex(spec, *k, NULL))
			return false;
	return true;
}

/*
 * Write the pending successes of run (0: of every run) through the state
 * layer (ao_state_finish_successes). Inside a subtransaction they stay
 * listed, marked with its level, until it ends (successes_kept /
 * successes_rolled_back). With counters, the runs' counters are left in
 * *counters for ao_state_settle_runs, which must come next.
 */
static void
flush_successes_into(int64 run, AoRunCounters **counters)
{
	ListCell   *lc;
	int			n = 0;
	int			level = GetCurrentTransactionNestLevel();
	List	   *left = NIL;
	MemoryContext old_cxt;

	if (counters)
		*counters = NULL;
	if (run != 0)
		touched_run = run;

	foreach(lc, pending_successes)
	{
		PendingSuccess *p = lfirst(lc);

		if (p->written_at == 0 && (run == 0 || p->run_id == run))
			n++;
	}
	if (n == 0)
		return;
	{
		AoSuccess  *list = palloc(sizeof(AoSuccess) * n);

		n = 0;
		foreach(lc, pending_successes)
		{
			PendingSuccess *p = lfirst(lc);

			if (p->written_at == 0 && (run == 0 || p->run_id == run))
			{
				list[n].run_id = p->run_id;
				list[n].step_id = p->step_id;
				list[n].output = p->output;
				list[n].input = p->input;
				n++;
			}
		}
		ao_state_finish_successes(list, n, counters);
		pfree(list);
	}

	/* written: forgotten at the top level, else marked until the subtransaction ends */
	/* the list lives as long as its cells (n > 0: inside process_steps) */
	old_cxt = MemoryContextSwitchTo(pending_cxt);
	foreach(lc, pending_successes)
	{
		PendingSuccess *p = lfirst(lc);

		if (p->written_at == 0 && (run == 0 || p->run_id == run))
		{
			if (level > pending_base_level)
			{
				p->written_at = level;
				left = lappend(left, p);
			}
		}
		else
			left = lappend(left, p);
	}
	list_free(pending_successes);
	pending_successes = left;
	MemoryContextSwitchTo(old_cxt);
}

/* flush_successes_into, the runs' counters written at once. */
static void
flush_successes(int64 run)
{
	flush_successes_into(run, NULL);
}

/* The subtransaction at level ended committed: its writes belong to its parent now. */
static void
successes_kept(int level)
{
	ListCell   *lc;
	List	   *left = NIL;
	MemoryContext old_cxt;

	if (pending_successes == NIL)
		return;
	old_cxt = MemoryContextSwitchTo(pending_cxt);
	foreach(lc, pending_successes)
	{
		PendingSuccess *p = lfirst(lc);

		if (p->written_at >= level)
			p->written_at = level - 1;
		if (p->written_at != pending_base_level)	/* written at process_steps' level: done */
			left = lappend(left, p);
	}
	list_free(pending_successes);
	pending_successes = left;
	MemoryContextSwitchTo(old_cxt);
}

/* The subtransaction at level was rolled back: what it wrote is pending again. */
static void
successes_rolled_back(int level)
{
	ListCell   *lc;

	foreach(lc, pending_successes)
	{
		PendingSuccess *p = lfirst(lc);

		if (p->written_at >= level)
			p->written_at = 0;
	}
}

/* Record a tool outcome: success, another attempt, or failure. */
static void
settle(Claimed *c, Outcome *o, json_object *spec)
{
	if (o->ok && defer_success(c, spec))
	{
		MemoryContext old = MemoryContextSwitchTo(pending_cxt);
		PendingSuccess *p = palloc(sizeof(PendingSuccess));

		p->run_id = c->run_id;
		p->step_id = pstrdup(c->step_id);
		p->output = (Jsonb *) pg_detoast_datum_copy((struct varlena *) o->output);
		p->input = c->input ? (Jsonb *) pg_detoast_datum_copy((struct varlena *) c->input) : NULL;
		p->written_at = 0;
		pending_successes = lappend(pending_successes, p);
		MemoryContextSwitchTo(old);
		ao_count_steps(1, 0);
		round_deferred++;
		return;
	}
	/* anything else changes the run: its pending successes go first */
	flush_successes(c->run_id);
	ao_state_record_input(c->run_id, c->step_id, c->input);
	if (o->ok)
	{
		Oid			t[1] = {JSONBOID};
		Datum		v[1];

		v[0] = JsonbPGetDatum(o->output);
		/* promotion of dependents happens once per run per round (process_steps) */
		ao_state_call("SELECT agentorch._finish_step($1, $2, 'succeeded', $3, NULL, NULL, true)", c->run_id, c->step_id,
				   1, t, v, NULL);
		ao_count_steps(1, 0);
	}
	else if (o->retryable && c->attempt + 1 < c->max_attempts)
	{
		Oid			t[2] = {JSONBOID, FLOAT8OID};
		Datum		v[2];

		v[0] = JsonbPGetDatum(o->error);
		v[1] = Float8GetDatum(ao_retry_delay_ms(spec, c->attempt + 1, 0));
		ao_state_call("SELECT agentorch._retry_step($1, $2, $3, $4)", c->run_id, c->step_id, 2, t, v, NULL);
	}
	else
	{
		Oid			t[1] = {JSONBOID};
		Datum		v[1];

		v[0] = JsonbPGetDatum(o->error);
		ao_state_call("SELECT agentorch._finish_step($1, $2, 'failed', NULL, $3)", c->run_id, c->step_id,
				   1, t, v, NULL);
		ao_count_steps(0, 1);
		ao_log_step_failure(c->run_id, c->step_id, o->error);
	}
}

/* A branch: the first case whose condition holds chooses its steps, else "else". */
static void
run_branch(Claimed *c, json_object *spec, Jsonb *context)
{
	json_object *cases = spec_member(spec, "cases");
	json_object *chosen = NULL;
	int			chosen_case = -1;
	json_object *all = ao_json_own(json_object_new_array());
	json_object *unchosen = ao_json_own(json_object_new_array());
	json_object *output = ao_json_own(json_object_new_object());
	Oid			t[2] = {JSONBOID, TEXTARRAYOID};
	Datum		v[2];

	for (size_t i = 0; cases && i < json_object_array_length(cases); i++)
	{
		json_object *cs = json_object_array_get_idx(cases, i);
		json_object *then = spec_member(cs, "then");

		for (size_t j = 0; then && j < json_object_array_length(then); j++)
			json_object_array_add(all, json_object_get(json_object_array_get_idx(then, j)));
		if (chosen == NULL &&
			condition_holds(context, json_object_get_string(spec_member(cs, "when"))))
		{
			chosen = then;
			chosen_case = (int) i + 1;
		}
	}
	if (spec_member(spec, "else"))
	{
		json_object *els = spec_member(spec, "else");

		for (size_t j = 0; j < json_object_array_length(els); j++)
			json_object_array_add(all, json_object_get(json_object_array_get_idx(els, j)));
		if (chosen == NULL)
			chosen = els;
	}
	for (size_t i = 0; i < json_object_array_length(all); i++)
	{
		const char *id = json_object_get_string(json_object_array_get_idx(all, i));
		bool		is_chosen = false;

		for (size_t j = 0; chosen && j < json_object_array_length(chosen); j++)
			is_chosen = is_chosen || strcmp(id, json_object_get_string(json_object_array_get_idx(chosen, j))) == 0;
		if (!is_chosen)
			json_object_array_add(unchosen, json_object_new_string(id));
	}
	json_object_object_add(output, "case", chosen_case > 0 ? json_object_new_int(chosen_case) :
						   (chosen ? json_object_new_string("else") : NULL));
	json_object_object_add(output, "chosen", chosen ? json_object_get(chosen) : json_object_new_array());

	{
		int			n = (int) json_object_array_length(unchosen);
		Datum	   *elems = palloc(sizeof(Datum) * (n + 1));

		for (int i = 0; i < n; i++)
			elems[i] = CStringGetTextDatum(json_object_get_string(json_object_array_get_idx(unchosen, i)));
		v[1] = PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
	}
	v[0] = ao_jsonb_datum_from_json(output);
	ao_state_call("SELECT agentorch._finish_branch($1, $2, $3, $4)", c->run_id, c->step_id, 2, t, v, NULL);
	ao_count_steps(1, 0);
}

/* Fail a step for a reason found before it ran (no retry). */
static void
fail_step(Claimed *c, int sqlerrcode, const char *message, const char *detail)
{
	Outcome		o = {0};

	o.error = ao_error_jsonb(sqlerrcode, message, detail);
	settle(c, &o, NULL);
}

/* Start a loop: for_each renders its array; while decides in the state layer. */
static void
run_loop(Claimed *c, json_object *spec, Jsonb *context)
{
	Oid			t[1] = {JSONBOID};
	Datum		v[1] = {(Datum) 0};
	char		nulls[1] = {'n'};
	json_object *max = spec_member(spec, "max_iterations");
	int			limit = max ? json_object_get_int(max) : ao_loop_max_iterations;

	if (spec_member(spec, "for_each"))
	{
		Jsonb	   *items = render_member(spec, "for_each", context);

		if (items == NULL || !JB_ROOT_IS_ARRAY(items) || JB_ROOT_IS_SCALAR(items))
		{
			fail_step(c, ERRCODE_INVALID_PARAMETER_VALUE, "for_each must produce an array", NULL);
			return;
		}
		if ((int) JB_ROOT_COUNT(items) > limit)
		{
			fail_step(c, ERRCODE_PROGRAM_LIMIT_EXCEEDED, psprintf("for_each produced %u items, more than max_iterations (%d)",
										   JB_ROOT_COUNT(items), limit), NULL);
			return;
		}
		v[0] = JsonbPGetDatum(items);
		nulls[0] = ' ';
	}
	ao_state_call("SELECT agentorch._start_children($1, $2, $3)", c->run_id, c->step_id, 1, t, v, nulls);
}

/* A user_input step starts waiting for submit_input. */
static void
run_user_input(Claimed *c, json_object *spec, Jsonb *context)
{
	Oid			t[2] = {TEXTOID, FLOAT8OID};
	Datum		v[2];
	Jsonb	   *prompt = render_member(spec, "prompt", context);
	json_object *timeout = spec_member(spec, "timeout");
	char	   *text = prompt ? JsonbToCString(NULL, &prompt->root, VARSIZE(prompt)) : "";

	/* a rendered string prompt is shown without its JSON quotes */
	if (prompt && JB_ROOT_IS_SCALAR(prompt))
	{
		json_object *p = ao_json_from_jsonb(prompt);

		if (json_object_is_type(p, json_type_string))
			text = pstrdup(json_object_get_string(p));
	}
	v[0] = CStringGetTextDatum(text);
	v[1] = Float8GetDatum(timeout ? ao_duration_ms(timeout) : 0);
	ao_state_call("SELECT agentorch._wait_for_input($1, $2, $3, $4)", c->run_id, c->step_id, 2, t, v, NULL);
}

/*
 * Run one claimed step of a run whose lock we hold. Its outcome is
 * recorded through the state layer before returning.
 */
static void
run_step(Claimed *c, MemoryContext stepcxt)
{
	MemoryContext old = MemoryContextSwitchTo(stepcxt);
	json_object *spec = ao_json_from_jsonb(c->spec);
	json_object *when = spec_member(spec, "when");
	Jsonb	   *context = NULL;
	Jsonb	   *input = NULL;

	/* only a tool's success can wait for the round's end (settle) */
	if (strcmp(c->kind, "tool") != 0 || when != NULL)
		flush_successes(c->run_id);

	/*
	 * The run context (every step's output so far) is built only when the
	 * step needs it: a template, a condition, a branch or a loop.
	 */
	if (when || strcmp(c->kind, "branch") == 0 || strcmp(c->kind, "loop") == 0 ||
		strstr(json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN), "${") != NULL)
		context = step_context(c, stepcxt);

	pgstat_report_activity(STATE_RUNNING, psprintf("agentorch: run %lld step %s",
												   (long long) c->run_id, c->step_id));

	/* a tool's input, rendered, is recorded with the attempt */
	if (strcmp(c->kind, "tool") == 0)
	{
		input = render_member(spec, "input", context);
		if (input == NULL)
			input = DatumGetJsonbP(jsonb_datum("{}"));
	}

	/* the step's lock, held until this transaction ends; busy: tried again shortly */
	{
		json_object *lock = spec_member(spec, "lock");

		if (lock && json_object_is_type(lock, json_type_string) &&
			!ao_step_lock_try(json_object_get_string(lock), false))
		{
			ao_state_unclaim_step(c->run_id, c->step_id, c->attempt, c->old_started_at, c->old_worker,
								  AO_STEP_LOCK_RETRY_MS);
			MemoryContextSwitchTo(old);
			return;
		}
	}

	/*
	 * The claim counted the attempt. If a step of this round changed the
	 * run before (a failure may have cancelled this one or closed the run),
	 * it runs only if it is still ready in an open run; else it is cancelled
	 * with its attempt given back.
	 */
	if (c->run_id == touched_run && !ao_state_still_claimable(c->run_id, c->step_id, true))
	{
		ao_state_unclaim_step(c->run_id, c->step_id, c->attempt, c->old_started_at, c->old_worker, -1);
		flush_successes(c->run_id);
		ao_state_call("SELECT agentorch._finish_step($1, $2, 'cancelled') "
					  "FROM agentorch.steps WHERE run_id = $1 AND step_id = $2 AND status = 'ready'",
					  c->run_id, c->step_id, 0, NULL, NULL, NULL);
		MemoryContextSwitchTo(old);
		return;
	}
	c->input = input;			/* recorded with the outcome (settle) */

	/* chaos tests: a tool step waits, or fails (retryable) before it runs */
	if (sim_run == 0 && strcmp(c->kind, "tool") == 0)
	{
		int			delay = ao_chaos_delay_ms();

		if (delay > 0)
			pg_usleep(delay * 1000L);
		if (ao_chaos_roll(ao_chaos_step_failure_rate))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("chaos: injected step failure"),
					 errdetail("agentorch.chaos_step_failure_rate is %g.", ao_chaos_step_failure_rate)));
	}

	if (sim_run != 0 && !(when && !condition_holds(context, json_object_get_string(when))) &&
		(strcmp(c->kind, "tool") == 0 || strcmp(c->kind, "llm") == 0 || strcmp(c->kind, "user_input") == 0))
	{
		/* simulation: the mock (by step id, else by tool name) is the output */
		json_object *mock = NULL;
		json_object *tool = spec_member(spec, "tool");
		Outcome		o = {0};
		const char *base = strrchr(c->step_id, '/') ? strrchr(c->step_id, '/') + 1 : c->step_id;
		char	   *hash = strchr(base, '#');

		if (hash)				/* a loop iteration: its body's id */
			base = pnstrdup(base, hash - base);
		if (!json_object_object_get_ex(sim_mocks, c->step_id, &mock) &&
			!json_object_object_get_ex(sim_mocks, base, &mock) &&
			tool != NULL)
			json_object_object_get_ex(sim_mocks, json_object_get_string(tool), &mock);
		if (strcmp(c->kind, "user_input") == 0 && mock == NULL)
			run_user_input(c, spec, context);	/* no answer given: it waits */
		else
		{
			o.ok = true;
			o.output = mock ? ao_jsonb_from_json(mock) : DatumGetJsonbP(jsonb_datum("null"));
			settle(c, &o, spec);
		}
	}
	else if (when && !condition_holds(context, json_object_get_string(when)))
	{
		ao_state_call("SELECT agentorch._finish_step($1, $2, 'skipped', NULL, '{\"reason\": \"when condition is false\"}', NULL, true)",
				   c->run_id, c->step_id, 0, NULL, NULL, NULL);
	}
	else if (strcmp(c->kind, "tool") == 0)
	{
		Outcome		o;

		o = run_tool_as(c->owner, c->run_id, json_object_get_string(spec_member(spec, "tool")), c->tool_definition,
						spec, input, c->deadline);
		if (o.defer_ms > 0)		/* held back by its tool's limits: due again later, no attempt spent */
			ao_state_unclaim_step(c->run_id, c->step_id, c->attempt, c->old_started_at, c->old_worker,
								  (int) Min(o.defer_ms, INT_MAX));
		else
			settle(c, &o, spec);
	}
	else if (strcmp(c->kind, "branch") == 0)
		run_branch(c, spec, context);
	else if (strcmp(c->kind, "parallel") == 0)
		ao_state_call("SELECT agentorch._start_children($1, $2, NULL)", c->run_id, c->step_id, 0, NULL, NULL, NULL);
	else if (strcmp(c->kind, "loop") == 0)
		run_loop(c, spec, context);
	else if (strcmp(c->kind, "user_input") == 0)
		run_user_input(c, spec, context);
	else
		fail_step(c, ERRCODE_FEATURE_NOT_SUPPORTED, psprintf("steps of kind %s cannot run in a transaction", c->kind), NULL);

	MemoryContextSwitchTo(old);
}

/*
 * A step failed outside its tool's own subtransaction (rendering its
 * input, converting a value, a state call, a cancel): count the attempt
 * again (the failed one was rolled back) and record the failure under the
 * step's retry contract. If even that fails, the step fails without a
 * retry; only if that fails too does the error reach the batch.
 */
static void
record_step_error(Claimed *c, ErrorData *edata)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Outcome		o = {0};
	json_object *volatile spec = NULL;
	int			level;

	o.ok = false;
	o.error = error_jsonb(edata);
	o.retryable = retryable_sqlstate(edata->sqlerrcode);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	level = GetCurrentTransactionNestLevel();
	PG_TRY();
	{
		spec = ao_json_from_jsonb(c->spec);
		c->input = NULL;		/* rolled back with the attempt's subtransaction */
		/* the claim counted the attempt, which the rollback kept */
		if (ao_state_still_claimable(c->run_id, c->step_id, false))
			settle(c, &o, spec);
		ReleaseCurrentSubTransaction();
		successes_kept(level);
	}
	PG_CATCH();
	{
		FreeErrorData(ao_abort_subxact(caller, owner));
		successes_rolled_back(level);
		/* the simplest record there is: the step failed, no retry */
		flush_successes(c->run_id);
		ao_state_call("SELECT agentorch._finish_step($1, $2, 'failed', NULL, $3) "
				   "FROM agentorch.steps WHERE run_id = $1 AND step_id = $2 AND status = 'ready'",
				   c->run_id, c->step_id, 1, (Oid[]) {JSONBOID}, (Datum[]) {JsonbPGetDatum(o.error)}, NULL);
		ao_count_steps(0, 1);
		ao_log_step_failure(c->run_id, c->step_id, o.error);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	CurrentResourceOwner = owner;
}

/*
 * Run one claimed step inside a subtransaction of its own: everything it
 * does -- building its context, rendering its input, checking, executing,
 * converting its output, recording the transition -- either commits with
 * the batch or is rolled back and becomes that step's failure under its
 * retry contract (record_step_error). So no step of one run can fail the
 * batch and halt the other runs of the database. The step's memory is
 * freed on both paths, so retries do not grow the executor.
 */
static void
run_step_guarded(Claimed *c)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	MemoryContext stepcxt = AllocSetContextCreate(caller, "agentorch step", ALLOCSET_DEFAULT_SIZES);

	int			level;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	level = GetCurrentTransactionNestLevel();
	ao_executor_set_current_run(c->run_id);
	PG_TRY();
	{
		run_step(c, stepcxt);
		ao_executor_set_current_run(0);
		ReleaseCurrentSubTransaction();
		successes_kept(level);
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		ao_executor_set_current_run(0);
		edata = ao_abort_subxact(caller, owner);
		successes_rolled_back(level);
		MemoryContextReset(stepcxt);
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && ao_cancelled_by_request(c->run_id, true))
		{
			/*
			 * cancel() of this run interrupted the step: nothing of it is
			 * kept, and the batch ends now, so the cancel, waiting for the
			 * run's lock, settles the run (the step must not be claimed
			 * again in this transaction).
			 */
			FreeErrorData(edata);
			end_batch_now = true;
			/* and leave the run alone while the cancel takes its lock */
			cancelled_run = c->run_id;
			cancelled_run_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 5000);
		}
		else if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && ao_take_stale_cancel_note())
		{
			/*
			 * A cancel() of another run reached this step (it read that
			 * run as ours just before we moved on): this step failed, but
			 * not for anything of its own -- another attempt, not the
			 * batch's end.
			 */
			record_step_error(c, edata);
			FreeErrorData(edata);
		}
		else if (edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN || edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);	/* the executor is stopped or cancelled: not the step's failure */
		else
		{
			record_step_error(c, edata);
			FreeErrorData(edata);
		}
	}
	PG_END_TRY();
	MemoryContextDelete(stepcxt);
}

/*
 * The claim statement, around a filter of ready steps (the executor's own
 * claim, or agentorch.work()'s and a simulation's with their parameters:
 * $2 only runs of owners that role has the privileges of, $3/$4 only that
 * step, $6 only that run's steps, network ones too).
 *
 * - c: steps_ready's order: steps early in their runs (the first sixteen
 *   places) before later ones, so a run's 1000th loop iteration does not
 *   go before another run's first step; among those, the oldest run's
 *   steps together, so what a run costs per claim (its lock, settling,
 *   promotion, notification) is paid once for a fan-out's ten steps, not
 *   ten times.
 * - u: an update that changes nothing: the claimed rows' versions become
 *   this transaction's own, so the step's subtransaction that updates them
 *   next does not turn their xmax into a MultiXact (our lock plus a
 *   child's update), which every later read of the row would decode.
 * - v: the same for the runs of steps that are not plain (children of a
 *   parallel step or a loop, plan steps): those change their run inside
 *   their subtransaction. A plain step's plain success is written at the
 *   round's level, with the round's other successes, so for its run the
 *   lock is enough (an update here would be one more version of every run
 *   in every round); when it changes its run inside its subtransaction
 *   instead (a failure, a retry, a branch, parallel, loop or user_input
 *   step), the run's row becomes a MultiXact, which costs that run's later
 *   reads a little. The run's status is as the round starts (nobody else
 *   can change it while we hold the row).
 * - the result: every row is locked already, the order is only the order
 *   of work. Steps of a run stay together; runs go by their best step
 *   (priority, then place in the run), so when the batch runs out of time
 *   (agentorch.batch_time_limit) a run's 1000th loop iteration has not
 *   gone before another run's first step.
 */
#define CLAIM_SQL(filter) \
	"WITH c AS (" \
	"  SELECT s.run_id, s.step_id, s.kind, s.spec, s.attempt, s.max_attempts, s.item, s.iteration, r.owner, " \
	"         s.priority, s.ord, (s.parent_step_id IS NULL AND s.plan_version = 0) AS plain, " \
	"         s.started_at, s.worker, r.status AS run_status, " \
	"         r.tools OPERATOR(pg_catalog.->) (s.spec OPERATOR(pg_catalog.->>) 'tool') AS tool_definition, " \
	"         CASE WHEN NOT r.compensating THEN r.deadline END AS deadline " \
	"    FROM agentorch.steps s JOIN agentorch.runs r ON r.id = s.run_id " \
	"   WHERE s.status = 'ready' AND " filter " " \
	"     AND (s.not_before IS NULL OR s.not_before <= pg_catalog.clock_timestamp()) " \
	"     AND s.run_id >= $5 AND s.run_id <> $7 " \
	"   ORDER BY s.network, s.priority DESC, s.not_before NULLS FIRST, (s.ord / 16), s.run_id, s.ord " \
	"   LIMIT $1 FOR UPDATE OF s, r SKIP LOCKED), " \
	"u AS (UPDATE agentorch.steps s SET attempt = s.attempt + 1, started_at = pg_catalog.now(), worker = $8 " \
	"      FROM c WHERE s.run_id = c.run_id AND s.step_id = c.step_id), " \
	"v AS (UPDATE agentorch.runs r SET last_event_seq = r.last_event_seq " \
	"      FROM (SELECT DISTINCT run_id FROM c WHERE NOT c.plain) x WHERE r.id = x.run_id) " \
	"SELECT c.run_id, c.step_id, c.kind::text, c.spec, c.attempt, c.max_attempts, c.item, " \
	"       COALESCE(c.iteration, -1), c.owner, c.plain, c.run_status::text, c.started_at, c.worker, " \
	"       c.tool_definition, c.deadline " \
	"  FROM c " \
	"WINDOW w AS (PARTITION BY c.run_id) " \
	"ORDER BY pg_catalog.max(c.priority) OVER w DESC, pg_catalog.min(c.ord) OVER w, c.run_id, c.step_id"

/*
 * Claim up to max ready transactional steps (SKIP LOCKED), ordered by run
 * so runs are locked in id order. With only_role valid, only runs whose
 * owner that role has the privileges of (agentorch.work()).
 */
static List *
claim(int max, Oid only_role, int64 only_run, const char *only_step, MemoryContext into)
{
	Oid			types[8] = {INT4OID, OIDOID, INT8OID, TEXTOID, INT8OID, INT8OID, INT8OID, INT4OID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	List	   *claimed = NIL;

	values[0] = Int32GetDatum(max);
	values[1] = ObjectIdGetDatum(only_role);
	if (!OidIsValid(only_role))
		nulls[1] = 'n';
	values[2] = Int64GetDatum(only_run);
	values[3] = only_step ? CStringGetTextDatum(only_step) : (Datum) 0;
	if (only_step == NULL)
		nulls[2] = nulls[3] = 'n';
	values[4] = Int64GetDatum(max_locked_run());
	values[5] = Int64GetDatum(sim_run);
	if (sim_run == 0)
		nulls[5] = 'n';
	values[6] = Int64GetDatum(cancelled_run != 0 && GetCurrentTimestamp() < cancelled_run_until ? cancelled_run : 0);
	values[7] = Int32GetDatum(executor_id);
	/*
	 * The executor's claim has no optional filter, so its plan does not
	 * depend on the parameters' values: it is planned once (a custom plan
	 * per claim was a tenth of the claim's cost).
	 */
	if (!OidIsValid(only_role) && only_step == NULL && sim_run == 0)
		ao_spi_exec_generic(CLAIM_SQL("NOT s.network"), 8, types, values, nulls, SPI_OK_SELECT);
	else
		ao_spi_exec(CLAIM_SQL("(NOT s.network OR $6::int8 IS NOT NULL) "
							  "AND ($6::int8 IS NULL OR s.run_id = $6) "
							  "AND ($2::oid IS NULL OR pg_catalog.pg_has_role($2::oid, r.owner, 'USAGE')) "
							  "AND ($3::int8 IS NULL OR (s.run_id = $3 AND s.step_id = $4))"),
					8, types, values, nulls, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(into);
		Claimed    *c = palloc0(sizeof(Claimed));
		bool		isnull;

		c->run_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		c->step_id = SPI_getvalue(tup, desc, 2);
		c->kind = SPI_getvalue(tup, desc, 3);
		c->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		c->max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		c->iteration = DatumGetInt32(SPI_getbinval(tup, desc, 8, &isnull));
		c->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 9, &isnull));
		c->plain = DatumGetBool(SPI_getbinval(tup, desc, 10, &isnull));
		{
			char	   *status = SPI_getvalue(tup, desc, 11);
			Datum		d;

			c->run_active = status && (strcmp(status, "running") == 0 || strcmp(status, "waiting") == 0);
			d = SPI_getbinval(tup, desc, 12, &isnull);
			c->old_started_at = isnull ? 0 : DatumGetTimestampTz(d);
			d = SPI_getbinval(tup, desc, 13, &isnull);
			c->old_worker = isnull ? 0 : DatumGetInt32(d);
			d = SPI_getbinval(tup, desc, 15, &isnull);
			c->deadline = isnull ? 0 : DatumGetTimestampTz(d);
		}
		MemoryContextSwitchTo(old);
		c->spec = spi_jsonb((int) i, 4, into);
		c->item = spi_jsonb((int) i, 7, into);
		c->tool_definition = spi_jsonb((int) i, 14, into);
		claimed = lappend(claimed, c);
	}
	return claimed;
}

/* steps_ready's order among steps of the same kind, due now: priority, place group, run, place */
static int
readied_cmp(const void *a, const void *b)
{
	const AoReadied *x = a;
	const AoReadied *y = b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	if (x->ord / 16 != y->ord / 16)
		return x->ord / 16 < y->ord / 16 ? -1 : 1;
	if (x->run_id != y->run_id)
		return x->run_id < y->run_id ? -1 : 1;
	return (x->ord > y->ord) - (x->ord < y->ord);
}

/*
 * The claim statement's order of work among the steps it took: a run's
 * steps together, runs by their best priority, then their first place,
 * then id; a run's steps by id (the database's collation, as ORDER BY
 * step_id). run_priority and run_ord hold each run's best, filled by the
 * caller.
 */
typedef struct TakenStep
{
	AoReadied	r;
	int			run_priority;
	int			run_ord;
} TakenStep;

static int
taken_run_cmp(const void *a, const void *b)
{
	int64		x = ((const TakenStep *) a)->r.run_id;
	int64		y = ((const TakenStep *) b)->r.run_id;

	return (x > y) - (x < y);
}

static int
work_order_cmp(const void *a, const void *b)
{
	const TakenStep *x = a;
	const TakenStep *y = b;

	if (x->run_priority != y->run_priority)
		return x->run_priority > y->run_priority ? -1 : 1;
	if (x->run_ord != y->run_ord)
		return x->run_ord < y->run_ord ? -1 : 1;
	if (x->r.run_id != y->r.run_id)
		return x->r.run_id < y->r.run_id ? -1 : 1;
	return varstr_cmp(x->r.step_id, strlen(x->r.step_id), y->r.step_id, strlen(y->r.step_id),
					  DEFAULT_COLLATION_OID);
}

/*
 * Begin attempts of steps the last round made ready (see
 * process_steps_rounds), at most max, as claim() returns them.
 */
static List *
take_readied(List *readied, int max, MemoryContext into)
{
	AoReadied  *r = palloc(sizeof(AoReadied) * list_length(readied));
	AoAttempt  *a = palloc(sizeof(AoAttempt) * list_length(readied));
	int64		cancelling = cancelled_run != 0 && GetCurrentTimestamp() < cancelled_run_until ? cancelled_run : 0;
	int			n = 0;
	int			taken;
	List	   *claimed = NIL;
	ListCell   *lc;

	foreach(lc, readied)
	{
		AoReadied  *x = lfirst(lc);

		/* what the claim statement would take: not a run being cancelled, runs in id order */
		if (x->run_id != cancelling && x->run_id >= max_locked_run())
			r[n++] = *x;
	}
	/* which ones: those the claim statement would take (steps_ready's order, at most max) */
	qsort(r, n, sizeof(AoReadied), readied_cmp);
	n = Min(n, max);
	/* then in its order of work: a run's steps together */
	{
		TakenStep  *t = palloc(sizeof(TakenStep) * Max(n, 1));

		for (int i = 0; i < n; i++)
			t[i].r = r[i];
		/* each run's best priority and first place, over its steps (grouped by run) */
		qsort(t, n, sizeof(TakenStep), taken_run_cmp);
		for (int i = 0, j; i < n; i = j)
		{
			int			best = t[i].r.priority;
			int			first = t[i].r.ord;

			for (j = i; j < n && t[j].r.run_id == t[i].r.run_id; j++)
			{
				best = Max(best, t[j].r.priority);
				first = Min(first, t[j].r.ord);
			}
			for (int k = i; k < j; k++)
			{
				t[k].run_priority = best;
				t[k].run_ord = first;
			}
		}
		qsort(t, n, sizeof(TakenStep), work_order_cmp);
		for (int i = 0; i < n; i++)
			r[i] = t[i].r;
		pfree(t);
	}
	taken = ao_state_begin_attempts(r, n, executor_id, a);
	for (int i = 0; i < taken; i++)
	{
		/* each its own chunk, as claim() makes them (the caller frees them one by one) */
		Claimed    *c = MemoryContextAlloc(into, sizeof(Claimed));
		MemoryContext old = MemoryContextSwitchTo(into);

		*c = a[i];
		claimed = lappend(claimed, c);
		MemoryContextSwitchTo(old);
	}
	pfree(r);
	pfree(a);
	return claimed;
}

static int	process_steps(int max, Oid only_role, int64 only_run, const char *only_step, List **runs);

/*
 * Does this session run a step of run now: is the run's step in the claim
 * round in progress? A step's code must not change such a run (cancel,
 * resume, submit_input): the round holds the run's rows, and its other
 * steps would be recorded against a run changed under them.
 */
bool
ao_round_holds_run(int64 run)
{
	ListCell   *lc;

	foreach(lc, round_steps)
		if (((Claimed *) lfirst(lc))->run_id == run)
			return true;
	return false;
}

/*
 * Process ready transactional steps in the current transaction (the
 * caller has an SPI connection and an active snapshot): claim, lock each
 * run, run its steps, and repeat for steps that became ready, until max
 * steps were processed or none is ready. Runs touched are appended to
 * *runs (for notifications). Returns the number of steps processed.
 */
int
ao_process_ready_steps(int max, Oid only_role, List **runs)
{
	return process_steps(max, only_role, 0, NULL, runs);
}

/* See ao_process_ready_steps; only_step restricts the first claim to one step. */
static int process_steps_rounds(int max, Oid only_role, int64 only_run, const char *only_step, List **runs);

static int
process_steps(int max, Oid only_role, int64 only_run, const char *only_step, List **runs)
{
	int			processed;

	/*
	 * Not from inside a step (a tool that calls work() or simulate()): this
	 * transaction holds the steps and runs of the round in progress, and a
	 * claim of its own would take them again (its own row locks do not keep
	 * it out) and run them inside themselves.
	 */
	if (pending_cxt != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentorch steps cannot be run from inside a step"),
				 errdetail("agentorch.work() and agentorch.simulate() were called while this session runs a step."),
				 errhint("Start another run and wait for it outside the step, or let the executors run it.")));
	pending_successes = NIL;
	pending_cxt = CurrentMemoryContext;
	pending_base_level = GetCurrentTransactionNestLevel();
	PG_TRY();
	{
		processed = process_steps_rounds(max, only_role, only_run, only_step, runs);
		Assert(pending_successes == NIL);
	}
	PG_FINALLY();
	{
		/* outside process_steps again, however it ended */
		round_steps = NIL;
		round_deferred = 0;
		pending_successes = NIL;
		pending_cxt = NULL;
		pending_base_level = 0;
	}
	PG_END_TRY();
	return processed;
}

/* process_steps' claim rounds */
static int
process_steps_rounds(int max, Oid only_role, int64 only_run, const char *only_step, List **runs)
{
	int			processed = 0;
	TimestampTz started = GetCurrentTimestamp();
	bool		out_of_time = false;
	List	   *readied = NIL;	/* steps the last round's settling made ready */
	AoRunCounters *counters = NULL; /* the round's run counters, for settling */
	bool		drained = false;	/* the last claim statement found fewer steps than it could take */
	bool		all_plain;		/* the round's steps were all plain successes */
	bool		schema_0_2;		/* settling reports what it made ready (schema 0.2) */
	int			taken_in_a_row = 0;

	end_batch_now = false;
	while (processed < max && !out_of_time && !end_batch_now)
	{
		List	   *claimed = NIL;
		ListCell   *lc;
		int64		locked_run = 0;
		bool		run_active = false;

		/*
		 * The steps the last round made ready in runs this transaction
		 * holds are taken directly, without the claim statement, when that
		 * statement would take them anyway: it found nothing else to take
		 * last time (a chain's next step). Every sixteenth round claims, so
		 * other runs' steps that became ready meanwhile get their turn.
		 */
		if (readied != NIL && drained && sim_run == 0 && only_step == NULL && taken_in_a_row < 16)
		{
			claimed = take_readied(readied, max - processed, CurrentMemoryContext);
			if (claimed != NIL)
				taken_in_a_row++;
		}
		list_free_deep(readied);
		readied = NIL;
		if (claimed == NIL)
		{
			claimed = claim(max - processed, only_role, only_run, only_step, CurrentMemoryContext);
			drained = list_length(claimed) < max - processed;
			taken_in_a_row = 0;
		}
		if (claimed == NIL)
			break;
		round_steps = claimed;
		touched_run = 0;
		round_deferred = 0;
		counters = NULL;
		foreach(lc, claimed)
		{
			Claimed    *c = lfirst(lc);

			if (c->run_id != locked_run)
			{
				/* the claim locked the run (its row is ours) and read its status */
				run_active = c->run_active;
				locked_run = c->run_id;
				if (c->run_id > max_locked_run())
					locked_max_run = c->run_id;
				*runs = ao_run_list_add(*runs, c->run_id);
			}
			/*
			 * agentorch.batch_time_limit: steps claimed but not started stay
			 * ready (their row locks go with the commit) for the next batch,
			 * so one run's many steps do not keep other runs waiting.
			 */
			if (end_batch_now ||
				(processed > 0 &&
				 TimestampDifferenceExceeds(started, GetCurrentTimestamp(), ao_batch_time_limit_ms)))
			{
				/* the rest stay ready, their attempts given back */
				for_each_cell(lc, claimed, lc)
				{
					Claimed    *rest = lfirst(lc);

					ao_state_unclaim_step(rest->run_id, rest->step_id, rest->attempt, rest->old_started_at,
										  rest->old_worker, -1);
				}
				out_of_time = true;
				break;
			}
			if (run_active)
				run_step_guarded(c);
			else
			{
				ao_state_unclaim_step(c->run_id, c->step_id, c->attempt, c->old_started_at, c->old_worker, -1);
				flush_successes(c->run_id);
				ao_state_call("SELECT agentorch._finish_step($1, $2, 'cancelled') "
						   "FROM agentorch.steps WHERE run_id = $1 AND step_id = $2 AND status = 'ready'",
						   c->run_id, c->step_id, 0, NULL, NULL, NULL);
			}
			processed++;
		}
		/*
		 * The round's successes, then what they make ready; settling writes
		 * the runs' counters the successes moved (with a run's close when
		 * it succeeded).
		 */
		schema_0_2 = ao_schema_at_least(0, 2);
		all_plain = sim_run == 0 && round_deferred == list_length(claimed);
		if (schema_0_2)
			flush_successes_into(0, &counters);
		else
			flush_successes(0);
		/*
		 * Dependents of this round's steps become ready (and runs finish):
		 * one call for every run of the round (claimed steps are ordered by
		 * run); a 0.1.0 schema has only the per-run function.
		 */
		{
			int64	   *ids = palloc(sizeof(int64) * list_length(claimed));
			int			nids = 0;

			/* a run's steps come together; settling takes each run once anyway */
			foreach(lc, claimed)
			{
				Claimed    *c = lfirst(lc);

				if (nids == 0 || ids[nids - 1] != c->run_id)
					ids[nids++] = c->run_id;
			}
			/*
			 * Only after a round of plain successes are the steps settling
			 * makes ready all that became ready (a branch, a parallel step,
			 * a loop, a retry make others ready too; then the claim takes
			 * them in order).
			 */
			if (schema_0_2)
				ao_state_settle_runs(ids, nids, counters, all_plain ? &readied : NULL);
			else
				for (int i = 0; i < nids; i++)
				{
					Oid			t[1] = {INT8OID};
					Datum		v[1] = {Int64GetDatum(ids[i])};

					ao_spi_exec("SELECT agentorch._settle_run($1)", 1, t, v, NULL, SPI_OK_SELECT);
				}
			pfree(ids);
		}
		round_steps = NIL;
		list_free_deep(claimed);
		only_step = NULL;		/* cascades may take any ready step */

		/*
		 * A round of plain successes that settling says made nothing ready
		 * (a 0.1.0 schema's settling does not say), after a claim that
		 * found less than it could take (a chain's or a run's last step):
		 * the batch ends, so its commit -- which the run's waiters wait
		 * for -- does not also wait for a claim statement that would most
		 * likely find nothing. The caller claims again at once, in a new
		 * transaction.
		 */
		if (schema_0_2 && all_plain && drained && readied == NIL)
			break;
	}
	list_free_deep(readied);
	return processed;
}

/*
 * One executor batch in its own transaction (worker_spi's call sequence).
 * Returns the number of steps processed (-1: the extension is gone). When
 * it processed none: *sleep_ms is how long the caller may sleep before a
 * ready step it could claim comes due (a not_before still ahead: one
 * already due that nobody could claim does not wake it again), and
 * *recovery_ms how long before maintenance has work (an input timeout, a
 * lease or a run deadline; <= 0: now). Both are at most poll_interval.
 */
int
ao_executor_run_batch(Oid only_role, long *sleep_ms, long *recovery_ms)
{
	int			n;
	List	   *runs = NIL;
	int			max = ao_batch_size;
	int64		careful_run = 0;
	char	   *careful_step = NULL;

	bool		careful_left_was_used = careful_left > 0;

	if (careful_left > 0)
	{
		/*
		 * Careful: reserve one ready step and commit crashes + 1 on it
		 * before running it (worker = this pid, a short lease keeps other
		 * careful executors from counting it too); then run exactly it.
		 */
		careful_left--;
		max = 1;
		/* one careful attempt at a time per database, so a crash is attributable */
		if (!ao_careful_lock_try())
		{
			*sleep_ms = 20;
			return 0;
		}
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "agentorch: recording a careful attempt");
		{
			Oid			t[1] = {INT4OID};
			Datum		v[1];

			v[0] = Int32GetDatum(MyProcPid);
			ao_spi_exec("WITH c AS (SELECT run_id, step_id, crashes FROM agentorch.steps "
					 "            WHERE status = 'ready' AND NOT network "
					 "              AND (not_before IS NULL OR not_before <= pg_catalog.clock_timestamp()) "
					 "              AND (worker IS NULL OR worker = $1 OR lease_until IS NULL "
					 "                   OR lease_until < pg_catalog.clock_timestamp() "
					 "                   OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.pid = worker)) "
					 "            ORDER BY network, priority DESC, not_before NULLS FIRST, (ord / 16), run_id, ord "
					 "            LIMIT 1 FOR UPDATE SKIP LOCKED) "
					 "SELECT c.run_id, c.step_id, c.crashes, agentorch._lock_run(c.run_id) FROM c",
					 1, t, v, NULL, SPI_OK_SELECT);
		}
		if (SPI_processed == 1)
		{
			bool		isnull;
			int			crashes;

			careful_run = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			careful_step = MemoryContextStrdup(TopMemoryContext,
											   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
			crashes = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
			if (crashes >= AO_MAX_CRASHES)
			{
				ao_state_call("SELECT agentorch._finish_step($1, $2, 'failed', NULL, "
						   "'{\"message\": \"the step stopped the executor repeatedly and will not run again\", \"sqlstate\": \"XX000\"}')",
						   careful_run, careful_step, 0, NULL, NULL, NULL);
				ao_log("agentorch: run %lld step %s stopped the executor %d times and is quarantined: it failed and will not run again",
					   (long long) careful_run, careful_step, crashes);
				runs = ao_run_list_add(runs, careful_run);
				ao_state_notify_runs(runs);
				runs = NIL;
				pfree(careful_step);
				careful_step = NULL;
			}
			else
			{
				Oid			t[2] = {INT4OID, INT4OID};
				Datum		v[2];

				v[0] = Int32GetDatum(MyProcPid);
				v[1] = Int32GetDatum(10000);
				ao_state_call("UPDATE agentorch.steps SET crashes = crashes + 1, worker = $3, "
						   "  lease_until = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $4 / 1000.0) "
						   "WHERE run_id = $1 AND step_id = $2",
						   careful_run, careful_step, 2, t, v, NULL);
			}
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* a dropped extension ends the executor (checked in the batch's own transaction) */
	if (!OidIsValid(get_extension_oid("agentorch", true)))
	{
		CommitTransactionCommand();
		return -1;
	}
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "agentorch: claiming steps");

	if (careful_left_was_used && careful_step == NULL)
		max = 0;				/* careful: never run a step that was not counted */
	n = process_steps(max, only_role, careful_step ? careful_run : 0, careful_step, &runs);
	if (careful_step)
	{
		pfree(careful_step);
		careful_step = NULL;
	}
	ao_state_notify_runs(runs);

	*sleep_ms = ao_poll_interval_ms;
	*recovery_ms = ao_poll_interval_ms;
	if (n == 0)
	{
		Oid			t[1] = {BOOLOID};
		Datum		v[1];
		bool		isnull;
		Datum		d;

		/*
		 * ms until (1) a ready step an executor may claim comes due (network
		 * ones: as its network claim decides) and (2) agentorch._recover has
		 * work (input timeouts, leases, deadlines; a reactive run that may
		 * stall: every maintenance turn looks)
		 */
		v[0] = BoolGetDatum(ao_network_steps != AO_NETWORK_WORKERS);
		ao_spi_exec("SELECT (EXTRACT(EPOCH FROM (SELECT pg_catalog.min(s.not_before) FROM agentorch.steps s "
				 "    WHERE s.status = 'ready' AND s.not_before > pg_catalog.clock_timestamp() "
				 "      AND (NOT s.network OR " AO_SQL_EXECUTORS_TAKE("$1") ")) "
				 "  - pg_catalog.clock_timestamp()) * 1000)::int8, "
				 "(EXTRACT(EPOCH FROM LEAST("
				 "  (SELECT pg_catalog.min(not_before) FROM agentorch.steps WHERE status = 'waiting'), "
				 "  (SELECT pg_catalog.min(lease_until) FROM agentorch.steps WHERE status = 'running'), "
				 "  (SELECT pg_catalog.min(deadline) FROM agentorch.runs "
				 "    WHERE status IN ('pending', 'running', 'waiting') AND deadline IS NOT NULL), "
				 "  (SELECT pg_catalog.clock_timestamp() FROM agentorch.runs "
				 "    WHERE status = 'running' AND orchestration = 'reactive' "
				 "      AND options OPERATOR(pg_catalog.?) 'stall_timeout' LIMIT 1)) "
				 "  - pg_catalog.clock_timestamp()) * 1000)::int8",
				 1, t, v, NULL, SPI_OK_SELECT);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			*sleep_ms = Max(1, Min(DatumGetInt64(d) + 1, ao_poll_interval_ms));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
			*recovery_ms = Min(DatumGetInt64(d) + 1, ao_poll_interval_ms);
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	ao_careful_lock_release();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	if (n > 0)
		ao_announce_progress(n >= ao_batch_size);
	return n;
}

/*
 * Maintenance in its own transaction: expired leases, input timeouts and
 * run deadlines (agentorch._recover).
 */
void
ao_executor_maintenance(void)
{
	static TimestampTz last_purge = 0;
	List	   *runs = NIL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "agentorch: maintenance");
	ao_spi_exec("SELECT r FROM agentorch._recover() r", 0, NULL, NULL, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		run = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		runs = ao_run_list_add(runs, run);
	}
	ao_state_notify_runs(runs);
	/* retention: a bounded purge of old finished runs, at most once a minute */
	if (ao_retention_s > 0 &&
		TimestampDifferenceExceeds(last_purge, GetCurrentTimestamp(), 60000))
	{
		Oid			t[1] = {INT4OID};
		Datum		v[1];

		v[0] = Int32GetDatum(ao_retention_s);
		ao_spi_exec("SELECT agentorch._purge(pg_catalog.make_interval(secs => $1), NULL, 1000)",
				 1, t, v, NULL, SPI_OK_SELECT);
		last_purge = GetCurrentTimestamp();
		/* who purged what: the audit log says so for these purges as for purge()'s */
		{
			bool		isnull;
			int64		n = SPI_processed == 1
				? DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) : 0;

			if (n > 0)
				ao_audit_kv("purge", NULL, 0, "by", "agentorch.retention",
							"older_than", psprintf("%d seconds", ao_retention_s),
							"deleted", psprintf(INT64_FORMAT, n), NULL);
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	if (runs != NIL)
		ao_announce_progress(true);
}

/*
 * agentorch.simulate(definition, input, mocks): run a workflow definition
 * without executing anything -- tools, llm and user_input steps take their
 * output from mocks ({"<step id or tool name>": output}; missing = null,
 * user_input without a mock waits) -- through the real state machine, in a
 * subtransaction that is rolled back: nothing is stored, nobody is told.
 * Returns each step's final status and output, in order of completion.
 */
PG_FUNCTION_INFO_V1(ao_sql_simulate);
Datum
ao_sql_simulate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Jsonb	   *definition;
	Jsonb	   *input = PG_ARGISNULL(1) ? DatumGetJsonbP(jsonb_datum("{}")) : PG_GETARG_JSONB_P(1);
	Jsonb	   *mocks = PG_ARGISNULL(2) ? DatumGetJsonbP(jsonb_datum("{}")) : PG_GETARG_JSONB_P(2);
	json_object *normalized;
	ao_problems *p;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("workflow definition must not be null")));
	definition = PG_GETARG_JSONB_P(0);
	p = ao_workflow_problems(definition, &normalized);
	if (p->n > 0)
		ao_problems_raise(p, ERRCODE_INVALID_PARAMETER_VALUE, "invalid workflow definition");
	InitMaterializedSRF(fcinfo, 0);
	sim_mocks = ao_json_from_jsonb(mocks);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	PG_TRY();
	{
		AoUserScope owner_scope;
		List	   *runs = NIL;
		Oid			t[4] = {OIDOID, JSONBOID, JSONBOID, INT8OID};
		Datum		v[4];
		bool		isnull;

		v[0] = ObjectIdGetDatum(GetUserId());
		v[1] = ao_jsonb_datum_from_json(ao_workflow_body(normalized));
		v[2] = JsonbPGetDatum(input);
		ao_become_extension_owner(&owner_scope);
		SPI_connect();
		ao_spi_exec("SELECT agentorch._create_run($1, 'fixed', '(simulation)', 0, NULL, $2, $3, '{}')",
				 3, t, v, NULL, SPI_OK_SELECT);
		sim_run = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		while (process_steps(ao_batch_size, InvalidOid, 0, NULL, &runs) > 0)
			CHECK_FOR_INTERRUPTS();
		v[3] = Int64GetDatum(sim_run);
		/* in the order the steps finished */
		ao_spi_exec("SELECT (pg_catalog.row_number() OVER (ORDER BY s.finished_at NULLS LAST, s.ord))::int, "
				 "       s.step_id, s.status, s.output FROM agentorch.steps s WHERE s.run_id = $4 "
				 "  AND NOT s.spec ? 'compensates' "
				 "ORDER BY 1",
				 4, t, v, NULL, SPI_OK_SELECT);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			Datum		vals[4];
			bool		nulls[4];

			for (int c = 0; c < 4; c++)
				vals[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1, &nulls[c]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, vals, nulls);
		}
		SPI_finish();
		ao_restore_user(&owner_scope);
		sim_run = 0;
		/* nothing of the simulation stays */
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		sim_run = 0;
		sim_mocks = NULL;
		PG_RE_THROW();
	}
	PG_END_TRY();
	sim_mocks = NULL;
	return (Datum) 0;
}

/*
 * agentorch.work(max_steps, timeout): run ready transactional steps in the
 * calling session and transaction, for runs the caller may act for.
 * Waits for steps whose retry delay comes due within the timeout.
 */
PG_FUNCTION_INFO_V1(ao_sql_work);
Datum
ao_sql_work(PG_FUNCTION_ARGS)
{
	int32		max_steps = PG_GETARG_INT32(0);
	int64		timeout_ms = ao_interval_arg_ms(PG_GETARG_INTERVAL_P(1), "timeout");
	TimestampTz start = GetCurrentTimestamp();
	Oid			caller = GetUserId();
	Oid			only_role = superuser() ? InvalidOid : caller;
	AoUserScope owner_scope;
	int			done = 0;
	List	   *runs = NIL;

	if (max_steps < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_steps must not be negative")));
	if (max_steps == 0)
		PG_RETURN_INT32(0);
	ao_become_extension_owner(&owner_scope);
	SPI_connect();
	while (done < max_steps)
	{
		int			n = ao_process_ready_steps(Min(ao_batch_size, max_steps - done), only_role, &runs);
		long		elapsed;
		bool		isnull;
		Datum		d;
		int64		due_ms;

		done += n;
		elapsed = (long) ((GetCurrentTimestamp() - start) / 1000);
		if (elapsed >= timeout_ms)
			break;
		if (n > 0)
			continue;
		/* nothing ready now: wait for a retry that comes due before the timeout */
		ao_spi_exec("SELECT (EXTRACT(EPOCH FROM pg_catalog.min(s.not_before) - pg_catalog.clock_timestamp()) * 1000)::int8 "
				 "FROM agentorch.steps s JOIN agentorch.runs r ON r.id = s.run_id "
				 "WHERE s.status = 'ready' AND NOT s.network "
				 "  AND ($1::oid IS NULL OR pg_catalog.pg_has_role($1::oid, r.owner, 'USAGE'))",
				 1, (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(only_role)},
				 OidIsValid(only_role) ? " " : "n", SPI_OK_SELECT);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (isnull)
			break;
		due_ms = DatumGetInt64(d);
		if (due_ms > timeout_ms - elapsed)
			break;
		if (due_ms > 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 (long) due_ms + 1, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	ao_state_notify_runs(runs);
	SPI_finish();
	ao_restore_user(&owner_scope);
	if (done > 0)
		ao_wake_at_commit();
	PG_RETURN_INT32(done);
}
