/*-------------------------------------------------------------------------
 *
 * ao_sse.c
 *	  Incremental Server-Sent Events parser (see ao_sse.h).
 *
 * The parser keeps three buffers: the current (incomplete) line, the data
 * buffer and the event type buffer of the event being read, plus the last
 * event ID. A line that ends inside the chunk being fed and has no buffered
 * prefix is processed in place, so the common case copies each byte once
 * (into the data buffer). A CR at the very end of a chunk is remembered so
 * that an LF at the start of the next chunk does not end a second line.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_sse.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_sse.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ao_core.h"

static const unsigned char sse_bom[3] = {0xEF, 0xBB, 0xBF};

struct ao_sse_parser
{
	size_t		max_event;
	ao_sse_event_fn cb;
	void	   *arg;
	ao_buf		line;			/* bytes of the current line so far */
	ao_buf		data;			/* data buffer: each data: value + "\n" */
	ao_buf		type;			/* event type buffer */
	ao_buf		last_id;		/* last event ID buffer */
	bool		cr_pending;		/* previous chunk ended with CR */
	int			bom_pos;		/* BOM bytes matched so far; -1 once decided */
	long		retry_ms;
	size_t		events;
	ao_sse_status status;
};

ao_sse_parser *
ao_sse_new(size_t max_event_bytes, ao_sse_event_fn cb, void *arg)
{
	ao_sse_parser *p = ao_calloc(1, sizeof(*p));

	p->max_event = max_event_bytes ? max_event_bytes : AO_SSE_DEFAULT_MAX_EVENT;
	p->cb = cb;
	p->arg = arg;
	ao_buf_init(&p->line);
	ao_buf_init(&p->data);
	ao_buf_init(&p->type);
	ao_buf_init(&p->last_id);
	p->retry_ms = -1;
	p->status = AO_SSE_OK;
	return p;
}

void
ao_sse_free(ao_sse_parser *p)
{
	if (p == NULL)
		return;
	ao_buf_free(&p->line);
	ao_buf_free(&p->data);
	ao_buf_free(&p->type);
	ao_buf_free(&p->last_id);
	free(p);
}

void
ao_sse_reset(ao_sse_parser *p)
{
	ao_buf_reset(&p->line);
	ao_buf_reset(&p->data);
	ao_buf_reset(&p->type);
	p->cr_pending = false;
	p->bom_pos = 0;
	p->status = AO_SSE_OK;
}

ao_sse_status
ao_sse_get_status(const ao_sse_parser *p)
{
	return p->status;
}

const char *
ao_sse_status_message(ao_sse_status status)
{
	switch (status)
	{
		case AO_SSE_OK:
			return "ok";
		case AO_SSE_TOO_LARGE:
			return "server-sent event exceeds the size limit";
		case AO_SSE_STOPPED:
			return "parsing stopped by the event handler";
		case AO_SSE_TRUNCATED:
			return "stream ended inside a server-sent event";
	}
	return "unknown status";
}

const char *
ao_sse_last_id(const ao_sse_parser *p)
{
	return p->last_id.data;
}

long
ao_sse_retry_ms(const ao_sse_parser *p)
{
	return p->retry_ms;
}

size_t
ao_sse_event_count(const ao_sse_parser *p)
{
	return p->events;
}

/*
 * Would buffering extra more bytes for the current event pass the cap?
 * with_line: count the partial line buffer too (false while that buffer
 * holds the very line being processed).
 */
static bool
sse_over_cap(const ao_sse_parser *p, size_t extra, bool with_line)
{
	size_t		held = (with_line ? p->line.len : 0) + p->data.len + p->type.len;

	return extra > p->max_event || held > p->max_event - extra;
}

/* Empty line: dispatch the event being read (WHATWG "dispatch the event"). */
static void
sse_dispatch(ao_sse_parser *p)
{
	ao_sse_event ev;

	if (p->data.len == 0)
	{
		/* no data: line since the last dispatch: nothing to dispatch */
		ao_buf_reset(&p->type);
		return;
	}
	/* drop the final "\n" added after the last data: value */
	ao_buf_truncate(&p->data, p->data.len - 1);
	ev.type = p->type.len > 0 ? p->type.data : "message";
	ev.data = p->data.data;
	ev.data_len = p->data.len;
	ev.id = p->last_id.data;
	p->events++;
	if (p->cb != NULL && p->cb(p->arg, &ev) != 0)
		p->status = AO_SSE_STOPPED;
	ao_buf_reset(&p->data);
	ao_buf_reset(&p->type);
}

static bool
sse_field_is(const char *field, size_t flen, const char *name)
{
	size_t		nlen = strlen(name);

	return flen == nlen && memcmp(field, name, nlen) == 0;
}

