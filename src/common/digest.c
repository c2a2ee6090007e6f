/*-------------------------------------------------------------------------
 *
 * digest.c
 *	  Randomness and hashes from OpenSSL, at a cost fit for a hot path:
 *	  strong random bytes from a pool (trace ids, channel tokens), and MD5
 *	  through an algorithm fetched once per process (pinned tools' hashes,
 *	  span ids).
 *
 * PostgreSQL's pg_strong_random and pg_md5_hash are correct but pay
 * OpenSSL's per-call overheads: a seeding check and locks per random call,
 * a context, an error-queue clear and an implicit algorithm fetch per hash
 * -- more than the rest of a run's start for those steps. The bytes and
 * digests are the same algorithms' (OpenSSL's CSPRNG and MD5).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/common/digest.c
 *
 *-------------------------------------------------------------------------
 */
#include "common.h"

#include <openssl/evp.h>

#include "miscadmin.h"

/*
 * Strong random bytes, drawn from a pool that pg_strong_random refills:
 * a 4 kB refill costs little more than one call. Bytes are handed out
 * once; the pool is private to the process that filled it (a forked
 * child starts empty).
 */
#define AO_RANDOM_POOL_SIZE 4096

void
ao_random_bytes(void *buf, size_t len)
{
	static uint8 pool[AO_RANDOM_POOL_SIZE];
	static size_t left = 0;
	static int	filled_by = 0;
	uint8	   *out = buf;

	if (filled_by != MyProcPid)
		left = 0;
	while (len > 0)
	{
		size_t		n;

		if (left == 0)
		{
			if (!pg_strong_random(pool, sizeof(pool)))
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not generate random bytes")));
			left = sizeof(pool);
			filled_by = MyProcPid;
		}
		n = Min(len, left);
		memcpy(out, pool + sizeof(pool) - left, n);
		/* handed out: not kept in the pool */
		explicit_bzero(pool + sizeof(pool) - left, n);
		left -= n;
		out += n;
		len -= n;
	}
}

/* OpenSSL's MD5, fetched once (in the postmaster under preload: inherited) */
static EVP_MD *md5 = NULL;
static bool md5_fetched = false;	/* tried: md5 is what the fetch gave */

/*
 * Fetch MD5 once; false when OpenSSL cannot give it (e.g. a FIPS
 * configuration), without asking again. The postmaster calls it under
 * preload so that no session's first start loads the provider (2-3 ms).
 */
bool
ao_digest_ready(void)
{
	if (!md5_fetched)
	{
		md5 = EVP_MD_fetch(NULL, "MD5", NULL);
		md5_fetched = true;
	}
	return md5 != NULL;
}

/* The MD5 of data (len bytes) as 32 lowercase hex digits into hex[33]. */
void
ao_md5_hex(const void *data, size_t len, char *hex)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!ao_digest_ready() || EVP_Digest(data, len, digest, &n, md5, NULL) != 1 || n != 16)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute an MD5 hash")));
	hex[hex_encode((const char *) digest, 16, hex)] = '\0';
}
