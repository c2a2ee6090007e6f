/*-------------------------------------------------------------------------
 *
 * test_secret.c
 *	  Unit tests of ao_secret: scrubbing secret values out of text, telling
 *	  whether text holds one, and judging literal HTTP headers.
 *
 * Besides hand-written cases, the scrubber is compared with a direct
 * statement of its contract on random texts and secrets over a tiny
 * alphabet (where prefixes, suffixes and overlaps are frequent): every
 * occurrence of every secret is an interval, overlapping intervals merge,
 * and each merged interval becomes one "[REDACTED]". Large inputs check
 * the time stays linear in the text.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/test_secret.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_secret.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MB (1024 * 1024)

/* ---------------------------------------------------------------------
 * helpers
 * --------------------------------------------------------------------- */

/*
 * The contract, stated directly and slowly: the scrubbed text, or NULL when
 * no secret occurs. Quadratic in the worst case; only for small inputs and
 * for large inputs with few short secrets.
 */
static char *
reference_scrub(const char *text, size_t len, const char *const *secrets,
				size_t nsecrets, size_t *out_len)
{
	char	   *out = malloc(len * 10 + 11);
	size_t		o = 0;
	size_t		copied = 0;
	size_t		end = 0;		/* end of the current merged interval */
	int			open = 0;
	int			any = 0;

	if (out == NULL)
		abort();
	for (size_t p = 0; p < len; p++)
	{
		size_t		longest = 0;

		for (size_t k = 0; k < nsecrets; k++)
		{
			size_t		n = secrets[k] ? strlen(secrets[k]) : 0;

			if (n > 0 && n <= len - p && n > longest && memcmp(text + p, secrets[k], n) == 0)
				longest = n;
		}
		if (longest == 0)
			continue;
		any = 1;
		if (open && p < end)
		{
			if (p + longest > end)
				end = p + longest;
			continue;
		}
		/* close the previous interval, open a new one */
		if (open)
			copied = end;
		memcpy(out + o, text + copied, p - copied);
		o += p - copied;
		memcpy(out + o, "[REDACTED]", 10);
		o += 10;
		open = 1;
		end = p + longest;
	}
	if (!any)
	{
		free(out);
		*out_len = len;
		return NULL;
	}
	copied = end;
	memcpy(out + o, text + copied, len - copied);
	o += len - copied;
	out[o] = '\0';
	*out_len = o;
	return out;
}

/* Scrub a C string with a NULL-terminated list of secrets; compare with want (NULL = nothing replaced). */
static void
expect_scrub(const char *name, const char *text, const char *const *secrets, const char *want)
{
	size_t		n = 0;
	size_t		len;
	char	   *got;
	char		label[300];

	for (n = 0; secrets && secrets[n]; n++)
		;
	got = ao_scrub_secrets(text, strlen(text), secrets, n, &len);
	if (want == NULL)
	{
		snprintf(label, sizeof(label), "scrub: %s: nothing replaced", name);
		if (!UNIT_OK(got == NULL && len == strlen(text), label))
			printf("#   got: %s (len %zu)\n", got ? got : "(null)", len);
	}
	else
	{
		snprintf(label, sizeof(label), "scrub: %s", name);
		if (UNIT_STREQ(got, want, label))
		{
			snprintf(label, sizeof(label), "scrub: %s: length", name);
			UNIT_OK(len == strlen(want) && got[len] == '\0', label);
		}
	}
	snprintf(label, sizeof(label), "contains: %s", name);
	UNIT_OK(ao_contains_secret(text, strlen(text), secrets, n) == (want != NULL), label);
	free(got);
}

/* A deterministic pseudo-random generator (xorshift), so failures repeat. */
static unsigned long long rng_state = 88172645463325252ULL;

static unsigned
rng(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned) (rng_state % n);
}

/* Seconds of processor time since start. */
static double
seconds_since(clock_t start)
{
	return (double) (clock() - start) / CLOCKS_PER_SEC;
}

/* ---------------------------------------------------------------------
 * ao_scrub_secrets / ao_contains_secret: cases
 * --------------------------------------------------------------------- */

