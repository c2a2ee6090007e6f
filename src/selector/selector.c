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
 * agentorch.selector = llm asks the selector model first and hands the
 * decision to the rules when it fails, answers something invalid or is
 * not confident enough; hybrid asks it only when no rule matched. The
 * request runs synchronously in the caller's session as an inline llm
 * step (runner_net.c, the machinery of run_sync) with no run behind it:
 * its chunks are never written, its outcome is read in memory. Answers
 * are cached in agentorch.llm_cache (keys "selector:<sha256>").
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

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "ao_json_schema.h"
#include "runner.h"
#include "ao_select.h"

PG_FUNCTION_INFO_V1(ao_sql_select);
PG_FUNCTION_INFO_V1(ao_sql_load_selector_rules);



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

/*
 * The model the llm selector asks: agentorch.selector_model, else
 * agentorch.default_model; NULL when neither is set.
 */
static const char *
selector_model(void)
{
	if (ao_selector_model && ao_selector_model[0])
		return ao_selector_model;
	if (ao_default_model && ao_default_model[0])
		return ao_default_model;
	return NULL;
}

/* What the selector model is told; the request and its context follow as the user message. */
#define SELECTOR_SYSTEM \
	"You are the orchestration selector of agentorch. Choose how a request is run: " \
	"\"simple\" (one model call answers it: a question, a short task), " \
	"\"fixed\" (a registered workflow does exactly this; give its name as \"workflow\"), " \
	"\"planner\" (several steps or tools must be planned first) or " \
	"\"reactive\" (a plan that must adapt while it runs). " \
	"Answer with a JSON object: orchestrationType, and optionally workflow, confidence (0 to 1) and a short reason."

/*
 * The cache key of a request to the selector model: model, workflow
 * argument and the input's canonical jsonb text, lower-cased (so inputs
 * that differ in key order, spacing or letter case share an answer).
 */
