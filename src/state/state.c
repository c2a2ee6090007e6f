/*-------------------------------------------------------------------------
 *
 * state.c
 *	  C side of the state layer: calls into the plpgsql functions of
 *	  sql/agentorch_state.sql, the only writers of run and step state
 *	  (README.md in this folder draws the states and the lock order).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/state/state.c
 *
 *-------------------------------------------------------------------------
 */
#include "state.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"

/* Call a state-layer function that takes (run bigint, step text, ...). */
void
ao_state_call(const char *sql, int64 run, const char *step, int nextra, Oid *extra_types,
			  Datum *extra_values, const char *extra_nulls)
{
	Oid			types[8] = {INT8OID, TEXTOID};
	Datum		values[8];
	char		nulls[8];

	values[0] = Int64GetDatum(run);
	values[1] = CStringGetTextDatum(step);
	nulls[0] = nulls[1] = ' ';
	for (int i = 0; i < nextra; i++)
	{
		types[2 + i] = extra_types[i];
		values[2 + i] = extra_values[i];
		nulls[2 + i] = extra_nulls ? extra_nulls[i] : ' ';
	}
	ao_spi_exec(sql, 2 + nextra, types, values, nulls, 0);
}
