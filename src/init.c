/*-------------------------------------------------------------------------
 *
 * init.c
 *	  Module entry point: the core's hooks, the settings (guc.c) and
 *	  (with preload) the background workers.
 *
 * agentorch works without shared_preload_libraries: the SQL API and the
 * in-session executor need only the module. With preload, _PG_init also
 * registers the launcher that starts executors for every database that has
 * the extension.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/init.c
 *
 *-------------------------------------------------------------------------
 */
#include "worker.h"

#include <limits.h>

#include "miscadmin.h"

PG_MODULE_MAGIC;


void		_PG_init(void);

/*
 * The core's out-of-memory handler (ao_core.h): an ERROR instead of the
 * core's default abort(), which would restart the cluster. What the core
 * had malloc'd at that point leaks.
 */
static void
ao_core_oom(size_t size)
{
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("out of memory in agentorch core (%zu bytes)", size)));
}

/*
 * The core's interrupt hook (ao_core.h): stop a long core computation
 * when a cancel, statement_timeout or termination is pending and can be
 * processed now. Only those: the core then returns "interrupted", and the
 * caller's CHECK_FOR_INTERRUPTS() (or its next one) raises the ERROR, so
 * no caller ever commits an "interrupted" result; harmless interrupts
 * (barriers, memory-context logging) wait for the next regular check.
 */
static int
ao_core_interrupt_pending(void)
{
	return INTERRUPTS_PENDING_CONDITION() && INTERRUPTS_CAN_BE_PROCESSED() &&
		(QueryCancelPending || ProcDiePending);
}

/*
 * Ready OpenSSL's MD5 in the postmaster, once, for every process it forks
 * (digest.c): a run's start hashes its pinned tools, and the first hash in
 * a process would load the provider -- about 2-3 ms of a new session's
 * first start. (OpenSSL itself is initialized already: the postmaster
 * draws its random numbers through it.)
 */
static void
ready_md5(void)
{
	if (!ao_digest_ready())
		ereport(LOG,
				(errmsg("agentorch: could not ready MD5 in the postmaster"),
				 errdetail("Each session fetches it at its first start instead.")));
}

/*
 * Define the settings (guc.c); under shared_preload_libraries also request shared
 * memory, register the launcher (worker/worker.c) and ready MD5 for the
 * backends.
 */
void
_PG_init(void)
{
	ao_set_oom_handler(ao_core_oom);
	ao_interrupt_check = ao_core_interrupt_pending;

	if (IsBinaryUpgrade)
		return;

	ao_define_settings();
	ao_llm_register();

	if (process_shared_preload_libraries_in_progress)
	{
		ao_worker_init();
		ready_md5();
	}
	else
		ao_worker_init_backend();
}
