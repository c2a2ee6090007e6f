/*-------------------------------------------------------------------------
 *
 * chunk_rows.c
 *	  Streamed chunks written: what the chunk buffers (stream/chunks.c)
 *	  hold becomes rows of agentorch.chunks, written together, after each
 *	  run's last_chunk_seq has moved past all of its batches at once (the
 *	  chunks of its parallel steps, of a step's two attempts) -- what
 *	  agentorch._append_chunks does per batch, through the executor's row
 *	  operations (rows.c) with no statement to parse or plan -- and the
 *	  runs they belong to are notified once each (notify.c). This is the
 *	  flush path of every llm step's first token, so it runs no SQL.
 *
 * Nothing is appended to a run that is no longer running or waiting (a
 * step's last chunks after its run was cancelled): they are dropped, as
 * _append_chunks drops them.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/state/chunk_rows.c
 *
 *-------------------------------------------------------------------------
 */
#include "rows.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "guc.h"

enum
{
	T_RUNS,
	T_CHUNKS,
	T_COUNT
};
static const char *const table_names[T_COUNT] = {"runs", "chunks"};

/* A text[] of n texts (a NULL element where texts[i] is NULL). */
static Datum
text_array(const char **texts, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc(sizeof(bool) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};

	for (int i = 0; i < n; i++)
	{
		nulls[i] = texts[i] == NULL;
		elems[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(texts[i]);
	}
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
}

/* One batch through agentorch._append_chunks (a database at 0.1.0, or agentorch.state_sql_only). */
static bool
append_batch_sql(const AoChunkBatch *b)
{
	Oid			types[6] = {INT8OID, TEXTOID, INT4OID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[6];
	bool		isnull;

	values[0] = Int64GetDatum(b->run);
	values[1] = CStringGetTextDatum(b->step_id);
	values[2] = Int32GetDatum(b->attempt);
	values[3] = text_array(b->kinds, b->n);
	values[4] = text_array(b->contents, b->n);
	values[5] = text_array(b->datas, b->n);
	ao_spi_exec("SELECT agentorch._append_chunks($1, $2, $3, $4::agentorch.chunk_kind[], $5, $6::jsonb[])",
				6, types, values, NULL, SPI_OK_SELECT);
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return !isnull;
}

/*
 * One run's batches (consecutive in the list, [from, to)): the
 * run's row locked once and its last_chunk_seq moved past all of them,
 * then their chunks inserted in order after the old value. One update per
 * run: the row read by a second fetch in the same command would be the
 * version before this update. False: the run is gone or no longer open,
 * and nothing was written.
 */
static bool
append_run_batches(AoRows *w, List *batches, int from, int to)
{
	AoRowTable *rt = ao_rows_table(w, T_RUNS);
	AoRowTable *ct;
	Datum		key = Int64GetDatum(((AoChunkBatch *) list_nth(batches, from))->run);
	bool		isnull;
	const char *status;
	int64		seq;
	int			n = 0;

	for (int b = from; b < to; b++)
		n += ((AoChunkBatch *) list_nth(batches, b))->n;
	if (!ao_row_fetch(w, rt, 1, &key, true))
		return false;
	status = DatumGetCString(DirectFunctionCall1(enum_out, ao_row_old(rt, "status", &isnull)));
	if (strcmp(status, "running") != 0 && strcmp(status, "waiting") != 0)
		return false;
	seq = DatumGetInt64(ao_row_old(rt, "last_chunk_seq", &isnull));
	ao_row_begin_update(w, rt);
	ao_row_put(rt, "last_chunk_seq", Int64GetDatum(seq + n), false);
	ao_row_update(w, rt);

	ct = ao_rows_table(w, T_CHUNKS);
	for (int b = from; b < to; b++)
	{
		const AoChunkBatch *batch = list_nth(batches, b);

		for (int i = 0; i < batch->n; i++)
		{
			ao_row_begin(w, ct);
			ao_row_put(ct, "run_id", key, false);
			ao_row_put(ct, "seq", Int64GetDatum(++seq), false);
			ao_row_put_text(ct, "step_id", batch->step_id);
			ao_row_put(ct, "attempt", Int32GetDatum(batch->attempt), false);
			ao_row_put_kept(w, ct, "kind", batch->kinds[i]);
			ao_row_put_text(ct, "content", batch->contents[i]);
			ao_row_put_text(ct, "data", batch->datas[i]);
			ao_row_insert(w, ct);
		}
	}
	return true;
}

/*
 * Write each buffer's queued chunks (the buffers in run id order, so one
 * run's batches are consecutive); the runs written to, each once, in order.
 */
static List *
write_buffers(List *bufs)
{
	List	   *runs = NIL;
	List	   *batches = NIL;
	int			n;
	ListCell   *lc;
	AoRows		w;

	foreach(lc, bufs)
		batches = list_concat(batches, ao_chunks_take((AoChunkBuffer *) lfirst(lc)));
	n = list_length(batches);
	if (ao_state_sql_only || !ao_schema_at_least(0, 2))
	{
		foreach(lc, batches)
		{
			AoChunkBatch *b = lfirst(lc);

			if (append_batch_sql(b))
				runs = ao_run_list_add(runs, b->run);
		}
		return runs;
	}
	if (n == 0)
		return NIL;
	ao_rows_open(&w, T_COUNT, table_names);
	for (int from = 0, to; from < n; from = to)
	{
		int64		run = ((AoChunkBatch *) list_nth(batches, from))->run;

		for (to = from + 1; to < n && ((AoChunkBatch *) list_nth(batches, to))->run == run; to++)
			;
		if (append_run_batches(&w, batches, from, to))
			runs = ao_run_list_add(runs, run);
	}
	ao_rows_close(&w);
	return runs;
}

/*
 * Write a buffer's queued chunks now (caller: in a transaction with an SPI
 * connection, as the extension owner; the run is notified at the
 * caller's commit by whoever settles it). True: something was written.
 */
bool
ao_state_write_chunks(AoChunkBuffer *buf)
{
	if (buf->pending == NIL)
		return false;
	return write_buffers(list_make1(buf)) != NIL;
}

/*
 * Flush every live buffer with chunks queued, in one transaction of its
 * own: their rows (runs locked in id order, the lock order of
 * agentorch_state.sql), then one NOTIFY per run.
 */
void
ao_state_flush_streams(void)
{
	List	   *bufs = ao_chunks_due_buffers();

	if (bufs == NIL)
		return;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "agentorch: writing streamed chunks");
	ao_state_notify_runs(write_buffers(bufs));
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	ao_announce_progress(false);
}
