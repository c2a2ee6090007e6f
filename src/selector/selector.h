/*-------------------------------------------------------------------------
 *
 * selector.h
 *	  The orchestration selector of the extension layer: the decision that
 *	  select() shows and start() stores when no orchestration is named.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/selector/selector.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_SELECTOR_H
#define AO_SELECTOR_H

#include "common.h"

/* A decision, palloc'd in the caller's memory context. */
typedef struct AoSelection
{
	const char *orchestration;	/* what the selector chose */
	const char *run_as;			/* what start() runs: the orchestration, but
								 * simple for planner/reactive in a database
								 * still at 0.1.0 (the reason says so) */
	const char *workflow;		/* fixed only */
	double		confidence;
	const char *source;			/* rules | default */
	const char *rule;			/* matching rule's name, or NULL */
	const char *model;			/* the LLM selector's model, or NULL */
	const char *reason;
} AoSelection;

/*
 * Decide for input (workflow: the caller's workflow argument or NULL).
 * Reads the enabled selector rules as the extension owner. May ERROR.
 */
extern void ao_select_decide(json_object *input, const char *workflow, AoSelection *sel);

/* The selection as the JSON text stored in runs.selection. */
extern char *ao_selection_json(const AoSelection *sel);

#endif							/* AO_SELECTOR_H */
