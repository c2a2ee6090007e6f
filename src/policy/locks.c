/*-------------------------------------------------------------------------
 *
 * locks.c
 *	  Step locks: a step's "lock" names a lock held while it runs, so two
 *	  steps with the same lock name never run at once, in any executor,
 *	  worker or session of the database. Also the executors' careful-mode
 *	  lock (one careful attempt at a time per database).
 *
 * A name is keyed by a 64-bit hash (a collision only serializes two names,
 * it never lets two holders of one name run). A transactional step holds
 * the name's PostgreSQL advisory lock (in a key space of its own, field4
 * AO_STEP_LOCK_SPACE, so it never meets a user's pg_advisory_lock keys)
 * until its transaction ends.
 *
 * A lock held beyond a transaction -- a network step's, from its lease to
 * the end of its attempt, and the careful-mode lock -- is, with shared
 * memory (preload), an entry of a table in shared memory owned by this
 * file, not a PostgreSQL session lock. A user's sql or function tool runs
 * in an executor's session beside other roles' steps, and
 * pg_advisory_unlock_all() there would release every session advisory lock
 * of the process: other roles' step locks would go with it, and two steps
 * of one lock name could run at once. The table's entry is made while the
 * claim's transaction holds the name's advisory lock, and a transactional
 * step looks at the table while it holds that lock, so each kind excludes
 * the other. A process's entries go when it exits (before_shmem_exit); a
 * crash restarts shared memory. Without shared memory (no preload: work in
 * the caller's own session) a session advisory lock stands in.
 *
 * Locks are tried, never waited for: a step whose lock is busy stays ready
 * and is tried again a little later. The names this process holds beyond
 * a transaction are also counted here: a second step of the same process
 * with a held name is refused like any other.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/policy/locks.c
 *
 *-------------------------------------------------------------------------
 */
#include "policy.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "storage/shmem.h"
#include "utils/memutils.h"

/* field4 of the advisory lock tags of step locks (PostgreSQL uses 1 and 2) */
#define AO_STEP_LOCK_SPACE 0xA0
/* field4 of the careful-mode lock's tag (without shared memory) */
#define AO_CAREFUL_LOCK_SPACE 3
/* the careful-mode lock's key in the held-locks table (no name hashes to it with space 1) */
#define AO_CAREFUL_KEY 0x616f6372

/* Locks held beyond a transaction, cluster-wide. */
#define AO_MAX_HELD_LOCKS 16384

typedef struct AoHeldLock
{
	Oid			dboid;
	uint32		space;			/* 0: a step lock, 1: the careful-mode lock */
	uint64		key;
	int			pid;			/* the holder */
} AoHeldLock;

typedef struct AoLockTable
{
	LWLock	   *lock;
	int			n;				/* entries in use: held[0 .. n-1] */
	AoHeldLock	held[AO_MAX_HELD_LOCKS];
} AoLockTable;

static AoLockTable *lock_table = NULL;

/* Names this process holds beyond a transaction (TopMemoryContext strings). */
static List *held_names = NIL;
static bool exit_registered = false;
static bool careful_held = false;

/* Shared memory size (requested by worker/worker.c). */
Size
ao_step_locks_shmem_size(void)
{
	return MAXALIGN(sizeof(AoLockTable));
}

/* Create or attach (called under AddinShmemInitLock by worker/worker.c). */
void
ao_step_locks_shmem_init(LWLock *lock)
{
	bool		found;

	lock_table = ShmemInitStruct("agentorch step locks", sizeof(AoLockTable), &found);
	if (!found)
	{
		lock_table->lock = lock;
		lock_table->n = 0;
	}
}

static uint64
name_key(const char *name)
{
	return hash_bytes_extended((const unsigned char *) name, (int) strlen(name), 0);
}

static void
step_lock_tag(LOCKTAG *tag, uint64 key)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (key >> 32), (uint32) key, AO_STEP_LOCK_SPACE);
}

static void
careful_lock_tag(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, AO_CAREFUL_KEY, 0, AO_CAREFUL_LOCK_SPACE);
}

/* Give back every table entry this process holds (before_shmem_exit). */
static void
release_all_held(int code, Datum arg)
{
	if (lock_table == NULL)
		return;
	LWLockAcquire(lock_table->lock, LW_EXCLUSIVE);
	for (int i = lock_table->n - 1; i >= 0; i--)
		if (lock_table->held[i].pid == MyProcPid)
			lock_table->held[i] = lock_table->held[--lock_table->n];
	LWLockRelease(lock_table->lock);
}

/*
 * Is (space, key) held in the table? With take, make it held by this
 * process when nobody holds it; false when it is held already or the
 * table is full (the step waits as for a busy lock).
 */
