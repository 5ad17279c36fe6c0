// Drives the extension's inline engine (vscode-extension/out/inline_core.js, the code the
// editor runs) against a server; prints JSON. Used by bench/vscode_inline.py.
//   node bench/vscode_inline_driver.mjs '{"mode":"latency"|"typing", ...}'
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";

const require = createRequire(import.meta.url);
const { Client } = require("../vscode-extension/out/api.js");
const { InlineEngine } = require("../vscode-extension/out/inline_core.js");
const { buildFimRequest } = require("../vscode-extension/out/fim.js");

const cfg = JSON.parse(process.argv[2]);
const code = "def total(orders):\n    \"\"\"Sum of the orders' amounts (REQ-AUTH-001).\"\"\"\n    return ";
const filler = "sum(order.amount for order in orders if order.paid and not order.refunded) + 0";

function engineFor(url, key, settings) {
  const client = new Client(() => ({ url, key }));
  return { client, engine: new InlineEngine(client, () => settings) };
}

async function latency() {
  // One suggestion per keystroke, waited for: the time from request to text, no debounce.
  const settings = { debounceMs: 0, model: cfg.model, maxTokens: 32, snippets: cfg.snippets, project: cfg.project };
  const { engine } = engineFor(cfg.gateway, cfg.key, settings);
  const direct = new Client(() => ({ url: cfg.direct, key: "sk-direct" }));
  const via = [], straight = [];
  for (let i = 0; i < cfg.keystrokes + 5; i++) {
    const head = cfg.newLine ? `# keystroke ${i}\n` : "";
    const prefix = head + code + filler.slice(0, i % filler.length) + "#".repeat(Math.floor(i / filler.length));
    const input = { prefix, suffix: "\n", languageId: "python", path: "src/shop/orders.py" };
    let t = performance.now();
    const text = await engine.suggest(input);
    const a = performance.now() - t;
    if (!text) throw new Error("no suggestion");
    const body = buildFimRequest({ ...input, model: cfg.upstreamModel, maxTokens: 32 });
    t = performance.now();
    await direct.post("/v1/completions", body);
    const b = performance.now() - t;
    if (i >= 5) { via.push(a); straight.push(b); } // 5 warm-up calls
  }
  return { via, straight, sent: engine.sent };
}

async function typing() {
  // A person typing: gaps between keystrokes drawn from a log-normal around cfg.meanGapMs
  // (seeded), pauses of a second every cfg.pauseEvery keys; the editor asks on every one.
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  const settings = { debounceMs: cfg.debounceMs, model: cfg.model, maxTokens: 32, snippets: false, project: undefined };
  const { client, engine } = engineFor(cfg.gateway, cfg.key, settings);
  const pending = [];
  let shown = 0;
  for (let i = 0; i < cfg.keystrokes; i++) {
    const prefix = code + "x".repeat(i);
    pending.push(engine.suggest({ prefix, suffix: "\n", languageId: "python", path: "a.py" }).then((t) => { if (t) shown += 1; }));
    const gap = (i + 1) % cfg.pauseEvery === 0 ? 1000 : Math.max(20, cfg.meanGapMs * Math.exp(0.5 * gauss() - 0.125));
    await new Promise((r) => setTimeout(r, gap));
  }
  await Promise.all(pending);
  return { keystrokes: cfg.keystrokes, sent: engine.sent, aborted: engine.aborted, shown, http: client.requests };
}

const out = cfg.mode === "latency" ? await latency() : await typing();
console.log(JSON.stringify(out));
