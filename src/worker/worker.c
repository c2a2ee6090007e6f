/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  Background workers, the top layer: the launcher and the per-database
 *	  executors' main loops, the shared memory hooks and the DROP DATABASE
 *	  hook. The shared state and the wake-up path from committing sessions
 *	  are in src/shmem/shmem.c; README.md in this folder draws the
 *	  lifecycle.
 *
 * The launcher (one static worker) scans pg_database and keeps executors
 * running in every database that has the extension, the way TimescaleDB's
 * launcher keeps one scheduler per database. It cannot read another
 * database's catalogs, so it starts executor 0 as a probe: the probe
 * connects, and if agentorch is not installed it records that in shared
 * memory and exits; the launcher asks again only after
 * agentorch.launcher_naptime or when CREATE EXTENSION wakes it. Once
 * executor 0 finds the extension, the launcher starts the others, up to
 * agentorch.max_workers per database.
 *
 * Executors sleep on their latch. A session that commits new or newly
 * ready work sets the latches of its database's executors (shmem.c); a
 * timed wake (agentorch.poll_interval) is only a safety net and also
 * drives lease recovery.
 *
 * DROP DATABASE (and ALTER DATABASE ... RENAME, CREATE DATABASE from a
 * template) cannot proceed while an executor is connected, so a
 * ProcessUtility hook stops that database's executors and pauses their
 * relaunch for the duration of the statement.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/worker/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "worker.h"
#include "utils/acl.h"
#include "utils/syscache.h"
#include "utils/resowner.h"
#include "catalog/namespace.h"

#include "storage/procarray.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "runner.h"

PGDLLEXPORT void ao_launcher_main(Datum arg);
PGDLLEXPORT void ao_executor_main(Datum arg);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

/* a DROP EXTENSION in progress in this backend: its executors are paused */
static bool unpause_callbacks_registered = false;
static Oid	unpause_at_xact_end = InvalidOid;	/* a DROP EXTENSION's database */
static SubTransactionId unpause_subxid = InvalidSubTransactionId;	/* where it ran */
static void unpause_database(Oid dboid);

/* Is this database a template (datistemplate)? */
static bool
database_is_template(Oid dboid)
{
	HeapTuple	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	bool		result = false;

	if (HeapTupleIsValid(tup))
	{
		result = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
		ReleaseSysCache(tup);
	}
	return result;
}

/*
 * Subtransaction callback: a DROP EXTENSION undone by ROLLBACK TO (or an
 * exception block) lets the executors run again at once; a released
 * savepoint hands the DROP to its parent.
 */
static void
ao_subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid, void *arg)
{
	if (!OidIsValid(unpause_at_xact_end) || mySubid != unpause_subxid)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		Oid			dboid = unpause_at_xact_end;

		unpause_at_xact_end = InvalidOid;
		unpause_subxid = InvalidSubTransactionId;
		unpause_database(dboid);
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		unpause_subxid = parentSubid;
}

/*
 * Transaction callback: when the transaction of a DROP EXTENSION ends
 * (commit or abort), the launcher decides again about its database.
 */
static void
unpause_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		if (OidIsValid(unpause_at_xact_end))
		{
			/* a DROP EXTENSION ended: the launcher decides again */
			Oid			dboid = unpause_at_xact_end;

			unpause_at_xact_end = InvalidOid;
			unpause_database(dboid);
		}
	}
}

/* Make sure the DROP EXTENSION callbacks are registered in this backend. */
static void
ensure_unpause_callbacks(void)
{
	if (!unpause_callbacks_registered)
	{
		RegisterXactCallback(unpause_xact_callback, NULL);
		RegisterSubXactCallback(ao_subxact_callback, NULL);
		unpause_callbacks_registered = true;
	}
}

/* Request our shared memory and LWLock (shmem_request_hook, PG15+). */
static void
ao_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(AoShared)) + ao_policy_shmem_size() + ao_step_locks_shmem_size());
	RequestNamedLWLockTranche("agentorch", 3);
}

