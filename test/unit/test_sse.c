/*-------------------------------------------------------------------------
 *
 * test_sse.c
 *	  Unit tests of the incremental Server-Sent Events parser (ao_sse).
 *
 * Every event a parser dispatches is appended to a log as
 * "<type>|<data>|<id>\n" (bytes that are not printable ASCII are written
 * as \xNN), so that one string comparison checks a whole stream, and the
 * same stream can be compared across every way of chunking it.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/test_sse.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ao_core.h"
#include "ao_sse.h"
#include "unit.h"

#ifndef AO_FIXTURES_DIR
#define AO_FIXTURES_DIR AO_SCHEMAS_DIR "/../test/unit/fixtures"
#endif

typedef struct sse_log
{
	ao_buf		text;
	int			stop_after;		/* return 1 from the callback after this many */
	int			n;
} sse_log;

static void
log_bytes(ao_buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '\n')
			ao_buf_append(b, "\\n");
		else if (c == '\r')
			ao_buf_append(b, "\\r");
		else if (c < 0x20 || c >= 0x7f || c == '\\')
			ao_buf_printf(b, "\\x%02x", c);
		else
			ao_buf_append_n(b, s + i, 1);
	}
}

static int
log_event(void *arg, const ao_sse_event *ev)
{
	sse_log    *l = arg;

	log_bytes(&l->text, ev->type, strlen(ev->type));
	ao_buf_append(&l->text, "|");
	log_bytes(&l->text, ev->data, ev->data_len);
	ao_buf_append(&l->text, "|");
	log_bytes(&l->text, ev->id, strlen(ev->id));
	ao_buf_append(&l->text, "\n");
	l->n++;
	return (l->stop_after > 0 && l->n >= l->stop_after) ? 1 : 0;
}

static ao_sse_status
feed_str(ao_sse_parser *p, const char *s)
{
	return ao_sse_feed(p, s, strlen(s));
}

/* Parse input fed in chunks of the given sizes (0-terminated list; the rest at once). */
static ao_sse_status
parse_chunks(const char *in, size_t len, const size_t *sizes, size_t max, ao_buf *out,
			 ao_sse_status *finish_status)
{
	sse_log		l;
	ao_sse_parser *p;
	size_t		off = 0;
	ao_sse_status st = AO_SSE_OK;

	memset(&l, 0, sizeof(l));
	ao_buf_init(&l.text);
	p = ao_sse_new(max, log_event, &l);
	for (int i = 0; sizes != NULL && sizes[i] != 0 && off < len; i++)
	{
		size_t		n = sizes[i] < len - off ? sizes[i] : len - off;

		st = ao_sse_feed(p, in + off, n);
		off += n;
	}
	if (off < len)
		st = ao_sse_feed(p, in + off, len - off);
	*finish_status = ao_sse_finish(p);
	ao_sse_free(p);
	*out = l.text;
	return st;
}

/* Parse the whole input at once and return the event log (caller frees). */
static char *
parse_all(const char *in, ao_sse_status *finish_status)
{
	ao_buf		out;
	ao_sse_status fs;

	parse_chunks(in, strlen(in), NULL, 0, &out, &fs);
	if (finish_status)
		*finish_status = fs;
	return out.data;
}

static void
check_stream(const char *name, const char *in, const char *want)
{
	char	   *got = parse_all(in, NULL);

	UNIT_STREQ(got, want, name);
	free(got);
}

/*
 * Feed input split at every byte boundary (two chunks), byte by byte, and
 * in many pseudo-random chunkings; every log must equal the one-chunk log.
 */
