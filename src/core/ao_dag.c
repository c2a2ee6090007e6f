/*-------------------------------------------------------------------------
 *
 * ao_dag.c
 *	  Dependency-graph checks, topological order and ancestry for steps.
 *
 * The graph is built once per call into compressed adjacency arrays:
 * every depends_on entry is resolved through an open-addressing hash of
 * the step ids (first definition wins), unknown ids are dropped from the
 * graph (ao_dag_check reports them). Cycles are found with an iterative
 * Tarjan pass (no recursion, so a chain of 100000 steps cannot overflow the
 * stack), then each strongly connected group is explained by breadth-first
 * shortest cycles until every member appears in one. Ordering is Kahn's
 * algorithm with a min-heap of ready steps, which makes it stable.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/ao_dag.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_dag.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NO_NODE		SIZE_MAX

/* One slot of the id hash: node index + 1 (0 = empty) and the id's hash. */
typedef struct dag_slot
{
	size_t		node1;
	uint64_t	hash;
} dag_slot;

struct ao_dag_index
{
	const ao_dag_node *nodes;
	size_t		n;
	size_t		mask;			/* capacity - 1, capacity a power of two */
	dag_slot   *slots;
	size_t	   *idlen;			/* strlen of every node id */
};

/*
 * The resolved graph: adj[first[v] .. first[v+1]) are the indexes of the
 * known dependencies of v, in depends_on order (self edges included).
 */
typedef struct dag_graph
{
	size_t		n;
	ao_dag_index *index;
	size_t	   *first;
	size_t	   *adj;
	int			invalid;		/* duplicate ids, unknown or self deps */
} dag_graph;

/* malloc that aborts on failure, like the rest of the core (ao_core.c). */
static void *
dag_alloc(size_t count, size_t size)
{
	return ao_calloc(count, size);
}

/* A node's id, with NULL read as "". */
static const char *
dag_id(const ao_dag_node *node)
{
	return node->id ? node->id : "";
}

/* A node's JSON-pointer path, with NULL read as "". */
static const char *
dag_path(const ao_dag_node *node)
{
	return node->path ? node->path : "";
}

/* The i-th dependency id of a node, with NULL read as "". */
static const char *
dag_dep(const ao_dag_node *node, size_t i)
{
	return node->deps[i] ? node->deps[i] : "";
}

/* FNV-1a over len bytes. */
static uint64_t
dag_hash(const char *s, size_t len)
{
	uint64_t	h = UINT64_C(14695981039346656037);

	for (size_t i = 0; i < len; i++)
	{
		h ^= (unsigned char) s[i];
		h *= UINT64_C(1099511628211);
	}
	return h;
}

/*
 * Find the slot holding id, or the empty slot where it would go. Never
 * fails: the table is kept at most half full.
 */
static size_t
dag_index_probe(const ao_dag_index *ix, const char *id, size_t len,
				uint64_t h)
{
	size_t		pos = (size_t) h & ix->mask;

	for (;;)
	{
		const dag_slot *s = &ix->slots[pos];

		if (s->node1 == 0)
			return pos;
		if (s->hash == h && ix->idlen[s->node1 - 1] == len &&
			memcmp(dag_id(&ix->nodes[s->node1 - 1]), id, len) == 0)
			return pos;
		pos = (pos + 1) & ix->mask;
	}
}

/*
 * Build the id index; the first node with a given id owns it. Nodes are
 * borrowed and must outlive the index.
 */
ao_dag_index *
ao_dag_index_build(const ao_dag_node *nodes, size_t n)
{
	ao_dag_index *ix = dag_alloc(1, sizeof(ao_dag_index));
	size_t		cap = 16;

	while (cap < n * 2)
		cap *= 2;
	ix->nodes = nodes;
	ix->n = n;
	ix->mask = cap - 1;
	ix->slots = dag_alloc(cap, sizeof(dag_slot));
	ix->idlen = dag_alloc(n, sizeof(size_t));
	for (size_t i = 0; i < n; i++)
	{
		const char *id = dag_id(&nodes[i]);
		size_t		len = strlen(id);
		uint64_t	h = dag_hash(id, len);
		size_t		pos;

		ix->idlen[i] = len;
		pos = dag_index_probe(ix, id, len, h);
		if (ix->slots[pos].node1 == 0)
		{
			ix->slots[pos].node1 = i + 1;
			ix->slots[pos].hash = h;
		}
	}
	return ix;
}

