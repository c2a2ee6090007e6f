/*-------------------------------------------------------------------------
 *
 * planner.h
 *	  The planner and reactive orchestration types (planner.c).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/orchestration/planner.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_PLANNER_H
#define AO_PLANNER_H

#include "agentorch.h"

/* The body of a new planner run: {"steps": [its first planner step]}. */
extern Jsonb *ao_planner_body(json_object *input, json_object *options, Jsonb *tools);

/* The run's max_replans option, else agentorch.max_replans. */
extern int	ao_planner_max_replans(json_object *options);

#endif							/* AO_PLANNER_H */
