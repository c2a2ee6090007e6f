/*-------------------------------------------------------------------------
 *
 * net.c
 *	  The HTTP engine: one libcurl multi handle per executor, driven from
 *	  the executor's wait loop.
 *
 * Shape (CONVENTIONS.md item 12, pg_net's loop with its fixes): curl's
 * socket and timer callbacks only record which sockets curl wants watched
 * and when it next needs a timeout; ao_net_wait() sleeps on a WaitEventSet
 * holding the process latch, postmaster death and those sockets, with a
 * timeout of min(curl's deadline, the caller's); socket events and expired
 * timeouts go to curl_multi_socket_action, and finished transfers are
 * collected with curl_multi_info_read. Requests can be added while others
 * stream; nothing here blocks on the network, so SQL work is never starved
 * by open streams.
 *
 * A replayed request (agentorch.llm_mode = replay, runner_net.c) opens no
 * connection: ao_net_start_replay queues it with the recorded status,
 * Content-Type and body, and the next ao_net_poll or ao_net_wait hands
 * those bytes to the same write path (cap, body buffer, on_data) and
 * returns it as finished, so its caller decodes it as it would decode the
 * network's bytes.
 *
 * Every request is restricted to http and https, has connect, total and
 * low-speed (idle stream) timeouts, follows no redirects, and caps the
 * bytes it keeps. Request memory lives in a long-lived context; curl
 * handles are released when the request finishes or is abandoned.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/io/net.c
 *
 *-------------------------------------------------------------------------
 */
#include "io.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "io.h"

/* A socket curl asked us to watch. */
typedef struct WatchedSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN / OUT / INOUT */
} WatchedSocket;

static CURLM *multi = NULL;
static MemoryContext net_context = NULL;
static WatchedSocket *sockets = NULL;
static int	nsockets = 0;
static int	maxsockets = 0;
static long curl_timeout_ms = -1;	/* -1: curl wants no timeout */
static TimestampTz curl_timeout_set_at = 0;
static dlist_head active = DLIST_STATIC_INIT(active);
static int	nactive = 0;
/* replayed requests not yet handed back (counted in nactive) */
static dlist_head replaying = DLIST_STATIC_INIT(replaying);

/* Socket callback: record what curl wants for fd. */
static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	int			i;

	for (i = 0; i < nsockets; i++)
		if (sockets[i].fd == fd)
			break;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < nsockets)
			sockets[i] = sockets[--nsockets];
		return 0;
	}
	if (i == nsockets)
	{
		if (nsockets == maxsockets)
		{
			maxsockets = maxsockets ? maxsockets * 2 : 64;
			sockets = repalloc_huge(sockets, sizeof(WatchedSocket) * maxsockets);
		}
		nsockets++;
	}
	sockets[i].fd = fd;
	sockets[i].what = what;
	return 0;
}

/* Timer callback: remember curl's next deadline. */
static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	curl_timeout_ms = timeout_ms;
	curl_timeout_set_at = GetCurrentTimestamp();
	return 0;
}

/* Create the multi handle and the long-lived context (once per process). */
void
ao_net_init(void)
{
	if (multi != NULL)
		return;
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		elog(ERROR, "agentorch: curl_global_init failed");
	net_context = AllocSetContextCreate(TopMemoryContext, "agentorch net", ALLOCSET_DEFAULT_SIZES);
	sockets = MemoryContextAlloc(net_context, sizeof(WatchedSocket) * 64);
	maxsockets = 64;
	multi = curl_multi_init();
	if (multi == NULL)
		elog(ERROR, "agentorch: curl_multi_init failed");
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 512L);
}

/* Number of requests in flight. */
int
ao_net_active(void)
{
	return nactive;
}

/* The context request memory should live in. */
MemoryContext
ao_net_context(void)
{
	ao_net_init();
	return net_context;
}

