/*
 * llm_bench.c -- the timing client of test/bench/llm_bench.sh.
 *
 * One process, CLOCK_MONOTONIC, select() on libpq sockets (and libcurl's
 * multi interface for the mock-only load), so that what is timed is the
 * database and the mock, not a shell. Modes:
 *
 *   llm_bench CONNINFO stream N INPUT_JSON TIMEOUT_S NOOP_WF NOOP_N
 *       Starts N simple runs in ONE statement (one transaction):
 *         SELECT agentorch.start(INPUT_JSON, 'simple') FROM generate_series(1, N)
 *       A listener connection LISTENs on every run's private channel
 *       (agentorch.channel(id), known once the run exists) right after the
 *       start returns, and first catches up from the rows (nothing is lost:
 *       chunks are rows; the LISTENs are inside the clock).
 *       On notifications the listener reads the new chunk rows with
 *       agentorch.stream(run, after_seq) -- one statement per wake-up for
 *       every run that has news, through unnest(...) LATERAL stream(...) --
 *       and counts token rows and words until every run's final chunk has
 *       arrived. The clock runs from just before the start statement to
 *       the last final chunk read. When the first token row is read, it
 *       samples which executors hold the running steps (steps.worker is
 *       cleared when a step finishes, so it is sampled while they run)
 *       and, when NOOP_N > 0, starts NOOP_N runs of NOOP_WF on a third
 *       connection (asynchronously), so that they execute while the
 *       streams are being written; their own span is reported by the
 *       driver from their events.
 *
 *   llm_bench CONNINFO noop WF N TIMEOUT_S
 *       N runs of WF started in one statement, waited for (agentorch.wait
 *       on the highest unfinished id); prints the id range and the time.
 *
 *   llm_bench CONNINFO ttft N INPUT_JSON [IDLE_MS]
 *       N times, sequentially: (timed from just before it) SELECT
 *       agentorch.start(INPUT_JSON, 'simple') in its own transaction, then
 *       LISTEN on the run's private channel and read its rows once (the
 *       channel exists only with the run); on each notification read the new rows with
 *       agentorch.stream(run, after_seq); the time to the first token row
 *       read is the time to first token at a LISTEN client. The next start
 *       is sent only after the run's final chunk was read.
 *
 *   llm_bench - direct URL BODY_FILE N new|reuse
 *       N sequential requests straight to the mock, each on a new
 *       connection like the curl command line (new), or all on one
 *       kept-alive connection like an executor's multi handle (reuse):
 *       time to the first byte (curl's time_starttransfer) and to the
 *       first content delta.
 *
 *   llm_bench - serve LATENCY_MS NTOKENS DELAY_MS
 *       A minimal streaming server in C (epoll, keep-alive, TCP_NODELAY)
 *       that replays one OpenAI-style reply of NTOKENS deltas; prints
 *       "listening on 127.0.0.1:PORT". Used to tell agentorch's limit from
 *       the Python mock's.
 *
 *   llm_bench - mockload URL BODY_FILE N TIMEOUT_S
 *       The mock alone: N concurrent POSTs of BODY_FILE to URL over one
 *       libcurl multi handle (as an agentorch executor drives them).
 *       Prints the wall time until all finished, time to first byte and
 *       completion times, and the number of SSE content deltas received.
 *
 * Every mode prints human-readable lines and "RESULT key=value ..." lines
 * that the shell script parses. Exit status 0 unless something failed.
 */
#define _GNU_SOURCE				/* accept4 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#define BENCH_NAME "llm_bench"
#include "bench_common.h"

/* Wall-clock ms since the epoch: comparable with the server's clock_timestamp() on this machine. */
static double
epoch_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* The next id the runs' identity sequence will hand out (nobody else starts runs). */
static long long
next_run_id(PGconn *conn)
{
	static char *query = NULL;
	char	   *v;
	long long	id;

	if (query == NULL)
	{
		char	   *seq = exec_value(conn, "SELECT pg_get_serial_sequence('agentorch.runs', 'id')", 0, NULL);

		if (seq == NULL)
			die(NULL, "no identity sequence on agentorch.runs");
		query = malloc(strlen(seq) + 128);
		sprintf(query, "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM %s", seq);
		free(seq);
	}
	v = exec_value(conn, query, 0, NULL);
	id = atoll(v);
	free(v);
	return id;
}

/*
 * LISTEN (or UNLISTEN) on the private channels of runs lo..hi
 * (agentorch.channel(id): agentorch_run_<id>_<token>, known only once the
 * run exists), in two round trips.
 */
static void
listen_range(PGconn *conn, const char *verb, long long lo, long long hi)
{
	char		a[32],
				b[32];
	const char *p[3] = {verb, a, b};
	char	   *sql;
	PGresult   *r;

	snprintf(a, sizeof a, "%lld", lo);
	snprintf(b, sizeof b, "%lld", hi);
	sql = exec_value(conn, "SELECT COALESCE(string_agg(format('%s %I', $1::text, agentorch.channel(id)), '; '), '') "
					 "FROM generate_series($2::bigint, $3::bigint) id WHERE agentorch.channel(id) IS NOT NULL", 3, p);
	if (sql[0] != '\0')
	{
		r = PQexec(conn, sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			die(conn, verb);
		PQclear(r);
	}
	free(sql);
}

/* "key": value of a notification payload (jsonb text); -1 when absent. */
static long long
payload_int(const char *payload, const char *key)
{
	char		k[32];
	const char *p;

	snprintf(k, sizeof k, "\"%s\":", key);
	p = strstr(payload, k);		/* keys come before "content" in jsonb order */
	return p ? atoll(p + strlen(k)) : -1;
}

static double
self_cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec * 1000.0 + ru.ru_utime.tv_usec / 1000.0 +
		ru.ru_stime.tv_sec * 1000.0 + ru.ru_stime.tv_usec / 1000.0;
}

#define MAX_EXEC 16
typedef struct ExecCpu
{
	int			n;
	char		pid[MAX_EXEC][16];
	double		ms[MAX_EXEC];
} ExecCpu;