/* Index of the first node whose id is the len bytes at id, or -1. */
long
ao_dag_index_lookup(const ao_dag_index *index, const char *id, size_t len)
{
	size_t		pos;

	if (index == NULL || index->n == 0)
		return -1;
	pos = dag_index_probe(index, id ? id : "", id ? len : 0,
						  dag_hash(id ? id : "", id ? len : 0));
	if (index->slots[pos].node1 == 0)
		return -1;
	return (long) (index->slots[pos].node1 - 1);
}

/* Release an index built by ao_dag_index_build; NULL is allowed. */
void
ao_dag_index_free(ao_dag_index *index)
{
	if (index == NULL)
		return;
	free(index->slots);
	free(index->idlen);
	free(index);
}

/* Linear search for the first node with this id; -1 if none. */
long
ao_dag_find(const ao_dag_node *nodes, size_t n, const char *id)
{
	if (id == NULL)
		id = "";
	for (size_t i = 0; i < n; i++)
		if (strcmp(dag_id(&nodes[i]), id) == 0)
			return (long) i;
	return -1;
}

/* Index lookup of a NUL-terminated id. */
static long
dag_lookup(const ao_dag_index *ix, const char *id)
{
	return ao_dag_index_lookup(ix, id, strlen(id));
}

/*
 * Resolve every dependency into adjacency arrays. Unknown ids are left out;
 * g->invalid is set when anything makes the graph not a DAG before cycles
 * are even considered (duplicate id, unknown dependency, self dependency).
 */
static void
dag_graph_build(dag_graph *g, const ao_dag_node *nodes, size_t n)
{
	size_t		m = 0;
	size_t		k = 0;

	g->n = n;
	g->invalid = 0;
	g->index = ao_dag_index_build(nodes, n);
	for (size_t v = 0; v < n; v++)
		m += nodes[v].deps ? nodes[v].ndeps : 0;
	g->first = dag_alloc(n + 1, sizeof(size_t));
	g->adj = dag_alloc(m, sizeof(size_t));
	for (size_t v = 0; v < n; v++)
	{
		g->first[v] = k;
		if (dag_lookup(g->index, dag_id(&nodes[v])) != (long) v)
			g->invalid = 1;		/* duplicate id */
		for (size_t i = 0; nodes[v].deps && i < nodes[v].ndeps; i++)
		{
			long		d = dag_lookup(g->index, dag_dep(&nodes[v], i));

			if (d < 0)
			{
				g->invalid = 1;
				continue;
			}
			/* compare names, not indexes: a duplicate may name itself too */
			if (strcmp(dag_dep(&nodes[v], i), dag_id(&nodes[v])) == 0)
				g->invalid = 1;
			g->adj[k++] = (size_t) d;
		}
	}
	g->first[n] = k;
}

/* Release the arrays of a graph built by dag_graph_build. */
static void
dag_graph_free(dag_graph *g)
{
	ao_dag_index_free(g->index);
	free(g->first);
	free(g->adj);
}

/*
 * Iterative Tarjan: comp[v] receives the id of v's strongly connected
 * component, compsize[c] its number of members (compsize holds n entries).
 */