/* Create or attach to the shared state, under AddinShmemInitLock. */
static void
ao_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ao_shared = ShmemInitStruct("agentorch", sizeof(AoShared), &found);
	if (!found)
	{
		memset(ao_shared, 0, sizeof(AoShared));
		ao_shared->lock = &(GetNamedLWLockTranche("agentorch"))->lock;
		pg_atomic_init_u32(&ao_shared->rescan, 0);
		pg_atomic_init_u64(&ao_shared->steps_done, 0);
		pg_atomic_init_u64(&ao_shared->steps_failed, 0);
		pg_atomic_init_u64(&ao_shared->commits, 0);
		pg_atomic_init_u64(&ao_shared->cancels, 0);
		for (int d = 0; d < AO_MAX_DATABASES; d++)
		{
			pg_atomic_init_u64(&ao_shared->dbs[d].work_gen, 0);
			for (int i = 0; i < AO_MAX_EXECUTORS; i++)
			{
				pg_atomic_init_u64(&ao_shared->dbs[d].current_runs[i], 0);
				pg_atomic_init_u64(&ao_shared->dbs[d].cancel_runs[i], 0);
			}
		}
		ConditionVariableInit(&ao_shared->progress);
	}
	ao_policy_shmem_init(&(GetNamedLWLockTranche("agentorch"))[1].lock);
	ao_step_locks_shmem_init(&(GetNamedLWLockTranche("agentorch"))[2].lock);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Stop the executors of a database and keep the launcher from restarting
 * them for a while, so DROP DATABASE and friends can proceed. Waits up to
 * 10 seconds for them to exit.
 */
static void
stop_database_executors(Oid dboid, int pause_seconds)
{
	int			s;

	if (ao_shared == NULL || !OidIsValid(dboid))
		return;
	LWLockAcquire(ao_shared->lock, LW_EXCLUSIVE);
	s = ao_shmem_slot_of(dboid);
	if (s >= 0)
	{
		ao_shared->dbs[s].paused_until =
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), pause_seconds * 1000);
		for (int i = 0; i < AO_MAX_EXECUTORS; i++)
			if (ao_shared->dbs[s].pids[i] != 0)
			{
				/* stopped on purpose: its successor need not count a crash */
				ao_shared->dbs[s].clean_exit[i] = true;
				kill(ao_shared->dbs[s].pids[i], SIGTERM);
			}
	}
	LWLockRelease(ao_shared->lock);
	if (s < 0)
		return;
	for (int tries = 0; tries < 1000; tries++)
	{
		bool		any = false;

		LWLockAcquire(ao_shared->lock, LW_SHARED);
		for (int i = 0; i < AO_MAX_EXECUTORS; i++)
			any = any || ao_shared->dbs[s].pids[i] != 0;
		LWLockRelease(ao_shared->lock);
		if (!any)
			break;
		pg_usleep(10000L);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Let the launcher serve a database again after a paused statement. */
static void
unpause_database(Oid dboid)
{
	int			s;

	if (ao_shared == NULL || !OidIsValid(dboid))
		return;
	LWLockAcquire(ao_shared->lock, LW_EXCLUSIVE);
	s = ao_shmem_slot_of(dboid);
	if (s >= 0)
		ao_shared->dbs[s].paused_until = 0;
	LWLockRelease(ao_shared->lock);
	if (ao_shared->launcher_latch)
		SetLatch(ao_shared->launcher_latch);
}

/*
 * After DROP EXTENSION agentorch: drop the schema agentorch too when
 * nothing is left in it (CREATE EXTENSION made it, and it is not a member
 * of the extension); a schema that still holds other objects stays.
 */
static void
drop_empty_schema(void)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	if (!OidIsValid(get_namespace_oid("agentorch", true)))
		return;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	PG_TRY();
	{
		SPI_connect();
		(void) SPI_execute("DROP SCHEMA IF EXISTS agentorch RESTRICT", false, 0);
		SPI_finish();
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		/* not empty (or not ours to drop): leave it */
		FreeErrorData(ao_abort_subxact(caller, owner));
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	CurrentResourceOwner = owner;
}

/*
 * ProcessUtility hook: statements that need a database without other
 * connections first stop our executors there.
 */
static void
ao_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				   ProcessUtilityContext context, ParamListInfo params,
				   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	volatile Oid paused = InvalidOid;
	volatile bool drops_extension = false;

	if (ao_shared != NULL && IsA(parsetree, DropStmt) &&
		((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) parsetree)->objects)
			if (strcmp(strVal(lfirst(lc)), "agentorch") == 0)
				drops_extension = true;
	}
	/* only for a caller who may drop it: others get PostgreSQL's error, and nothing stops */
	if (drops_extension &&
		!(OidIsValid(get_extension_oid("agentorch", true)) &&
		  pg_extension_ownercheck(get_extension_oid("agentorch", true), GetUserId())))
		drops_extension = false;
	if (drops_extension && OidIsValid(MyDatabaseId))
	{
		/*
		 * DROP EXTENSION agentorch: stop this database's executors first,
		 * so the DROP takes its locks with nobody holding rows or slots of
		 * the extension's tables (it deadlocked with them), and keep them
		 * stopped until this transaction ends (unpause_xact_callback).
		 */
		stop_database_executors(MyDatabaseId, 300);
		ensure_unpause_callbacks();
		unpause_at_xact_end = MyDatabaseId;
		unpause_subxid = GetCurrentSubTransactionId();
	}

	if (ao_shared != NULL)
	{
		const char *dbname = NULL;

		if (IsA(parsetree, DropdbStmt))
			dbname = ((DropdbStmt *) parsetree)->dbname;
		else if (IsA(parsetree, RenameStmt) &&
				 ((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
			dbname = ((RenameStmt *) parsetree)->subname;
		else if (IsA(parsetree, CreatedbStmt))
		{
			ListCell   *lc;

			foreach(lc, ((CreatedbStmt *) parsetree)->options)
			{
				DefElem    *d = lfirst(lc);

				if (strcmp(d->defname, "template") == 0)
					dbname = defGetString(d);
			}
			if (dbname == NULL)
				dbname = "template1";
		}
		if (dbname)
		{
			Oid			dboid = get_database_oid(dbname, true);
			bool		allowed;

			/*
			 * Stop the executors only for a caller the statement would
			 * allow (PostgreSQL checks after this hook): the owner of the
			 * database to drop or rename, a role that may create databases
			 * from this template. Anyone else gets PostgreSQL's error and
			 * stops nothing.
			 */
			if (IsA(parsetree, CreatedbStmt))
				allowed = OidIsValid(dboid) && have_createdb_privilege() &&
					(database_is_template(dboid) || pg_database_ownercheck(dboid, GetUserId()));
			else
				allowed = OidIsValid(dboid) && pg_database_ownercheck(dboid, GetUserId());
			if (allowed)
			{
				paused = dboid;
				stop_database_executors(paused, 60);
			}
		}
	}

	PG_TRY();
	{
		if (prev_process_utility_hook)
			prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
									  params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		unpause_database(paused);
	}
	PG_END_TRY();
	if (drops_extension)
		drop_empty_schema();
}

/* Register the launcher (postmaster, from _PG_init under preload). */
static void
register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "agentorch");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ao_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "agentorch launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "agentorch launcher");
	RegisterBackgroundWorker(&worker);
}

