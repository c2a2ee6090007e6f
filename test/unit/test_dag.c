/*-------------------------------------------------------------------------
 *
 * test_dag.c
 *	  Unit tests of ao_dag: problem reports, ordering, levels, ancestry.
 *
 * Problems are collected as "path: message" lines so every check compares
 * exact paths and messages, in the order the checker reports them.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/test_dag.c
 *
 *-------------------------------------------------------------------------
 */
#include "ao_dag.h"
#include "unit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Problem callback: append "path: message\n" to the ao_buf in arg. */
static void
collect(void *arg, const char *path, const char *message)
{
	ao_buf_printf((ao_buf *) arg, "%s: %s\n", path, message);
}

/*
 * A small graph description: "id:dep,dep" tokens separated by spaces, e.g.
 * "a b:a c:a,b". Paths are /steps/<i>.
 */
typedef struct graph
{
	size_t		n;
	ao_dag_node *nodes;
	char	  **ids;
	char	  **paths;
	char	 ***deps;
} graph;

/* Parse a description into a graph (see above). */
static graph
graph_make(const char *desc)
{
	graph		g = {0};
	char	   *copy = strdup(desc);
	char	   *save = NULL;
	size_t		cap = 0;

	for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
	{
		char	   *colon = strchr(tok, ':');
		size_t		nd = 0;
		char	  **deps = calloc(64, sizeof(char *));

		if (g.n == cap)
		{
			cap = cap ? cap * 2 : 8;
			g.nodes = realloc(g.nodes, cap * sizeof(ao_dag_node));
			g.ids = realloc(g.ids, cap * sizeof(char *));
			g.paths = realloc(g.paths, cap * sizeof(char *));
			g.deps = realloc(g.deps, cap * sizeof(char **));
		}
		if (colon)
		{
			char	   *save2 = NULL;

			*colon = '\0';
			for (char *d = strtok_r(colon + 1, ",", &save2); d; d = strtok_r(NULL, ",", &save2))
				deps[nd++] = strdup(d);
		}
		g.ids[g.n] = strdup(tok);
		g.paths[g.n] = malloc(32);
		snprintf(g.paths[g.n], 32, "/steps/%zu", g.n);
		g.deps[g.n] = deps;
		g.nodes[g.n].id = g.ids[g.n];
		g.nodes[g.n].deps = (const char *const *) deps;
		g.nodes[g.n].ndeps = nd;
		g.nodes[g.n].path = g.paths[g.n];
		g.n++;
	}
	free(copy);
	return g;
}

/* Release a graph made by graph_make. */
static void
graph_free(graph *g)
{
	for (size_t i = 0; i < g->n; i++)
	{
		for (size_t j = 0; j < g->nodes[i].ndeps; j++)
			free(g->deps[i][j]);
		free(g->deps[i]);
		free(g->ids[i]);
		free(g->paths[i]);
	}
	free(g->nodes);
	free(g->ids);
	free(g->paths);
	free(g->deps);
}

/* Run ao_dag_check on a description; compare count and report text. */
static void
check_problems(const char *desc, int want_count, const char *want, const char *name)
{
	graph		g = graph_make(desc);
	ao_buf		out;
	int			count;
	char		label[256];

	ao_buf_init(&out);
	count = ao_dag_check(g.nodes, g.n, collect, &out);
	snprintf(label, sizeof(label), "%s: problem count", name);
	if (!UNIT_OK(count == want_count, label))
		printf("#   got %d, want %d\n", count, want_count);
	snprintf(label, sizeof(label), "%s: problems", name);
	UNIT_STREQ(out.data, want, label);
	ao_buf_free(&out);
	graph_free(&g);
}

/*
 * Run ao_dag_order; compare the result and the order/levels rendered as
 * "id@level id@level ...".
 */
static void
check_order(const char *desc, int want_levels, const char *want, const char *name)
{
	graph		g = graph_make(desc);
	size_t	   *order = calloc(g.n + 1, sizeof(size_t));
	int		   *level = calloc(g.n + 1, sizeof(int));
	int			got;
	ao_buf		out;
	char		label[256];

	ao_buf_init(&out);
	got = ao_dag_order(g.nodes, g.n, order, level);
	snprintf(label, sizeof(label), "%s: levels", name);
	if (!UNIT_OK(got == want_levels, label))
		printf("#   got %d, want %d\n", got, want_levels);
	if (want != NULL)
	{
		for (size_t i = 0; i < g.n; i++)
			ao_buf_printf(&out, "%s%s@%d", i ? " " : "", g.ids[order[i]], level[order[i]]);
		snprintf(label, sizeof(label), "%s: order", name);
		UNIT_STREQ(out.data, want, label);
	}
	ao_buf_free(&out);
	free(order);
	free(level);
	graph_free(&g);
}

