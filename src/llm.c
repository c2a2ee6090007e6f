/*-------------------------------------------------------------------------
 *
 * llm.c
 *	  llm steps: the network-step kind that talks to LLM providers.
 *
 * Until the provider layer lands, an llm step fails at once with a clear
 * error instead of waiting forever.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/llm.c
 *
 *-------------------------------------------------------------------------
 */
#include "agentorch.h"

#include "ao_net.h"

/* Refuse: no provider layer in this build. */
static bool
llm_prepare(void *step, Jsonb *input, Jsonb *context)
{
	ao_net_step_fail(step, "0A000", "llm steps are not available in this build", NULL);
	return false;
}

static void
llm_finish(void *step)
{
}

static AoNetKind llm_kind = {"llm", llm_prepare, NULL, llm_finish, NULL};

AoNetKind *
ao_llm_kind(void)
{
	return &llm_kind;
}

void
ao_llm_flush_all(void)
{
}

long
ao_llm_next_flush_ms(void)
{
	return 3600000;
}
