// Wire-format proof for mock_llm.py: drive it with the OFFICIAL OpenAI and
// Anthropic Node SDKs and check that they understand every reply.
// Prints TAP; exits non-zero on failure.  Works on Node 18 and 20.
//
//   node test/mock_llm/sdk_test/wire_test.mjs      (after npm ci in sdk_test)
//   PYTHON=/usr/bin/python3 node ...              (python interpreter override)

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const here = path.dirname(fileURLToPath(import.meta.url));
const MOCK = path.join(here, '..', 'mock_llm.py');
const SCRIPT = path.join(here, '..', 'scripts', 'wire_test.json');
const PYTHON = process.env.PYTHON || 'python3';
const KEY = 'sdk-wire-test-key';

const HELLO = 'Hello from the mock! Streaming works, token by token.';
const WEATHER_ARGS = { city: 'Paris', unit: 'celsius', days: [1, 2, 3], note: 'naïve "quoted" ✓' };
const ANALYSIS = {
  summary: 'Sales rose 20% quarter over quarter.',
  chart_data: [{ label: 'Q1', value: 100 }, { label: 'Q2', value: 120 }],
};
const ANALYSIS_SCHEMA = {
  type: 'object',
  properties: {
    summary: { type: 'string' },
    chart_data: {
      type: 'array',
      items: {
        type: 'object',
        properties: { label: { type: 'string' }, value: { type: 'number' } },
        required: ['label', 'value'],
        additionalProperties: false,
      },
    },
  },
  required: ['summary', 'chart_data'],
  additionalProperties: false,
};
const OA_WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
const AN_WEATHER = {
  name: 'get_weather',
  description: 'Current weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

// ------------------------------------------------------------------ TAP
let n = 0;
let failed = 0;
async function test(name, fn) {
  n += 1;
  try {
    await fn();
    console.log(`ok ${n} - ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`not ok ${n} - ${name}`);
    for (const line of String((err && err.stack) || err).split('\n').slice(0, 20)) console.log(`#   ${line}`);
  }
}

async function expectError(promiseFn, Klass) {
  try {
    await promiseFn();
  } catch (err) {
    assert.ok(err instanceof Klass, `expected ${Klass.name}, got ${err && err.constructor && err.constructor.name}: ${err}`);
    return err;
  }
  assert.fail(`expected ${Klass.name}, but the call succeeded`);
}

// ------------------------------------------------------------------ mock process
function startMock() {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [MOCK, '--port', '0', '--script', SCRIPT], {
      env: { ...process.env, MOCK_LLM_REQUIRE_KEY: KEY },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`mock did not start: ${out} ${err}`)), 15000);
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => reject(new Error(`mock exited early (${code}): ${err}`)));
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on ([\d.]+):(\d+)\n/);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve({ child, port: Number(m[2]), banner: m[0].trim() });
      }
    });
  });
}

function control(port, method, p) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, method, path: p }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve(body ? JSON.parse(body) : null));
    });
    r.on('error', reject);
    r.end();
  });
}

// ------------------------------------------------------------------ main
const watchdog = setTimeout(() => {
  console.log('Bail out! wire test took longer than 180 s');
  process.exit(1);
}, 180000);
watchdog.unref();

const pkgVersion = (name) =>
  JSON.parse(readFileSync(path.join(here, 'node_modules', name, 'package.json'), 'utf8')).version;
const oaVersion = pkgVersion('openai');
const anVersion = pkgVersion('@anthropic-ai/sdk');
console.log(`# node ${process.version}, openai ${oaVersion}, @anthropic-ai/sdk ${anVersion}`);

let mock;
try {
  mock = await startMock();
} catch (err) {
  console.log(`Bail out! ${err.message}`);
  process.exit(1);
}
const { port } = mock;
console.log(`# mock ${mock.banner}`);

