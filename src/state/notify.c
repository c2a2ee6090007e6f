/*-------------------------------------------------------------------------
 *
 * notify.c
 *	  The state layer's notifications written in C: their payloads (a run
 *	  channel's chunk, the lifecycle channel's event), and a batch's run
 *	  notifications -- each run touched, once, on its private channel, with
 *	  its latest chunk: what agentorch._notify_runs(runs) sends, without a
 *	  statement per batch.
 *
 * Channel agentorch_run_<id>_<channel token>; payload {"run_id", "seq",
 * "kind", "content"} of the chunk at the run's last_chunk_seq, or
 * {"run_id", "seq", "kind", "truncated": true} when the queue is filling
 * (stream.c's ao_notify_mode) or the payload would not fit a NOTIFY;
 * nothing when the queue is nearly full. Runs without that chunk (none
 * yet, or gone) are left out, as the SQL's join leaves them out.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/state/notify.c
 *
 *-------------------------------------------------------------------------
 */
#include "rows.h"

#include "commands/async.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "guc.h"

/* above this many bytes a payload goes without its content (as in _notify_runs) */
#define AO_NOTIFY_PAYLOAD_MAX 7900

enum
{
	T_RUNS,
	T_CHUNKS,
	T_COUNT
};
static const char *const table_names[T_COUNT] = {"runs", "chunks"};

/*
 * The lifecycle channel's payload (agentorch_events, which every role may
 * LISTEN to; palloc'd text): the run's id, the event, its status and the
 * owner's oid, never content -- what _notify_lifecycles sends.
 */
char *
ao_state_lifecycle_payload(int64 run, const char *event, const char *status, Oid owner)
{
	static const char *const keys[] = {"run_id", "event", "status", "owner"};
	JsonbValue	values[4];
	Jsonb	   *payload;

	values[0] = ao_jv_int(run);
	values[1] = ao_jv_string(event);
	values[2] = ao_jv_string(status);
	/* an oid is a JSON string, as jsonb_build_object gives it */
	values[3] = ao_jv_string(psprintf("%u", owner));
	payload = ao_jsonb_object(4, keys, values);
	return JsonbToCString(NULL, &payload->root, VARSIZE(payload));
}

/*
 * A run channel's payload for its chunk seq (palloc'd text): the chunk
 * itself, or, with mode NOTIFY_NO_CONTENT or past what a NOTIFY carries,
 * the chunk's place only ("truncated"). content NULL: JSON null.
 */
char *
ao_state_chunk_payload(int64 run, int64 seq, const char *kind, const char *content, int mode)
{
	static const char *const chunk_keys[] = {"run_id", "seq", "kind", "content"};
	static const char *const truncated_keys[] = {"run_id", "seq", "kind", "truncated"};
	JsonbValue	values[4];
	Jsonb	   *payload;
	char	   *text;

	values[0] = ao_jv_int(run);
	values[1] = ao_jv_int(seq);
	values[2] = ao_jv_string(kind);
	if (mode == NOTIFY_FULL)
	{
		if (content == NULL)
			values[3].type = jbvNull;
		else
			values[3] = ao_jv_string(content);
		payload = ao_jsonb_object(4, chunk_keys, values);
		text = JsonbToCString(NULL, &payload->root, VARSIZE(payload));
		if (strlen(text) <= AO_NOTIFY_PAYLOAD_MAX)
			return text;
	}
	values[3].type = jbvBool;
	values[3].val.boolean = true;
	payload = ao_jsonb_object(4, truncated_keys, values);
	return JsonbToCString(NULL, &payload->root, VARSIZE(payload));
}

/*
 * Notify each run of runs (palloc'd int64s, each once) in the order given;
 * on a database at 0.1.0, or with agentorch.state_sql_only, through the
 * SQL functions (ao_notify_runs).
 */
void
ao_state_notify_runs(List *runs)
{
	AoRows		w;
	ListCell   *lc;
	int			mode;
	MemoryContext payloads;
	MemoryContext caller;

	if (runs == NIL)
		return;
	if (ao_state_sql_only || !ao_schema_at_least(0, 2))
	{
		ao_notify_runs(runs);
		return;
	}
	mode = ao_notify_mode();
	if (mode == NOTIFY_NONE)
		return;					/* the queue is held by a listener: clients read the rows */
	ao_rows_open(&w, T_COUNT, table_names);
	/* Async_Notify keeps its own copies: what a run's notification needs is freed after it */
	payloads = AllocSetContextCreate(CurrentMemoryContext, "agentorch notify payloads", ALLOCSET_DEFAULT_SIZES);
	caller = MemoryContextSwitchTo(payloads);
	foreach(lc, runs)
	{
		int64		run = *(int64 *) lfirst(lc);
		AoRowTable *rt = ao_rows_table(&w, T_RUNS);
		AoRowTable *ct = ao_rows_table(&w, T_CHUNKS);
		Datum		keys[2];
		bool		isnull;
		Datum		d;
		char	   *token;
		char	   *kind;
		char	   *content;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(payloads);
		keys[0] = Int64GetDatum(run);
		if (!ao_row_fetch(&w, rt, 1, keys, false))
			continue;
		token = TextDatumGetCString(ao_row_old(rt, "channel_token", &isnull));
		keys[1] = ao_row_old(rt, "last_chunk_seq", &isnull);
		if (!ao_row_fetch(&w, ct, 2, keys, false))
			continue;
		kind = DatumGetCString(DirectFunctionCall1(enum_out, ao_row_old(ct, "kind", &isnull)));
		d = ao_row_old(ct, "content", &isnull);
		content = isnull ? NULL : TextDatumGetCString(d);
		Async_Notify(psprintf("agentorch_run_" INT64_FORMAT "_%s", run, token),
					 ao_state_chunk_payload(run, DatumGetInt64(keys[1]), kind, content, mode));
	}
	MemoryContextSwitchTo(caller);
	ao_rows_close(&w);
	MemoryContextDelete(payloads);
}