static bool
table_try(uint32 space, uint64 key, bool take)
{
	bool		ok = true;

	if (take && !exit_registered)
	{
		before_shmem_exit(release_all_held, (Datum) 0);
		exit_registered = true;
	}
	LWLockAcquire(lock_table->lock, take ? LW_EXCLUSIVE : LW_SHARED);
	for (int i = 0; i < lock_table->n && ok; i++)
		if (lock_table->held[i].dboid == MyDatabaseId && lock_table->held[i].space == space &&
			lock_table->held[i].key == key)
			ok = false;
	if (ok && take)
	{
		if (lock_table->n == AO_MAX_HELD_LOCKS)
			ok = false;
		else
		{
			AoHeldLock *h = &lock_table->held[lock_table->n++];

			h->dboid = MyDatabaseId;
			h->space = space;
			h->key = key;
			h->pid = MyProcPid;
		}
	}
	LWLockRelease(lock_table->lock);
	return ok;
}

/* Remove this process's entry (space, key) from the table. */
static void
table_release(uint32 space, uint64 key)
{
	LWLockAcquire(lock_table->lock, LW_EXCLUSIVE);
	for (int i = 0; i < lock_table->n; i++)
	{
		AoHeldLock *h = &lock_table->held[i];

		if (h->dboid == MyDatabaseId && h->space == space && h->key == key && h->pid == MyProcPid)
		{
			*h = lock_table->held[--lock_table->n];
			break;
		}
	}
	LWLockRelease(lock_table->lock);
}

static bool
held_here(const char *name)
{
	ListCell   *lc;

	foreach(lc, held_names)
		if (strcmp((const char *) lfirst(lc), name) == 0)
			return true;
	return false;
}

/*
 * Try the lock name names, never waiting. session: held until
 * ao_step_lock_release (a network step's lease), else until the
 * transaction ends (a transactional step). Called in a transaction.
 */
bool
ao_step_lock_try(const char *name, bool session)
{
	LOCKTAG		tag;
	uint64		key;

	Assert(name != NULL);
	if (held_here(name))
		return false;
	key = name_key(name);
	step_lock_tag(&tag, key);
	if (lock_table == NULL)
	{
		/* no shared memory: the caller's own session holds it */
		if (LockAcquire(&tag, ExclusiveLock, session, true) == LOCKACQUIRE_NOT_AVAIL)
			return false;
	}
	else
	{
		/*
		 * The transaction's advisory lock first, then the table: a holder
		 * beyond a transaction took its entry under the same lock.
		 */
		if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
			return false;
		if (!table_try(0, key, session))
			return false;
	}
	if (session)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		held_names = lappend(held_names, pstrdup(name));
		MemoryContextSwitchTo(old);
	}
	return true;
}

/* Give back a lock ao_step_lock_try took with session. */
void
ao_step_lock_release(const char *name)
{
	LOCKTAG		tag;
	ListCell   *lc;

	foreach(lc, held_names)
	{
		char	   *held = lfirst(lc);

		if (strcmp(held, name) == 0)
		{
			uint64		key = name_key(name);

			held_names = foreach_delete_current(held_names, lc);
			pfree(held);
			if (lock_table != NULL)
				table_release(0, key);
			else
			{
				step_lock_tag(&tag, key);
				(void) LockRelease(&tag, ExclusiveLock, true);
			}
			return;
		}
	}
}

/*
 * How many step locks are held beyond a transaction in this database
 * (metrics(): step_locks_held); -1 without shared memory.
 */
int
ao_step_locks_held(void)
{
	int			n = 0;

	if (lock_table == NULL)
		return -1;
	LWLockAcquire(lock_table->lock, LW_SHARED);
	for (int i = 0; i < lock_table->n; i++)
		if (lock_table->held[i].dboid == MyDatabaseId && lock_table->held[i].space == 0)
			n++;
	LWLockRelease(lock_table->lock);
	return n;
}

/*
 * The careful-mode lock (claim.c): one careful attempt at a time per
 * database. Tried, never waited for; held until ao_careful_lock_release.
 */
bool
ao_careful_lock_try(void)
{
	LOCKTAG		tag;

	if (careful_held)
		return true;
	if (lock_table != NULL)
		careful_held = table_try(1, AO_CAREFUL_KEY, true);
	else
	{
		careful_lock_tag(&tag);
		careful_held = LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
	}
	return careful_held;
}

/* Give back the careful-mode lock if this process holds it. */
void
ao_careful_lock_release(void)
{
	LOCKTAG		tag;

	if (!careful_held)
		return;
	careful_held = false;
	if (lock_table != NULL)
		table_release(1, AO_CAREFUL_KEY);
	else
	{
		careful_lock_tag(&tag);
		(void) LockRelease(&tag, ExclusiveLock, true);
	}
}
