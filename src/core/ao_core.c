/*-------------------------------------------------------------------------
 *
 * ao_core.c
 *	  Small shared helpers of the PostgreSQL-free core: string buffers,
 *	  JSON-pointer paths and UTF-8 length.
 *
 * Allocation failure goes to ao_oom(), which calls the installed
 * out-of-memory handler (the server's raises an ERROR) or aborts: keeping
 * every caller free of out-of-memory branches keeps the validators
 * readable. The interrupt hook lives here too (see ao_core.h).
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

static ao_oom_handler oom_handler = NULL;

ao_interrupt_fn ao_interrupt_check = NULL;
static int	interrupt_fired = 0;

/* Install the out-of-memory handler (NULL: abort). */
void
ao_set_oom_handler(ao_oom_handler handler)
{
	oom_handler = handler;
}

/* An allocation of size bytes failed: the handler, then abort. */
void
ao_oom(size_t size)
{
	if (oom_handler != NULL)
		oom_handler(size);
	abort();
}

/* malloc that never returns NULL. */
void *
ao_malloc(size_t size)
{
	void	   *p;

	if (size > AO_ALLOC_MAX)
		ao_oom(size);
	p = malloc(size ? size : 1);
	if (p == NULL)
		ao_oom(size);
	return p;
}

/* calloc that never returns NULL. */
void *
ao_calloc(size_t count, size_t size)
{
	void	   *p;

	if (size != 0 && count > AO_ALLOC_MAX / size)
		ao_oom(AO_ALLOC_MAX);
	p = calloc(count ? count : 1, size ? size : 1);
	if (p == NULL)
		ao_oom(count * size);
	return p;
}

/* realloc that never returns NULL. */
void *
ao_realloc(void *p, size_t size)
{
	if (size > AO_ALLOC_MAX)
		ao_oom(size);
	p = realloc(p, size ? size : 1);
	if (p == NULL)
		ao_oom(size);
	return p;
}

/* NUL-terminated copy of n bytes of s. */
char *
ao_strndup(const char *s, size_t n)
{
	char	   *p;

	if (n >= AO_ALLOC_MAX)
		ao_oom(n);
	p = ao_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* Ask the interrupt hook; remember a nonzero answer (see ao_core.h). */
int
ao_interrupt_poll(void)
{
	if (ao_interrupt_check != NULL && ao_interrupt_check())
	{
		interrupt_fired = 1;
		return 1;
	}
	return 0;
}

/* Did a poll report an interrupt since the last ao_interrupt_clear()? */
int
ao_interrupted(void)
{
	return interrupt_fired;
}

/* Forget a reported interrupt. */
void
ao_interrupt_clear(void)
{
	interrupt_fired = 0;
}

/* Ensure room for extra more bytes plus a terminating NUL. */
static void
ao_buf_reserve(ao_buf *b, size_t extra)
{
	size_t		need;

	if (extra > AO_ALLOC_MAX)
		ao_oom(extra);			/* before the sum below could overflow */
	need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	if (need > AO_ALLOC_MAX)
		ao_oom(need);
	{
		size_t		cap = b->cap ? b->cap : 64;

		while (cap < need)
			cap *= 2;
		b->data = ao_realloc(b->data, cap);
		b->cap = cap;
	}
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
		size_t		cap = p->cap ? p->cap * 2 : 8;

		p->paths = ao_realloc(p->paths, cap * sizeof(char *));
		p->messages = ao_realloc(p->messages, cap * sizeof(char *));
		p->cap = cap;
	}
	path = path ? path : "";
	message = message ? message : "";
	p->paths[p->n] = ao_strndup(path, strlen(path));
	p->messages[p->n] = ao_strndup(message, strlen(message));
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
