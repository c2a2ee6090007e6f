/*
 * ao_bench.c -- the timing client of test/bench/engine_bench.sh.
 *
 * A small libpq program, so that what is timed is the database and not a
 * shell: one process, unix-socket connections, CLOCK_MONOTONIC, select()
 * on the sockets. Modes (CONNINFO is a libpq connection string):
 *
 *   ao_bench CONNINFO throughput WORKFLOW NRUNS STEPS_PER_RUN TIMEOUT_S
 *       Starts NRUNS runs of WORKFLOW in one transaction (one statement,
 *       SELECT agentorch.run_workflow(...) FROM generate_series; with
 *       WORKFLOW "many:NAME", one agentorch.start_many() call), then
 *       waits until every one of them has finished (agentorch.wait on
 *       the highest unfinished id, repeated). Reports runs/s and steps/s
 *       from just before the start statement to the moment the last run
 *       is seen finished, plus executor commits and WAL bytes per step,
 *       and the CPU time (from /proc/<pid>/stat) the database's executors
 *       spent per step and the starting backend spent per run.
 *
 *   ao_bench CONNINFO latency WORKFLOW N
 *       N times, sequentially: run_workflow (its own autocommit
 *       transaction) then agentorch.wait on it; times start -> finished.
 *
 *   ao_bench CONNINFO latency_new WORKFLOW N
 *       As latency, each run from a new connection (made before the
 *       clock starts): the cost of a session's first start(). Then, when
 *       the baseline's tables exist, its step N times from a warm
 *       connection and N times each from a new one (PostgreSQL's own
 *       cost of a new session).
 *
 *   ao_bench CONNINFO listen WORKFLOW N
 *       A second connection LISTENs on agentorch_events; N times: send
 *       run_workflow on the first connection and time, from just before
 *       the send, the arrival at the listener of run_started (the first
 *       status notification of the run) and of run_succeeded; the next
 *       start is sent only after the run finished.
 *
 * Every mode prints human-readable lines and one "RESULT key=value ..."
 * line that the shell script parses. Exit status 0 unless something
 * failed (a run not succeeding is reported, not fatal).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define BENCH_NAME "ao_bench"
#include "bench_common.h"

/* Executor commits so far (agentorch.metrics) and the current WAL position in bytes. */
static void
counters(PGconn *conn, double *commits, double *wal)
{
	PGresult   *r = exec(conn,
						 "SELECT (SELECT value FROM agentorch.metrics() WHERE name = 'executor_commits_total'), "
						 "       pg_current_wal_lsn() - '0/0'::pg_lsn", 0, NULL);

	*commits = atof(PQgetvalue(r, 0, 0));
	*wal = atof(PQgetvalue(r, 0, 1));
	PQclear(r);
}

/* CPU ms of this database's executors and of our own backend. */
static void
cpu_counters(PGconn *conn, double *executors, double *own)
{
	PGresult   *r = exec(conn, "SELECT pid::text, pid = pg_backend_pid() FROM pg_stat_activity "
						 "WHERE datname = current_database() AND "
						 "(backend_type = 'agentorch executor' OR pid = pg_backend_pid())", 0, NULL);

	*executors = *own = 0;
	for (int i = 0; i < PQntuples(r); i++)
	{
		if (strcmp(PQgetvalue(r, i, 1), "t") == 0)
			*own += proc_cpu_ms(PQgetvalue(r, i, 0));
		else
			*executors += proc_cpu_ms(PQgetvalue(r, i, 0));
	}
	PQclear(r);
}