/* CPU ms of every agentorch executor of this database. */
static void
executor_cpu(PGconn *conn, ExecCpu *e)
{
	PGresult   *r = exec(conn, "SELECT pid::text FROM pg_stat_activity WHERE datname = current_database() "
						 "AND backend_type = 'agentorch executor' ORDER BY pid", 0, NULL);

	e->n = 0;
	for (int i = 0; i < PQntuples(r) && e->n < MAX_EXEC; i++, e->n++)
	{
		snprintf(e->pid[e->n], sizeof e->pid[e->n], "%s", PQgetvalue(r, i, 0));
		e->ms[e->n] = proc_cpu_ms(e->pid[e->n]);
	}
	PQclear(r);
}

/* CPU ms of a backend by pid (text). */
static double
backend_cpu(PGconn *conn)
{
	char	   *pid = exec_value(conn, "SELECT pg_backend_pid()::text", 0, NULL);
	double		ms = proc_cpu_ms(pid);

	free(pid);
	return ms;
}

/*-------------------------------------------------------------------------
 * stream: N concurrent simple runs read by a LISTEN client
 *-------------------------------------------------------------------------
 */

typedef struct RunSeen
{
	long long	last_seq;		/* highest chunk seq read */
	long long	notified_seq;	/* highest seq announced by a notification */
	int			notifies;
	int			token_rows;
	int			status_rows;
	long		words;
	long		bytes;
	int			in_word;		/* last token byte read was not a space */
	double		t_first_token;
	double		t_final;
	int			final;
} RunSeen;

/* Count words in a token chunk (a word may continue from the previous chunk). */
static void
count_words(RunSeen *s, const char *text)
{
	for (const char *p = text; *p; p++)
	{
		int			space = isspace((unsigned char) *p);

		if (!space && !s->in_word)
			s->words++;
		s->in_word = !space;
		s->bytes++;
	}
}