static char *
cache_key(const char *model, const char *workflow, json_object *input)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char	   *key = NULL;
	MemoryContext caller = CurrentMemoryContext;
	char	   *canonical = DatumGetCString(DirectFunctionCall1(jsonb_out,
																 JsonbPGetDatum(ao_jsonb_from_json(input))));

	/*
	 * The caller's role is part of the key: a cached answer is never
	 * another role's (it would tell whether someone asked the same).
	 */
	values[0] = CStringGetTextDatum(psprintf("%u\n%s\n%s\n%s", GetUserId(), model, workflow ? workflow : "",
											 canonical));
	SPI_connect();
	if (SPI_execute_with_args("SELECT 'selector:' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.sha256("
							  "pg_catalog.convert_to(pg_catalog.lower($1), 'UTF8')), 'hex')",
							  1, types, values, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return key;
}

/* A cached answer younger than agentorch.selector_cache_ttl, or NULL (as the extension owner). */
static json_object *
cache_get(const char *key)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	char	   *text = NULL;
	MemoryContext caller = CurrentMemoryContext;
	AoUserScope scope;

	values[0] = CStringGetTextDatum(key);
	values[1] = Int32GetDatum(ao_selector_cache_ttl_s);
	ao_become_extension_owner(&scope);
	SPI_connect();
	if (SPI_execute_with_args("SELECT response::text FROM agentorch.llm_cache "
							  "WHERE request_hash OPERATOR(pg_catalog.=) $1 "
							  "AND created_at OPERATOR(pg_catalog.>) (pg_catalog.now() "
							  "OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $2))",
							  2, types, values, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	ao_restore_user(&scope);
	return text ? ao_json_from_cstring(text, strlen(text), "cached selector answer") : NULL;
}

/* Store an answer (as the extension owner); skipped in a read-only transaction. */
static void
cache_put(const char *key, const char *model, json_object *request, json_object *answer)
{
	Oid			types[4] = {TEXTOID, TEXTOID, JSONBOID, JSONBOID};
	Datum		values[4];
	AoUserScope scope;

	if (XactReadOnly)
		return;
	values[0] = CStringGetTextDatum(key);
	values[1] = CStringGetTextDatum(model);
	values[2] = ao_jsonb_datum_from_json(request);
	values[3] = ao_jsonb_datum_from_json(answer);
	ao_become_extension_owner(&scope);
	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO agentorch.llm_cache (request_hash, model, request, response) "
							  "VALUES ($1, $2, $3, $4) ON CONFLICT (request_hash) DO UPDATE "
							  "SET model = EXCLUDED.model, request = EXCLUDED.request, "
							  "response = EXCLUDED.response, created_at = pg_catalog.now()",
							  4, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "agentorch: could not cache the selector answer");
	SPI_finish();
	ao_restore_user(&scope);
}

/* Names of the workflows the caller can see (for the model to pick from), or NULL. */
/*
 * May a selector model choose this workflow for the caller: was its name
 * registered by the caller or a role the caller has the privileges of?
 */
static bool
caller_may_pick(const char *name)
{
	Oid			types[2] = {TEXTOID, OIDOID};
	Datum		values[2];
	bool		ok;

	values[0] = CStringGetTextDatum(name);
	values[1] = ObjectIdGetDatum(GetUserId());
	SPI_connect();
	ok = SPI_execute_with_args("SELECT 1 FROM agentorch.workflows w WHERE w.name OPERATOR(pg_catalog.=) $1 "
							   "AND pg_catalog.pg_has_role($2, w.created_by, 'USAGE') LIMIT 1",
							   2, types, values, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1;
	SPI_finish();
	return ok;
}

static json_object *
visible_workflows(void)
{
	json_object *names = NULL;

	Oid			types[1] = {OIDOID};
	Datum		values[1];

	/*
	 * Only workflows whose name the caller (or a role it has the
	 * privileges of) registered: another role's names must not steer the
	 * caller's runs into its definitions.
	 */
	values[0] = ObjectIdGetDatum(GetUserId());
	SPI_connect();
	if (SPI_execute_with_args("SELECT DISTINCT w.name FROM agentorch.workflows w "
							  "WHERE pg_catalog.pg_has_role($1, w.created_by, 'USAGE') ORDER BY 1 LIMIT 100",
							  1, types, values, NULL, true, 0) == SPI_OK_SELECT &&
		SPI_processed > 0)
	{
		names = json_object_new_array();
		for (uint64 i = 0; i < SPI_processed; i++)
			json_object_array_add(names, json_object_new_string(SPI_getvalue(SPI_tuptable->vals[i],
																			  SPI_tuptable->tupdesc, 1)));
	}
	SPI_finish();
	return names ? ao_json_own(names) : NULL;
}

/*
 * Ask the selector model, in this session (the machinery of run_sync: an
 * inline llm step, driven here until it finishes, with no run and no
 * chunks), or take its cached answer. The answer is forced through
 * schemas/OrchestrationType.schema.json by structured output. Returns the
 * answer, or NULL with *why set (no model, request failed, invalid answer).
 */
static json_object *
ask_model(json_object *input, const char *workflow, const char **model_out, bool *cached, char **why)
{
	const char *model = selector_model();
	char	   *key;
	json_object *answer;
	json_object *spec;
	json_object *request;
	json_object *names;
	void	   *step;
	AoNetOutcome o;

	*model_out = model;
	*cached = false;
	if (model == NULL)
	{
		*why = "no selector model (set agentorch.selector_model or agentorch.default_model)";
		return NULL;
	}
	key = cache_key(model, workflow, input);
	if (ao_selector_cache_ttl_s > 0 && (answer = cache_get(key)) != NULL)
	{
		*cached = true;
		return answer;
	}

	spec = ao_json_own(json_object_new_object());
	json_object_object_add(spec, "id", json_object_new_string("selector"));
	json_object_object_add(spec, "type", json_object_new_string("llm"));
	json_object_object_add(spec, "model", json_object_new_string(model));
	json_object_object_add(spec, "system", json_object_new_string(SELECTOR_SYSTEM));
	json_object_object_add(spec, "prompt", json_object_new_string("Choose the orchestration of this request."));
	json_object_object_add(spec, "response_schema", json_object_get(ao_load_schema("OrchestrationType")));
	json_object_object_add(spec, "temperature", json_object_new_int(0));
	json_object_object_add(spec, "max_tokens", json_object_new_int(400));
	json_object_object_add(spec, "timeout", json_object_new_string("30s"));
	request = ao_json_own(json_object_new_object());
	json_object_object_add(request, "request", json_object_get(input));
	if (workflow)
		json_object_object_add(request, "workflow named by the caller", json_object_new_string(workflow));
	if ((names = visible_workflows()) != NULL)
		json_object_object_add(request, "registered workflows", json_object_get(names));

	/* one attempt: a failing model hands the decision to the rules at once */
	step = ao_net_inline_start(0, "selector", 1, 1, GetUserId(),
							   json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN), "{}",
							   ao_jsonb_from_json(request),
							   DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))),
							   CurrentMemoryContext);
	while (!ao_net_inline_outcome(step).finished)
		ao_net_inline_drive(step, 100);
	o = ao_net_inline_outcome(step);
	answer = NULL;
	if (o.ok && o.output)
		answer = ao_json_from_jsonb(o.output);
	else if (o.deferred)
		*why = "the selector model is not taking requests now (rate limit or open circuit breaker)";
	else
	{
		json_object *err = o.error ? ao_json_from_jsonb(o.error) : NULL;
		json_object *m;

		*why = psprintf("the selector model failed: %s",
						err && json_object_object_get_ex(err, "message", &m) ? json_object_get_string(m) : "no answer");
	}
	ao_net_inline_free(step);
	if (answer && ao_selector_cache_ttl_s > 0)
		cache_put(key, model, request, answer);
	return answer;
}

