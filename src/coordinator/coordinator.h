/*-------------------------------------------------------------------------
 *
 * coordinator.h
 *	  The coordinator layer (coordinator.c): creating runs. Below the SQL
 *	  API, above the selector and the orchestration types.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/coordinator/coordinator.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_COORDINATOR_H
#define AO_COORDINATOR_H

#include "selector.h"
#include "orchestration.h"

/*
 * Create a run as the caller (start(), start_many(), run_workflow(),
 * run_sync()): orchestration NULL asks the selector; search_path is the
 * caller's, recorded for database.query. Returns the run id (an existing
 * one for a repeated idempotency key). ERRORs, changing nothing, on bad
 * input or options.
 */
extern int64 ao_start_run(Jsonb *input, const char *orchestration, const char *workflow, Jsonb *options,
						  const char *search_path);

/*
 * ao_start_run for many inputs with the same orchestration, workflow and
 * options (start_many()): each is checked and decided as start() would,
 * then all are created together. Returns the ids in the inputs' order.
 */
extern int64 *ao_start_runs(Jsonb **inputs, int n, const char *orchestration, const char *workflow,
							Jsonb *options, const char *search_path);

#endif							/* AO_COORDINATOR_H */