/* Sample which executors hold the running steps of runs lo..hi. */
static void
sample_workers(PGconn *conn, const char *lo, const char *hi, const char *when)
{
	const char *p[2] = {lo, hi};
	PGresult   *r = exec(conn, "SELECT worker, count(*) FROM agentorch.steps WHERE run_id BETWEEN $1 AND $2 "
						 "AND worker IS NOT NULL GROUP BY worker ORDER BY worker", 2, p);

	printf("  executors holding these runs' steps %s: %d (", when, PQntuples(r));
	for (int i = 0; i < PQntuples(r); i++)
		printf("%spid %s: %s steps", i ? ", " : "", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
	printf(")\n");
	printf("RESULT workers_%s=%d\n", when[0] == 'a' ? "first_token" : "half", PQntuples(r));
	PQclear(r);
}

static int
mode_stream(const char *conninfo, int n, const char *input, int timeout_s, const char *noop_wf, int noop_n)
{
	PGconn	   *starter = connect_or_die(conninfo);
	PGconn	   *listener = connect_or_die(conninfo);
	PGconn	   *sampler = connect_or_die(conninfo);
	PGconn	   *nooper = noop_n > 0 ? connect_or_die(conninfo) : NULL;
	RunSeen    *seen = calloc(n, sizeof(RunSeen));
	int		   *dirty = calloc(n, sizeof(int));
	int			ndirty = 0;
	long long	lo,
				hi,
				plo;
	char		nbuf[32],
				los[32],
				his[32];
	const char *p[2];
	PGresult   *r;
	double		t0,
				t_started,
				t_first_token = -1,
				t_last_token = -1,
				t_end = -1,
				t_listen;
	int			nfinal = 0,
				sampled_first = 0,
				sampled_half = 0,
				noop_sent = 0,
				noop_done = 0,
				mismatch = 0;
	long		reads = 0,
				read_rows = 0,
				notifies = 0,
				stale_notifies = 0;
	double		cpu_self0,
				cpu_self1,
				start_cpu0,
				start_cpu1;
	ExecCpu		x0,
				x1;
	char		noop_range[80] = "";

	for (int i = 0; i < n; i++)
		seen[i].t_first_token = seen[i].t_final = -1;

	/*
	 * A run's channel is private (agentorch.channel(id)), known once the run
	 * exists: the listener LISTENs right after the start statement and
	 * catches up from the rows (stream()), which lose nothing.
	 */
	plo = next_run_id(listener);
	t_listen = 0;
	executor_cpu(sampler, &x0);
	start_cpu0 = backend_cpu(starter);
	cpu_self0 = self_cpu_ms();

	snprintf(nbuf, sizeof nbuf, "%d", n);
	p[0] = input;
	p[1] = nbuf;
	t0 = now_ms();
	r = exec(starter, "SELECT min(id), max(id), count(*) FROM "
			 "(SELECT agentorch.start($1::jsonb, 'simple') AS id FROM generate_series(1, $2::int)) s", 2, p);
	t_started = now_ms();
	lo = atoll(PQgetvalue(r, 0, 0));
	hi = atoll(PQgetvalue(r, 0, 1));
	PQclear(r);
	start_cpu1 = backend_cpu(starter);
	mismatch = lo != plo || hi != plo + n - 1;
	t_listen = now_ms();
	listen_range(listener, "LISTEN", lo, hi);
	t_listen = now_ms() - t_listen;
	for (int i = 0; i < n; i++)
		dirty[ndirty++] = i;
	snprintf(los, sizeof los, "%lld", lo);
	snprintf(his, sizeof his, "%lld", hi);

	while (nfinal < n)
	{
		PGnotify   *nt;
		double		t;

		if (now_ms() - t0 > timeout_s * 1000.0)
			break;
		if (ndirty == 0)
		{
			fd_set		rfds;
			struct timeval tv = {0, 20000};
			int			fl = PQsocket(listener),
						maxfd = fl;

			FD_ZERO(&rfds);
			FD_SET(fl, &rfds);
			if (nooper && noop_sent && !noop_done)
			{
				FD_SET(PQsocket(nooper), &rfds);
				if (PQsocket(nooper) > maxfd)
					maxfd = PQsocket(nooper);
			}
			if (select(maxfd + 1, &rfds, NULL, NULL, &tv) < 0 && errno != EINTR)
				die(NULL, "select");
		}
		if (!PQconsumeInput(listener))
			die(listener, "consume");
		while ((nt = PQnotifies(listener)) != NULL)
		{
			long long	run = payload_int(nt->extra, "run_id");
			long long	seq = payload_int(nt->extra, "seq");

			notifies++;
			if (run >= lo && run <= hi)
			{
				RunSeen    *s = &seen[run - lo];

				s->notifies++;
				if (seq > s->notified_seq)
					s->notified_seq = seq;
				if (seq > s->last_seq && !s->final)
				{
					int			dup = 0;

					for (int k = 0; k < ndirty && !dup; k++)
						dup = dirty[k] == run - lo;
					if (!dup)
						dirty[ndirty++] = (int) (run - lo);
				}
				else
					stale_notifies++;
			}
			PQfreemem(nt);
		}
		if (nooper && noop_sent && !noop_done)
		{
			if (!PQconsumeInput(nooper))
				die(nooper, "consume");
			while (!PQisBusy(nooper))
			{
				PGresult   *nr = PQgetResult(nooper);

				if (nr == NULL)
				{
					noop_done = 1;
					break;
				}
				if (PQresultStatus(nr) != PGRES_TUPLES_OK)
					die(nooper, "no-op start");
				snprintf(noop_range, sizeof noop_range, "noop_lo=%s noop_hi=%s", PQgetvalue(nr, 0, 0),
						 PQgetvalue(nr, 0, 1));
				PQclear(nr);
			}
		}
		if (ndirty > 0)
		{
			/* one statement reads the news of every run that has some */
			size_t		cap = (size_t) ndirty * 24 + 4;
			char	   *runs = malloc(cap),
					   *afters = malloc(cap);
			size_t		rl = 0,
						al = 0;
			const char *q[2];

			runs[rl++] = '{';
			afters[al++] = '{';
			for (int k = 0; k < ndirty; k++)
			{
				rl += snprintf(runs + rl, cap - rl, "%s%lld", k ? "," : "", lo + dirty[k]);
				al += snprintf(afters + al, cap - al, "%s%lld", k ? "," : "", seen[dirty[k]].last_seq);
			}
			runs[rl++] = '}';
			runs[rl] = '\0';
			afters[al++] = '}';
			afters[al] = '\0';
			q[0] = runs;
			q[1] = afters;
			ndirty = 0;
			r = exec(listener, "SELECT u.r, c.seq, c.kind::text, c.content "
					 "FROM unnest($1::bigint[], $2::bigint[]) AS u(r, a) "
					 "CROSS JOIN LATERAL agentorch.stream(u.r, u.a) c", 2, q);
			t = now_ms();
			reads++;
			read_rows += PQntuples(r);
			for (int i = 0; i < PQntuples(r); i++)
			{
				RunSeen    *s = &seen[atoll(PQgetvalue(r, i, 0)) - lo];
				long long	seq = atoll(PQgetvalue(r, i, 1));
				const char *kind = PQgetvalue(r, i, 2);

				if (seq <= s->last_seq)
					continue;
				s->last_seq = seq;
				if (strcmp(kind, "token") == 0)
				{
					s->token_rows++;
					count_words(s, PQgetvalue(r, i, 3));
					if (s->t_first_token < 0)
						s->t_first_token = t - t0;
					if (t_first_token < 0)
						t_first_token = t - t0;
					t_last_token = t - t0;
				}
				else if (strcmp(kind, "final") == 0 && !s->final)
				{
					s->final = 1;
					s->t_final = t - t0;
					nfinal++;
					t_end = t - t0;
				}
				else if (strcmp(kind, "status") == 0)
					s->status_rows++;
			}
			PQclear(r);
			free(runs);
			free(afters);
			/* the first tokens are being streamed: every step is running now */
			if (t_first_token >= 0 && !sampled_first)
			{
				sampled_first = 1;
				if (nooper)
				{
					const char *np[2];
					char		nn[32];

					snprintf(nn, sizeof nn, "%d", noop_n);
					np[0] = noop_wf;
					np[1] = nn;
					if (!PQsendQueryParams(nooper, "SELECT min(id), max(id) FROM "
										   "(SELECT agentorch.run_workflow($1) AS id FROM generate_series(1, $2::int)) s",
										   2, NULL, np, NULL, NULL, 0))
						die(nooper, "send");
					noop_sent = 1;
					printf("  no-op batch (%d x %s) sent at %.0f ms, when the first token row was read\n",
						   noop_n, noop_wf, now_ms() - t0);
				}
				sample_workers(sampler, los, his, "at the first token");
			}
			if (nfinal * 2 >= n && !sampled_half)
			{
				sampled_half = 1;
				sample_workers(sampler, los, his, "half finished");
			}
		}
	}
	cpu_self1 = self_cpu_ms();
	executor_cpu(sampler, &x1);
	if (nooper && noop_sent)
	{
		while (!noop_done)
		{
			PGresult   *nr = PQgetResult(nooper);

			if (nr == NULL)
				break;
			if (PQresultStatus(nr) == PGRES_TUPLES_OK)
				snprintf(noop_range, sizeof noop_range, "noop_lo=%s noop_hi=%s", PQgetvalue(nr, 0, 0),
						 PQgetvalue(nr, 0, 1));
			PQclear(nr);
		}
	}

	{
		long		words = 0,
					rows = 0,
					status_rows = 0,
					nts = 0;
		int			min_words = 1 << 30,
					max_words = 0;
		double	   *ft = calloc(n, sizeof(double)),
				   *fin = calloc(n, sizeof(double)),
				   *nps = calloc(n, sizeof(double));
		int			nft = 0,
					nfin = 0;
		double		wall = (t_end >= 0 ? t_end : now_ms() - t0) / 1000.0;
		double		execms = 0;

		for (int i = 0; i < n; i++)
		{
			words += seen[i].words;
			rows += seen[i].token_rows;
			status_rows += seen[i].status_rows;
			nts += seen[i].notifies;
			nps[i] = seen[i].notifies;
			if (seen[i].words < min_words)
				min_words = seen[i].words;
			if (seen[i].words > max_words)
				max_words = seen[i].words;
			if (seen[i].t_first_token >= 0)
				ft[nft++] = seen[i].t_first_token;
			if (seen[i].final)
				fin[nfin++] = seen[i].t_final;
		}
		qsort(nps, n, sizeof(double), cmp_double);
		printf("  %d runs started in one statement in %.0f ms (ids %lld..%lld%s; %d LISTENs after it took %.0f ms)\n",
			   n, t_started - t0, lo, hi, mismatch ? ", not the ids predicted from the sequence" : "",
			   n, t_listen);
		printf("  %d of %d final chunks read after %.3f s%s; first token row at %.0f ms, last token row at %.0f ms\n",
			   nfinal, n, wall, nfinal < n ? " (TIMED OUT)" : "", t_first_token, t_last_token);
		printf("  delivered to the LISTEN client: %ld words (per run min %d, max %d) in %ld token rows (%.1f per run), "
			   "%ld status rows\n", words, min_words, max_words, rows, (double) rows / n, status_rows);
		printf("  notifications: %ld (%.1f per run, median %.0f, max %.0f; %ld carried nothing new), "
			   "%ld stream() reads returning %ld rows\n",
			   notifies, (double) nts / n, pct(nps, n, 50), pct(nps, n, 100), stale_notifies, reads, read_rows);
		stats("per run: start -> first token row read", ft, nft, "run_first_token");
		stats("per run: start -> final chunk read", fin, nfin, "run_final");
		for (int i = 0; i < x1.n; i++)
			for (int j = 0; j < x0.n; j++)
				if (strcmp(x0.pid[j], x1.pid[i]) == 0)
				{
					printf("  executor pid %s: %.0f ms CPU during the phase\n", x1.pid[i], x1.ms[i] - x0.ms[j]);
					execms += x1.ms[i] - x0.ms[j];
				}
		printf("  CPU: executors %.0f ms (%.0f%% of %ld cores' wall time), starting backend %.0f ms, this client %.0f ms\n",
			   execms, execms / (wall * 1000.0) * 100.0 / sysconf(_SC_NPROCESSORS_ONLN),
			   sysconf(_SC_NPROCESSORS_ONLN), start_cpu1 - start_cpu0, cpu_self1 - cpu_self0);
		printf("RESULT wall_s=%.3f start_ms=%.1f finals=%d words=%ld token_rows=%ld notifies=%ld reads=%ld "
			   "first_token_ms=%.1f last_token_ms=%.1f lo=%lld hi=%lld exec_cpu_ms=%.0f start_cpu_ms=%.0f "
			   "client_cpu_ms=%.0f executors=%d mismatch=%d %s\n",
			   wall, t_started - t0, nfinal, words, rows, notifies, reads, t_first_token, t_last_token, lo, hi,
			   execms, start_cpu1 - start_cpu0, cpu_self1 - cpu_self0, x1.n, mismatch, noop_range);
	}
	PQfinish(starter);
	PQfinish(listener);
	PQfinish(sampler);
	if (nooper)
		PQfinish(nooper);
	return 0;
}

/*-------------------------------------------------------------------------
 * noop: a batch of no-op workflow runs alone
 *-------------------------------------------------------------------------
 */
static int
mode_noop(PGconn *conn, const char *wf, int n, int timeout_s)
{
	char		nbuf[32],
				lo[32],
				hi[32];
	const char *p[2] = {wf, nbuf};
	PGresult   *r;
	double		t0,
				t1;
	int			all = 0;

	snprintf(nbuf, sizeof nbuf, "%d", n);
	t0 = now_ms();
	r = exec(conn, "SELECT min(id), max(id) FROM "
			 "(SELECT agentorch.run_workflow($1) AS id FROM generate_series(1, $2::int)) s", 2, p);
	snprintf(lo, sizeof lo, "%s", PQgetvalue(r, 0, 0));
	snprintf(hi, sizeof hi, "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	for (;;)
	{
		const char *q[2] = {lo, hi};
		char	   *open = exec_value(conn, "SELECT max(id) FROM agentorch.runs WHERE id BETWEEN $1 AND $2 "
									  "AND status IN ('pending', 'running')", 2, q);

		if (open == NULL)
		{
			all = 1;
			break;
		}
		if (now_ms() - t0 > timeout_s * 1000.0)
		{
			free(open);
			break;
		}
		q[0] = open;
		free(exec_value(conn, "SELECT (agentorch.wait($1::bigint, '5s')).status", 1, q));
		free(open);
	}
	t1 = now_ms();
	printf("  %d x %s alone: all finished after %.3f s (client clock)%s\n", n, wf, (t1 - t0) / 1000.0,
		   all ? "" : " (TIMED OUT)");
	printf("RESULT noop_lo=%s noop_hi=%s noop_client_s=%.3f\n", lo, hi, (t1 - t0) / 1000.0);
	return 0;
}

/*-------------------------------------------------------------------------
 * ttft: sequential runs, start -> first token row at a LISTEN client; then
 * what a commit and a hand-off cost, back to back and after idle_ms idle
 *-------------------------------------------------------------------------
 */
static int
mode_ttft(const char *conninfo, int n, const char *input, int idle_ms)
{
	useconds_t	idle_us = (useconds_t) idle_ms * 1000;

	PGconn	   *starter = connect_or_die(conninfo);
	PGconn	   *listener = connect_or_die(conninfo);
	double	   *tok = calloc(n, sizeof(double));
	double	   *tok_notify = calloc(n, sizeof(double));
	double	   *ret = calloc(n, sizeof(double));
	double	   *fin = calloc(n, sizeof(double));
	long long  *ids = calloc(n, sizeof(long long));
	double	   *e0 = calloc(n, sizeof(double)),		/* epoch ms: just before the start */
			   *eret = calloc(n, sizeof(double)),	/* the start returned */
			   *enote = calloc(n, sizeof(double)),	/* the first token's notification arrived */
			   *etok = calloc(n, sizeof(double));	/* the first token row was read */
	int			ntok = 0,
				nfin = 0,
				mismatches = 0;
	long long	first = -1,
				last = -1;

	for (int i = 0; i < n; i++)
	{
		const char *p[1] = {input};
		long long	want = next_run_id(listener),
					run;
		long long	last_seq = 0;
		double		t0,
					t_tok = -1,
					t_tok_notify = -1,
					t_fin = -1;
		int			need_read = 0;
		char	   *id;

		e0[i] = epoch_ms();
		t0 = now_ms();
		id = exec_value(starter, "SELECT agentorch.start($1::jsonb, 'simple')", 1, p);
		ret[i] = now_ms() - t0;
		eret[i] = e0[i] + ret[i];
		run = atoll(id);
		free(id);
		if (run != want)
			mismatches++;
		/* the run's private channel exists now; rows read first catch up */
		listen_range(listener, "LISTEN", run, run);
		need_read = 1;
		if (first < 0)
			first = run;
		last = run;
		ids[i] = run;
		while (t_fin < 0 && now_ms() - t0 < 10000)
		{
			PGnotify   *nt;
			double		t_notify = -1;

			if (!need_read)
			{
				fd_set		rfds;
				struct timeval tv = {0, 100000};
				int			fl = PQsocket(listener);

				FD_ZERO(&rfds);
				FD_SET(fl, &rfds);
				if (select(fl + 1, &rfds, NULL, NULL, &tv) < 0 && errno != EINTR)
					die(NULL, "select");
			}
			if (!PQconsumeInput(listener))
				die(listener, "consume");
			while ((nt = PQnotifies(listener)) != NULL)
			{
				if (payload_int(nt->extra, "run_id") == run && payload_int(nt->extra, "seq") > last_seq)
				{
					need_read = 1;
					if (t_notify < 0)
						t_notify = now_ms();
				}
				PQfreemem(nt);
			}
			if (need_read)
			{
				char		rs[32],
							as[32];
				const char *q[2] = {rs, as};
				PGresult   *r;
				double		t;

				need_read = 0;
				snprintf(rs, sizeof rs, "%lld", run);
				snprintf(as, sizeof as, "%lld", last_seq);
				r = exec(listener, "SELECT seq, kind::text FROM agentorch.stream($1::bigint, $2::bigint)", 2, q);
				t = now_ms();
				for (int k = 0; k < PQntuples(r); k++)
				{
					const char *kind = PQgetvalue(r, k, 1);

					last_seq = atoll(PQgetvalue(r, k, 0));
					if (strcmp(kind, "token") == 0 && t_tok < 0)
					{
						t_tok = t - t0;
						t_tok_notify = (t_notify >= 0 ? t_notify : t) - t0;
					}
					if (strcmp(kind, "final") == 0)
						t_fin = t - t0;
				}
				PQclear(r);
			}
		}
		PQclear(exec(listener, "UNLISTEN *", 0, NULL));
		enote[i] = t_tok_notify >= 0 ? e0[i] + t_tok_notify : -1;
		etok[i] = t_tok >= 0 ? e0[i] + t_tok : -1;
		if (t_tok >= 0)
		{
			tok[ntok] = t_tok;
			tok_notify[ntok] = t_tok_notify;
			ntok++;
		}
		if (t_fin >= 0)
			fin[nfin++] = t_fin;
	}
	stats("start -> first token row read (stream())", tok, ntok, "tok");
	stats("start -> its notification arrived", tok_notify, ntok, "tok_notify");
	stats("start call returned (its commit)", ret, n, "ret");
	stats("start -> final chunk read", fin, nfin, "fin");
	if (ntok < n || nfin < n)
		printf("  %d runs without a token row, %d without a final chunk within 10 s\n", n - ntok, n - nfin);
	if (mismatches)
		printf("  %d starts got another id than predicted from the sequence\n", mismatches);

	/*
	 * Where the time goes: the client's wall clock and the rows'
	 * clock_timestamp()s (same machine, same clock), per run, medians.
	 */
	{
		char		lo[32],
					hi[32];
		const char *q[2] = {lo, hi};
		PGresult   *r;
		double	   *seg[6];
		int			nseg = 0;
		const char *labels[6] = {
			"client: start sent -> run_started event (start statement, before its first insert)",
			"run_started event -> start returned (rest of the start, its commit, the reply)",
			"start returned -> step_started event (wake-up, claim transaction up to its insert)",
			"step_started -> 1st token row (claim commit, HTTP, latency, decode, flush insert)",
			"1st token row inserted -> its notification at the client (flush commit, NOTIFY)",
			"notification -> token row read (stream() round trip)"};

		for (int k = 0; k < 6; k++)
			seg[k] = calloc(n, sizeof(double));
		snprintf(lo, sizeof lo, "%lld", first);
		snprintf(hi, sizeof hi, "%lld", last);
		r = exec(listener, "SELECT r.id, "
				 " extract(epoch FROM (SELECT at FROM agentorch.events WHERE run_id = r.id AND kind = 'run_started')) * 1000, "
				 " extract(epoch FROM (SELECT min(at) FROM agentorch.events WHERE run_id = r.id AND kind = 'step_started')) * 1000, "
				 " extract(epoch FROM (SELECT min(at) FROM agentorch.chunks WHERE run_id = r.id AND kind = 'token')) * 1000 "
				 "FROM agentorch.runs r WHERE r.id BETWEEN $1 AND $2 ORDER BY r.id", 2, q);
		for (int k = 0; k < PQntuples(r); k++)
		{
			long long	id = atoll(PQgetvalue(r, k, 0));
			double		rs = atof(PQgetvalue(r, k, 1)),
						ss = atof(PQgetvalue(r, k, 2)),
						tk = atof(PQgetvalue(r, k, 3));

			for (int i = 0; i < n; i++)
			{
				if (ids[i] != id || etok[i] < 0 || PQgetisnull(r, k, 3))
					continue;
				seg[0][nseg] = rs - e0[i];
				seg[1][nseg] = eret[i] - rs;
				seg[2][nseg] = ss - eret[i];
				seg[3][nseg] = tk - ss;
				seg[4][nseg] = enote[i] - tk;
				seg[5][nseg] = etok[i] - enote[i];
				nseg++;
			}
		}
		PQclear(r);
		printf("  where the time to first token goes (medians of %d runs; client wall clock vs. the rows' clock_timestamp()):\n", nseg);
		for (int k = 0; k < 6; k++)
		{
			qsort(seg[k], nseg, sizeof(double), cmp_double);
			printf("    %-84s %7.2f ms\n", labels[k], pct(seg[k], nseg, 50));
			printf("RESULT seg%d_ms=%.3f\n", k, pct(seg[k], nseg, 50));
		}
	}
	printf("RESULT first_id=%lld last_id=%lld mismatches=%d\n", first, last, mismatches);

	/*
	 * What one durable commit costs on this cluster now, the same way (one
	 * at a time, idle executors): the path to a first token waits for two
	 * hand-offs, each a commit flushed before another process may go on
	 * (the start's, before an executor can see the run; the first chunk's,
	 * before its notification, so that no client sees a seq a crash takes
	 * back); the lease's commit overlaps the request. Measured twice: back
	 * to back, and each after idle_ms of idleness, as the first chunk's
	 * commit comes after the model's latency -- on a virtual machine a
	 * flush after an idle spell can take several times as long.
	 */
	{
		double	   *c = calloc(n, sizeof(double));

		PQclear(exec(starter, "CREATE TABLE IF NOT EXISTS llm_bench_commit (x int)", 0, NULL));
		for (int idle = 0; idle <= 1; idle++)
		{
			for (int i = 0; i < n; i++)
			{
				double		t;

				if (idle)
					usleep(idle_us);
				t = now_ms();
				PQclear(exec(starter, "INSERT INTO llm_bench_commit VALUES (1)", 0, NULL));
				c[i] = now_ms() - t;
			}
			stats(idle ? "a durable commit here, each after the idle spell"
				  : "a durable commit here (1-row INSERT, autocommit)", c, n,
				  idle ? "commit_idle" : "commit");
		}

		/*
		 * A hand-off: one session commits a row with a NOTIFY, another
		 * (waiting in select()) receives it -- what the start does to an
		 * executor and a chunk's flush to the LISTEN client.
		 */
		PQclear(exec(listener, "LISTEN llm_bench_ping", 0, NULL));
		for (int idle = 0; idle <= 1; idle++)
		{
			for (int i = 0; i < n; i++)
			{
				double		t;
				PGnotify   *nt = NULL;

				if (idle)
					usleep(idle_us);
				t = now_ms();
				PQclear(exec(starter, "WITH i AS (INSERT INTO llm_bench_commit VALUES (2)) "
							 "SELECT pg_notify('llm_bench_ping', '')", 0, NULL));
				while (nt == NULL && now_ms() - t < 5000)
				{
					fd_set		rfds;
					struct timeval tv = {0, 100000};
					int			fl = PQsocket(listener);

					if (!PQconsumeInput(listener))
						die(listener, "consume");
					if ((nt = PQnotifies(listener)) != NULL)
						break;
					FD_ZERO(&rfds);
					FD_SET(fl, &rfds);
					if (select(fl + 1, &rfds, NULL, NULL, &tv) < 0 && errno != EINTR)
						die(NULL, "select");
				}
				c[i] = now_ms() - t;
				if (nt)
					PQfreemem(nt);
			}
			stats(idle ? "a hand-off here, each after the idle spell"
				  : "a hand-off here (commit + NOTIFY -> other session)", c, n,
				  idle ? "handoff_idle" : "handoff");
		}
		PQclear(exec(listener, "UNLISTEN *", 0, NULL));
		PQclear(exec(starter, "DROP TABLE llm_bench_commit", 0, NULL));
		free(c);
	}
	PQfinish(starter);
	PQfinish(listener);
	return 0;
}

/*-------------------------------------------------------------------------
 * mockload: the mock alone, N concurrent streams over one curl multi handle
 *-------------------------------------------------------------------------
 */
typedef struct Xfer
{
	double		t_first;
	double		t_done;
	double		t_first_delta;	/* first non-empty content delta */
	long		deltas;			/* SSE content deltas */
} Xfer;

static double mock_t0;

static size_t
mock_write(char *data, size_t size, size_t nmemb, void *userp)
{
	Xfer	   *x = userp;
	size_t		len = size * nmemb;
	const char *needle = "\"content\":\"";

	if (x->t_first < 0)
		x->t_first = now_ms() - mock_t0;
	/* count non-empty content deltas: "content":" followed by something other than a quote */
	for (size_t i = 0; i + 12 <= len; i++)
		if (memcmp(data + i, needle, 11) == 0 && data[i + 11] != '"')
		{
			if (x->deltas++ == 0)
				x->t_first_delta = now_ms() - mock_t0;
		}
	return len;
}

static char *
slurp(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	long		len;
	char	   *buf;

	if (f == NULL)
	{
		perror(path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(len + 1);
	if (fread(buf, 1, len, f) != (size_t) len)
		exit(2);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

static int
mode_mockload(const char *url, const char *body_file, int n, int timeout_s)
{
	char	   *body = slurp(body_file);
	CURLM	   *multi;
	CURL	  **easy = calloc(n, sizeof(CURL *));
	Xfer	   *x = calloc(n, sizeof(Xfer));
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	int			running = 0,
				ok = 0,
				failed = 0;
	double	   *ttfb = calloc(n, sizeof(double)),
			   *done = calloc(n, sizeof(double));
	long		deltas = 0;
	double		wall;

	curl_global_init(CURL_GLOBAL_ALL);
	multi = curl_multi_init();
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) n);
	mock_t0 = now_ms();
	for (int i = 0; i < n; i++)
	{
		x[i].t_first = -1;
		x[i].t_first_delta = -1;
		easy[i] = curl_easy_init();
		curl_easy_setopt(easy[i], CURLOPT_URL, url);
		curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, mock_write);
		curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &x[i]);
		curl_easy_setopt(easy[i], CURLOPT_PRIVATE, &x[i]);
		curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, (long) timeout_s * 1000L);
		curl_multi_add_handle(multi, easy[i]);
	}
	do
	{
		CURLMsg    *m;
		int			left;

		curl_multi_perform(multi, &running);
		while ((m = curl_multi_info_read(multi, &left)) != NULL)
		{
			Xfer	   *xf;
			long		status = 0;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &xf);
			curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			xf->t_done = now_ms() - mock_t0;
			if (m->data.result == CURLE_OK && status == 200)
				ok++;
			else
				failed++;
		}
		if (running)
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	} while (running && now_ms() - mock_t0 < timeout_s * 1000.0 + 1000);
	wall = now_ms() - mock_t0;
	for (int i = 0; i < n; i++)
	{
		ttfb[i] = x[i].t_first;
		done[i] = x[i].t_done;
		deltas += x[i].deltas;
		curl_multi_remove_handle(multi, easy[i]);
		curl_easy_cleanup(easy[i]);
	}
	printf("  %d concurrent streams: %d ok, %d failed, all done after %.3f s; %ld content deltas (%.1f per stream)\n",
		   n, ok, failed, wall / 1000.0, deltas, (double) deltas / n);
	stats("time to first byte", ttfb, n, "mock_ttfb");
	stats("time to end of stream", done, n, "mock_done");
	printf("RESULT mock_wall_s=%.3f mock_ok=%d mock_deltas=%ld\n", wall / 1000.0, ok, deltas);
	curl_multi_cleanup(multi);
	curl_slist_free_all(hdrs);
	return failed ? 1 : 0;
}

