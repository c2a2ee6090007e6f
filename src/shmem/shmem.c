/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared state of the launcher and executors, and the services other
 *	  layers use through it: wake-ups at commit, progress broadcasts,
 *	  step counters, the run each executor executes and cancel notes.
 *
 * Executors sleep on their latch. A session that commits new or newly
 * ready work sets the latches of its database's executors (a transaction
 * callback, at commit only, so a rolled-back start wakes nobody). After
 * every commit that changed run state the executor broadcasts a condition
 * variable on which wait() and follow() sleep. The launcher and executor
 * main loops that own the slots are in src/worker/ (README.md there).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/shmem/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "shmem.h"

#include <signal.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"

AoShared   *ao_shared = NULL;

/* this backend's pending wake requests, flushed at commit */
static bool wake_pending = false;
static bool launcher_wake_pending = false;
static bool cancel_pending = false;
static bool xact_callback_registered = false;

/* executor identity (set by the executor main loop, src/worker) */
int			ao_my_executor_index = -1;
int			ao_my_slot = -1;

/* Is shared memory available (the library was preloaded)? */
bool
ao_shmem_ready(void)
{
	return ao_shared != NULL;
}

/* Find the slot of a database, or -1. Caller holds ao_shared->lock. */
int
ao_shmem_slot_of(Oid dboid)
{
	for (int i = 0; i < AO_MAX_DATABASES; i++)
		if (ao_shared->dbs[i].dboid == dboid)
			return i;
	return -1;
}

/*
 * Commit callback: deliver the wake-ups this transaction asked for. Runs
 * at commit only, so work started in a transaction that rolls back wakes
 * nobody.
 */
static void
ao_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
	{
		if (ao_shared != NULL && cancel_pending)
			pg_atomic_fetch_add_u64(&ao_shared->cancels, 1);
		if (ao_shared != NULL && wake_pending)
		{
			Latch	   *latches[AO_MAX_EXECUTORS];
			int			n = 0;

			LWLockAcquire(ao_shared->lock, LW_SHARED);
			{
				int			s = ao_shmem_slot_of(MyDatabaseId);

				/* after this commit became visible: the executors claim again */
				if (s >= 0)
					pg_atomic_fetch_add_u64(&ao_shared->dbs[s].work_gen, 1);
				for (int i = 0; s >= 0 && i < AO_MAX_EXECUTORS; i++)
					if (ao_shared->dbs[s].latches[i] != NULL &&
						ao_shared->dbs[s].pids[i] != MyProcPid)
						latches[n++] = ao_shared->dbs[s].latches[i];
			}
			LWLockRelease(ao_shared->lock);
			for (int i = 0; i < n; i++)
				SetLatch(latches[i]);
			ConditionVariableBroadcast(&ao_shared->progress);
		}
		if (ao_shared != NULL && launcher_wake_pending)
		{
			pg_atomic_write_u32(&ao_shared->rescan, 1);
			LWLockAcquire(ao_shared->lock, LW_EXCLUSIVE);
			{
				int			s = ao_shmem_slot_of(MyDatabaseId);

				if (s >= 0)
				{
					ao_shared->dbs[s].no_extension = false;
					ao_shared->dbs[s].probe_after = 0;
				}
			}
			LWLockRelease(ao_shared->lock);
			if (ao_shared->launcher_latch)
				SetLatch(ao_shared->launcher_latch);
		}
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		wake_pending = launcher_wake_pending = cancel_pending = false;
	}
}

/* Make sure the commit callback is registered in this backend. */
static void
ensure_xact_callback(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(ao_xact_callback, NULL);
		xact_callback_registered = true;
	}
}

/*
 * Ask for this database's executors to be woken when the current
 * transaction commits (new runs, new input, cancel, resume).
 */
void
ao_wake_at_commit(void)
{
	ensure_xact_callback();
	wake_pending = true;
}

/* SQL: agentorch._wake_launcher(), run by the install script. */
PG_FUNCTION_INFO_V1(ao_sql_wake_launcher);
Datum
ao_sql_wake_launcher(PG_FUNCTION_ARGS)
{
	ensure_xact_callback();
	launcher_wake_pending = true;
	PG_RETURN_VOID();
}

/*
 * Sleep until run state may have changed (an executor committed) or
 * timeout_ms passed. The caller loops: check, ao_wait_for_progress, check
 * again, ..., then ao_wait_for_progress_done. The first call only puts
 * this process on the condition variable's wait list and returns, so every
 * later check runs while listed: a commit between a check and the sleep
 * wakes it (before, such a commit was missed and the sleep ran its full
 * timeout, up to a second). Without shared memory, a short timed sleep.
 */
void
ao_wait_for_progress(long timeout_ms)
{
	if (ao_shared == NULL)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(timeout_ms, 10), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	else
		(void) ConditionVariableTimedSleep(&ao_shared->progress, timeout_ms, PG_WAIT_EXTENSION);
	CHECK_FOR_INTERRUPTS();
}

/* The end of an ao_wait_for_progress loop: off the wait list (an ERROR's abort does it too). */
void
ao_wait_for_progress_done(void)
{
	if (ao_shared != NULL)
		ConditionVariableCancelSleep();
}

/*
 * After a commit that changed run state: wake waiters; with wake_siblings,
 * also the other executors, and move the work generation.
 */
void
ao_announce_progress(bool wake_siblings)
{
	if (ao_shared == NULL)
		return;
	pg_atomic_fetch_add_u64(&ao_shared->commits, 1);
	ConditionVariableBroadcast(&ao_shared->progress);
	if (wake_siblings && ao_my_slot >= 0)
	{
		pg_atomic_fetch_add_u64(&ao_shared->dbs[ao_my_slot].work_gen, 1);
		for (int i = 0; i < AO_MAX_EXECUTORS; i++)
		{
			Latch	   *l = ao_shared->dbs[ao_my_slot].latches[i];

			if (l != NULL && i != ao_my_executor_index)
				SetLatch(l);
		}
	}
}