/* Preload-time setup: hooks and the launcher. */
void
ao_worker_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ao_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ao_shmem_startup;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = ao_process_utility;
	register_launcher();
}

/* Hook for every backend that loads the module late (no preload). */
void
ao_worker_init_backend(void)
{
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = ao_process_utility;
}

/*-------------------------------------------------------------------------
 * Launcher
 *-------------------------------------------------------------------------
 */

typedef struct LaunchedExecutor
{
	Oid			dboid;
	int			index;
	BackgroundWorkerHandle *handle;
} LaunchedExecutor;

static LaunchedExecutor launched[AO_MAX_DATABASES * AO_MAX_EXECUTORS];
static MemoryContext launcher_cxt = NULL;	/* reset after every scan */
static int	nlaunched = 0;

/* The executor's database, for agentorch.databases after a reload ("" in other processes). */
static char executor_dbname[NAMEDATALEN];

/* Is dbname allowed by agentorch.databases (empty = all)? */
static bool
database_allowed(const char *dbname)
{
	char	   *raw;
	List	   *names;
	ListCell   *lc;
	bool		ok = false;

	if (ao_databases == NULL || ao_databases[0] == '\0')
		return true;
	raw = pstrdup(ao_databases);
	if (!SplitIdentifierString(raw, ',', &names))
		return false;
	foreach(lc, names)
		ok = ok || strcmp((char *) lfirst(lc), dbname) == 0;
	return ok;
}

