/*-------------------------------------------------------------------------
 *
 * policy.c
 *	  Circuit breaker, bulkhead and rate limit per model or tool, with
 *	  their state in shared memory so every executor of the server sees
 *	  the same limits; metrics() shows it.
 *
 *	  circuit breaker: after failure_threshold consecutive failures the
 *	    target is open for cooldown; then one request may probe
 *	    (half-open): its success closes the breaker, its failure re-opens.
 *	  bulkhead: at most max_concurrency requests in flight.
 *	  rate limit: token buckets of requests per minute (rpm) and tokens
 *	    per minute (tpm); a request that would exceed them waits (the step
 *	    is deferred, not failed).
 *
 * Without shared memory (no preload) every check allows: in-session work
 * has no neighbours to protect.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/policy/policy.c
 *
 *-------------------------------------------------------------------------
 */
#include "policy.h"

#include <math.h>

#include "common/pg_prng.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "policy.h"
#include "ao_backoff.h"
#include "ao_workflow.h"

#define AO_MAX_TARGETS 256

typedef struct AoTarget
{
	Oid			dboid;
	char		name[256];		/* "model:fast", "tool:weather" (tool names have at most 200 bytes) */
	int			consecutive_failures;
	TimestampTz open_until;		/* 0 = closed */
	bool		probing;		/* half-open probe in flight */
	uint64		probe_ticket;	/* the probe's: only its release ends the half-open state */
	uint64		last_ticket;
	int			in_flight;
	TimestampTz line_until;		/* where the line of steps waiting for the bulkhead ends */
	double		rpm_tokens;
	double		tpm_tokens;
	TimestampTz refilled_at;
	uint64		requests;
	uint64		failures;
	uint64		rejected;		/* breaker open */
	uint64		deferred;		/* bulkhead full or rate limited */
} AoTarget;

typedef struct AoPolicyShared
{
	LWLock	   *lock;
	int			ntargets;
	AoTarget	targets[AO_MAX_TARGETS];
} AoPolicyShared;

static AoPolicyShared *policy = NULL;

/* Shared memory size (requested by worker/worker.c). */
Size
ao_policy_shmem_size(void)
{
	return MAXALIGN(sizeof(AoPolicyShared));
}

/* Create or attach (called under AddinShmemInitLock by worker/worker.c). */
void
ao_policy_shmem_init(LWLock *lock)
{
	bool		found;

	policy = ShmemInitStruct("agentorch policies", sizeof(AoPolicyShared), &found);
	if (!found)
	{
		memset(policy, 0, sizeof(AoPolicyShared));
		policy->lock = lock;
	}
}

/* A fresh target entry for name in this database: full buckets, breaker closed. */
static AoTarget *
init_target(AoTarget *t, const char *name, const AoLimits *lim)
{
	memset(t, 0, sizeof(*t));
	t->dboid = MyDatabaseId;
	strlcpy(t->name, name, sizeof(t->name));
	t->rpm_tokens = lim->rpm > 0 ? Max(1.0, lim->rpm / 60.0) : 0;
	t->tpm_tokens = lim->tpm > 0 ? lim->tpm : 0;
	t->refilled_at = GetCurrentTimestamp();
	return t;
}

