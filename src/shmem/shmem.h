/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  The shmem layer (shmem.c): the shared state of launcher and executors
 *	  and the services built on it (wake-ups at commit, progress broadcasts,
 *	  step counters, cancel notes). Above common, below io.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/shmem/shmem.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_SHMEM_H
#define AO_SHMEM_H

#include "common.h"

#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#define AO_MAX_DATABASES	64
#define AO_MAX_EXECUTORS	16

/* One database the launcher knows about. */
typedef struct AoDbSlot
{
	Oid			dboid;			/* InvalidOid = free slot */
	bool		has_extension;	/* set by executor 0 when it finds agentorch */
	bool		no_extension;	/* set by executor 0 when it does not */
	TimestampTz probe_after;	/* when to probe again after no_extension */
	TimestampTz paused_until;	/* DROP/RENAME DATABASE in progress */
	int			pids[AO_MAX_EXECUTORS];
	Latch	   *latches[AO_MAX_EXECUTORS];
	pg_atomic_uint64 current_runs[AO_MAX_EXECUTORS];	/* run of the step being executed, 0 = none */
	pg_atomic_uint64 cancel_runs[AO_MAX_EXECUTORS];	/* run whose cancel() interrupted it */
	bool		clean_exit[AO_MAX_EXECUTORS];	/* the last executor here was stopped on purpose */
	pg_atomic_uint64 work_gen;	/* bumped after commits that may have made steps ready */
} AoDbSlot;

typedef struct AoShared
{
	LWLock	   *lock;			/* protects dbs[] */
	Latch	   *launcher_latch;
	pg_atomic_uint32 rescan;	/* CREATE EXTENSION happened somewhere */
	pg_atomic_uint64 steps_done;	/* counters shown by metrics() */
	pg_atomic_uint64 steps_failed;
	pg_atomic_uint64 commits;
	pg_atomic_uint64 cancels;	/* bumped by cancel(): executors drop its streams */
	ConditionVariable progress;	/* broadcast after state changes commit */
	AoDbSlot	dbs[AO_MAX_DATABASES];
} AoShared;

/* the shared state (NULL without shared_preload_libraries) */
extern AoShared *ao_shared;
/* this executor's slot and index in it (-1 outside executors) */
extern int	ao_my_slot;
extern int	ao_my_executor_index;
extern int	ao_shmem_slot_of(Oid dboid);

extern bool ao_shmem_ready(void);
extern void ao_wake_at_commit(void);
extern void ao_wait_for_progress(long timeout_ms);
extern void ao_wait_for_progress_done(void);
extern void ao_announce_progress(bool wake_siblings);
extern void ao_count_steps(uint64 done, uint64 failed);
extern void ao_note_cancel(void);
extern uint64 ao_cancel_generation(void);
extern uint64 ao_work_generation(void);
extern void ao_shared_metrics(uint64 *steps_done, uint64 *steps_failed, uint64 *commits,
							  int *executors);
extern void ao_executor_set_current_run(int64 run);
extern int	ao_interrupt_run(int64 run);
extern bool ao_cancelled_by_request(int64 run, bool take);
extern bool ao_take_stale_cancel_note(void);

#endif							/* AO_SHMEM_H */