static void
test_scrub_cases(void)
{
	static const char *const key[] = {"sk-abc123", NULL};
	static const char *const prefix_first[] = {"sk-abc", "sk-abcdef", NULL};
	static const char *const prefix_last[] = {"sk-abcdef", "sk-abc", NULL};
	static const char *const suffix[] = {"abcdef", "def", NULL};
	static const char *const overlap[] = {"ab", "bcd", NULL};
	static const char *const aa[] = {"aa", NULL};
	static const char *const abc[] = {"abc", NULL};
	static const char *const a[] = {"a", NULL};
	static const char *const two[] = {"alpha", "omega", NULL};
	static const char *const dup[] = {"key1", "key1", NULL};
	static const char *const empties[] = {"", "", NULL};
	static const char *const with_empty[] = {"", "tok", "", NULL};
	static const char *const redacted[] = {"[REDACTED]", NULL};
	static const char *const utf8[] = {"\xc3\xa9t\xc3\xa9", NULL};
	size_t		len;
	char	   *got;

	expect_scrub("no occurrence", "nothing to see here", key, NULL);
	expect_scrub("the whole text", "sk-abc123", key, "[REDACTED]");
	expect_scrub("at the start", "sk-abc123 is the key", key, "[REDACTED] is the key");
	expect_scrub("at the end", "the key is sk-abc123", key, "the key is [REDACTED]");
	expect_scrub("in the middle", "{\"error\": \"bad key sk-abc123.\"}", key,
				 "{\"error\": \"bad key [REDACTED].\"}");
	expect_scrub("several occurrences", "sk-abc123 and sk-abc123 and sk-abc123", key,
				 "[REDACTED] and [REDACTED] and [REDACTED]");
	expect_scrub("adjacent repeats stay separate", "abcabcabc", abc,
				 "[REDACTED][REDACTED][REDACTED]");
	expect_scrub("a partial occurrence is kept", "sk-abc12 sk-abc1234", key,
				 "sk-abc12 [REDACTED]4");
	expect_scrub("a prefix secret listed first: the longest wins", "x sk-abcdef y sk-abc z sk-abcde", prefix_first,
				 "x [REDACTED] y [REDACTED] z [REDACTED]de");
	expect_scrub("a prefix secret listed last: the same", "x sk-abcdef y sk-abc z sk-abcde", prefix_last,
				 "x [REDACTED] y [REDACTED] z [REDACTED]de");
	expect_scrub("a suffix secret", "abcdefdef def", suffix, "[REDACTED][REDACTED] [REDACTED]");
	expect_scrub("overlapping secrets merge", "xabcdx ab bcd abcd", overlap,
				 "x[REDACTED]x [REDACTED] [REDACTED] [REDACTED]");
	expect_scrub("a self-overlapping secret merges", "aaa aa aaaa a", aa,
				 "[REDACTED] [REDACTED] [REDACTED] a");
	expect_scrub("one-byte secret", "banana", a, "b[REDACTED]n[REDACTED]n[REDACTED]");
	expect_scrub("two secrets", "alpha to omega, omega to alpha", two,
				 "[REDACTED] to [REDACTED], [REDACTED] to [REDACTED]");
	expect_scrub("a duplicated secret", "key1key1", dup, "[REDACTED][REDACTED]");
	expect_scrub("empty secrets are ignored", "some text", empties, NULL);
	expect_scrub("empty secrets among others", "a tok b", with_empty, "a [REDACTED] b");
	expect_scrub("the marker itself as a secret", "[REDACTED]", redacted, "[REDACTED]");
	expect_scrub("UTF-8 secret", "caf\xc3\xa9 \xc3\xa9t\xc3\xa9!", utf8, "caf\xc3\xa9 [REDACTED]!");
	expect_scrub("no secrets", "sk-abc123", NULL, NULL);
	expect_scrub("empty text", "", key, NULL);

	/* NULL secrets, a NULL list, NULL text, NULL out_len */
	{
		const char *const with_null[] = {NULL, "tok", NULL};

		got = ao_scrub_secrets("a tok", 5, with_null, 2, &len);
		UNIT_STREQ(got, "a [REDACTED]", "scrub: NULL entries are ignored");
		free(got);
		len = 99;
		got = ao_scrub_secrets("a tok", 5, NULL, 3, &len);
		UNIT_OK(got == NULL && len == 5, "scrub: a NULL list with a count is no secrets");
		len = 99;
		got = ao_scrub_secrets(NULL, 0, key, 1, &len);
		UNIT_OK(got == NULL && len == 0, "scrub: NULL text of length 0");
		got = ao_scrub_secrets("a tok", 5, with_null, 2, NULL);
		UNIT_STREQ(got, "a [REDACTED]", "scrub: out_len may be NULL");
		free(got);
		UNIT_OK(ao_scrub_secrets("a tik", 5, with_null, 2, NULL) == NULL,
				"scrub: out_len may be NULL when nothing is replaced");
		UNIT_OK(ao_contains_secret("a tok", 5, with_null, 2) == 1, "contains: NULL entries are ignored");
		UNIT_OK(ao_contains_secret("a tok", 5, NULL, 0) == 0, "contains: no secrets");
		UNIT_OK(ao_contains_secret(NULL, 0, key, 1) == 0, "contains: NULL text");
	}

	/* binary-safe: NUL bytes, and the length rather than the NUL decides */
	{
		static const char text[] = "a\0sk-abc123\0b";
		size_t		tlen = sizeof(text) - 1;

		got = ao_scrub_secrets(text, tlen, key, 1, &len);
		UNIT_OK(got != NULL && len == 14 && memcmp(got, "a\0[REDACTED]\0b", 14) == 0 && got[14] == '\0',
				"scrub: NUL bytes around a secret are kept");
		free(got);
		UNIT_OK(ao_contains_secret(text, tlen, key, 1) == 1, "contains: after a NUL byte");
		got = ao_scrub_secrets("sk-abc123", 8, key, 1, &len);
		UNIT_OK(got == NULL && len == 8, "scrub: a secret cut by the length does not match");
		UNIT_OK(ao_contains_secret("sk-abc123", 8, key, 1) == 0, "contains: cut by the length");
		got = ao_scrub_secrets("xsk-abc123yz", 10, key, 1, &len);
		UNIT_OK(got != NULL && len == 11 && strcmp(got, "x[REDACTED]") == 0,
				"scrub: bytes past the length are not copied");
		free(got);
		got = ao_scrub_secrets("\xff\xfe" "sk-abc123" "\x80", 12, key, 1, &len);
		UNIT_OK(got != NULL && len == 13 && memcmp(got, "\xff\xfe[REDACTED]\x80", 13) == 0,
				"scrub: bytes above 127");
		free(got);
	}

	/* a secret longer than the text */
	expect_scrub("a secret longer than the text", "sk-", key, NULL);
}