/* Process one complete line (without its line ending). */
static void
sse_line(ao_sse_parser *p, const char *line, size_t len)
{
	const char *colon;
	const char *value;
	size_t		flen;
	size_t		vlen;

	if (len == 0)
	{
		sse_dispatch(p);
		return;
	}
	if (line[0] == ':')
		return;					/* comment */
	colon = memchr(line, ':', len);
	if (colon != NULL)
	{
		flen = (size_t) (colon - line);
		value = colon + 1;
		vlen = len - flen - 1;
		if (vlen > 0 && value[0] == ' ')
		{
			value++;
			vlen--;
		}
	}
	else
	{
		/* the whole line is the field name, the value is empty */
		flen = len;
		value = "";
		vlen = 0;
	}

	if (sse_field_is(line, flen, "data"))
	{
		if (sse_over_cap(p, vlen + 1, false))
		{
			p->status = AO_SSE_TOO_LARGE;
			return;
		}
		ao_buf_append_n(&p->data, value, vlen);
		ao_buf_append_n(&p->data, "\n", 1);
	}
	else if (sse_field_is(line, flen, "event"))
	{
		ao_buf_reset(&p->type);
		if (sse_over_cap(p, vlen, false))
		{
			p->status = AO_SSE_TOO_LARGE;
			return;
		}
		ao_buf_append_n(&p->type, value, vlen);
	}
	else if (sse_field_is(line, flen, "id"))
	{
		if (memchr(value, '\0', vlen) == NULL)
		{
			ao_buf_reset(&p->last_id);
			ao_buf_append_n(&p->last_id, value, vlen);
		}
	}
	else if (sse_field_is(line, flen, "retry"))
	{
		long		ms = 0;
		size_t		i;

		for (i = 0; i < vlen; i++)
		{
			if (value[i] < '0' || value[i] > '9')
				break;
			if (ms > (LONG_MAX - 9) / 10)
				ms = LONG_MAX;	/* saturate absurd values */
			else
				ms = ms * 10 + (value[i] - '0');
		}
		if (vlen > 0 && i == vlen)
			p->retry_ms = ms;
	}
	/* any other field is ignored */
}

/* Process bytes after the BOM check. */
static void
sse_bytes(ao_sse_parser *p, const char *s, size_t n)
{
	size_t		i = 0;

	if (p->cr_pending && n > 0)
	{
		p->cr_pending = false;
		if (s[0] == '\n')
			i = 1;				/* second half of a CRLF split across chunks */
	}
	while (i < n && p->status == AO_SSE_OK)
	{
		size_t		j = i;

		while (j < n && s[j] != '\n' && s[j] != '\r')
			j++;
		if (j == n)
		{
			/* no line ending in this chunk: keep the partial line */
			if (sse_over_cap(p, n - i, true))
			{
				p->status = AO_SSE_TOO_LARGE;
				return;
			}
			ao_buf_append_n(&p->line, s + i, n - i);
			return;
		}
		if (sse_over_cap(p, j - i, true))
		{
			p->status = AO_SSE_TOO_LARGE;
			return;
		}
		if (p->line.len == 0)
			sse_line(p, s + i, j - i);	/* whole line in this chunk */
		else
		{
			/* sse_line never touches the line buffer it reads from */
			ao_buf_append_n(&p->line, s + i, j - i);
			sse_line(p, p->line.data, p->line.len);
			ao_buf_reset(&p->line);
		}
		if (s[j] == '\r')
		{
			if (j + 1 < n)
				i = (s[j + 1] == '\n') ? j + 2 : j + 1;
			else
			{
				p->cr_pending = true;
				i = n;
			}
		}
		else
			i = j + 1;
	}
}

ao_sse_status
ao_sse_feed(ao_sse_parser *p, const char *bytes, size_t len)
{
	size_t		i = 0;

	if (p->status != AO_SSE_OK)
		return p->status;

	/* skip a UTF-8 BOM at the very start, even when split across chunks */
	while (p->bom_pos >= 0 && p->bom_pos < 3 && i < len)
	{
		if ((unsigned char) bytes[i] == sse_bom[p->bom_pos])
		{
			p->bom_pos++;
			i++;
		}
		else
		{
			/* not a BOM: the bytes held back are ordinary input */
			int			held = p->bom_pos;

			p->bom_pos = -1;
			sse_bytes(p, (const char *) sse_bom, (size_t) held);
		}
	}
	if (p->bom_pos == 3)
		p->bom_pos = -1;
	if (i < len && p->status == AO_SSE_OK)
		sse_bytes(p, bytes + i, len - i);
	return p->status;
}

ao_sse_status
ao_sse_finish(ao_sse_parser *p)
{
	bool		pending;

	if (p->status != AO_SSE_OK)
		return p->status;
	pending = p->line.len > 0 || p->data.len > 0 || (p->bom_pos > 0);
	ao_buf_reset(&p->line);
	ao_buf_reset(&p->data);
	ao_buf_reset(&p->type);
	p->cr_pending = false;
	return pending ? AO_SSE_TRUNCATED : AO_SSE_OK;
}
