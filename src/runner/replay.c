/*-------------------------------------------------------------------------
 *
 * replay.c
 *	  Record and replay of LLM requests (agentorch.llm_mode): the
 *	  recordings in agentorch.llm_cache, keyed by the request.
 *
 * A run takes its mode from the session that starts it (options.llm_mode,
 * written by the coordinator, refused as a caller's option); a request
 * without a run (the selector's) takes the session's. runner_net.c asks
 * here at its I/O boundary:
 *   record -- a complete response (the whole body, no transport error;
 *             2xx, or a 4xx other than 408, 409 and 429: a permanent
 *             answer, which a replay must give again) is kept with its
 *             request and written in the transaction that settles the
 *             step (or, for a request inside a statement, in that
 *             statement's transaction); a later recording of the same
 *             request replaces it. 5xx, 408, 409, 429 and broken transfers
 *             are not kept: the retry that follows is what gets recorded.
 *   replay -- the recording is read and handed to the HTTP engine
 *             (ao_net_start_replay), which delivers its bytes through the
 *             same write path as the network's: the same decoder makes
 *             the same chunks, usage and output. No connection is made.
 *             A request with no recording fails the step at once, for
 *             good (42704), naming the model.
 *
 * The key is "llm:" and the sha256 of a canonical form of the request:
 * a version line, the run owner's role name (a recording is never another
 * role's answer, as with the selector's cache), the provider, the URL's
 * path and query (not the host: a recording made against a server on one
 * port replays with another), and the body. Credentials (headers) and the
 * traceparent header are not in it; request bodies carry no run id,
 * timestamp or trace id (only what the step's prompt renders), so running
 * the same workflow with the same input again makes the same requests.
 * The hash is computed by SQL's sha256() over the bytes, in the
 * transaction that reads or writes the recording.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/runner/replay.c
 *
 *-------------------------------------------------------------------------
 */
#include "runner.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "executor/spi.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "ao_llm.h"
#include "io.h"

/* The canonical form's version: a change of the form changes every key. */
#define AO_REPLAY_FORM "agentorch-llm-request-v1"

/* The path and query of a URL ("/" when it has none). */
static const char *
url_path(const char *url)
{
	const char *p = url ? strstr(url, "://") : NULL;

	if (p == NULL)
		return url ? url : "/";
	p = strchr(p + 3, '/');
	return p ? p : "/";
}

/*
 * The canonical form of a request, the bytes its key is the hash of
 * (palloc'd in the current context, as a bytea).
 */
bytea *
ao_replay_material(const char *owner, const char *provider, const char *url, const char *body)
{
	StringInfoData b;
	bytea	   *out;

	initStringInfo(&b);
	appendStringInfo(&b, "%s\n%s\n%s\n%s\n", AO_REPLAY_FORM, owner ? owner : "",
					 provider ? provider : "", url_path(url));
	if (body)
		appendStringInfoString(&b, body);
	out = palloc(VARHDRSZ + b.len);
	SET_VARSIZE(out, VARHDRSZ + b.len);
	memcpy(VARDATA(out), b.data, b.len);
	pfree(b.data);
	return out;
}

/*
 * Is a finished transfer a response worth recording: complete, and an
 * answer a replay should give again (2xx, a permanent 4xx)?
 */
bool
ao_replay_recordable(AoRequest *r)
{
	if (r->error != NULL || r->too_large || r->status < 200)
		return false;
	if (r->status < 300)
		return true;
	return r->status >= 400 && r->status < 500 &&
		r->status != 408 && r->status != 409 && r->status != 429;
}

/*
 * A recording of a finished transfer (in the current memory context):
 * the request {provider, model, owner, path, body} and the response
 * {status, content_type, body} -- or body_base64 for bytes that are not
 * clean UTF-8 text -- with every credential value the request carried
 * scrubbed out of both (scrub). Nothing of the request's headers is kept.
 */
AoRecording *
ao_replay_capture(AoRequest *r, bytea *material, const char *owner, const char *provider,
				  const char *model, char *(*scrub) (void *arg, const char *text), void *scrub_arg)
{
	AoRecording *rec = palloc0(sizeof(AoRecording));
	json_object *req = ao_json_own(json_object_new_object());
	json_object *resp = ao_json_own(json_object_new_object());
	json_object *body = NULL;
	const char *text = r->request_body ? r->request_body : "";
	char	   *ctype = ao_net_header(r, "Content-Type");
	const char *data = r->body.data ? r->body.data : "";
	size_t		len = r->body.data ? r->body.len : 0;

	text = scrub(scrub_arg, text);
	body = json_tokener_parse(text);
	json_object_object_add(req, "provider", json_object_new_string(provider));
	json_object_object_add(req, "model", json_object_new_string(model ? model : ""));
	json_object_object_add(req, "owner", json_object_new_string(owner ? owner : ""));
	json_object_object_add(req, "path", json_object_new_string(url_path(r->url)));
	json_object_object_add(req, "body", body ? body : json_object_new_string(text));

	json_object_object_add(resp, "status", json_object_new_int((int) r->status));
	json_object_object_add(resp, "content_type",
						   ctype && ao_llm_text_is_clean(ctype, strlen(ctype)) ? json_object_new_string(ctype) : NULL);
	if (ao_llm_text_is_clean(data, len))
	{
		char	   *clean = scrub(scrub_arg, pnstrdup(data, len));

		json_object_object_add(resp, "body", json_object_new_string(clean));
	}
	else
	{
		int			enclen = pg_b64_enc_len((int) len);
		char	   *enc = palloc(enclen + 1);
		int			n = len > 0 ? pg_b64_encode(data, (int) len, enc, enclen) : 0;

		enc[Max(n, 0)] = '\0';
		json_object_object_add(resp, "body_base64", json_object_new_string(enc));
	}
	rec->material = material;
	rec->model = pstrdup(model ? model : "");
	rec->request = pstrdup(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
	rec->response = pstrdup(json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PLAIN));
	return rec;
}