/* ---------------------------------------------------------------------
 * ao_scrub_secrets: against the reference
 * --------------------------------------------------------------------- */

static void
test_scrub_random(void)
{
	int			mismatches = 0;
	int			contains_mismatches = 0;
	int			iterations = 20000;

	for (int it = 0; it < iterations; it++)
	{
		char		secret_store[4][8];
		const char *secrets[4];
		size_t		nsecrets = 1 + rng(4);
		char		text[48];
		size_t		len = rng(sizeof(text));
		size_t		got_len;
		size_t		want_len;
		char	   *got;
		char	   *want;

		for (size_t k = 0; k < nsecrets; k++)
		{
			size_t		n = rng(6);	/* 0: an empty secret */

			for (size_t i = 0; i < n; i++)
				secret_store[k][i] = "abc"[rng(3)];
			secret_store[k][n] = '\0';
			secrets[k] = secret_store[k];
		}
		for (size_t i = 0; i < len; i++)
			text[i] = "abc\0"[rng(4)];
		got = ao_scrub_secrets(text, len, secrets, nsecrets, &got_len);
		want = reference_scrub(text, len, secrets, nsecrets, &want_len);
		if ((got == NULL) != (want == NULL) || got_len != want_len ||
			(got && memcmp(got, want, want_len + 1) != 0))
		{
			if (mismatches++ == 0)
			{
				printf("# first mismatch: text \"%.*s\", secrets", (int) len, text);
				for (size_t k = 0; k < nsecrets; k++)
					printf(" \"%s\"", secrets[k]);
				printf("\n#   got:  %s\n#   want: %s\n", got ? got : "(null)", want ? want : "(null)");
			}
		}
		if (ao_contains_secret(text, len, secrets, nsecrets) != (want != NULL))
			contains_mismatches++;
		free(got);
		free(want);
	}
	UNIT_OK(mismatches == 0, "scrub: 20000 random cases agree with the reference");
	UNIT_OK(contains_mismatches == 0, "contains: 20000 random cases agree with the reference");
}

/* ---------------------------------------------------------------------
 * large inputs
 * --------------------------------------------------------------------- */