/* Hand n response bytes to the request (capped); false when over the cap. */
static bool
deliver(AoRequest *r, const char *data, size_t n)
{
	if (r->body.len + n > r->max_bytes)
	{
		r->too_large = true;
		return false;
	}
	ao_buf_append_n(&r->body, data, n);
	if (r->on_data)
		r->on_data(r, data, n);
	return true;
}

/* Write callback: hand the bytes to the request (capped). */
static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	AoRequest  *r = userp;
	size_t		n = size * nmemb;

	if (!deliver(r, data, n))
		return 0;				/* aborts the transfer with CURLE_WRITE_ERROR */
	return n;
}

/* Header callback: keep Retry-After and Content-Type, and all headers. */
static size_t
header_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	AoRequest  *r = userp;
	size_t		n = size * nmemb;

	if (r->headers.len + n <= 65536)
		ao_buf_append_n(&r->headers, data, n);
	return n;
}

/*
 * Start a request. The caller fills r (url, method, body, headers, limits,
 * callbacks) in ao_net_context(); the engine owns it until it is returned
 * by ao_net_collect(). Returns false (with r->error set) when curl refuses.
 */
bool
ao_net_start(AoRequest *r)
{
	CURL	   *e;
	CURLMcode	mc;

	ao_net_init();
	ao_buf_init(&r->body);
	ao_buf_init(&r->headers);
	e = curl_easy_init();
	if (e == NULL)
	{
		r->error = "could not create a curl handle";
		return false;
	}
	r->easy = e;
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) (r->connect_timeout_ms > 0 ? r->connect_timeout_ms : 10000));
	if (r->total_timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) r->total_timeout_ms);
	/* an idle stream: less than 1 byte/s for idle_timeout seconds */
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long) Max(1, (r->idle_timeout_ms > 0 ? r->idle_timeout_ms : 60000) / 1000));
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "agentorch/0.1");
	if (r->method && strcmp(r->method, "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
	if (r->request_body)
	{
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->request_body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) strlen(r->request_body));
	}
	if (r->request_headers)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->request_headers);
	mc = curl_multi_add_handle(multi, e);
	if (mc != CURLM_OK)
	{
		r->error = pstrdup(curl_multi_strerror(mc));
		curl_easy_cleanup(e);
		r->easy = NULL;
		return false;
	}
	dlist_push_tail(&active, &r->node);
	r->in_active = true;
	nactive++;
	r->started_at = GetCurrentTimestamp();
	return true;
}

/*
 * Start a replayed request: no connection; status, Content-Type and body
 * are the recorded response's (body and content_type must live as long as
 * the request). The bytes are delivered, and the request returned as
 * finished, by the next ao_net_poll or ao_net_wait.
 */
void
ao_net_start_replay(AoRequest *r, long status, const char *content_type,
					const char *body, size_t len)
{
	ao_net_init();
	ao_buf_init(&r->body);
	ao_buf_init(&r->headers);
	r->easy = NULL;
	r->replayed = true;
	r->replay_status = status;
	r->replay_body = body;
	r->replay_len = len;
	if (content_type && strpbrk(content_type, "\r\n") == NULL)
		ao_buf_printf(&r->headers, "HTTP/1.1 %ld\r\nContent-Type: %s\r\n\r\n", status, content_type);
	dlist_push_tail(&replaying, &r->node);
	r->in_active = true;
	nactive++;
	r->started_at = GetCurrentTimestamp();
}

/*
 * Deliver the recorded bytes of queued replayed requests through the path
 * the network's bytes take, and move them to *done. Returns how many.
 */
static int
drain_replayed(dlist_head *done)
{
	int			n = 0;

	while (!dlist_is_empty(&replaying))
	{
		AoRequest  *r = dlist_container(AoRequest, node, dlist_pop_head_node(&replaying));

		r->in_active = false;
		nactive--;
		r->result = CURLE_OK;
		r->error = NULL;
		/* as from curl: the status is known when the transfer is done */
		if (r->replay_len > 0 && !deliver(r, r->replay_body, r->replay_len))
		{
			r->result = CURLE_WRITE_ERROR;
			r->error = "response is larger than the limit";
		}
		r->status = r->replay_status;
		dlist_push_tail(done, &r->node);
		n++;
	}
	return n;
}