/*
 * A run was cancelled: when this transaction commits, executors are woken
 * and check their streams at once (not at their next heartbeat).
 */
void
ao_note_cancel(void)
{
	ensure_xact_callback();
	cancel_pending = true;
	wake_pending = true;
}

/* How many cancels have happened (executors compare it with what they saw). */
uint64
ao_cancel_generation(void)
{
	return ao_shared ? pg_atomic_read_u64(&ao_shared->cancels) : 0;
}

/*
 * This database's work generation: it moves after every commit that may
 * have made steps ready and woke the executors for it (ao_wake_at_commit's
 * commits, executors' commits that wake their siblings). An executor whose
 * claims found nothing skips them until it moves (src/worker). Read before
 * the claim's snapshot is taken; 0 outside executors.
 */
uint64
ao_work_generation(void)
{
	uint64		gen;

	if (ao_shared == NULL || ao_my_slot < 0)
		return 0;
	gen = pg_atomic_read_u64(&ao_shared->dbs[ao_my_slot].work_gen);
	pg_memory_barrier();
	return gen;
}

/* Count finished steps for metrics(). */
void
ao_count_steps(uint64 done, uint64 failed)
{
	if (ao_shared == NULL)
		return;
	if (done)
		pg_atomic_fetch_add_u64(&ao_shared->steps_done, done);
	if (failed)
		pg_atomic_fetch_add_u64(&ao_shared->steps_failed, failed);
}

/* Shared counters and worker counts for metrics(). */
void
ao_shared_metrics(uint64 *steps_done, uint64 *steps_failed, uint64 *commits, int *executors)
{
	*steps_done = *steps_failed = *commits = 0;
	*executors = 0;
	if (ao_shared == NULL)
		return;
	*steps_done = pg_atomic_read_u64(&ao_shared->steps_done);
	*steps_failed = pg_atomic_read_u64(&ao_shared->steps_failed);
	*commits = pg_atomic_read_u64(&ao_shared->commits);
	LWLockAcquire(ao_shared->lock, LW_SHARED);
	{
		int			s = ao_shmem_slot_of(MyDatabaseId);

		for (int i = 0; s >= 0 && i < AO_MAX_EXECUTORS; i++)
			if (ao_shared->dbs[s].pids[i] != 0)
				(*executors)++;
	}
	LWLockRelease(ao_shared->lock);
}

/*
 * The executor is about to execute a transactional step of run (0: done
 * with it). cancel() looks here to interrupt a step that holds the run.
 */
void
ao_executor_set_current_run(int64 run)
{
	if (ao_shared == NULL || ao_my_slot < 0 || ao_my_executor_index < 0)
		return;
	pg_atomic_write_u64(&ao_shared->dbs[ao_my_slot].current_runs[ao_my_executor_index], (uint64) run);
}

/*
 * cancel(): interrupt (as pg_cancel_backend does) the executors of this
 * database that are executing a step of run, so the step fails at once
 * and its batch ends, instead of cancel() waiting for the run's lock as
 * long as the step takes. Not this process: a step that cancels its own
 * run holds the run already (interrupting itself would roll its batch
 * back, the cancel with it, and the step would run again, forever).
 * Returns how many were signalled.
 */
int
ao_interrupt_run(int64 run)
{
	int			s;
	int			n = 0;
	int			pids[AO_MAX_EXECUTORS];

	if (ao_shared == NULL)
		return 0;
	LWLockAcquire(ao_shared->lock, LW_SHARED);
	s = ao_shmem_slot_of(MyDatabaseId);
	for (int i = 0; s >= 0 && i < AO_MAX_EXECUTORS; i++)
		if (ao_shared->dbs[s].pids[i] != 0 && ao_shared->dbs[s].pids[i] != MyProcPid &&
			pg_atomic_read_u64(&ao_shared->dbs[s].current_runs[i]) == (uint64) run)
		{
			/* tell it why first: the interrupt is the run's cancel, not a failure */
			pg_atomic_write_u64(&ao_shared->dbs[s].cancel_runs[i], (uint64) run);
			pids[n++] = ao_shared->dbs[s].pids[i];
		}
	LWLockRelease(ao_shared->lock);
	for (int i = 0; i < n; i++)
		(void) kill(pids[i], SIGINT);
	return n;
}

/*
 * Was this executor interrupted by cancel() of run? With take, the note is
 * cleared. (See ao_interrupt_run.)
 */
bool
ao_cancelled_by_request(int64 run, bool take)
{
	pg_atomic_uint64 *note;

	if (ao_shared == NULL || ao_my_slot < 0 || ao_my_executor_index < 0)
		return false;
	note = &ao_shared->dbs[ao_my_slot].cancel_runs[ao_my_executor_index];
	if (pg_atomic_read_u64(note) != (uint64) run)
		return false;
	if (take)
		pg_atomic_write_u64(note, 0);
	return true;
}

/*
 * Was this executor interrupted by a cancel() meant for a run it had
 * already left (a race: cancel() read the run before the executor moved
 * on)? Clears the note. The step interrupted instead is not failed for it.
 */
bool
ao_take_stale_cancel_note(void)
{
	pg_atomic_uint64 *note;

	if (ao_shared == NULL || ao_my_slot < 0 || ao_my_executor_index < 0)
		return false;
	note = &ao_shared->dbs[ao_my_slot].cancel_runs[ao_my_executor_index];
	if (pg_atomic_read_u64(note) == 0)
		return false;
	pg_atomic_write_u64(note, 0);
	return true;
}
