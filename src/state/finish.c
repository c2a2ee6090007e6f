/*-------------------------------------------------------------------------
 *
 * finish.c
 *	  The executors' hot path, written by the state layer in C: the plain
 *	  successes of a claim round recorded (the steps, their
 *	  step_succeeded events, status chunks and checkpoints), then the
 *	  round's runs settled (their counters written, with the close of a
 *	  run that succeeded; dependents made ready; a run with
 *	  nothing left open closed as succeeded, with its output; a run whose
 *	  status must change otherwise is handed to the plpgsql functions). Rows go
 *	  through rows.c: no SQL is parsed, planned or started per step.
 *
 *	  What it does is what agentorch._finish_steps and _settle_runs
 *	  (sql/agentorch_state.sql) do; anything past the common case goes to
 *	  them: a step that is not plain, a promotion that skips a step or
 *	  readies an llm step (the budget gate), a run whose output needs a
 *	  template or a plan, one that compensates or fails, one to move
 *	  between running and waiting. With agentorch.state_sql_only on, all of
 *	  it does; a regress test (robustness.sql) runs workflows both ways and
 *	  compares every row.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/state/finish.c
 *
 *-------------------------------------------------------------------------
 */
#include "rows.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "guc.h"

/* The tables, in lock order. */
enum
{
	T_STEPS, T_RUNS, T_EVENTS, T_CHUNKS, T_CHECKPOINTS, T_WORKFLOWS, T_COUNT
};
static const char *const table_names[T_COUNT] = {"steps", "runs", "events", "chunks", "checkpoints", "workflows"};

/* The label of an enum value (a status, a kind). */
static const char *
enum_label(Datum d)
{
	return DatumGetCString(DirectFunctionCall1(enum_out, d));
}

/* Has the jsonb object any of these keys? */
static bool
has_any_key(Jsonb *j, const char *const *keys)
{
	for (const char *const *k = keys; *k; k++)
		if (ao_jsonb_get_key(&j->root, *k, NULL))
			return true;
	return false;
}

/*
 * Successes
 */

/* A success written in C, kept for its run's events, chunks and checkpoints. */
typedef struct Written
{
	const AoSuccess *s;
	int			attempt;
} Written;

/*
 * Is the step row read plain: ready, top-level, of no plan, without
 * output_schema, compensates or planner (what _finish_steps writes)?
 */
static bool
step_is_plain(AoRowTable *t)
{
	static const char *const special[] = {"output_schema", "compensates", "planner", NULL};
	bool		isnull;
	Datum		d;

	d = ao_row_old(t, "status", &isnull);
	if (strcmp(enum_label(d), "ready") != 0)
		return false;
	(void) ao_row_old(t, "parent_step_id", &isnull);
	if (!isnull)
		return false;
	if (DatumGetInt32(ao_row_old(t, "plan_version", &isnull)) != 0)
		return false;
	d = ao_row_old(t, "spec", &isnull);
	return !has_any_key(DatumGetJsonbP(d), special);
}

/* The step's new version: succeeded, with its output (and input, when given). */
static void
update_succeeded(AoRows *w, AoRowTable *t, const AoSuccess *s)
{
	bool		isnull;

	ao_row_begin_update(w, t);
	ao_row_put_kept(w, t, "status", "succeeded");
	ao_row_put_jsonb(t, "output", s->output);
	ao_row_put(t, "error", (Datum) 0, true);
	ao_row_put(t, "finished_at", TimestampTzGetDatum(GetCurrentTimestamp()), false);
	if (s->input != NULL)
		ao_row_put_jsonb(t, "input", s->input);
	ao_row_put(t, "lease_until", (Datum) 0, true);
	ao_row_put(t, "worker", (Datum) 0, true);
	ao_row_put(t, "crashes", Int32GetDatum(0), false);
	(void) ao_row_old(t, "started_at", &isnull);
	if (isnull)
		ao_row_put(t, "started_at", TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()), false);
	ao_row_update(w, t);
}

/*
 * Run counters
 *
 * A round's successes move their runs' counters; settling, which comes
 * next and locks the same rows, writes them: with the close of a run that
 * succeeded (one new version of the run's row instead of two), otherwise
 * alone, before anything else may read them.
 */
typedef struct RunCount
{
	int64		run;
	int64		event_seq;		/* the new last_event_seq, ... */
	int64		chunk_seq;
	int64		checkpoint;
	bool		written;
} RunCount;

struct AoRunCounters
{
	RunCount   *c;				/* by run id */
	int			n;
	int			size;
};

static int
run_count_cmp(const void *a, const void *b)
{
	int64		x = ((const RunCount *) a)->run;
	int64		y = ((const RunCount *) b)->run;

	return (x > y) - (x < y);
}

/* The run's unwritten counters in rc (NULL: none). */
static RunCount *
find_run_count(AoRunCounters *rc, int64 run)
{
	RunCount	key;
	RunCount   *found;

	if (rc == NULL || rc->n == 0)
		return NULL;
	key.run = run;
	found = bsearch(&key, rc->c, rc->n, sizeof(RunCount), run_count_cmp);
	return found && !found->written ? found : NULL;
}

