/*-------------------------------------------------------------------------
 *
 * io.h
 *	  The HTTP engine (net.c) and the network step runner (runner_net.c).
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
} AoRequest;

extern void ao_net_init(void);
extern MemoryContext ao_net_context(void);
extern int	ao_net_active(void);
extern bool ao_net_start(AoRequest *r);
extern void ao_net_release(AoRequest *r);
extern void ao_net_reset_transfer(AoRequest *r);
extern void ao_net_abandon(AoRequest *r);
extern bool ao_net_wait(long timeout_ms, dlist_head *done);
extern void ao_net_poll(dlist_head *done);
extern char *ao_net_header(AoRequest *r, const char *name);
extern bool ao_net_url_allowed(const char *url, const char *allowlist, char **host_out);

/*
 * How one kind of network step runs (http tools here, llm steps in llm.c).
 * Every callback gets the step (runner_net.c's NetStep, opaque to kinds)
 * with CurrentMemoryContext set to the step's own context.
 */
typedef struct AoNetKind
{
	const char *name;
	/* fill the step's request from its rendered input; false = failed already */
	bool		(*prepare) (void *step, Jsonb *input, Jsonb *context);
	/* inside the settle transaction, before the outcome is recorded */
	void		(*before_settle) (void *step);
	/* the step's request completed: finish the step or restart a request */
	void		(*finish) (void *step);
	/* free what the kind keeps for the step */
	void		(*release) (void *step);
} AoNetKind;

/* runner_net.c: network steps in an executor */
extern void ao_net_step_fail(void *step, const char *sqlstate, const char *message, const char *detail);
extern void ao_net_step_fail_retryable(void *step, const char *sqlstate, const char *message,
									   const char *detail, double retry_after_ms, Jsonb *usage);
extern void ao_net_step_succeed(void *step, Jsonb *output, Jsonb *usage);
extern void ao_net_step_set_usage(void *step, Jsonb *usage);
extern bool ao_net_step_restart(void *step);
extern void ao_net_step_defer(void *step, long wait_ms);
extern bool ao_net_step_switch_target(void *step, const char *policy_name, json_object *limits_json);
extern bool ao_net_step_admit(void *step, const char *policy_name, json_object *limits_json,
							  double expected_tokens);
extern int64 ao_net_step_run(void *step);
extern void ao_net_step_add_secret(void *step, const char *value);
extern char *ao_net_step_scrub(void *step, const char *text);
extern const char *ao_net_step_id(void *step);
extern int	ao_net_step_attempt(void *step);
extern json_object *ao_net_step_spec(void *step);
extern json_object *ao_net_step_run_options(void *step);
extern Oid	ao_net_step_owner(void *step);
extern bool ao_net_step_last_attempt(void *step);
extern AoRequest *ao_net_step_request(void *step);
extern void **ao_net_step_state(void *step);

/* inline network steps (run_sync): driven inside the calling statement */
typedef struct AoNetOutcome
{
	bool		finished;
	bool		ok;
	bool		retryable;
	bool		deferred;
	long		defer_ms;
	double		retry_after_ms;
	Jsonb	   *output;
	Jsonb	   *error;
	Jsonb	   *usage;
} AoNetOutcome;

extern void *ao_net_inline_start(int64 run, const char *step_id, int attempt, int max_attempts,
								 Oid owner, const char *spec_text, const char *options_text,
								 Jsonb *input, Jsonb *context, MemoryContext parent);
extern void ao_net_inline_drive(void *step, long timeout_ms);
extern AoNetOutcome ao_net_inline_outcome(void *step);
extern void ao_net_inline_free(void *step);

/* llm.c */
extern bool ao_llm_flush_pending(void *step);
extern AoNetKind *ao_llm_kind(void);
extern void ao_llm_flush_all(void);
extern long ao_llm_next_flush_ms(void);

extern int	ao_net_steps_claim(void);
extern int	ao_net_steps_settle(dlist_head *done);
extern void ao_net_steps_heartbeat(void);
extern void ao_net_steps_flush(void);
extern long ao_net_steps_next_flush_ms(void);

#endif							/* AO_NET_H */
