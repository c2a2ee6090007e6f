/*-------------------------------------------------------------------------
 *
 * runner.h
 *	  The runner layer: the claim loop and the transactional runners
 *	  (claim.c), tools (runner_tool.c), network steps (runner_net.c) and
 *	  llm steps (llm.c). Above state.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/runner/runner.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_RUNNER_H
#define AO_RUNNER_H

#include "state.h"

/* tools (runner_tool.c) */
typedef struct AoTool
{
	char	   *name;
	char	   *kind;			/* sql, function, http, builtin */
	json_object *spec;
	json_object *input_schema;	/* NULL when none */
	json_object *policy;		/* NULL when none */
	char	   *search_path;	/* the path its SQL runs with */
} AoTool;

extern AoTool *ao_lookup_tool(int64 run, const char *name);
extern AoTool *ao_tool_of_definition(int64 run, const char *name, Jsonb *definition);
extern Jsonb *ao_run_tool_as_owner(AoTool *t, Jsonb *input, MemoryContext into);

/* the claim loop and transactional runners (claim.c) */
extern void ao_executor_startup(int index, bool after_crash);
extern int	ao_process_ready_steps(int max, Oid only_role, List **runs);
extern bool ao_round_holds_run(int64 run);
extern int	ao_executor_run_batch(Oid only_role, long *sleep_ms, long *recovery_ms);
extern void ao_executor_maintenance(void);
extern bool ao_call_tool_as(Oid run_owner, int64 run, const char *tool, Jsonb *input, Jsonb **output,
							Jsonb **error);

extern void ao_log_step_failure(int64 run, const char *step, Jsonb *error);

/* network steps claimed by external workers (remote.c) */
extern Jsonb *ao_remote_claim(int worker_id, const char *worker_name, int n, bool recover);
extern Jsonb *ao_remote_call_tools(int64 run, const char *step_id, int attempt, Jsonb *calls);
extern Jsonb *ao_remote_fallback(int64 run, const char *step_id, int attempt, const char *model_name,
								 long *defer_ms);
extern void ao_remote_slot_done(int64 run, const char *step_id, int outcome, double tokens);
extern Jsonb *ao_remote_settings(void);

/*
 * How one kind of network step runs (http tools in runner_net.c, llm steps in llm.c).
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
	/*
	 * Its first request changes nothing outside (an LLM's): it may leave
	 * while the lease's commit is being flushed (see ao_net_steps_claim).
	 * Otherwise (an http tool's) it leaves only once the lease is durable.
	 */
	bool		send_while_committing;
} AoNetKind;

/* runner_net.c: network steps in an executor */
extern char *ao_traceparent(const char *trace_id, const char *step_id);
extern void ao_net_step_fail(void *step, int sqlerrcode, const char *message, const char *detail);
extern void ao_net_step_fail_retryable(void *step, int sqlerrcode, const char *message,
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

extern void ao_net_register_kind(const char *type, AoNetKind *kind);

/* record and replay of LLM requests (replay.c, driven by runner_net.c) */
typedef struct AoRecording
{
	bytea	   *material;		/* the canonical request: its sha256 is the key */
	char	   *model;
	char	   *request;		/* jsonb text */
	char	   *response;		/* jsonb text */
} AoRecording;

typedef struct AoReplayed
{
	long		status;
	char	   *content_type;
	char	   *body;
	size_t		len;
} AoReplayed;

extern bytea *ao_replay_material(const char *owner, const char *provider, const char *url,
								 const char *body);
extern bool ao_replay_recordable(AoRequest *r);
extern AoRecording *ao_replay_capture(AoRequest *r, bytea *material, const char *owner,
									  const char *provider, const char *model,
									  char *(*scrub) (void *arg, const char *text), void *scrub_arg);
extern void ao_replay_store(List *recordings);
extern bool ao_replay_lookup(bytea *material, MemoryContext cxt, AoReplayed *out, char **key_out);
extern void ao_net_step_set_llm(void *step, const char *provider, const char *model);
extern int	ao_net_step_llm_mode(void *step);

/* llm.c (the call and tools of an llm step are built here for executors and external workers alike) */
extern bool ao_llm_flush_pending(void *step);
extern void ao_llm_register(void);
extern json_object *ao_llm_build_call(json_object *spec, json_object *input, const char *model_id);
extern json_object *ao_llm_tool_functions(int64 run, json_object *spec, int *sqlerrcode, char **problem,
										  char **detail);

/*
 * SQL: may the executors take network step s? param: the executors take
 * every network step (agentorch.network_steps is not "workers"); otherwise
 * only those of runs that record or replay their LLM requests. One
 * predicate for the network claim and for the batch's next-due time.
 */
#define AO_SQL_EXECUTORS_TAKE(param) \
	"(" param " OR EXISTS (SELECT 1 FROM agentorch.runs m WHERE m.id = s.run_id " \
	"AND m.options OPERATOR(pg_catalog.?) 'llm_mode'))"

/*
 * SQL for a network claim's select list and joins: the claimed step s's
 * spec as text (t.spec), and its template context as text -- the run's
 * input, memory and step outputs, item and index -- only when the spec
 * holds a template (${...}; NULL otherwise: render with {}).
 */
#define AO_SQL_SPEC_TEXT "CROSS JOIN LATERAL (SELECT s.spec::text AS spec OFFSET 0) t "
#define AO_SQL_CONTEXT_IF_TEMPLATED \
	"CASE WHEN pg_catalog.strpos(t.spec, '${') > 0 " \
	"THEN agentorch._context(c.run_id, s.item, s.iteration)::text END"

extern int	ao_net_steps_claim(void);
extern uint64 ao_net_steps_freed(void);
extern int	ao_net_steps_settle(dlist_head *done);
extern void ao_net_steps_heartbeat(void);
extern void ao_net_steps_flush(void);
extern long ao_net_steps_next_flush_ms(void);

#endif							/* AO_RUNNER_H */