/* Put c's counters into the run row being updated in t. */
static void
put_counters(AoRowTable *t, const RunCount *c)
{
	ao_row_put(t, "last_event_seq", Int64GetDatum(c->event_seq), false);
	ao_row_put(t, "last_chunk_seq", Int64GetDatum(c->chunk_seq), false);
	ao_row_put(t, "last_checkpoint", Int64GetDatum(c->checkpoint), false);
}

/* Write the run's unwritten counters alone, if it has any. */
static void
write_run_count(AoRows *w, AoRunCounters *rc, int64 run)
{
	RunCount   *c = find_run_count(rc, run);
	AoRowTable *t = ao_rows_table(w, T_RUNS);
	Datum		key = Int64GetDatum(run);

	if (c == NULL)
		return;
	if (!ao_row_fetch(w, t, 1, &key, true))
		elog(ERROR, "agentorch: run " INT64_FORMAT " is missing", run);
	ao_row_begin_update(w, t);
	put_counters(t, c);
	ao_row_update(w, t);
	c->written = true;
}

/* Write every counter of rc not written yet. */
static void
write_run_counts_left(AoRows *w, AoRunCounters *rc)
{
	for (int i = 0; rc != NULL && i < rc->n; i++)
		write_run_count(w, rc, rc->c[i].run);
}

/*
 * The run's counters for its k successes (written now, or left in rc),
 * then their events, status chunks and checkpoints.
 */
static void
write_run_rows(AoRows *w, int64 run, Written *done, int k, AoRunCounters *rc)
{
	AoRowTable *t = ao_rows_table(w, T_RUNS);
	Datum		key = Int64GetDatum(run);
	bool		isnull;
	int64		e0;
	int64		c0;
	int64		k0;
	bool		open;
	Jsonb	   *memory;
	const char *status;
	RunCount	count;

	if (!ao_row_fetch(w, t, 1, &key, true))
		elog(ERROR, "agentorch: run " INT64_FORMAT " is missing", run);
	e0 = DatumGetInt64(ao_row_old(t, "last_event_seq", &isnull));
	c0 = DatumGetInt64(ao_row_old(t, "last_chunk_seq", &isnull));
	k0 = DatumGetInt64(ao_row_old(t, "last_checkpoint", &isnull));
	status = enum_label(ao_row_old(t, "status", &isnull));
	open = strcmp(status, "pending") == 0 || strcmp(status, "running") == 0 || strcmp(status, "waiting") == 0;
	{
		Datum		m = ao_row_old(t, "memory", &isnull);

		memory = isnull ? NULL : DatumGetJsonbPCopy(m);
	}
	count.run = run;
	count.event_seq = e0 + k;
	count.chunk_seq = c0 + (open ? k : 0);
	count.checkpoint = k0 + k;
	count.written = false;
	if (rc != NULL)
	{
		if (rc->n == rc->size)
		{
			rc->size *= 2;
			rc->c = repalloc(rc->c, sizeof(RunCount) * rc->size);
		}
		rc->c[rc->n++] = count;
	}
	else
	{
		ao_row_begin_update(w, t);
		put_counters(t, &count);
		ao_row_update(w, t);
	}

	for (int i = 0; i < k; i++)
	{
		const AoSuccess *s = done[i].s;
		AoRowTable *r;

		r = ao_rows_table(w, T_EVENTS);
		ao_row_begin(w, r);
		ao_row_put(r, "run_id", key, false);
		ao_row_put(r, "seq", Int64GetDatum(e0 + i + 1), false);
		ao_row_put_kept(w, r, "kind", "step_succeeded");
		ao_row_put_text(r, "step_id", s->step_id);
		ao_row_put(r, "data", (Datum) 0, true);
		ao_row_insert(w, r);

		if (open)
		{
			static const char *const keys[] = {"step_id", "status", "attempt"};
			JsonbValue	values[3];

			values[0] = ao_jv_string(s->step_id);
			values[1] = ao_jv_string("succeeded");
			values[2] = ao_jv_int(done[i].attempt);
			r = ao_rows_table(w, T_CHUNKS);
			ao_row_begin(w, r);
			ao_row_put(r, "run_id", key, false);
			ao_row_put(r, "seq", Int64GetDatum(c0 + i + 1), false);
			ao_row_put_text(r, "step_id", s->step_id);
			ao_row_put(r, "attempt", Int32GetDatum(done[i].attempt), false);
			ao_row_put_kept(w, r, "kind", "status");
			ao_row_put_text(r, "content", psprintf("%s: succeeded", s->step_id));
			ao_row_put_jsonb(r, "data", ao_jsonb_object(3, keys, values));
			ao_row_insert(w, r);
		}

		{
			static const char *const keys[] = {"step_id", "output", "memory"};
			JsonbValue	values[3];

			values[0] = ao_jv_string(s->step_id);
			values[1] = ao_jv_jsonb(s->output);
			values[2] = ao_jv_jsonb(memory);
			r = ao_rows_table(w, T_CHECKPOINTS);
			ao_row_begin(w, r);
			ao_row_put(r, "run_id", key, false);
			ao_row_put(r, "seq", Int64GetDatum(k0 + i + 1), false);
			ao_row_put_text(r, "step_id", s->step_id);
			ao_row_put_jsonb(r, "state", ao_jsonb_object(3, keys, values));
			ao_row_insert(w, r);
		}
	}
}

