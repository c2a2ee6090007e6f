/*-------------------------------------------------------------------------
 *
 * agentorch-follow.c
 *	  Print a run's stream live: LISTEN on the run's private channel
 *	  (agentorch.channel(run)), read the chunks committed after the last
 *	  one seen, print tokens as they come, status lines, questions of
 *	  steps waiting for input, and the final output; exit once the run has
 *	  finished (a run resumed after its final chunk is followed on).
 *
 *	  usage: agentorch-follow [-q] [-t seconds] RUN_ID [libpq conninfo]
 *
 * A notification is only a wake-up: the program always reads the rows
 * (agentorch.stream(run, after_seq)) as the connecting role, so row-level
 * security decides what it shows, and a missed, coalesced or forged
 * NOTIFY can neither lose nor add anything. It also re-reads every second
 * as a safety net.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/bin/agentorch-follow.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static int	quiet = 0;

/* Exit with a message naming the failed operation. */
static void
die(PGconn *conn, const char *what)
{
	fprintf(stderr, "agentorch-follow: %s: %s", what, conn ? PQerrorMessage(conn) : "\n");
	if (conn)
		PQfinish(conn);
	exit(2);
}

/*
 * Does the final chunk at seq end the run's stream? Only if the run has
 * finished and it is the run's last chunk: a run resumed after it goes on
 * (or went on, and finished again later).
 */
static int
final_ends_stream(PGconn *conn, const char *run, const char *seq)
{
	const char *params[2] = {run, seq};
	PGresult   *res = PQexecParams(conn,
								   "SELECT status::text NOT IN ('pending', 'running', 'waiting') "
								   "   AND last_chunk_seq <= $2::bigint "
								   "FROM agentorch.runs WHERE id = $1::bigint",
								   2, NULL, params, NULL, NULL, 0);
	int			ends;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die(conn, "reading the run");
	ends = PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return ends;
}

/* Print the usage to f. */
static void
usage(FILE *f)
{
	fprintf(f,
			"agentorch-follow prints an agentorch run's stream live.\n\n"
			"Usage:\n  agentorch-follow [-q] [-t SECONDS] RUN_ID [CONNINFO]\n\n"
			"Options:\n"
			"  -q            do not print status lines\n"
			"  -t SECONDS    give up after SECONDS (default 300; exit 3)\n"
			"  -h, --help    show this help\n\n"
			"CONNINFO is a libpq connection string or URI (default: the PG* environment).\n"
			"Exit status: 0 the run succeeded, 1 it failed or was cancelled, 2 error\n"
			"(no such run, connection), 3 timed out.\n");
}

/*
 * Print the chunks after *last_seq; returns 1 once the final chunk was
 * printed (its status in *status_out).
 */
static int
print_new_chunks(PGconn *conn, const char *run, long long *last_seq, char *status_out, size_t len)
{
	char		after[32];
	const char *params[2];
	PGresult   *res;
	int			finished = 0;

	snprintf(after, sizeof(after), "%lld", *last_seq);
	params[0] = run;
	params[1] = after;
	res = PQexecParams(conn,
					   "SELECT seq, kind, COALESCE(step_id, ''), COALESCE(content, ''), "
					   "       COALESCE(data->>'status', ''), COALESCE(data->>'prompt', '') "
					   "FROM agentorch.stream($1::bigint, $2::bigint)",
					   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die(conn, "reading the stream");
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *kind = PQgetvalue(res, i, 1);
		const char *step = PQgetvalue(res, i, 2);
		const char *content = PQgetvalue(res, i, 3);

		*last_seq = atoll(PQgetvalue(res, i, 0));
		if (strcmp(kind, "token") == 0 || strcmp(kind, "json_partial") == 0)
			fputs(content, stdout);
		else if (strcmp(kind, "tool_call") == 0)
			printf("\n  [tool call %s] %s\n", step, content);
		else if (strcmp(kind, "status") == 0)
		{
			const char *prompt = PQgetvalue(res, i, 5);

			if (strcmp(PQgetvalue(res, i, 4), "waiting") == 0 && prompt[0])
				printf("\n  [%s waits for input: %s]\n  (answer with SELECT agentorch.submit_input(%s, '%s', '<json>');)",
					   step, prompt, run, step);
			else if (!quiet)
				printf("\n  [%s]", content);
		}
		else if (strcmp(kind, "final") == 0)
		{
			snprintf(status_out, len, "%s", PQgetvalue(res, i, 4));
			printf("\n== %s: %s\n", status_out, content);
			/* a run resumed after this final chunk goes on: follow it */
			finished = final_ends_stream(conn, run, PQgetvalue(res, i, 0));
			if (finished)
				break;
		}
		fflush(stdout);
	}
	PQclear(res);
	return finished;
}

int
main(int argc, char **argv)
{
	const char *conninfo = "";
	const char *run;
	double		timeout_s = 300;
	PGconn	   *conn;
	PGresult   *res;
	char		listen[128];
	long long	last_seq = 0;
	char		status[32] = "";
	time_t		start = time(NULL);
	int			opt;

	static const struct option long_options[] = {
		{"help", no_argument, NULL, 'h'},
		{"quiet", no_argument, NULL, 'q'},
		{"timeout", required_argument, NULL, 't'},
		{NULL, 0, NULL, 0}
	};

	while ((opt = getopt_long(argc, argv, "hqt:", long_options, NULL)) != -1)
	{
		if (opt == 'q')
			quiet = 1;
		else if (opt == 't')
			timeout_s = atof(optarg);
		else if (opt == 'h')
		{
			usage(stdout);
			return 0;
		}
		else
		{
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc || atoll(argv[optind]) <= 0)
	{
		usage(stderr);
		return 2;
	}
	run = argv[optind];
	if (optind + 1 < argc)
		conninfo = argv[optind + 1];

	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
		die(conn, "connecting");
	/* the run's private channel; NULL for a run this role cannot read */
	{
		const char *params[1] = {run};
		char	   *ident;

		res = PQexecParams(conn, "SELECT agentorch.channel($1::bigint)", 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			die(conn, "looking up the run");
		if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		{
			fprintf(stderr, "agentorch-follow: run %s does not exist (or belongs to another role)\n", run);
			PQclear(res);
			PQfinish(conn);
			return 2;
		}
		ident = PQescapeIdentifier(conn, PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)));
		snprintf(listen, sizeof(listen), "LISTEN %s", ident);
		PQfreemem(ident);
		PQclear(res);
	}
	res = PQexec(conn, listen);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die(conn, "LISTEN");
	PQclear(res);

	/* LISTEN first, then read: nothing committed in between is missed */
	while (!print_new_chunks(conn, run, &last_seq, status, sizeof(status)))
	{
		int			sock = PQsocket(conn);
		fd_set		fds;
		struct timeval tv = {1, 0};
		PGnotify   *n;

		if (difftime(time(NULL), start) > timeout_s)
		{
			fprintf(stderr, "\nagentorch-follow: timed out after %.0f s\n", timeout_s);
			PQfinish(conn);
			return 3;
		}
		FD_ZERO(&fds);
		FD_SET(sock, &fds);
		if (select(sock + 1, &fds, NULL, NULL, &tv) < 0 && errno != EINTR)
			die(conn, "select");
		if (!PQconsumeInput(conn))
			die(conn, "reading notifications");
		while ((n = PQnotifies(conn)) != NULL)
			PQfreemem(n);
	}
	PQfinish(conn);
	return strcmp(status, "succeeded") == 0 ? 0 : 1;
}
