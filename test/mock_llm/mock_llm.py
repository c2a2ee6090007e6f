#!/usr/bin/env python3
"""Mock LLM server for agentorch tests and demos.

Speaks the OpenAI Chat Completions API (POST /v1/chat/completions) and the
Anthropic Messages API (POST /v1/messages), streaming (SSE) and not, with
scripted replies and fault injection.  Python 3 standard library only.

    python3 mock_llm.py --port 8089 [--host 127.0.0.1] [--script file.json]
                        [--latency-ms N] [--token-delay-ms N] [--strict]

Prints "listening on HOST:PORT" on stdout once ready (--port 0 picks a free
port).  See README.md next to this file for the script format and faults.
"""

import argparse
import copy
import fnmatch
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

VERSION = "1.0"
MAX_HANG_MS = 30000          # "hang" never sleeps longer than this
MAX_BODY_BYTES = 64 << 20    # request bodies above this get 413
DEFAULT_JSON_CHUNK = 8       # characters per streamed JSON piece
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

FAULT_KINDS = ("hang", "drop", "malformed_sse", "invalid_json", "stream_error")

# --------------------------------------------------------------------------
# Built-in script.  User rules (from --script) are tried first, then these
# (unless the script says "include_builtin": false), then the echo fallback.
# --------------------------------------------------------------------------

LONG_TEXT = (
    "This is a long scripted reply from the mock model. It exists so that "
    "tests can exercise streaming of many small deltas, back pressure and "
    "cancellation in the middle of a response. " * 8
).strip()

BUILTIN_RULES = [
    # Structured output requested (response_format json_schema/json_object,
    # a forced tool, or Anthropic output_format): synthesize a value that
    # conforms to the schema.
    {"name": "structured", "match": {"structured": True},
     "reply": {"json_from_schema": True}},
    # tool_choice "required" (OpenAI) / {"type": "any"} (Anthropic): call the
    # first tool offered with schema-synthesized arguments.
    {"name": "tool_required", "match": {"tool_required": True},
     "reply": {"tool_calls": [{"name": "$first", "arguments_from_schema": True}]}},
    # Scenario-only rules (pick them with the X-Mock-Scenario header).
    {"name": "tool_call", "scenario_only": True,
     "reply": {"tool_calls": [{"name": "$first", "arguments_from_schema": True}]}},
    {"name": "after_tool", "scenario_only": True,
     "reply": {"text": "Tool result received: {{tool_result}}"}},
    {"name": "long_text", "scenario_only": True, "reply": {"text": LONG_TEXT}},
    {"name": "empty", "scenario_only": True, "reply": {"text": ""}},
    {"name": "length", "scenario_only": True,
     "reply": {"text": "This reply was cut short because it hit the", "finish_reason": "length"}},
]

ECHO_RULE = {"name": "echo", "reply": {"text": "Echo: {{last_user_message}}"}}

RULE_KEYS = {"name", "match", "reply", "replies", "cycle", "scenario_only", "fault",
             "fault_rate", "fail_times", "retry_after", "hang_ms", "hang_headers", "drop_after_tokens",
             "drop_mode", "fault_after_tokens", "latency_ms", "token_delay_ms", "usage",
             "model", "comment", "description"}
MATCH_KEYS = {"contains", "regex", "model", "has_tools", "after_tool_result", "structured",
              "provider", "stream", "tool_required", "system_contains", "tool_offered",
              "case_sensitive"}
REPLY_KEYS = {"text", "tokens", "tool_calls", "json", "json_text", "json_from_schema",
              "finish_reason", "json_chunk_chars", "comment", "sse"}

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\s*(?:\w+|[^\w\s])|\s+")


def tokenize(text):
    """Split on word boundaries keeping whitespace attached to the following
    token; ''.join(tokenize(t)) == t always."""
    return _TOKEN_RE.findall(text or "")


def chunk_string(s, size):
    """Split s into pieces of at most size characters; at least two pieces
    whenever len(s) >= 2 so consumers really have to reassemble."""
    if not s:
        return []
    size = max(1, int(size))
    if len(s) >= 2 and size >= len(s):
        size = (len(s) + 1) // 2
    return [s[i:i + size] for i in range(0, len(s), size)]


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def break_json(s):
    """Make a JSON text syntactically invalid (drop the closing bracket,
    leave a dangling comma)."""
    if len(s) >= 2:
        return s[:-1] + ","
    return s + "{"


def normalize_tool_name(name):
    return re.sub(r"[^a-z0-9]", "_", str(name).lower())


