/*-------------------------------------------------------------------------
 *
 * rows.c
 *	  Row access for the state layer's C writers (create.c, finish.c): a
 *	  few of agentorch's tables opened together under one executor state;
 *	  rows built column by column and inserted, rows read by their primary
 *	  key (one, or all with a key prefix) and updated. Inserts and updates
 *	  go through the executor's row operations (ExecSimpleRelationInsert
 *	  and ExecSimpleRelationUpdate): column defaults, constraints, indexes
 *	  and row triggers (the state machines' transition checks among them)
 *	  apply as they would to an INSERT or UPDATE; statement triggers,
 *	  privilege and row-security checks do not, which the state layer, the
 *	  tables' owner, does not need.
 *
 *	  Reads see what a statement run through SPI at that point would: the
 *	  transaction's own writes so far (CommandCounterIncrement when the
 *	  tables are opened) and, under READ COMMITTED, what others committed.
 *	  Rows written while the tables are open are seen after ao_rows_close.
 *
 *	  So the rows inserted into a table without insert triggers are
 *	  written together, as COPY writes them: each is checked when it is
 *	  inserted (defaults, constraints), kept, and written with its
 *	  neighbours by one table_multi_insert (one WAL record and one buffer
 *	  lock per page, not per row) when AO_ROWS_BATCH rows or
 *	  AO_ROWS_BATCH_BYTES are kept (COPY's limits: a run's row can hold
 *	  megabytes of pinned tools or input) and at ao_rows_close; its index
 *	  entries follow it. A unique violation is raised then, before
 *	  ao_rows_close returns.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/state/rows.c
 *
 *-------------------------------------------------------------------------
 */
