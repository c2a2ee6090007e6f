/*-------------------------------------------------------------------------
 *
 * pg_json.c
 *	  Bridge between PostgreSQL values and the json-c world of the core:
 *	  jsonb <-> json_object conversion, context-owned json-c objects and
 *	  problem lists that become rows or one ERROR.
 *
 * Conversion goes through text on purpose: jsonb's canonical output and
 * json-c's tokener are both well-tested, and definitions are small (capped
 * by agentorch.max_definition_size), so the cost is irrelevant next to the
 * guarantee that both sides agree on every value.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/common/pg_json.c
 *
 *-------------------------------------------------------------------------
 */
#include "common.h"

#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "ao_json_schema.h"

/* Reset callback: drop the context's reference to a json-c object. */
static void
release_json(void *arg)
{
	json_object_put((json_object *) arg);
}

/*
 * Make CurrentMemoryContext the owner of obj: when the context is reset or
 * deleted (also on ERROR), the object is released. Returns obj. May ERROR
 * only on out-of-memory, in which case obj is released first.
 */
json_object *
ao_json_own(json_object *obj)
{
	MemoryContextCallback *cb;

	if (obj == NULL)
		return NULL;
	cb = MemoryContextAllocExtended(CurrentMemoryContext, sizeof(*cb), MCXT_ALLOC_NO_OOM);
	if (cb == NULL)
	{
		json_object_put(obj);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	cb->func = release_json;
	cb->arg = obj;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return obj;
}

/* The deepest nesting of arrays and objects in JSON text (strings skipped). */
static int
json_text_depth(const char *text, size_t len)
{
	int			depth = 0;
	int			max = 0;
	bool		in_string = false;

	for (size_t i = 0; i < len; i++)
	{
		char		ch = text[i];

		if (in_string)
		{
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = false;
		}
		else if (ch == '"')
			in_string = true;
		else if (ch == '[' || ch == '{')
		{
			depth++;
			max = Max(max, depth);
		}
		else if (ch == ']' || ch == '}')
			depth--;
	}
	return max;
}

/*
 * Parse JSON text into an owned json-c object; what names the value in the
 * error raised for malformed text, or for nesting deeper than
 * AO_MAX_JSON_DEPTH ("nesting too deep (N levels, limit M)", 54000).
 */
json_object *
ao_json_from_cstring(const char *text, size_t len, const char *what)
{
	json_tokener *tok;
	json_object *obj;
	enum json_tokener_error jerr;
	size_t		offset;
	int			depth = JSON_TOKENER_DEFAULT_DEPTH;

	/*
	 * The terminating NUL is passed too: without it the tokener cannot know
	 * that a top-level number such as "5" has ended.
	 */
	if (text[len] != '\0')
		text = pnstrdup(text, len);
	for (;;)
	{
		tok = json_tokener_new_ex(depth);
		if (tok == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
		obj = json_tokener_parse_ex(tok, text, (int) len + 1);
		jerr = json_tokener_get_error(tok);
		offset = json_tokener_get_parse_end(tok);
		json_tokener_free(tok);

		/*
		 * json-c's default depth (32) is cheap to allocate and fits nearly
		 * every value; deeper values, which PostgreSQL accepts up to its
		 * stack depth, are parsed again with AO_MAX_JSON_DEPTH.
		 */
		if (jerr != json_tokener_error_depth || depth >= AO_MAX_JSON_DEPTH)
			break;
		if (obj)
			json_object_put(obj);
		depth = AO_MAX_JSON_DEPTH;
	}
	if (jerr == json_tokener_error_depth)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("nesting too deep in %s (%d levels, limit %d)", what, json_text_depth(text, len),
						AO_MAX_JSON_DEPTH)));
	if (jerr != json_tokener_success || offset < len)
	{
		if (obj)
			json_object_put(obj);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid JSON in %s", what),
				 errdetail("%s at byte %zu.",
						   jerr != json_tokener_success ? json_tokener_error_desc(jerr)
						   : "unexpected trailing data",
						   offset)));
	}
	/* integers beyond 64 bits: keep their digits (json-c would clamp them) */
	obj = ao_json_exact_numbers(obj, text, len, JSON_TOKENER_STRICT, depth);
	return ao_json_own(obj);
}

/* Convert a jsonb value into an owned json-c object. */
json_object *
ao_json_from_jsonb(Jsonb *jb)
{
	char	   *text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));

	return ao_json_from_cstring(text, strlen(text), "jsonb value");
}

/* Convert a json-c object into a jsonb Datum. */
Datum
ao_jsonb_datum_from_json(json_object *obj)
{
	const char *text;

	text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
										  JSON_C_TO_STRING_NOSLASHESCAPE);
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(pstrdup(text)));
}