/*
 * direct: N sequential requests straight to the mock, each on a new
 * connection (as the curl command line does) or all on one kept-alive
 * connection (as an executor's multi handle does): time to the first byte
 * (curl's time_starttransfer) and to the first content delta.
 */
static int
mode_direct(const char *url, const char *body_file, int n, int reuse)
{
	char	   *body = slurp(body_file);
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	double	   *ttfb = calloc(n, sizeof(double)),
			   *ttft = calloc(n, sizeof(double)),
			   *conn = calloc(n, sizeof(double));
	int			ok = 0;

	curl_global_init(CURL_GLOBAL_ALL);
	hdrs = curl_slist_append(hdrs, "Accept: text/event-stream");
	CURL	   *e = NULL;

	for (int i = 0; i < n; i++)
	{
		Xfer		x;
		double		st = 0,
					ct = 0;

		if (e == NULL)
			e = curl_easy_init();
		memset(&x, 0, sizeof x);
		x.t_first = -1;
		x.t_first_delta = -1;
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, mock_write);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &x);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, reuse ? 0L : 1L);
		mock_t0 = now_ms();
		if (curl_easy_perform(e) == CURLE_OK && x.t_first_delta >= 0)
		{
			curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME, &st);
			curl_easy_getinfo(e, CURLINFO_CONNECT_TIME, &ct);
			ttfb[ok] = st * 1000.0;
			conn[ok] = ct * 1000.0;
			ttft[ok] = x.t_first_delta;
			ok++;
		}
		if (!reuse)
		{
			curl_easy_cleanup(e);
			e = NULL;
		}
	}
	if (e)
		curl_easy_cleanup(e);
	stats("direct: time to first byte (time_starttransfer)", ttfb, ok, "direct_ttfb");
	stats("direct: time to first content delta", ttft, ok, "direct_ttft");
	stats("direct: connect", conn, ok, "direct_connect");
	curl_slist_free_all(hdrs);
	return ok == n ? 0 : 1;
}