#include "rows.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "nodes/makefuncs.h"
#include "parser/parse_relation.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/*
 * Set up access to tables[0..n) of schema agentorch (opened at their first
 * use, in the caller's order of use), and take the snapshot reads use.
 */
void
ao_rows_open(AoRows *w, int n, const char *const *tables)
{
	Oid			nsp = get_namespace_oid("agentorch", false);
	List	   *rtable = NIL;

	Assert(n > 0 && n <= AO_ROWS_MAX_TABLES);
	memset(w, 0, sizeof(AoRows));
	w->n = n;
	w->estate = CreateExecutorState();
	for (int i = 0; i < n; i++)
	{
		RangeTblEntry *rte = makeNode(RangeTblEntry);

		w->t[i].relid = get_relname_relid(tables[i], nsp);
		if (!OidIsValid(w->t[i].relid))
			elog(ERROR, "agentorch: table agentorch.%s is missing", tables[i]);
		rte->rtekind = RTE_RELATION;
		rte->relid = w->t[i].relid;
		rte->relkind = RELKIND_RELATION;
		rte->rellockmode = RowExclusiveLock;
		rtable = lappend(rtable, rte);
	}
	ExecInitRangeTable(w->estate, rtable);

	/* this transaction's writes so far are seen; reads and writes below use one command id */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	w->estate->es_snapshot = GetActiveSnapshot();
	w->estate->es_output_cid = GetCurrentCommandId(true);
	EvalPlanQualInit(&w->epq, w->estate, NULL, NIL, -1);
	AfterTriggerBeginQuery();
}

/* Table i, opened at its first use (its indexes and column defaults only when it is written). */
AoRowTable *
ao_rows_table(AoRows *w, int i)
{
	AoRowTable *t = &w->t[i];
	TupleDesc	desc;
	RangeTblEntry *rte;
	MemoryContext old;

	Assert(i >= 0 && i < w->n);
	if (t->rel != NULL)
		return t;
	old = MemoryContextSwitchTo(w->estate->es_query_cxt);
	rte = exec_rt_fetch(i + 1, w->estate);
	t->rel = table_open(t->relid, RowExclusiveLock);
	t->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(t->rri, t->rel, i + 1, NULL, 0);
	/* where AFTER row triggers find their relation */
	w->estate->es_opened_result_relations = lappend(w->estate->es_opened_result_relations, t->rri);
	/*
	 * The triggers' functions, looked up now in the executor state's
	 * memory: looked up at their first call, they would live in the
	 * caller's (a per-run context, reset between runs), and so would the
	 * cache fmgr_security_definer keeps for a function with SET.
	 */
	if (t->rri->ri_TrigDesc != NULL)
		for (int k = 0; k < t->rri->ri_TrigDesc->numtriggers; k++)
			fmgr_info_cxt(t->rri->ri_TrigDesc->triggers[k].tgfoid, &t->rri->ri_TrigFunctions[k],
						  w->estate->es_query_cxt);
	desc = RelationGetDescr(t->rel);
	t->slot = ExecInitExtraTupleSlot(w->estate, desc, &TTSOpsVirtual);
	t->old = ExecInitExtraTupleSlot(w->estate, desc, table_slot_callbacks(t->rel));
	t->given = palloc0(sizeof(bool) * desc->natts);
	/*
	 * An update may change any column: triggers "BEFORE UPDATE OF column"
	 * are considered (their WHEN clauses decide).
	 */
	for (int a = 0; a < desc->natts; a++)
		if (!TupleDescAttr(desc, a)->attisdropped)
			rte->updatedCols = bms_add_member(rte->updatedCols, a + 1 - FirstLowInvalidHeapAttributeNumber);
	MemoryContextSwitchTo(old);
	return t;
}

/* Before t is written: its indexes open, and (for an insert) its column defaults ready. */
static void
prepare_write(AoRows *w, AoRowTable *t, bool insert)
{
	MemoryContext old = MemoryContextSwitchTo(w->estate->es_query_cxt);

	if (!t->indexes_open)
	{
		ExecOpenIndices(t->rri, false);
		t->indexes_open = true;
	}
	if (insert && t->defaults == NULL)
	{
		TupleDesc	desc = RelationGetDescr(t->rel);

		t->defaults = palloc0(sizeof(ExprState *) * desc->natts);
		for (int a = 0; a < desc->natts; a++)
		{
			Node	   *d;

			/* a generated column is computed by the insert itself */
			if (TupleDescAttr(desc, a)->attisdropped || TupleDescAttr(desc, a)->attgenerated)
				continue;
			d = build_column_default(t->rel, a + 1);
			if (d != NULL)
				t->defaults[a] = ExecPrepareExpr((Expr *) d, w->estate);
		}
	}
	MemoryContextSwitchTo(old);
}

/* Write the rows kept for t: the heap first, all together, then their index entries. */
static void
write_pending(AoRows *w, AoRowTable *t)
{
	if (t->npending == 0)
		return;
	table_multi_insert(t->rel, t->pending, t->npending, GetCurrentCommandId(true), 0, NULL);
	for (int i = 0; i < t->npending; i++)
	{
		if (t->rri->ri_NumIndices > 0)
			list_free(ExecInsertIndexTuples(t->rri, t->pending[i], w->estate, false, false, NULL, NIL));
		ExecClearTuple(t->pending[i]);
	}
	t->npending = 0;
	t->pending_bytes = 0;
}

/*
 * May t's inserts be kept and written together? Only what
 * ExecSimpleRelationInsert would do for them besides the insert itself is
 * done when a row is kept (checks); so not for a table with row triggers
 * on insert or a transition table, stored generated columns, or a
 * partition.
 */
static bool
can_batch(AoRowTable *t)
{
	TriggerDesc *td = t->rri->ri_TrigDesc;
	TupleConstr *constr = RelationGetDescr(t->rel)->constr;

	if (t->rel->rd_rel->relkind != RELKIND_RELATION || t->rel->rd_rel->relispartition)
		return false;
	if (td != NULL && (td->trig_insert_before_row || td->trig_insert_after_row ||
					   td->trig_insert_instead_row || td->trig_insert_new_table))
		return false;
	return constr == NULL || !constr->has_generated_stored;
}

/* Fire the queued AFTER triggers, close the tables; what follows in this transaction sees the rows. */
void
ao_rows_close(AoRows *w)
{
	for (int i = 0; i < w->n; i++)
		if (w->t[i].rel != NULL)
			write_pending(w, &w->t[i]);
	AfterTriggerEndQuery(w->estate);
	EvalPlanQualEnd(&w->epq);
	for (int i = 0; i < w->n; i++)
		if (w->t[i].rel != NULL)
		{
			if (w->t[i].indexes_open)
				ExecCloseIndices(w->t[i].rri);
			table_close(w->t[i].rel, NoLock);
		}
	ExecResetTupleTable(w->estate->es_tupleTable, false);
	FreeExecutorState(w->estate);
	PopActiveSnapshot();
	CommandCounterIncrement();
}

/* Start a row of t: every column unset (a column left unset gets its default). */
void
ao_row_begin(AoRows *w, AoRowTable *t)
{
	ResetPerTupleExprContext(w->estate);
	ExecClearTuple(t->slot);
	memset(t->given, 0, sizeof(bool) * t->slot->tts_tupleDescriptor->natts);
}

int
ao_row_column(AoRowTable *t, const char *name)
{
	AttrNumber	a;

	/* callers name columns with literals: the same pointer is the same column */
	for (int i = 0; i < t->ncolumns_seen; i++)
		if (t->columns_seen[i].name == name)
			return t->columns_seen[i].index;
	a = attnameAttNum(t->rel, name, false);
	if (a == InvalidAttrNumber)
		elog(ERROR, "agentorch: column %s of agentorch.%s is missing", name, RelationGetRelationName(t->rel));
	if (t->ncolumns_seen < lengthof(t->columns_seen))
	{
		t->columns_seen[t->ncolumns_seen].name = name;
		t->columns_seen[t->ncolumns_seen].index = a - 1;
		t->ncolumns_seen++;
	}
	return a - 1;
}

void
ao_row_put(AoRowTable *t, const char *name, Datum value, bool isnull)
{
	int			a = ao_row_column(t, name);

	t->slot->tts_values[a] = value;
	t->slot->tts_isnull[a] = isnull;
	t->given[a] = true;
}

/* A column from text, through its type's input function (enums, text). */
void
ao_row_put_text(AoRowTable *t, const char *name, const char *text)
{
	int			a = ao_row_column(t, name);
	Form_pg_attribute att = TupleDescAttr(t->slot->tts_tupleDescriptor, a);
	Oid			input;
	Oid			ioparam;

	if (text == NULL)
	{
		ao_row_put(t, name, (Datum) 0, true);
		return;
	}
	getTypeInputInfo(att->atttypid, &input, &ioparam);
	ao_row_put(t, name, OidInputFunctionCall(input, (char *) text, ioparam, att->atttypmod), false);
}

/*
 * ao_row_put_text for a value of a small set (a status, a kind, a
 * constant), read once while the tables are open and kept in the executor
 * state's memory.
 */
void
ao_row_put_kept(AoRows *w, AoRowTable *t, const char *name, const char *text)
{
	int			a = ao_row_column(t, name);
	MemoryContext old;

	for (int i = 0; i < t->nkept; i++)
		if (t->kept[i].column == a && strcmp(t->kept[i].text, text) == 0)
		{
			ao_row_put(t, name, t->kept[i].value, false);
			return;
		}
	old = MemoryContextSwitchTo(w->estate->es_query_cxt);
	ao_row_put_text(t, name, text);
	if (t->nkept < lengthof(t->kept))
	{
		t->kept[t->nkept].column = a;
		t->kept[t->nkept].text = pstrdup(text);
		t->kept[t->nkept].value = t->slot->tts_values[a];
		t->nkept++;
	}
	MemoryContextSwitchTo(old);
}

void
ao_row_put_jsonb(AoRowTable *t, const char *name, Jsonb *value)
{
	ao_row_put(t, name, value ? JsonbPGetDatum(value) : (Datum) 0, value == NULL);
}

/* Insert the row built: defaults for the columns not given, then the executor's insert. */
void
ao_row_insert(AoRows *w, AoRowTable *t)
{
	TupleTableSlot *slot = t->slot;
	ExprContext *econtext = GetPerTupleExprContext(w->estate);

	prepare_write(w, t, true);
	for (int a = 0; a < slot->tts_tupleDescriptor->natts; a++)
		if (!t->given[a])
		{
			if (t->defaults[a] != NULL)
				slot->tts_values[a] = ExecEvalExprSwitchContext(t->defaults[a], econtext, &slot->tts_isnull[a]);
			else
			{
				slot->tts_values[a] = (Datum) 0;
				slot->tts_isnull[a] = true;
			}
		}
	ExecStoreVirtualTuple(slot);
	if (t->batching == 0)
	{
		t->batching = can_batch(t) ? 1 : -1;
		if (t->batching > 0)
			CheckCmdReplicaIdentity(t->rel, CMD_INSERT);
	}
	if (t->batching < 0)
	{
		ExecSimpleRelationInsert(t->rri, w->estate, slot);
		return;
	}
	/* checked now, as ExecSimpleRelationInsert checks it; written with its neighbours */
	if (t->rel->rd_att->constr)
		ExecConstraints(t->rri, slot, w->estate);
	if (t->npending == t->nslots)
	{
		/* the executor state's memory: the caller's may be reset between rows (a run's) */
		MemoryContext old = MemoryContextSwitchTo(w->estate->es_query_cxt);

		if (t->nslots == t->slots_cap)
		{
			t->slots_cap = t->slots_cap == 0 ? 16 : Min(t->slots_cap * 2, AO_ROWS_BATCH);
			t->pending = t->pending ? repalloc(t->pending, sizeof(TupleTableSlot *) * t->slots_cap)
				: palloc(sizeof(TupleTableSlot *) * t->slots_cap);
		}
		t->pending[t->nslots++] = ExecInitExtraTupleSlot(w->estate, RelationGetDescr(t->rel),
														 table_slot_callbacks(t->rel));
		MemoryContextSwitchTo(old);
	}
	/* the copy lives in the slot's memory (the executor state's) */
	ExecCopySlot(t->pending[t->npending], slot);
	t->pending_bytes += ExecFetchSlotHeapTuple(t->pending[t->npending], false, NULL)->t_len;
	t->npending++;
	if (t->npending == AO_ROWS_BATCH || t->pending_bytes >= AO_ROWS_BATCH_BYTES)
		write_pending(w, t);
}

/* A text column of the row just inserted or built (copied; NULL for NULL). */
char *
ao_row_text(AoRowTable *t, const char *name)
{
	int			a = ao_row_column(t, name);

	if (t->slot->tts_isnull[a])
		return NULL;
	return TextDatumGetCString(t->slot->tts_values[a]);
}

/* Scan keys for the first nkeys columns of t's primary key; returns the index, open. */
static Relation
open_primary_key(AoRowTable *t, int nkeys, const Datum *keys, ScanKeyData *sk)
{
	Oid			pk = RelationGetPrimaryKeyIndex(t->rel);
	Relation	idx;

	if (!OidIsValid(pk))
		elog(ERROR, "agentorch: agentorch.%s has no primary key", RelationGetRelationName(t->rel));
	idx = index_open(pk, AccessShareLock);
	ao_index_equal_keys(idx, nkeys, keys, sk);
	return idx;
}

/*
 * Read the row of t whose primary key is keys (all its columns) into
 * t->old. With lock, the row is locked as an UPDATE would lock it, waiting
 * for a concurrent writer, and t->old is its latest version. False: no
 * such row (or it was deleted meanwhile).
 */
bool
ao_row_fetch(AoRows *w, AoRowTable *t, int nkeys, const Datum *keys, bool lock)
{
	ScanKeyData sk[INDEX_MAX_KEYS];
	Relation	idx = open_primary_key(t, nkeys, keys, sk);
	IndexScanDesc scan;
	bool		found;

	scan = index_beginscan(t->rel, idx, w->estate->es_snapshot, nkeys, 0);
	index_rescan(scan, sk, nkeys, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, t->old);
	index_endscan(scan);
	index_close(idx, AccessShareLock);
	if (found && lock)
	{
		TM_FailureData tmfd;
		TM_Result	r;

		r = table_tuple_lock(t->rel, &t->old->tts_tid, w->estate->es_snapshot, t->old, w->estate->es_output_cid,
							 LockTupleNoKeyExclusive, LockWaitBlock, TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd);
		if (r == TM_Deleted)
			found = false;
		else if (r != TM_Ok)
			elog(ERROR, "agentorch: could not lock a row of agentorch.%s (%d)", RelationGetRelationName(t->rel),
				 (int) r);
	}
	return found;
}

/* Every row of t whose primary key starts with keys, in key order, each in t->old, until found says stop. */
void
ao_row_scan(AoRows *w, AoRowTable *t, int nkeys, const Datum *keys, bool (*found) (void *arg, AoRowTable *t),
			void *arg)
{
	ScanKeyData sk[INDEX_MAX_KEYS];
	Relation	idx = open_primary_key(t, nkeys, keys, sk);
	IndexScanDesc scan;

	scan = index_beginscan(t->rel, idx, w->estate->es_snapshot, nkeys, 0);
	index_rescan(scan, sk, nkeys, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, t->old))
		if (!found(arg, t))
			break;
	index_endscan(scan);
	index_close(idx, AccessShareLock);
}

/* A column of the row read. */
Datum
ao_row_old(AoRowTable *t, const char *name, bool *isnull)
{
	return slot_getattr(t->old, ao_row_column(t, name) + 1, isnull);
}

/* Start the new version of the row read: every column as it is (ao_row_put changes some). */
void
ao_row_begin_update(AoRows *w, AoRowTable *t)
{
	TupleTableSlot *old = t->old;
	int			natts = old->tts_tupleDescriptor->natts;

	ResetPerTupleExprContext(w->estate);
	ExecClearTuple(t->slot);
	slot_getallattrs(old);
	memcpy(t->slot->tts_values, old->tts_values, sizeof(Datum) * natts);
	memcpy(t->slot->tts_isnull, old->tts_isnull, sizeof(bool) * natts);
	memset(t->given, 0, sizeof(bool) * natts);
}

/* Write the new version of the row read (t->old stays what it was). */
void
ao_row_update(AoRows *w, AoRowTable *t)
{
	prepare_write(w, t, false);
	ExecStoreVirtualTuple(t->slot);
	ExecSimpleRelationUpdate(t->rri, w->estate, &w->epq, t->old, t->slot);
}