static void
check_chunking(const char *name, const char *in, size_t len, size_t max)
{
	ao_buf		ref;
	ao_sse_status ref_st;
	ao_sse_status ref_fs;
	int			bad = 0;
	size_t		sizes[4096];
	unsigned int seed = 12345;
	char		label[200];

	ref_st = parse_chunks(in, len, NULL, max, &ref, &ref_fs);
	for (size_t split = 0; split <= len && bad == 0; split++)
	{
		ao_buf		got;
		ao_sse_status fs;
		ao_sse_status st;
		size_t		one[2] = {split, 0};

		if (split == 0)
			continue;
		st = parse_chunks(in, len, one, max, &got, &fs);
		if (strcmp(got.data, ref.data) != 0 || st != ref_st || fs != ref_fs)
		{
			printf("# split at %zu differs\n", split);
			bad++;
		}
		ao_buf_free(&got);
	}
	/* byte by byte */
	{
		ao_buf		got;
		ao_sse_status fs;
		ao_sse_status st;
		size_t		k = 0;

		for (k = 0; k < len && k < 4095; k++)
			sizes[k] = 1;
		sizes[k] = 0;
		st = parse_chunks(in, len, sizes, max, &got, &fs);
		if (strcmp(got.data, ref.data) != 0 || st != ref_st || fs != ref_fs)
		{
			printf("# byte-by-byte differs\n");
			bad++;
		}
		ao_buf_free(&got);
	}
	for (int round = 0; round < 200 && bad == 0; round++)
	{
		ao_buf		got;
		ao_sse_status fs;
		ao_sse_status st;
		size_t		k = 0;

		for (size_t total = 0; total < len && k < 4095; k++)
		{
			seed = seed * 1103515245u + 12345u;
			sizes[k] = 1 + (seed >> 16) % 97;
			total += sizes[k];
		}
		sizes[k] = 0;
		st = parse_chunks(in, len, sizes, max, &got, &fs);
		if (strcmp(got.data, ref.data) != 0 || st != ref_st || fs != ref_fs)
		{
			printf("# random chunking %d differs\n", round);
			bad++;
		}
		ao_buf_free(&got);
	}
	snprintf(label, sizeof(label), "chunking invariance: %s", name);
	UNIT_OK(bad == 0, label);
	ao_buf_free(&ref);
}

static char *
read_fixture(const char *name, size_t *len)
{
	char		path[1024];
	FILE	   *f;
	char	   *buf;
	long		n;

	snprintf(path, sizeof(path), "%s/%s", AO_FIXTURES_DIR, name);
	f = fopen(path, "rb");
	if (f == NULL)
	{
		printf("# cannot open %s\n", path);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t) n + 1);
	if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n)
		abort();
	buf[n] = '\0';
	fclose(f);
	*len = (size_t) n;
	return buf;
}

