/*-------------------------------------------------------------------------
 *
 * ao_dag.h
 *	  Dependency-graph checks and ordering for workflow steps.
 *
 * A workflow's steps form a directed graph through their depends_on lists.
 * ao_dag_check reports everything that keeps that graph from being a DAG
 * (duplicate ids, unknown or self dependencies, cycles) through the core's
 * problem callback; ao_dag_order computes a stable topological order and the
 * parallelism level of every step; ao_dag_depends_on and ao_dag_ancestors
 * answer "does step X (transitively) depend on step Y", which the workflow
 * validator uses to check that a ${step.output} reference names a step that
 * is guaranteed to have finished.
 *
 * Ids are hashed (open addressing), so every function is linear in the
 * number of steps plus dependency edges (cycle reporting is linear per
 * reported cycle); none of them compares ids pairwise.
 *
 * In cycle messages an arrow means "depends on": for "cycle: a -> b -> a",
 * a lists b in depends_on and b lists a.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_dag.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_DAG_H
#define AO_DAG_H

#include <stddef.h>

#include "ao_core.h"

/*
 * One step of the graph. All strings are borrowed from the caller and must
 * stay valid during the call; a NULL id or dependency is treated as "".
 */
typedef struct ao_dag_node
{
	const char *id;
	const char *const *deps;	/* ids of the steps this one depends on */
	size_t		ndeps;
	const char *path;			/* JSON pointer of the step, e.g. "/steps/2";
								 * NULL means "" */
} ao_dag_node;

/*
 * Report through cb every problem of the graph and return their number:
 *	- a duplicate step id, at the path of the second definition:
 *	  duplicate step id "x" (first defined at /steps/0)
 *	- an unknown dependency, at <node path>/depends_on/<i>:
 *	  unknown step "zz" in depends_on
 *	- a step depending on itself, at <node path>/depends_on/<i>:
 *	  step "a" depends on itself
 *	- cycles, at the path of the first step named: cycle: a -> b -> c -> a
 *	  Each strongly connected group of steps is reported through shortest
 *	  cycles until every step of the group appears in at least one reported
 *	  cycle, so independent or overlapping loops are all named, without the
 *	  exponential blow-up of listing every elementary cycle.
 * Order: per step in input order its duplicate and dependency problems, then
 * the cycles ordered by their first step. Dependencies name the first step
 * defined with an id. cb may be NULL (then only the count is returned).
 * The interrupt hook (ao_core.h) is polled every 1024 steps and before each
 * cycle search; when it fires, the check stops and reports one more
 * problem, AO_INTERRUPTED_MESSAGE at path "".
 */
extern int	ao_dag_check(const ao_dag_node *nodes, size_t n,
						 ao_problem_fn cb, void *arg);

/*
 * For a valid DAG, fill order[n] with node indexes in topological order
 * (dependencies first; among ready steps the one earlier in the input comes
 * first) and level[n] with each step's parallelism level (0 without
 * dependencies, else 1 + the highest level among its dependencies); steps
 * of one level can run together. Return the number of levels (0 for an
 * empty graph), or -1 if the graph is not a valid DAG (anything
 * ao_dag_check would report), in which case the outputs are unspecified.
 * Either output may be NULL.
 */
extern int	ao_dag_order(const ao_dag_node *nodes, size_t n,
						 size_t *order, int *level);

/*
 * Return 1 if node anc is a transitive dependency of node desc (reachable
 * through one or more depends_on edges), else 0. Unknown dependencies are
 * ignored; out-of-range indexes give 0. Duplicate ids resolve to their
 * first definition.
 */
extern int	ao_dag_depends_on(const ao_dag_node *nodes, size_t n,
							  size_t desc, size_t anc);

/*
 * Set mark[i] = 1 for every node i that node desc transitively depends on
 * and 0 for the others (desc itself is marked only when it lies on a
 * cycle). mark must hold n bytes. Return the number of marked nodes, or
 * 0 when desc is out of range. One call answers ao_dag_depends_on for all
 * candidate ancestors of one step.
 */
extern size_t ao_dag_ancestors(const ao_dag_node *nodes, size_t n,
							   size_t desc, unsigned char *mark);

/*
 * Index of the first node whose id equals id, or -1. A linear scan: build an
 * ao_dag_index for repeated lookups.
 */
extern long ao_dag_find(const ao_dag_node *nodes, size_t n, const char *id);

/*
 * A hash index from step id to the first node defining it, for callers
 * that resolve many ids (e.g. every reference in a workflow).
 */
typedef struct ao_dag_index ao_dag_index;

/* Build an index over nodes (borrowed; must outlive the index). */
extern ao_dag_index *ao_dag_index_build(const ao_dag_node *nodes, size_t n);

/* Index of the first node with this id (len bytes), or -1. */
extern long ao_dag_index_lookup(const ao_dag_index *index,
								const char *id, size_t len);

/* Release an index; NULL is allowed. */
extern void ao_dag_index_free(ao_dag_index *index);

#endif							/* AO_DAG_H */
