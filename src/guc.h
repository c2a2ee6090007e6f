/*-------------------------------------------------------------------------
 *
 * guc.h
 *	  The settings of agentorch (guc.c): their variables, and the macros
 *	  built on them. Included by common.h, so every layer above core sees
 *	  them; it includes nothing of agentorch.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/guc.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_GUC_H
#define AO_GUC_H

#include "postgres.h"

extern void ao_define_settings(void);

/* the settings (guc.c) */
extern int	ao_max_definition_size;
extern int	ao_max_yaml_expansion;
extern int	ao_loop_max_iterations;
extern int	ao_max_workers;
extern char *ao_databases;
extern int	ao_poll_interval_ms;
extern int	ao_launcher_naptime_ms;
extern int	ao_batch_size;
extern int	ao_lease_ms;
extern int	ao_step_timeout_ms;
extern int	ao_query_timeout_ms;
extern int	ao_max_result_rows;
extern int	ao_retry_initial_ms;
extern double ao_retry_multiplier;
extern int	ao_retry_max_ms;
extern double ao_retry_jitter;
extern int	ao_retry_max_attempts;
extern char *ao_http_allowed_hosts;
extern char *ao_llm_allowed_hosts;
extern char *ao_api_key_env_pattern;
extern char *ao_tool_env_pattern;
extern double ao_notify_queue_limit;
extern int	ao_max_iterations_per_run;
extern int	ao_batch_time_limit_ms;
extern bool ao_state_sql_only;
extern int	ao_log_level;
extern int	ao_max_step_timeout_ms;
extern int	ao_max_replans;
extern double ao_chaos_step_failure_rate;
extern double ao_chaos_provider_fault_rate;
extern int	ao_chaos_latency_ms;
extern int	ao_chaos_seed;

/* A step's timeout in ms, capped at agentorch.max_step_timeout. */
#define AO_CAP_STEP_TIMEOUT(ms) ((long) Min((double) (ms), (double) ao_max_step_timeout_ms))

/*
 * Log an executor event (start, stop, quarantine, step failure) at
 * agentorch.log_level, to the server log only (it may name runs of any
 * role); nothing when the setting is off.
 */
#define ao_log(...) \
	do { \
		if (ao_log_level != 0) \
			ereport(ao_log_level == LOG ? LOG_SERVER_ONLY : ao_log_level, \
					(errhidestmt(true), errmsg(__VA_ARGS__))); \
	} while (0)
extern int	ao_chunk_buffer_size;
extern int	ao_flush_interval_ms;
extern char *ao_default_model;
/* values of agentorch.selector */
#define AO_SELECTOR_RULES 0
#define AO_SELECTOR_LLM 1
#define AO_SELECTOR_HYBRID 2
extern int	ao_selector;
extern char *ao_selector_model;
extern double ao_selector_min_confidence;
extern int	ao_selector_cache_ttl_s;
extern int	ao_retention_s;
/* values of agentorch.llm_mode (record and replay of LLM requests) */
#define AO_LLM_LIVE 0
#define AO_LLM_RECORD 1
#define AO_LLM_REPLAY 2
extern int	ao_llm_mode;
extern const char *ao_llm_mode_name(int mode);
extern int	ao_llm_mode_parse(const char *name);
extern int	ao_max_requests;
extern int	ao_max_requests_per_run;
extern int	ao_max_response_size;
/* values of agentorch.network_steps: who claims network steps */
#define AO_NETWORK_BOTH 0
#define AO_NETWORK_EXECUTORS 1
#define AO_NETWORK_WORKERS 2
extern int	ao_network_steps;

#endif							/* AO_GUC_H */
