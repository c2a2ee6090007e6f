/*-------------------------------------------------------------------------
 *
 * agentorch-follow.c
 *	  Print a run's stream live: LISTEN on agentorch_run_<id>, read the
 *	  chunks committed after the last one seen, print tokens as they come,
 *	  status lines, and the final output; exit after the final chunk.
 *
 *	  usage: agentorch-follow [-q] [-t seconds] RUN_ID [libpq conninfo]
 *
 * A notification is only a wake-up: the program always reads the rows
 * (agentorch.stream(run, after_seq)), so a missed or coalesced NOTIFY
 * loses nothing. It also re-reads every second as a safety net.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/bin/agentorch-follow.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
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
					   "       COALESCE(data->>'status', '') "
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
			if (!quiet)
				printf("\n  [%s]", content);
		}
		else if (strcmp(kind, "final") == 0)
		{
			snprintf(status_out, len, "%s", PQgetvalue(res, i, 4));
			printf("\n== %s: %s\n", status_out, content);
			finished = 1;
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
	char		listen[64];
	long long	last_seq = 0;
	char		status[32] = "";
	time_t		start = time(NULL);
	int			opt;

	while ((opt = getopt(argc, argv, "qt:")) != -1)
	{
		if (opt == 'q')
			quiet = 1;
		else if (opt == 't')
			timeout_s = atof(optarg);
		else
		{
			fprintf(stderr, "usage: agentorch-follow [-q] [-t seconds] RUN_ID [conninfo]\n");
			return 2;
		}
	}
	if (optind >= argc || atoll(argv[optind]) <= 0)
	{
		fprintf(stderr, "usage: agentorch-follow [-q] [-t seconds] RUN_ID [conninfo]\n");
		return 2;
	}
	run = argv[optind];
	if (optind + 1 < argc)
		conninfo = argv[optind + 1];

	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
		die(conn, "connecting");
	snprintf(listen, sizeof(listen), "LISTEN agentorch_run_%lld", atoll(run));
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
