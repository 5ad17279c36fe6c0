// FIM request building: prefix/suffix budgets, snippets as comments, the routed task model.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

const require = createRequire(import.meta.url);
const { buildFimRequest, cleanCompletion, cacheKey, snippetQuery, tail, head, LIMITS } = require("../out/fim.js");

test("a body for /v1/completions on the code-completion task, snippets before the prefix", () => {
  const body = buildFimRequest({
    prefix: "def total(orders):\n    return ",
    suffix: "\n\nprint(total([]))\n",
    languageId: "python",
    path: "src/shop/orders.py",
    snippets: [
      { path: "src/shop/models.py", start: 3, text: "class Order:\n    amount: int\n" },
      { path: "src/shop/orders.py", start: 1, text: "the file itself is skipped" },
    ],
  });
  assert.equal(body.model, "musubi/code-completion");
  assert.equal(body.temperature, 0);
  assert.equal(body.max_tokens, 64);
  assert.equal(
    body.prompt,
    "# Related: src/shop/models.py:3\n# class Order:\n#     amount: int\n# File: src/shop/orders.py\ndef total(orders):\n    return ",
  );
  assert.equal(body.suffix, "\n\nprint(total([]))\n");
});

test("TypeScript snippets use // comments; at most three snippets", () => {
  const snippets = [1, 2, 3, 4].map((i) => ({ path: `a${i}.ts`, start: i, text: `const a${i} = ${i};` }));
  const body = buildFimRequest({ prefix: "x", suffix: "", languageId: "typescript", path: "b.ts", snippets, model: "m", maxTokens: 9 });
  assert.equal((body.prompt.match(/\/\/ Related:/g) ?? []).length, 3);
  assert.ok(!body.prompt.includes("a4.ts"));
  assert.equal(body.model, "m");
  assert.equal(body.max_tokens, 9);
});

test("long prefixes keep their last whole lines; long suffixes their first", () => {
  const lines = Array.from({ length: 2000 }, (_, i) => `line ${i}`).join("\n");
  const t = tail(lines, LIMITS.prefixChars);
  assert.ok(t.length <= LIMITS.prefixChars);
  assert.ok(t.startsWith("line "), t.slice(0, 20));
  assert.ok(t.endsWith("line 1999"));
  const h = head(lines, LIMITS.suffixChars);
  assert.ok(h.length <= LIMITS.suffixChars && h.startsWith("line 0\n") && h.endsWith("\n"));
  const body = buildFimRequest({ prefix: lines, suffix: lines, languageId: "go", path: "x.go" });
  assert.ok(body.prompt.length <= LIMITS.prefixChars + 40);
  assert.ok(body.suffix.length <= LIMITS.suffixChars);
});

test("a completion that only repeats the text after the cursor inserts nothing", () => {
  assert.equal(cleanCompletion("sum(o.amount for o in orders)\n\n", "\n"), "sum(o.amount for o in orders)");
  assert.equal(cleanCompletion("a + b)", ")"), "a + b");
  assert.equal(cleanCompletion(")", ")"), "");
  assert.equal(cleanCompletion("   \n", ""), "");
});

test("cache keys differ by prefix, suffix and model; the snippet query is the last lines", () => {
  const a = buildFimRequest({ prefix: "ab", suffix: "", languageId: "c", path: "x.c" });
  const b = buildFimRequest({ prefix: "abc", suffix: "", languageId: "c", path: "x.c" });
  assert.notEqual(cacheKey(a), cacheKey(b));
  assert.equal(cacheKey(a), cacheKey(buildFimRequest({ prefix: "ab", suffix: "", languageId: "c", path: "x.c" })));
  assert.equal(snippetQuery("a\n\n  b\nc\nd  \nreturn to"), "b\nc\nd");
  assert.equal(snippetQuery("a\nb\nreturn t"), snippetQuery("a\nb\nreturn to"), "same line, same query");
  assert.equal(snippetQuery("only the line typed"), "");
});