def content_text(content):
    """Text of an OpenAI/Anthropic message content (string or parts list)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                if part.get("type") in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif part.get("type") == "tool_result":
                    continue
        return "".join(out)
    return ""


def synth_from_schema(schema, root=None, depth=0):
    """A minimal value that conforms to (the common subset of) JSON Schema."""
    if root is None:
        root = schema
    if depth > 12 or not isinstance(schema, dict):
        return None
    if "$ref" in schema and isinstance(schema["$ref"], str):
        ref = schema["$ref"]
        target = None
        if ref.startswith("#/"):
            target = root
            for part in ref[2:].split("/"):
                target = target.get(part) if isinstance(target, dict) else None
        elif ref == "#":
            target = root
        return synth_from_schema(target or {}, root, depth + 1)
    if "const" in schema:
        return copy.deepcopy(schema["const"])
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return copy.deepcopy(schema["enum"][0])
    if "default" in schema:
        return copy.deepcopy(schema["default"])
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return copy.deepcopy(schema["examples"][0])
    for key in ("anyOf", "oneOf"):
        opts = schema.get(key)
        if isinstance(opts, list) and opts:
            non_null = [o for o in opts if not (isinstance(o, dict) and o.get("type") == "null")]
            return synth_from_schema((non_null or opts)[0], root, depth + 1)
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        merged = {}
        for sub in schema["allOf"]:
            if isinstance(sub, dict):
                for k, v in sub.items():
                    if k == "properties" and isinstance(v, dict):
                        merged.setdefault("properties", {}).update(v)
                    else:
                        merged.setdefault(k, v)
        return synth_from_schema(merged, root, depth + 1)
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t is None:
        if "properties" in schema:
            t = "object"
        elif "items" in schema:
            t = "array"
        else:
            t = "string"
    if t == "object":
        props = schema.get("properties") or {}
        return {k: synth_from_schema(v, root, depth + 1) for k, v in props.items()}
    if t == "array":
        n = schema.get("minItems", 1)
        n = max(1, min(int(n) if isinstance(n, int) else 1, 10))
        items = schema.get("items")
        if isinstance(items, list):   # tuple form
            return [synth_from_schema(i, root, depth + 1) for i in items]
        if isinstance(schema.get("prefixItems"), list):
            return [synth_from_schema(i, root, depth + 1) for i in schema["prefixItems"]]
        return [synth_from_schema(items or {}, root, depth + 1) for _ in range(n)]
    if t == "string":
        fmt = schema.get("format")
        s = {"date": "2024-01-01", "date-time": "2024-01-01T00:00:00Z", "time": "00:00:00",
             "email": "mock@example.com", "uri": "https://example.com/", "url": "https://example.com/",
             "uuid": "00000000-0000-4000-8000-000000000000"}.get(fmt, "mock")
        min_len = schema.get("minLength")
        if isinstance(min_len, int) and len(s) < min_len:
            s = s + "x" * (min_len - len(s))
        max_len = schema.get("maxLength")
        if isinstance(max_len, int) and len(s) > max_len:
            s = s[:max_len]
        return s
    if t in ("integer", "number"):
        v = 0
        if isinstance(schema.get("minimum"), (int, float)):
            v = schema["minimum"]
        elif isinstance(schema.get("exclusiveMinimum"), (int, float)) and not isinstance(schema.get("exclusiveMinimum"), bool):
            v = schema["exclusiveMinimum"] + 1
        elif isinstance(schema.get("maximum"), (int, float)) and schema["maximum"] < 0:
            v = schema["maximum"]
        return int(v) if t == "integer" else v
    if t == "boolean":
        return True
    return None


# --------------------------------------------------------------------------
# Script loading / validation
# --------------------------------------------------------------------------

class ScriptError(Exception):
    pass


def _check_rule(rule, where):
    if not isinstance(rule, dict):
        raise ScriptError("%s: a rule must be an object" % where)
    unknown = set(rule) - RULE_KEYS
    if unknown:
        raise ScriptError("%s: unknown rule key(s) %s" % (where, sorted(unknown)))
    match = rule.get("match", {})
    if match is None:
        match = {}
    if not isinstance(match, dict):
        raise ScriptError("%s: match must be an object" % where)
    unknown = set(match) - MATCH_KEYS
    if unknown:
        raise ScriptError("%s: unknown match key(s) %s" % (where, sorted(unknown)))
    if "regex" in match:
        try:
            re.compile(match["regex"])
        except re.error as e:
            raise ScriptError("%s: bad regex %r: %s" % (where, match["regex"], e))
    replies = rule.get("replies")
    if replies is not None:
        if not isinstance(replies, list) or not replies:
            raise ScriptError("%s: replies must be a non-empty list" % where)
    else:
        replies = [rule.get("reply", {})]
    for i, rep in enumerate(replies):
        if not isinstance(rep, dict):
            raise ScriptError("%s: reply #%d must be an object" % (where, i))
        unknown = set(rep) - REPLY_KEYS
        if unknown:
            raise ScriptError("%s: unknown reply key(s) %s" % (where, sorted(unknown)))
        if "tokens" in rep and not (isinstance(rep["tokens"], list) and all(isinstance(t, str) for t in rep["tokens"])):
            raise ScriptError("%s: tokens must be a list of strings" % where)
        for tc in rep.get("tool_calls") or []:
            if not isinstance(tc, dict):
                raise ScriptError("%s: tool_calls entries must be objects" % where)
    fault = rule.get("fault")
    if fault is not None and parse_fault(fault) is None:
        raise ScriptError("%s: unknown fault %r" % (where, fault))


def parse_fault(value):
    """Returns ('status', int) | (kind, None) | None."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return ("status", value) if 400 <= value <= 599 else None
    v = str(value).strip().lower()
    if v.isdigit():
        n = int(v)
        return ("status", n) if 400 <= n <= 599 else None
    v = v.replace("-", "_")
    if v in FAULT_KINDS:
        return (v, None)
    return None