/* Problem reports with exact messages and paths. */
static void
test_check(void)
{
	check_problems("", 0, "", "empty graph");
	check_problems("a b:a c:a,b", 0, "", "valid graph");
	check_problems("a b a", 1,
				   "/steps/2: duplicate step id \"a\" (first defined at /steps/0)\n",
				   "duplicate id");
	check_problems("a a a", 2,
				   "/steps/1: duplicate step id \"a\" (first defined at /steps/0)\n"
				   "/steps/2: duplicate step id \"a\" (first defined at /steps/0)\n",
				   "triplicate id");
	check_problems("a b:a,zz", 1,
				   "/steps/1/depends_on/1: unknown step \"zz\" in depends_on\n",
				   "unknown dependency");
	check_problems("a:a", 1,
				   "/steps/0/depends_on/0: step \"a\" depends on itself\n",
				   "self dependency (not also a cycle)");
	check_problems("a:b b:a", 1, "/steps/0: cycle: a -> b -> a\n", "two-step cycle");
	check_problems("a:c b:a c:b", 1, "/steps/0: cycle: a -> c -> b -> a\n",
				   "three-step cycle, arrows mean depends on");
	check_problems("x a:b b:c c:a", 1, "/steps/1: cycle: a -> b -> c -> a\n",
				   "cycle path is its first step");
	check_problems("a:b b:a c:d d:c", 2,
				   "/steps/0: cycle: a -> b -> a\n/steps/2: cycle: c -> d -> c\n",
				   "two disjoint cycles");
	check_problems("a:b b:a,c c:b", 2,
				   "/steps/0: cycle: a -> b -> a\n/steps/2: cycle: c -> b -> c\n",
				   "overlapping cycles both named");
	check_problems("a:b,c b:c c:a", 2,
				   "/steps/0: cycle: a -> c -> a\n/steps/1: cycle: b -> c -> a -> b\n",
				   "shortest cycles until the group is covered");
	check_problems("a:b b:c c:d d:a e:a", 1, "/steps/0: cycle: a -> b -> c -> d -> a\n",
				   "step depending on a cycle is not in it");
	check_problems("a:a,zz b:b a c:d d:c", 5,
				   "/steps/0/depends_on/0: step \"a\" depends on itself\n"
				   "/steps/0/depends_on/1: unknown step \"zz\" in depends_on\n"
				   "/steps/1/depends_on/0: step \"b\" depends on itself\n"
				   "/steps/2: duplicate step id \"a\" (first defined at /steps/0)\n"
				   "/steps/3: cycle: c -> d -> c\n",
				   "mixed problems in deterministic order");
	check_problems("a b:a,a", 0, "", "repeated dependency is harmless");

	{
		graph		g = graph_make("a:b b:a c:zz");

		UNIT_OK(ao_dag_check(g.nodes, g.n, NULL, NULL) == 2, "NULL callback still counts");
		graph_free(&g);
	}
	{
		/* JSON-pointer escaping of the depends_on segment, NULL path and id */
		const char *deps[] = {"nope", NULL};
		ao_dag_node nodes[2] = {
			{"a", deps, 2, NULL},
			{NULL, NULL, 0, "/x"},
		};
		ao_buf		out;

		ao_buf_init(&out);
		UNIT_OK(ao_dag_check(nodes, 2, collect, &out) == 1, "NULL dep resolves to the step with NULL id");
		UNIT_STREQ(out.data, "/depends_on/0: unknown step \"nope\" in depends_on\n",
				   "NULL path reads as empty");
		ao_buf_free(&out);
	}
}

