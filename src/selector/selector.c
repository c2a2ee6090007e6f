/*-------------------------------------------------------------------------
 *
 * selector.c
 *	  SQL API of orchestration selection: select(), load_selector_rules(),
 *	  and the decision start() uses when no orchestration is named.
 *
 * The rules live in agentorch.selector_rules; they are read as the
 * extension owner (whose search_path is pinned) and handed to the
 * PostgreSQL-free core (src/core/ao_select.c), which derives the input's
 * features, walks the priority chain (highest priority first, then by id,
 * i.e. document order) and falls back to the default decision.
 *
 * planner and reactive are not implemented in this version: when the
 * decision is one of them, start() runs simple instead when the input has
 * a prompt or messages, and the reason says so; select() reports the
 * decision itself with the same note.
 *
 * load_selector_rules() replaces every rule in one statement sequence
 * under a SHARE ROW EXCLUSIVE lock, so concurrent loads serialize and an
 * invalid document (checked in full first) changes nothing. EXECUTE on it
 * is revoked from PUBLIC: the extension owner and superusers may call it
 * and may GRANT it.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/selector/selector.c
 *
 *-------------------------------------------------------------------------
 */
#include "selector.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "ao_json_schema.h"
#include "ao_select.h"

PG_FUNCTION_INFO_V1(ao_sql_select);
PG_FUNCTION_INFO_V1(ao_sql_load_selector_rules);

#define UNAVAILABLE_NOTE "%s is not available in this version; simple instead"


/*
 * Load the enabled rules in chain order as the extension owner, into
 * palloc'd rules (json-c match objects owned by the current context).
 */
static ao_select_rule *
load_rules(size_t *n)
{
	AoUserScope scope;
	MemoryContext caller = CurrentMemoryContext;
	ao_select_rule *rules = NULL;

	*n = 0;
	ao_become_extension_owner(&scope);
	SPI_connect();
	if (SPI_execute("SELECT name, match::text, orchestration::text, workflow "
					"FROM agentorch.selector_rules WHERE enabled "
					"ORDER BY priority DESC, id", true, 0) == SPI_OK_SELECT)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		rules = palloc0(sizeof(ao_select_rule) * (SPI_processed + 1));
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			char	   *match = SPI_getvalue(tup, desc, 2);

			rules[i].name = SPI_getvalue(tup, desc, 1);
			rules[i].match = ao_json_from_cstring(match, strlen(match), "selector rule match");
			rules[i].orchestration = SPI_getvalue(tup, desc, 3);
			rules[i].workflow = SPI_getvalue(tup, desc, 4);
		}
		*n = SPI_processed;
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	ao_restore_user(&scope);
	return rules;
}

/* Does the input give simple what it needs (a prompt or messages)? */
static bool
has_prompt(json_object *input)
{
	return json_object_is_type(input, json_type_object) &&
		(json_object_object_get_ex(input, "prompt", NULL) ||
		 json_object_object_get_ex(input, "messages", NULL));
}

void
ao_select_decide(json_object *input, const char *workflow, AoSelection *sel)
{
	size_t		n;
	ao_select_rule *rules = load_rules(&n);
	ao_select_facts facts;
	ao_select_decision d;
	char	   *reason;

	ao_problems *skipped = ao_problems_new();

	memset(sel, 0, sizeof(*sel));
	/* the core mallocs: no ereport between here and the frees below */
	ao_select_facts_init(&facts, input);
	if (ao_select_rules(rules, n, input, &facts, &d, ao_problems_add, skipped) < 0)
		ao_select_default(input, workflow, &facts, &d);
	reason = pstrdup(d.reason);
	free(d.reason);
	ao_select_facts_free(&facts);
	/* a rule whose regular expression could not be run (match limit) is skipped, not fatal */
	for (size_t i = 0; i < skipped->n; i++)
		ereport(WARNING,
				(errmsg("agentorch: selector %s skipped: %s", skipped->paths[i], skipped->messages[i])));

	sel->orchestration = pstrdup(d.orchestration);
	sel->workflow = d.workflow ? pstrdup(d.workflow) : NULL;
	sel->confidence = d.confidence;
	sel->source = pstrdup(d.source);
	sel->rule = d.rule ? pstrdup(d.rule) : NULL;
	sel->run_as = sel->orchestration;
	if (strcmp(sel->orchestration, "planner") == 0 || strcmp(sel->orchestration, "reactive") == 0)
	{
		if (has_prompt(input))
		{
			sel->run_as = "simple";
			reason = psprintf("%s; " UNAVAILABLE_NOTE, reason, sel->orchestration);
		}
		else
		{
			sel->run_as = NULL;
			reason = psprintf("%s; %s is not available in this version, and simple needs a prompt or messages",
							  reason, sel->orchestration);
		}
	}
	sel->reason = reason;
}

