#!/usr/bin/env python3
"""Wire-level TAP test for mock_llm.py (stdlib only).

Talks to the mock over raw sockets and checks the bytes on the wire: HTTP/1.1
framing (Content-Length, chunked encoding, keep-alive), SSE framing, OpenAI
chunk/[DONE] layout, Anthropic event names, every fault mode, auth, /stats.

    python3 test/mock_llm/test_mock_raw.py          # from any directory
    MOCK_RAW_SKIP_LOAD=1 ...                        # skip the 1000-connection load test
"""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.join(HERE, "mock_llm.py")
WIRE_SCRIPT = os.path.join(HERE, "scripts", "wire_test.json")
DEMO_SCRIPT = os.path.join(HERE, "scripts", "demo.json")
SECRET = "sk-mock-secret-4f1c9e"


# ---------------------------------------------------------------- TAP
class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, diag=None):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, desc))
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, desc))
            if diag is not None:
                for line in str(diag).splitlines()[:40]:
                    print("#   " + line)
        sys.stdout.flush()
        return cond

    def eq(self, got, want, desc):
        return self.ok(got == want, desc, "got:  %r\nwant: %r" % (got, want))


T = Tap()


# ---------------------------------------------------------------- mock process
class Mock:
    def __init__(self, *args, env=None):
        e = dict(os.environ)
        e.pop("MOCK_LLM_REQUIRE_KEY", None)
        e.pop("MOCK_LLM_STRICT", None)
        e.update(env or {})
        self.proc = subprocess.Popen([sys.executable, MOCK, "--port", "0"] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"listening on ([\d.]+):(\d+)$", line.strip())
        if not m:
            err = self.proc.stderr.read().decode()
            raise RuntimeError("mock did not start: %r %s" % (line, err))
        self.port = int(m.group(2))
        self.banner = line
        self.err = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.err.append(line.decode("utf-8", "replace"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


# ---------------------------------------------------------------- raw HTTP client
class Resp:
    def __init__(self):
        self.status = None
        self.headers = {}
        self.raw_head = b""
        self.body = b""         # de-chunked
        self.chunks = []        # chunk payloads, in order
        self.complete = False   # full body / terminating chunk seen
        self.error = None       # None | "eof" | "reset" | "timeout"
        self.chunked = False
        self.t_headers = None
        self.t_end = None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def h(self, name):
        return self.headers.get(name.lower())


class Conn:
    def __init__(self, port, timeout=10.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError()
        self.buf += d

    def _readline(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, method, path, body=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        hdrs = {"Host": "127.0.0.1", "Content-Type": "application/json"}
        hdrs.update(headers or {})
        chunked_req = hdrs.pop("X-Test-Chunked-Body", None)
        lines = ["%s %s HTTP/1.1" % (method, path)] + ["%s: %s" % kv for kv in hdrs.items()]
        if body is not None:
            if chunked_req:
                lines.append("Transfer-Encoding: chunked")
                half = len(body) // 2
                payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]) if p) + b"0\r\n\r\n"
            else:
                lines.append("Content-Length: %d" % len(body))
                payload = body
        else:
            payload = b""
        self.s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)

    def recv_response(self, head_only=False):
        r = Resp()
        t0 = time.time()
        try:
            status_line = self._readline()
            r.raw_head = status_line + b"\r\n"
            r.status = int(status_line.split()[1])
            while True:
                line = self._readline()
                r.raw_head += line + b"\r\n"
                if not line:
                    break
                k, v = line.decode("latin-1").split(":", 1)
                r.headers[k.strip().lower()] = v.strip()
            r.t_headers = time.time() - t0
            if head_only:
                return r
            if "chunked" in r.headers.get("transfer-encoding", "").lower():
                r.chunked = True
                while True:
                    size = int(self._readline().split(b";")[0], 16)
                    if size == 0:
                        self._readline()
                        r.complete = True
                        break
                    data = self._read(size)
                    if self._read(2) != b"\r\n":
                        raise ValueError("bad chunk trailer")
                    r.chunks.append(data)
                    r.body += data
            elif "content-length" in r.headers:
                n = int(r.headers["content-length"])
                while len(self.buf) < n:
                    try:
                        self._fill()
                    except EOFError:
                        r.body = self.buf
                        self.buf = b""
                        raise
                r.body = self._read(n)
                r.complete = True
            else:
                while True:
                    self._fill()
        except EOFError:
            r.error = "eof"
            if not r.body and self.buf and r.status is not None and not r.chunked:
                r.body = self.buf
        except ConnectionResetError:
            r.error = "reset"
        except socket.timeout:
            r.error = "timeout"
        r.t_end = time.time() - t0
        return r

    def request(self, method, path, body=None, headers=None):
        self.send(method, path, body, headers)
        return self.recv_response()


def req(port, method, path, body=None, headers=None, timeout=10.0):
    c = Conn(port, timeout)
    try:
        return c.request(method, path, body, headers)
    finally:
        c.close()


def sse_events(body):
    """Parse an SSE body strictly: every event ends with a blank line."""
    text = body.decode("utf-8")
    if not text.endswith("\n\n"):
        raise ValueError("SSE body does not end with a blank line: %r" % text[-40:])
    out = []
    for block in text[:-2].split("\n\n"):
        ev = {"event": None, "data": None}
        for line in block.split("\n"):
            if line.startswith("event: "):
                ev["event"] = line[7:]
            elif line.startswith("data: "):
                ev["data"] = line[6:]
            else:
                raise ValueError("unexpected SSE line %r" % line)
        out.append(ev)
    return out


def oa_body(content, stream=False, **kw):
    b = {"model": "mock-gpt", "messages": [{"role": "user", "content": content}]}
    if stream:
        b["stream"] = True
    b.update(kw)
    return b


def an_body(content, stream=False, **kw):
    b = {"model": "mock-claude", "max_tokens": 512, "messages": [{"role": "user", "content": content}]}
    if stream:
        b["stream"] = True
    b.update(kw)
    return b


