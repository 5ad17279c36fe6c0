// Bad input: each failure is one kind with the action that fixes it, shown once.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import { SseParser } from "../out/sse.js";

const require = createRequire(import.meta.url);
const { fromResponse, FIXES, Once, MusubiError } = require("../out/errors.js");
const { Client } = require("../out/api.js");

test("401, 403 and 429 map to a kind, the server's message and a fix", () => {
  const body = (m) => JSON.stringify({ error: { type: "x", message: m } });
  const wrong = fromResponse(401, body("invalid API key"), null, "http://s");
  assert.equal(wrong.kind, "wrong-key");
  assert.match(wrong.message, /refused the API key \(invalid API key\)/);
  assert.equal(FIXES[wrong.kind].command, "musubi.setApiKey");
  const perm = fromResponse(403, body("permission runs:write needed"), null, "http://s");
  assert.equal(perm.kind, "permission");
  assert.match(perm.message, /runs:write/);
  const quota = fromResponse(429, body("project tokens_per_day exceeded"), "3600", "http://s");
  assert.equal(quota.kind, "quota");
  assert.equal(quota.retryAfter, 3600);
  assert.match(quota.message, /quota reached: project tokens_per_day exceeded\. It resets in 60 min/);
  assert.equal(FIXES.quota.command, "musubi.showSpend");
  assert.equal(fromResponse(500, "oops", null, "s").kind, "request");
});

test("an unreachable server and a missing key are their own kinds", async () => {
  const down = new Client(() => ({ url: "http://127.0.0.1:9", key: "k" }));
  await assert.rejects(down.get("/v1/me"), (e) => e instanceof MusubiError && e.kind === "unreachable" && /127\.0\.0\.1:9 is unreachable/.test(e.message));
  const nokey = new Client(() => ({ url: "http://127.0.0.1:9", key: undefined }));
  await assert.rejects(nokey.get("/v1/me"), (e) => e.kind === "no-key");
  assert.equal(FIXES.unreachable.command, "musubi.openSettings");
});

test("one notification per kind until a request succeeds", () => {
  const once = new Once();
  assert.equal(once.shouldShow("unreachable"), true);
  assert.equal(once.shouldShow("unreachable"), false);
  assert.equal(once.shouldShow("quota"), true);
  once.ok();
  assert.equal(once.shouldShow("unreachable"), true);
});

test("the SSE parser handles split chunks, ids, event names and comments", () => {
  const p = new SseParser();
  assert.deepEqual(p.push("id: 1\nevent: run.cr"), []);
  assert.deepEqual(p.push('eated\ndata: {"seq":1}\n\n: keep-alive\n\nid: 2\r\nevent: step.done\r\ndata: a\r\ndata: b\r\n\r\n'), [
    { id: "1", event: "run.created", data: '{"seq":1}' },
    { id: "2", event: "step.done", data: "a\nb" },
  ]);
});
