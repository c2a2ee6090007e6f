/*-------------------------------------------------------------------------
 *
 * ao_secret.c
 *	  Scrubbing credential values out of text, and telling literal HTTP
 *	  headers that look like credentials.
 *
 * The secrets are compiled into an Aho-Corasick automaton: a trie of the
 * secrets' bytes with failure links (the longest proper suffix of a node's
 * string that is also in the trie) and dictionary links (the nearest node
 * on the failure chain that ends a secret). One pass over the text then
 * finds every occurrence of every secret by its end position.
 *
 * Replacements go from left to right, the longest match first at each
 * position, but the automaton learns of a match only at its end. So the
 * longest match known to start at each position is kept in a ring of
 * maxlen slots (maxlen = the longest secret): once the scan has passed
 * position p + maxlen - 1, no further match can start at p, and p is
 * decided -- a new replacement starts there, an earlier one that covers p
 * grows to the end of a match starting at p, or p is copied. A slot is
 * decided, and cleared, before the scan can write to it again.
 *
 * Nothing here aborts: an allocation failure is returned to the caller,
 * which must not fall back to the unscrubbed text.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_secret.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_secret.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One trie edge; a node's edges form a singly linked list. */
typedef struct ac_edge
{
	int32_t		child;
	int32_t		next;			/* next edge of the same node, -1 */
	unsigned char byte;
} ac_edge;

/* One trie node. */
typedef struct ac_node
{
	int32_t		first;			/* first edge, -1 */
	int32_t		fail;			/* failure link (root: 0) */
	int32_t		dict;			/* nearest secret-ending node on the
								 * failure chain, -1 */
	size_t		len;			/* length of the secret ending here, 0 */
} ac_node;

/* The automaton of a set of secrets. */
typedef struct ac_machine
{
	ac_node    *nodes;
	size_t		nnodes;
	ac_edge    *edges;
	size_t		nedges;
	int32_t		root_next[256]; /* the root's transitions, -1 = stay */
	size_t		maxlen;			/* longest secret; 0 = no secret at all */
} ac_machine;

/* Child of node on byte c, or -1. */
static int32_t
ac_child(const ac_machine *m, int32_t node, unsigned char c)
{
	if (node == 0)
		return m->root_next[c];
	for (int32_t e = m->nodes[node].first; e >= 0; e = m->edges[e].next)
		if (m->edges[e].byte == c)
			return m->edges[e].child;
	return -1;
}

/* The state after reading byte c in state node. */
static int32_t
ac_step(const ac_machine *m, int32_t node, unsigned char c)
{
	for (;;)
	{
		int32_t		next = ac_child(m, node, c);

		if (next >= 0)
			return next;
		if (node == 0)
			return 0;
		node = m->nodes[node].fail;
	}
}

/* Release what ac_build allocated. */
static void
ac_free(ac_machine *m)
{
	free(m->nodes);
	free(m->edges);
	m->nodes = NULL;
	m->edges = NULL;
}

/*
 * Compile the non-empty secrets into m. Returns 0, or -1 when memory ran
 * out (or the secrets are too long to index); m then holds nothing to free.
 * With no usable secret, m->maxlen is 0 and nothing is allocated.
 */
