/*-------------------------------------------------------------------------
 *
 * state.h
 *	  The state layer (state.c, create.c, finish.c, chunk_rows.c,
 *	  notify.c, rows.c and sql/agentorch_state.sql): the only writer of
 *	  run and step state, and of streamed chunks.
 *	  Above stream.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/state/state.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_STATE_H
#define AO_STATE_H

#include "stream.h"

extern void ao_state_call(const char *sql, int64 run, const char *step, int nextra, Oid *extra_types,
						  Datum *extra_values, const char *extra_nulls);

/* The transitions executors make in C (state.c); the rest is plpgsql. */
extern void ao_state_lock_run(int64 run);
extern void ao_state_lease_step(int64 run, const char *step, int attempt, int lease_ms, int worker,
								Jsonb *input);
extern void ao_state_release_step(int64 run, const char *step, int delay_ms, bool attempt_spent);
extern void ao_state_defer_step(int64 run, const char *step, int delay_ms);
extern bool ao_state_still_claimable(int64 run, const char *step, bool run_must_be_open);
extern void ao_state_unclaim_step(int64 run, const char *step, int attempt, TimestampTz started_at,
								  int worker, int delay_ms);
extern void ao_state_record_input(int64 run, const char *step, Jsonb *input);
extern void ao_state_add_usage(int64 run, const char *step, Jsonb *usage);
extern void ao_state_notify_runs(List *runs);
extern bool ao_state_write_chunks(AoChunkBuffer *buf);
extern void ao_state_flush_streams(void);
extern char *ao_state_lifecycle_payload(int64 run, const char *event, const char *status, Oid owner);
extern char *ao_state_chunk_payload(int64 run, int64 seq, const char *kind, const char *content, int mode);

/* A run to create (create.c), as the coordinator decided it. */
typedef struct AoNewRun
{
	const char *orchestration;
	const char *workflow;		/* NULL unless fixed */
	int			version;
	const char *hash;
	Jsonb	   *input;
	Jsonb	   *options;		/* as the run records them */
	Jsonb	   *selection;
	int			template;		/* index into the call's templates */
} AoNewRun;

/* The body and pinned tools that runs (of one workflow) share. */
typedef struct AoRunTemplate
{
	Jsonb	   *body;			/* NULL: a simple run's, made from its input */
	Jsonb	   *tools;
} AoRunTemplate;

extern void ao_state_create_runs(Oid owner, const AoNewRun *runs, int n, const AoRunTemplate *templates,
								 int ntemplates, const char *search_path, int64 *ids);

/* A step that succeeded in a claim round (finish.c). */
typedef struct AoSuccess
{
	int64		run_id;
	const char *step_id;
	Jsonb	   *output;
	Jsonb	   *input;			/* its rendered input; NULL: none */
} AoSuccess;

/* A transactional step that settling made ready, in a run it left running. */
typedef struct AoReadied
{
	int64		run_id;
	char	   *step_id;
	int			priority;
	int			ord;
} AoReadied;

/* An attempt of a step begun (by the claim statement or ao_state_begin_attempts), as the runner sees it. */
typedef struct AoAttempt
{
	int64		run_id;
	char	   *step_id;
	char	   *kind;
	Jsonb	   *spec;
	int			attempt;		/* before this one (what unclaiming gives back) */
	int			max_attempts;
	Jsonb	   *item;
	int			iteration;		/* -1 outside loops */
	Oid			owner;
	bool		plain;			/* top-level, of no plan */
	bool		run_active;
	TimestampTz deadline;		/* the run's, while it is not compensating; 0: none */
	TimestampTz old_started_at;
	int			old_worker;
	Jsonb	   *input;			/* the step's rendered input, once its runner made it */
	Jsonb	   *tool_definition;	/* a tool step's: as its run pinned it (NULL: none) */
} AoAttempt;

/*
 * The run counters (last event, chunk and checkpoint) a round's successes
 * moved, not written yet: settling writes them with the run's close, or
 * alone (finish.c).
 */
typedef struct AoRunCounters AoRunCounters;

extern void ao_state_finish_successes(const AoSuccess *s, int n, AoRunCounters **counters);
extern void ao_state_settle_runs(const int64 *runs, int n, AoRunCounters *counters, List **readied);
extern int	ao_state_begin_attempts(const AoReadied *r, int n, int worker, AoAttempt *out);

#endif							/* AO_STATE_H */
