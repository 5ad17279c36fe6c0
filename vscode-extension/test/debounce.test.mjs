// Debounce and cancellation: a burst of keystrokes sends one request; a newer keystroke
// aborts the request in flight; answers are cached per prefix.
import assert from "node:assert/strict";
import http from "node:http";
import { createRequire } from "node:module";
import { test } from "node:test";

const require = createRequire(import.meta.url);
const { Latest, Lru } = require("../out/debounce.js");
const { Client } = require("../out/api.js");
const { InlineEngine } = require("../out/inline_core.js");

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

test("only the last of a burst of tickets survives the debounce", async () => {
  const latest = new Latest();
  const tickets = [1, 2, 3, 4, 5].map(() => latest.begin());
  const results = await Promise.all(tickets.map((t) => latest.settle(t, 20)));
  assert.deepEqual(results, [false, false, false, false, true]);
  assert.equal(latest.superseded, 4);
  assert.ok(tickets.slice(0, 4).every((t) => t.cancelled));
});

test("a cancelled ticket's wait ends at once, not after the debounce", async () => {
  const latest = new Latest();
  const t = latest.begin();
  const t0 = Date.now();
  const settled = latest.settle(t, 5000);
  latest.begin();
  assert.equal(await settled, false);
  assert.ok(Date.now() - t0 < 1000);
});

test("the LRU keeps the most recently used", () => {
  const lru = new Lru(2);
  lru.set("a", 1);
  lru.set("b", 2);
  assert.equal(lru.get("a"), 1);
  lru.set("c", 3);
  assert.equal(lru.get("b"), undefined);
  assert.equal(lru.get("a"), 1);
  assert.equal(lru.length, 2);
});

/** A real HTTP server standing in for the gateway's /v1/completions. */
async function gateway(delayMs) {
  const seen = [];
  let aborted = 0;
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const parsed = JSON.parse(body);
      seen.push({ path: req.url, auth: req.headers.authorization, body: parsed });
      const t = setTimeout(() => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ choices: [{ text: `<${parsed.prompt.length}>` }] }));
      }, delayMs);
      res.on("close", () => {
        if (!res.writableEnded) {
          clearTimeout(t);
          aborted += 1;
        }
      });
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { url, seen, aborted: () => aborted, close: () => new Promise((r) => { server.close(r); server.closeAllConnections(); }) };
}

const settings = (debounceMs) => () => ({ debounceMs, model: "musubi/code-completion", maxTokens: 16, snippets: false, project: undefined });

test("typing fast sends one request; the answer is cached per prefix", async () => {
  const gw = await gateway(0);
  const engine = new InlineEngine(new Client(() => ({ url: gw.url, key: "msk_test" })), settings(50));
  const typed = "const total = ";
  const results = [];
  for (let i = 1; i <= typed.length; i++) {
    results.push(engine.suggest({ prefix: typed.slice(0, i), suffix: "", languageId: "typescript", path: "a.ts" }));
    await pause(5);
  }
  const out = await Promise.all(results);
  assert.equal(gw.seen.length, 1, "one request after the burst");
  assert.equal(gw.seen[0].path, "/v1/completions");
  assert.equal(gw.seen[0].auth, "Bearer msk_test");
  assert.ok(gw.seen[0].body.prompt.endsWith(typed));
  assert.deepEqual(out.slice(0, -1), Array(typed.length - 1).fill(""));
  assert.match(out.at(-1), /^<\d+>$/);
  // the same prefix again: from the cache, no request
  const again = await engine.suggest({ prefix: typed, suffix: "", languageId: "typescript", path: "a.ts" });
  assert.equal(again, out.at(-1));
  assert.equal(gw.seen.length, 1);
  await gw.close();
});

test("a keystroke while a request is in flight aborts it", async () => {
  const gw = await gateway(300);
  const engine = new InlineEngine(new Client(() => ({ url: gw.url, key: "k" })), settings(0));
  const first = engine.suggest({ prefix: "a", suffix: "", languageId: "python", path: "a.py" });
  await pause(100);
  const second = engine.suggest({ prefix: "ab", suffix: "", languageId: "python", path: "a.py" });
  assert.equal(await first, "");
  assert.match(await second, /^<\d+>$/);
  assert.equal(engine.sent, 2);
  assert.equal(engine.aborted, 1);
  await pause(50);
  assert.equal(gw.aborted(), 1, "the server saw the first request's connection close");
  await gw.close();
});

test("the editor's cancellation token cancels the request too", async () => {
  const gw = await gateway(300);
  const engine = new InlineEngine(new Client(() => ({ url: gw.url, key: "k" })), settings(0));
  const ctrl = new AbortController();
  const p = engine.suggest({ prefix: "x", suffix: "", languageId: "python", path: "a.py" }, ctrl.signal);
  await pause(50);
  ctrl.abort();
  assert.equal(await p, "");
  assert.equal(engine.aborted, 1);
  await gw.close();
});