static int
ac_build(ac_machine *m, const char *const *secrets, size_t nsecrets)
{
	size_t		total = 0;
	int32_t    *queue;
	size_t		head = 0;
	size_t		tail = 0;

	memset(m, 0, sizeof(*m));
	memset(m->root_next, 0xff, sizeof(m->root_next));	/* all -1 */
	for (size_t i = 0; i < nsecrets; i++)
	{
		size_t		n = secrets && secrets[i] ? strlen(secrets[i]) : 0;

		if (n > (size_t) INT32_MAX - 1 - total)
			return -1;
		total += n;
		if (n > m->maxlen)
			m->maxlen = n;
	}
	if (total == 0)
		return 0;

	m->nodes = malloc((total + 1) * sizeof(ac_node));
	m->edges = malloc(total * sizeof(ac_edge));
	queue = malloc((total + 1) * sizeof(int32_t));
	if (m->nodes == NULL || m->edges == NULL || queue == NULL)
	{
		free(queue);
		ac_free(m);
		return -1;
	}
	m->nodes[0].first = -1;
	m->nodes[0].fail = 0;
	m->nodes[0].dict = -1;
	m->nodes[0].len = 0;
	m->nnodes = 1;

	/* the trie */
	for (size_t i = 0; i < nsecrets; i++)
	{
		const unsigned char *s = (const unsigned char *) (secrets ? secrets[i] : NULL);
		int32_t		node = 0;
		size_t		n;

		if (s == NULL || *s == '\0')
			continue;
		for (n = 0; s[n]; n++)
		{
			int32_t		child = ac_child(m, node, s[n]);

			if (child < 0)
			{
				ac_edge    *e = &m->edges[m->nedges];

				child = (int32_t) m->nnodes++;
				m->nodes[child].first = -1;
				m->nodes[child].fail = 0;
				m->nodes[child].dict = -1;
				m->nodes[child].len = 0;
				e->child = child;
				e->byte = s[n];
				if (node == 0)
				{
					e->next = -1;
					m->root_next[s[n]] = child;
				}
				else
				{
					e->next = m->nodes[node].first;
					m->nodes[node].first = (int32_t) m->nedges;
				}
				m->nedges++;
			}
			node = child;
		}
		m->nodes[node].len = n;
	}

	/* failure and dictionary links, breadth first (shorter strings first) */
	for (int c = 0; c < 256; c++)
		if (m->root_next[c] >= 0)
			queue[tail++] = m->root_next[c];
	while (head < tail)
	{
		int32_t		u = queue[head++];

		for (int32_t e = m->nodes[u].first; e >= 0; e = m->edges[e].next)
		{
			int32_t		v = m->edges[e].child;
			int32_t		f = ac_step(m, m->nodes[u].fail, m->edges[e].byte);

			/* u is not the root, so f is a proper suffix: never v itself */
			m->nodes[v].fail = f;
			m->nodes[v].dict = m->nodes[f].len ? f : m->nodes[f].dict;
			queue[tail++] = v;
		}
	}
	free(queue);
	return 0;
}

/* A growable output buffer whose allocation failures are reported. */
typedef struct out_buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} out_buf;

/* Append n bytes; -1 when memory ran out. */
static int
out_append(out_buf *b, const char *s, size_t n)
{
	if (n > SIZE_MAX - 1 - b->len)
		return -1;
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 64;
		char	   *data;

		while (cap < b->len + n + 1)
			cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
		data = realloc(b->data, cap);
		if (data == NULL)
			return -1;
		b->data = data;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/* State of one scrub: where the copy stands and what is replaced. */
typedef struct scrub_state
{
	const char *text;
	size_t		len;
	size_t	   *ring;			/* longest match starting at p, at p % maxlen */
	size_t		maxlen;
	size_t		copied;			/* text before this is in out */
	size_t		covered;		/* positions before this are replaced */
	out_buf		out;			/* data NULL until the first replacement */
} scrub_state;

/*
 * Decide position p, whose matches are all known: replace the longest
 * secret starting there, or, when an earlier replacement covers p, let
 * that replacement grow to the end of this match. Clears p's ring slot.
 * -1 when memory ran out.
 */
static int
scrub_decide(scrub_state *st, size_t p)
{
	size_t	   *slot = &st->ring[p % st->maxlen];
	size_t		n = *slot;

	*slot = 0;
	if (n == 0)
		return 0;
	if (p < st->covered)
	{
		/* overlapping occurrences: none of their bytes may show */
		if (p + n > st->covered)
			st->copied = st->covered = p + n;
		return 0;
	}
	if (st->out.data == NULL)
	{
		/* first replacement: room for the text as it is, plus a little */
		size_t		cap = st->len < SIZE_MAX - 64 ? st->len + 64 : st->len;

		st->out.data = malloc(cap);
		if (st->out.data == NULL)
			return -1;
		st->out.cap = cap;
		st->out.len = 0;
		st->out.data[0] = '\0';
	}
	if (out_append(&st->out, st->text + st->copied, p - st->copied) != 0 ||
		out_append(&st->out, AO_SECRET_REDACTED, strlen(AO_SECRET_REDACTED)) != 0)
		return -1;
	st->copied = st->covered = p + n;
	return 0;
}

/* See ao_secret.h. */
char *
ao_scrub_secrets(const char *text, size_t len,
				 const char *const *secrets, size_t nsecrets, size_t *out_len)
{
	ac_machine	m;
	scrub_state st;
	int32_t		state = 0;
	size_t		next = 0;		/* next position to decide */

	if (out_len)
		*out_len = len;
	if (text == NULL || len == 0)
		return NULL;
	if (ac_build(&m, secrets, nsecrets) != 0)
		goto failed;
	if (m.maxlen == 0)
		return NULL;

	memset(&st, 0, sizeof(st));
	st.text = text;
	st.len = len;
	st.maxlen = m.maxlen;
	st.ring = calloc(m.maxlen, sizeof(size_t));
	if (st.ring == NULL)
	{
		ac_free(&m);
		goto failed;
	}

	for (size_t j = 0; j < len; j++)
	{
		int32_t		t;

		state = ac_step(&m, state, (unsigned char) text[j]);
		/* every secret ending at j: the longest per start position */
		for (t = m.nodes[state].len ? state : m.nodes[state].dict; t >= 0;
			 t = m.nodes[t].dict)
		{
			size_t		n = m.nodes[t].len;
			size_t	   *slot = &st.ring[(j + 1 - n) % st.maxlen];

			if (*slot < n)
				*slot = n;
		}
		/* no match can start at j + 1 - maxlen or before any more */
		if (j + 1 >= st.maxlen)
		{
			for (; next <= j + 1 - st.maxlen; next++)
				if (scrub_decide(&st, next) != 0)
					goto failed_scan;
		}
	}
	for (; next < len; next++)
		if (scrub_decide(&st, next) != 0)
			goto failed_scan;

	free(st.ring);
	ac_free(&m);
	if (st.out.data == NULL)
		return NULL;
	if (out_append(&st.out, text + st.copied, len - st.copied) != 0)
	{
		free(st.out.data);
		goto failed;
	}
	if (out_len)
		*out_len = st.out.len;
	return st.out.data;

failed_scan:
	free(st.out.data);
	free(st.ring);
	ac_free(&m);
failed:
	if (out_len)
		*out_len = AO_SCRUB_FAILED;
	errno = ENOMEM;
	return NULL;
}

/* See ao_secret.h. */
int
ao_contains_secret(const char *text, size_t len,
				   const char *const *secrets, size_t nsecrets)
{
	ac_machine	m;
	int32_t		state = 0;
	int			found = 0;

	if (text == NULL || len == 0)
		return 0;
	if (ac_build(&m, secrets, nsecrets) != 0)
	{
		errno = ENOMEM;
		return -1;
	}
	if (m.maxlen == 0)
		return 0;
	for (size_t j = 0; j < len && !found; j++)
	{
		state = ac_step(&m, state, (unsigned char) text[j]);
		found = m.nodes[state].len > 0 || m.nodes[state].dict >= 0;
	}
	ac_free(&m);
	return found;
}

/* ASCII lower case, independent of the locale. */
static unsigned char
ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char) (c - 'A' + 'a') : c;
}