/* Find or create the state of a target; caller holds the lock exclusively. */
static AoTarget *
target(const char *name, const AoLimits *lim)
{
	for (int i = 0; i < policy->ntargets; i++)
		if (policy->targets[i].dboid == MyDatabaseId && strcmp(policy->targets[i].name, name) == 0)
			return &policy->targets[i];
	if (policy->ntargets == AO_MAX_TARGETS)
	{
		/*
		 * Full (many tools, many databases): reuse the idle target refilled
		 * longest ago -- nothing in flight, no probe out, and a breaker
		 * closed or past its cooldown, or a tool's (any role can make many
		 * tools and open their breakers: they must not hold every entry,
		 * stalling every model) -- so new targets still get their limits;
		 * with none idle, the caller defers.
		 */
		int			victim = -1;
		TimestampTz now = GetCurrentTimestamp();

		for (int i = 0; i < policy->ntargets; i++)
		{
			AoTarget   *c = &policy->targets[i];

			/*
			 * tools before models: a role's many tools must not reset a
			 * model's token budget or failure count by evicting it
			 */
			bool		model = strncmp(c->name, "model:", 6) == 0;
			bool		victim_model = victim >= 0 && strncmp(policy->targets[victim].name, "model:", 6) == 0;

			if (c->in_flight == 0 && !c->probing && (c->open_until == 0 || c->open_until <= now || !model) &&
				(victim < 0 || (victim_model && !model) ||
				 (victim_model == model && c->refilled_at < policy->targets[victim].refilled_at)))
				victim = i;
		}
		if (victim < 0)
			return NULL;
		return init_target(&policy->targets[victim], name, lim);
	}
	return init_target(&policy->targets[policy->ntargets++], name, lim);
}

/*
 * The concurrency slots this process holds (allowed by ao_policy_acquire,
 * not yet given back by ao_policy_release). An executor that exits --
 * SIGTERM from DROP EXTENSION or DROP DATABASE, a lowered max_workers, a
 * FATAL error -- gives them back in a before_shmem_exit callback, so a
 * model's in_flight never stays counted for requests nobody runs. (A crash
 * restarts the cluster, and with it the counters.)
 */
typedef struct HeldSlots
{
	Oid			dboid;
	char		name[256];		/* as AoTarget's: a tool's name has up to 200 bytes */
	int			count;
	uint64		probe;			/* the target's probe ticket, when one of them is the probe */
} HeldSlots;

static HeldSlots *held = NULL;
static int	nheld = 0;
static int	held_cap = 0;
static bool held_exit_registered = false;

/* Give back every slot this process holds (before_shmem_exit). */
static void
release_held_slots(int code, Datum arg)
{
	if (policy == NULL || nheld == 0)
		return;
	LWLockAcquire(policy->lock, LW_EXCLUSIVE);
	for (int h = 0; h < nheld; h++)
	{
		if (held[h].count <= 0)
			continue;
		for (int i = 0; i < policy->ntargets; i++)
		{
			AoTarget   *t = &policy->targets[i];

			if (t->dboid == held[h].dboid && strcmp(t->name, held[h].name) == 0)
			{
				t->in_flight = Max(0, t->in_flight - held[h].count);
				if (held[h].probe != 0 && t->probe_ticket == held[h].probe)
					t->probing = false;
			}
		}
		held[h].count = 0;
		held[h].probe = 0;
	}
	LWLockRelease(policy->lock);
}

/*
 * Count a slot of target name as held (delta +1) or given back (-1);
 * probe: the slot's probe ticket (0: not the probe).
 */
static void
note_held(const char *name, int delta, uint64 probe)
{
	int			h;

	for (h = 0; h < nheld; h++)
		if (held[h].dboid == MyDatabaseId && strcmp(held[h].name, name) == 0)
			break;
	if (h == nheld)
	{
		if (delta < 0)
			return;
		if (nheld == held_cap)
		{
			held_cap = Max(8, held_cap * 2);
			held = held ? repalloc(held, sizeof(HeldSlots) * held_cap)
				: MemoryContextAlloc(TopMemoryContext, sizeof(HeldSlots) * held_cap);
		}
		held[nheld].dboid = MyDatabaseId;
		strlcpy(held[nheld].name, name, sizeof(held[nheld].name));
		held[nheld].count = 0;
		held[nheld].probe = 0;
		nheld++;
	}
	held[h].count = Max(0, held[h].count + delta);
	if (probe != 0)
		held[h].probe = delta > 0 ? probe : 0;
	if (!held_exit_registered)
	{
		before_shmem_exit(release_held_slots, (Datum) 0);
		held_exit_registered = true;
	}
}

