/*-------------------------------------------------------------------------
 *
 * stream.c
 *	  How much the stream layer may put into PostgreSQL's notification
 *	  queue right now.
 *
 * NOTIFY shares one cluster-wide queue; a session that LISTENs and then
 * stops reading (or stays idle in a transaction) keeps every notification
 * after its position, and once the queue is full every transaction that
 * notifies fails at commit. The engine must never stop because of that:
 * rows are the stream and a notification is only a wake-up. So the state
 * layer (agentorch._notify_run, _notify_lifecycle) asks _notify_mode()
 * before each NOTIFY: with the queue above half of
 * agentorch.notify_queue_limit, payloads carry no content (clients read
 * the rows); above the limit, nothing is sent. A warning names the session
 * holding the queue in the server log (never to a client: it names
 * another role's session), at most every 10 seconds per process.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/stream/stream.c
 *
 *-------------------------------------------------------------------------
 */
#include "stream.h"

#include "catalog/pg_type.h"
#include "utils/array.h"

#include "commands/async.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"


static TimestampTz last_warning = 0;

/*
 * Warn (rate-limited) that the queue is filling, naming the session with
 * the oldest open transaction among those that LISTEN-capable clients
 * hold -- the usual culprit -- from pg_stat_activity.
 */
static void
warn_queue_filling(double usage, int mode)
{
	TimestampTz now = GetCurrentTimestamp();
	char	   *who = NULL;

	if (last_warning != 0 && !TimestampDifferenceExceeds(last_warning, now, 10000))
		return;
	last_warning = now;
	if (SPI_connect() == SPI_OK_CONNECT)
	{
		if (SPI_execute("SELECT a.pid::text || ' (' || COALESCE(a.usename::text, '?') || ', ' || "
						"COALESCE(a.application_name, '') || ', ' || COALESCE(a.state, '') || ')' "
						"FROM pg_catalog.pg_stat_activity a "
						"WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend' "
						"  AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid() "
						"  AND a.xact_start IS NOT NULL "
						"ORDER BY a.xact_start LIMIT 1", true, 1) == SPI_OK_SELECT &&
			SPI_processed == 1)
			who = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (who)
			who = pstrdup(who);
		SPI_finish();
	}
	/* server log only: the detail names another role's session */
	ereport(LOG_SERVER_ONLY,
			(errmsg("the NOTIFY queue is %.6f%% full: agentorch %s", usage * 100.0,
					mode == NOTIFY_NONE ? "sends no notifications" : "sends notifications without content"),
			 errdetail("The session holding the queue is probably the one with the oldest transaction: %s.",
					   who ? who : "none found"),
			 errhint("A session that LISTENs must keep reading and not stay idle in a transaction; "
					 "runs go on, and clients read their rows (agentorch.stream(), agentorch.follow()).")));
}

/*
 * agentorch._notify_mode() RETURNS int: 0 notify with content, 1 without
 * content, 2 not at all (see the file header).
 */
int
ao_notify_mode(void)
{
	double		usage = DatumGetFloat8(DirectFunctionCall1(pg_notification_queue_usage, (Datum) 0));
	int			mode = NOTIFY_FULL;

	if (usage > ao_notify_queue_limit)
		mode = NOTIFY_NONE;
	else if (usage > ao_notify_queue_limit / 2)
		mode = NOTIFY_NO_CONTENT;
	if (mode != NOTIFY_FULL)
		warn_queue_filling(usage, mode);
	return mode;
}

PG_FUNCTION_INFO_V1(ao_sql_notify_mode);
Datum
ao_sql_notify_mode(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(ao_notify_mode());
}

/*
 * Add a run id to a list of runs (palloc'd int64s) unless it is there
 * already: the runs a transaction touched, to notify each once.
 */
List *
ao_run_list_add(List *list, int64 value)
{
	ListCell   *lc;
	int64	   *p;

	foreach(lc, list)
		if (*(int64 *) lfirst(lc) == value)
			return list;
	p = palloc(sizeof(int64));
	*p = value;
	return lappend(list, p);
}

/*
 * NOTIFY each touched run once (coalesced per transaction): one
 * _notify_runs call for all (a 0.1.0 schema has only _notify_run).
 */
void
ao_notify_runs(List *runs)
{
	ListCell   *lc;

	if (runs == NIL)
		return;
	if (ao_schema_at_least(0, 2))
	{
		Oid			t[1] = {INT8ARRAYOID};
		Datum		v[1];
		Datum	   *ids = palloc(sizeof(Datum) * list_length(runs));
		int			n = 0;

		foreach(lc, runs)
			ids[n++] = Int64GetDatum(*(int64 *) lfirst(lc));
		v[0] = PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		ao_spi_exec("SELECT agentorch._notify_runs($1)", 1, t, v, NULL, SPI_OK_SELECT);
		return;
	}
	foreach(lc, runs)
	{
		Oid			t[1] = {INT8OID};
		Datum		v[1];

		v[0] = Int64GetDatum(*(int64 *) lfirst(lc));
		ao_spi_exec("SELECT agentorch._notify_run($1)", 1, t, v, NULL, SPI_OK_SELECT);
	}
}
