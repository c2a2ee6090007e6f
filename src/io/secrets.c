/*-------------------------------------------------------------------------
 *
 * secrets.c
 *	  Credentials: which server environment variables specs may name, which
 *	  hosts models may be sent to, reading credentials from the environment
 *	  at request time, and scrubbing their values out of everything that is
 *	  stored, sent or logged.
 *
 * Specs never hold secrets (DESIGN.md section 9). A model names its key by
 * environment variable (api_key_env), an http tool its credential headers
 * (headers_env); the names must match superuser-set LIKE patterns
 * (agentorch.api_key_env_pattern, agentorch.tool_env_pattern), so a role
 * allowed to register a model or a tool cannot send PATH, PGDATA or another
 * service's key anywhere. Model hosts must pass agentorch.llm_allowed_hosts.
 * Both are checked at registration and again before every request, since
 * settings change. A variable that is not set is a clear error naming it,
 * never an unauthenticated request.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/io/secrets.c
 *
 *-------------------------------------------------------------------------
 */
#include "io.h"

#include <stdlib.h>

#include "catalog/pg_collation.h"
#include "utils/builtins.h"

#include "io.h"
#include "ao_secret.h"

/* Does name match the LIKE pattern (PostgreSQL's own textlike)? */
static bool
like(const char *name, const char *pattern)
{
	return DatumGetBool(DirectFunctionCall2Coll(textlike, C_COLLATION_OID,
												CStringGetTextDatum(name),
												CStringGetTextDatum(pattern ? pattern : "")));
}

/*
 * May a spec name this environment variable under the pattern setting
 * setting_name (its value pattern)? ERRORs (42501) when not.
 */
static void
check_env_name(const char *env, const char *pattern, const char *setting_name, const char *what)
{
	if (env == NULL || env[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s names an empty environment variable", what)));
	if (!like(env, pattern))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s may not read environment variable \"%s\"", what, env),
				 errdetail("Credential variables must match %s (currently '%s').", setting_name, pattern),
				 errhint("A superuser sets %s in postgresql.conf.", setting_name)));
}

/* See io.h. */
void
ao_check_api_key_env(const char *env, const char *what)
{
	check_env_name(env, ao_api_key_env_pattern, "agentorch.api_key_env_pattern", what);
}

/* See io.h. */
void
ao_check_model_host(const char *base_url, const char *what)
{
	char	   *host = NULL;

	if (base_url == NULL)
		return;
	if (!ao_net_url_allowed(base_url, ao_llm_allowed_hosts, &host))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s: host %s is not allowed", what, host ? host : base_url),
				 errdetail("Model hosts must be listed in agentorch.llm_allowed_hosts (currently '%s').",
						   ao_llm_allowed_hosts ? ao_llm_allowed_hosts : ""),
				 errhint("A superuser sets agentorch.llm_allowed_hosts in postgresql.conf.")));
}

/*
 * Check the shape of an http tool's headers_env, {"Header": {"env": "NAME",
 * "prefix": "Bearer "}} (or {"Header": "NAME"}), and that every variable
 * matches agentorch.tool_env_pattern. ERRORs on a problem.
 */
void
ao_check_headers_env(json_object *headers_env, const char *what)
{
	if (!json_object_is_type(headers_env, json_type_object))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"headers_env\" of %s must be an object", what),
				 errhint("For example {\"Authorization\": {\"env\": \"BILLING_TOKEN\", \"prefix\": \"Bearer \"}}.")));
	{
	json_object_object_foreach(headers_env, header, ref)
	{
		json_object *env = NULL;
		json_object *prefix = NULL;

		if (json_object_is_type(ref, json_type_string))
			env = ref;
		else if (json_object_is_type(ref, json_type_object))
		{
			json_object_object_get_ex(ref, "env", &env);
			json_object_object_get_ex(ref, "prefix", &prefix);
			{
			json_object_object_foreach(ref, k, v)
			{
				(void) v;
				if (strcmp(k, "env") != 0 && strcmp(k, "prefix") != 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("unknown key \"%s\" in headers_env[\"%s\"] of %s", k, header, what),
							 errhint("Use \"env\" (the variable's name) and \"prefix\" (text put before its value).")));
			}
			}
		}
		if (env == NULL || !json_object_is_type(env, json_type_string) ||
			(prefix != NULL && !json_object_is_type(prefix, json_type_string)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("headers_env[\"%s\"] of %s must be {\"env\": \"NAME\", \"prefix\": \"...\"}", header, what)));
		check_env_name(json_object_get_string(env), ao_tool_env_pattern, "agentorch.tool_env_pattern",
					   psprintf("headers_env[\"%s\"] of %s", header, what));
	}
	}
}

/*
 * The checks before a request, which must not ERROR (the caller fails the
 * step instead): NULL when the credential variable env may be read and is
 * set -- its value in *value -- else the message to fail the step with
 * (its ERRCODE_* in *sqlerrcode). kind is "api_key_env" or "headers_env".
 */
const char *
ao_credential_problem(const char *env, bool tool, const char *what, const char **value,
					  int *sqlerrcode)
{
	const char *pattern = tool ? ao_tool_env_pattern : ao_api_key_env_pattern;

	*value = NULL;
	if (!like(env, pattern))
	{
		*sqlerrcode = ERRCODE_INSUFFICIENT_PRIVILEGE;
		return psprintf("%s may not read environment variable \"%s\": it does not match %s ('%s')",
						what, env, tool ? "agentorch.tool_env_pattern" : "agentorch.api_key_env_pattern",
						pattern ? pattern : "");
	}
	*value = getenv(env);
	if (*value == NULL || (*value)[0] == '\0')
	{
		*value = NULL;
		*sqlerrcode = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		return psprintf("environment variable \"%s\" (%s) is not set in the server's environment; no request was sent",
						env, what);
	}
	return NULL;
}

/*
 * May a spec name this credential variable (api_key_env, or a tool's
 * headers_env when tool)? Only the name is checked, against
 * agentorch.api_key_env_pattern / agentorch.tool_env_pattern: the value
 * is read by the process that sends the request (an external worker reads
 * its own environment).
 */
bool
ao_env_name_allowed(const char *env, bool tool)
{
	return env != NULL && env[0] != '\0' && like(env, tool ? ao_tool_env_pattern : ao_api_key_env_pattern);
}

/*
 * text with every secret of secrets (a List of C strings) replaced by
 * "[REDACTED]"; text itself when none occurs. palloc'd in the current
 * context. ERRORs when memory runs out rather than pass secrets on.
 */
char *
ao_scrub(const char *text, List *secrets)
{
	const char **values;
	size_t		n = 0;
	size_t		out_len;
	char	   *scrubbed;
	char	   *result;
	ListCell   *lc;

	if (text == NULL || secrets == NIL)
		return (char *) text;
	values = palloc(sizeof(char *) * list_length(secrets));
	foreach(lc, secrets)
		values[n++] = lfirst(lc);
	scrubbed = ao_scrub_secrets(text, strlen(text), values, n, &out_len);
	pfree(values);
	if (scrubbed == NULL)
	{
		if (out_len == AO_SCRUB_FAILED)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory while removing credentials from a text")));
		return (char *) text;
	}
	result = pnstrdup(scrubbed, out_len);
	free(scrubbed);
	return result;
}