static void
dag_scc(const dag_graph *g, size_t *comp, size_t *compsize)
{
	size_t		n = g->n;
	size_t	   *num = dag_alloc(n, sizeof(size_t));
	size_t	   *low = dag_alloc(n, sizeof(size_t));
	size_t	   *edge = dag_alloc(n, sizeof(size_t));	/* next edge to try */
	size_t	   *stack = dag_alloc(n, sizeof(size_t));
	size_t	   *call = dag_alloc(n, sizeof(size_t));
	unsigned char *onstack = dag_alloc(n, 1);
	size_t		sp = 0,
				cp = 0,
				counter = 0,
				ncomp = 0;

	for (size_t v = 0; v < n; v++)
		num[v] = NO_NODE;
	for (size_t root = 0; root < n; root++)
	{
		if (num[root] != NO_NODE)
			continue;
		call[cp++] = root;
		num[root] = low[root] = counter++;
		edge[root] = g->first[root];
		stack[sp++] = root;
		onstack[root] = 1;
		while (cp > 0)
		{
			size_t		v = call[cp - 1];

			if (edge[v] < g->first[v + 1])
			{
				size_t		w = g->adj[edge[v]++];

				if (num[w] == NO_NODE)
				{
					num[w] = low[w] = counter++;
					edge[w] = g->first[w];
					stack[sp++] = w;
					onstack[w] = 1;
					call[cp++] = w;
				}
				else if (onstack[w] && num[w] < low[v])
					low[v] = num[w];
				continue;
			}
			/* v is finished */
			cp--;
			if (cp > 0 && low[v] < low[call[cp - 1]])
				low[call[cp - 1]] = low[v];
			if (low[v] == num[v])
			{
				size_t		w;

				compsize[ncomp] = 0;
				do
				{
					w = stack[--sp];
					onstack[w] = 0;
					comp[w] = ncomp;
					compsize[ncomp]++;
				} while (w != v);
				ncomp++;
			}
		}
	}
	free(num);
	free(low);
	free(edge);
	free(stack);
	free(call);
	free(onstack);
}

/*
 * Report cycles: for every step (input order) in a strongly connected group
 * of two or more steps that no reported cycle has named yet, find the
 * shortest cycle through it by breadth-first search inside its group and
 * report it at that step's path. Returns the number of cycles reported.
 */
static int
dag_report_cycles(const dag_graph *g, const ao_dag_node *nodes,
				  ao_problem_fn cb, void *arg)
{
	size_t		n = g->n;
	size_t	   *comp = dag_alloc(n, sizeof(size_t));
	size_t	   *compsize = dag_alloc(n, sizeof(size_t));
	unsigned char *covered;
	size_t	   *parent;
	size_t	   *seen;			/* BFS stamp per node */
	size_t	   *queue;
	size_t	   *cycle;
	size_t		stamp = 0;
	int			count = 0;
	ao_buf		msg;

	dag_scc(g, comp, compsize);
	covered = dag_alloc(n, 1);
	parent = dag_alloc(n, sizeof(size_t));
	seen = dag_alloc(n, sizeof(size_t));
	queue = dag_alloc(n, sizeof(size_t));
	cycle = dag_alloc(n, sizeof(size_t));
	ao_buf_init(&msg);
	for (size_t v = 0; v < n; v++)
	{
		size_t		head = 0,
					tail = 0,
					last = NO_NODE,
					len = 0;

		if (compsize[comp[v]] < 2 || covered[v])
			continue;
		if (ao_interrupt_poll())
		{
			/* each search is O(n + e): stop between them (ao_core.h) */
			if (cb)
				cb(arg, "", AO_INTERRUPTED_MESSAGE);
			count++;
			break;
		}
		stamp++;
		seen[v] = stamp;
		queue[tail++] = v;
		while (head < tail && last == NO_NODE)
		{
			size_t		u = queue[head++];

			for (size_t e = g->first[u]; e < g->first[u + 1]; e++)
			{
				size_t		w = g->adj[e];

				if (w == u || comp[w] != comp[v])
					continue;
				if (w == v)
				{
					last = u;
					break;
				}
				if (seen[w] != stamp)
				{
					seen[w] = stamp;
					parent[w] = u;
					queue[tail++] = w;
				}
			}
		}
		if (last == NO_NODE)
			continue;			/* cannot happen inside a component */
		/* walk back from the last step to v, then print forwards */
		for (size_t u = last; u != v; u = parent[u])
			cycle[len++] = u;
		cycle[len++] = v;
		ao_buf_reset(&msg);
		ao_buf_append(&msg, "cycle: ");
		for (size_t i = len; i-- > 0;)
		{
			covered[cycle[i]] = 1;
			ao_buf_append(&msg, dag_id(&nodes[cycle[i]]));
			ao_buf_append(&msg, " -> ");
		}
		ao_buf_append(&msg, dag_id(&nodes[v]));
		if (cb)
			cb(arg, dag_path(&nodes[v]), msg.data);
		count++;
	}
	ao_buf_free(&msg);
	free(comp);
	free(compsize);
	free(covered);
	free(parent);
	free(seen);
	free(queue);
	free(cycle);
	return count;
}