/*-------------------------------------------------------------------------
 * serve: a minimal OpenAI-compatible streaming server (epoll, one thread)
 *
 * Not a replacement for test/mock_llm: it only replays one reply -- the
 * role delta, NTOKENS content deltas " w1" .. " wN" (DELAY_MS apart, or
 * back to back), the finish chunk, a usage chunk and [DONE] -- in the
 * bytes the Python mock sends, after LATENCY_MS, to every POST, on
 * keep-alive connections with TCP_NODELAY. It exists to tell agentorch's
 * limit from the Python mock's at 1000 concurrent streams.
 *-------------------------------------------------------------------------
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define SRV_MAX_FD 65536

typedef struct SrvConn
{
	int			open;
	int			state;			/* 0 reading, 1 waiting (latency), 2 streaming */
	char		in[16384];
	size_t		inlen;
	double		due;
	int			sent;			/* content deltas sent */
	char	   *out;
	size_t		outlen,
				outoff,
				outcap;
} SrvConn;

static SrvConn *srv;

static void
srv_append(SrvConn *c, const char *data, size_t len)
{
	if (c->outlen + len > c->outcap)
	{
		c->outcap = (c->outlen + len) * 2 + 4096;
		c->out = realloc(c->out, c->outcap);
	}
	memcpy(c->out + c->outlen, data, len);
	c->outlen += len;
}

