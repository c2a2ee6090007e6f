/*-------------------------------------------------------------------------
 *
 * rows.h
 *	  The state layer's row access (rows.c): rows of agentorch's tables
 *	  read, inserted and updated through the executor's row operations
 *	  (ExecSimpleRelationInsert/Update: defaults, constraints, indexes and
 *	  row triggers), with no SQL to parse or plan. Used by create.c,
 *	  finish.c and notify.c only; nothing outside src/state includes it.
 *	  Columns are named by string literals: ao_row_column remembers a name by its
 *	  address.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/state/rows.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_ROWS_H
#define AO_ROWS_H

#include "state.h"

#include "executor/executor.h"
#include "nodes/execnodes.h"

#define AO_ROWS_MAX_TABLES 6
#define AO_ROWS_BATCH 1000		/* rows of a table kept before they are written */
#define AO_ROWS_BATCH_BYTES 65536	/* ... or bytes of them */

/* A column value read once from text and kept for the rows that follow. */
typedef struct AoKeptValue
{
	int			column;
	const char *text;
	Datum		value;
} AoKeptValue;

/* One table: its result relation, the row being built, the row read, column defaults. */
typedef struct AoRowTable
{
	Oid			relid;
	Relation	rel;			/* NULL until first used (ao_rows_table) */
	bool		indexes_open;
	ResultRelInfo *rri;
	TupleTableSlot *slot;		/* the row to insert, or the new version of the row read */
	TupleTableSlot *old;		/* the row read (ao_row_fetch, ao_row_scan) */
	ExprState **defaults;		/* per column; NULL: no default (NULL) */
	bool	   *given;			/* per column: set for the row being built */
	int			batching;		/* inserts written together: 1 yes, -1 no, 0 not decided */
	TupleTableSlot **pending;	/* rows inserted, not yet written (AO_ROWS_BATCH at most) */
	int			npending;
	int			nslots;			/* slots made for them so far (reused after a write) */
	int			slots_cap;		/* room in pending */
	Size		pending_bytes;	/* their tuples' length */
	AoKeptValue kept[8];		/* ao_row_put_kept's values */
	int			nkept;
	struct
	{
		const char *name;
		int			index;
	}			columns_seen[40];	/* ao_row_column's answers, by the name's address */
	int			ncolumns_seen;
} AoRowTable;

/* The tables a state change writes, sharing one executor state. */
typedef struct AoRows
{
	EState	   *estate;
	EPQState	epq;
	int			n;
	AoRowTable	t[AO_ROWS_MAX_TABLES];
} AoRows;

extern void ao_rows_open(AoRows *w, int n, const char *const *tables);
extern void ao_rows_close(AoRows *w);
extern AoRowTable *ao_rows_table(AoRows *w, int i);

/* building a row to insert */
extern void ao_row_begin(AoRows *w, AoRowTable *t);
extern int	ao_row_column(AoRowTable *t, const char *name);
extern void ao_row_put(AoRowTable *t, const char *name, Datum value, bool isnull);
extern void ao_row_put_text(AoRowTable *t, const char *name, const char *text);
extern void ao_row_put_kept(AoRows *w, AoRowTable *t, const char *name, const char *text);
extern void ao_row_put_jsonb(AoRowTable *t, const char *name, Jsonb *value);
extern void ao_row_insert(AoRows *w, AoRowTable *t);
extern char *ao_row_text(AoRowTable *t, const char *name);

/* reading and updating rows */
extern bool ao_row_fetch(AoRows *w, AoRowTable *t, int nkeys, const Datum *keys, bool lock);
extern void ao_row_scan(AoRows *w, AoRowTable *t, int nkeys, const Datum *keys,
						bool (*found) (void *arg, AoRowTable *t), void *arg);
extern Datum ao_row_old(AoRowTable *t, const char *name, bool *isnull);
extern void ao_row_begin_update(AoRows *w, AoRowTable *t);
extern void ao_row_update(AoRows *w, AoRowTable *t);

#endif							/* AO_ROWS_H */