/* Topological order, stability and levels. */
static void
test_order(void)
{
	check_order("", 0, "", "empty graph has zero levels");
	check_order("a", 1, "a@0", "single step");
	check_order("a b:a c:b", 3, "a@0 b@1 c@2", "chain");
	check_order("c:b b:a a", 3, "a@0 b@1 c@2", "chain given backwards");
	check_order("a b:a c:a d:b,c", 3, "a@0 b@1 c@1 d@2", "diamond");
	check_order("x y:x z", 2, "x@0 y@1 z@0", "ready steps in input order");
	check_order("z:y y x", 2, "y@0 z@1 x@0", "stable min-index choice");
	check_order("a b c d:a,b,c e:d f:a", 3, "a@0 b@0 c@0 d@1 e@2 f@1", "fan-in");
	check_order("a b:a c:a,b", 3, "a@0 b@1 c@2", "level is longest path");
	check_order("a b:a,a", 2, "a@0 b@1", "repeated dependency");
	check_order("a:b b:a", -1, NULL, "cycle is not a DAG");
	check_order("a:a", -1, NULL, "self dependency is not a DAG");
	check_order("a b:zz", -1, NULL, "unknown dependency is not a DAG");
	check_order("a a", -1, NULL, "duplicate id is not a DAG");

	{
		graph		g = graph_make("a b:a c:b");

		UNIT_OK(ao_dag_order(g.nodes, g.n, NULL, NULL) == 3, "outputs may be NULL");
		graph_free(&g);
	}
}

/* Ancestry queries, index lookups. */
static void
test_ancestry(void)
{
	graph		g = graph_make("a b:a c:b d e:c,d f:f2 f2");
	unsigned char mark[7];
	ao_dag_index *ix;

	UNIT_OK(ao_dag_depends_on(g.nodes, g.n, 1, 0) == 1, "direct dependency");
	UNIT_OK(ao_dag_depends_on(g.nodes, g.n, 4, 0) == 1, "transitive dependency");
	UNIT_OK(ao_dag_depends_on(g.nodes, g.n, 0, 4) == 0, "dependent is not a dependency");
	UNIT_OK(ao_dag_depends_on(g.nodes, g.n, 2, 3) == 0, "unrelated steps");
	UNIT_OK(ao_dag_depends_on(g.nodes, g.n, 2, 2) == 0, "a step is not its own dependency");
	UNIT_OK(ao_dag_depends_on(g.nodes, g.n, 99, 0) == 0, "out of range desc");
	UNIT_OK(ao_dag_depends_on(g.nodes, g.n, 0, 99) == 0, "out of range anc");
	UNIT_OK(ao_dag_depends_on(g.nodes, g.n, 5, 6) == 1, "dependency defined later");
	UNIT_OK(ao_dag_ancestors(g.nodes, g.n, 4, mark) == 4, "ancestor count");
	UNIT_OK(mark[0] && mark[1] && mark[2] && mark[3] && !mark[4] && !mark[5] && !mark[6],
			"ancestor marks");
	UNIT_OK(ao_dag_ancestors(g.nodes, g.n, 0, mark) == 0 && !mark[4], "no ancestors clears marks");
	UNIT_OK(ao_dag_find(g.nodes, g.n, "e") == 4, "find by id");
	UNIT_OK(ao_dag_find(g.nodes, g.n, "zz") == -1, "find unknown id");
	ix = ao_dag_index_build(g.nodes, g.n);
	UNIT_OK(ao_dag_index_lookup(ix, "f2", 2) == 6, "index lookup");
	UNIT_OK(ao_dag_index_lookup(ix, "f2xyz", 1) == 5, "index lookup by length");
	UNIT_OK(ao_dag_index_lookup(ix, "g", 1) == -1, "index lookup unknown");
	ao_dag_index_free(ix);
	ao_dag_index_free(NULL);
	graph_free(&g);

	g = graph_make("a:b b:a c:a");
	UNIT_OK(ao_dag_depends_on(g.nodes, g.n, 0, 0) == 1, "step on a cycle reaches itself");
	UNIT_OK(ao_dag_depends_on(g.nodes, g.n, 2, 1) == 1, "through a cycle");
	graph_free(&g);

	g = graph_make("a b a:b");
	UNIT_OK(ao_dag_depends_on(g.nodes, g.n, 1, 0) == 0, "duplicate ids resolve to the first");
	UNIT_OK(ao_dag_index_lookup(ix = ao_dag_index_build(g.nodes, g.n), "a", 1) == 0,
			"index keeps the first definition");
	ao_dag_index_free(ix);
	graph_free(&g);
}

