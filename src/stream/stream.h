/*-------------------------------------------------------------------------
 *
 * stream.h
 *	  The stream layer (stream.c): NOTIFY of runs (coalesced per
 *	  transaction) and how much may go into the NOTIFY queue. Above policy.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/stream/stream.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_STREAM_H
#define AO_STREAM_H

#include "policy.h"

extern List *ao_run_list_add(List *list, int64 run);
extern void ao_notify_runs(List *runs);

#endif							/* AO_STREAM_H */