/* Convert a json-c object into a jsonb value. */
Jsonb *
ao_jsonb_from_json(json_object *obj)
{
	return DatumGetJsonbP(ao_jsonb_datum_from_json(obj));
}

/* Reset callback: free a problem list. */
static void
release_problems(void *arg)
{
	ao_problems_free((ao_problems *) arg);
}

/* A new, empty problem list owned by CurrentMemoryContext. */
ao_problems *
ao_problems_new(void)
{
	ao_problems *p = palloc(sizeof(ao_problems));
	MemoryContextCallback *cb = palloc(sizeof(MemoryContextCallback));

	ao_problems_init(p);
	cb->func = release_problems;
	cb->arg = p;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return p;
}

/* Return the problems as the (path text, message text) rows of an SRF. */
void
ao_problems_return(FunctionCallInfo fcinfo, ao_problems *p)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (size_t i = 0; i < p->n; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(p->paths[i]);
		values[1] = CStringGetTextDatum(p->messages[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* The problems as text: one "path: message" line each ("/" for the root). */
char *
ao_problems_detail(ao_problems *p)
{
	StringInfoData detail;

	initStringInfo(&detail);
	for (size_t i = 0; i < p->n; i++)
		appendStringInfo(&detail, "%s%s: %s", i ? "\n" : "",
						 p->paths[i][0] ? p->paths[i] : "/", p->messages[i]);
	return detail.data;
}

/*
 * Raise one ERROR for a non-empty problem list: "<what>" as the message
 * and one "path: message" line per problem as DETAIL.
 */
void
ao_problems_raise(ao_problems *p, int sqlerrcode, const char *what)
{
	ereport(ERROR,
			(errcode(sqlerrcode),
			 errmsg("%s", what),
			 errdetail("%s", ao_problems_detail(p))));
}

/* Refuse a value larger than agentorch.max_definition_size. */
void
ao_check_size(Size size, const char *what)
{
	if (size > (Size) ao_max_definition_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is too large", what),
				 errdetail("The value has %zu bytes; the limit is %d bytes.",
						   size, ao_max_definition_size),
				 errhint("Raise agentorch.max_definition_size if this is intended.")));
}

/* An error jsonb {message, sqlstate, detail?}; sqlerrcode is an ERRCODE_* constant. */
Jsonb *
ao_error_jsonb(int sqlerrcode, const char *message, const char *detail)
{
	json_object *o = ao_json_own(json_object_new_object());

	json_object_object_add(o, "message", json_object_new_string(message));
	json_object_object_add(o, "sqlstate", json_object_new_string(unpack_sql_state(sqlerrcode)));
	if (detail)
		json_object_object_add(o, "detail", json_object_new_string(detail));
	return ao_jsonb_from_json(o);
}

/*
 * Building jsonb values with PostgreSQL's jsonb API (no text round trip)
 */

/* A JSON string, or null for NULL. */
JsonbValue
ao_jv_string(const char *s)
{
	JsonbValue	v;

	if (s == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) s;
		v.val.string.len = strlen(s);
	}
	return v;
}

JsonbValue
ao_jv_int(int64 i)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(i);
	return v;
}

/* A jsonb document as a value inside another, or null for NULL. */
JsonbValue
ao_jv_jsonb(Jsonb *j)
{
	JsonbValue	v;

	if (j == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvBinary;
		v.val.binary.data = &j->root;
		v.val.binary.len = VARSIZE(j) - VARHDRSZ;
	}
	return v;
}

/* c -> key into *out (out may be NULL); false: no such key, or c is not an object. */
bool
ao_jsonb_get_key(JsonbContainer *c, const char *key, JsonbValue *out)
{
	if (c == NULL || !JsonContainerIsObject(c))
		return false;
	return getKeyJsonValueFromContainer(c, key, strlen(key), out) != NULL;
}

/* jsonb_build_object(keys[0], values[0], ...). */
Jsonb *
ao_jsonb_object(int n, const char *const *keys, JsonbValue *values)
{
	JsonbParseState *st = NULL;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < n; i++)
	{
		JsonbValue	k = ao_jv_string(keys[i]);

		pushJsonbValue(&st, WJB_KEY, &k);
		pushJsonbValue(&st, WJB_VALUE, &values[i]);
	}
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

/*
 * ERROR (22023) on a key of object obj that is not in known (NULL-ended):
 * a misspelt option would otherwise be ignored silently. what names the
 * keys ("run option"), hint says which there are.
 */
void
ao_check_known_keys(json_object *obj, const char *const *known, const char *what, const char *hint)
{
	json_object_object_foreach(obj, key, val)
	{
		bool		ok = false;

		(void) val;
		for (const char *const *k = known; *k && !ok; k++)
			ok = strcmp(key, *k) == 0;
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown %s \"%s\"", what, key),
					 errhint("%s", hint)));
	}
}