/* Start executor index of a database; false if no slot was available. */
static bool
launch_executor(Oid dboid, int index)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "agentorch");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ao_executor_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "agentorch executor %d for database %u", index, dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "agentorch executor");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	memcpy(worker.bgw_extra, &index, sizeof(int));
	worker.bgw_notify_pid = MyProcPid;
	{
		/* the handle must outlive the scan's memory context */
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		bool		ok = RegisterDynamicBackgroundWorker(&worker, &handle);

		MemoryContextSwitchTo(old);
		if (!ok)
			return false;
	}
	launched[nlaunched].dboid = dboid;
	launched[nlaunched].index = index;
	launched[nlaunched].handle = handle;
	nlaunched++;
	return true;
}

/* Is executor (dboid, index) known to be running (or starting)? */
static bool
executor_alive(Oid dboid, int index)
{
	for (int i = 0; i < nlaunched; i++)
	{
		pid_t		pid;

		if (launched[i].dboid != dboid || launched[i].index != index)
			continue;
		if (GetBackgroundWorkerPid(launched[i].handle, &pid) != BGWH_STOPPED)
			return true;
		/* forget the stopped one */
		pfree(launched[i].handle);
		launched[i] = launched[--nlaunched];
		return false;
	}
	return false;
}

/* One pass: make sure every served database has its executors. */
static void
launcher_scan(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	List	   *dbs = NIL;
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();
	bool		rescan = pg_atomic_exchange_u32(&ao_shared->rescan, 0) != 0;
	MemoryContext scan_cxt = CurrentMemoryContext;	/* outlives the transaction */
	bool		no_slot = false;
	static TimestampTz last_no_slot_warning = 0;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (!db->datallowconn || db->datistemplate || db->datconnlimit == -2)
			continue;
		if (!database_allowed(NameStr(db->datname)))
			continue;
		{
			MemoryContext old = MemoryContextSwitchTo(scan_cxt);

			dbs = lappend_oid(dbs, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	/* forget databases that are gone */
	LWLockAcquire(ao_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < AO_MAX_DATABASES; i++)
	{
		bool		busy = false;

		if (!OidIsValid(ao_shared->dbs[i].dboid) || list_member_oid(dbs, ao_shared->dbs[i].dboid))
			continue;
		for (int j = 0; j < AO_MAX_EXECUTORS; j++)
			busy = busy || ao_shared->dbs[i].pids[j] != 0;
		if (!busy)
			ao_shared->dbs[i].dboid = InvalidOid;
	}
	LWLockRelease(ao_shared->lock);

	foreach(lc, dbs)
	{
		Oid			dboid = lfirst_oid(lc);
		int			s;
		bool		has_ext;
		bool		probe;

		LWLockAcquire(ao_shared->lock, LW_EXCLUSIVE);
		s = ao_shmem_slot_of(dboid);
		if (s < 0)
		{
			s = ao_shmem_slot_of(InvalidOid);
			if (s >= 0)
			{
				memset(&ao_shared->dbs[s], 0, sizeof(AoDbSlot));
				ao_shared->dbs[s].dboid = dboid;
			}
		}
		if (s < 0)
		{
			LWLockRelease(ao_shared->lock);
			ereport(LOG, (errmsg("agentorch: more than %d databases, database %u is not served",
								 AO_MAX_DATABASES, dboid)));
			continue;
		}
		if (rescan)
		{
			ao_shared->dbs[s].no_extension = false;
			ao_shared->dbs[s].probe_after = 0;
		}
		has_ext = ao_shared->dbs[s].has_extension;
		probe = !ao_shared->dbs[s].no_extension || now >= ao_shared->dbs[s].probe_after;
		if (ao_shared->dbs[s].paused_until > now)
			probe = has_ext = false;
		LWLockRelease(ao_shared->lock);

		if ((has_ext || probe) && !executor_alive(dboid, 0) && !launch_executor(dboid, 0))
			no_slot = true;
		for (int i = 1; has_ext && i < Min(ao_max_workers, AO_MAX_EXECUTORS); i++)
			if (!executor_alive(dboid, i) && !launch_executor(dboid, i))
				no_slot = true;
	}
	list_free(dbs);

	/*
	 * Out of background worker slots: some database has fewer executors
	 * than agentorch.max_workers (none, maybe). Said in the log, at most
	 * once a minute; the next scans try again.
	 */
	if (no_slot && TimestampDifferenceExceeds(last_no_slot_warning, now, 60000))
	{
		last_no_slot_warning = now;
		ereport(WARNING,
				(errmsg("agentorch: no background worker slot is free for an executor; "
						"some databases have fewer executors than agentorch.max_workers, or none"),
				 errhint("Raise max_worker_processes (now %d; each served database takes up to "
						 "agentorch.max_workers = %d), or name fewer databases in agentorch.databases.",
						 max_worker_processes, ao_max_workers)));
	}
}

/*
 * Pin this worker's search_path to AO_SAFE_SEARCH_PATH for the whole
 * session, above the database's and role's defaults (ALTER DATABASE ...
 * SET search_path, applied while connecting, is set by whoever owns the
 * database): the executor runs its SQL as a superuser, so nothing on a
 * path an ordinary role can write may ever be found. User code (tools)
 * runs in nest levels of its own with the path captured for it.
 */
static void
ao_set_session_search_path(void)
{
	SetConfigOption("search_path", AO_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_SESSION);
}

/* Launcher main: scan, then sleep until woken or the naptime passes. */
void
ao_launcher_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	ao_set_session_search_path();
	pgstat_report_appname("agentorch launcher");

	ao_shared->launcher_latch = MyLatch;
	launcher_cxt = AllocSetContextCreate(TopMemoryContext, "agentorch launcher", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextSwitchTo(launcher_cxt);
		launcher_scan();
		MemoryContextReset(launcher_cxt);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ao_launcher_naptime_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*-------------------------------------------------------------------------
 * Executor
 *-------------------------------------------------------------------------
 */

/* On exit: clear our pid and latch from the slot. */
static void
executor_detach(int code, Datum arg)
{
	if (ao_my_slot < 0)
		return;
	ao_log("agentorch: executor %d of database %u stopped", ao_my_executor_index, MyDatabaseId);
	LWLockAcquire(ao_shared->lock, LW_EXCLUSIVE);
	if (ao_shared->dbs[ao_my_slot].pids[ao_my_executor_index] == MyProcPid)
	{
		ao_shared->dbs[ao_my_slot].pids[ao_my_executor_index] = 0;
		ao_shared->dbs[ao_my_slot].latches[ao_my_executor_index] = NULL;
	}
	LWLockRelease(ao_shared->lock);
	if (ao_shared->launcher_latch)
		SetLatch(ao_shared->launcher_latch);
}

/* Record whether this database has the extension; wake the launcher on news. */
static void
set_extension_state(bool present)
{
	bool		changed;

	LWLockAcquire(ao_shared->lock, LW_EXCLUSIVE);
	changed = ao_shared->dbs[ao_my_slot].has_extension != present;
	ao_shared->dbs[ao_my_slot].has_extension = present;
	ao_shared->dbs[ao_my_slot].no_extension = !present;
	if (!present)
		ao_shared->dbs[ao_my_slot].probe_after =
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ao_launcher_naptime_ms * 6);
	LWLockRelease(ao_shared->lock);
	if (changed && ao_shared->launcher_latch)
		SetLatch(ao_shared->launcher_latch);
}

/* Is the extension installed in this database? (in a transaction) */
static bool
extension_installed(void)
{
	return OidIsValid(get_extension_oid("agentorch", true));
}

/*
 * Claims that found nothing are not repeated while nothing new can be
 * there: the database's work generation (src/shmem) has not moved since
 * they began, no ready step's not_before has come due, and less than a
 * poll interval has passed (a bound for any change that woke nobody).
 * While requests stream, the loop turns once per socket event; before,
 * each turn ran both claim statements for nothing.
 */
typedef struct ClaimsIdle
{
	bool		valid;
	uint64		generation;		/* the work generation the empty claims began at */
	uint64		slots_freed;	/* request slots given back by then */
	TimestampTz until;			/* claim again from then on */
	TimestampTz recovery_at;	/* maintenance has work from then on */
} ClaimsIdle;

/*
 * Drive the requests in flight and settle those that finished, in one go:
 * a finished request is off curl's list, so it must not wait in a local
 * list across anything that may ERROR.
 */
static void
drive_requests(MemoryContext scratch)
{
	dlist_head	finished;

	MemoryContextSwitchTo(scratch);
	dlist_init(&finished);
	ao_net_poll(&finished);
	ao_net_steps_settle(&finished);
	MemoryContextReset(scratch);
}

/*
 * One iteration of the executor loop: maintenance (about once a second),
 * network steps (claim, then their requests go out at once), a batch of
 * transactional steps, settling finished requests, chunk flushes, and the
 * sleep when there is nothing to do.
 */
static void
executor_iteration(MemoryContext scratch, TimestampTz *last_maintenance_p, ClaimsIdle *idle)
{
	int			done = 0;
	int			started = 0;
	dlist_head	finished;
	TimestampTz now;
	long		sleep_ms;
	uint64		generation;

	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		/* a setting may let this executor claim what it could not (network_steps) */
		idle->valid = false;
		/* agentorch.databases no longer naming this database ends its executors */
		if (executor_dbname[0] != '\0' && !database_allowed(executor_dbname))
		{
			ao_log("agentorch: executor %d for database \"%s\" stops: agentorch.databases no longer names it",
				   ao_my_executor_index, executor_dbname);
			proc_exit(0);
		}
	}
	/* a lowered max_workers ends the executors beyond it */
	if (ao_my_executor_index >= ao_max_workers)
		proc_exit(0);

	now = GetCurrentTimestamp();
	if (TimestampDifferenceExceeds((*last_maintenance_p), now, 1000))
	{
		/* a dropped extension ends this executor (the launcher will not restart it) */
		StartTransactionCommand();
		if (!extension_installed())
		{
			CommitTransactionCommand();
			set_extension_state(false);
			proc_exit(0);
		}
		CommitTransactionCommand();

		MemoryContextSwitchTo(scratch);
		ao_executor_maintenance();
		(*last_maintenance_p) = now;
		MemoryContextReset(scratch);
		idle->valid = false;
	}

	generation = ao_work_generation();
	if (idle->valid && idle->generation == generation && idle->slots_freed == ao_net_steps_freed() &&
		now < idle->until)
		sleep_ms = Max(1, (idle->until - now) / 1000);
	else
	{
		uint64		slots_freed = ao_net_steps_freed();
		long		recovery_ms;

		/* network steps first: their requests go out before the batch runs */
		MemoryContextSwitchTo(scratch);
		started = ao_net_steps_claim();
		MemoryContextReset(scratch);
		drive_requests(scratch);

		MemoryContextSwitchTo(scratch);
		done = ao_executor_run_batch(InvalidOid, &sleep_ms, &recovery_ms);
		MemoryContextReset(scratch);
		if (done < 0)
		{
			/* the extension was dropped: this executor ends (the launcher will not restart it) */
			set_extension_state(false);
			proc_exit(0);
		}
		idle->valid = done == 0 && started == 0;
		idle->generation = generation;
		idle->slots_freed = slots_freed;
		idle->until = TimestampTzPlusMilliseconds(now, Min(sleep_ms, ao_poll_interval_ms));
		idle->recovery_at = TimestampTzPlusMilliseconds(now, recovery_ms);
	}

	drive_requests(scratch);
	MemoryContextSwitchTo(scratch);
	ao_net_steps_heartbeat();
	MemoryContextReset(scratch);
	if (done > 0 || started > 0)
	{
		/* busy: still write streamed chunks when they are due */
		if (ao_net_steps_next_flush_ms() == 0)
			ao_net_steps_flush();
		return;			/* more may be ready: loop without sleeping */
	}

	/*
	 * Idle: until a claimable step comes due, maintenance has work (not
	 * before its next turn, a second after the last), a chunk flush is due,
	 * or poll_interval passed; a commit that wakes the executors ends it.
	 */
	{
		TimestampTz maintenance_at = Max(idle->recovery_at,
										  TimestampTzPlusMilliseconds(*last_maintenance_p, 1000));

		sleep_ms = Min(sleep_ms, Max(1, (maintenance_at - now) / 1000 + 1));
	}
	MemoryContextSwitchTo(scratch);
	dlist_init(&finished);
	(void) ao_net_wait(Max(1, Min(Min(sleep_ms, ao_poll_interval_ms), ao_net_steps_next_flush_ms())),
					   &finished);
	ao_net_steps_settle(&finished);
	/* streamed chunks are written once per flush interval (the first one at once) */
	if (ao_net_steps_next_flush_ms() == 0)
		ao_net_steps_flush();
	MemoryContextReset(scratch);
}

/*
 * Executor main: worker_spi's skeleton. Each loop iteration does bounded
 * work in short transactions (see runner/claim.c) and sleeps on the latch when
 * there is nothing to do.
 */
void
ao_executor_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	MemoryContext scratch;
	static TimestampTz last_maintenance = 0;
	static ClaimsIdle claims_idle;

	memcpy(&ao_my_executor_index, MyBgworkerEntry->bgw_extra, sizeof(int));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	ao_set_session_search_path();
	pgstat_report_appname("agentorch executor");
	ao_log("agentorch: executor %d started for database %u (pid %d)", ao_my_executor_index, dboid, MyProcPid);

	LWLockAcquire(ao_shared->lock, LW_EXCLUSIVE);
	ao_my_slot = ao_shmem_slot_of(dboid);
	if (ao_my_slot >= 0)
	{
		ao_shared->dbs[ao_my_slot].pids[ao_my_executor_index] = MyProcPid;
		ao_shared->dbs[ao_my_slot].latches[ao_my_executor_index] = MyLatch;
	}
	LWLockRelease(ao_shared->lock);
	if (ao_my_slot < 0)
		proc_exit(0);
	before_shmem_exit(executor_detach, (Datum) 0);

	StartTransactionCommand();
	if (!extension_installed())
	{
		CommitTransactionCommand();
		set_extension_state(false);
		proc_exit(0);
	}
	{
		char	   *name = get_database_name(MyDatabaseId);

		if (name != NULL)
			strlcpy(executor_dbname, name, sizeof(executor_dbname));
	}
	CommitTransactionCommand();
	set_extension_state(true);

	scratch = AllocSetContextCreate(TopMemoryContext, "agentorch executor scratch",
									ALLOCSET_DEFAULT_SIZES);

	/*
	 * Hundreds of concurrent HTTP requests (and curl's idle keep-alive
	 * connections) need more descriptors than a backend's usual soft limit.
	 */
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
		{
			rl.rlim_cur = rl.rlim_max;
			(void) setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	{
		bool		clean;

		LWLockAcquire(ao_shared->lock, LW_EXCLUSIVE);
		clean = ao_shared->dbs[ao_my_slot].clean_exit[ao_my_executor_index];
		ao_shared->dbs[ao_my_slot].clean_exit[ao_my_executor_index] = false;
		LWLockRelease(ao_shared->lock);
		ao_executor_startup(ao_my_executor_index, !clean);
	}

	for (;;)
	{
		/*
		 * One iteration is one unit of work. An ERROR inside it is logged
		 * and the iteration abandoned (its transaction rolled back); steps
		 * it held become ready again or are recovered when their lease
		 * expires. The short sleep keeps a persistent error from spinning.
		 */
		PG_TRY();
		{
			executor_iteration(scratch, &last_maintenance, &claims_idle);
		}
		PG_CATCH();
		{
			HOLD_INTERRUPTS();
			claims_idle.valid = false;
			EmitErrorReport();
			FlushErrorState();
			AbortOutOfAnyTransaction();
			/*
			 * the careful-mode lock outlives a transaction: the abort does
			 * not release it (the step locks of network steps still running
			 * outlive it too, and stay held with their steps)
			 */
			ao_careful_lock_release();
			SPI_finish();
			MemoryContextSwitchTo(TopMemoryContext);
			MemoryContextReset(scratch);
			RESUME_INTERRUPTS();
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1000, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		PG_END_TRY();
	}
}

/*
 * agentorch._backend_alive(pid) RETURNS boolean: is a server process of
 * this pid (a backend or a background worker) running? Used by lease
 * recovery to take back at once the network steps of a holder that died.
 */
PG_FUNCTION_INFO_V1(ao_sql_backend_alive);
Datum
ao_sql_backend_alive(PG_FUNCTION_ARGS)
{
	int			pid = PG_GETARG_INT32(0);

	PG_RETURN_BOOL(pid > 0 && BackendPidGetProc(pid) != NULL);
}