/*
 * Turn the model's answer ({"orchestrationType", "workflow", "confidence",
 * "reason"}; an answer cached before 0.2.0 says "orchestration") into a
 * decision; false (with *why) when it cannot be used: below
 * agentorch.selector_min_confidence, or fixed without a workflow. An
 * answer without a confidence counts as sure (1).
 */
static bool
use_answer(json_object *answer, const char *workflow, const char *model, bool cached,
		   ao_select_decision *d, char **why)
{
	json_object *v;
	const char *orch;
	double		confidence;

	if ((!json_object_object_get_ex(answer, "orchestrationType", &v) &&
		 !json_object_object_get_ex(answer, "orchestration", &v)) || !json_object_is_type(v, json_type_string))
	{
		*why = "the selector model's answer names no orchestration";
		return false;
	}
	orch = json_object_get_string(v);
	if (strcmp(orch, "simple") != 0 && strcmp(orch, "fixed") != 0 &&
		strcmp(orch, "planner") != 0 && strcmp(orch, "reactive") != 0)
	{
		*why = psprintf("the selector model answered an unknown orchestration \"%s\"", orch);
		return false;
	}
	confidence = json_object_object_get_ex(answer, "confidence", &v) ? json_object_get_double(v) : 1;
	if (confidence < ao_selector_min_confidence)
	{
		*why = psprintf("the selector model's confidence %g is below agentorch.selector_min_confidence (%g)",
						confidence, ao_selector_min_confidence);
		return false;
	}
	d->workflow = NULL;
	if (strcmp(orch, "fixed") == 0)
	{
		if (json_object_object_get_ex(answer, "workflow", &v) && json_object_is_type(v, json_type_string))
			d->workflow = pstrdup(json_object_get_string(v));
		else if (workflow)
			d->workflow = workflow;
		else
		{
			*why = "the selector model chose fixed without a workflow";
			return false;
		}
		/* a model may only pick a workflow the caller could have been offered */
		if (d->workflow != workflow && !caller_may_pick(d->workflow))
		{
			*why = psprintf("the selector model chose workflow \"%s\", which is not one of the caller's", d->workflow);
			return false;
		}
	}
	d->orchestration = pstrdup(orch);
	d->confidence = confidence;
	d->source = "llm";
	d->rule = NULL;
	d->reason = psprintf("model \"%s\"%s: %s", model, cached ? " (cached answer)" : "",
						 json_object_object_get_ex(answer, "reason", &v) ? json_object_get_string(v)
						 : "no reason given");
	return true;
}