// Both SDK versions use node-fetch@2 with a keep-alive agent.  On Node 18
// (Debian 12's 18.20.4 at least) node-fetch's chunked "bad ending" detector
// misfires on every streamed response read from a keep-alive socket and
// throws "Premature close" -- reproducible with a plain node:http server too,
// so it is a client bug (node-fetch#1767), not a wire-format problem.  On
// Node < 20 the SDKs therefore get a non-keep-alive agent.  SDK_KEEPALIVE=1/0
// forces either way.
const nodeMajor = Number(process.versions.node.split('.')[0]);
const keepAlive = process.env.SDK_KEEPALIVE ? process.env.SDK_KEEPALIVE !== '0' : nodeMajor >= 20;
const httpAgent = keepAlive ? undefined : new http.Agent({ keepAlive: false });
console.log(`# SDK keep-alive ${keepAlive ? 'on (SDK default agent)' : 'off (plain http.Agent)'}${process.env.SDK_KEEPALIVE ? ' [SDK_KEEPALIVE]' : ''}`);
const clientOpts = (extra) => ({ apiKey: KEY, maxRetries: 0, timeout: 20000, httpAgent, ...extra });
const oa = new OpenAI(clientOpts({ baseURL: `http://127.0.0.1:${port}/v1` }));
const an = new Anthropic(clientOpts({ baseURL: `http://127.0.0.1:${port}` }));
const user = (content) => [{ role: 'user', content }];

