/*-------------------------------------------------------------------------
 *
 * stream.h
 *	  The stream layer: NOTIFY of runs (coalesced per transaction) and
 *	  how much may go into the NOTIFY queue (stream.c), the chunk buffer
 *	  of streamed output (chunks.c; the state layer writes what it
 *	  holds). Above policy.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/stream/stream.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_STREAM_H
#define AO_STREAM_H

#include "policy.h"

#include "lib/ilist.h"
#include "utils/timestamp.h"

/* Values of ao_notify_mode() and agentorch._notify_mode(). */
#define NOTIFY_FULL		0			/* notify with content */
#define NOTIFY_NO_CONTENT 1			/* notify, content left in the rows */
#define NOTIFY_NONE		2			/* do not notify */

/* How much may go into the NOTIFY queue now (warns when it fills). */
extern int	ao_notify_mode(void);
extern List *ao_run_list_add(List *list, int64 run);
extern void ao_notify_runs(List *runs);

/* A step's streamed chunks not yet written (chunks.c), in the step's memory. */
typedef struct AoChunkBuffer
{
	dlist_node	node;			/* in the list of live buffers */
	bool		linked;			/* node is in that list */
	int64		run;
	const char *step_id;
	char	   *(*scrub) (void *arg, const char *text);	/* NULL: written as is */
	void	   *scrub_arg;
	List	   *pending;		/* chunks not yet written */
	bool		first_flushed;	/* the first chunk went out at once */
	TimestampTz last_flush;
} AoChunkBuffer;

/* Chunks of one step attempt taken from a buffer to be written (ao_chunks_take). */
typedef struct AoChunkBatch
{
	int64		run;
	const char *step_id;
	int			attempt;
	int			n;
	const char **kinds;			/* token, tool_call, json_partial, status */
	const char **contents;
	const char **datas;			/* jsonb text, or NULL */
} AoChunkBatch;

extern void ao_chunks_init(AoChunkBuffer *buf, int64 run, const char *step_id,
						   char *(*scrub) (void *arg, const char *text), void *scrub_arg);
extern void ao_chunks_forget(AoChunkBuffer *buf);
extern void ao_chunks_queue(AoChunkBuffer *buf, int attempt, const char *kind, const char *content,
							size_t len, const char *data);
extern List *ao_chunks_take(AoChunkBuffer *buf);
extern List *ao_chunks_due_buffers(void);
extern long ao_chunks_next_flush_ms(void);

#endif							/* AO_STREAM_H */
