/*-------------------------------------------------------------------------
 *
 * policy.h
 *	  Circuit breaker, bulkhead and rate limit per model or tool (policy.c).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/policy/policy.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_POLICY_H
#define AO_POLICY_H

#include "io.h"

#include "storage/lwlock.h"
#include "utils/tuplestore.h"

typedef struct AoLimits
{
	int			max_concurrency;	/* 0 = unlimited */
	double		rpm;			/* requests per minute, 0 = unlimited */
	double		tpm;			/* tokens per minute, 0 = unlimited */
	int			failure_threshold;	/* consecutive failures that open the breaker */
	long		cooldown_ms;	/* open time before a probe */
} AoLimits;

typedef enum AoDecision
{
	AO_ALLOW,
	AO_DEFER,					/* wait: bulkhead full or rate limited */
	AO_REJECT					/* breaker open */
} AoDecision;

extern Size ao_policy_shmem_size(void);
extern void ao_policy_shmem_init(LWLock *lock);
extern AoDecision ao_policy_acquire(const char *name, const AoLimits *lim,
									double expected_tokens, long *wait_ms, uint64 *probe);
extern void ao_policy_release(const char *name, const AoLimits *lim, int outcome,
							  double tokens_used, uint64 probe);
extern bool ao_policy_is_open(const char *name);
extern void ao_policy_metrics(Tuplestorestate *ts, TupleDesc desc);
extern void ao_policy_limits_from_json(json_object *o, AoLimits *lim);

/* The delay before the next attempt of a step (policy.c): every runner's one retry decision. */
#define AO_MAX_RETRY_DELAY_MS (7.0 * 24 * 3600 * 1000)
extern double ao_retry_delay_ms(json_object *spec, int attempt, double retry_after_ms);

/*
 * Step locks (locks.c): try the lock a step names, never waiting. session:
 * held until ao_step_lock_release (a network step's lease), else until the
 * transaction ends (a transactional step).
 */
/*
 * Chaos (chaos.c): does a fault with this probability happen now? And a
 * delay up to agentorch.chaos_latency. Both off unless the settings are set.
 */
extern bool ao_chaos_roll(double rate);
extern int	ao_chaos_delay_ms(void);

#define AO_STEP_LOCK_RETRY_MS 50
extern Size ao_step_locks_shmem_size(void);
extern void ao_step_locks_shmem_init(LWLock *lock);
extern bool ao_step_lock_try(const char *name, bool session);
extern void ao_step_lock_release(const char *name);
extern int	ao_step_locks_held(void);
extern bool ao_careful_lock_try(void);
extern void ao_careful_lock_release(void);

#endif							/* AO_POLICY_H */
