/*-------------------------------------------------------------------------
 *
 * unit.h
 *	  Minimal TAP producer for the core's unit tests.
 *
 * Each test program prints "ok N - name" / "not ok N - name" lines and a
 * closing "1..N" plan, so the suite can be read by prove or counted by
 * scripts/test.sh. The exit status is non-zero when any check failed.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/unit.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_UNIT_H
#define AO_UNIT_H

#include <stdio.h>
#include <string.h>

static int	unit_count;
static int	unit_failed;

/* Record one check; extra diagnostic lines start with "# ". */
static inline int
unit_ok(int cond, const char *name)
{
	unit_count++;
	if (!cond)
		unit_failed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", unit_count, name);
	fflush(stdout);
	return cond;
}

#define UNIT_OK(cond, name) unit_ok((cond) ? 1 : 0, (name))
#define UNIT_STREQ(got, want, name) \
	(unit_ok((got) != NULL && strcmp((got), (want)) == 0, (name)) ? 1 : \
	 (printf("#   got:  %s\n#   want: %s\n", (got) ? (got) : "(null)", (want)), 0))

/* Print the plan and return the process exit status. */
static inline int
unit_done(void)
{
	printf("1..%d\n", unit_count);
	return unit_failed ? 1 : 0;
}

#endif							/* AO_UNIT_H */