WEATHER_TOOL_OA = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
WEATHER_TOOL_AN = {"name": "get_weather", "description": "Weather",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
WEATHER_ARGS = {"city": "Paris", "unit": "celsius", "days": [1, 2, 3], "note": "naïve \"quoted\" ✓"}
ANALYSIS = {"summary": "Sales rose 20% quarter over quarter.",
            "chart_data": [{"label": "Q1", "value": 100}, {"label": "Q2", "value": 120}]}
ANALYSIS_SCHEMA = {"type": "object", "properties": {"summary": {"type": "string"},
                                                    "chart_data": {"type": "array", "items": {"type": "object"}}},
                   "required": ["summary", "chart_data"], "additionalProperties": False}
HELLO = "Hello from the mock! Streaming works, token by token."
OA_PATH = "/v1/chat/completions"
AN_PATH = "/v1/messages"


def oa_stream_parts(r):
    """Returns (chunks as dicts, saw_done) and checks [DONE] is last."""
    evs = sse_events(r.body)
    objs = []
    done = False
    for i, ev in enumerate(evs):
        assert ev["event"] is None, "OpenAI streams carry no event: lines"
        if ev["data"] == "[DONE]":
            assert i == len(evs) - 1, "[DONE] must be last"
            done = True
        else:
            objs.append(json.loads(ev["data"]))
    return objs, done


def stats(port):
    return req(port, "GET", "/stats").json()


def run(name, fn, *a):
    try:
        fn(*a)
    except Exception:
        T.ok(False, "%s raised" % name, traceback.format_exc())


# ================================================================= tests
def t_basic(p):
    r = req(p, "GET", "/health")
    T.ok(r.status == 200 and r.body == b"ok" and r.complete, "GET /health -> 200 ok")
    r = req(p, "GET", "/v1/models")
    j = r.json()
    T.ok(r.status == 200 and j["object"] == "list" and [d["id"] for d in j["data"]] == ["mock-gpt", "mock-claude"]
         and all(d["object"] == "model" and d["type"] == "model" for d in j["data"]) and j["has_more"] is False,
         "GET /v1/models lists script models in a shape both SDK flavours accept")
    r = req(p, "GET", "/v1/models/mock-gpt")
    T.ok(r.status == 200 and r.json()["id"] == "mock-gpt", "GET /v1/models/{id}")
    r = req(p, "POST", "/v1/nope", {})
    T.ok(r.status == 404 and r.json()["error"]["type"] == "invalid_request_error", "unknown path -> 404 OpenAI error shape")
    r = req(p, "POST", OA_PATH, "{not json")
    T.ok(r.status == 400 and "error" in r.json() and r.json()["error"]["message"], "unparsable body -> 400 OpenAI error shape")
    r = req(p, "POST", AN_PATH, "[1,2]")
    T.ok(r.status == 400 and r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error",
         "non-object body on /v1/messages -> 400 Anthropic error shape")


def t_openai_nonstream(p):
    r = req(p, "POST", OA_PATH, oa_body("please say hello"), {"Authorization": "Bearer whatever"})
    j = r.json()
    T.ok(r.status == 200 and r.h("content-type") == "application/json" and int(r.h("content-length")) == len(r.body)
         and r.h("x-request-id"), "OpenAI non-stream: 200, JSON, exact Content-Length, x-request-id")
    ch = j["choices"][0]
    T.ok(j["id"].startswith("chatcmpl-") and j["object"] == "chat.completion" and isinstance(j["created"], int)
         and j["model"] == "mock-gpt" and ch["index"] == 0 and ch["message"]["role"] == "assistant"
         and ch["message"]["content"] == HELLO and ch["finish_reason"] == "stop",
         "OpenAI non-stream: id/object/created/model/choices[0].message/finish_reason", j)
    u = j["usage"]
    T.ok(u["completion_tokens"] > 1 and u["prompt_tokens"] > 0 and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"],
         "OpenAI non-stream: usage adds up", u)
    r = req(p, "POST", OA_PATH, oa_body("what is the weather?", tools=[WEATHER_TOOL_OA]))
    m = r.json()["choices"][0]
    tc = m["message"]["tool_calls"]
    T.ok(m["finish_reason"] == "tool_calls" and m["message"]["content"] is None and len(tc) == 1
         and tc[0]["type"] == "function" and tc[0]["id"].startswith("call_") and tc[0]["function"]["name"] == "get_weather"
         and json.loads(tc[0]["function"]["arguments"]) == WEATHER_ARGS,
         "OpenAI non-stream tool call: content null, arguments is a JSON string of the scripted object", m)
    r = req(p, "POST", OA_PATH, oa_body("draw a chart", tools=[{"type": "function", "function": {"name": "chart_create", "parameters": {"type": "object"}}}]))
    T.eq(r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "chart_create",
         "scripted name chart.create resolves to the provider-legal chart_create offered in the request")
    r = req(p, "POST", OA_PATH, oa_body("just echo me"))
    T.eq(r.json()["choices"][0]["message"]["content"], "Echo: just echo me", "no rule matches -> deterministic echo")
    r = req(p, "POST", OA_PATH, {"model": "mock-gpt", "messages": [{"role": "user", "content": [{"type": "text", "text": "multi"}, {"type": "text", "text": "part"}]}]})
    T.eq(r.json()["choices"][0]["message"]["content"], "Echo: multipart", "content-part arrays are understood")
    r = req(p, "POST", OA_PATH, oa_body("use the explicit tokens please"))
    T.eq(r.json()["choices"][0]["message"]["content"], "Explicit tokens.", "explicit tokens reply")
    r = req(p, "POST", OA_PATH, oa_body("check usage override"))
    T.eq(r.json()["usage"], {"prompt_tokens": 111, "completion_tokens": 222, "total_tokens": 333}, "per-rule usage override")
    r = req(p, "POST", OA_PATH, dict(oa_body("x"), model="special-1"))
    T.eq(r.json()["choices"][0]["message"]["content"], "special model", "model glob match")
    r = req(p, "POST", OA_PATH, {"model": "m", "messages": [{"role": "system", "content": "You are the PLANNER."}, {"role": "user", "content": "go"}]})
    T.eq(r.json()["choices"][0]["message"]["content"], "PLAN: step 1, step 2.", "system_contains match (case-insensitive)")
    r = req(p, "POST", OA_PATH, oa_body("please say hello", max_tokens=3))
    ch = r.json()["choices"][0]
    T.ok(ch["finish_reason"] == "length" and ch["message"]["content"] == "Hello from the", "max_tokens truncates text and finish_reason=length", ch)


def t_openai_stream(p):
    r = req(p, "POST", OA_PATH, oa_body("please say hello", stream=True))
    T.ok(r.status == 200 and r.h("content-type").startswith("text/event-stream") and r.chunked and r.complete
         and "content-length" not in r.headers, "OpenAI stream: 200 text/event-stream, chunked, terminating 0-chunk", r.headers)
    T.ok(all(c.startswith(b"data: ") and c.endswith(b"\n\n") for c in r.chunks),
         "OpenAI stream: every chunk is one complete 'data: ...\\n\\n' event")
    objs, done = oa_stream_parts(r)
    T.ok(done and r.body.endswith(b"data: [DONE]\n\n"), "OpenAI stream ends with data: [DONE]")
    T.ok(all(o["object"] == "chat.completion.chunk" and o["id"] == objs[0]["id"] and o["model"] == "mock-gpt"
             and "usage" not in o for o in objs), "every chunk: object chat.completion.chunk, same id, no usage key without include_usage")
    T.eq(objs[0]["choices"][0]["delta"].get("role"), "assistant", "first delta carries role assistant")
    content = [o["choices"][0]["delta"]["content"] for o in objs[1:-1]]
    T.eq("".join(content), HELLO, "concatenated content deltas equal the scripted text")
    T.eq(content, ["Hello", " from", " the", " mock", "!", " Streaming", " works", ",", " token", " by", " token", "."],
         "one word-boundary token per delta, spaces kept")
    T.ok(objs[-1]["choices"][0]["finish_reason"] == "stop" and objs[-1]["choices"][0]["delta"] == {}
         and all(o["choices"][0]["finish_reason"] is None for o in objs[:-1]), "final chunk has empty delta and finish_reason stop")

    r = req(p, "POST", OA_PATH, oa_body("please say hello", stream=True, stream_options={"include_usage": True}))
    objs, done = oa_stream_parts(r)
    T.ok(done and objs[-1]["choices"] == [] and objs[-1]["usage"]["completion_tokens"] == 12
         and all(o["usage"] is None for o in objs[:-1]),
         "include_usage: usage chunk (choices []) before [DONE], usage null elsewhere", objs[-1])

    r = req(p, "POST", OA_PATH, oa_body("weather in Paris?", stream=True, tools=[WEATHER_TOOL_OA]))
    objs, done = oa_stream_parts(r)
    tcd = [o["choices"][0]["delta"]["tool_calls"] for o in objs if "tool_calls" in o["choices"][0]["delta"]]
    first = tcd[0][0]
    T.ok(first["index"] == 0 and first["id"].startswith("call_") and first["type"] == "function"
         and first["function"]["name"] == "get_weather" and first["function"]["arguments"] == "",
         "tool_calls first delta: index/id/type/function.name", first)
    args = [d[0]["function"]["arguments"] for d in tcd[1:]]
    T.ok(len(args) >= 3 and all("id" not in d[0] and "name" not in d[0]["function"] for d in tcd[1:]),
         "tool arguments arrive split across %d deltas" % len(args))
    T.eq(json.loads("".join(args)), WEATHER_ARGS, "assembled streamed arguments parse to the scripted object (UTF-8, escapes)")
    T.eq(objs[-1]["choices"][0]["finish_reason"], "tool_calls", "tool stream finish_reason tool_calls")
    T.eq(objs[0]["choices"][0]["delta"], {"role": "assistant", "content": None, "refusal": None}, "tool-only stream: role delta with content null")

    r = req(p, "POST", OA_PATH, oa_body("use both tools", stream=True,
                                        tools=[WEATHER_TOOL_OA, {"type": "function", "function": {"name": "get_time", "parameters": {}}}]))
    objs, _ = oa_stream_parts(r)
    calls = {}
    text = ""
    for o in objs:
        d = o["choices"][0]["delta"] if o["choices"] else {}
        text += d.get("content") or ""
        for tc in d.get("tool_calls", []):
            c = calls.setdefault(tc["index"], {"name": None, "args": ""})
            if "function" in tc and "name" in tc["function"]:
                c["name"] = tc["function"]["name"]
            c["args"] += tc.get("function", {}).get("arguments", "")
    T.ok(text == "Calling two tools." and calls[0]["name"] == "get_weather" and json.loads(calls[0]["args"]) == {"a": 1}
         and calls[1]["name"] == "get_time" and json.loads(calls[1]["args"]) == {"tz": "UTC"},
         "text + two parallel tool calls ($first resolves to the first offered tool)", calls)

    rf = {"type": "json_schema", "json_schema": {"name": "analysis", "strict": True, "schema": ANALYSIS_SCHEMA}}
    r = req(p, "POST", OA_PATH, oa_body("analyze my sales", stream=True, response_format=rf))
    objs, done = oa_stream_parts(r)
    pieces = [o["choices"][0]["delta"]["content"] for o in objs[1:-1]]
    T.ok(len(pieces) > 5 and json.loads("".join(pieces)) == ANALYSIS and done,
         "structured output streamed in %d small pieces parses to the scripted JSON" % len(pieces))
    r = req(p, "POST", OA_PATH, oa_body("analyze my sales", response_format=rf))
    T.eq(json.loads(r.json()["choices"][0]["message"]["content"]), ANALYSIS, "structured output non-stream")
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer", "minimum": 3},
                                               "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                                               "ok": {"type": "boolean"}, "kind": {"anyOf": [{"type": "null"}, {"const": "k"}]}}}
    r = req(p, "POST", OA_PATH, oa_body("unrelated prompt", response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}))
    T.eq(json.loads(r.json()["choices"][0]["message"]["content"]), {"name": "mock", "n": 3, "tags": ["a"], "ok": True, "kind": "k"},
         "built-in structured rule synthesizes a schema-conforming value")
    r = req(p, "POST", OA_PATH, oa_body("anything", tools=[WEATHER_TOOL_OA],
                                        tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    ch = r.json()["choices"][0]
    T.ok(ch["finish_reason"] == "stop" and ch["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
         and json.loads(ch["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "mock"},
         "forced function tool_choice: tool call with schema args, finish_reason stop (like the real API)", ch)
    r = req(p, "POST", OA_PATH, oa_body("anything", tools=[WEATHER_TOOL_OA], tool_choice="required"))
    T.eq(r.json()["choices"][0]["finish_reason"], "tool_calls", "tool_choice required -> a tool call")


def t_anthropic(p):
    r = req(p, "POST", AN_PATH, an_body("please say hello"), {"x-api-key": "k", "anthropic-version": "2023-06-01"})
    j = r.json()
    T.ok(r.status == 200 and r.h("request-id") and j["id"].startswith("msg_") and j["type"] == "message"
         and j["role"] == "assistant" and j["content"] == [{"type": "text", "text": HELLO}]
         and j["stop_reason"] == "end_turn" and j["stop_sequence"] is None
         and j["usage"]["output_tokens"] == 12 and j["usage"]["input_tokens"] > 0,
         "Anthropic non-stream text message", j)
    r = req(p, "POST", AN_PATH, an_body("please say hello", stream=True))
    evs = sse_events(r.body)
    names = [e["event"] for e in evs]
    T.ok(r.chunked and r.complete and r.h("content-type").startswith("text/event-stream"), "Anthropic stream: chunked SSE")
    T.eq(names, ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 12
         + ["content_block_stop", "message_delta", "message_stop"], "Anthropic stream: exact event sequence")
    datas = [json.loads(e["data"]) for e in evs]
    T.ok(all(d["type"] == e["event"] for d, e in zip(datas, evs)), "every data.type equals its event: name")
    ms = datas[0]["message"]
    T.ok(ms["content"] == [] and ms["stop_reason"] is None and ms["usage"]["input_tokens"] > 0 and ms["id"].startswith("msg_"),
         "message_start carries an empty message with usage")
    T.eq("".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta"), HELLO,
         "text_delta concatenation equals scripted text")
    T.ok(datas[-2]["delta"]["stop_reason"] == "end_turn" and datas[-2]["usage"]["output_tokens"] == 12,
         "message_delta: stop_reason end_turn, usage.output_tokens")

    r = req(p, "POST", AN_PATH, an_body("weather?", stream=True, tools=[WEATHER_TOOL_AN]))
    datas = [json.loads(e["data"]) for e in sse_events(r.body)]
    start = [d for d in datas if d["type"] == "content_block_start"]
    T.ok(len(start) == 1 and start[0]["content_block"]["type"] == "tool_use" and start[0]["content_block"]["name"] == "get_weather"
         and start[0]["content_block"]["id"].startswith("toolu_") and start[0]["content_block"]["input"] == {},
         "tool_use content_block_start", start)
    parts = [d["delta"]["partial_json"] for d in datas if d["type"] == "content_block_delta"]
    T.ok(all(d["delta"]["type"] == "input_json_delta" for d in datas if d["type"] == "content_block_delta") and len(parts) >= 3
         and json.loads("".join(parts)) == WEATHER_ARGS, "input_json_delta partial_json split across %d deltas assembles to scripted input" % len(parts))
    T.eq(datas[-2]["delta"]["stop_reason"], "tool_use", "tool stream stop_reason tool_use")

    tool = {"name": "emit_analysis", "input_schema": ANALYSIS_SCHEMA}
    r = req(p, "POST", AN_PATH, an_body("analyse this", tools=[tool], tool_choice={"type": "tool", "name": "emit_analysis"}))
    j = r.json()
    T.ok(j["content"][0]["type"] == "tool_use" and j["content"][0]["name"] == "emit_analysis" and j["content"][0]["input"] == ANALYSIS
         and j["stop_reason"] == "tool_use", "Anthropic tool forcing returns tool_use with the scripted JSON input", j)
    r = req(p, "POST", AN_PATH, an_body("analyse this", stream=True, tools=[tool], tool_choice={"type": "tool", "name": "emit_analysis"}))
    datas = [json.loads(e["data"]) for e in sse_events(r.body)]
    T.eq(json.loads("".join(d["delta"]["partial_json"] for d in datas if d["type"] == "content_block_delta")), ANALYSIS,
         "Anthropic forced tool streamed via input_json_delta")
    r = req(p, "POST", AN_PATH, an_body("analyse this", output_format={"type": "json_schema", "schema": ANALYSIS_SCHEMA}))
    T.eq(json.loads(r.json()["content"][0]["text"]), ANALYSIS, "Anthropic output_format json_schema -> JSON text block")

    r = req(p, "POST", AN_PATH, an_body("use both tools", stream=True,
                                        tools=[WEATHER_TOOL_AN, {"name": "get_time", "input_schema": {"type": "object"}}]))
    datas = [json.loads(e["data"]) for e in sse_events(r.body)]
    kinds = [(d["index"], d["content_block"]["type"]) for d in datas if d["type"] == "content_block_start"]
    T.eq(kinds, [(0, "text"), (1, "tool_use"), (2, "tool_use")], "Anthropic text block then two tool_use blocks, indexed")

    msgs = [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "21°C"}]}]
    r = req(p, "POST", AN_PATH, {"model": "c", "max_tokens": 100, "tools": [WEATHER_TOOL_AN], "messages": msgs})
    T.eq(r.json()["content"][0]["text"], "It is 21°C in Paris today.", "Anthropic after_tool_result rule with {{tool_result}}")
    msgs = [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    r = req(p, "POST", OA_PATH, {"model": "g", "tools": [WEATHER_TOOL_OA], "messages": msgs})
    T.eq(r.json()["choices"][0]["message"]["content"], "It is sunny in Paris today.", "OpenAI after_tool_result rule")


def t_scenarios(p):
    r = req(p, "POST", OA_PATH, oa_body("whatever"), {"X-Mock-Scenario": "hello"})
    T.eq(r.json()["choices"][0]["message"]["content"], HELLO, "X-Mock-Scenario picks a rule by name")
    r = req(p, "POST", AN_PATH, an_body("whatever"), {"X-Mock-Scenario": "no_such_rule"})
    T.ok(r.status == 400 and r.json()["error"]["type"] == "invalid_request_error", "unknown X-Mock-Scenario -> 400")
    got = [req(p, "POST", OA_PATH, oa_body("sequence")).json()["choices"][0]["message"]["content"] for _ in range(4)]
    T.eq(got, ["first", "second", "last", "last"], "replies sequence (cycle false sticks to the last)")
    req(p, "POST", "/reset")
    T.eq(req(p, "POST", OA_PATH, oa_body("sequence")).json()["choices"][0]["message"]["content"], "first", "POST /reset rewinds sequences")
    r = req(p, "POST", OA_PATH, oa_body("x"), {"X-Mock-Scenario": "slow"})
    T.ok(r.status == 200 and 0.28 <= r.t_headers, "per-rule latency_ms delays the response (%.2fs)" % r.t_headers)
    r = req(p, "POST", OA_PATH, oa_body("x", stream=True), {"X-Mock-Scenario": "slow", "X-Mock-Latency-Ms": "0"})
    T.ok(r.t_headers < 0.25 and r.t_end >= 0.1, "token_delay_ms spaces deltas; X-Mock-Latency-Ms overrides (%.2fs/%.2fs)" % (r.t_headers, r.t_end))
    r = req(p, "POST", OA_PATH, oa_body("x", stream=True), {"X-Mock-Scenario": "tool_call"})
    objs, _ = oa_stream_parts(r)
    T.eq(objs[-1]["choices"][0]["finish_reason"], "tool_calls", "built-in tool_call scenario works without tools offered")


def t_faults_status(p):
    r = req(p, "POST", OA_PATH, oa_body("x"), {"X-Mock-Fault": "500"})
    e = r.json()
    T.ok(r.status == 500 and set(e["error"]) == {"message", "type", "param", "code"} and e["error"]["type"] == "server_error",
         "fault 500: OpenAI error JSON", e)
    r = req(p, "POST", AN_PATH, an_body("x", stream=True), {"X-Mock-Fault": "500"})
    e = r.json()
    T.ok(r.status == 500 and e["type"] == "error" and e["error"]["type"] == "api_error" and e["error"]["message"]
         and r.h("content-type") == "application/json", "fault 500 on a stream request: Anthropic error JSON, not SSE", e)
    r = req(p, "POST", OA_PATH, oa_body("rate me"))
    e = r.json()
    T.ok(r.status == 429 and r.h("retry-after") == "3" and e["error"]["code"] == "rate_limit_exceeded",
         "rule fault 429 with Retry-After: 3 from the rule", (r.status, r.headers))
    r = req(p, "POST", AN_PATH, an_body("x"), {"X-Mock-Fault": "429"})
    T.ok(r.status == 429 and r.h("retry-after") == "1" and r.json()["error"]["type"] == "rate_limit_error",
         "header fault 429: default Retry-After: 1, Anthropic rate_limit_error")
    r = req(p, "POST", AN_PATH, an_body("x"), {"X-Mock-Fault": "529"})
    T.ok(r.status == 529 and r.json()["error"]["type"] == "overloaded_error", "any status fault (529 overloaded)")
    req(p, "POST", "/reset")
    got = [req(p, "POST", OA_PATH, oa_body("flaky call")).status for _ in range(4)]
    T.eq(got, [500, 500, 200, 200], "fail_times 2: two faults then normal")
    req(p, "POST", "/reset")
    T.eq(req(p, "POST", OA_PATH, oa_body("flaky call")).status, 500, "POST /reset re-arms fail_times")
    h = {"X-Mock-Fault": "503", "X-Mock-Fail-Times": "1", "X-Mock-Fail-Key": "k1"}
    got = [req(p, "POST", AN_PATH, an_body("x"), h).status for _ in range(3)]
    T.eq(got, [503, 200, 200], "header fault with X-Mock-Fail-Times")
    r = req(p, "POST", OA_PATH, oa_body("x"), {"X-Mock-Fault": "bogus"})
    T.eq(r.status, 400, "unknown X-Mock-Fault -> 400")


def t_fault_hang(p):
    c = Conn(p, timeout=0.5)
    c.send("POST", OA_PATH, oa_body("x"), {"X-Mock-Fault": "hang", "X-Mock-Hang-Ms": "1500"})
    r = c.recv_response()
    T.eq(r.error, "timeout", "hang (non-stream): nothing arrives, client times out")
    c.s.settimeout(5)
    t0 = time.time()
    r = c.recv_response()
    dt = time.time() - t0
    T.ok(r.status is None and r.error in ("eof", "reset") and 0.5 < dt < 3, "hang is bounded: connection closed with no response (%.2fs)" % dt, (r.error, dt))
    c.close()
    c = Conn(p, timeout=5)
    c.send("POST", AN_PATH, an_body("x", stream=True), {"X-Mock-Fault": "hang", "X-Mock-Hang-Ms": "1200"})
    r = c.recv_response()
    T.ok(r.status == 200 and r.chunked and not r.complete and r.error == "eof" and r.t_end > 1.0
         and r.body.startswith(b"event: message_start\n") and r.body.count(b"\n\n") == 1,
         "hang (stream): headers + message_start, silence, then close without terminating chunk (%.2fs)" % (r.t_end or 0),
         (r.status, r.error, r.body[:200]))
    c.close()
    r = req(p, "POST", OA_PATH, oa_body("x"), {"X-Mock-Fault": "hang", "X-Mock-Hang-Ms": "600", "X-Mock-Hang-Headers": "1"})
    T.ok(r.status == 200 and r.error == "eof" and r.body == b"" and int(r.h("content-length")) > 0,
         "hang with headers (non-stream): Content-Length promised, body never sent", (r.status, r.error))
    r = req(p, "POST", OA_PATH, oa_body("x"), {"X-Mock-Fault": "hang", "X-Mock-Hang-Ms": "99999999"}, timeout=0.3)
    T.eq(r.error, "timeout", "huge X-Mock-Hang-Ms is accepted (clamped to the 30 s maximum)")


def t_fault_drop(p):
    for mode, want in (("rst", ("reset", "eof")), ("fin", ("eof",))):
        r = req(p, "POST", OA_PATH, oa_body("please say hello", stream=True),
                {"X-Mock-Fault": "drop", "X-Mock-Drop-Mode": mode, "X-Mock-Drop-After-Tokens": "3"})
        ok_frames = all(c.startswith(b"data: ") and c.endswith(b"\n\n") for c in r.chunks)
        T.ok(r.status == 200 and not r.complete and r.error in want and b"[DONE]" not in r.body and ok_frames,
             "drop (%s, OpenAI): stream cut mid-body without [DONE] or terminating chunk (%s)" % (mode, r.error), (r.error, r.body[-200:]))
        texts = [json.loads(c[6:])["choices"][0]["delta"].get("content") for c in r.chunks]
        T.ok(texts[1:] == ["Hello", " from", " the"], "drop (%s): exactly the first 3 tokens arrived before the cut" % mode, texts)
    r = req(p, "POST", AN_PATH, an_body("please say hello", stream=True), {"X-Mock-Fault": "drop"})
    T.ok(r.status == 200 and not r.complete and r.error in ("reset", "eof") and b"message_stop" not in r.body
         and r.body.count(b"event: content_block_delta") == 2, "drop (Anthropic): no message_stop, 2 deltas then cut", r.body[-200:])
    r = req(p, "POST", OA_PATH, oa_body("please say hello"), {"X-Mock-Fault": "drop", "X-Mock-Drop-Mode": "fin"})
    T.ok(r.status == 200 and not r.complete and r.error == "eof" and 0 < len(r.body) < int(r.h("content-length")),
         "drop (non-stream): fewer bytes than Content-Length, then close", (r.error, len(r.body), r.headers))
    r = req(p, "POST", OA_PATH, oa_body("hi", stream=True), {"X-Mock-Fault": "drop", "X-Mock-Drop-After-Tokens": "50"})
    T.ok(not r.complete and b"[DONE]" not in r.body, "drop after more tokens than the reply has still drops before [DONE]")


def t_fault_malformed(p):
    r = req(p, "POST", OA_PATH, oa_body("please say hello", stream=True), {"X-Mock-Fault": "malformed_sse"})
    evs = sse_events(r.body)
    bad = []
    for e in evs:
        if e["data"] != "[DONE]":
            try:
                json.loads(e["data"])
            except ValueError:
                bad.append(e["data"])
    T.ok(r.complete and len(bad) == 1 and bad[0].startswith("{") and evs[-1]["data"] == "[DONE]",
         "malformed_sse (OpenAI): exactly one data: line that is not JSON, stream otherwise intact", bad)
    r = req(p, "POST", AN_PATH, an_body("please say hello", stream=True), {"X-Mock-Fault": "malformed_sse"})
    evs = sse_events(r.body)
    bad = [e for e in evs if not _is_json(e["data"])]
    T.ok(r.complete and len(bad) == 1 and bad[0]["event"] == "content_block_delta" and evs[-1]["event"] == "message_stop",
         "malformed_sse (Anthropic): one content_block_delta whose data is not JSON", bad)
    r = req(p, "POST", OA_PATH, oa_body("please say hello"), {"X-Mock-Fault": "invalid_json"})
    T.ok(r.status == 200 and r.complete and r.h("content-type") == "application/json" and not _is_json(r.body.decode()),
         "invalid_json (non-stream): 200 application/json body that does not parse, exact Content-Length")
    r = req(p, "POST", AN_PATH, an_body("please say hello"), {"X-Mock-Fault": "invalid_json"})
    T.ok(r.status == 200 and not _is_json(r.body.decode()), "invalid_json (Anthropic non-stream)")
    rf = {"type": "json_schema", "json_schema": {"name": "analysis", "schema": ANALYSIS_SCHEMA}}
    r = req(p, "POST", OA_PATH, oa_body("analyze", response_format=rf), {"X-Mock-Fault": "invalid_json"})
    j = r.json()
    T.ok(not _is_json(j["choices"][0]["message"]["content"]), "invalid_json + structured: valid envelope, content JSON broken",
         j["choices"][0]["message"]["content"])
    r = req(p, "POST", OA_PATH, oa_body("analyze", stream=True, response_format=rf), {"X-Mock-Fault": "invalid_json"})
    objs, done = oa_stream_parts(r)
    content = "".join(o["choices"][0]["delta"].get("content") or "" for o in objs)
    T.ok(done and not _is_json(content) and content.startswith('{"summary"'),
         "invalid_json + structured stream: well-formed SSE, assembled content is broken JSON", content)
    tool = {"name": "emit_analysis", "input_schema": ANALYSIS_SCHEMA}
    r = req(p, "POST", AN_PATH, an_body("analyse", stream=True, tools=[tool], tool_choice={"type": "tool", "name": "emit_analysis"}),
            {"X-Mock-Fault": "invalid_json"})
    datas = [json.loads(e["data"]) for e in sse_events(r.body)]
    pj = "".join(d["delta"]["partial_json"] for d in datas if d["type"] == "content_block_delta")
    T.ok(not _is_json(pj) and datas[-1]["type"] == "message_stop", "invalid_json + Anthropic forced tool: partial_json assembles to broken JSON")
    r = req(p, "POST", AN_PATH, an_body("analyse", tools=[tool], tool_choice={"type": "tool", "name": "emit_analysis"}),
            {"X-Mock-Fault": "invalid_json"})
    T.ok(r.status == 200 and not _is_json(r.body.decode()) and b'"input":{"summary":' in r.body,
         "invalid_json + Anthropic forced tool (non-stream): body broken inside the tool_use input", r.body[-120:])
    r = req(p, "POST", OA_PATH, oa_body("weather?", tools=[WEATHER_TOOL_OA], tool_choice="none"))
    T.ok(r.json()["choices"][0]["message"]["content"].startswith("Echo:"), "tool_choice none: has_tools rules do not match")
    r = req(p, "POST", OA_PATH, oa_body("x"), {"X-Mock-Scenario": "broken_json"})
    T.ok(not _is_json(r.json()["choices"][0]["message"]["content"]), "json_text reply can script broken JSON directly")
    r = req(p, "POST", OA_PATH, oa_body("please say hello", stream=True), {"X-Mock-Fault": "stream_error"})
    objs_raw = sse_events(r.body)
    last = json.loads(objs_raw[-1]["data"])
    T.ok(r.complete and "error" in last and last["error"]["type"] == "server_error" and b"[DONE]" not in r.body,
         "stream_error (OpenAI): data: {error} event and no [DONE]")
    r = req(p, "POST", AN_PATH, an_body("please say hello", stream=True), {"X-Mock-Fault": "stream_error"})
    evs = sse_events(r.body)
    T.ok(r.complete and evs[-1]["event"] == "error" and json.loads(evs[-1]["data"])["error"]["type"] == "overloaded_error",
         "stream_error (Anthropic): event: error with overloaded_error")


def _is_json(s):
    try:
        json.loads(s)
        return True
    except (ValueError, TypeError):
        return False


def t_keepalive(p):
    c = Conn(p)
    r1 = c.request("POST", OA_PATH, oa_body("please say hello"))
    r2 = c.request("POST", AN_PATH, an_body("please say hello", stream=True))
    r3 = c.request("POST", OA_PATH, oa_body("again", stream=True), {"X-Test-Chunked-Body": "1"})
    r4 = c.request("GET", "/health")
    c.close()
    T.ok(r1.complete and r2.complete and r3.complete and r4.body == b"ok"
         and "close" not in (r1.h("connection") or "") + (r2.h("connection") or ""),
         "keep-alive: 4 requests (JSON, SSE, chunked request body, GET) on one connection")
    T.ok(b"Echo: again" in b"".join(json.dumps(json.loads(ch[6:])).encode() for ch in r3.chunks[:-1] if ch != b"data: [DONE]\n\n")
         or "again" in r3.body.decode(), "chunked request body is read correctly")
    c = Conn(p)
    r = c.request("POST", OA_PATH, oa_body("x"), {"Connection": "close"})
    try:
        c.s.settimeout(2)
        eof = c.s.recv(10) == b""
    except OSError:
        eof = True
    c.close()
    T.ok(r.complete and eof, "Connection: close is honoured")


def t_stats(p):
    req(p, "POST", "/reset")
    s = stats(p)
    base = s["concurrent_current"]   # a clamped 30 s hang from t_fault_hang may still be in flight
    T.ok(s["requests_total"] == 0 and s["faults_injected"] == 0 and s["by_path"] == {}, "POST /reset zeroes counters", s)
    req(p, "POST", OA_PATH, oa_body("x"))
    req(p, "POST", AN_PATH, an_body("x"), {"x-api-key": "abc"})
    req(p, "POST", OA_PATH, oa_body("x"), {"X-Mock-Fault": "500"})
    req(p, "POST", OA_PATH, oa_body("x", stream=True), {"X-Mock-Fault": "drop"})
    for _ in range(50):   # the dropping handler may still be unwinding
        s = stats(p)
        if s["concurrent_current"] == base:
            break
        time.sleep(0.02)
    T.ok(s["requests_total"] == 4 and s["by_path"] == {OA_PATH: 3, AN_PATH: 1} and s["faults_injected"] == 2
         and s["faults_by_kind"] == {"500": 1, "drop": 1} and s["by_status"]["200"] == 3 and s["by_status"]["500"] == 1
         and s["concurrent_max"] >= 1 and s["concurrent_current"] == base and s["streams_started"] == 1 and s["streams_completed"] == 0,
         "/stats counts requests, paths, statuses, faults, streams", s)
    T.ok(s["last_request_had_key"] is False, "last_request_had_key false for a keyless request")
    req(p, "POST", AN_PATH, an_body("x"), {"x-api-key": "abc"})
    s = stats(p)
    T.ok(s["last_request_had_key"] is True and s["last_auth_header"] == "x-api-key", "last_request_had_key / last_auth_header")
    recs = req(p, "GET", "/requests").json()["requests"]
    T.ok(len(recs) == 5 and recs[-1]["body"]["model"] == "mock-claude" and recs[-1]["had_key"] is True
         and "x-api-key" not in recs[-1]["headers"] and "abc" not in json.dumps(recs),
         "GET /requests records bodies but never key values")


def t_auth():
    m = Mock("--script", WIRE_SCRIPT, "--verbose", env={"MOCK_LLM_REQUIRE_KEY": SECRET})
    try:
        p = m.port
        r = req(p, "POST", OA_PATH, oa_body("x"))
        e = r.json()
        T.ok(r.status == 401 and e["error"]["code"] == "invalid_api_key" and e["error"]["type"] == "invalid_request_error",
             "required key missing -> 401 OpenAI shape", e)
        r = req(p, "POST", OA_PATH, oa_body("x"), {"Authorization": "Bearer wrong"})
        T.eq(r.status, 401, "wrong bearer -> 401")
        r = req(p, "POST", AN_PATH, an_body("x"), {"x-api-key": "wrong"})
        T.ok(r.status == 401 and r.json() == {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                                              "request_id": r.h("request-id")}, "wrong x-api-key -> 401 Anthropic shape", r.body)
        r = req(p, "POST", OA_PATH, oa_body("x"), {"Authorization": "Bearer " + SECRET})
        T.eq(r.status, 200, "correct bearer -> 200")
        r = req(p, "POST", AN_PATH, an_body("x"), {"x-api-key": SECRET})
        T.eq(r.status, 200, "correct x-api-key -> 200")
        T.eq(req(p, "GET", "/v1/models").status, 401, "/v1/models also requires the key")
        T.eq(req(p, "GET", "/health").status, 200, "/health needs no key")
        s = stats(p)
        T.ok(s["auth_failures"] == 4 and s["require_key"] is True and SECRET not in json.dumps(s), "auth failures counted, key not exposed", s)
        dump = json.dumps(req(p, "GET", "/requests").json())
    finally:
        rc = m.stop()
    logs = "".join(m.err)
    T.ok(SECRET not in logs and SECRET not in dump and OA_PATH in logs, "key never appears in logs (--verbose) or /requests")
    T.eq(rc, 0, "SIGTERM -> clean exit 0")


def t_strict_and_demo():
    m = Mock("--strict")
    try:
        p = m.port
        r = req(p, "POST", OA_PATH, oa_body("x", tools=[{"type": "function", "function": {"name": "chart.create", "parameters": {}}}]))
        T.ok(r.status == 400 and "chart.create" in r.json()["error"]["message"], "--strict rejects tool names the real API rejects")
        r = req(p, "POST", AN_PATH, {"model": "c", "messages": [{"role": "user", "content": "x"}]})
        T.ok(r.status == 400 and "max_tokens" in r.json()["error"]["message"], "--strict: Anthropic max_tokens required")
        r = req(p, "POST", OA_PATH, oa_body("just echo"))
        T.eq(r.json()["choices"][0]["message"]["content"], "Echo: just echo", "built-in script (no --script) echoes")
    finally:
        m.stop()
    m = Mock("--script", DEMO_SCRIPT)
    try:
        p = m.port
        rf = {"type": "json_schema", "json_schema": {"name": "analysis", "schema": {"type": "object"}}}
        j = json.loads(req(p, "POST", OA_PATH, oa_body("Please analyze Q1-Q4 revenue", response_format=rf)).json()["choices"][0]["message"]["content"])
        T.ok(isinstance(j["summary"], str) and isinstance(j["chart_data"], list) and j["chart_data"], "demo: analysis -> summary + chart_data")
        tools = [{"type": "function", "function": {"name": "chart_create", "parameters": {"type": "object"}}}]
        r = req(p, "POST", OA_PATH, oa_body("make a chart of revenue", tools=tools))
        tc = r.json()["choices"][0]["message"]["tool_calls"][0]
        T.ok(tc["function"]["name"] == "chart_create" and json.loads(tc["function"]["arguments"])["kind"] == "bar",
             "demo: chart tool call uses the provider-legal name")
        msgs = [{"role": "user", "content": "make a chart"},
                {"role": "assistant", "content": None, "tool_calls": [dict(tc, type="function")]},
                {"role": "tool", "tool_call_id": tc["id"], "content": "chart #7"}]
        r = req(p, "POST", OA_PATH, {"model": "m", "tools": tools, "messages": msgs})
        T.ok("chart #7" in r.json()["choices"][0]["message"]["content"], "demo: after the tool result the model answers in text")
        r = req(p, "POST", AN_PATH, an_body("use a tool", tools=[{"name": "lookup_x", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}]))
        T.eq(r.json()["content"][0]["input"], {"q": "mock"}, "demo: any_tool_call picks the first offered tool")
        r = req(p, "POST", AN_PATH, an_body("hello there"))
        T.ok(r.json()["content"][0]["text"].startswith("Hello! I am the agentorch mock"), "demo: plain text reply")
        got = [req(p, "POST", OA_PATH, oa_body("flaky please")).status for _ in range(3)]
        T.eq(got, [429, 429, 200], "demo: flaky rule 429, 429, then 200")
    finally:
        m.stop()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"rules": [{"name": "x", "match": {"contians": "typo"}, "reply": {"text": "y"}}]}, f)
    try:
        pr = subprocess.run([sys.executable, MOCK, "--port", "0", "--script", f.name], capture_output=True, timeout=10)
        T.ok(pr.returncode == 2 and b"contians" in pr.stderr, "script typos are rejected at startup (exit 2)", pr.stderr)
    finally:
        os.unlink(f.name)


async def _load_one(port, body, results):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                "Connection: close\r\n\r\n" % (OA_PATH, len(body))).encode()
        w.write(head + body)
        await w.drain()
        data = await r.read()
        w.close()
        results.append(data)
    except Exception as e:  # noqa
        results.append(repr(e).encode())