/* Does s start with prefix, ASCII case-insensitively? */
static int
starts_with_ci(const char *s, const char *prefix)
{
	for (; *prefix; s++, prefix++)
		if (ascii_lower((unsigned char) *s) != ascii_lower((unsigned char) *prefix))
			return 0;
	return 1;
}

/* Is s equal to t, ASCII case-insensitively? */
static int
equals_ci(const char *s, const char *t)
{
	return starts_with_ci(s, t) && s[strlen(t)] == '\0';
}

/* Does s contain needle (lower case), ASCII case-insensitively? */
static int
contains_ci(const char *s, const char *needle)
{
	for (; *s; s++)
		if (starts_with_ci(s, needle))
			return 1;
	return 0;
}

/* See ao_secret.h. */
int
ao_header_looks_secret(const char *name, const char *value)
{
	static const char *const names[] = {
		"authorization", "proxy-authorization", "cookie", "set-cookie",
		"x-api-key", "api-key", "x-auth-token", NULL
	};
	static const char *const name_parts[] = {
		"token", "secret", "key", "auth", "password", "passwd", "cookie", NULL
	};
	static const char *const schemes[] = {
		"bearer ", "basic ", "digest ", "token ", NULL
	};
	static const char *const key_prefixes[] = {
		"sk-", "sk_", "ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_",
		"glpat-", "xox", NULL
	};

	if (name == NULL)
		name = "";
	if (value == NULL)
		value = "";
	for (const char *const *n = names; *n; n++)
		if (equals_ci(name, *n))
			return 1;
	for (const char *const *n = name_parts; *n; n++)
		if (contains_ci(name, *n))
			return 1;

	while (*value == ' ' || *value == '\t')
		value++;
	for (const char *const *s = schemes; *s; s++)
		if (starts_with_ci(value, *s))
			return 1;
	for (const char *const *p = key_prefixes; *p; p++)
		if (strncmp(value, *p, strlen(*p)) == 0)
			return 1;
	return 0;
}