void
ao_select_decide(json_object *input, const char *workflow, AoSelection *sel)
{
	size_t		n;
	ao_select_rule *rules = load_rules(&n);
	ao_select_facts facts;
	ao_select_decision d;
	char	   *reason;
	int			matched;
	ao_problems *skipped = ao_problems_new();
	bool		from_model = false;
	char	   *llm_failure = NULL;
	const char *model = NULL;

	memset(sel, 0, sizeof(*sel));
	memset(&d, 0, sizeof(d));

	/* llm: the model first; the rules (and the default) when it fails */
	if (ao_selector == AO_SELECTOR_LLM)
	{
		bool		cached;
		json_object *answer = ask_model(input, workflow, &model, &cached, &llm_failure);

		from_model = answer && use_answer(answer, workflow, model, cached, &d, &llm_failure);
	}

	if (!from_model)
	{
		/* the core mallocs: no ereport between here and the frees below */
		ao_select_facts_init(&facts, input);
		matched = ao_select_rules(rules, n, input, &facts, &d, ao_problems_add, skipped);
		if (matched < 0)
			ao_select_default(input, workflow, &facts, &d);
		reason = pstrdup(d.reason);
		free(d.reason);
		ao_select_facts_free(&facts);
		d.reason = NULL;
		/* a rule whose regular expression could not be run (match limit) is skipped, not fatal */
		for (size_t i = 0; i < skipped->n; i++)
			ereport(WARNING,
					(errmsg("agentorch: selector %s skipped: %s", skipped->paths[i], skipped->messages[i])));

		/* hybrid: no rule matched, so the model, before the default */
		if (matched < 0 && ao_selector == AO_SELECTOR_HYBRID)
		{
			bool		cached;
			json_object *answer = ask_model(input, workflow, &model, &cached, &llm_failure);
			ao_select_decision m;

			memset(&m, 0, sizeof(m));
			if (answer && use_answer(answer, workflow, model, cached, &m, &llm_failure))
			{
				d = m;
				reason = (char *) m.reason;
				from_model = true;
			}
		}
		if (llm_failure)
			reason = psprintf("%s; %s", llm_failure, reason);
	}
	else
		reason = d.reason;

	sel->orchestration = pstrdup(d.orchestration);
	sel->workflow = d.workflow ? pstrdup(d.workflow) : NULL;
	sel->confidence = d.confidence;
	sel->source = pstrdup(d.source);
	sel->rule = d.rule ? pstrdup(d.rule) : NULL;
	sel->model = from_model && model ? pstrdup(model) : NULL;
	sel->run_as = sel->orchestration;
	sel->reason = reason;
	if ((strcmp(sel->run_as, "planner") == 0 || strcmp(sel->run_as, "reactive") == 0) &&
		!ao_schema_at_least(0, 2))
	{
		/* a database still at 0.1.0 runs what it ran before the library's update */
		sel->reason = psprintf("%s; %s runs need agentorch 0.2.0 in this database (ALTER EXTENSION agentorch UPDATE): run as simple",
							   sel->reason, sel->run_as);
		sel->run_as = "simple";
	}
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
 * argument; start()'s own options are accepted (and do not change the
 * decision); any other key is an error, as it is for start().
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
		{
			/* start()'s options (the decision ignores them) and workflow; a misspelt key is an error */
			static const char *const known[] = {"workflow", AO_RUN_OPTION_NAMES, NULL};

			ao_check_known_keys(options, known, "select option",
								"select() takes workflow (start()'s workflow argument) and the options start() takes.");
		}
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
	values[0] = DirectFunctionCall2(enum_in, CStringGetDatum(sel.run_as),
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
	/* a priority written 1.0 is an integer to the schema: read through numeric */
	if (SPI_execute_with_args("INSERT INTO agentorch.selector_rules "
							  "(priority, name, match, orchestration, workflow, enabled) "
							  "SELECT COALESCE((r OPERATOR(pg_catalog.->>) 'priority')::numeric::int, 100), "
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
	ao_audit_kv("load_selector_rules", NULL, 0, "rules", psprintf("%d", loaded), NULL);
	PG_RETURN_INT32(loaded);
}
