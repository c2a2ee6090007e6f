/*-------------------------------------------------------------------------
 *
 * locks.c
 *	  Step locks: a step's "lock" names a lock held while it runs, so two
 *	  steps with the same lock name never run at once, in any executor,
 *	  worker or session of the database.
 *
 * The lock is a PostgreSQL advisory lock of the database, in a key space of
 * its own (field4 AO_STEP_LOCK_SPACE, so it never meets a user's
 * pg_advisory_lock keys), keyed by a 64-bit hash of the name (a collision
 * only serializes two names, it never lets two holders of one name run).
 * A transactional step holds it until its transaction ends; a network step
 * holds it as a session lock from its lease to the end of its attempt
 * (ao_step_lock_release), and a crashed holder's session takes it along.
 * Locks are tried, never waited for: a step whose lock is busy stays ready
 * and is tried again a little later.
 *
 * Advisory locks are reentrant within a session, so the session locks this
 * process holds are also counted here: a second step of the same process
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
#include "storage/lock.h"
#include "utils/memutils.h"

/* field4 of the advisory lock tags of step locks (PostgreSQL uses 1 and 2) */
#define AO_STEP_LOCK_SPACE 0xA0

/* Names this process holds as session locks (TopMemoryContext strings). */
static List *held_names = NIL;

static void
step_lock_tag(LOCKTAG *tag, const char *name)
{
	uint64		h = hash_bytes_extended((const unsigned char *) name, (int) strlen(name), 0);

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h, AO_STEP_LOCK_SPACE);
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

bool
ao_step_lock_try(const char *name, bool session)
{
	LOCKTAG		tag;

	Assert(name != NULL);
	if (held_here(name))
		return false;
	step_lock_tag(&tag, name);
	if (LockAcquire(&tag, ExclusiveLock, session, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	if (session)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		held_names = lappend(held_names, pstrdup(name));
		MemoryContextSwitchTo(old);
	}
	return true;
}

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
			held_names = foreach_delete_current(held_names, lc);
			pfree(held);
			step_lock_tag(&tag, name);
			(void) LockRelease(&tag, ExclusiveLock, true);
			return;
		}
	}
}