/* _finish_step for one success: the general path (input recorded first). */
static void
finish_step_sql(const AoSuccess *s)
{
	Oid			t[1] = {JSONBOID};
	Datum		v[1];

	ao_state_record_input(s->run_id, s->step_id, s->input);
	v[0] = JsonbPGetDatum(s->output);
	ao_state_call("SELECT agentorch._finish_step($1, $2, 'succeeded', $3, NULL, NULL, true)", s->run_id, s->step_id,
				  1, t, v, NULL);
}

/*
 * Record the successes s[0..n) of a claim round, in that order: what
 * _finish_steps(runs, steps, outputs, inputs) does. The steps and their
 * runs are locked by the caller's claim. Promotion is left to
 * ao_state_settle_runs. With counters, the runs' counters are not written
 * but returned in *counters (NULL: none), for ao_state_settle_runs, which
 * the caller must call next, for every run of s, before anything else
 * reads those runs.
 */
void
ao_state_finish_successes(const AoSuccess *s, int n, AoRunCounters **counters)
{
	AoRows		w;
	bool	   *plain = palloc0(sizeof(bool) * Max(n, 1));
	Written    *done = palloc(sizeof(Written) * Max(n, 1));
	bool	   *run_done = palloc0(sizeof(bool) * Max(n, 1));
	int		   *attempts = palloc0(sizeof(int) * Max(n, 1));
	AoRunCounters *rc = NULL;

	if (counters)
		*counters = NULL;
	if (ao_state_sql_only)
	{
		for (int i = 0; i < n; i++)
			finish_step_sql(&s[i]);
		return;
	}
	if (counters)
	{
		rc = palloc(sizeof(AoRunCounters));
		rc->n = 0;
		rc->size = 8;
		rc->c = palloc(sizeof(RunCount) * rc->size);
	}
	ao_rows_open(&w, T_COUNT, table_names);
	for (int i = 0; i < n; i++)
	{
		AoRowTable *t = ao_rows_table(&w, T_STEPS);
		Datum		keys[2] = {Int64GetDatum(s[i].run_id), CStringGetTextDatum(s[i].step_id)};

		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		if (!ao_row_fetch(&w, t, 2, keys, true) || !step_is_plain(t))
			continue;
		plain[i] = true;
		attempts[i] = DatumGetInt32(ao_row_old(t, "attempt", &isnull));
		update_succeeded(&w, t, &s[i]);
	}
	/* each run's rows, its successes numbered in the order given */
	for (int i = 0; i < n; i++)
	{
		int			k = 0;

		if (!plain[i] || run_done[i])
			continue;
		for (int j = i; j < n; j++)
			if (plain[j] && !run_done[j] && s[j].run_id == s[i].run_id)
			{
				run_done[j] = true;
				done[k].s = &s[j];
				done[k].attempt = attempts[j];
				k++;
			}
		write_run_rows(&w, s[i].run_id, done, k, rc);
	}
	if (rc != NULL)
	{
		qsort(rc->c, rc->n, sizeof(RunCount), run_count_cmp);
		/* the others' runs are read by _finish_step: their counters now */
		for (int i = 0; i < n; i++)
			if (!plain[i])
				write_run_count(&w, rc, s[i].run_id);
		*counters = rc;
	}
	ao_rows_close(&w);
	/* the others, one by one, as _finish_steps does after its plain ones */
	for (int i = 0; i < n; i++)
		if (!plain[i])
			finish_step_sql(&s[i]);
}

/*
 * Settling
 */

/* A step of a run as promotion and settling see it. */
typedef struct StepSeen
{
	char	   *id;
	char		status[16];
	bool		top;			/* no parent step */
	bool		compensation;	/* a compensation action (spec.compensates) */
	bool		candidate;		/* pending, top-level, no compensation action */
	bool		llm;
	bool		network;
	int			ord;
	int			priority;
	bool		readied;		/* made ready by promote */
	Datum		depends_on;		/* text[] (copied), of top-level steps */
	int			counted_for;	/* promote: the candidate (index + 1) it was last counted for */
	bool		depended;		/* close: a top-level step depends on it */
} StepSeen;

typedef struct RunSteps
{
	StepSeen   *steps;
	int			n;
	int			size;
} RunSteps;