static void
test_scrub_large(void)
{
	char	   *text = malloc(MB);
	char	   *got;
	char	   *want;
	size_t		len;
	size_t		want_len;
	clock_t		start;
	char		near[101];

	if (text == NULL)
		abort();

	/* 1 MB of JSON-ish text with secrets sprinkled in, against the reference */
	{
		static const char *const secrets[] = {"sk-live-0123456789", "sk-live-01", "Bearer tok-42"};

		for (size_t i = 0; i < MB; i++)
			text[i] = " abcdefghijklmnopqrstuvwxyz{}\":,"[rng(32)];
		for (size_t at = 1000; at + 40 < MB; at += 10007)
		{
			const char *s = secrets[rng(3)];

			memcpy(text + at, s, strlen(s));
		}
		start = clock();
		got = ao_scrub_secrets(text, MB, secrets, 3, &len);
		printf("# 1 MB with sprinkled secrets: %.3f s\n", seconds_since(start));
		want = reference_scrub(text, MB, secrets, 3, &want_len);
		UNIT_OK(got != NULL && want != NULL && len == want_len && memcmp(got, want, len + 1) == 0,
				"large: 1 MB with secrets sprinkled in agrees with the reference");
		UNIT_OK(ao_contains_secret(text, MB, secrets, 3) == 1, "large: contains in 1 MB");
		free(got);
		free(want);
	}

	/* 1 MB of one byte against a near miss: no match, and no quadratic time */
	memset(text, 'a', MB);
	memset(near, 'a', 99);
	near[99] = 'b';
	near[100] = '\0';
	{
		const char *const secrets[] = {near, "aab", "ab"};

		start = clock();
		got = ao_scrub_secrets(text, MB, secrets, 3, &len);
		UNIT_OK(got == NULL && len == MB, "large: 1 MB of near misses, nothing replaced");
		UNIT_OK(ao_contains_secret(text, MB, secrets, 3) == 0, "large: 1 MB of near misses, not contained");
		printf("# 1 MB of near misses: %.3f s\n", seconds_since(start));
		UNIT_OK(seconds_since(start) < 5.0, "large: near misses take linear time");
		free(got);
		text[MB - 1] = 'b';
		got = ao_scrub_secrets(text, MB, secrets, 3, &len);
		UNIT_OK(got != NULL && len == MB - 100 + 10 && strcmp(got + MB - 100, "[REDACTED]") == 0 &&
				got[0] == 'a' && got[MB - 101] == 'a',
				"large: the longest secret at the very end of 1 MB");
		free(got);
	}

	/* 1 MB of a self-overlapping secret: one replacement */
	memset(text, 'a', MB);
	{
		static const char *const secrets[] = {"aa"};

		start = clock();
		got = ao_scrub_secrets(text, MB, secrets, 1, &len);
		UNIT_OK(got != NULL && len == 10 && strcmp(got, "[REDACTED]") == 0,
				"large: 1 MB of overlapping occurrences is one [REDACTED]");
		free(got);
	}

	/* 1 MB of a one-byte secret: the output grows to 10 MB */
	{
		static const char *const secrets[] = {"a"};
		int			ok;

		start = clock();
		got = ao_scrub_secrets(text, MB, secrets, 1, &len);
		ok = got != NULL && len == (size_t) 10 * MB && got[len] == '\0';
		for (size_t i = 0; ok && i < len; i += 10)
			ok = memcmp(got + i, "[REDACTED]", 10) == 0;
		UNIT_OK(ok, "large: 1 MB of a one-byte secret becomes 10 MB of [REDACTED]");
		printf("# 1 MB of one-byte secrets: %.3f s\n", seconds_since(start));
		UNIT_OK(seconds_since(start) < 5.0, "large: many replacements take linear time");
		free(got);
	}

	/* many secrets, one long secret */
	{
		char	  **many = malloc(1000 * sizeof(char *));
		char	   *big = malloc(64 * 1024 + 1);

		if (many == NULL || big == NULL)
			abort();
		for (int i = 0; i < 1000; i++)
		{
			many[i] = malloc(32);
			if (many[i] == NULL)
				abort();
			snprintf(many[i], 32, "secret-%04d-value", i);
		}
		memset(text, 'x', MB);
		memcpy(text + MB / 2, many[777], strlen(many[777]));
		start = clock();
		got = ao_scrub_secrets(text, MB, (const char *const *) many, 1000, &len);
		UNIT_OK(got != NULL && len == MB - strlen(many[777]) + 10 &&
				memcmp(got + MB / 2, "[REDACTED]x", 11) == 0,
				"large: one of 1000 secrets in 1 MB");
		printf("# 1 MB against 1000 secrets: %.3f s\n", seconds_since(start));
		free(got);

		memset(big, 'x', 64 * 1024);
		big[64 * 1024 - 1] = 'y';
		big[64 * 1024] = '\0';
		start = clock();
		got = ao_scrub_secrets(text, MB, (const char *const *) &big, 1, &len);
		UNIT_OK(got == NULL && len == MB, "large: a 64 kB near-miss secret in 1 MB");
		printf("# 1 MB against a 64 kB near-miss secret: %.3f s\n", seconds_since(start));
		UNIT_OK(seconds_since(start) < 5.0, "large: a long secret takes linear time");
		memcpy(text + 100, big, 64 * 1024);
		got = ao_scrub_secrets(text, MB, (const char *const *) &big, 1, &len);
		UNIT_OK(got != NULL && len == MB - 64 * 1024 + 10 && memcmp(got + 100, "[REDACTED]x", 11) == 0,
				"large: a 64 kB secret found in 1 MB");
		free(got);

		for (int i = 0; i < 1000; i++)
			free(many[i]);
		free(many);
		free(big);
	}
	free(text);
}