/* Release curl resources of a finished or abandoned request. */
void
ao_net_release(AoRequest *r)
{
	if (r->easy)
	{
		curl_multi_remove_handle(multi, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	if (r->request_headers)
	{
		curl_slist_free_all(r->request_headers);
		r->request_headers = NULL;
	}
	ao_buf_free(&r->body);
	ao_buf_free(&r->headers);
}

/*
 * Forget the transfer of a finished request but keep what the caller set
 * (URL, body, headers), so the same request can be started again.
 */
void
ao_net_reset_transfer(AoRequest *r)
{
	if (r->in_active)
	{
		dlist_delete(&r->node);
		r->in_active = false;
		nactive--;
	}
	if (r->easy)
	{
		curl_multi_remove_handle(multi, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	ao_buf_free(&r->body);
	ao_buf_free(&r->headers);
	r->replayed = false;
	r->replay_body = NULL;
	r->replay_len = 0;
	r->too_large = false;
	r->status = 0;
	r->result = 0;
	r->error = NULL;
}

/* Abandon a request in flight (cancelled step, lost lease). */
void
ao_net_abandon(AoRequest *r)
{
	if (r->in_active)
	{
		dlist_delete(&r->node);
		r->in_active = false;
		nactive--;
	}
	ao_net_release(r);
}

/* Move finished transfers from curl into the done list. */
static void
drain_finished(dlist_head *done)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		AoRequest  *r = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &r);
		if (r == NULL)
			continue;
		r->result = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &r->status);
		if (r->result != CURLE_OK)
			r->error = r->too_large ? "response is larger than the limit"
				: pstrdup(curl_easy_strerror(r->result));
		dlist_delete(&r->node);
		r->in_active = false;
		nactive--;
		dlist_push_tail(done, &r->node);
	}
}

/*
 * Sleep until the latch is set, curl has socket activity, curl's timeout
 * expires, or timeout_ms passes; drive curl; append finished requests to
 * *done. Returns true when the latch was set.
 */
bool
ao_net_wait(long timeout_ms, dlist_head *done)
{
	WaitEventSet *set;
	WaitEvent  *events;
	int			nevents;
	int			running;
	bool		latch = false;
	long		wait_ms = timeout_ms;

	/* replayed responses are there already: no sleep */
	if (drain_replayed(done) > 0)
	{
		if (multi != NULL && nactive > 0)
			ao_net_poll(done);
		return false;
	}
	if (multi == NULL || nactive == 0)
	{
		int			rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								   Max(0, timeout_ms), PG_WAIT_EXTENSION);

		ResetLatch(MyLatch);
		return (rc & WL_LATCH_SET) != 0;
	}
	if (curl_timeout_ms >= 0)
	{
		long		left = curl_timeout_ms -
			(long) ((GetCurrentTimestamp() - curl_timeout_set_at) / 1000);

		wait_ms = Min(wait_ms, Max(0, left));
	}

	set = CreateWaitEventSet(CurrentMemoryContext, nsockets + 2);
	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (int i = 0; i < nsockets; i++)
	{
		uint32		ev = 0;

		if (sockets[i].what & CURL_POLL_IN)
			ev |= WL_SOCKET_READABLE;
		if (sockets[i].what & CURL_POLL_OUT)
			ev |= WL_SOCKET_WRITEABLE;
		if (ev)
			AddWaitEventToSet(set, ev, sockets[i].fd, NULL, NULL);
	}
	events = palloc(sizeof(WaitEvent) * (nsockets + 2));
	nevents = WaitEventSetWait(set, wait_ms, events, nsockets + 2, PG_WAIT_EXTENSION);
	for (int i = 0; i < nevents; i++)
	{
		if (events[i].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			latch = true;
		}
		else if (events[i].events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
		{
			int			flags = 0;

			if (events[i].events & WL_SOCKET_READABLE)
				flags |= CURL_CSELECT_IN;
			if (events[i].events & WL_SOCKET_WRITEABLE)
				flags |= CURL_CSELECT_OUT;
			curl_multi_socket_action(multi, events[i].fd, flags, &running);
		}
	}
	FreeWaitEventSet(set);
	pfree(events);

	/* curl's own timeouts (connect, idle, total) and retransmissions */
	if (curl_timeout_ms >= 0 &&
		TimestampDifferenceExceeds(curl_timeout_set_at, GetCurrentTimestamp(), (int) curl_timeout_ms))
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	else if (nevents == 0)
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	drain_finished(done);
	return latch;
}

