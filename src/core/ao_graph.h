/*-------------------------------------------------------------------------
 *
 * ao_graph.h
 *	  Render a workflow's DAG as Mermaid or Graphviz dot (PostgreSQL-free).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_graph.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_GRAPH_H
#define AO_GRAPH_H

#include "ao_core.h"
#include "ao_workflow.h"

/* Status of a step in a run ("succeeded", ...), or NULL for a plain workflow graph. */
typedef const char *(*ao_graph_status_fn) (void *arg, const char *step_id);

/*
 * Append the graph of a flattened workflow to out. format is "mermaid" or
 * "dot"; returns 0, or -1 for an unknown format. title names the graph.
 */
extern int	ao_graph_render(const ao_wf_steps *steps, const char *title,
							const char *format, ao_graph_status_fn status,
							void *arg, ao_buf *out);

#endif							/* AO_GRAPH_H */
