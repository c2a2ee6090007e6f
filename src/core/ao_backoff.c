/*-------------------------------------------------------------------------
 *
 * ao_backoff.c
 *	  Exponential backoff with jitter for step and request retries.
 *
 * "Equal jitter" style: the delay keeps (1 - jitter) of its exponential
 * value and draws the rest at random, so retries of many steps that
 * failed together spread out without ever retrying immediately.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_backoff.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_backoff.h"

/* See ao_backoff.h. Never negative; robust against nonsense settings. */
double
ao_backoff_delay_ms(const ao_backoff *b, int failed, double random01)
{
	double		delay = b->initial_ms > 0 ? b->initial_ms : 0;
	double		mult = b->multiplier >= 1 ? b->multiplier : 1;
	double		jitter = b->jitter < 0 ? 0 : (b->jitter > 1 ? 1 : b->jitter);

	for (int i = 1; i < failed && delay < b->max_ms; i++)
		delay *= mult;
	if (b->max_ms >= 0 && delay > b->max_ms)
		delay = b->max_ms;
	if (random01 < 0)
		random01 = 0;
	if (random01 >= 1)
		random01 = 0.999999;
	return delay * (1 - jitter) + delay * jitter * random01;
}
