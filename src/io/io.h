/*-------------------------------------------------------------------------
 *
 * io.h
 *	  The io layer: the HTTP engine (net.c), host allowlists and
 *	  credentials (secrets.c). Above shmem.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/io/io.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_NET_H
#define AO_NET_H

#include "shmem.h"

#include "lib/ilist.h"
#include "utils/timestamp.h"

struct curl_slist;
typedef void CURL;

/* One HTTP request in flight; lives in ao_net_context(). */
typedef struct AoRequest
{
	dlist_node	node;
	bool		in_active;
	/* filled by the caller */
	const char *url;
	const char *method;			/* NULL = GET, or POST when a body is set */
	char	   *request_body;
	struct curl_slist *request_headers;
	long		connect_timeout_ms;
	long		total_timeout_ms;
	long		idle_timeout_ms;
	size_t		max_bytes;
	void		(*on_data) (struct AoRequest *r, const char *data, size_t len);
	void	   *arg;			/* the caller's state */
	/* filled by the engine */
	CURL	   *easy;
	ao_buf		body;
	ao_buf		headers;
	bool		too_large;
	int			result;			/* CURLcode */
	long		status;			/* HTTP status, 0 when none */
	const char *error;			/* transport error, NULL when none */
	TimestampTz started_at;
	/* a replayed response (ao_net_start_replay): no connection */
	bool		replayed;
	const char *replay_body;
	size_t		replay_len;
	long		replay_status;
} AoRequest;

extern void ao_net_init(void);
extern MemoryContext ao_net_context(void);
extern int	ao_net_active(void);
extern bool ao_net_start(AoRequest *r);
extern void ao_net_start_replay(AoRequest *r, long status, const char *content_type,
								const char *body, size_t len);
extern void ao_net_release(AoRequest *r);
extern void ao_net_reset_transfer(AoRequest *r);
extern void ao_net_abandon(AoRequest *r);
extern bool ao_net_wait(long timeout_ms, dlist_head *done);
extern void ao_net_poll(dlist_head *done);
extern void ao_net_kick(void);
extern char *ao_net_header(AoRequest *r, const char *name);
extern bool ao_net_url_allowed(const char *url, const char *allowlist, char **host_out);

/* credentials (secrets.c) */
extern void ao_check_api_key_env(const char *env, const char *what);
extern void ao_check_model_host(const char *base_url, const char *what);
extern void ao_check_headers_env(json_object *headers_env, const char *what);
extern bool ao_env_name_allowed(const char *env, bool tool);
extern const char *ao_credential_problem(const char *env, bool tool, const char *what,
										 const char **value, int *sqlerrcode);
extern char *ao_scrub(const char *text, List *secrets);

#endif							/* AO_NET_H */