/* Build a large graph of n steps "s<i>" whose deps are given by depf. */
static void
big_graph(size_t n, size_t maxdeps, size_t (*depf) (size_t i, size_t k, size_t n),
		  ao_dag_node **nodes_out, char ***strs_out)
{
	ao_dag_node *nodes = calloc(n, sizeof(ao_dag_node));
	char	  **ids = calloc(n, sizeof(char *));

	for (size_t i = 0; i < n; i++)
	{
		ids[i] = malloc(24);
		snprintf(ids[i], 24, "s%zu", i);
	}
	for (size_t i = 0; i < n; i++)
	{
		const char **deps = calloc(maxdeps + 1, sizeof(char *));
		size_t		nd = 0;

		for (size_t k = 0; k < maxdeps; k++)
		{
			size_t		d = depf(i, k, n);

			if (d != SIZE_MAX)
				deps[nd++] = ids[d];
		}
		nodes[i].id = ids[i];
		nodes[i].deps = deps;
		nodes[i].ndeps = nd;
		nodes[i].path = "/steps/x";
	}
	*nodes_out = nodes;
	*strs_out = ids;
}

/* Release a graph made by big_graph. */
static void
big_free(ao_dag_node *nodes, char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		free((void *) nodes[i].deps);
		free(ids[i]);
	}
	free(nodes);
	free(ids);
}

/* Chain: step i depends on step i-1. */
static size_t
dep_chain(size_t i, size_t k, size_t n)
{
	(void) k;
	(void) n;
	return i == 0 ? SIZE_MAX : i - 1;
}

/* Ring: step i depends on step i-1, step 0 on the last. */
static size_t
dep_ring(size_t i, size_t k, size_t n)
{
	(void) k;
	return i == 0 ? n - 1 : i - 1;
}

/* Layered: step i depends on up to 4 steps of the previous layer of 100. */
static size_t
dep_layers(size_t i, size_t k, size_t n)
{
	(void) n;
	if (i < 100)
		return SIZE_MAX;
	return (i / 100 - 1) * 100 + (i * 7 + k * 13) % 100;
}

/* Thousands of steps: no recursion limits, linear behaviour. */
static void
test_large(void)
{
	ao_dag_node *nodes;
	char	  **ids;
	size_t		n = 100000;
	size_t	   *order = malloc(n * sizeof(size_t));
	int		   *level = malloc(n * sizeof(int));
	ao_buf		out;
	int			ok = 1;

	big_graph(n, 1, dep_chain, &nodes, &ids);
	UNIT_OK(ao_dag_check(nodes, n, NULL, NULL) == 0, "100000-step chain is valid");
	UNIT_OK(ao_dag_order(nodes, n, order, level) == (int) n, "chain has 100000 levels");
	for (size_t i = 0; i < n; i++)
		ok &= order[i] == i && level[i] == (int) i;
	UNIT_OK(ok, "chain order and levels");
	UNIT_OK(ao_dag_depends_on(nodes, n, n - 1, 0) == 1, "end of chain depends on start");
	big_free(nodes, ids, n);

	big_graph(5000, 1, dep_ring, &nodes, &ids);
	ao_buf_init(&out);
	UNIT_OK(ao_dag_check(nodes, 5000, collect, &out) == 1, "5000-step ring is one cycle");
	UNIT_OK(strncmp(out.data, "/steps/x: cycle: s0 -> s4999 -> s4998", 37) == 0 &&
			strstr(out.data, "s1 -> s0\n") != NULL, "ring cycle message");
	UNIT_OK(ao_dag_order(nodes, 5000, order, level) == -1, "ring has no order");
	ao_buf_free(&out);
	big_free(nodes, ids, 5000);

	big_graph(20000, 4, dep_layers, &nodes, &ids);
	UNIT_OK(ao_dag_check(nodes, 20000, NULL, NULL) == 0, "layered graph is valid");
	UNIT_OK(ao_dag_order(nodes, 20000, order, level) == 200, "layered graph has 200 levels");
	ok = 1;
	for (size_t i = 0; i < 20000; i++)
		ok &= level[i] == (int) (i / 100);
	UNIT_OK(ok, "layered levels");
	big_free(nodes, ids, 20000);

	free(order);
	free(level);
}

int
main(void)
{
	test_check();
	test_order();
	test_ancestry();
	test_large();
	return unit_done();
}