/*
 * Write recordings (a List of AoRecording) into agentorch.llm_cache as the
 * extension owner, replacing earlier recordings of the same requests.
 * Caller: in a transaction; skipped in a read-only one (a hot standby).
 */
void
ao_replay_store(List *recordings)
{
	AoUserScope scope;
	ListCell   *lc;

	if (recordings == NIL || XactReadOnly)
		return;
	ao_become_extension_owner(&scope);
	SPI_connect();
	foreach(lc, recordings)
	{
		AoRecording *rec = lfirst(lc);
		Oid			types[4] = {BYTEAOID, TEXTOID, TEXTOID, TEXTOID};
		Datum		values[4];

		values[0] = PointerGetDatum(rec->material);
		values[1] = CStringGetTextDatum(rec->model);
		values[2] = CStringGetTextDatum(rec->request);
		values[3] = CStringGetTextDatum(rec->response);
		if (SPI_execute_with_args("INSERT INTO agentorch.llm_cache (request_hash, model, request, response) "
								  "VALUES ('llm:' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.sha256($1), 'hex'), "
								  "        $2, $3::pg_catalog.jsonb, $4::pg_catalog.jsonb) "
								  "ON CONFLICT (request_hash) DO UPDATE SET model = EXCLUDED.model, "
								  "  request = EXCLUDED.request, response = EXCLUDED.response, "
								  "  created_at = pg_catalog.now()",
								  4, types, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "agentorch: could not store the recording of an LLM request");
	}
	SPI_finish();
	ao_restore_user(&scope);
}

/*
 * Read the recording of a request (material) as the extension owner, in
 * the caller's transaction or in a short one of its own. Fills *out (in
 * cxt) and returns true when there is one; *key_out gets the key either
 * way. May ERROR (a broken recording).
 */
bool
ao_replay_lookup(bytea *material, MemoryContext cxt, AoReplayed *out, char **key_out)
{
	bool		started = false;
	MemoryContext caller = CurrentMemoryContext;
	AoUserScope scope;
	Oid			types[1] = {BYTEAOID};
	Datum		values[1];
	char	   *response = NULL;

	memset(out, 0, sizeof(AoReplayed));
	if (!IsTransactionState())
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		started = true;
	}
	values[0] = PointerGetDatum(material);
	ao_become_extension_owner(&scope);
	SPI_connect();
	if (SPI_execute_with_args("SELECT k.key, c.response::text FROM "
							  "  (SELECT 'llm:' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.sha256($1), 'hex') AS key) k "
							  "  LEFT JOIN agentorch.llm_cache c ON c.request_hash OPERATOR(pg_catalog.=) k.key",
							  1, types, values, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		MemoryContext spi = MemoryContextSwitchTo(cxt);

		*key_out = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		response = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	ao_restore_user(&scope);
	if (started)
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	MemoryContextSwitchTo(cxt);
	if (response != NULL)
	{
		json_object *resp = ao_json_from_cstring(response, strlen(response), "recorded response");
		json_object *v;

		out->status = json_object_object_get_ex(resp, "status", &v) ? json_object_get_int(v) : 200;
		out->content_type = json_object_object_get_ex(resp, "content_type", &v) &&
			json_object_is_type(v, json_type_string) ? pstrdup(json_object_get_string(v)) : NULL;
		if (json_object_object_get_ex(resp, "body_base64", &v) && json_object_is_type(v, json_type_string))
		{
			const char *enc = json_object_get_string(v);
			int			enclen = json_object_get_string_len(v);
			int			declen = pg_b64_dec_len(enclen);
			char	   *dec = palloc(declen + 1);
			int			n = pg_b64_decode(enc, enclen, dec, declen);

			if (n < 0)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("the recording %s holds invalid base64", *key_out)));
			out->body = dec;
			out->len = (size_t) n;
		}
		else if (json_object_object_get_ex(resp, "body", &v) && json_object_is_type(v, json_type_string))
		{
			out->len = (size_t) json_object_get_string_len(v);
			out->body = pnstrdup(json_object_get_string(v), out->len);
		}
		else
		{
			out->body = pstrdup("");
			out->len = 0;
		}
	}
	MemoryContextSwitchTo(caller);
	return response != NULL;
}
