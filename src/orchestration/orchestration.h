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

/*
 * The planner's own checks of a plan that need no run, for validate_plan
 * once a plan passed the workflow checks (its schema among them):
 * database.query is never used, models are registered, and what
 * ao_plan_check finds. Its problems are added to p.
 */
extern void ao_planner_check_plan(json_object *plan, ao_problems *p);

/* The run's max_replans option, else agentorch.max_replans. */
extern int	ao_planner_max_replans(json_object *options);

#endif							/* AO_ORCHESTRATION_H */