/* Refill the token buckets for the time passed. */
static void
refill(AoTarget *t, const AoLimits *lim, TimestampTz now)
{
	double		minutes = (double) (now - t->refilled_at) / (60.0 * USECS_PER_SEC);

	if (lim->rpm > 0)
		t->rpm_tokens = Min(Max(1.0, lim->rpm / 60.0), t->rpm_tokens + minutes * lim->rpm);
	if (lim->tpm > 0)
		t->tpm_tokens = Min(lim->tpm, t->tpm_tokens + minutes * lim->tpm);
	t->refilled_at = now;
}

/*
 * May a request to the target start now? Returns AO_ALLOW (and counts it
 * in flight), AO_DEFER with *wait_ms (bulkhead full or rate limited), or
 * AO_REJECT (breaker open; *wait_ms until it may probe). An allowed
 * request that is the half-open breaker's probe gets a ticket in *probe
 * (else 0), which its ao_policy_release must pass back: only the probe
 * ends the half-open state, so exactly one probe is ever in flight.
 */
AoDecision
ao_policy_acquire(const char *name, const AoLimits *lim, double expected_tokens, long *wait_ms,
				  uint64 *probe)
{
	AoTarget   *t;
	TimestampTz now = GetCurrentTimestamp();
	AoDecision	d = AO_ALLOW;
	bool		probes = false;

	*wait_ms = 0;
	*probe = 0;
	if (policy == NULL)
		return AO_ALLOW;
	LWLockAcquire(policy->lock, LW_EXCLUSIVE);
	t = target(name, lim);
	if (t == NULL)
	{
		/* every target is busy: wait, rather than run without limits */
		LWLockRelease(policy->lock);
		*wait_ms = 1000;
		return AO_DEFER;
	}
	refill(t, lim, now);
	if (t->open_until != 0)
	{
		if (now < t->open_until || t->probing)
		{
			d = AO_REJECT;
			*wait_ms = t->probing ? 1000 : (long) ((t->open_until - now) / 1000) + 1;
			t->rejected++;
		}
		else
			probes = true;		/* half-open: this request probes, if it goes */
	}
	if (d == AO_ALLOW && lim->max_concurrency > 0 && t->in_flight >= lim->max_concurrency)
	{
		/*
		 * A full bulkhead: the steps that find it full wait in a line, one
		 * every 50 ms per slot (up to 30 s away), so that a thousand steps
		 * queued behind one slot are not all claimed, deferred and written
		 * again every 50 ms while nothing can go; one at a time comes back
		 * for each slot, and a lone waiter still looks every 50 ms.
		 */
		TimestampTz spacing = (50 * 1000) / lim->max_concurrency;
		TimestampTz end = Min(Max(t->line_until, now) + Max(spacing, 1), TimestampTzPlusMilliseconds(now, 30000));

		d = AO_DEFER;
		t->line_until = end;
		*wait_ms = Max(50L, (long) ((end - now) / 1000));
	}
	if (d == AO_ALLOW && lim->rpm > 0 && t->rpm_tokens < 1)
	{
		d = AO_DEFER;
		*wait_ms = (long) ((1 - t->rpm_tokens) / lim->rpm * 60000.0) + 1;
	}
	/*
	 * tpm: a request goes when the bucket holds what it expects to use
	 * (capped at one minute's worth), or at least one token when it
	 * declares nothing -- so the tokens earlier replies used, which are
	 * taken off when they settle and can leave the bucket in debt, hold
	 * the next requests back until the minute has paid for them.
	 */
	if (d == AO_ALLOW && lim->tpm > 0)
	{
		double		need = expected_tokens > 0 ? Min(expected_tokens, lim->tpm) : Min(1.0, lim->tpm);

		if (t->tpm_tokens < need)
		{
			d = AO_DEFER;
			*wait_ms = (long) ((need - t->tpm_tokens) / lim->tpm * 60000.0) + 1;
		}
	}
	if (d == AO_ALLOW)
	{
		t->in_flight++;
		t->requests++;
		if (lim->rpm > 0)
			t->rpm_tokens -= 1;
		if (probes)
		{
			t->probing = true;
			t->probe_ticket = ++t->last_ticket;
			*probe = t->probe_ticket;
		}
	}
	else if (d == AO_DEFER)
		t->deferred++;
	LWLockRelease(policy->lock);
	if (d == AO_ALLOW)
		note_held(name, +1, *probe);
	return d;
}

