/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  Every setting of agentorch in one place: its C variable, whose
 *	  initializer is its default (written once: the definition passes the
 *	  variable itself as the boot value), and its DefineCustom*Variable.
 *
 * Settings that background executors read are not settable per session
 * (PGC_SUSET, PGC_SIGHUP or PGC_POSTMASTER): an executor runs in its own
 * session, so a SET in the session that started a run would not reach
 * it. A per-session setting an executor needs is taken from the run
 * instead: agentorch.default_model is recorded in the run's options by
 * start(). agentorch.retry_max_attempts, read when loops and parallel
 * steps create their children in an executor, is PGC_SUSET for that
 * reason. The selector settings are read only in the starting session.
 * agentorch.llm_mode (superuser) is recorded in the run's options by
 * start() when it is not live, like default_model, and requests without a
 * run (the selector's) read the session's value.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/guc.c
 *
 *-------------------------------------------------------------------------
 */
#include "guc.h"

#include <limits.h>

#include "utils/guc.h"

int			ao_max_definition_size = 1024 * 1024;
int			ao_max_yaml_expansion = 16 * 1024 * 1024;
int			ao_max_workers = 2;
char	   *ao_databases = "";
int			ao_poll_interval_ms = 1000;
int			ao_launcher_naptime_ms = 10000;
int			ao_batch_size = 64;
int			ao_lease_ms = 30000;
int			ao_step_timeout_ms = 0;
int			ao_query_timeout_ms = 30000;
int			ao_max_result_rows = 10000;
int			ao_loop_max_iterations = 100;
int			ao_retry_max_attempts = 3;
int			ao_retry_initial_ms = 100;
double		ao_retry_multiplier = 2.0;
int			ao_retry_max_ms = 10000;
double		ao_retry_jitter = 0.2;
char	   *ao_http_allowed_hosts = "";
char	   *ao_llm_allowed_hosts = "*";
char	   *ao_api_key_env_pattern = "%_API_KEY";
char	   *ao_tool_env_pattern = "%_TOKEN";
int			ao_log_level = LOG;
int			ao_max_step_timeout_ms = 3600000;
int			ao_max_replans = 3;
double		ao_chaos_step_failure_rate = 0;
double		ao_chaos_provider_fault_rate = 0;
int			ao_chaos_latency_ms = 0;
int			ao_chaos_seed = 0;
int			ao_max_iterations_per_run = 10000;
int			ao_batch_time_limit_ms = 500;
double		ao_notify_queue_limit = 0.5;
int			ao_chunk_buffer_size = 64;
int			ao_flush_interval_ms = 10;
int			ao_max_requests = 512;
int			ao_max_requests_per_run = 64;
int			ao_max_response_size = 10 * 1024 * 1024;
char	   *ao_default_model = "";
int			ao_selector = AO_SELECTOR_RULES;
char	   *ao_selector_model = "";
double		ao_selector_min_confidence = 0.5;
int			ao_selector_cache_ttl_s = 3600;
int			ao_retention_s = 0;
int			ao_llm_mode = AO_LLM_LIVE;
int			ao_network_steps = AO_NETWORK_BOTH;
bool		ao_state_sql_only = false;
/* Values of agentorch.selector. */
static const struct config_enum_entry selector_options[] = {
	{"rules", AO_SELECTOR_RULES, false},
	{"llm", AO_SELECTOR_LLM, false},
	{"hybrid", AO_SELECTOR_HYBRID, false},
	{NULL, 0, false}
};

/* Values of agentorch.llm_mode. */
static const struct config_enum_entry llm_mode_options[] = {
	{"live", AO_LLM_LIVE, false},
	{"record", AO_LLM_RECORD, false},
	{"replay", AO_LLM_REPLAY, false},
	{NULL, 0, false}
};

/* The name of an agentorch.llm_mode value. */
const char *
ao_llm_mode_name(int mode)
{
	for (const struct config_enum_entry *e = llm_mode_options; e->name; e++)
		if (e->val == mode)
			return e->name;
	return "live";
}

/* An agentorch.llm_mode value by name; -1 when the name is none. */
int
ao_llm_mode_parse(const char *name)
{
	for (const struct config_enum_entry *e = llm_mode_options; name && e->name; e++)
		if (strcmp(e->name, name) == 0)
			return e->val;
	return -1;
}

/* Values of agentorch.network_steps. */
static const struct config_enum_entry network_steps_options[] = {
	{"both", AO_NETWORK_BOTH, false},
	{"executors", AO_NETWORK_EXECUTORS, false},
	{"workers", AO_NETWORK_WORKERS, false},
	{NULL, 0, false}
};

/* Values of agentorch.log_level. */
static const struct config_enum_entry log_level_options[] = {
	{"debug", DEBUG1, false},
	{"log", LOG, false},
	{"warning", WARNING, false},
	{"off", 0, false},
	{NULL, 0, false}
};

/*
 * Define every setting (from _PG_init, before anything reads them) and
 * reserve the agentorch. prefix.
 */
void
ao_define_settings(void)
{
	DefineCustomIntVariable("agentorch.max_definition_size",
							"Largest workflow, plan, tool or model definition accepted, in bytes.",
							"Definitions and YAML documents above this size are refused before parsing.",
							&ao_max_definition_size,
							ao_max_definition_size, 1024, 64 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.max_yaml_expansion",
							"Largest size a YAML document may expand to, in bytes.",
							"Counts every scalar byte and node produced, each alias expansion in full, so alias bombs are refused.",
							&ao_max_yaml_expansion,
							ao_max_yaml_expansion, 1024, 1024 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("agentorch.max_workers",
							"Executor processes per database (each takes a max_worker_processes slot).",
							NULL, &ao_max_workers, ao_max_workers, 1, 16, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("agentorch.databases",
							   "Databases served by executors (comma-separated); empty means every database with the extension.",
							   NULL, &ao_databases, ao_databases, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.poll_interval",
							"Longest an idle executor sleeps before looking for work (a safety net; executors are woken at commit).",
							NULL, &ao_poll_interval_ms, ao_poll_interval_ms, 10, 60000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.launcher_naptime",
							"How often the launcher looks for new databases.",
							NULL, &ao_launcher_naptime_ms, ao_launcher_naptime_ms, 100, 3600000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.batch_size",
							"Steps an executor claims and completes per transaction.",
							NULL, &ao_batch_size, ao_batch_size, 1, 10000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.lease",
							"Lease of a network step; a step whose lease expires is retried.",
							NULL, &ao_lease_ms, ao_lease_ms, 100, 86400000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.step_timeout",
							"Default timeout of a step without its own (0 = 60 s for transactional steps and http tools, 5 min for llm steps).",
							NULL, &ao_step_timeout_ms, ao_step_timeout_ms, 0, INT_MAX, PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.query_timeout",
							"Statement timeout of the built-in database.query tool.",
							NULL, &ao_query_timeout_ms, ao_query_timeout_ms, 1, INT_MAX, PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.max_result_rows",
							"Most rows a sql tool or database.query may return.",
							NULL, &ao_max_result_rows, ao_max_result_rows, 1, 10000000, PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.loop_max_iterations",
							"Default max_iterations of loop steps.",
							NULL, &ao_loop_max_iterations, ao_loop_max_iterations, 1, 1000000, PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.retry_max_attempts",
							"Default attempts of a step (a step's or tool's retry.max_attempts wins).",
							NULL, &ao_retry_max_attempts, ao_retry_max_attempts, 1, 100, PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.retry_initial_backoff",
							"Delay before the second attempt of a step.",
							NULL, &ao_retry_initial_ms, ao_retry_initial_ms, 0, 3600000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomRealVariable("agentorch.retry_multiplier",
							 "Growth of the retry delay per attempt.",
							 NULL, &ao_retry_multiplier, ao_retry_multiplier, 1.0, 100.0, PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.retry_max_backoff",
							"Longest retry delay.",
							NULL, &ao_retry_max_ms, ao_retry_max_ms, 0, 86400000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomRealVariable("agentorch.retry_jitter",
							 "Fraction of a retry delay drawn at random (0..1).",
							 NULL, &ao_retry_jitter, ao_retry_jitter, 0.0, 1.0, PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("agentorch.http_allowed_hosts",
							   "Hosts (host or host:port, comma-separated) http tools may call; empty means none.",
							   NULL, &ao_http_allowed_hosts, ao_http_allowed_hosts, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("agentorch.llm_allowed_hosts",
							   "Hosts (host or host:port, comma-separated, * for any) models' base_url may name.",
							   NULL, &ao_llm_allowed_hosts, ao_llm_allowed_hosts, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("agentorch.api_key_env_pattern",
							   "LIKE pattern the api_key_env of a model must match.",
							   "Keeps registered models from sending other server variables (PATH, PGDATA, ...).",
							   &ao_api_key_env_pattern, ao_api_key_env_pattern, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("agentorch.tool_env_pattern",
							   "LIKE pattern the variables of an http tool's headers_env must match.",
							   NULL, &ao_tool_env_pattern, ao_tool_env_pattern, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("agentorch.log_level",
							 "Level at which executors log their start and stop, quarantined steps and step failures (debug, log, warning, off).",
							 NULL, &ao_log_level, ao_log_level, log_level_options, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.max_step_timeout",
							"Longest timeout a step, tool policy or agentorch.step_timeout may give a step.",
							"Bounds how long one role's step can hold an executor or a request.",
							&ao_max_step_timeout_ms, ao_max_step_timeout_ms, 1000, INT_MAX, PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.max_replans",
							"Revisions a planner or reactive run may ask for when its option max_replans is not given.",
							"Read when a run starts and recorded in its options.",
							&ao_max_replans, ao_max_replans, 0, 100, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("agentorch.chaos_step_failure_rate",
							 "Chaos testing: the share of tool steps that fail before they run (retryable, 40001).",
							 "Off (0) by default; for fault-injection tests only.",
							 &ao_chaos_step_failure_rate, ao_chaos_step_failure_rate, 0, 1, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("agentorch.chaos_provider_fault_rate",
							 "Chaos testing: the share of completed LLM and HTTP responses treated as a provider fault (retryable).",
							 "Off (0) by default; for fault-injection tests only.",
							 &ao_chaos_provider_fault_rate, ao_chaos_provider_fault_rate, 0, 1, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.chaos_latency",
							"Chaos testing: up to this much delay before a tool step runs.",
							"Off (0) by default; the executor running the step waits.",
							&ao_chaos_latency_ms, ao_chaos_latency_ms, 0, 10000, PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.chaos_seed",
							"Chaos testing: the seed of the fault generator (0: a new one per process).",
							"Each process mixes its pid in, so executors draw different faults.",
							&ao_chaos_seed, ao_chaos_seed, 0, INT_MAX, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("agentorch.state_sql_only",
							 "Testing: steps' outcomes are recorded through the plpgsql state functions only, not the C writer.",
							 "Off by default; for tests that compare the two writers (the state layer's README).",
							 &ao_state_sql_only, ao_state_sql_only, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.max_iterations_per_run",
							"Most loop iterations one run may create, over all its loops.",
							"A loop that would go past it fails (54000).",
							&ao_max_iterations_per_run, ao_max_iterations_per_run, 1, INT_MAX, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.batch_time_limit",
							"An executor starts no further step in a transaction after this long, so other runs get their turn.",
							NULL, &ao_batch_time_limit_ms, ao_batch_time_limit_ms, 1, 3600000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomRealVariable("agentorch.notify_queue_limit",
							 "Fraction of the NOTIFY queue above which agentorch stops notifying (above half of it, payloads carry no content).",
							 "A LISTENing session that stops reading holds the cluster-wide queue; runs never stop because of it.",
							 &ao_notify_queue_limit, ao_notify_queue_limit, 0.0, 1.0, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.chunk_buffer_size",
							"Chunks buffered before a flush of streamed output.",
							NULL, &ao_chunk_buffer_size, ao_chunk_buffer_size, 1, 100000, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.flush_interval",
							"Longest time streamed chunks wait before they are written; at most one NOTIFY per run per interval.",
							NULL, &ao_flush_interval_ms, ao_flush_interval_ms, 1, 10000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("agentorch.max_requests",
							"Concurrent HTTP requests (LLM calls and http tools) per executor.",
							NULL, &ao_max_requests, ao_max_requests, 1, 10000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.max_requests_per_run",
							"Concurrent HTTP requests one run may have in one executor (so one run never takes every request slot).",
							NULL, &ao_max_requests_per_run, ao_max_requests_per_run, 1, 10000, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.max_response_size",
							"Largest HTTP response body kept, in bytes.",
							NULL, &ao_max_response_size, ao_max_response_size, 1024, 1024 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL, NULL);

	DefineCustomStringVariable("agentorch.default_model",
							   "Logical model (agentorch.models) of llm steps that name none.",
							   NULL, &ao_default_model, ao_default_model, PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomEnumVariable("agentorch.selector",
							 "How start() and select() choose an orchestration when none is named.",
							 "rules: selector_rules, then the default; llm: the selector model, the rules when it fails; "
							 "hybrid: a matching rule, else the model, else the default.",
							 &ao_selector, ao_selector, selector_options, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("agentorch.selector_model",
							   "Logical model (agentorch.models) the llm and hybrid selectors ask (empty = agentorch.default_model).",
							   NULL, &ao_selector_model, ao_selector_model, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("agentorch.selector_min_confidence",
							 "Answers of the selector model below this confidence are not used.",
							 NULL, &ao_selector_min_confidence, ao_selector_min_confidence, 0.0, 1.0, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("agentorch.selector_cache_ttl",
							"How long the selector model's answers are reused from agentorch.llm_cache (0 = not cached).",
							NULL, &ao_selector_cache_ttl_s, ao_selector_cache_ttl_s, 0, INT_MAX, PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);

	DefineCustomIntVariable("agentorch.retention",
							"Finished runs older than this are purged by the executors (0 = keep them).",
							"Their steps, events, chunks, checkpoints and plans go with them.",
							&ao_retention_s, ao_retention_s, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);

	DefineCustomEnumVariable("agentorch.llm_mode",
							 "Record and replay of LLM requests: live, record (keep each request and its response in agentorch.llm_cache), "
							 "replay (answer from there, no network).",
							 "Taken from the session that starts a run and recorded in the run (options.llm_mode); executors never read their own value.",
							 &ao_llm_mode, ao_llm_mode, llm_mode_options, PGC_SUSET, 0, NULL, NULL, NULL);
	/* executors read it: not settable per session (the header comment) */
	DefineCustomEnumVariable("agentorch.network_steps",
							 "Who claims network steps (llm steps, http tools): executors, external workers, or both.",
							 "both: executors and agentorch-worker programs; executors: only the executors (workers "
							 "claim nothing); workers: only agentorch-worker programs (executors run the other steps).",
							 &ao_network_steps, ao_network_steps, network_steps_options, PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("agentorch");
}
