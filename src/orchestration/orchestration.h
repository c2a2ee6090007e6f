/*-------------------------------------------------------------------------
 *
 * orchestration.h
 *	  The orchestration layer: the planner and reactive types (planner.c);
 *	  simple and fixed runs are made by the state layer (sql/agentorch_state.sql).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/orchestration/orchestration.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_ORCHESTRATION_H
#define AO_ORCHESTRATION_H

#include "runner.h"

/* The body of a new planner run: {"steps": [its first planner step]}. */
extern Jsonb *ao_planner_body(json_object *input, json_object *options, Jsonb *tools);

/* The run's max_replans option, else agentorch.max_replans. */
extern int	ao_planner_max_replans(json_object *options);

#endif							/* AO_ORCHESTRATION_H */
