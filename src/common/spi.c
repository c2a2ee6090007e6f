/*-------------------------------------------------------------------------
 *
 * spi.c
 *	  Kept SPI plans of the extension's fixed statements, shared by every
 *	  layer that runs them (the claim loop, the network runner, streams).
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/common/spi.c
 *
 *-------------------------------------------------------------------------
 */
#include "common.h"

#include "executor/spi.h"

/*
 * Plans of the executor's fixed statements, prepared once per process and
 * kept (SPI_keepplan): the executor runs the same few statements for every
 * step, and planning them each time was a large share of its CPU. The
 * cache is keyed by the address of the statement's string literal; the
 * plan cache revalidates the plans after DDL on what they use.
 */
#define AO_MAX_CACHED_PLANS 256
static struct
{
	const char *sql;
	SPIPlanPtr	plan;
}			cached_plans[AO_MAX_CACHED_PLANS];
static int	ncached_plans = 0;

/*
 * The kept plan of a literal statement (prepared on first use).
 * cursor_options CURSOR_OPT_GENERIC_PLAN: the plan cache never builds a
 * custom plan for it (see ao_spi_exec_generic).
 */
static SPIPlanPtr
cached_plan(const char *sql, int nargs, Oid *types, int cursor_options)
{
	SPIPlanPtr	plan;

	for (int i = 0; i < ncached_plans; i++)
		if (cached_plans[i].sql == sql)
			return cached_plans[i].plan;
	plan = SPI_prepare_cursor(sql, nargs, types, cursor_options);
	if (plan == NULL)
		elog(ERROR, "agentorch: could not prepare: %s: %s", sql, SPI_result_code_string(SPI_result));
	if (ncached_plans == AO_MAX_CACHED_PLANS)
		return plan;			/* not kept: freed with the SPI connection */
	SPI_keepplan(plan);
	cached_plans[ncached_plans].sql = sql;
	cached_plans[ncached_plans].plan = plan;
	ncached_plans++;
	return plan;
}

/*
 * Run a statement (a string literal) through its kept plan (planned with
 * cursor_options), read-only or not, for at most tcount rows (0: all);
 * ERRORs with the statement when the result code is not the expected one
 * (0: any success).
 */
static int
exec_kept(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expected,
		  int cursor_options, bool read_only, long tcount)
{
	int			ret;

	Assert(sql != NULL && nargs >= 0);
	ret = SPI_execute_plan(cached_plan(sql, nargs, types, cursor_options), values, nulls, read_only, tcount);
	if (expected == 0 ? ret < 0 : ret != expected)
		elog(ERROR, "agentorch: unexpected SPI result %d for: %s", ret, sql);
	return ret;
}

/* Run a statement (a string literal) with parameters through its kept plan. */
int
ao_spi_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expected)
{
	return exec_kept(sql, nargs, types, values, nulls, expected, 0, false, 0);
}

/*
 * ao_spi_exec for a statement whose best plan does not depend on its
 * parameters' values (a lookup by key). The plan cache would otherwise
 * plan some of them anew on every execution: when the generic plan's
 * estimate is above the custom plans' (a "$2 IS NULL OR ..." condition, an
 * array parameter), it keeps building custom plans, and planning was a
 * large share of a short transaction.
 */
int
ao_spi_exec_generic(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expected)
{
	return exec_kept(sql, nargs, types, values, nulls, expected, CURSOR_OPT_GENERIC_PLAN, false, 0);
}

/*
 * ao_spi_exec for a read-only statement that must see the active snapshot
 * as it is (SPI's read_only: no new snapshot, no command counter step), so
 * that rows this transaction wrote after taking it stay unseen; at most
 * tcount rows (0: all).
 */
int
ao_spi_exec_read_only(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
					  int expected, long tcount)
{
	return exec_kept(sql, nargs, types, values, nulls, expected, 0, true, tcount);
}

/*
 * ao_spi_exec without a result check, for the network runner: sql MUST be
 * a string literal, since the plan is cached by its address.
 */
int
ao_spi_exec_literal(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	return ao_spi_exec(sql, nargs, types, values, nulls, 0);
}
