// Parse Mermaid files with the official mermaid package, headless.
//
// Usage: node mermaid_parse.mjs FILE...
// Prints one line per file, "ok FILE" or "fail FILE: reason", and exits 1
// when any file fails. mermaid.parse() needs a DOM (DOMPurify sanitises
// labels), so a jsdom window is installed as the global one first; no
// browser is involved and nothing is laid out or drawn.
import { readFileSync } from 'node:fs';
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!DOCTYPE html><html><body></body></html>', { pretendToBeVisual: true });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
for (const name of ['DOMParser', 'Element', 'HTMLElement', 'Node', 'navigator']) {
  if (!(name in globalThis)) {
    Object.defineProperty(globalThis, name, { value: dom.window[name], configurable: true, writable: true });
  }
}

const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' });

let failed = 0;
for (const file of process.argv.slice(2)) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
    // parse() throws on a syntax error (suppressErrors is off by default)
    const result = await mermaid.parse(text);
    if (!result || result.diagramType !== 'flowchart-v2') {
      throw new Error(`unexpected diagram type ${result && result.diagramType}`);
    }
    console.log(`ok ${file}`);
  } catch (err) {
    failed++;
    const msg = String((err && err.message) || err).replace(/\s*\n\s*/g, ' | ');
    console.log(`fail ${file}: ${msg}`);
  }
}
process.exit(failed ? 1 : 0);
