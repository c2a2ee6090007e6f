/*-------------------------------------------------------------------------
 *
 * agentorch.c
 *	  Module entry point: settings and (with preload) the background
 *	  workers.
 *
 * agentorch works without shared_preload_libraries: the SQL API and the
 * in-session executor need only the module. With preload, _PG_init also
 * registers the launcher that starts executors for every database that has
 * the extension.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/agentorch.c
 *
 *-------------------------------------------------------------------------
 */
#include "agentorch.h"

#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

int			ao_max_definition_size = 1024 * 1024;

void		_PG_init(void);

/*
 * Define the settings. Nothing here may fail after a partial registration:
 * GUC definitions are idempotent per backend.
 */
void
_PG_init(void)
{
	if (IsBinaryUpgrade)
		return;

	DefineCustomIntVariable("agentorch.max_definition_size",
							"Largest workflow, plan, tool or model definition accepted, in bytes.",
							"Definitions and YAML documents above this size are refused before parsing.",
							&ao_max_definition_size,
							1024 * 1024, 1024, 64 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("agentorch");
}
