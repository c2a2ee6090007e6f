/*-------------------------------------------------------------------------
 *
 * ao_core.c
 *	  Small shared helpers of the PostgreSQL-free core: string buffers,
 *	  JSON-pointer paths and UTF-8 length.
 *
 * Allocation failure aborts the process: the core runs either in unit
 * tests or inside a backend where malloc failing is already fatal for the
 * statement, and keeping every caller free of out-of-memory branches keeps
 * the validators readable.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_core.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ensure room for extra more bytes plus a terminating NUL. */
static void
ao_buf_reserve(ao_buf *b, size_t extra)
{
	size_t		need = b->len + extra + 1;

	if (need <= b->cap)
		return;
	while (b->cap < need)
		b->cap = b->cap ? b->cap * 2 : 64;
	b->data = realloc(b->data, b->cap);
	if (b->data == NULL)
		abort();
}

/* Initialise an empty buffer whose data is always a valid C string. */
void
ao_buf_init(ao_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	ao_buf_reserve(b, 0);
	b->data[0] = '\0';
}

/* Release the buffer's memory; the buffer must be re-initialised to reuse. */
void
ao_buf_free(ao_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Empty the buffer, keeping its memory. */
void
ao_buf_reset(ao_buf *b)
{
	ao_buf_truncate(b, 0);
}

/* Cut the buffer back to len bytes (used to pop JSON-pointer tokens). */
void
ao_buf_truncate(ao_buf *b, size_t len)
{
	if (len < b->len)
	{
		b->len = len;
		b->data[len] = '\0';
	}
}

/* Append n bytes of s. */
void
ao_buf_append_n(ao_buf *b, const char *s, size_t n)
{
	ao_buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/* Append a C string. */
void
ao_buf_append(ao_buf *b, const char *s)
{
	ao_buf_append_n(b, s, strlen(s));
}

/* Append printf-formatted text. */
void
ao_buf_printf(ao_buf *b, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	ao_buf_reserve(b, (size_t) n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t) n;
}

/* Append "/" and key with RFC 6901 escaping. */
void
ao_jsonptr_push_key(ao_buf *path, const char *key)
{
	ao_buf_append_n(path, "/", 1);
	for (; *key; key++)
	{
		if (*key == '~')
			ao_buf_append_n(path, "~0", 2);
		else if (*key == '/')
			ao_buf_append_n(path, "~1", 2);
		else
			ao_buf_append_n(path, key, 1);
	}
}

/* Append "/" and a decimal array index. */
void
ao_jsonptr_push_index(ao_buf *path, size_t index)
{
	ao_buf_printf(path, "/%zu", index);
}

/* Count code points: every byte that is not a UTF-8 continuation byte. */
size_t
ao_utf8_length(const char *s, size_t len)
{
	size_t		n = 0;

	for (size_t i = 0; i < len; i++)
		if (((unsigned char) s[i] & 0xC0) != 0x80)
			n++;
	return n;
}

/* Start an empty problem list. */
void
ao_problems_init(ao_problems *p)
{
	p->n = p->cap = 0;
	p->paths = p->messages = NULL;
}

/* Append a copy of (path, message); list is an ao_problems *. */
void
ao_problems_add(void *list, const char *path, const char *message)
{
	ao_problems *p = (ao_problems *) list;

	if (p->n == p->cap)
	{
		p->cap = p->cap ? p->cap * 2 : 8;
		p->paths = realloc(p->paths, p->cap * sizeof(char *));
		p->messages = realloc(p->messages, p->cap * sizeof(char *));
		if (p->paths == NULL || p->messages == NULL)
			abort();
	}
	p->paths[p->n] = strdup(path ? path : "");
	p->messages[p->n] = strdup(message ? message : "");
	if (p->paths[p->n] == NULL || p->messages[p->n] == NULL)
		abort();
	p->n++;
}

/* Release every entry and the arrays. */
void
ao_problems_free(ao_problems *p)
{
	for (size_t i = 0; i < p->n; i++)
	{
		free(p->paths[i]);
		free(p->messages[i]);
	}
	free(p->paths);
	free(p->messages);
	ao_problems_init(p);
}