try {
  // ================================================================ OpenAI
  await test('openai: non-streaming text', async () => {
    const r = await oa.chat.completions.create({ model: 'mock-gpt', messages: user('please say hello') });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, HELLO);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  });

  await test('openai: streaming text, concatenated deltas equal the scripted text, usage chunk', async () => {
    const stream = await oa.chat.completions.create({
      model: 'mock-gpt', messages: user('please say hello'), stream: true, stream_options: { include_usage: true },
    });
    let text = '';
    let deltas = 0;
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (c && c.delta.content) { text += c.delta.content; deltas += 1; }
      if (c && c.finish_reason) finish = c.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, HELLO);
    assert.equal(deltas, 12);
    assert.equal(finish, 'stop');
    assert.equal(usage.completion_tokens, 12);
  });

  await test('openai: streaming helper (beta.chat.completions.stream) finalContent', async () => {
    const s = oa.beta.chat.completions.stream({ model: 'mock-gpt', messages: user('please say hello') });
    let viaEvents = '';
    s.on('content', (delta) => { viaEvents += delta; });
    assert.equal(await s.finalContent(), HELLO);
    assert.equal(viaEvents, HELLO);
  });

  await test('openai: streaming tool calls, assembled arguments parse to the scripted object', async () => {
    const stream = await oa.chat.completions.create({
      model: 'mock-gpt', messages: user('what is the weather in Paris?'), tools: [OA_WEATHER], stream: true,
    });
    const calls = [];
    let argDeltas = 0;
    let finish = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (!c) continue;
      for (const tc of c.delta.tool_calls || []) {
        calls[tc.index] ??= { id: '', name: '', args: '' };
        if (tc.id) calls[tc.index].id = tc.id;
        if (tc.function?.name) calls[tc.index].name = tc.function.name;
        if (tc.function?.arguments) { calls[tc.index].args += tc.function.arguments; argDeltas += 1; }
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
    assert.equal(calls.length, 1);
    assert.equal(calls[0].name, 'get_weather');
    assert.match(calls[0].id, /^call_/);
    assert.ok(argDeltas >= 3, `arguments split across ${argDeltas} deltas`);
    assert.deepEqual(JSON.parse(calls[0].args), WEATHER_ARGS);
    assert.equal(finish, 'tool_calls');
  });

  await test('openai: streaming helper assembles tool calls (finalChatCompletion)', async () => {
    const s = oa.beta.chat.completions.stream({ model: 'mock-gpt', messages: user('weather?'), tools: [OA_WEATHER] });
    const final = await s.finalChatCompletion();
    const tc = final.choices[0].message.tool_calls[0];
    assert.equal(tc.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(tc.function.arguments), WEATHER_ARGS);
  });

  await test('openai: parallel tool calls + text in one stream', async () => {
    const s = oa.beta.chat.completions.stream({
      model: 'mock-gpt', messages: user('use both tools'),
      tools: [OA_WEATHER, { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } }],
    });
    const m = (await s.finalChatCompletion()).choices[0].message;
    assert.equal(m.content, 'Calling two tools.');
    assert.deepEqual(m.tool_calls.map((t) => [t.function.name, JSON.parse(t.function.arguments)]),
      [['get_weather', { a: 1 }], ['get_time', { tz: 'UTC' }]]);
  });

  const responseFormat = { type: 'json_schema', json_schema: { name: 'analysis', strict: true, schema: ANALYSIS_SCHEMA } };

  await test('openai: structured output (beta.chat.completions.parse)', async () => {
    const r = await oa.beta.chat.completions.parse({
      model: 'mock-gpt', messages: user('analyze quarterly sales'), response_format: responseFormat,
    });
    assert.deepEqual(r.choices[0].message.parsed, ANALYSIS);
  });

  await test('openai: structured output streamed in pieces', async () => {
    const stream = await oa.chat.completions.create({
      model: 'mock-gpt', messages: user('analyze quarterly sales'), response_format: responseFormat, stream: true,
    });
    let text = '';
    let pieces = 0;
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta?.content;
      if (d) { text += d; pieces += 1; }
    }
    assert.ok(pieces > 5, `only ${pieces} pieces`);
    assert.deepEqual(JSON.parse(text), ANALYSIS);
  });

  await test('openai: 429 -> RateLimitError with Retry-After surfaced', async () => {
    const err = await expectError(() => oa.chat.completions.create({ model: 'mock-gpt', messages: user('rate me') }),
      OpenAI.RateLimitError);
    assert.equal(err.status, 429);
    assert.equal(err.headers['retry-after'], '3');
    assert.equal(err.code, 'rate_limit_exceeded');
  });

  await test('openai: 500 -> InternalServerError', async () => {
    const err = await expectError(() => oa.chat.completions.create(
      { model: 'mock-gpt', messages: user('x') }, { headers: { 'X-Mock-Fault': '500' } }), OpenAI.InternalServerError);
    assert.equal(err.status, 500);
    assert.equal(err.type, 'server_error');
  });

  await test('openai: wrong key -> AuthenticationError', async () => {
    const bad = new OpenAI(clientOpts({ apiKey: 'nope', baseURL: `http://127.0.0.1:${port}/v1` }));
    const err = await expectError(() => bad.chat.completions.create({ model: 'm', messages: user('x') }),
      OpenAI.AuthenticationError);
    assert.equal(err.code, 'invalid_api_key');
  });

  await test('openai: SDK retries ride through fail_times (500, 500, then 200)', async () => {
    await control(port, 'POST', '/reset');
    const retrying = new OpenAI(clientOpts({ baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 2 }));
    const r = await retrying.chat.completions.create({ model: 'mock-gpt', messages: user('flaky call') });
    assert.equal(r.choices[0].message.content, 'Recovered after retries.');
    const st = await control(port, 'GET', '/stats');
    assert.equal(st.by_rule.flaky, 3);
    assert.equal(st.faults_injected, 2);
  });

  await test('openai: connection dropped mid-stream surfaces as an error', async () => {
    const stream = await oa.chat.completions.create(
      { model: 'mock-gpt', messages: user('please say hello'), stream: true }, { headers: { 'X-Mock-Fault': 'drop' } });
    let text = '';
    await assert.rejects(async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content || '';
    });
    assert.equal(text, 'Hello from');
  });

  await test('openai: models.list', async () => {
    const ids = [];
    for await (const m of oa.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['mock-gpt', 'mock-claude']);
  });

  // ================================================================ Anthropic
  await test('anthropic: non-streaming text', async () => {
    const m = await an.messages.create({ model: 'mock-claude', max_tokens: 256, messages: user('please say hello') });
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.deepEqual(m.content, [{ type: 'text', text: HELLO }]);
    assert.equal(m.stop_reason, 'end_turn');
    assert.equal(m.usage.output_tokens, 12);
  });

  await test('anthropic: streaming text (messages.stream), concatenated deltas equal the scripted text', async () => {
    const s = an.messages.stream({ model: 'mock-claude', max_tokens: 256, messages: user('please say hello') });
    let text = '';
    s.on('text', (t) => { text += t; });
    const final = await s.finalMessage();
    assert.equal(text, HELLO);
    assert.equal(final.content[0].text, HELLO);
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.usage.output_tokens, 12);
  });

  await test('anthropic: raw stream event sequence', async () => {
    const stream = await an.messages.create({ model: 'mock-claude', max_tokens: 256, messages: user('please say hello'), stream: true });
    const types = [];
    for await (const ev of stream) types.push(ev.type);
    assert.deepEqual(types, ['message_start', 'content_block_start',
      ...Array(12).fill('content_block_delta'), 'content_block_stop', 'message_delta', 'message_stop']);
  });

  await test('anthropic: streaming tool_use, input_json_delta assembles to the scripted input', async () => {
    const s = an.messages.stream({ model: 'mock-claude', max_tokens: 256, messages: user('weather?'), tools: [AN_WEATHER] });
    let partials = 0;
    s.on('inputJson', () => { partials += 1; });
    const final = await s.finalMessage();
    assert.equal(final.stop_reason, 'tool_use');
    const block = final.content.find((b) => b.type === 'tool_use');
    assert.equal(block.name, 'get_weather');
    assert.match(block.id, /^toolu_/);
    assert.deepEqual(block.input, WEATHER_ARGS);
    assert.ok(partials >= 3, `only ${partials} partial_json deltas`);
  });

  const forced = { tools: [{ name: 'emit_analysis', description: 'Return the analysis', input_schema: ANALYSIS_SCHEMA }],
    tool_choice: { type: 'tool', name: 'emit_analysis' } };

  await test('anthropic: structured output via tool forcing (non-streaming)', async () => {
    const m = await an.messages.create({ model: 'mock-claude', max_tokens: 512, messages: user('analyse sales'), ...forced });
    assert.equal(m.content.length, 1);
    assert.equal(m.content[0].type, 'tool_use');
    assert.equal(m.content[0].name, 'emit_analysis');
    assert.deepEqual(m.content[0].input, ANALYSIS);
  });

  await test('anthropic: structured output via tool forcing (streaming)', async () => {
    const s = an.messages.stream({ model: 'mock-claude', max_tokens: 512, messages: user('analyse sales'), ...forced });
    const final = await s.finalMessage();
    assert.deepEqual(final.content[0].input, ANALYSIS);
  });

  await test('anthropic: 429 -> RateLimitError with Retry-After surfaced', async () => {
    const err = await expectError(() => an.messages.create({ model: 'mock-claude', max_tokens: 10, messages: user('rate me') }),
      Anthropic.RateLimitError);
    assert.equal(err.status, 429);
    assert.equal(err.headers['retry-after'], '3');
    assert.equal(err.error.error.type, 'rate_limit_error');
  });

  await test('anthropic: 500 -> InternalServerError', async () => {
    const err = await expectError(() => an.messages.create(
      { model: 'mock-claude', max_tokens: 10, messages: user('x') }, { headers: { 'X-Mock-Fault': '500' } }),
    Anthropic.InternalServerError);
    assert.equal(err.status, 500);
    assert.equal(err.error.error.type, 'api_error');
  });

  await test('anthropic: wrong key -> AuthenticationError', async () => {
    const bad = new Anthropic(clientOpts({ apiKey: 'nope', baseURL: `http://127.0.0.1:${port}` }));
    await expectError(() => bad.messages.create({ model: 'm', max_tokens: 5, messages: user('x') }), Anthropic.AuthenticationError);
  });

  await test('anthropic: stream_error event surfaces as an APIError', async () => {
    const s = an.messages.stream({ model: 'mock-claude', max_tokens: 256, messages: user('please say hello') },
      { headers: { 'X-Mock-Fault': 'stream_error' } });
    await assert.rejects(() => s.finalMessage(), (err) => err instanceof Anthropic.APIError && /overloaded/i.test(String(err.message)));
  });

  await test('anthropic: models.list', async () => {
    const ids = [];
    for await (const m of an.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['mock-gpt', 'mock-claude']);
  });

  await test('mock: /stats saw keys and concurrency', async () => {
    const st = await control(port, 'GET', '/stats');
    assert.equal(st.last_request_had_key, true);
    assert.equal(st.require_key, true);
    assert.ok(st.requests_total > 0);
    assert.ok(st.concurrent_max >= 1);
  });
} finally {
  mock.child.kill('SIGTERM');
}

console.log(`1..${n}`);
if (failed) console.log(`# ${failed} of ${n} tests failed`);
process.exitCode = failed ? 1 : 0;