/*
 * A request that was allowed finished: outcome 1 (success) closes the
 * breaker, 0 (a failure of the target: transport, 429, 5xx) counts toward
 * opening it, -1 (neutral: the client's own timeout, which a role could
 * set to a few milliseconds to trip a breaker every role shares) does
 * neither; tokens used come off the tpm bucket. probe: the ticket
 * ao_policy_acquire gave (0: not the probe). Only the probe's own end
 * lets another request probe; a request let through before the breaker
 * opened may still close it (a success) or count (a failure).
 */
void
ao_policy_release(const char *name, const AoLimits *lim, int outcome, double tokens_used, uint64 probe)
{
	bool		success = outcome > 0;

	AoTarget   *t;

	if (policy == NULL)
		return;
	note_held(name, -1, probe);
	LWLockAcquire(policy->lock, LW_EXCLUSIVE);
	t = target(name, lim);
	if (t != NULL)
	{
		bool		is_probe = probe != 0 && t->probing && t->probe_ticket == probe;

		if (t->in_flight > 0)
			t->in_flight--;
		/* nothing in flight: the line of waiters starts again (those gone from it leave no gap) */
		if (t->in_flight == 0)
			t->line_until = 0;
		/*
		 * tokens used come off the bucket; a count that is not finite (a
		 * worker's report) is ignored, and the debt stops at ten minutes'
		 * worth, so one absurd count cannot block the target for good
		 */
		if (lim->tpm > 0 && tokens_used > 0 && isfinite(tokens_used))
			t->tpm_tokens = Max(t->tpm_tokens - tokens_used, -10.0 * lim->tpm);
		if (outcome < 0)
			;					/* neutral; a probe's end lets the next request probe */
		else if (success)
		{
			t->consecutive_failures = 0;
			t->open_until = 0;
		}
		else
		{
			t->failures++;
			t->consecutive_failures++;
			if (is_probe || (lim->failure_threshold > 0 && t->consecutive_failures >= lim->failure_threshold))
				t->open_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), lim->cooldown_ms > 0 ? lim->cooldown_ms : 30000);
		}
		if (is_probe)
			t->probing = false;
	}
	LWLockRelease(policy->lock);
}

/* Is the target's breaker open right now (for choosing a fallback)? */
bool
ao_policy_is_open(const char *name)
{
	bool		open = false;

	if (policy == NULL)
		return false;
	LWLockAcquire(policy->lock, LW_SHARED);
	for (int i = 0; i < policy->ntargets; i++)
		if (policy->targets[i].dboid == MyDatabaseId && strcmp(policy->targets[i].name, name) == 0)
			open = policy->targets[i].open_until != 0 &&
				(GetCurrentTimestamp() < policy->targets[i].open_until || policy->targets[i].probing);
	LWLockRelease(policy->lock);
	return open;
}

/* Append the policy state of this database's targets to a metrics() result. */
void
ao_policy_metrics(Tuplestorestate *ts, TupleDesc desc)
{
	if (policy == NULL)
		return;
	LWLockAcquire(policy->lock, LW_SHARED);
	for (int i = 0; i < policy->ntargets; i++)
	{
		AoTarget   *t = &policy->targets[i];
		struct
		{
			const char *suffix;
			double		value;
		}			m[] = {
			{"breaker_open", (t->open_until != 0 && GetCurrentTimestamp() < t->open_until) ? 1 : 0},
			{"consecutive_failures", t->consecutive_failures},
			{"in_flight", t->in_flight},
			{"requests_total", (double) t->requests},
			{"failures_total", (double) t->failures},
			{"rejected_total", (double) t->rejected},
			{"deferred_total", (double) t->deferred},
		};

		if (t->dboid != MyDatabaseId)
			continue;
		for (int j = 0; j < (int) lengthof(m); j++)
		{
			Datum		v[2];
			bool		n[2] = {false, false};

			v[0] = CStringGetTextDatum(psprintf("%s.%s", t->name, m[j].suffix));
			v[1] = Float8GetDatum(m[j].value);
			tuplestore_putvalues(ts, desc, v, n);
		}
	}
	LWLockRelease(policy->lock);
}