/* One SSE event as one HTTP chunk. */
static void
srv_event(SrvConn *c, const char *json)
{
	char		buf[1024];
	int			n = snprintf(buf, sizeof buf, "data: %s\n\n", json);
	char		head[32];
	int			h = snprintf(head, sizeof head, "%x\r\n", n);

	srv_append(c, head, h);
	srv_append(c, buf, n);
	srv_append(c, "\r\n", 2);
}

static void
srv_delta(SrvConn *c, const char *delta_json, const char *finish)
{
	char		buf[768];

	snprintf(buf, sizeof buf, "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":0,"
			 "\"model\":\"mock-bench\",\"system_fingerprint\":\"fp_mock\",\"choices\":[{\"index\":0,\"delta\":%s,"
			 "\"logprobs\":null,\"finish_reason\":%s}],\"usage\":null}", delta_json, finish);
	srv_event(c, buf);
}

static void
srv_close(int epfd, int fd)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(srv[fd].out);
	memset(&srv[fd], 0, sizeof(SrvConn));
}

/* Write what is buffered; returns -1 when the connection broke. */
static int
srv_flush(int epfd, int fd)
{
	SrvConn    *c = &srv[fd];

	while (c->outoff < c->outlen)
	{
		ssize_t		w = write(fd, c->out + c->outoff, c->outlen - c->outoff);

		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		{
			struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = fd};

			epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
			return 0;
		}
		if (w <= 0)
			return -1;
		c->outoff += w;
	}
	c->outoff = c->outlen = 0;
	return 0;
}