/* ---------------------------------------------------------------------
 * ao_header_looks_secret
 * --------------------------------------------------------------------- */

static void
test_headers(void)
{
	static const char *const secret_names[] = {
		"Authorization", "authorization", "AUTHORIZATION", "Proxy-Authorization", "Cookie",
		"Set-Cookie", "X-Api-Key", "x-api-key", "Api-Key", "X-Auth-Token", "X-GitHub-Token",
		"Private-Token", "Client-Secret", "X-Goog-Api-Key", "apikey", "X-Password", "WWW-Authenticate",
		"X-Amz-Security-Token", "Ocp-Apim-Subscription-Key", "x-passwd", NULL
	};
	static const char *const plain_names[] = {
		"Content-Type", "Accept", "User-Agent", "X-Request-Id", "Anthropic-Version", "OpenAI-Organization",
		"Host", "", NULL
	};
	static const char *const secret_values[] = {
		"Bearer abc", "bearer abc", "BEARER abc", "  Bearer abc", "\tBasic Zm9vOmJhcg==", "Basic x",
		"Digest username=\"u\"", "Token t", "sk-proj-abc", "sk_live_abc", "ghp_abc", "gho_abc",
		"github_pat_abc", "glpat-abc", "xoxb-123", "xoxp-123", NULL
	};
	static const char *const plain_values[] = {
		"application/json", "Bearerish", "Bearer", "Basically", "skip", "SK-abc", "sk", "xo", "2023-06-01",
		"agentorch/0.1", "", NULL
	};
	char		label[200];

	for (int i = 0; secret_names[i]; i++)
	{
		snprintf(label, sizeof(label), "header: name \"%s\" looks secret", secret_names[i]);
		UNIT_OK(ao_header_looks_secret(secret_names[i], "v") == 1, label);
	}
	for (int i = 0; plain_names[i]; i++)
	{
		snprintf(label, sizeof(label), "header: name \"%s\" does not", plain_names[i]);
		UNIT_OK(ao_header_looks_secret(plain_names[i], "v") == 0, label);
	}
	for (int i = 0; secret_values[i]; i++)
	{
		snprintf(label, sizeof(label), "header: value \"%s\" looks secret", secret_values[i]);
		UNIT_OK(ao_header_looks_secret("X-Custom", secret_values[i]) == 1, label);
	}
	for (int i = 0; plain_values[i]; i++)
	{
		snprintf(label, sizeof(label), "header: value \"%s\" does not", plain_values[i]);
		UNIT_OK(ao_header_looks_secret("X-Custom", plain_values[i]) == 0, label);
	}
	UNIT_OK(ao_header_looks_secret(NULL, NULL) == 0, "header: NULL name and value");
	UNIT_OK(ao_header_looks_secret(NULL, "Bearer x") == 1, "header: NULL name, secret value");
	UNIT_OK(ao_header_looks_secret("Authorization", NULL) == 1, "header: secret name, NULL value");
}

int
main(void)
{
	test_scrub_cases();
	test_scrub_random();
	test_scrub_large();
	test_headers();
	return unit_done();
}