static bool
step_seen(void *arg, AoRowTable *t)
{
	RunSteps   *rs = arg;
	StepSeen   *s;
	bool		isnull;
	bool		parent_null;
	Datum		d;

	if (rs->n == rs->size)
	{
		rs->size *= 2;
		rs->steps = repalloc(rs->steps, sizeof(StepSeen) * rs->size);
	}
	s = &rs->steps[rs->n++];
	memset(s, 0, sizeof(StepSeen));
	s->id = TextDatumGetCString(ao_row_old(t, "step_id", &isnull));
	strlcpy(s->status, enum_label(ao_row_old(t, "status", &isnull)), sizeof(s->status));
	(void) ao_row_old(t, "parent_step_id", &parent_null);
	s->top = parent_null;
	if (!s->top)
		return true;
	d = ao_row_old(t, "spec", &isnull);
	s->compensation = ao_jsonb_get_key(&DatumGetJsonbP(d)->root, "compensates", NULL);
	d = ao_row_old(t, "depends_on", &isnull);
	s->depends_on = isnull ? (Datum) 0 : PointerGetDatum(DatumGetArrayTypePCopy(d));
	if (strcmp(s->status, "pending") != 0 || s->compensation)
		return true;
	s->candidate = true;
	s->llm = strcmp(enum_label(ao_row_old(t, "kind", &isnull)), "llm") == 0;
	s->network = DatumGetBool(ao_row_old(t, "network", &isnull));
	s->ord = DatumGetInt32(ao_row_old(t, "ord", &isnull));
	s->priority = DatumGetInt32(ao_row_old(t, "priority", &isnull));
	return true;
}

static int
step_id_cmp(const void *a, const void *b)
{
	return strcmp(((const StepSeen *) a)->id, ((const StepSeen *) b)->id);
}

static StepSeen *
find_step(RunSteps *rs, const char *id)
{
	StepSeen	key = {0};

	key.id = (char *) id;
	return bsearch(&key, rs->steps, rs->n, sizeof(StepSeen), step_id_cmp);
}

static bool
status_in(const char *status, const char *const *set)
{
	for (const char *const *s = set; *s; s++)
		if (strcmp(status, *s) == 0)
			return true;
	return false;
}

/*
 * Promote the run's pending top-level steps whose dependencies finished
 * (_promote): ready when one of them succeeded or there are none. False,
 * with nothing changed, when _promote must do it: a step would be skipped
 * (which may cascade), an llm step would become ready (the budget
 * gate), or a step changed since it was read (every change of a run's
 * steps holds the run's row, as the caller does; this is a safety net).
 * *readied counts the steps made ready.
 */
static bool
promote(AoRows *w, int64 run, RunSteps *rs, int *readied)
{
	static const char *const done_states[] = {"succeeded", "skipped", "compensated", NULL};
	static const char *const ok_states[] = {"succeeded", "compensated", NULL};
	bool	   *ready = palloc0(sizeof(bool) * Max(rs->n, 1));

	*readied = 0;
	for (int i = 0; i < rs->n; i++)
	{
		StepSeen   *s = &rs->steps[i];
		Datum	   *deps;
		bool	   *nulls;
		int			ndeps = 0;
		int			matched = 0;
		bool		done = true;
		bool		any_ok = false;

		if (!s->candidate)
			continue;
		if (s->depends_on != (Datum) 0)
			deconstruct_array(DatumGetArrayTypeP(s->depends_on), TEXTOID, -1, false, TYPALIGN_INT, &deps, &nulls,
							  &ndeps);
		/* each step of the run counts once, however often depends_on names it */
		for (int d = 0; d < ndeps; d++)
		{
			StepSeen   *dep = nulls[d] ? NULL : find_step(rs, TextDatumGetCString(deps[d]));

			if (dep == NULL || dep->counted_for == i + 1)
				continue;
			dep->counted_for = i + 1;
			matched++;
			done = done && status_in(dep->status, done_states);
			any_ok = any_ok || status_in(dep->status, ok_states);
		}
		if (!done)
			continue;
		if (!(matched == 0 || any_ok) || s->llm)
			return false;
		ready[i] = true;
	}
	for (int i = 0; i < rs->n; i++)
	{
		AoRowTable *t = ao_rows_table(w, T_STEPS);
		Datum		keys[2];
		bool		isnull;

		if (!ready[i])
			continue;
		keys[0] = Int64GetDatum(run);
		keys[1] = CStringGetTextDatum(rs->steps[i].id);
		/* locked, it is still what was read: every change of a run's steps holds the run */
		if (!ao_row_fetch(w, t, 2, keys, true) ||
			strcmp(enum_label(ao_row_old(t, "status", &isnull)), "pending") != 0)
			return false;		/* changed meanwhile: _promote looks again */
		ao_row_begin_update(w, t);
		ao_row_put_kept(w, t, "status", "ready");
		ao_row_put(t, "finished_at", (Datum) 0, true);
		ao_row_update(w, t);
		strlcpy(rs->steps[i].status, "ready", sizeof(rs->steps[i].status));
		rs->steps[i].readied = true;
		(*readied)++;
	}
	return true;
}

/*
 * Closing a run that succeeded
 */

