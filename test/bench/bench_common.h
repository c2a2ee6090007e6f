/*
 * bench_common.h -- helpers shared by the benchmark clients (ao_bench.c,
 * llm_bench.c): clocks, libpq calls that exit on failure, and median/p95
 * statistics printed as a human line plus a "RESULT key=value" line.
 * Each client defines BENCH_NAME (used in error messages) before
 * including it. Header-only: each client is one translation unit.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void
die(PGconn *conn, const char *what)
{
	fprintf(stderr, BENCH_NAME ": %s: %s", what, conn ? PQerrorMessage(conn) : "\n");
	exit(2);
}

static PGconn *
connect_or_die(const char *conninfo)
{
	PGconn	   *conn = PQconnectdb(conninfo);

	if (PQstatus(conn) != CONNECTION_OK)
		die(conn, "connect");
	return conn;
}

static PGresult *
exec(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult   *r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
	{
		fprintf(stderr, BENCH_NAME ": %.200s\n", sql);
		die(conn, "query failed");
	}
	return r;
}

static char *
exec_value(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult   *r = exec(conn, sql, nparams, params);
	char	   *v = NULL;

	if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double
pct(const double *sorted, int n, double p)
{
	int			k;

	if (n == 0)
		return 0;
	k = (int) (p / 100.0 * n + 0.999999) - 1;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return sorted[k];
}

static void
stats(const char *label, double *v, int n, const char *key)
{
	double		sum = 0;

	qsort(v, n, sizeof(double), cmp_double);
	for (int i = 0; i < n; i++)
		sum += v[i];
	printf("  %-50s n=%d  median %.2f ms  p95 %.2f ms  min %.2f  max %.2f  mean %.2f\n",
		   label, n, pct(v, n, 50), pct(v, n, 95), n ? v[0] : 0, n ? v[n - 1] : 0, n ? sum / n : 0);
	printf("RESULT %s_median_ms=%.3f %s_p95_ms=%.3f %s_min_ms=%.3f %s_max_ms=%.3f %s_n=%d\n",
		   key, pct(v, n, 50), key, pct(v, n, 95), key, n ? v[0] : 0, key, n ? v[n - 1] : 0, key, n);
}

/* CPU time (ms) of a process from /proc (0 when unreadable). */
static double
proc_cpu_ms(const char *pid)
{
	char		path[64],
				buf[1024];
	FILE	   *f;
	char	   *p;
	unsigned long utime = 0,
				stime = 0;

	snprintf(path, sizeof path, "/proc/%s/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fgets(buf, sizeof buf, f) == NULL || (p = strrchr(buf, ')')) == NULL ||
		sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
		utime = stime = 0;
	fclose(f);
	return (utime + stime) * 1000.0 / sysconf(_SC_CLK_TCK);
}

#endif							/* BENCH_COMMON_H */
