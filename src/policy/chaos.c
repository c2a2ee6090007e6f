/*-------------------------------------------------------------------------
 *
 * chaos.c
 *	  Fault injection for chaos tests (agentorch.chaos_* settings,
 *	  superuser-set, off by default): the faults go through the real code
 *	  paths -- a tool step fails with a retryable error before it runs, a
 *	  completed LLM or HTTP response is treated as a retryable provider
 *	  fault, a tool step waits before it runs -- so the retry contracts,
 *	  the stream's reset markers and the exactly-once effects are what a
 *	  test sees.
 *
 * Draws come from a generator of this process, seeded from
 * agentorch.chaos_seed and the pid (or at random when the seed is 0).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/policy/chaos.c
 *
 *-------------------------------------------------------------------------
 */
#include "policy.h"

#include "common/pg_prng.h"
#include "miscadmin.h"

static pg_prng_state chaos_state;
static int	chaos_seeded_with = -1;

/* The generator, (re)seeded when agentorch.chaos_seed changed. */
static pg_prng_state *
chaos_prng(void)
{
	if (chaos_seeded_with != ao_chaos_seed)
	{
		if (ao_chaos_seed == 0)
			pg_prng_seed(&chaos_state, pg_prng_uint64(&pg_global_prng_state));
		else
			pg_prng_seed(&chaos_state, ((uint64) ao_chaos_seed << 32) ^ (uint64) MyProcPid);
		chaos_seeded_with = ao_chaos_seed;
	}
	return &chaos_state;
}

bool
ao_chaos_roll(double rate)
{
	if (rate <= 0)
		return false;
	return pg_prng_double(chaos_prng()) < rate;
}

int
ao_chaos_delay_ms(void)
{
	if (ao_chaos_latency_ms <= 0)
		return 0;
	return (int) (pg_prng_double(chaos_prng()) * (ao_chaos_latency_ms + 1));
}