char *
ao_selection_json(const AoSelection *sel)
{
	json_object *o = ao_json_own(json_object_new_object());

	json_object_object_add(o, "orchestration",
						   json_object_new_string(sel->run_as ? sel->run_as : sel->orchestration));
	if (sel->workflow)
		json_object_object_add(o, "workflow", json_object_new_string(sel->workflow));
	{
		/* shortest text that reads back as the same number (0.8, not 0.80000000000000004) */
		char		num[32];

		snprintf(num, sizeof(num), "%.15g", sel->confidence);
		json_object_object_add(o, "confidence", json_object_new_double_s(sel->confidence, num));
	}
	json_object_object_add(o, "source", json_object_new_string(sel->source));
	if (sel->rule)
		json_object_object_add(o, "rule", json_object_new_string(sel->rule));
	if (sel->model)
		json_object_object_add(o, "model", json_object_new_string(sel->model));
	json_object_object_add(o, "reason", json_object_new_string(sel->reason));
	return pstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

/*
 * select(input jsonb, options jsonb DEFAULT '{}') RETURNS TABLE(orchestration,
 * workflow, confidence, source, reason): the decision start() would make,
 * without starting anything. options.workflow plays start()'s workflow
 * argument; other keys are ignored.
 */
Datum
ao_sql_select(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	json_object *input;
	json_object *options = NULL;
	const char *workflow = NULL;
	AoSelection sel;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	int			nest;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("input must not be null")));
	ao_check_size(VARSIZE(PG_GETARG_JSONB_P(0)), "input");
	input = ao_json_from_jsonb(PG_GETARG_JSONB_P(0));
	if (!PG_ARGISNULL(1))
	{
		json_object *w;

		options = ao_json_from_jsonb(PG_GETARG_JSONB_P(1));
		if (!json_object_is_type(options, json_type_object))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("select options must be a JSON object")));
		if (json_object_object_get_ex(options, "workflow", &w))
		{
			if (!json_object_is_type(w, json_type_string) || json_object_get_string_len(w) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"workflow\" must be a workflow name")));
			workflow = json_object_get_string(w);
		}
	}

	nest = ao_push_safe_search_path();
	ao_select_decide(input, workflow, &sel);
	AtEOXact_GUC(true, nest);

	InitMaterializedSRF(fcinfo, 0);
	values[0] = DirectFunctionCall2(enum_in, CStringGetDatum(sel.orchestration),
									ObjectIdGetDatum(TupleDescAttr(rsinfo->setDesc, 0)->atttypid));
	if (sel.workflow)
		values[1] = CStringGetTextDatum(sel.workflow);
	else
		nulls[1] = true;
	values[2] = Float8GetDatum(sel.confidence);
	values[3] = CStringGetTextDatum(sel.source);
	values[4] = CStringGetTextDatum(sel.reason);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * load_selector_rules(document text) RETURNS int: replace every rule with
 * the document's (YAML or JSON, schemas/SelectorRules.schema.json). An
 * invalid document raises 22023 with every problem in DETAIL and changes
 * nothing. Returns the number of rules loaded.
 */
Datum
ao_sql_load_selector_rules(PG_FUNCTION_ARGS)
{
	json_object *doc;
	json_object *schema;
	ao_problems *p;
	AoUserScope scope;
	Oid			types[1] = {JSONBOID};
	Datum		values[1];
	int			loaded;
	int			nest;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("selector rules document must not be null")));
	nest = ao_push_safe_search_path();
	doc = ao_json_from_yaml_text(PG_GETARG_TEXT_PP(0));
	schema = ao_load_schema("SelectorRules");
	p = ao_problems_new();
	(void) ao_json_schema_validate(schema, doc, ao_problems_add, p);
	(void) ao_select_check_rules(doc, ao_problems_add, p);
	if (p->n > 0)
		ao_problems_raise(p, ERRCODE_INVALID_PARAMETER_VALUE, "invalid selector rules");

	values[0] = ao_jsonb_datum_from_json(doc);
	ao_become_extension_owner(&scope);
	SPI_connect();
	/* one loader at a time: a second waits, then sees the first's rules */
	SPI_execute("LOCK TABLE agentorch.selector_rules IN SHARE ROW EXCLUSIVE MODE", false, 0);
	SPI_execute("DELETE FROM agentorch.selector_rules", false, 0);
	if (SPI_execute_with_args("INSERT INTO agentorch.selector_rules "
							  "(priority, name, match, orchestration, workflow, enabled) "
							  "SELECT COALESCE((r OPERATOR(pg_catalog.->>) 'priority')::int, 100), "
							  "r OPERATOR(pg_catalog.->>) 'name', "
							  "COALESCE(r OPERATOR(pg_catalog.->) 'match', '{}'::jsonb), "
							  "(r OPERATOR(pg_catalog.->>) 'orchestration')::agentorch.orchestration_type, "
							  "r OPERATOR(pg_catalog.->>) 'workflow', "
							  "COALESCE((r OPERATOR(pg_catalog.->>) 'enabled')::boolean, true) "
							  "FROM pg_catalog.jsonb_array_elements($1 OPERATOR(pg_catalog.->) 'rules') "
							  "WITH ORDINALITY AS e(r, n) ORDER BY n",
							  1, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "agentorch: could not store the selector rules");
	loaded = (int) SPI_processed;
	SPI_finish();
	ao_restore_user(&scope);
	AtEOXact_GUC(true, nest);
	PG_RETURN_INT32(loaded);
}