/* Read limits from a model spec or tool policy object (missing = unlimited). */
void
ao_policy_limits_from_json(json_object *o, AoLimits *lim)
{
	json_object *v;
	json_object *sub;

	memset(lim, 0, sizeof(*lim));
	lim->failure_threshold = 5;
	lim->cooldown_ms = 30000;
	if (o == NULL)
		return;
	if (json_object_object_get_ex(o, "max_concurrency", &v))
		lim->max_concurrency = json_object_get_int(v);
	if (json_object_object_get_ex(o, "rate_limit", &sub))
	{
		if (json_object_object_get_ex(sub, "rpm", &v))
			lim->rpm = json_object_get_double(v);
		if (json_object_object_get_ex(sub, "tpm", &v))
			lim->tpm = json_object_get_double(v);
	}
	if (json_object_object_get_ex(o, "circuit_breaker", &sub))
	{
		if (json_object_object_get_ex(sub, "failure_threshold", &v))
			lim->failure_threshold = json_object_get_int(v);
		if (json_object_object_get_ex(sub, "cooldown", &v))
		{
			double		ms = ao_duration_ms(v);

			if (ms >= 0)
				lim->cooldown_ms = (long) ms;
		}
	}
}

/*
 * The one retry decision of every runner (claimed steps, network steps,
 * work(), run_sync): the delay before attempt + 1 after attempt failed
 * retryably -- exponential backoff with jitter from the settings,
 * overridden by the step's retry.backoff {initial, multiplier, max,
 * jitter}, and never less than the provider's Retry-After. spec may be
 * NULL.
 */
double
ao_retry_delay_ms(json_object *spec, int attempt, double retry_after_ms)
{
	json_object *retry = NULL;
	json_object *backoff = NULL;
	json_object *x;
	ao_backoff	b;
	double		d;

	b.initial_ms = ao_retry_initial_ms;
	b.multiplier = ao_retry_multiplier;
	b.max_ms = ao_retry_max_ms;
	b.jitter = ao_retry_jitter;
	if (spec && json_object_is_type(spec, json_type_object) && json_object_object_get_ex(spec, "retry", &retry) &&
		json_object_is_type(retry, json_type_object) && json_object_object_get_ex(retry, "backoff", &backoff) &&
		json_object_is_type(backoff, json_type_object))
	{
		if (json_object_object_get_ex(backoff, "initial", &x) && ao_duration_ms(x) >= 0)
			b.initial_ms = ao_duration_ms(x);
		if (json_object_object_get_ex(backoff, "multiplier", &x))
			b.multiplier = json_object_get_double(x);
		if (json_object_object_get_ex(backoff, "max", &x) && ao_duration_ms(x) >= 0)
			b.max_ms = ao_duration_ms(x);
		if (json_object_object_get_ex(backoff, "jitter", &x))
			b.jitter = json_object_get_double(x);
	}
	d = ao_backoff_delay_ms(&b, attempt, pg_prng_double(&pg_global_prng_state));
	d = Max(d, retry_after_ms);
	/*
	 * at most a week (a backoff of 1e300 seconds, or a server's absurd
	 * Retry-After, would put not_before out of timestamp range and fail
	 * the step with that instead of its own error)
	 */
	if (isnan(d) || d < 0)
		d = 0;
	return Min(d, AO_MAX_RETRY_DELAY_MS);
}