/* Is a whole request (headers + Content-Length body) buffered? Returns its length or 0. */
static size_t
srv_request_len(SrvConn *c)
{
	char	   *end;
	size_t		head;
	long		body = 0;

	c->in[c->inlen] = '\0';
	end = strstr(c->in, "\r\n\r\n");
	if (end == NULL)
		return 0;
	head = end - c->in + 4;
	for (char *p = c->in; p < end; p++)
		if ((p == c->in || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0)
			body = atol(p + 15);
	return head + body <= c->inlen ? head + body : 0;
}

static int
mode_serve(int latency_ms, int ntokens, int delay_ms)
{
	int			lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int			one = 1;
	struct sockaddr_in addr;
	socklen_t	alen = sizeof addr;
	int			epfd = epoll_create1(0);
	struct epoll_event ev,
				events[256];
	int			maxfd = 0;

	signal(SIGPIPE, SIG_IGN);
	srv = calloc(SRV_MAX_FD, sizeof(SrvConn));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *) &addr, sizeof addr) < 0 || listen(lfd, 4096) < 0 ||
		getsockname(lfd, (struct sockaddr *) &addr, &alen) < 0)
	{
		perror("llm_bench serve");
		return 1;
	}
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
	printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
	fflush(stdout);

	for (;;)
	{
		double		now = now_ms(),
					next = now + 1000;
		int			n;

		for (int fd = 0; fd <= maxfd; fd++)
			if (srv[fd].open && srv[fd].state > 0 && srv[fd].due < next)
				next = srv[fd].due;
		n = epoll_wait(epfd, events, 256, next > now ? (int) (next - now + 0.999) : 0);
		for (int i = 0; i < n; i++)
		{
			int			fd = events[i].data.fd;

			if (fd == lfd)
			{
				int			cfd;

				while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
				{
					if (cfd >= SRV_MAX_FD)
					{
						close(cfd);
						continue;
					}
					setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					memset(&srv[cfd], 0, sizeof(SrvConn));
					srv[cfd].open = 1;
					ev.events = EPOLLIN;
					ev.data.fd = cfd;
					epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &ev);
					if (cfd > maxfd)
						maxfd = cfd;
				}
				continue;
			}
			if (events[i].events & EPOLLOUT)
			{
				if (srv_flush(epfd, fd) < 0)
				{
					srv_close(epfd, fd);
					continue;
				}
				if (srv[fd].outlen == 0)
				{
					ev.events = EPOLLIN;
					ev.data.fd = fd;
					epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
				}
			}
			if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			{
				SrvConn    *c = &srv[fd];
				ssize_t		r = read(fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen);
				size_t		len;

				if (r <= 0)
				{
					if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
						continue;
					srv_close(epfd, fd);
					continue;
				}
				c->inlen += r;
				if (c->state == 0 && (len = srv_request_len(c)) > 0)
				{
					if (strncmp(c->in, "POST ", 5) != 0)
					{
						srv_append(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 45);
						if (srv_flush(epfd, fd) < 0)
							srv_close(epfd, fd);
					}
					else
					{
						c->state = 1;
						c->due = now_ms() + latency_ms;
					}
					memmove(c->in, c->in + len, c->inlen - len);
					c->inlen -= len;
				}
				else if (c->inlen >= sizeof(c->in) - 1)
					srv_close(epfd, fd);
			}
		}
		now = now_ms();
		for (int fd = 0; fd <= maxfd; fd++)
		{
			SrvConn    *c = &srv[fd];

			if (!c->open || c->state == 0 || c->due > now)
				continue;
			if (c->state == 1)
			{
				const char *h = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
				"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";

				srv_append(c, h, strlen(h));
				srv_delta(c, "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}", "null");
				c->state = 2;
				c->sent = 0;
			}
			while (c->sent < ntokens)
			{
				char		d[64];

				snprintf(d, sizeof d, "{\"content\":\"%sw%d\"}", c->sent ? " " : "", c->sent + 1);
				srv_delta(c, d, "null");
				c->sent++;
				if (delay_ms > 0)
					break;
			}
			if (c->sent >= ntokens)
			{
				char		u[256];

				srv_delta(c, "{}", "\"stop\"");
				snprintf(u, sizeof u, "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":0,"
						 "\"model\":\"mock-bench\",\"system_fingerprint\":\"fp_mock\",\"choices\":[],"
						 "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":%d,\"total_tokens\":%d}}",
						 ntokens, ntokens + 10);
				srv_event(c, u);
				srv_event(c, "[DONE]");
				srv_append(c, "0\r\n\r\n", 5);
				c->state = 0;
			}
			else
				c->due = now + delay_ms;
			if (srv_flush(epfd, fd) < 0)
				srv_close(epfd, fd);
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 6 && strcmp(argv[2], "serve") == 0)
		return mode_serve(atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	if (argc == 7 && strcmp(argv[2], "direct") == 0)
		return mode_direct(argv[3], argv[4], atoi(argv[5]), strcmp(argv[6], "reuse") == 0);
	if (argc == 7 && strcmp(argv[2], "mockload") == 0)
		return mode_mockload(argv[3], argv[4], atoi(argv[5]), atoi(argv[6]));
	if (argc == 8 && strcmp(argv[2], "stream") == 0)
		return mode_stream(argv[1], atoi(argv[3]), argv[4], atoi(argv[5]), argv[6], atoi(argv[7]));
	if ((argc == 5 || argc == 6) && strcmp(argv[2], "ttft") == 0)
		return mode_ttft(argv[1], atoi(argv[3]), argv[4], argc == 6 ? atoi(argv[5]) : 50);
	if (argc == 6 && strcmp(argv[2], "noop") == 0)
	{
		PGconn	   *conn = connect_or_die(argv[1]);

		return mode_noop(conn, argv[3], atoi(argv[4]), atoi(argv[5]));
	}
	fprintf(stderr, "usage: llm_bench CONNINFO stream N INPUT_JSON TIMEOUT_S NOOP_WF NOOP_N\n"
			"       llm_bench CONNINFO noop WF N TIMEOUT_S\n"
			"       llm_bench CONNINFO ttft N INPUT_JSON [IDLE_MS]\n"
			"       llm_bench - serve LATENCY_MS NTOKENS DELAY_MS\n"
			"       llm_bench - direct URL BODY_FILE N new|reuse\n"
			"       llm_bench - mockload URL BODY_FILE N TIMEOUT_S\n");
	return 2;
}