def load_script(path):
    if path:
        with open(path, "r", encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ScriptError("%s: invalid JSON: %s" % (path, e))
    else:
        data = {"rules": []}
    if isinstance(data, list):
        data = {"rules": data}
    if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
        raise ScriptError("script must be a list of rules or an object with a 'rules' list")
    user_rules = data.get("rules", [])
    rules = []
    names = set()
    for i, r in enumerate(user_rules):
        _check_rule(r, "rule #%d" % i)
        r = dict(r)
        r.setdefault("name", "rule%d" % i)
        if r["name"] in names:
            raise ScriptError("duplicate rule name %r" % r["name"])
        names.add(r["name"])
        rules.append(r)
    if data.get("include_builtin", True):
        for r in BUILTIN_RULES:
            if r["name"] not in names:
                rules.append(copy.deepcopy(r))
                names.add(r["name"])
    if "echo" not in names:
        rules.append(copy.deepcopy(ECHO_RULE))
    models = data.get("models") or ["mock-gpt-4o-mini", "mock-claude-sonnet"]
    return {"rules": rules, "models": [str(m) for m in models]}


# --------------------------------------------------------------------------
# Request normalization
# --------------------------------------------------------------------------

class BadRequest(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class Req:
    """Provider-independent view of a chat request."""

    def __init__(self, provider, body, headers):
        self.provider = provider
        self.body = body
        self.headers = headers
        self.model = body.get("model") if isinstance(body.get("model"), str) else ""
        self.stream = body.get("stream") is True
        self.include_usage = False
        self.tools = []              # [(name, schema)]
        self.forced_tool = None      # name when a specific tool is forced
        self.tool_required = False
        self.tools_disabled = False   # tool_choice none
        self.structured = False
        self.schema = None
        self.max_tokens = None
        self.system_text = ""
        self.last_user_text = ""
        self.tool_result_seen = False
        self.last_tool_result = ""
        self.all_text = []
        msgs = body.get("messages")
        if not isinstance(msgs, list):
            raise BadRequest("'messages' must be an array")
        if provider == "openai":
            self._parse_openai(body, msgs)
        else:
            self._parse_anthropic(body, msgs)
        self.has_tools = bool(self.tools) and not self.tools_disabled
        if self.forced_tool:
            self.tool_required = True
            self.structured = True
            self.schema = self.tool_schema(self.forced_tool)
        self.prompt_tokens = sum(len(tokenize(t)) for t in self.all_text) + 3 * len(msgs) + 3

    # -- OpenAI
    def _parse_openai(self, body, msgs):
        opts = body.get("stream_options")
        self.include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        for t in body.get("tools") or []:
            if isinstance(t, dict):
                fn = t.get("function") if isinstance(t.get("function"), dict) else t
                if isinstance(fn.get("name"), str):
                    self.tools.append((fn["name"], fn.get("parameters") or {}))
        for fn in body.get("functions") or []:   # legacy
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                self.tools.append((fn["name"], fn.get("parameters") or {}))
        tc = body.get("tool_choice", body.get("function_call"))
        if tc == "required":
            self.tool_required = True
        elif tc == "none":
            self.tools_disabled = True
        elif isinstance(tc, dict):
            fn = tc.get("function") if isinstance(tc.get("function"), dict) else tc
            if isinstance(fn.get("name"), str):
                self.forced_tool = fn["name"]
        rf = body.get("response_format")
        if isinstance(rf, dict) and rf.get("type") in ("json_schema", "json_object"):
            self.structured = True
            js = rf.get("json_schema") if isinstance(rf.get("json_schema"), dict) else {}
            self.schema = js.get("schema") if isinstance(js.get("schema"), dict) else {}
        mt = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(mt, int) and not isinstance(mt, bool):
            self.max_tokens = mt
        for m in msgs:
            if not isinstance(m, dict):
                raise BadRequest("each message must be an object")
            role = m.get("role")
            text = content_text(m.get("content"))
            self.all_text.append(text)
            if role in ("system", "developer"):
                self.system_text += text
            elif role == "user":
                self.last_user_text = text
            elif role in ("tool", "function"):
                self.tool_result_seen = True
                self.last_tool_result = text

    # -- Anthropic
    def _parse_anthropic(self, body, msgs):
        for t in body.get("tools") or []:
            if isinstance(t, dict) and isinstance(t.get("name"), str):
                self.tools.append((t["name"], t.get("input_schema") or {}))
        tc = body.get("tool_choice")
        if isinstance(tc, dict):
            if tc.get("type") == "tool" and isinstance(tc.get("name"), str):
                self.forced_tool = tc["name"]
            elif tc.get("type") == "any":
                self.tool_required = True
            elif tc.get("type") == "none":
                self.tools_disabled = True
        of = body.get("output_format")
        if not isinstance(of, dict) and isinstance(body.get("output_config"), dict):
            of = body["output_config"].get("format")
        if isinstance(of, dict) and of.get("type") in ("json_schema", "json"):
            self.structured = True
            self.schema = of.get("schema") if isinstance(of.get("schema"), dict) else {}
        mt = body.get("max_tokens")
        if isinstance(mt, int) and not isinstance(mt, bool):
            self.max_tokens = mt
        self.system_text = content_text(body.get("system"))
        self.all_text.append(self.system_text)
        for m in msgs:
            if not isinstance(m, dict):
                raise BadRequest("each message must be an object")
            content = m.get("content")
            text = content_text(content)
            self.all_text.append(text)
            if m.get("role") == "user":
                if isinstance(content, list):
                    for block in content:
                        if isinstance(block, dict) and block.get("type") == "tool_result":
                            self.tool_result_seen = True
                            self.last_tool_result = content_text(block.get("content"))
                            self.all_text.append(self.last_tool_result)
                if text or not (isinstance(content, list) and any(
                        isinstance(b, dict) and b.get("type") == "tool_result" for b in content)):
                    self.last_user_text = text

    def tool_schema(self, name):
        for n, s in self.tools:
            if n == name:
                return s if isinstance(s, dict) else {}
        return {}

    def resolve_tool(self, wanted):
        """Map a scripted tool name to a tool offered in the request."""
        if wanted in (None, "", "$first", "*"):
            return self.tools[0][0] if self.tools else "tool"
        if wanted == "$forced":
            return self.forced_tool or (self.tools[0][0] if self.tools else "tool")
        for n, _ in self.tools:
            if n == wanted:
                return n
        norm = normalize_tool_name(wanted)
        for n, _ in self.tools:
            if normalize_tool_name(n) == norm:
                return n
        return wanted

    def render(self, template):
        return (str(template)
                .replace("{{last_user_message}}", self.last_user_text)
                .replace("{{tool_result}}", self.last_tool_result)
                .replace("{{model}}", self.model)
                .replace("{{tool_names}}", ", ".join(n for n, _ in self.tools)))


def strict_validate(req):
    """Checks the real APIs enforce (enabled with --strict / MOCK_LLM_STRICT=1)."""
    body = req.body
    if not req.model:
        raise BadRequest("'model' is required")
    msgs = body["messages"]
    if not msgs:
        raise BadRequest("'messages' must not be empty")
    if req.provider == "openai":
        ids = set()
        for i, m in enumerate(msgs):
            role = m.get("role")
            if role not in ("system", "developer", "user", "assistant", "tool", "function"):
                raise BadRequest("messages[%d].role: invalid value %r" % (i, role))
            for tc in m.get("tool_calls") or []:
                if isinstance(tc, dict):
                    ids.add(tc.get("id"))
            if role == "tool" and m.get("tool_call_id") not in ids:
                raise BadRequest("messages[%d]: tool message must respond to a preceding tool_calls id" % i)
        for t in body.get("tools") or []:
            fn = (t or {}).get("function") or {}
            if (t or {}).get("type") != "function" or not TOOL_NAME_RE.match(str(fn.get("name", ""))):
                raise BadRequest("Invalid 'tools': function name %r must match ^[a-zA-Z0-9_-]{1,64}$" % fn.get("name"))
        rf = body.get("response_format")
        if isinstance(rf, dict) and rf.get("type") == "json_schema":
            js = rf.get("json_schema") or {}
            if not TOOL_NAME_RE.match(str(js.get("name", ""))) or not isinstance(js.get("schema"), dict):
                raise BadRequest("response_format.json_schema needs a valid 'name' and a 'schema' object")
    else:
        if not isinstance(body.get("max_tokens"), int):
            raise BadRequest("max_tokens: Field required")
        ids = set()
        for i, m in enumerate(msgs):
            if m.get("role") not in ("user", "assistant"):
                raise BadRequest("messages.%d.role: Input should be 'user' or 'assistant'" % i)
            if isinstance(m.get("content"), list):
                for b in m["content"]:
                    if isinstance(b, dict) and b.get("type") == "tool_use":
                        ids.add(b.get("id"))
                    if isinstance(b, dict) and b.get("type") == "tool_result" and b.get("tool_use_id") not in ids:
                        raise BadRequest("messages.%d: unexpected tool_use_id found in tool_result blocks" % i)
        for t in body.get("tools") or []:
            t = t if isinstance(t, dict) else {}
            if not TOOL_NAME_RE.match(str(t.get("name", ""))):
                raise BadRequest("tools: name %r must match ^[a-zA-Z0-9_-]{1,64}$" % (t or {}).get("name"))
            if "type" not in t and not isinstance(t.get("input_schema"), dict):
                raise BadRequest("tools: input_schema: Field required")


def rule_matches(rule, req):
    if rule.get("scenario_only"):
        return False
    m = rule.get("match") or {}
    cs = bool(m.get("case_sensitive"))

    def has(hay, needles):
        if isinstance(needles, str):
            needles = [needles]
        if not cs:
            hay = hay.lower()
        return any((n if cs else str(n).lower()) in hay for n in needles)

    if "contains" in m and not has(req.last_user_text, m["contains"]):
        return False
    if "system_contains" in m and not has(req.system_text, m["system_contains"]):
        return False
    if "regex" in m and not re.search(m["regex"], req.last_user_text):
        return False
    if "model" in m:
        pats = m["model"] if isinstance(m["model"], list) else [m["model"]]
        if not any(fnmatch.fnmatchcase(req.model, str(p)) for p in pats):
            return False
    if "provider" in m and m["provider"] != req.provider:
        return False
    if "stream" in m and bool(m["stream"]) != req.stream:
        return False
    if "has_tools" in m and bool(m["has_tools"]) != req.has_tools:
        return False
    if "after_tool_result" in m and bool(m["after_tool_result"]) != req.tool_result_seen:
        return False
    if "structured" in m and bool(m["structured"]) != req.structured:
        return False
    if "tool_required" in m and bool(m["tool_required"]) != req.tool_required:
        return False
    if "tool_offered" in m:
        norm = normalize_tool_name(m["tool_offered"])
        if not any(normalize_tool_name(n) == norm for n, _ in req.tools):
            return False
    return True


# --------------------------------------------------------------------------
# Reply plan: what the model "says", independent of the wire format
# --------------------------------------------------------------------------

class Plan:
    def __init__(self):
        self.pieces = []          # content deltas (text tokens or JSON pieces)
        self.tool_calls = []      # dicts: id, name, args (str), pieces
        self.finish = "stop"      # OpenAI finish_reason vocabulary
        self.model = ""
        self.prompt_tokens = 0
        self.completion_tokens = 0

    @property
    def text(self):
        return "".join(self.pieces)


FINISH_TO_ANTHROPIC = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                       "content_filter": "refusal", "function_call": "tool_use"}
FINISH_FROM_ANTHROPIC = {v: k for k, v in FINISH_TO_ANTHROPIC.items() if k != "function_call"}
FINISH_FROM_ANTHROPIC["stop_sequence"] = "stop"
FINISH_FROM_ANTHROPIC["pause_turn"] = "stop"


def build_plan(state, req, rule, reply, fault_kind):
    plan = Plan()
    plan.model = rule.get("model") or req.model or "mock-model"
    chunk = reply.get("json_chunk_chars", DEFAULT_JSON_CHUNK)
    broken = fault_kind == "invalid_json"
    used_broken = False

    if "tokens" in reply:
        plan.pieces = [req.render(t) for t in reply["tokens"]]
    elif "text" in reply:
        plan.pieces = tokenize(req.render(reply["text"]))

    json_text = None
    if "json_text" in reply:                 # raw text, may be deliberately invalid
        json_text = str(reply["json_text"])
    elif "json" in reply:
        json_text = dumps(reply["json"])
    elif reply.get("json_from_schema"):
        if req.schema:
            json_text = dumps(synth_from_schema(req.schema))
        else:   # json_object mode / schemaless: something recognisable
            json_text = dumps({"result": "Echo: " + req.last_user_text})
    if json_text is not None:
        if broken:
            json_text = break_json(json_text)
            used_broken = True
        if req.forced_tool:
            plan.tool_calls.append({"name": req.forced_tool, "args": json_text})
        else:
            plan.pieces += chunk_string(json_text, chunk)

    for tc in reply.get("tool_calls") or []:
        name = req.resolve_tool(tc.get("name"))
        if "arguments" in tc:
            args = tc["arguments"]
            args = args if isinstance(args, str) else dumps(args)
        elif tc.get("arguments_from_schema"):
            args = dumps(synth_from_schema(req.tool_schema(name) or {"type": "object"}))
        else:
            args = "{}"
        if broken:
            args = break_json(args)
            used_broken = True
        plan.tool_calls.append({"name": name, "args": args, "id": tc.get("id")})

    for i, tc in enumerate(plan.tool_calls):
        seq = state.next_id()
        if not tc.get("id"):
            tc["id"] = ("call_mock%06d" % seq) if req.provider == "openai" else ("toolu_mock%06d" % seq)
        tc["pieces"] = chunk_string(tc["args"], chunk)

    # max_tokens truncation of plain text replies
    if (req.max_tokens is not None and not plan.tool_calls and json_text is None
            and len(plan.pieces) > req.max_tokens >= 0):
        plan.pieces = plan.pieces[:req.max_tokens]
        plan.finish = "length"
    elif plan.tool_calls:
        # Real OpenAI quirk: a *forced* specific function ends with "stop".
        plan.finish = "stop" if (req.provider == "openai" and req.forced_tool) else "tool_calls"
    fr = reply.get("finish_reason")
    if fr:
        plan.finish = FINISH_FROM_ANTHROPIC.get(fr, fr)

    usage = rule.get("usage") or {}
    plan.prompt_tokens = usage.get("prompt_tokens", usage.get("input_tokens", req.prompt_tokens))
    plan.completion_tokens = usage.get("completion_tokens", usage.get("output_tokens",
                                       len(plan.pieces) + sum(len(t["pieces"]) for t in plan.tool_calls)))
    plan.used_broken = used_broken
    return plan


# --------------------------------------------------------------------------
# Server state
# --------------------------------------------------------------------------

class State:
    def __init__(self, script, args):
        self.script = script
        self.args = args
        self.lock = threading.Lock()
        self.shutdown = threading.Event()
        self.started = time.time()
        self.fault_rng = random.Random(int(os.environ.get("MOCK_LLM_SEED") or 7))
        self.require_key = os.environ.get("MOCK_LLM_REQUIRE_KEY") or None
        self.strict = bool(args.strict or os.environ.get("MOCK_LLM_STRICT") not in (None, "", "0"))
        self.record = deque(maxlen=max(0, args.record))
        self._id = 0
        self.reset()

    def reset(self):
        with self.lock:
            self.rule_hits = {}       # rule name -> matching requests seen
            self.rule_served = {}     # rule name -> normal replies served (sequence)
            self.fail_keys = {}       # header fail-times key -> count
            self.record.clear()
            self.stats = {
                "requests_total": 0, "by_path": {}, "by_status": {}, "by_rule": {},
                "by_provider": {}, "concurrent_current": getattr(self, "stats", {}).get("concurrent_current", 0),
                "concurrent_max": 0, "faults_injected": 0, "faults_by_kind": {},
                "streams_started": 0, "streams_completed": 0, "client_disconnects": 0,
                "auth_failures": 0, "bad_requests": 0, "internal_errors": 0,
                "last_request_had_key": None, "last_auth_header": None,
                "last_model": None, "last_rule": None, "resets": getattr(self, "stats", {}).get("resets", -1) + 1,
            }

    def next_id(self):
        with self.lock:
            self._id += 1
            return self._id

    def bump(self, key, sub=None, n=1):
        with self.lock:
            if sub is None:
                self.stats[key] += n
            else:
                d = self.stats[key]
                d[sub] = d.get(sub, 0) + n

    def enter(self):
        with self.lock:
            s = self.stats
            s["concurrent_current"] += 1
            if s["concurrent_current"] > s["concurrent_max"]:
                s["concurrent_max"] = s["concurrent_current"]

    def leave(self):
        with self.lock:
            self.stats["concurrent_current"] -= 1

    def snapshot(self):
        with self.lock:
            out = copy.deepcopy(self.stats)
        out["uptime_s"] = round(time.time() - self.started, 3)
        out["require_key"] = self.require_key is not None
        out["strict"] = self.strict
        out["version"] = VERSION
        return out


# --------------------------------------------------------------------------
# HTTP handler
# --------------------------------------------------------------------------

class ClientGone(Exception):
    pass


class DropConnection(Exception):
    pass


class StreamDone(Exception):
    """A well-formed response ended early on purpose (stream_error); the
    connection stays usable for keep-alive."""


CONTROL_PATHS = ("/health", "/stats", "/reset", "/requests")


class Handler(BaseHTTPRequestHandler):
    # first tokens must not wait for Nagle's algorithm on a kept-alive connection
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "mock-llm/" + VERSION
    sys_version = ""
    timeout = 300  # idle keep-alive connections are closed after this

    def version_string(self):
        return self.server_version

    # quiet by default; never logs headers (so never an API key)
    def log_message(self, fmt, *args):
        if self.server.state.args.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    @property
    def state(self):
        return self.server.state

    # ---------------- low level writers
    def _write(self, data):
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            self.close_connection = True
            raise ClientGone()

    def _headers(self, status, headers):
        self._status = status
        try:
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()  # flushes the header buffer to the socket
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            self.close_connection = True
            raise ClientGone()

    def _send_body(self, status, body, content_type="application/json", extra=()):
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        headers += list(extra)
        headers += self._request_id_headers()
        self._headers(status, headers)
        if self.command != "HEAD":
            self._write(body)

    def _send_json(self, status, obj, extra=()):
        self._send_body(status, dumps(obj), extra=extra)

    def _chunk(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        if data:
            self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunks(self):
        self._write(b"0\r\n\r\n")

    def _request_id_headers(self):
        rid = getattr(self, "_rid", None)
        if not rid:
            return []
        if getattr(self, "_provider", "openai") == "anthropic":
            return [("request-id", rid)]
        return [("x-request-id", rid)]

    def _abort(self, mode="rst"):
        """Close the TCP connection abruptly (RST by default, FIN with mode 'fin')."""
        self.close_connection = True
        try:
            if mode == "rst":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass
        raise DropConnection()

    # ---------------- error bodies in the provider's shape
    def _error(self, status, message, provider=None, extra=(), err_type=None, code=None):
        provider = provider or getattr(self, "_provider", "openai")
        if provider == "anthropic":
            t = err_type or {400: "invalid_request_error", 401: "authentication_error",
                             403: "permission_error", 404: "not_found_error",
                             413: "request_too_large", 429: "rate_limit_error",
                             500: "api_error", 504: "timeout_error",
                             529: "overloaded_error"}.get(status, "api_error")
            body = {"type": "error", "error": {"type": t, "message": message},
                    "request_id": getattr(self, "_rid", None)}
        else:
            t = err_type or ("invalid_request_error" if status < 500 else "server_error")
            if status == 429 and not err_type:
                t = "requests"
                code = code or "rate_limit_exceeded"
            body = {"error": {"message": message, "type": t, "param": None, "code": code}}
        self._send_json(status, body, extra=extra)

    # ---------------- request reading
    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise BadRequest("truncated chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:   # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise BadRequest("request body too large", 413)
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
            self._body_read = True
            return b"".join(parts)
        length = self.headers.get("Content-Length")
        if not length:
            self._body_read = True
            return b""
        try:
            n = int(length)
        except ValueError:
            raise BadRequest("bad Content-Length")
        if n > MAX_BODY_BYTES:
            raise BadRequest("request body too large", 413)
        data = self.rfile.read(n)
        self._body_read = True
        return data

    def _auth(self):
        """Returns (had_key, ok)."""
        auth = self.headers.get("Authorization") or ""
        key = None
        header = None
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
            header = "authorization"
        if self.headers.get("x-api-key") is not None:
            key = self.headers.get("x-api-key").strip()
            header = "x-api-key" if header is None else "both"
        had = bool(key)
        with self.state.lock:
            self.state.stats["last_request_had_key"] = had
            self.state.stats["last_auth_header"] = header if had else None
        req_key = self.state.require_key
        if req_key is None:
            return had, True
        return had, key == req_key

    # ---------------- dispatch
    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_OPTIONS(self):
        self._dispatch()

    def _dispatch(self):
        self._status = None
        self._rid = None
        self._body_read = False
        path = urlsplit(self.path).path.rstrip("/") or "/"
        self._provider = "anthropic" if (path.endswith("/messages") or self.headers.get("anthropic-version")) else "openai"
        counted = path not in CONTROL_PATHS
        st = self.state
        if counted:
            st.bump("requests_total")
            st.bump("by_path", path)
        api = not any(path == p for p in CONTROL_PATHS)
        if api:
            st.enter()
        try:
            try:
                self._route(path)
            except BadRequest as e:
                st.bump("bad_requests")
                extra = []
                if not self._body_read:   # unread request bytes: do not reuse the connection
                    self.close_connection = True
                    extra.append(("Connection", "close"))
                self._error(e.status, str(e), extra=extra)
        except ClientGone:
            st.bump("client_disconnects")
            self.close_connection = True
        except DropConnection:
            self.close_connection = True
        except StreamDone:
            pass
        except Exception as e:  # a bug in the mock: say so loudly, keep serving
            st.bump("internal_errors")
            traceback.print_exc()
            self.close_connection = True
            if self._status is None:
                try:
                    self._error(500, "mock_llm internal error: %s: %s" % (type(e).__name__, e))
                except ClientGone:
                    pass
        finally:
            if api:
                st.leave()
            if counted and self._status is not None:
                st.bump("by_status", str(self._status))

    def _route(self, path):
        st = self.state
        method = self.command
        if path == "/health" and method in ("GET", "HEAD"):
            return self._send_body(200, "ok", content_type="text/plain; charset=utf-8")
        if path == "/stats" and method == "GET":
            return self._send_json(200, st.snapshot())
        if path == "/requests" and method == "GET":
            with st.lock:
                recs = list(st.record)
            return self._send_json(200, {"requests": recs})
        if path == "/reset" and method == "POST":
            self._read_body()
            st.reset()
            return self._send_json(200, {"ok": True})

        is_chat = path.endswith("/chat/completions")
        is_msgs = path.endswith("/v1/messages") or path == "/messages"
        is_models = path.endswith("/models") or "/models/" in path
        if not (is_chat or is_msgs or is_models):
            self._read_body()
            return self._error(404, "Unknown request URL: %s %s." % (method, path), code="unknown_url")
        self._rid = "req_mock%06d" % st.next_id()
        body_bytes = self._read_body()
        had_key, ok = self._auth()
        if not ok:
            st.bump("auth_failures")
            if self._provider == "anthropic":
                return self._error(401, "invalid x-api-key")
            return self._error(401, "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
                               code="invalid_api_key")
        if is_models:
            if method not in ("GET", "HEAD"):
                return self._error(405, "Method not allowed")
            return self._models(path)
        if method != "POST":
            return self._error(405, "Method not allowed")
        self._provider = "openai" if is_chat else "anthropic"
        try:
            body = json.loads(body_bytes.decode("utf-8") if body_bytes else "")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadRequest("We could not parse the JSON body of your request. (%s)" % e)
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        req = Req(self._provider, body, self.headers)
        if st.strict:
            strict_validate(req)
        return self._chat(req, path, had_key)

    def _models(self, path):
        created = int(self.state.started)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
        data = [{"id": m, "object": "model", "type": "model", "created": created,
                 "created_at": stamp, "owned_by": "mock-llm", "display_name": m}
                for m in self.state.script["models"]]
        if "/models/" in path:
            mid = path.split("/models/", 1)[1]
            for d in data:
                if d["id"] == mid:
                    return self._send_json(200, d)
            return self._error(404, "The model '%s' does not exist" % mid, code="model_not_found")
        return self._send_json(200, {"object": "list", "data": data, "has_more": False,
                                     "first_id": data[0]["id"] if data else None,
                                     "last_id": data[-1]["id"] if data else None})

    # ---------------- the chat endpoint (both providers)
    def _hdr_int(self, name, default=None):
        v = self.headers.get(name)
        if v is None:
            return default
        try:
            return int(float(v))
        except ValueError:
            raise BadRequest("header %s must be a number" % name)

    def _chat(self, req, path, had_key):
        st = self.state
        rules = st.script["rules"]
        scenario = self.headers.get("X-Mock-Scenario")
        rule = None
        if scenario:
            rule = next((r for r in rules if r["name"] == scenario), None)
            if rule is None:
                raise BadRequest("X-Mock-Scenario: unknown rule %r (known: %s)" %
                                 (scenario, ", ".join(r["name"] for r in rules)))
        else:
            rule = next((r for r in rules if rule_matches(r, req)), None) or ECHO_RULE
        name = rule["name"]

        # ---- fault selection (header beats rule), gated by fail_times
        hdr_fault = self.headers.get("X-Mock-Fault")
        if hdr_fault:
            fault = parse_fault(hdr_fault)
            if fault is None:
                raise BadRequest("X-Mock-Fault: unknown fault %r" % hdr_fault)
            fail_times = self._hdr_int("X-Mock-Fail-Times")
            fail_key = "hdr:" + (self.headers.get("X-Mock-Fail-Key") or "%s:%s:%s" % (hdr_fault, path, name))
        else:
            fault = parse_fault(rule.get("fault"))
            fail_times = rule.get("fail_times")
            fail_key = "rule:" + name
        with st.lock:
            hits = st.rule_hits.get(fail_key, 0)
            st.rule_hits[fail_key] = hits + 1
            if fault is not None and fail_times is not None and hits >= int(fail_times):
                fault = None
            # "fault_rate": the fault hits only that fraction of requests
            # (seeded, so a run of the suite is repeatable)
            rate = None if hdr_fault else rule.get("fault_rate")
            if fault is not None and rate is not None and st.fault_rng.random() >= float(rate):
                fault = None
            if fault is None:
                served = st.rule_served.get(name, 0)
                st.rule_served[name] = served + 1
            else:
                served = st.rule_served.get(name, 0)
            st.stats["by_rule"][name] = st.stats["by_rule"].get(name, 0) + 1
            st.stats["by_provider"][req.provider] = st.stats["by_provider"].get(req.provider, 0) + 1
            st.stats["last_model"] = req.model
            st.stats["last_rule"] = name
            if st.record.maxlen:
                st.record.append({
                    "id": self._rid, "time": round(time.time(), 3), "method": self.command,
                    "path": path, "provider": req.provider, "model": req.model,
                    "stream": req.stream, "rule": name,
                    "fault": (fault[0] if fault and fault[0] != "status" else (str(fault[1]) if fault else None)),
                    "had_key": had_key,
                    "headers": {k.lower(): v for k, v in self.headers.items()
                                if k.lower() in ("content-type", "user-agent", "anthropic-version",
                                                 "anthropic-beta", "accept", "openai-organization",
                                                 "x-stainless-retry-count", "traceparent", "tracestate")
                                or k.lower().startswith("x-mock-")},
                    "body": req.body,
                })
        kind = None
        if fault is not None:
            kind = fault[0] if fault[0] != "status" else str(fault[1])
            st.bump("faults_injected")
            st.bump("faults_by_kind", kind)

        # ---- reply selection (sequence support)
        replies = rule.get("replies")
        if replies:
            idx = served if rule.get("cycle", True) else min(served, len(replies) - 1)
            reply = replies[idx % len(replies)]
        else:
            reply = rule.get("reply") or {}

        # ---- timing
        latency = self._hdr_int("X-Mock-Latency-Ms", rule.get("latency_ms", st.args.latency_ms))
        token_delay = self._hdr_int("X-Mock-Token-Delay-Ms", rule.get("token_delay_ms", st.args.token_delay_ms))
        if latency and latency > 0:
            st.shutdown.wait(latency / 1000.0)

        # ---- HTTP-status faults
        if fault and fault[0] == "status":
            status = fault[1]
            extra = []
            msg = "Mock fault injected: HTTP %d" % status
            if status == 429:
                ra = self._hdr_int("X-Mock-Retry-After", rule.get("retry_after", 1))
                extra.append(("Retry-After", str(ra)))
                msg = "Rate limit reached (mock). Please try again in %ss." % ra
            elif status == 500:
                msg = ("The server had an error while processing your request. Sorry about that!"
                       if req.provider == "openai" else "Internal server error")
            elif status == 529:
                msg = "Overloaded"
            return self._error(status, msg, extra=extra)

        # ---- a recorded stream, replayed as it is
        if "sse" in reply and req.stream:
            st.bump("streams_started")
            self._raw_sse(reply["sse"])
            st.bump("streams_completed")
            return

        fkind = fault[0] if fault else None
        if fkind == "malformed_sse" and not req.stream:
            fkind = "invalid_json"
        plan = build_plan(st, req, rule, reply, fkind)
        opts = {
            "token_delay": max(0, token_delay or 0) / 1000.0,
            "fault": fkind,
            "hang_ms": max(0, min(MAX_HANG_MS, self._hdr_int("X-Mock-Hang-Ms", rule.get("hang_ms", MAX_HANG_MS)))),
            "hang_headers": rule.get("hang_headers", req.stream),
            "after": self._hdr_int("X-Mock-Drop-After-Tokens",
                                   rule.get("drop_after_tokens", rule.get("fault_after_tokens", 2))),
            "drop_mode": (self.headers.get("X-Mock-Drop-Mode") or rule.get("drop_mode", "rst")).lower(),
        }
        if self.headers.get("X-Mock-Hang-Headers") is not None:
            opts["hang_headers"] = self.headers.get("X-Mock-Hang-Headers").lower() in ("1", "true", "yes")

        if fkind == "hang" and not opts["hang_headers"]:
            st.shutdown.wait(opts["hang_ms"] / 1000.0)
            self._abort("fin")

        if req.stream:
            st.bump("streams_started")
            if req.provider == "openai":
                self._openai_stream(req, plan, opts)
            else:
                self._anthropic_stream(req, plan, opts)
            st.bump("streams_completed")
        else:
            raw = {}
            if req.provider == "openai":
                obj = self._openai_body(req, plan)
            else:
                obj = self._anthropic_body(req, plan, raw)
            body = dumps(obj)
            for placeholder, text in raw.items():   # Anthropic tool input that is not JSON
                body = body.replace(placeholder, text)
            if fkind == "invalid_json" and not plan.used_broken:
                body = body[:max(1, len(body) * 2 // 3)]
            data = body.encode("utf-8")
            if fkind in ("hang", "drop"):
                self._headers(200, [("Content-Type", "application/json"),
                                    ("Content-Length", str(len(data)))] + self._request_id_headers())
                if fkind == "hang":
                    st.shutdown.wait(opts["hang_ms"] / 1000.0)
                else:
                    self._write(data[:len(data) // 2])
                    time.sleep(0.05)
                self._abort(opts["drop_mode"] if fkind == "drop" else "fin")
            self._send_body(200, data)

    # ---------------- recorded streams
    def _raw_sse(self, events):
        """Send recorded SSE events as they are: a string is one data field
        (sent verbatim, so it may hold escapes such as \\u0000 or broken
        JSON), an object {"event": name, "data": string or JSON value} adds
        an event line, and {"comment": text} sends a ": text" line."""
        self._headers(200, [("Content-Type", "text/event-stream; charset=utf-8"),
                            ("Cache-Control", "no-cache"), ("Transfer-Encoding", "chunked")]
                      + self._request_id_headers())
        for ev in events:
            if isinstance(ev, str):
                self._chunk("data: " + ev + "\n\n")
            elif "comment" in ev:
                self._chunk(": " + ev["comment"] + "\n\n")
            else:
                data = ev.get("data", "")
                data = data if isinstance(data, str) else dumps(data)
                head = ("event: " + ev["event"] + "\n") if ev.get("event") else ""
                self._chunk(head + "data: " + data + "\n\n")
        self._end_chunks()

    # ---------------- OpenAI wire format
    def _openai_body(self, req, plan):
        msg = {"role": "assistant", "content": None if plan.tool_calls and not plan.pieces else plan.text,
               "refusal": None}
        if plan.tool_calls:
            msg["tool_calls"] = [{"id": t["id"], "type": "function",
                                  "function": {"name": t["name"], "arguments": t["args"]}}
                                 for t in plan.tool_calls]
        return {
            "id": "chatcmpl-mock%06d" % self.state.next_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": plan.model,
            "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": plan.finish}],
            "usage": {"prompt_tokens": plan.prompt_tokens, "completion_tokens": plan.completion_tokens,
                      "total_tokens": plan.prompt_tokens + plan.completion_tokens},
            "system_fingerprint": "fp_mock",
        }

    def _openai_stream(self, req, plan, opts):
        cid = "chatcmpl-mock%06d" % self.state.next_id()
        created = int(time.time())
        fault = opts["fault"]
        delay = opts["token_delay"]

        def chunk(delta, finish=None, choices=True):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created,
                   "model": plan.model, "system_fingerprint": "fp_mock",
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if req.include_usage:
                obj["usage"] = None
            return obj

        def send(obj):
            self._chunk("data: " + dumps(obj) + "\n\n")

        self._headers(200, [("Content-Type", "text/event-stream; charset=utf-8"),
                            ("Cache-Control", "no-cache"), ("Transfer-Encoding", "chunked")]
                      + self._request_id_headers())
        first = {"role": "assistant", "content": "" if plan.pieces or not plan.tool_calls else None,
                 "refusal": None}
        send(chunk(first))
        if fault == "hang":
            self.state.shutdown.wait(opts["hang_ms"] / 1000.0)
            self._abort("fin")

        n = 0
        fired = False
        sse_fault = fault in ("drop", "malformed_sse", "stream_error") or (
            fault == "invalid_json" and not plan.used_broken)

        def tick(final=False):
            nonlocal n, fired
            n += 1
            if sse_fault and not fired and (n > opts["after"] or final):
                fired = True
                if fault == "drop":
                    time.sleep(0.05)
                    self._abort(opts["drop_mode"])
                if fault in ("malformed_sse", "invalid_json"):
                    self._chunk('data: {"id":"%s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"oops\n\n' % cid)
                elif fault == "stream_error":
                    self._chunk("data: " + dumps({"error": {"message": "The server had an error while processing your request (mock stream_error).",
                                                            "type": "server_error", "param": None, "code": None}}) + "\n\n")
                    self._end_chunks()
                    raise StreamDone()
            if delay and n > 1:
                time.sleep(delay)

        for p in plan.pieces:
            tick()
            send(chunk({"content": p}))
        for i, t in enumerate(plan.tool_calls):
            tick()
            send(chunk({"tool_calls": [{"index": i, "id": t["id"], "type": "function",
                                        "function": {"name": t["name"], "arguments": ""}}]}))
            for p in t["pieces"]:
                tick()
                send(chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}))
        tick(final=True)
        send(chunk({}, finish=plan.finish))
        if req.include_usage:
            send({"id": cid, "object": "chat.completion.chunk", "created": created, "model": plan.model,
                  "system_fingerprint": "fp_mock", "choices": [],
                  "usage": {"prompt_tokens": plan.prompt_tokens, "completion_tokens": plan.completion_tokens,
                            "total_tokens": plan.prompt_tokens + plan.completion_tokens}})
        self._chunk("data: [DONE]\n\n")
        self._end_chunks()

    # ---------------- Anthropic wire format
    def _anthropic_blocks(self, plan, raw):
        blocks = []
        if plan.pieces or not plan.tool_calls:
            blocks.append({"type": "text", "text": plan.text})
        for i, t in enumerate(plan.tool_calls):
            try:
                inp = json.loads(t["args"]) if t["args"] else {}
            except json.JSONDecodeError:
                # invalid_json / json_text: splice the broken text in verbatim later
                inp = "@@MOCK_RAW_INPUT_%d@@" % i
                raw[dumps(inp)] = t["args"]
            blocks.append({"type": "tool_use", "id": t["id"], "name": t["name"], "input": inp})
        return blocks

    def _anthropic_body(self, req, plan, raw):
        return {
            "id": "msg_mock%06d" % self.state.next_id(),
            "type": "message",
            "role": "assistant",
            "model": plan.model,
            "content": self._anthropic_blocks(plan, raw),
            "stop_reason": FINISH_TO_ANTHROPIC.get(plan.finish, plan.finish),
            "stop_sequence": None,
            "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": plan.completion_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }

    def _anthropic_stream(self, req, plan, opts):
        mid = "msg_mock%06d" % self.state.next_id()
        fault = opts["fault"]
        delay = opts["token_delay"]

        def send(event, obj):
            self._chunk("event: %s\ndata: %s\n\n" % (event, dumps(obj)))

        self._headers(200, [("Content-Type", "text/event-stream; charset=utf-8"),
                            ("Cache-Control", "no-cache"), ("Transfer-Encoding", "chunked")]
                      + self._request_id_headers())
        send("message_start", {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": plan.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})
        if fault == "hang":
            self.state.shutdown.wait(opts["hang_ms"] / 1000.0)
            self._abort("fin")

        n = 0
        index = 0
        pinged = False

        def ping_once():
            nonlocal pinged
            if not pinged:
                pinged = True
                send("ping", {"type": "ping"})

        fired = False
        sse_fault = fault in ("drop", "malformed_sse", "stream_error") or (
            fault == "invalid_json" and not plan.used_broken)

        def tick(final=False):
            nonlocal n, fired
            n += 1
            if sse_fault and not fired and (n > opts["after"] or final):
                fired = True
                if fault == "drop":
                    time.sleep(0.05)
                    self._abort(opts["drop_mode"])
                if fault in ("malformed_sse", "invalid_json"):
                    self._chunk('event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":"oops\n\n' % index)
                elif fault == "stream_error":
                    send("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded (mock stream_error)"}})
                    self._end_chunks()
                    raise StreamDone()
            if delay and n > 1:
                time.sleep(delay)

        if plan.pieces or not plan.tool_calls:
            send("content_block_start", {"type": "content_block_start", "index": index,
                                         "content_block": {"type": "text", "text": ""}})
            ping_once()
            for p in plan.pieces:
                tick()
                send("content_block_delta", {"type": "content_block_delta", "index": index,
                                             "delta": {"type": "text_delta", "text": p}})
            send("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        for t in plan.tool_calls:
            send("content_block_start", {"type": "content_block_start", "index": index,
                                         "content_block": {"type": "tool_use", "id": t["id"],
                                                           "name": t["name"], "input": {}}})
            ping_once()
            send("content_block_delta", {"type": "content_block_delta", "index": index,
                                         "delta": {"type": "input_json_delta", "partial_json": ""}})
            for p in t["pieces"]:
                tick()
                send("content_block_delta", {"type": "content_block_delta", "index": index,
                                             "delta": {"type": "input_json_delta", "partial_json": p}})
            send("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        tick(final=True)
        send("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": FINISH_TO_ANTHROPIC.get(plan.finish, plan.finish),
                                         "stop_sequence": None},
                               "usage": {"output_tokens": plan.completion_tokens}})
        send("message_stop", {"type": "message_stop"})
        self._end_chunks()


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------

class MockServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    block_on_close = False

    def server_bind(self):
        # skip HTTPServer.server_bind's socket.getfqdn() (slow without DNS)
        import socketserver
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        # Connection resets etc. are routine for a fault-injecting server.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, socket.timeout, OSError)):
            return
        super().handle_error(request, client_address)


def raise_nofile_limit():
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 65536
        want = min(want, 65536)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError):
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mock OpenAI/Anthropic LLM server for tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    ap.add_argument("--script", help="JSON rules file (default: built-in script)")
    ap.add_argument("--latency-ms", type=int, default=0, help="delay before the response starts")
    ap.add_argument("--token-delay-ms", type=int, default=0, help="delay between streamed deltas")
    ap.add_argument("--strict", action="store_true", help="reject requests the real APIs would reject")
    ap.add_argument("--record", type=int, default=200, help="how many requests GET /requests keeps")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr (never headers)")
    args = ap.parse_args(argv)

    try:
        script = load_script(args.script)
    except (OSError, ScriptError) as e:
        sys.stderr.write("mock_llm: %s\n" % e)
        return 2

    raise_nofile_limit()
    threading.stack_size(1 << 20)   # 1000s of handler threads stay cheap
    state = State(script, args)
    try:
        server = MockServer((args.host, args.port), Handler)
    except OSError as e:
        sys.stderr.write("mock_llm: cannot listen on %s:%d: %s\n" % (args.host, args.port, e))
        return 1
    server.state = state

    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)

    host, port = server.server_address[:2]
    sys.stdout.write("listening on %s:%d\n" % (host, port))
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        state.shutdown.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
