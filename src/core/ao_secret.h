/*-------------------------------------------------------------------------
 *
 * ao_secret.h
 *	  Keeping credential values out of stored and reported text
 *	  (PostgreSQL-free).
 *
 * Credentials (model API keys, http tools' headers_env values) must never
 * reach a table, chunk, notification, error text or log line (DESIGN.md
 * section 9). Text that may echo them -- a provider's error body, a
 * response, a message -- goes through ao_scrub_secrets, which replaces
 * every occurrence of every secret value by "[REDACTED]".
 *
 * Matching: all secrets are searched at once with an Aho-Corasick
 * automaton, so the time is linear in the text plus the secrets plus the
 * number of matches (at most the text length times the number of secrets),
 * never quadratic in the text. At each position the longest secret that
 * occurs there is replaced (a secret that is a prefix of another one
 * does not split it). No byte of any occurrence is ever left: occurrences
 * that overlap ("aa" in "aaa", or "ab" and "bcd" in "abcd") become one
 * "[REDACTED]", while occurrences that only touch ("abcabc") are replaced
 * one by one. Text is binary-safe (it may hold NUL bytes); secrets are C
 * strings, and NULL or empty ones are ignored.
 *
 * Allocation failure: unlike the rest of the core, which aborts, these
 * functions report it (ao_scrub_secrets: NULL with *out_len set to
 * AO_SCRUB_FAILED; ao_contains_secret: -1), so that the server can raise
 * an ERROR instead of passing the unscrubbed text on.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_secret.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_SECRET_H
#define AO_SECRET_H

#include <stddef.h>

/* What replaces each occurrence of a secret. */
#define AO_SECRET_REDACTED "[REDACTED]"

/* *out_len of ao_scrub_secrets when memory ran out. */
#define AO_SCRUB_FAILED ((size_t) -1)

/*
 * Return a malloc'd, NUL-terminated copy of the len bytes at text in which
 * every occurrence of every non-empty secret is replaced by "[REDACTED]"
 * (see the file header for overlapping secrets), with its length (without
 * the NUL) in *out_len; the caller frees it. Return NULL when nothing was
 * replaced (the caller keeps the original; *out_len is then len), or when
 * memory ran out (*out_len is then AO_SCRUB_FAILED and errno ENOMEM).
 * out_len may be NULL when the caller does not need to tell those apart.
 */
extern char *ao_scrub_secrets(const char *text, size_t len,
							  const char *const *secrets, size_t nsecrets,
							  size_t *out_len);

/*
 * 1 when the len bytes at text hold any non-empty secret, 0 when not, -1
 * when memory ran out (errno ENOMEM).
 */
extern int	ao_contains_secret(const char *text, size_t len,
							   const char *const *secrets, size_t nsecrets);

/*
 * Does a literal HTTP header (as written in a tool or model spec) look
 * like a credential, which belongs in an environment variable instead?
 * True for the names Authorization, Proxy-Authorization, Cookie,
 * Set-Cookie, X-Api-Key, Api-Key, X-Auth-Token and any name containing
 * "token", "secret", "key", "auth", "password", "passwd" or "cookie"
 * (ASCII case-insensitive), and for values that start (after blanks) with
 * an authentication scheme ("Bearer ", "Basic ", "Digest ", "Token ",
 * case-insensitive) or a well-known key prefix ("sk-", "sk_", "ghp_",
 * "gho_", "ghs_", "ghu_", "ghr_", "github_pat_", "glpat-", "xox").
 * NULL name or value counts as empty.
 */
extern int	ao_header_looks_secret(const char *name, const char *value);

#endif							/* AO_SECRET_H */
