/*-------------------------------------------------------------------------
 *
 * state.h
 *	  The state layer (state.c and sql/agentorch_state.sql): the only writer
 *	  of run and step state. Above stream.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/state/state.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_STATE_H
#define AO_STATE_H

#include "stream.h"

extern void ao_state_call(const char *sql, int64 run, const char *step, int nextra, Oid *extra_types,
						  Datum *extra_values, const char *extra_nulls);

#endif							/* AO_STATE_H */