/* A step's output, read by its key (NULL for SQL NULL). */
static Jsonb *
step_output(AoRows *w, int64 run, const char *step)
{
	AoRowTable *t = ao_rows_table(w, T_STEPS);
	Datum		keys[2] = {Int64GetDatum(run), CStringGetTextDatum(step)};
	bool		isnull;
	Datum		d;

	if (!ao_row_fetch(w, t, 2, keys, false))
		return NULL;
	d = ao_row_old(t, "output", &isnull);
	return isnull ? NULL : DatumGetJsonbPCopy(d);
}

/*
 * A fixed run's output without a template (_run_output): the outputs of
 * its succeeded top-level steps (no compensation action) that no
 * top-level step depends on, by id. rs: the run's steps, sorted by id.
 */
static Jsonb *
terminal_outputs(AoRows *w, int64 run, RunSteps *rs)
{
	JsonbParseState *st = NULL;

	for (int i = 0; i < rs->n; i++)
	{
		Datum	   *deps;
		bool	   *nulls;
		int			ndeps = 0;

		if (!rs->steps[i].top || rs->steps[i].depends_on == (Datum) 0)
			continue;
		deconstruct_array(DatumGetArrayTypeP(rs->steps[i].depends_on), TEXTOID, -1, false, TYPALIGN_INT, &deps,
						  &nulls, &ndeps);
		for (int d = 0; d < ndeps; d++)
		{
			StepSeen   *dep = nulls[d] ? NULL : find_step(rs, TextDatumGetCString(deps[d]));

			if (dep != NULL)
				dep->depended = true;
		}
	}
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < rs->n; i++)
	{
		StepSeen   *s = &rs->steps[i];

		if (s->top && !s->compensation && !s->depended && strcmp(s->status, "succeeded") == 0)
		{
			JsonbValue	k = ao_jv_string(s->id);
			JsonbValue	v = ao_jv_jsonb(step_output(w, run, s->id));

			pushJsonbValue(&st, WJB_KEY, &k);
			pushJsonbValue(&st, WJB_VALUE, &v);
		}
	}
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

/*
 * The last workflow version workflow_has_output looked up, and its answer:
 * a settling's runs mostly share one (a batch of runs started together).
 * One per ao_state_settle_runs call, whose reads share a snapshot.
 */
typedef struct OutputLookup
{
	MemoryContext cxt;			/* the settling call's (its runs' memory is reset) */
	char	   *name;			/* NULL: nothing looked up yet */
	int32		version;
	bool		has_output;
} OutputLookup;

/*
 * Has the run's workflow an output template (definition -> workflow ->
 * output, or definition -> output)? The answer is kept in *last.
 */
static bool
workflow_has_output(AoRows *w, Datum name, Datum version, OutputLookup *last)
{
	AoRowTable *t = ao_rows_table(w, T_WORKFLOWS);
	Datum		keys[2] = {name, version};
	bool		isnull;
	JsonbValue	v;
	JsonbContainer *c;
	char	   *name_text = TextDatumGetCString(name);

	if (last->name != NULL && last->version == DatumGetInt32(version) && strcmp(last->name, name_text) == 0)
		return last->has_output;
	last->name = MemoryContextStrdup(last->cxt, name_text);
	last->version = DatumGetInt32(version);
	last->has_output = false;	/* as the SQL: no workflow row, no template */
	if (ao_row_fetch(w, t, 2, keys, false))
	{
		c = &DatumGetJsonbP(ao_row_old(t, "definition", &isnull))->root;
		/* COALESCE(definition -> 'workflow', definition) -> 'output': a present "workflow" that is no object has none */
		if (!ao_jsonb_get_key(c, "workflow", &v))
			last->has_output = ao_jsonb_get_key(c, "output", NULL);
		else if (v.type == jbvBinary)
			last->has_output = ao_jsonb_get_key(v.val.binary.data, "output", NULL);
	}
	return last->has_output;
}

/*
 * Close a run whose steps all finished, none left open, as succeeded
 * (_close_runs(run, 'succeeded', _run_output(run))): its output, its
 * run_succeeded event and final chunk, its lifecycle notification; with
 * them, the counters its round's successes left in rc. The run row is the
 * one last read in runs; rs, its steps as settling read them. False, with
 * nothing changed, when _run_output must work it out: an output template,
 * or a plan's output.
 */
