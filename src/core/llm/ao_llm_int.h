/*-------------------------------------------------------------------------
 *
 * ao_llm_int.h
 *	  Internals shared by the files of src/core/llm (not for other code):
 *	  limits, the decoder's state, and the helpers one provider's file
 *	  uses from another. The helpers keep their short names in the code;
 *	  the defines below give them the ao_llm_ prefix as symbols.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  src/core/llm/ao_llm_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AO_LLM_INT_H
#define AO_LLM_INT_H

#include "ao_llm.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ao_sse.h"

/* Nesting limit of json-c's tokener for wire JSON and model output. */
#define AO_LLM_JSON_DEPTH 128
#define AO_LLM_DEFAULT_MAX_OUTPUT (16 * 1024 * 1024)
/* Highest Anthropic content block index accepted. */
#define AO_LLM_MAX_BLOCKS 4096

#define JSON_TEXT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* symbol names of the shared helpers */
#define error_fields ao_llm_error_fields
#define error_set ao_llm_error_set
#define error_type_retryable ao_llm_error_type_retryable
#define is_blank ao_llm_is_blank
#define jget ao_llm_jget
#define jis ao_llm_jis
#define json_text_dup ao_llm_json_text_dup
#define json_text_string ao_llm_json_text_string
#define jstr ao_llm_jstr
#define new_tokener ao_llm_new_tokener
#define parse_strict ao_llm_parse_strict
#define sanitize_name ao_llm_sanitize_name
#define usage_init ao_llm_usage_init
#define xrealloc ao_llm_xrealloc
#define xstrdup ao_llm_xstrdup
#define xstrndup ao_llm_xstrndup
#define args_object ao_llm_args_object
#define args_text ao_llm_args_text
#define content_value ao_llm_content_value
#define default_input_schema ao_llm_default_input_schema
#define is_number ao_llm_is_number
#define structured_schema ao_llm_structured_schema
#define wire_of ao_llm_wire_of
#define build_openai ao_llm_build_openai
#define dec_openai ao_llm_dec_openai
#define build_anthropic ao_llm_build_anthropic
#define dec_anthropic ao_llm_dec_anthropic
#define dec_anthropic_usage ao_llm_dec_anthropic_usage
#define dec_close ao_llm_dec_close
#define dec_count ao_llm_dec_count
#define dec_error ao_llm_dec_error
#define dec_finish_reason ao_llm_dec_finish_reason
#define dec_json_feed ao_llm_dec_json_feed
#define dec_provider_error ao_llm_dec_provider_error
#define dec_set_str ao_llm_dec_set_str
#define dec_text ao_llm_dec_text
#define dec_tool_args ao_llm_dec_tool_args
#define dec_tool_args_value ao_llm_dec_tool_args_value
#define dec_tool_begin ao_llm_dec_tool_begin
#define dec_tool_end ao_llm_dec_tool_end
#define dec_usage ao_llm_dec_usage
#define jcount ao_llm_jcount
#define jstrlen ao_llm_jstrlen

#define AO_LLM_MAX_TOOL_CALLS 1024

typedef enum dec_block_kind
{
	BLK_NONE = 0,				/* not started */
	BLK_IGNORE,					/* thinking, server tools, unknown kinds */
	BLK_TEXT,
	BLK_TOOL,
	BLK_STRUCT					/* the structured-output tool */
} dec_block_kind;

typedef struct dec_block
{
	dec_block_kind kind;
	size_t		tool;			/* BLK_TOOL: index of the tool call */
	char	   *start_input;	/* non-empty input given at block start */
} dec_block;

typedef struct dec_tool
{
	ao_buf		args;
	bool		done;
	long		pindex;			/* openai: the provider's tool_calls index */
} dec_tool;

typedef enum dec_mode
{
	MODE_UNDECIDED = 0,
	MODE_SSE,
	MODE_JSON
} dec_mode;

