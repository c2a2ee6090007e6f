/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The worker layer (worker.c), the top: the launcher and executor main
 *	  loops, the shared memory hooks and the DROP DATABASE hook.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/worker/worker.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_WORKER_H
#define AO_WORKER_H

#include "api.h"

extern void ao_worker_init(void);
extern void ao_worker_init_backend(void);

#endif							/* AO_WORKER_H */