static int
mode_throughput(PGconn *conn, const char *wf, int nruns, int steps_per_run, int timeout_s)
{
	char		nbuf[32];
	const char *p[2];
	PGresult   *r;
	char		lo[32],
				hi[32];
	double		t0,
				t_started,
				t1,
				c0,
				c1,
				w0,
				w1,
				x0,
				x1,
				o0,
				o1,
				o_started,
				x_unused,
				elapsed;
	int			finished_all = 0;
	long		succeeded,
				failed,
				unfinished;

	counters(conn, &c0, &w0);
	cpu_counters(conn, &x0, &o0);
	snprintf(nbuf, sizeof nbuf, "%d", nruns);
	p[0] = wf;
	p[1] = nbuf;
	t0 = now_ms();
	if (strncmp(wf, "many:", 5) == 0)
	{
		/* one start_many() call with N inputs */
		p[0] = wf + 5;
		r = exec(conn, "SELECT min(id), max(id) FROM agentorch.start_many("
				 "ARRAY(SELECT '{}'::jsonb FROM generate_series(1, $2::int)), 'fixed', $1) AS id", 2, p);
	}
	else
		r = exec(conn, "SELECT min(id), max(id) FROM "
				 "(SELECT agentorch.run_workflow($1) AS id FROM generate_series(1, $2::int)) s", 2, p);
	t_started = now_ms();
	snprintf(lo, sizeof lo, "%s", PQgetvalue(r, 0, 0));
	snprintf(hi, sizeof hi, "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	cpu_counters(conn, &x_unused, &o_started);

	/* wait on the highest unfinished run until none is left (bounded) */
	PQclear(exec(conn, "PREPARE ao_bench_open(bigint) AS "
				 "SELECT status IN ('pending', 'running') FROM agentorch.runs WHERE id = $1", 0, NULL));
	for (;;)
	{
		char	   *open;
		const char *q[3] = {lo, hi, NULL};

		open = exec_value(conn, "SELECT max(id) FROM agentorch.runs WHERE id BETWEEN $1 AND $2 "
						  "AND status IN ('pending', 'running')", 2, q);
		if (open == NULL)
		{
			finished_all = 1;
			break;
		}
		if (now_ms() - t0 > timeout_s * 1000.0)
		{
			free(open);
			break;
		}
		/*
		 * Look at that run every 2 ms by its key (prepared: cheap), not
		 * with wait(): a session inside one statement holds that
		 * statement's snapshot, which keeps the xmin horizon back for
		 * every table, so the executors could not mark the dead entries
		 * of steps_ready (each claim would read them all again). Runs
		 * finish about in id order, so the range is searched again
		 * (an index scan over the finished runs' entries) only when it
		 * has finished.
		 */
		for (;;)
		{
			const char *k[1] = {open};
			PGresult   *pr = PQexecPrepared(conn, "ao_bench_open", 1, k, NULL, NULL, 0);
			int			still_open;

			if (PQresultStatus(pr) != PGRES_TUPLES_OK)
			{
				fprintf(stderr, "ao_bench: %s", PQerrorMessage(conn));
				exit(1);
			}
			still_open = PQntuples(pr) == 1 && strcmp(PQgetvalue(pr, 0, 0), "t") == 0;
			PQclear(pr);
			if (!still_open || now_ms() - t0 > timeout_s * 1000.0)
				break;
			usleep(2000);
		}
		free(open);
	}
	t1 = now_ms();
	PQclear(exec(conn, "DEALLOCATE ao_bench_open", 0, NULL));
	counters(conn, &c1, &w1);
	cpu_counters(conn, &x1, &o1);
	{
		const char *q[2] = {lo, hi};

		r = exec(conn, "SELECT count(*) FILTER (WHERE status = 'succeeded'), "
				 "count(*) FILTER (WHERE status IN ('failed', 'cancelled')), "
				 "count(*) FILTER (WHERE status IN ('pending', 'running', 'waiting')) "
				 "FROM agentorch.runs WHERE id BETWEEN $1 AND $2", 2, q);
		succeeded = atol(PQgetvalue(r, 0, 0));
		failed = atol(PQgetvalue(r, 0, 1));
		unfinished = atol(PQgetvalue(r, 0, 2));
		PQclear(r);
	}
	elapsed = (t1 - t0) / 1000.0;
	printf("  %s: %d runs x %d steps, started in %.0f ms, all finished after %.2f s%s\n",
		   wf, nruns, steps_per_run, t_started - t0, elapsed, finished_all ? "" : " (TIMED OUT)");
	printf("  %s: %ld succeeded, %ld failed/cancelled, %ld unfinished\n", wf, succeeded, failed, unfinished);
	printf("  %s: %.0f runs/s, %.0f steps/s; %.0f executor commits (%.1f steps/commit), %.0f WAL bytes/step\n",
		   wf, succeeded / elapsed, succeeded * (double) steps_per_run / elapsed, c1 - c0,
		   (c1 - c0) > 0 ? succeeded * (double) steps_per_run / (c1 - c0) : 0,
		   succeeded ? (w1 - w0) / (succeeded * (double) steps_per_run) : 0);
	if (succeeded > 0 && x1 > x0)
		printf("  %s: CPU %.3f ms per step in the executors (busy %.0f%% of %d cores' wall time), "
			   "%.3f ms per run in the starting backend\n",
			   wf, (x1 - x0) / (succeeded * (double) steps_per_run), (x1 - x0) / (t1 - t0) * 100.0 / sysconf(_SC_NPROCESSORS_ONLN),
			   (int) sysconf(_SC_NPROCESSORS_ONLN), (o_started - o0) / nruns);
	printf("RESULT runs_per_s=%.1f steps_per_s=%.1f elapsed_s=%.3f start_ms=%.1f succeeded=%ld failed=%ld "
		   "unfinished=%ld commits=%.0f wal_bytes=%.0f exec_cpu_ms_per_step=%.4f start_cpu_ms_per_run=%.4f\n",
		   succeeded / elapsed, succeeded * (double) steps_per_run / elapsed, elapsed, t_started - t0,
		   succeeded, failed, unfinished, c1 - c0, w1 - w0,
		   succeeded ? (x1 - x0) / (succeeded * (double) steps_per_run) : 0, (o_started - o0) / nruns);
	return 0;
}

/*
 * The baseline's durable step (pgbench_step.sql: a claim transaction, then
 * a completion transaction with an event row and a NOTIFY) on conn, timed
 * in ms; -1 when it failed.
 */
static double
baseline_step(PGconn *conn)
{
	double		t0 = now_ms();
	char	   *step = exec_value(conn,
								  "WITH c AS (SELECT id FROM bench_step WHERE status = 'ready' ORDER BY id LIMIT 1 "
								  "FOR UPDATE SKIP LOCKED) UPDATE bench_step s SET status = 'running', started_at = now() "
								  "FROM c WHERE s.id = c.id RETURNING s.id", 0, NULL);
	const char *p[1] = {step};
	PGresult   *r;

	if (step == NULL)
		return -1;
	PQclear(exec(conn, "BEGIN", 0, NULL));
	PQclear(exec(conn, "UPDATE bench_step SET status = 'done', finished_at = now() WHERE id = $1", 1, p));
	PQclear(exec(conn, "INSERT INTO bench_event (step_id, kind) VALUES ($1, 'step_succeeded')", 1, p));
	PQclear(exec(conn, "SELECT pg_notify('bench_step', $1)", 1, p));
	r = exec(conn, "COMMIT", 0, NULL);
	PQclear(r);
	free(step);
	return now_ms() - t0;
}

/*
 * PostgreSQL's own cost of a new session, for scale: the baseline's step
 * (its tables from pgbench_setup.sql) from a new connection each time and
 * from one warm connection. Nothing when its tables are missing.
 */
static void
baseline_new_and_warm(const char *conninfo, int n)
{
	double	   *cold = calloc(n, sizeof(double));
	double	   *warm = calloc(n, sizeof(double));
	int			ncold = 0,
				nwarm = 0;
	PGconn	   *conn = connect_or_die(conninfo);
	char	   *have = exec_value(conn, "SELECT to_regclass('bench_step') IS NOT NULL", 0, NULL);

	if (have == NULL || strcmp(have, "t") != 0)
	{
		free(have);
		PQfinish(conn);
		return;
	}
	free(have);
	for (int i = 0; i < n; i++)
	{
		double		t = baseline_step(conn);

		if (t >= 0)
			warm[nwarm++] = t;
	}
	PQfinish(conn);
	for (int i = 0; i < n; i++)
	{
		double		t;

		conn = connect_or_die(conninfo);
		t = baseline_step(conn);
		if (t >= 0)
			cold[ncold++] = t;
		PQfinish(conn);
	}
	stats("baseline step (2 commits), warm connection", warm, nwarm, "base_warm");
	stats("baseline step (2 commits), new connection", cold, ncold, "base_new");
	free(cold);
	free(warm);
}

/*
 * mode_latency, each run from a new connection (the connection is made
 * before the clock starts): what the first start() of a session costs;
 * then the baseline's step the same way and from a warm connection.
 */
static int
mode_latency_new(const char *conninfo, const char *wf, int n)
{
	double	   *total = calloc(n, sizeof(double));
	int			ok = 0,
				bad = 0;

	for (int i = 0; i < n; i++)
	{
		PGconn	   *conn = connect_or_die(conninfo);
		const char *p[1] = {wf};
		double		t0,
					t2;
		char	   *id,
				   *status;

		t0 = now_ms();
		id = exec_value(conn, "SELECT agentorch.run_workflow($1)", 1, p);
		p[0] = id;
		status = exec_value(conn, "SELECT (agentorch.wait($1::bigint, '10s')).status", 1, p);
		t2 = now_ms();
		if (status && strcmp(status, "succeeded") == 0)
			total[ok++] = t2 - t0;
		else
			bad++;
		free(status);
		free(id);
		PQfinish(conn);
	}
	stats("start -> finished from a new connection (run_workflow + wait)", total, ok, "e2e");
	if (bad)
		printf("  %d runs did not succeed within 10 s\n", bad);
	baseline_new_and_warm(conninfo, n);
	return 0;
}

static int
mode_latency(PGconn *conn, const char *wf, int n)
{
	double	   *total = calloc(n, sizeof(double));
	double	   *start = calloc(n, sizeof(double));
	int			ok = 0,
				bad = 0;
	char	   *first = NULL,
			   *last = NULL;

	for (int i = 0; i < n; i++)
	{
		const char *p[1] = {wf};
		double		t0,
					t1,
					t2;
		char	   *id,
				   *status;

		t0 = now_ms();
		id = exec_value(conn, "SELECT agentorch.run_workflow($1)", 1, p);
		t1 = now_ms();
		p[0] = id;
		status = exec_value(conn, "SELECT (agentorch.wait($1::bigint, '10s')).status", 1, p);
		t2 = now_ms();
		if (status && strcmp(status, "succeeded") == 0)
		{
			total[ok] = t2 - t0;
			start[ok] = t1 - t0;
			ok++;
		}
		else
			bad++;
		free(status);
		if (!first)
			first = strdup(id);
		free(last);
		last = id;
	}
	stats("start -> finished (run_workflow + wait)", total, ok, "e2e");
	stats("  of which the start call (its commit)", start, ok, "start");
	if (bad)
		printf("  %d runs did not succeed within 10 s\n", bad);
	printf("RESULT first_id=%s last_id=%s failed=%d\n", first, last, bad);
	return 0;
}

/* Parse {"event": ..., "run_id": N, ...}; returns run id or -1. */
static long long
payload_run(const char *payload)
{
	const char *p = strstr(payload, "\"run_id\":");

	return p ? atoll(p + 9) : -1;
}

static int
mode_listen(const char *conninfo, const char *wf, int n)
{
	PGconn	   *starter = connect_or_die(conninfo);
	PGconn	   *listener = connect_or_die(conninfo);
	double	   *first = calloc(n, sizeof(double));
	double	   *done = calloc(n, sizeof(double));
	double	   *ret = calloc(n, sizeof(double));
	int			nfirst = 0,
				ndone = 0,
				misses = 0;

	PQclear(exec(listener, "LISTEN agentorch_events", 0, NULL));
	for (int i = 0; i < n; i++)
	{
		const char *p[1] = {wf};
		double		t0 = now_ms();
		double		t_ret = -1,
					t_first = -1,
					t_done = -1;
		long long	run = -1;
		/* notifications that arrive before we know the run id */
		long long	early_run[8];
		double		early_t[8];
		int			early_done[8];
		int			nearly = 0;

		if (!PQsendQueryParams(starter, "SELECT agentorch.run_workflow($1)", 1, NULL, p, NULL, NULL, 0))
			die(starter, "send");
		while (t_ret < 0 || t_first < 0 || t_done < 0)
		{
			fd_set		rfds;
			struct timeval tv = {0, 100000};
			int			fs = PQsocket(starter),
						fl = PQsocket(listener);

			if (now_ms() - t0 > 10000)
				break;
			FD_ZERO(&rfds);
			if (t_ret < 0)
				FD_SET(fs, &rfds);
			FD_SET(fl, &rfds);
			if (select((fs > fl ? fs : fl) + 1, &rfds, NULL, NULL, &tv) < 0 && errno != EINTR)
				die(NULL, "select");
			if (t_ret < 0 && FD_ISSET(fs, &rfds))
			{
				if (!PQconsumeInput(starter))
					die(starter, "consume");
				while (!PQisBusy(starter))
				{
					PGresult   *r = PQgetResult(starter);

					if (r == NULL)
						break;
					if (PQresultStatus(r) != PGRES_TUPLES_OK)
						die(starter, "run_workflow");
					run = atoll(PQgetvalue(r, 0, 0));
					t_ret = now_ms();
					PQclear(r);
					for (int k = 0; k < nearly; k++)
						if (early_run[k] == run)
						{
							if (early_done[k])
								t_done = early_t[k];
							else if (t_first < 0)
								t_first = early_t[k];
						}
				}
			}
			if (FD_ISSET(fl, &rfds))
			{
				PGnotify   *nt;
				double		t = now_ms();

				if (!PQconsumeInput(listener))
					die(listener, "consume");
				while ((nt = PQnotifies(listener)) != NULL)
				{
					long long	nr = payload_run(nt->extra);
					int			is_done = strstr(nt->extra, "run_succeeded") || strstr(nt->extra, "run_failed");
					int			is_start = strstr(nt->extra, "run_started") != NULL;

					if (run < 0 && (is_done || is_start) && nearly < 8)
					{
						early_run[nearly] = nr;
						early_t[nearly] = t;
						early_done[nearly] = is_done;
						nearly++;
					}
					else if (nr == run && is_start && t_first < 0)
						t_first = t;
					else if (nr == run && is_done)
						t_done = t;
					PQfreemem(nt);
				}
			}
		}
		if (t_ret < 0)
			die(starter, "no answer to run_workflow within 10 s");
		while (PQgetResult(starter) != NULL)
			;
		ret[i] = t_ret - t0;
		if (t_first >= 0)
			first[nfirst++] = t_first - t0;
		else
			misses++;
		if (t_done >= 0)
			done[ndone++] = t_done - t0;
	}
	stats("start -> run_started notification (LISTEN)", first, nfirst, "first");
	stats("start -> run_succeeded notification (LISTEN)", done, ndone, "done");
	stats("start call returned (for comparison)", ret, n, "ret");
	if (misses)
		printf("  %d starts without a run_started notification within 10 s\n", misses);
	PQfinish(starter);
	PQfinish(listener);
	return 0;
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;

	if (argc < 4)
	{
		fprintf(stderr, "usage: ao_bench CONNINFO throughput WF NRUNS STEPS_PER_RUN TIMEOUT_S\n"
				"       ao_bench CONNINFO latency WF N\n"
				"       ao_bench CONNINFO latency_new WF N\n"
				"       ao_bench CONNINFO listen WF N\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[2], "listen") == 0 && argc == 5)
		return mode_listen(argv[1], argv[3], atoi(argv[4]));
	if (strcmp(argv[2], "latency_new") == 0 && argc == 5)
		return mode_latency_new(argv[1], argv[3], atoi(argv[4]));
	conn = connect_or_die(argv[1]);
	if (strcmp(argv[2], "throughput") == 0 && argc == 7)
		return mode_throughput(conn, argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
	if (strcmp(argv[2], "latency") == 0 && argc == 5)
		return mode_latency(conn, argv[3], atoi(argv[4]));
	fprintf(stderr, "ao_bench: bad arguments\n");
	return 2;
}
