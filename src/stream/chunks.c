/*-------------------------------------------------------------------------
 *
 * chunks.c
 *	  The chunk buffer of streamed output: a step's chunks wait in memory
 *	  and are written in batches (one multi-row insert per step and
 *	  attempt, one NOTIFY per run), at most every agentorch.flush_interval
 *	  or when agentorch.chunk_buffer_size chunks are waiting. The step's
 *	  first chunk goes out at once, so time to first token is not a flush
 *	  interval.
 *
 * Any runner that streams keeps an AoChunkBuffer in its step's memory:
 * llm steps do (runner/llm.c); an http tool could. A buffer is in the list
 * of live buffers from ao_chunks_init until ao_chunks_forget, which the
 * owner must call before the buffer's memory goes (a reset callback on
 * that memory does it for llm steps), or the list keeps a dangling
 * pointer.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/stream/chunks.c
 *
 *-------------------------------------------------------------------------
 */
#include "stream.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "ao_llm.h"

/* A chunk waiting to be written. */
typedef struct PendingChunk
{
	const char *kind;			/* token, tool_call, json_partial, status */
	int			attempt;		/* the request attempt it belongs to */
	StringInfoData content;
	char	   *data;			/* jsonb text or NULL */
} PendingChunk;

/* every live buffer of this process */
static dlist_head all_buffers = DLIST_STATIC_INIT(all_buffers);

/*
 * Start a step's buffer (in the step's memory) and put it in the list of
 * live buffers. scrub, when not NULL, filters every text before it is
 * written (a reply that echoes the request's key keeps it out of the
 * stream).
 */
void
ao_chunks_init(AoChunkBuffer *buf, int64 run, const char *step_id,
			   char *(*scrub) (void *arg, const char *text), void *scrub_arg)
{
	memset(buf, 0, sizeof(AoChunkBuffer));
	buf->run = run;
	buf->step_id = step_id;
	buf->scrub = scrub;
	buf->scrub_arg = scrub_arg;
	dlist_push_tail(&all_buffers, &buf->node);
	buf->linked = true;
}

/* Take a buffer out of the list of live buffers (its chunks are dropped). */
void
ao_chunks_forget(AoChunkBuffer *buf)
{
	if (buf->linked)
	{
		dlist_delete(&buf->node);
		buf->linked = false;
	}
}

/*
 * Queue a chunk of an attempt; consecutive token/json_partial deltas are
 * coalesced. May run inside curl's write callback: it only queues.
 */
void
ao_chunks_queue(AoChunkBuffer *buf, int attempt, const char *kind, const char *content, size_t len,
				const char *data)
{
	PendingChunk *last = buf->pending ? llast(buf->pending) : NULL;
	PendingChunk *c;
	char	   *clean = NULL;

	/* text and jsonb hold no NUL and only well-formed UTF-8 */
	if (!ao_llm_text_is_clean(content, len))
	{
		clean = ao_llm_text_sanitize(content, len, &len);
		content = clean;
	}
	if (last && data == NULL && last->data == NULL && strcmp(last->kind, kind) == 0 &&
		last->attempt == attempt &&
		(strcmp(kind, "token") == 0 || strcmp(kind, "json_partial") == 0))
	{
		appendBinaryStringInfo(&last->content, content, (int) len);
		if (clean)
			free(clean);
		return;
	}
	Assert(attempt >= 0 && kind != NULL);
	c = palloc0(sizeof(PendingChunk));
	c->kind = kind;
	c->attempt = attempt;
	initStringInfo(&c->content);
	appendBinaryStringInfo(&c->content, content, (int) len);
	if (clean)
		free(clean);
	c->data = data ? pstrdup(data) : NULL;
	buf->pending = lappend(buf->pending, c);
	/*
	 * Due at once: a full buffer (agentorch.chunk_buffer_size), and the
	 * step's first chunk, so time to first token is not a flush interval.
	 */
	if (list_length(buf->pending) >= ao_chunk_buffer_size || !buf->first_flushed)
	{
		buf->last_flush = 0;
		buf->first_flushed = true;
	}
}

/* A text as written: scrubbed by the owner's filter, if any. */
static char *
scrubbed(AoChunkBuffer *buf, const char *text)
{
	return buf->scrub ? buf->scrub(buf->scrub_arg, text) : (char *) text;
}