static bool
close_succeeded(AoRows *w, int64 run, RunSteps *rs, AoRunCounters *rc, OutputLookup *last)
{
	AoRowTable *rt = ao_rows_table(w, T_RUNS);
	AoRowTable *t;
	Datum		key = Int64GetDatum(run);
	bool		isnull;
	const char *orchestration = enum_label(ao_row_old(rt, "orchestration", &isnull));
	Datum		workflow = ao_row_old(rt, "workflow_name", &isnull);
	bool		has_workflow = !isnull;
	Jsonb	   *output;
	int64		event_seq;
	int64		chunk_seq;
	Oid			owner;
	char	   *content;

	if (strcmp(orchestration, "simple") != 0)
	{
		if (strcmp(orchestration, "planner") == 0 || strcmp(orchestration, "reactive") == 0)
			return false;
		if (has_workflow)
		{
			Datum		version = ao_row_old(rt, "workflow_version", &isnull);

			if (isnull || workflow_has_output(w, workflow, version, last))
				return false;
		}
		else
		{
			(void) ao_row_old(rt, "plan", &isnull);
			if (!isnull)
				return false;	/* plan -> output: left to _run_output */
		}
	}
	/* the run row again, locked as the update will lock it */
	if (!ao_row_fetch(w, rt, 1, &key, true))
		elog(ERROR, "agentorch: run " INT64_FORMAT " is missing", run);
	/* a simple run's output is its step's; a fixed run's, its terminal steps' */
	output = strcmp(orchestration, "simple") == 0 ? step_output(w, run, "main") : terminal_outputs(w, run, rs);

	owner = DatumGetObjectId(ao_row_old(rt, "owner", &isnull));
	ao_row_begin_update(w, rt);
	{
		RunCount   *c = find_run_count(rc, run);

		if (c != NULL)
		{
			put_counters(rt, c);
			c->written = true;
			event_seq = c->event_seq + 1;
			chunk_seq = c->chunk_seq + 1;
		}
		else
		{
			event_seq = DatumGetInt64(ao_row_old(rt, "last_event_seq", &isnull)) + 1;
			chunk_seq = DatumGetInt64(ao_row_old(rt, "last_chunk_seq", &isnull)) + 1;
		}
	}
	ao_row_put_kept(w, rt, "status", "succeeded");
	ao_row_put_jsonb(rt, "output", output);
	ao_row_put(rt, "error", (Datum) 0, true);
	ao_row_put(rt, "finished_at", TimestampTzGetDatum(GetCurrentTimestamp()), false);
	ao_row_put(rt, "last_event_seq", Int64GetDatum(event_seq), false);
	ao_row_put(rt, "last_chunk_seq", Int64GetDatum(chunk_seq), false);
	ao_row_update(w, rt);

	t = ao_rows_table(w, T_EVENTS);
	ao_row_begin(w, t);
	ao_row_put(t, "run_id", key, false);
	ao_row_put(t, "seq", Int64GetDatum(event_seq), false);
	ao_row_put_kept(w, t, "kind", "run_succeeded");
	ao_row_put(t, "step_id", (Datum) 0, true);
	ao_row_put_jsonb(t, "data", ao_jsonb_object(0, NULL, NULL));
	ao_row_insert(w, t);

	if (output == NULL)
		content = NULL;
	else if (JB_ROOT_IS_SCALAR(output))
	{
		JsonbValue	v;

		if (JsonbExtractScalar(&output->root, &v) && v.type == jbvString)
			content = pnstrdup(v.val.string.val, v.val.string.len);
		else
			content = JsonbToCString(NULL, &output->root, VARSIZE(output));
	}
	else
		content = JsonbToCString(NULL, &output->root, VARSIZE(output));
	{
		static const char *const keys[] = {"status", "output", "error"};
		JsonbValue	values[3];

		values[0] = ao_jv_string("succeeded");
		values[1] = ao_jv_jsonb(output);
		values[2] = ao_jv_jsonb(NULL);
		t = ao_rows_table(w, T_CHUNKS);
		ao_row_begin(w, t);
		ao_row_put(t, "run_id", key, false);
		ao_row_put(t, "seq", Int64GetDatum(chunk_seq), false);
		ao_row_put(t, "step_id", (Datum) 0, true);
		ao_row_put(t, "attempt", Int32GetDatum(0), false);
		ao_row_put_kept(w, t, "kind", "final");
		ao_row_put_text(t, "content", content);
		ao_row_put_jsonb(t, "data", ao_jsonb_object(3, keys, values));
		ao_row_insert(w, t);
	}

	/* the lifecycle channel: ids and owner only (_notify_lifecycles) */
	if (ao_notify_mode() != NOTIFY_NONE)
		Async_Notify("agentorch_events", ao_state_lifecycle_payload(run, "run_succeeded", "succeeded", owner));
	return true;
}

/* _settle_runs, in SQL, for the runs the C path leaves to it. */
static void
settle_runs_sql(const int64 *runs, int n)
{
	Datum	   *ids = palloc(sizeof(Datum) * Max(n, 1));
	Oid			t[1] = {INT8ARRAYOID};
	Datum		v[1];

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
		ids[i] = Int64GetDatum(runs[i]);
	v[0] = PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	ao_spi_exec("SELECT agentorch._settle_runs($1)", 1, t, v, NULL, SPI_OK_SELECT);
}

static int
ord_cmp(const void *a, const void *b)
{
	int			x = (*(StepSeen *const *) a)->ord;
	int			y = (*(StepSeen *const *) b)->ord;

	return (x > y) - (x < y);
}

