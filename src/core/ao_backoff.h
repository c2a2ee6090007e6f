/*-------------------------------------------------------------------------
 *
 * ao_backoff.h
 *	  Exponential backoff with jitter (PostgreSQL-free).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_backoff.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_BACKOFF_H
#define AO_BACKOFF_H

typedef struct ao_backoff
{
	double		initial_ms;		/* delay before the second attempt */
	double		multiplier;		/* growth per attempt, >= 1 */
	double		max_ms;			/* cap of the delay before jitter */
	double		jitter;			/* 0..1: fraction of the delay drawn at random */
} ao_backoff;

/*
 * Delay before the attempt after failed attempt number `failed` (1 = the
 * first attempt failed): min(max, initial * multiplier^(failed-1)), of
 * which the fraction `jitter` is scaled by random01 in [0, 1).
 */
extern double ao_backoff_delay_ms(const ao_backoff *b, int failed, double random01);

#endif							/* AO_BACKOFF_H */