/* Write chunks [from, to) of the buffer's queue, all of one attempt. */
static void
append_chunks(AoChunkBuffer *buf, int from, int to)
{
	int			n = to - from;
	Datum	   *kinds = palloc(sizeof(Datum) * n);
	Datum	   *contents = palloc(sizeof(Datum) * n);
	Datum	   *datas = palloc(sizeof(Datum) * n);
	bool	   *dnulls = palloc(sizeof(bool) * n);
	Oid			types[6] = {INT8OID, TEXTOID, INT4OID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[6];
	int			dims[1];
	int			lbs[1] = {1};
	int			attempt = 0;

	Assert(n > 0 && to <= list_length(buf->pending));
	for (int i = 0; i < n; i++)
	{
		PendingChunk *c = list_nth(buf->pending, from + i);

		/* one insert holds the chunks of one attempt (ao_chunks_flush splits them) */
		Assert(i == 0 || c->attempt == attempt);
		attempt = c->attempt;
		kinds[i] = CStringGetTextDatum(c->kind);
		/* a reply that echoes the request's key keeps it out of the stream */
		contents[i] = CStringGetTextDatum(scrubbed(buf, c->content.data));
		datas[i] = c->data ? CStringGetTextDatum(scrubbed(buf, c->data)) : (Datum) 0;
		dnulls[i] = c->data == NULL;
	}
	dims[0] = n;
	values[0] = Int64GetDatum(buf->run);
	values[1] = CStringGetTextDatum(buf->step_id);
	values[2] = Int32GetDatum(attempt);
	values[3] = PointerGetDatum(construct_array(kinds, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_array(contents, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[5] = PointerGetDatum(construct_md_array(datas, dnulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_with_args("SELECT agentorch._append_chunks($1, $2, $3, $4::agentorch.chunk_kind[], $5, $6::jsonb[])",
							  6, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "agentorch: could not append chunks");
}

/*
 * Write a buffer's queued chunks (caller: in a transaction with an SPI
 * connection), one insert per attempt they belong to. Returns true when
 * something was written.
 */
bool
ao_chunks_flush(AoChunkBuffer *buf)
{
	int			n = list_length(buf->pending);
	int			from = 0;

	if (n == 0)
		return false;
	for (int i = 1; i <= n; i++)
	{
		if (i == n || ((PendingChunk *) list_nth(buf->pending, i))->attempt !=
			((PendingChunk *) list_nth(buf->pending, from))->attempt)
		{
			append_chunks(buf, from, i);
			from = i;
		}
	}
	list_free_deep(buf->pending);
	buf->pending = NIL;
	buf->last_flush = GetCurrentTimestamp();
	return true;
}

/* list_sort comparator: buffers by run id. */
static int
compare_by_run(const ListCell *a, const ListCell *b)
{
	int64		x = ((AoChunkBuffer *) lfirst(a))->run;
	int64		y = ((AoChunkBuffer *) lfirst(b))->run;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * Flush the queued chunks of every live buffer in one transaction (one
 * multi-row insert per step, one NOTIFY per run).
 */
void
ao_chunks_flush_all(void)
{
	dlist_iter	it;
	bool		any = false;
	List	   *runs = NIL;

	dlist_foreach(it, &all_buffers)
	{
		AoChunkBuffer *buf = dlist_container(AoChunkBuffer, node, it.cur);

		any = any || buf->pending != NIL;
	}
	if (!any)
		return;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "agentorch: writing streamed chunks");
	{
		/* runs are locked in id order (the lock order of agentorch_state.sql) */
		List	   *bufs = NIL;
		ListCell   *lc;

		dlist_foreach(it, &all_buffers)
			bufs = lappend(bufs, dlist_container(AoChunkBuffer, node, it.cur));
		list_sort(bufs, compare_by_run);
		foreach(lc, bufs)
		{
			AoChunkBuffer *buf = lfirst(lc);

			if (ao_chunks_flush(buf))
				runs = ao_run_list_add(runs, buf->run);
		}
	}
	ao_notify_runs(runs);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	ao_announce_progress(false);
}

/* Milliseconds until queued chunks should be flushed. */
long
ao_chunks_next_flush_ms(void)
{
	dlist_iter	it;
	long		next = 3600000;

	dlist_foreach(it, &all_buffers)
	{
		AoChunkBuffer *buf = dlist_container(AoChunkBuffer, node, it.cur);

		if (buf->pending != NIL)
		{
			long		since = (long) ((GetCurrentTimestamp() - buf->last_flush) / 1000);

			next = Min(next, Max(0, ao_flush_interval_ms - since));
		}
	}
	return next;
}