/*
 * Check the graph and report duplicate ids, unknown and self dependencies
 * and cycles (see ao_dag.h for messages and order). Returns the number of
 * problems.
 */
int
ao_dag_check(const ao_dag_node *nodes, size_t n, ao_problem_fn cb, void *arg)
{
	dag_graph	g;
	ao_buf		path,
				msg;
	int			count = 0;

	dag_graph_build(&g, nodes, n);
	ao_buf_init(&path);
	ao_buf_init(&msg);
	for (size_t v = 0; v < n; v++)
	{
		const char *id = dag_id(&nodes[v]);
		long		first = dag_lookup(g.index, id);

		if ((v & 1023) == 1023 && ao_interrupt_poll())
		{
			if (cb)
				cb(arg, "", AO_INTERRUPTED_MESSAGE);
			count++;
			ao_buf_free(&path);
			ao_buf_free(&msg);
			dag_graph_free(&g);
			return count;
		}

		if (first != (long) v)
		{
			ao_buf_reset(&msg);
			ao_buf_printf(&msg, "duplicate step id \"%s\" (first defined at %s)",
						  id, dag_path(&nodes[first]));
			if (cb)
				cb(arg, dag_path(&nodes[v]), msg.data);
			count++;
		}
		for (size_t i = 0; nodes[v].deps && i < nodes[v].ndeps; i++)
		{
			const char *dep = dag_dep(&nodes[v], i);

			ao_buf_reset(&msg);
			if (strcmp(dep, id) == 0)
				ao_buf_printf(&msg, "step \"%s\" depends on itself", id);
			else if (dag_lookup(g.index, dep) < 0)
				ao_buf_printf(&msg, "unknown step \"%s\" in depends_on", dep);
			else
				continue;
			ao_buf_reset(&path);
			ao_buf_append(&path, dag_path(&nodes[v]));
			ao_jsonptr_push_key(&path, "depends_on");
			ao_jsonptr_push_index(&path, i);
			if (cb)
				cb(arg, path.data, msg.data);
			count++;
		}
	}
	count += dag_report_cycles(&g, nodes, cb, arg);
	ao_buf_free(&path);
	ao_buf_free(&msg);
	dag_graph_free(&g);
	return count;
}