/* The run's transactional steps that promote made ready, in their order in the run, onto *out (in cxt). */
static void
add_readied(RunSteps *rs, int64 run, MemoryContext cxt, List **out)
{
	StepSeen  **ready = palloc(sizeof(StepSeen *) * Max(rs->n, 1));
	int			n = 0;

	for (int i = 0; i < rs->n; i++)
		if (rs->steps[i].readied && !rs->steps[i].network)
			ready[n++] = &rs->steps[i];
	qsort(ready, n, sizeof(StepSeen *), ord_cmp);
	for (int i = 0; i < n; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		AoReadied  *r = palloc(sizeof(AoReadied));

		r->run_id = run;
		r->step_id = pstrdup(ready[i]->id);
		r->priority = ready[i]->priority;
		r->ord = ready[i]->ord;
		*out = lappend(*out, r);
		MemoryContextSwitchTo(old);
	}
}

/*
 * Settle the runs of a claim round (each once, in the order given): what
 * _settle_runs(runs) does. Dependents of finished steps become ready; a
 * run with nothing left open, or that must move between running and
 * waiting, and a promotion past the common case, go to _settle_runs. The
 * runs are locked by the caller's claim. counters: what
 * ao_state_finish_successes left unwritten (or NULL); every one is
 * written here. With readied_out, the transactional steps made ready in
 * runs left running are appended to it (AoReadied), for the caller to
 * take at once; none when a run went to _settle_runs.
 */
void
ao_state_settle_runs(const int64 *runs, int n, AoRunCounters *counters, List **readied_out)
{
	static const char *const open_states[] = {"pending", "ready", "running", "waiting", NULL};
	static const char *const active_states[] = {"ready", "running", NULL};
	AoRows		w;
	int64	   *to_sql = palloc(sizeof(int64) * Max(n, 1));
	int			nsql = 0;
	MemoryContext per_run;
	MemoryContext caller = CurrentMemoryContext;
	OutputLookup last_output = {caller, NULL, 0, false};

	if (ao_state_sql_only)
	{
		/* (counters come only from the C writer, should the setting change in between) */
		if (counters != NULL)
		{
			ao_rows_open(&w, T_COUNT, table_names);
			write_run_counts_left(&w, counters);
			ao_rows_close(&w);
		}
		settle_runs_sql(runs, n);
		return;
	}
	per_run = AllocSetContextCreate(CurrentMemoryContext, "agentorch settle", ALLOCSET_DEFAULT_SIZES);
	ao_rows_open(&w, T_COUNT, table_names);
	for (int r = 0; r < n; r++)
	{
		RunSteps	rs;
		Datum		key = Int64GetDatum(runs[r]);
		int			readied;
		int			open = 0;
		int			active = 0;
		int			waiting = 0;
		bool		isnull;
		const char *status;
		bool		again = false;

		CHECK_FOR_INTERRUPTS();
		/* once per run, however often given: what this call wrote is not seen by its own reads */
		for (int i = 0; i < r && !again; i++)
			again = runs[i] == runs[r];
		if (again)
			continue;
		MemoryContextSwitchTo(per_run);
		rs.size = 16;
		rs.n = 0;
		rs.steps = palloc(sizeof(StepSeen) * rs.size);
		ao_row_scan(&w, ao_rows_table(&w, T_STEPS), 1, &key, step_seen, &rs);
		qsort(rs.steps, rs.n, sizeof(StepSeen), step_id_cmp);
		if (!promote(&w, runs[r], &rs, &readied))
		{
			write_run_count(&w, counters, runs[r]);
			to_sql[nsql++] = runs[r];
			MemoryContextSwitchTo(caller);
			MemoryContextReset(per_run);
			continue;
		}
		for (int i = 0; i < rs.n; i++)
		{
			open += status_in(rs.steps[i].status, open_states);
			active += status_in(rs.steps[i].status, active_states);
			waiting += strcmp(rs.steps[i].status, "waiting") == 0;
		}
		if (!ao_row_fetch(&w, ao_rows_table(&w, T_RUNS), 1, &key, false))
			elog(ERROR, "agentorch: run " INT64_FORMAT " is missing", runs[r]);
		status = enum_label(ao_row_old(&w.t[T_RUNS], "status", &isnull));
		if (strcmp(status, "running") == 0 || strcmp(status, "waiting") == 0)
		{
			bool		compensating = DatumGetBool(ao_row_old(&w.t[T_RUNS], "compensating", &isnull));

			if (open == 0 && !compensating && close_succeeded(&w, runs[r], &rs, counters, &last_output))
				;				/* closed here */
			else if (open == 0 ||
					 (active == 0 && waiting > 0 && strcmp(status, "running") == 0) ||
					 (active > 0 && strcmp(status, "waiting") == 0))
				to_sql[nsql++] = runs[r];
			else if (readied > 0 && readied_out != NULL && strcmp(status, "running") == 0)
				add_readied(&rs, runs[r], caller, readied_out);
		}
		write_run_count(&w, counters, runs[r]);
		MemoryContextSwitchTo(caller);
		MemoryContextReset(per_run);
	}
	/* counters of runs not given (the caller's list should hold them all) */
	write_run_counts_left(&w, counters);
	ao_rows_close(&w);
	MemoryContextDelete(per_run);
	/* what _settle_runs does may make other steps ready: then the caller claims */
	if (nsql > 0 && readied_out != NULL)
	{
		list_free_deep(*readied_out);
		*readied_out = NIL;
	}
	settle_runs_sql(to_sql, nsql);
}

