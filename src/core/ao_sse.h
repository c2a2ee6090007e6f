/*-------------------------------------------------------------------------
 *
 * ao_sse.h
 *	  Incremental Server-Sent Events parser (PostgreSQL-free).
 *
 * Implements the "event stream interpretation" of the WHATWG HTML
 * standard (section 9.2.6) over a byte stream that arrives in chunks split
 * anywhere, including between the CR and LF of a line ending and inside a
 * UTF-8 sequence:
 *
 *	- lines end with CRLF, LF or CR; a leading UTF-8 BOM is skipped;
 *	- "field: value" (one space after the colon is dropped), "field" alone
 *	  (a line without a colon: the whole line is the field name, the value
 *	  is empty), ":comment" lines are ignored;
 *	- data: lines are joined with LF; an empty line dispatches the event if
 *	  any data: line was seen (an event with only event:/id: is dropped, as
 *	  the standard says); the type is the last event: value, "message" by
 *	  default;
 *	- id: sets the last event ID (kept across events) unless the value
 *	  contains a NUL; retry: sets the reconnection time when the value is
 *	  all ASCII digits; unknown fields are ignored;
 *	- at the end of the stream an event without its closing empty line is
 *	  discarded (ao_sse_finish reports it as AO_SSE_TRUNCATED).
 *
 * Bytes are passed through as they are (no UTF-8 decoding): the consumer
 * (json-c with UTF-8 validation in ao_llm) checks the encoding.
 *
 * Memory: the parser buffers at most the current line plus the current
 * event's data and type. When that would exceed max_event_bytes the parser
 * enters the sticky error state AO_SSE_TOO_LARGE and ignores the rest.
 * Allocation failure aborts (see ao_core.c).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_sse.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_SSE_H
#define AO_SSE_H

#include <stdbool.h>
#include <stddef.h>

/* Default cap on one event (line + data + type), in bytes. */
#define AO_SSE_DEFAULT_MAX_EVENT (1024 * 1024)

typedef enum ao_sse_status
{
	AO_SSE_OK = 0,
	AO_SSE_TOO_LARGE,			/* an event exceeded max_event_bytes (sticky) */
	AO_SSE_STOPPED,				/* the callback returned non-zero (sticky) */
	AO_SSE_TRUNCATED			/* ao_sse_finish: an unterminated event was dropped */
} ao_sse_status;

/* One dispatched event; every pointer is valid only during the callback. */
typedef struct ao_sse_event
{
	const char *type;			/* event: value, or "message" */
	const char *data;			/* data: lines joined with "\n", NUL-terminated */
	size_t		data_len;		/* length of data (data may contain NUL bytes) */
	const char *id;				/* last event ID so far ("" when none) */
} ao_sse_event;

/* Receives each event; return non-zero to stop parsing (AO_SSE_STOPPED). */
typedef int (*ao_sse_event_fn) (void *arg, const ao_sse_event *event);

typedef struct ao_sse_parser ao_sse_parser;

/* max_event_bytes = 0 means AO_SSE_DEFAULT_MAX_EVENT. */
extern ao_sse_parser *ao_sse_new(size_t max_event_bytes, ao_sse_event_fn cb, void *arg);
extern void ao_sse_free(ao_sse_parser *p);

/*
 * Feed the next chunk (any length, 0 allowed). Complete events are passed
 * to the callback before this returns. Returns the parser's status; once it
 * is not AO_SSE_OK further input is ignored.
 */
extern ao_sse_status ao_sse_feed(ao_sse_parser *p, const char *bytes, size_t len);

/*
 * End of stream. Returns AO_SSE_TRUNCATED when a partial line or an event
 * without its closing empty line was discarded, otherwise the status.
 */
extern ao_sse_status ao_sse_finish(ao_sse_parser *p);

/*
 * Forget the buffered line/event and any error, as for a reconnection: the
 * last event ID and the retry value are kept, a BOM is skipped again.
 */
extern void ao_sse_reset(ao_sse_parser *p);

extern ao_sse_status ao_sse_get_status(const ao_sse_parser *p);
extern const char *ao_sse_status_message(ao_sse_status status);

/* Last event ID ("" when none), and the last valid retry: value in ms (-1 when none). */
extern const char *ao_sse_last_id(const ao_sse_parser *p);
extern long ao_sse_retry_ms(const ao_sse_parser *p);

/* Number of events dispatched so far. */
extern size_t ao_sse_event_count(const ao_sse_parser *p);

#endif							/* AO_SSE_H */