struct ao_llm_decoder
{
	ao_llm_spec spec;
	const ao_llm_toolmap *map;
	ao_llm_callbacks cb;
	void	   *arg;
	size_t		max_event;
	size_t		max_output;
	ao_sse_parser *sse;
	dec_mode	mode;
	ao_buf		body;			/* JSON body, or the blank prefix while undecided */
	struct json_tokener *tok;	/* wire JSON and tool arguments */
	ao_llm_result res;
	ao_buf		text;			/* res.text aliases text.data */
	ao_buf		refusal;
	ao_json_stream *js;			/* structured output */
	bool		json_value_emitted;
	bool		json_ended;
	dec_tool   *tools;			/* parallel to res.tool_calls */
	size_t		tools_cap;
	dec_block  *blocks;			/* anthropic content blocks by index */
	size_t		nblocks;
	bool		fatal;
	bool		finished;
	bool		closed;
	bool		saw_end;		/* [DONE] / message_stop / a complete JSON body */
	bool		finish_seen;
	bool		struct_block_seen;
	size_t		out_bytes;
};

/* ao_llm_common.c: helpers, text, tool names, errors, results */
extern bool error_fields(json_object *obj, const char **type, const char **code, const char **msg);
extern void error_set(ao_llm_error *e, ao_llm_errkind kind, bool retryable, const char *type,
		  const char *fmt,...)
__attribute__((format(printf, 5, 6)));
extern int error_type_retryable(const char *type);
extern bool is_blank(const char *s, size_t n);
extern json_object *jget(json_object *obj, const char *key);
extern bool jis(json_object *v, json_type t);
extern char *json_text_dup(json_object *v);
extern json_object *json_text_string(json_object *v);
extern const char *jstr(json_object *obj, const char *key);
extern struct json_tokener *new_tokener(void);
extern json_object *parse_strict(struct json_tokener *tok, const char *s, size_t n, char *err, size_t errcap);
extern void sanitize_name(const char *name, ao_buf *out);
extern void usage_init(ao_llm_usage *u);
extern void *xrealloc(void *p, size_t n);
extern char *xstrdup(const char *s);
extern char *xstrndup(const char *s, size_t n);
/* ao_llm_request.c: request checks and shared content helpers */
extern json_object *args_object(json_object *args);
extern json_object *args_text(json_object *args);
extern json_object *content_value(json_object *content);
extern json_object *default_input_schema(void);
extern bool is_number(json_object *v);
extern json_object *structured_schema(json_object *schema, bool *wrapped);
extern const char *wire_of(const ao_llm_toolmap *map, const char *name);
/* ao_llm_openai.c: OpenAI-compatible wire format */
extern json_object *build_openai(json_object *call, const ao_llm_toolmap *map, const ao_llm_request_opts *opts,
			 ao_llm_spec *spec);
extern void dec_openai(ao_llm_decoder *d, json_object *obj);
/* ao_llm_anthropic.c: Anthropic wire format */
extern json_object *build_anthropic(json_object *call, const ao_llm_toolmap *map, const ao_llm_request_opts *opts,
				ao_llm_spec *spec);
extern void dec_anthropic(ao_llm_decoder *d, const char *sse_type, json_object *obj);
extern void dec_anthropic_usage(ao_llm_decoder *d, json_object *u);
/* ao_llm_decode.c: the decoder shared by both providers */
extern void dec_close(ao_llm_decoder *d);
extern bool dec_count(ao_llm_decoder *d, size_t n);
extern void dec_error(ao_llm_decoder *d, ao_llm_errkind kind, bool retryable, const char *type,
		  const char *fmt,...)
__attribute__((format(printf, 5, 6)));
extern void dec_finish_reason(ao_llm_decoder *d, const char *raw);
extern void dec_json_feed(ao_llm_decoder *d, const char *s, size_t n);
extern void dec_provider_error(ao_llm_decoder *d, json_object *obj);
extern void dec_set_str(char **field, const char *value);
extern void dec_text(ao_llm_decoder *d, const char *s, size_t n);
extern void dec_tool_args(ao_llm_decoder *d, size_t i, const char *s, size_t n);
extern void dec_tool_args_value(ao_llm_decoder *d, size_t i, json_object *args);
extern size_t dec_tool_begin(ao_llm_decoder *d, const char *id, const char *wire, long pindex);
extern void dec_tool_end(ao_llm_decoder *d, size_t i);
extern void dec_usage(ao_llm_decoder *d, int64_t in, int64_t out, int64_t cached, int64_t written);
extern int64_t jcount(json_object *obj, const char *key);
extern const char *jstrlen(json_object *obj, const char *key, size_t *len);

#endif							/* AO_LLM_INT_H */