/* Push v onto a binary min-heap of *len entries. */
static void
heap_push(size_t *heap, size_t *len, size_t v)
{
	size_t		i = (*len)++;

	while (i > 0 && heap[(i - 1) / 2] > v)
	{
		heap[i] = heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	heap[i] = v;
}

/* Pop the smallest entry of a non-empty binary min-heap. */
static size_t
heap_pop(size_t *heap, size_t *len)
{
	size_t		top = heap[0];
	size_t		v = heap[--(*len)];
	size_t		i = 0;

	for (;;)
	{
		size_t		c = 2 * i + 1;

		if (c >= *len)
			break;
		if (c + 1 < *len && heap[c + 1] < heap[c])
			c++;
		if (heap[c] >= v)
			break;
		heap[i] = heap[c];
		i = c;
	}
	if (*len > 0)
		heap[i] = v;
	return top;
}

/*
 * Stable topological order and parallelism levels (see ao_dag.h). Returns
 * the number of levels or -1 when the graph is not a valid DAG.
 */
int
ao_dag_order(const ao_dag_node *nodes, size_t n, size_t *order, int *level)
{
	dag_graph	g;
	size_t	   *indeg,
			   *rfirst,
			   *radj,
			   *fill,
			   *heap;
	int		   *lv;
	size_t		hlen = 0,
				done = 0;
	int			nlevels = 0;

	dag_graph_build(&g, nodes, n);
	if (g.invalid)
	{
		dag_graph_free(&g);
		return -1;
	}
	/* reverse adjacency: for each step, the steps that depend on it */
	indeg = dag_alloc(n, sizeof(size_t));
	rfirst = dag_alloc(n + 1, sizeof(size_t));
	radj = dag_alloc(g.first[n], sizeof(size_t));
	fill = dag_alloc(n, sizeof(size_t));
	heap = dag_alloc(n, sizeof(size_t));
	lv = dag_alloc(n, sizeof(int));
	for (size_t e = 0; e < g.first[n]; e++)
		rfirst[g.adj[e] + 1]++;
	for (size_t v = 0; v < n; v++)
		rfirst[v + 1] += rfirst[v];
	for (size_t v = 0; v < n; v++)
	{
		indeg[v] = g.first[v + 1] - g.first[v];
		for (size_t e = g.first[v]; e < g.first[v + 1]; e++)
		{
			size_t		d = g.adj[e];

			radj[rfirst[d] + fill[d]++] = v;
		}
		if (indeg[v] == 0)
			heap_push(heap, &hlen, v);
	}
	while (hlen > 0)
	{
		size_t		v = heap_pop(heap, &hlen);
		int			l = 0;

		for (size_t e = g.first[v]; e < g.first[v + 1]; e++)
			if (lv[g.adj[e]] + 1 > l)
				l = lv[g.adj[e]] + 1;
		lv[v] = l;
		if (l + 1 > nlevels)
			nlevels = l + 1;
		if (order)
			order[done] = v;
		done++;
		for (size_t e = rfirst[v]; e < rfirst[v + 1]; e++)
			if (--indeg[radj[e]] == 0)
				heap_push(heap, &hlen, radj[e]);
	}
	if (done != n)
		nlevels = -1;			/* a cycle kept some steps from being ready */
	else if (level)
		memcpy(level, lv, n * sizeof(int));
	free(indeg);
	free(rfirst);
	free(radj);
	free(fill);
	free(heap);
	free(lv);
	dag_graph_free(&g);
	return nlevels;
}

/*
 * Mark every transitive dependency of desc by breadth-first search over the
 * resolved graph (see ao_dag.h). Returns the number of marked nodes.
 */
size_t
ao_dag_ancestors(const ao_dag_node *nodes, size_t n, size_t desc,
				 unsigned char *mark)
{
	dag_graph	g;
	size_t	   *queue;
	size_t		head = 0,
				tail = 0;

	if (mark != NULL && n > 0)
		memset(mark, 0, n);
	if (desc >= n || mark == NULL)
		return 0;
	dag_graph_build(&g, nodes, n);
	queue = dag_alloc(n, sizeof(size_t));
	/* seed with the direct dependencies; desc is marked only via a cycle */
	for (size_t e = g.first[desc]; e < g.first[desc + 1]; e++)
		if (!mark[g.adj[e]])
		{
			mark[g.adj[e]] = 1;
			queue[tail++] = g.adj[e];
		}
	while (head < tail)
	{
		size_t		u = queue[head++];

		for (size_t e = g.first[u]; e < g.first[u + 1]; e++)
			if (!mark[g.adj[e]])
			{
				mark[g.adj[e]] = 1;
				queue[tail++] = g.adj[e];
			}
	}
	free(queue);
	dag_graph_free(&g);
	return tail;
}

/* 1 if anc is a transitive dependency of desc, else 0 (see ao_dag.h). */
int
ao_dag_depends_on(const ao_dag_node *nodes, size_t n, size_t desc, size_t anc)
{
	unsigned char *mark;
	int			result;

	if (desc >= n || anc >= n)
		return 0;
	mark = dag_alloc(n, 1);
	ao_dag_ancestors(nodes, n, desc, mark);
	result = mark[anc];
	free(mark);
	return result;
}