async def _load(port, n, body):
    results = []
    await asyncio.gather(*[_load_one(port, body, results) for _ in range(n)])
    return results


def t_load():
    if os.environ.get("MOCK_RAW_SKIP_LOAD"):
        T.ok(True, "# SKIP load test (MOCK_RAW_SKIP_LOAD)")
        return
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4096:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    except Exception:
        pass
    # each reply starts after 2 s: many connections are open at once even on
    # a loaded machine (the assertions count, they do not time)
    m = Mock("--script", WIRE_SCRIPT, "--latency-ms", "2000", "--token-delay-ms", "5")
    try:
        body = json.dumps(oa_body("please say hello", stream=True)).encode()
        t0 = time.time()
        res = asyncio.run(_load(m.port, 1000, body))
        dt = time.time() - t0
        good = sum(1 for d in res if d.startswith(b"HTTP/1.1 200") and d.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n"))
        s = stats(m.port)
        T.ok(good == 1000, "1000 concurrent streaming requests with 2 s latency all complete (%d ok in %.2fs)" % (good, dt),
             [d[:200] for d in res if not d.endswith(b"0\r\n\r\n")][:3])
        T.ok(s["concurrent_max"] >= 100 and s["streams_completed"] == 1000,
             "server saw them concurrently (concurrent_max=%d)" % s["concurrent_max"], s)
    finally:
        m.stop()


def main():
    m = Mock("--script", WIRE_SCRIPT)
    T.ok(m.banner.startswith("listening on 127.0.0.1:") and m.port > 0, "--port 0 prints the chosen port: %s" % m.banner.strip())
    try:
        p = m.port
        for name, fn in [("basic", t_basic), ("openai_nonstream", t_openai_nonstream), ("openai_stream", t_openai_stream),
                         ("anthropic", t_anthropic), ("scenarios", t_scenarios), ("faults_status", t_faults_status),
                         ("hang", t_fault_hang), ("drop", t_fault_drop), ("malformed", t_fault_malformed),
                         ("keepalive", t_keepalive), ("stats", t_stats)]:
            run(name, fn, p)
    finally:
        m.stop()
    T.ok("Traceback" not in "".join(m.err), "mock stderr has no tracebacks after all wire tests", "".join(m.err)[-3000:])
    run("auth", t_auth)
    run("strict_demo", t_strict_and_demo)
    run("load", t_load)
    print("1..%d" % T.n)
    if T.failed:
        print("# %d of %d tests failed" % (T.failed, T.n))
    return 1 if T.failed else 0


if __name__ == "__main__":
    sys.exit(main())