/* Count occurrences of needle in the log (for fixture checks). */
static int
count_substr(const char *hay, const char *needle)
{
	int			n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void
test_fields(void)
{
	check_stream("simple data", "data: hello\n\n", "message|hello|\n");
	check_stream("no space after colon", "data:hello\n\n", "message|hello|\n");
	check_stream("only one leading space is removed", "data:  two\n\n", "message| two|\n");
	check_stream("multi-line data joined with LF", "data: a\ndata: b\ndata:\n\n",
				 "message|a\\nb\\n|\n");
	check_stream("empty data line dispatches an empty event", "data\n\n", "message||\n");
	check_stream("data: with empty value", "data:\n\n", "message||\n");
	check_stream("event type", "event: ping\ndata: {}\n\n", "ping|{}|\n");
	check_stream("event type resets after dispatch",
				 "event: a\ndata: 1\n\ndata: 2\n\n", "a|1|\nmessage|2|\n");
	check_stream("last event: wins", "event: a\nevent: b\ndata: x\n\n", "b|x|\n");
	check_stream("event without data is not dispatched and its type is dropped",
				 "event: lonely\n\ndata: y\n\n", "message|y|\n");
	check_stream("comments are ignored", ": keep-alive\n\n:another\ndata: z\n\n", "message|z|\n");
	check_stream("unknown fields are ignored", "foo: bar\nbaz\ndata: q\n\n", "message|q|\n");
	check_stream("field names are case-sensitive", "Data: no\nDATA: no\n\n", "");
	check_stream("colon in value kept", "data: a:b: c\n\n", "message|a:b: c|\n");
	check_stream("id persists across events", "id: 7\ndata: a\n\ndata: b\n\n",
				 "message|a|7\nmessage|b|7\n");
	check_stream("empty id resets it", "id: 7\ndata: a\n\nid\ndata: b\n\n",
				 "message|a|7\nmessage|b|\n");
	check_stream("CRLF line endings", "event: e\r\ndata: x\r\n\r\n", "e|x|\n");
	check_stream("CR line endings", "data: x\rdata: y\r\r", "message|x\\ny|\n");
	check_stream("mixed line endings", "data: a\r\ndata: b\rdata: c\n\r\n", "message|a\\nb\\nc|\n");
	check_stream("leading blank lines are harmless", "\n\n\r\ndata: x\n\n", "message|x|\n");
	check_stream("BOM at the start is skipped", "\xEF\xBB\xBF" "data: x\n\n", "message|x|\n");
	check_stream("BOM elsewhere is data",
				 "data: x\n\n\xEF\xBB\xBF" "data: y\n\n", "message|x|\n");
	check_stream("a second BOM is not skipped", "\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\n", "");
	check_stream("partial BOM then text: the bytes stay part of the line",
				 "\xEF" "data: x\n\ndata: y\n\n", "message|y|\n");
	check_stream("UTF-8 data passed through", "data: na\xC3\xAFve \xE2\x9C\x93\n\n",
				 "message|na\\xc3\\xafve \\xe2\\x9c\\x93|\n");
}

static void
test_id_retry(void)
{
	sse_log		l;
	ao_sse_parser *p;
	const char	nul_id[] = "id: a\0b\ndata: x\n\n";

	memset(&l, 0, sizeof(l));
	ao_buf_init(&l.text);
	p = ao_sse_new(0, log_event, &l);
	feed_str(p, "retry: 2500\nid: first\ndata: 1\n\n");
	UNIT_OK(ao_sse_retry_ms(p) == 2500, "retry: digits set the reconnection time");
	UNIT_STREQ(ao_sse_last_id(p), "first", "last event id");
	feed_str(p, "retry: 12a\nretry:\nretry: -5\nretry: 1.5\n\n");
	UNIT_OK(ao_sse_retry_ms(p) == 2500, "retry: with non-digits is ignored");
	ao_sse_feed(p, nul_id, sizeof(nul_id) - 1);
	UNIT_STREQ(ao_sse_last_id(p), "first", "id containing NUL is ignored");
	UNIT_STREQ(l.text.data, "message|1|first\nmessage|x|first\n", "events carry the last id");
	feed_str(p, "retry: 99999999999999999999999\n");
	UNIT_OK(ao_sse_retry_ms(p) > 0, "huge retry saturates instead of overflowing");
	UNIT_OK(ao_sse_event_count(p) == 2, "event count");
	ao_sse_reset(p);
	UNIT_STREQ(ao_sse_last_id(p), "first", "reset keeps the last event id");
	ao_sse_free(p);
	ao_buf_free(&l.text);
}

static void
test_nul_in_data(void)
{
	const char	in[] = "data: a\0b\n\n";
	ao_buf		out;
	ao_sse_status fs;

	parse_chunks(in, sizeof(in) - 1, NULL, 0, &out, &fs);
	UNIT_STREQ(out.data, "message|a\\x00b|\n", "NUL byte inside data is kept, data_len counts it");
	ao_buf_free(&out);
}

static void
test_finish(void)
{
	ao_sse_status fs;
	char	   *got;

	got = parse_all("data: complete\n\ndata: cut", &fs);
	UNIT_STREQ(got, "message|complete|\n", "unterminated final line is discarded");
	UNIT_OK(fs == AO_SSE_TRUNCATED, "finish reports the truncated event");
	free(got);
	got = parse_all("data: complete\n\ndata: no blank line\n", &fs);
	UNIT_STREQ(got, "message|complete|\n", "event without its empty line is discarded at the end");
	UNIT_OK(fs == AO_SSE_TRUNCATED, "finish reports it");
	free(got);
	got = parse_all("data: complete\n\n", &fs);
	UNIT_OK(fs == AO_SSE_OK, "finish after a complete stream is ok");
	free(got);
	got = parse_all("event: x\n: comment\n", &fs);
	UNIT_OK(fs == AO_SSE_OK, "pending event type without data is not a truncated event");
	free(got);
	got = parse_all("", &fs);
	UNIT_OK(fs == AO_SSE_OK && got[0] == '\0', "empty stream");
	free(got);
	UNIT_STREQ(ao_sse_status_message(AO_SSE_TOO_LARGE), "server-sent event exceeds the size limit",
			   "status message");
}

static void
test_crlf_split(void)
{
	/* CR at the end of a chunk, LF at the start of the next: one line end */
	size_t		sizes[] = {8, 0};
	ao_buf		out;
	ao_sse_status fs;
	const char *in = "data: a\r\ndata: b\r\n\r\n";

	parse_chunks(in, strlen(in), sizes, 0, &out, &fs);
	UNIT_STREQ(out.data, "message|a\\nb|\n", "CRLF split between chunks is one line ending");
	ao_buf_free(&out);

	/* CR at the end of a chunk followed by a non-LF */
	in = "data: a\rdata: b\r\r";
	parse_chunks(in, strlen(in), sizes, 0, &out, &fs);
	UNIT_STREQ(out.data, "message|a\\nb|\n", "lone CR at a chunk end still ends the line");
	ao_buf_free(&out);

	/* empty chunks in between */
	{
		sse_log		l;
		ao_sse_parser *p;

		memset(&l, 0, sizeof(l));
		ao_buf_init(&l.text);
		p = ao_sse_new(0, log_event, &l);
		feed_str(p, "data: x\r");
		feed_str(p, "");
		feed_str(p, "\n");
		feed_str(p, "\r");
		feed_str(p, "\n");
		UNIT_STREQ(l.text.data, "message|x|\n", "empty chunks do not break a pending CRLF");
		ao_sse_free(p);
		ao_buf_free(&l.text);
	}
}

static void
test_limits(void)
{
	sse_log		l;
	ao_sse_parser *p;
	ao_sse_status st;
	char		big[200];

	memset(&l, 0, sizeof(l));
	ao_buf_init(&l.text);
	p = ao_sse_new(32, log_event, &l);
	st = feed_str(p, "data: 0123456789\n\n");
	UNIT_OK(st == AO_SSE_OK && l.n == 1, "event under the cap");
	st = feed_str(p, "data: 0123456789\ndata: 0123456789\ndata: 0123456789\n\n");
	UNIT_OK(st == AO_SSE_TOO_LARGE, "data lines adding up past the cap: too large");
	UNIT_OK(l.n == 1, "oversized event not dispatched");
	st = feed_str(p, "data: x\n\n");
	UNIT_OK(st == AO_SSE_TOO_LARGE && l.n == 1, "too large is sticky");
	UNIT_OK(ao_sse_finish(p) == AO_SSE_TOO_LARGE, "finish reports too large");
	ao_sse_reset(p);
	st = feed_str(p, "data: again\n\n");
	UNIT_OK(st == AO_SSE_OK && l.n == 2, "reset clears the error");
	ao_sse_free(p);

	/* a line that never ends must not be buffered without bound */
	p = ao_sse_new(64, log_event, &l);
	memset(big, 'x', sizeof(big));
	st = AO_SSE_OK;
	for (int i = 0; i < 100 && st == AO_SSE_OK; i++)
		st = ao_sse_feed(p, big, sizeof(big));
	UNIT_OK(st == AO_SSE_TOO_LARGE, "endless line stops at the cap");
	ao_sse_free(p);

	/* a long comment line counts too (nothing is dispatched) */
	p = ao_sse_new(16, log_event, &l);
	st = feed_str(p, ": this comment is longer than sixteen bytes\n");
	UNIT_OK(st == AO_SSE_TOO_LARGE, "long comment line is too large as well");
	ao_sse_free(p);

	/* exactly at the cap: 10 bytes of line "data: 0123" -> data "0123\n" */
	p = ao_sse_new(10, log_event, &l);
	st = feed_str(p, "data: 0123\n\n");
	UNIT_OK(st == AO_SSE_OK, "event exactly at the cap is accepted");
	ao_sse_free(p);
	ao_buf_free(&l.text);
}

static void
test_stop(void)
{
	sse_log		l;
	ao_sse_parser *p;
	ao_sse_status st;

	memset(&l, 0, sizeof(l));
	ao_buf_init(&l.text);
	l.stop_after = 1;
	p = ao_sse_new(0, log_event, &l);
	st = feed_str(p, "data: 1\n\ndata: 2\n\n");
	UNIT_OK(st == AO_SSE_STOPPED && l.n == 1, "callback returning non-zero stops the parser");
	st = feed_str(p, "data: 3\n\n");
	UNIT_OK(st == AO_SSE_STOPPED && l.n == 1, "stopped parser ignores further input");
	ao_sse_free(p);
	ao_buf_free(&l.text);
}

static void
test_chunking(void)
{
	static const char *const streams[][2] = {
		{"mixed", "\xEF\xBB\xBF: hi\r\nretry: 10\r\nid: 1\r\nevent: a\r\ndata: x\r\ndata:y\r\n\r\n"
		"data\n\nfoo\rdata: \xC3\xA9t\xC3\xA9\r\rid\n: c\ndata: z\n\ndata: tail"},
		{"crlf heavy", "\r\n\r\ndata: a\r\n\r\ndata: b\r\r\ndata: c\n\r\n\r"},
		{"only separators", "\n\r\n\r\r\n\n"},
	};
	check_stream("mixed stream, one chunk", streams[0][1],
				 "a|x\\ny|1\nmessage||1\nmessage|\\xc3\\xa9t\\xc3\\xa9|1\nmessage|z|\n");
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++)
		check_chunking(streams[i][0], streams[i][1], strlen(streams[i][1]), 0);
	/* the cap must hit at the same place however the input is split */
	check_chunking("too large mid-stream",
				   "data: short\n\ndata: this line is far too long for the cap\n\ndata: after\n\n",
				   strlen("data: short\n\ndata: this line is far too long for the cap\n\ndata: after\n\n"), 24);
}