/*
 * Attempts
 */

/* The definition the run (rt's row) pinned for the tool of a step's spec, or NULL. */
static Jsonb *
pinned_tool(AoRowTable *rt, Jsonb *spec)
{
	JsonbValue	name;
	JsonbValue	definition;
	bool		isnull;
	Datum		tools;

	if (!ao_jsonb_get_key(&spec->root, "tool", &name) || name.type != jbvString)
		return NULL;
	tools = ao_row_old(rt, "tools", &isnull);
	if (isnull)
		return NULL;
	if (getKeyJsonValueFromContainer(&DatumGetJsonbP(tools)->root, name.val.string.val,
									 name.val.string.len, &definition) == NULL)
		return NULL;
	return JsonbValueToJsonb(&definition);
}

/*
 * Begin an attempt of each step r[0..n) that settling made ready and the
 * caller's transaction holds the run of (what the claim statement does for
 * the steps it takes: attempt counted, started_at, worker), and fill
 * out[] as the claim returns them. A step no longer ready, network work,
 * or not due yet is left alone. Returns how many were begun.
 */
int
ao_state_begin_attempts(const AoReadied *r, int n, int worker, AoAttempt *out)
{
	AoRows		w;
	int			taken = 0;
	TimestampTz now = GetCurrentTimestamp();

	ao_rows_open(&w, T_COUNT, table_names);
	for (int i = 0; i < n; i++)
	{
		AoRowTable *t = ao_rows_table(&w, T_STEPS);
		AoRowTable *rt;
		Datum		keys[2] = {Int64GetDatum(r[i].run_id), CStringGetTextDatum(r[i].step_id)};
		AoAttempt  *a = &out[taken];
		bool		isnull;
		bool		parent_null;
		Datum		d;
		const char *status;

		if (!ao_row_fetch(&w, t, 2, keys, true) ||
			strcmp(enum_label(ao_row_old(t, "status", &isnull)), "ready") != 0 ||
			DatumGetBool(ao_row_old(t, "network", &isnull)))
			continue;
		d = ao_row_old(t, "not_before", &isnull);
		if (!isnull && DatumGetTimestampTz(d) > now)
			continue;
		memset(a, 0, sizeof(AoAttempt));
		a->run_id = r[i].run_id;
		a->step_id = pstrdup(r[i].step_id);
		a->kind = pstrdup(enum_label(ao_row_old(t, "kind", &isnull)));
		a->spec = DatumGetJsonbPCopy(ao_row_old(t, "spec", &isnull));
		a->attempt = DatumGetInt32(ao_row_old(t, "attempt", &isnull));
		a->max_attempts = DatumGetInt32(ao_row_old(t, "max_attempts", &isnull));
		d = ao_row_old(t, "item", &isnull);
		a->item = isnull ? NULL : DatumGetJsonbPCopy(d);
		d = ao_row_old(t, "iteration", &isnull);
		a->iteration = isnull ? -1 : DatumGetInt32(d);
		(void) ao_row_old(t, "parent_step_id", &parent_null);
		a->plain = parent_null && DatumGetInt32(ao_row_old(t, "plan_version", &isnull)) == 0;
		d = ao_row_old(t, "started_at", &isnull);
		a->old_started_at = isnull ? 0 : DatumGetTimestampTz(d);
		d = ao_row_old(t, "worker", &isnull);
		a->old_worker = isnull ? 0 : DatumGetInt32(d);
		ao_row_begin_update(&w, t);
		ao_row_put(t, "attempt", Int32GetDatum(a->attempt + 1), false);
		ao_row_put(t, "started_at", TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()), false);
		ao_row_put(t, "worker", Int32GetDatum(worker), false);
		ao_row_update(&w, t);

		rt = ao_rows_table(&w, T_RUNS);
		if (!ao_row_fetch(&w, rt, 1, &keys[0], false))
			elog(ERROR, "agentorch: run " INT64_FORMAT " is missing", r[i].run_id);
		a->owner = DatumGetObjectId(ao_row_old(rt, "owner", &isnull));
		a->tool_definition = pinned_tool(rt, a->spec);
		status = enum_label(ao_row_old(rt, "status", &isnull));
		a->run_active = strcmp(status, "running") == 0 || strcmp(status, "waiting") == 0;
		d = ao_row_old(rt, "deadline", &isnull);
		if (isnull || DatumGetBool(ao_row_old(rt, "compensating", &isnull)))
			a->deadline = 0;
		else
			a->deadline = DatumGetTimestampTz(d);
		taken++;
	}
	ao_rows_close(&w);
	return taken;
}
