/*-------------------------------------------------------------------------
 *
 * api.h
 *	  The SQL API layer (api_*.c, registry.c): thin SQL-callable wrappers.
 *	  Below the worker layer only.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/api/api.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_API_H
#define AO_API_H

#include "coordinator.h"
#include "runner.h"

/* graph rendering (api_graph.c) */
extern text *ao_render_graph(const char *definition, const char *title, const char *format,
							 const char *(*status) (void *arg, const char *step_id), void *arg);

#endif							/* AO_API_H */