static void
test_fixtures(void)
{
	static const char *const files[] = {
		"openai_stream_text.txt", "openai_stream_tools.txt", "openai_stream_weather.txt",
		"openai_stream_structured.txt", "openai_stream_malformed.txt",
		"anthropic_stream_text.txt", "anthropic_stream_tools.txt",
		"anthropic_stream_weather.txt", "anthropic_stream_error.txt",
		"anthropic_stream_drop.txt",
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
	{
		size_t		len;
		char	   *in = read_fixture(files[i], &len);

		if (in == NULL)
		{
			UNIT_OK(0, files[i]);
			continue;
		}
		check_chunking(files[i], in, len, 0);
		free(in);
	}

	/* event counts of two recorded streams */
	{
		size_t		len;
		char	   *in = read_fixture("openai_stream_text.txt", &len);
		ao_buf		out;
		ao_sse_status fs;

		parse_chunks(in, len, NULL, 0, &out, &fs);
		UNIT_OK(count_substr(out.data, "message|") == count_substr(in, "data: ") &&
				fs == AO_SSE_OK, "openai stream: one message event per data: line");
		UNIT_OK(strstr(out.data, "message|[DONE]|\n") != NULL, "openai stream ends with [DONE]");
		ao_buf_free(&out);
		free(in);

		in = read_fixture("anthropic_stream_tools.txt", &len);
		parse_chunks(in, len, NULL, 0, &out, &fs);
		UNIT_OK(count_substr(out.data, "content_block_start|") == 3 &&
				count_substr(out.data, "ping|") == 1 &&
				strncmp(out.data, "message_start|", 14) == 0 &&
				strstr(out.data, "message_stop|{\"type\":\"message_stop\"}|\n") != NULL,
				"anthropic stream: named events in order");
		ao_buf_free(&out);
		free(in);

		in = read_fixture("anthropic_stream_drop.txt", &len);
		parse_chunks(in, len, NULL, 0, &out, &fs);
		UNIT_OK(strstr(out.data, "message_stop") == NULL, "dropped stream has no message_stop");
		ao_buf_free(&out);
		free(in);
	}
}

int
main(void)
{
	test_fields();
	test_id_retry();
	test_nul_in_data();
	test_finish();
	test_crlf_split();
	test_limits();
	test_stop();
	test_chunking();
	test_fixtures();
	return unit_done();
}
