/*-------------------------------------------------------------------------
 *
 * ao_core.h
 *	  Shared vocabulary of agentorch's PostgreSQL-free core.
 *
 * The core (src/core) never includes postgres.h: it is plain C99 on top of
 * json-c, libyaml and PCRE2, unit-tested and sanitized outside the server.
 * Every validator in the core reports problems through one callback shape,
 * ao_problem_fn, receiving a JSON-pointer path ("" for the document root,
 * "/steps/2/depends_on/0" for a nested value) and a human-readable message.
 * The extension layer turns those into result rows or an ereport DETAIL.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_core.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_CORE_H
#define AO_CORE_H

#include <stddef.h>

/*
 * Out of memory. Every allocation of the core goes through ao_malloc,
 * ao_calloc, ao_realloc or ao_strndup, which call ao_oom(size) when the
 * allocator fails or the request is absurd (above AO_ALLOC_MAX). ao_oom
 * calls the handler installed with ao_set_oom_handler and aborts if there
 * is none or it returns. The extension installs a handler that raises an
 * ERROR (a longjmp: whatever the core had malloc'd at that point leaks,
 * which beats restarting the cluster); the unit tests and command-line
 * programs keep the default, abort(). json-c's own allocations are not
 * covered (the core treats a NULL from json-c as ao_oom(0)).
 */
#define AO_ALLOC_MAX ((size_t) 1 << 40)

typedef void (*ao_oom_handler) (size_t size);

extern void ao_set_oom_handler(ao_oom_handler handler);
extern void ao_oom(size_t size) __attribute__((noreturn));
extern void *ao_malloc(size_t size);
extern void *ao_calloc(size_t count, size_t size);
extern void *ao_realloc(void *p, size_t size);
extern char *ao_strndup(const char *s, size_t n);

/*
 * Interrupts. Long loops of the core (validator per schema and item, YAML
 * per event, templates, DAG and graph algorithms) call ao_interrupt_poll();
 * when the hook ao_interrupt_check is set and returns nonzero, the poll
 * returns nonzero and the running core function stops and returns through
 * its normal error path with the message AO_INTERRUPTED_MESSAGE (never a
 * longjmp: the core holds malloc'd state). The poll also sets a flag,
 * read with ao_interrupted() and cleared with ao_interrupt_clear(), so
 * the caller can tell "interrupted" from an ordinary error: the server
 * clears it before a core call, and afterwards, when it is set, frees the
 * core's results and calls CHECK_FOR_INTERRUPTS() (and runs the call
 * again if that returned, i.e. the interrupt was a harmless one).
 */
#define AO_INTERRUPTED_MESSAGE "interrupted"

typedef int (*ao_interrupt_fn) (void);

extern ao_interrupt_fn ao_interrupt_check;
extern int	ao_interrupt_poll(void);
extern int	ao_interrupted(void);
extern void ao_interrupt_clear(void);

/*
 * Receives one problem. Both strings are only valid during the call; copy
 * them if they must outlive it. The callback must not longjmp out of the
 * core (the extension layer collects problems and raises afterwards).
 */
typedef void (*ao_problem_fn) (void *arg, const char *path, const char *message);

/*
 * A growable, malloc-backed string buffer, used for paths and messages.
 */
typedef struct ao_buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} ao_buf;

extern void ao_buf_init(ao_buf *b);
extern void ao_buf_free(ao_buf *b);
extern void ao_buf_reset(ao_buf *b);
extern void ao_buf_truncate(ao_buf *b, size_t len);
extern void ao_buf_append(ao_buf *b, const char *s);
extern void ao_buf_append_n(ao_buf *b, const char *s, size_t n);
extern void ao_buf_printf(ao_buf *b, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

/*
 * Append one JSON-pointer reference token ("/" + token, with "~" and "/"
 * escaped as "~0" and "~1", RFC 6901) or an array index.
 */
extern void ao_jsonptr_push_key(ao_buf *path, const char *key);
extern void ao_jsonptr_push_index(ao_buf *path, size_t index);

/* Number of Unicode code points in a UTF-8 string of byte length len. */
extern size_t ao_utf8_length(const char *s, size_t len);

/*
 * A malloc-backed list of problems; ao_problems_add has the ao_problem_fn
 * shape, so a list can be handed to any validator as its callback argument.
 */
typedef struct ao_problems
{
	size_t		n;
	size_t		cap;
	char	  **paths;
	char	  **messages;
} ao_problems;

extern void ao_problems_init(ao_problems *p);
extern void ao_problems_add(void *list, const char *path, const char *message);
extern void ao_problems_free(ao_problems *p);

#endif							/* AO_CORE_H */
