/*-------------------------------------------------------------------------
 *
 * chunks.c
 *	  The chunk buffer of streamed output: a step's chunks wait in memory
 *	  until they are due -- agentorch.flush_interval after the last write,
 *	  or once agentorch.chunk_buffer_size chunks wait -- and are then taken
 *	  in batches, one per step and attempt, that the state layer writes
 *	  (state/chunk_rows.c: one multi-row insert per batch, one NOTIFY per
 *	  run). A step's first chunk is due at once, so time to first token is
 *	  not a flush interval.
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

/*
 * Take a buffer's queued chunks, to be written now: one batch per attempt
 * they belong to (a List of AoChunkBatch, in order, in the caller's
 * memory), each text scrubbed by the owner's filter. The queue is empty
 * afterwards and the buffer counts as flushed. NIL: nothing was queued.
 */
List *
ao_chunks_take(AoChunkBuffer *buf)
{
	List	   *batches = NIL;
	AoChunkBatch *b = NULL;
	ListCell   *lc;
	int			left = list_length(buf->pending);

	foreach(lc, buf->pending)
	{
		PendingChunk *c = lfirst(lc);

		if (b == NULL || c->attempt != b->attempt)
		{
			b = palloc0(sizeof(AoChunkBatch));
			b->run = buf->run;
			b->step_id = buf->step_id;
			b->attempt = c->attempt;
			b->kinds = palloc(sizeof(char *) * left);
			b->contents = palloc(sizeof(char *) * left);
			b->datas = palloc(sizeof(char *) * left);
			batches = lappend(batches, b);
		}
		b->kinds[b->n] = c->kind;
		/* a reply that echoes the request's key keeps it out of the stream */
		b->contents[b->n] = pstrdup(scrubbed(buf, c->content.data));
		b->datas[b->n] = c->data ? pstrdup(scrubbed(buf, c->data)) : NULL;
		b->n++;
		left--;
	}
	list_free_deep(buf->pending);
	buf->pending = NIL;
	if (batches != NIL)
		buf->last_flush = GetCurrentTimestamp();
	return batches;
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
 * The live buffers with chunks queued, in run id order (the lock order of
 * agentorch_state.sql): what a flush of every stream writes. NIL: none.
 */
List *
ao_chunks_due_buffers(void)
{
	dlist_iter	it;
	List	   *bufs = NIL;

	dlist_foreach(it, &all_buffers)
	{
		AoChunkBuffer *buf = dlist_container(AoChunkBuffer, node, it.cur);

		if (buf->pending != NIL)
			bufs = lappend(bufs, buf);
	}
	list_sort(bufs, compare_by_run);
	return bufs;
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