/* Kick curl once without sleeping (after adding requests) and collect. */
void
ao_net_poll(dlist_head *done)
{
	int			running;

	(void) drain_replayed(done);
	if (multi == NULL || nactive == 0)
		return;
	curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	drain_finished(done);
}

/*
 * Let curl start the requests just added (connect, or write the request
 * on a kept-alive connection) without collecting anything: transfers that
 * finish meanwhile are collected by the next ao_net_poll or ao_net_wait.
 * Touches no database state, so it may run inside a transaction.
 */
void
ao_net_kick(void)
{
	int			running;

	if (multi != NULL && nactive > 0)
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

/* The value of a response header (case-insensitive name), palloc'd, or NULL. */
char *
ao_net_header(AoRequest *r, const char *name)
{
	size_t		nlen = strlen(name);
	const char *p = r->headers.data;

	while (p && *p)
	{
		const char *eol = strchr(p, '\n');
		size_t		len = eol ? (size_t) (eol - p) : strlen(p);

		if (len > nlen && pg_strncasecmp(p, name, nlen) == 0 && p[nlen] == ':')
		{
			const char *v = p + nlen + 1;
			const char *end = p + len;

			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			while (end > v && (end[-1] == '\r' || end[-1] == ' '))
				end--;
			return pnstrdup(v, end - v);
		}
		p = eol ? eol + 1 : NULL;
	}
	return NULL;
}

/*
 * Is the host (and port) of url allowed by a comma-separated allowlist of
 * "host" or "host:port" entries ("*" allows every host; an entry starting
 * with "*." allows subdomains)? Sets *host_out to the host for messages.
 */
bool
ao_net_url_allowed(const char *url, const char *allowlist, char **host_out)
{
	CURLU	   *u = curl_url();
	char	   *host = NULL;
	char	   *port = NULL;
	char	   *scheme = NULL;
	bool		ok = false;

	*host_out = NULL;
	if (u == NULL)
		return false;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK)
	{
		char	   *list = pstrdup(allowlist ? allowlist : "");
		char	   *tok;
		char	   *save = NULL;

		(void) curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
		*host_out = psprintf("%s:%s", host, port ? port : "?");
		if (pg_strcasecmp(scheme, "http") == 0 || pg_strcasecmp(scheme, "https") == 0)
		{
			for (tok = strtok_r(list, ", ", &save); tok && !ok; tok = strtok_r(NULL, ", ", &save))
			{
				char	   *colon = strrchr(tok, ':');
				const char *entry_port = NULL;

				if (colon && strchr(tok, ']') == NULL)
				{
					*colon = '\0';
					entry_port = colon + 1;
				}
				if (entry_port && port && strcmp(entry_port, port) != 0)
					continue;
				if (strcmp(tok, "*") == 0 || pg_strcasecmp(tok, host) == 0)
					ok = true;
				else if (strncmp(tok, "*.", 2) == 0)
				{
					size_t		hl = strlen(host);
					size_t		sl = strlen(tok + 1);

					ok = hl > sl && pg_strcasecmp(host + hl - sl, tok + 1) == 0;
				}
			}
		}
	}
	curl_free(host);
	curl_free(port);
	curl_free(scheme);
	curl_url_cleanup(u);
	return ok;
}
