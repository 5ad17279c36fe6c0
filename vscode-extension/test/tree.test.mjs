// Tree building: the trace tree from /sdd/trace, the runs tree, estimates and spend text.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { test } from "node:test";

const require = createRequire(import.meta.url);
const { buildTraceTree, buildRunTree, formatEstimate, formatSpend } = require("../out/tree.js");
const { SpecIndex } = require("../out/spec_index.js");

// The server's answer for tests/sdd/fixtures/auth-project (recorded by the e2e fixtures).
const trace = JSON.parse(readFileSync(new URL("./fixtures/trace.json", import.meta.url), "utf8"));
const requirements = JSON.parse(readFileSync(new URL("./fixtures/requirements.json", import.meta.url), "utf8"));

test("one node per requirement, sorted, with design/tasks/code/tests children", () => {
  const tree = buildTraceTree(trace);
  assert.deepEqual(tree.map((n) => n.label), ["REQ-AUTH-001", "REQ-AUTH-002", "REQ-AUTH-003", "REQ-AUTH-004"]);
  const first = tree[0];
  assert.equal(first.description, "User Login");
  assert.equal(first.icon, "pass");
  assert.deepEqual(first.location, { path: "storage/specs/auth-requirements.md", line: 13 });
  assert.deepEqual(first.children.map((c) => [c.label, c.description]), [
    ["Design", "1"],
    ["Tasks", "2"],
    ["Code", "1"],
    ["Tests", "1"],
  ]);
  const code = first.children[2].children[0];
  assert.equal(code.label, "src/auth/login.py:4");
  assert.deepEqual(code.location, { path: "src/auth/login.py", line: 4 });
  assert.equal(first.children[1].children[0].description, "TASK-001 Create users and sessions tables");
});

test("a requirement with a gap says what is missing", () => {
  const gap = buildTraceTree(trace)[3];
  assert.equal(gap.icon, "warning");
  assert.equal(gap.description, "Session Refresh · gap: design, code, tests");
  assert.deepEqual(gap.children.map((c) => [c.label, c.kind]), [
    ["Design", "missing"],
    ["Tasks", "dimension"],
    ["Code", "missing"],
    ["Tests", "missing"],
  ]);
});

test("the spec index answers hovers, titles and definitions", () => {
  const index = new SpecIndex();
  index.setServer(requirements.requirements, trace);
  index.setDefinitions("storage/tasks/auth-tasks.md", [{ id: "TASK-001", title: "Create users and sessions tables", line: 8 }]);
  const hover = index.hover("REQ-AUTH-001");
  assert.match(hover, /\*\*REQ-AUTH-001\*\* — User Login/);
  assert.match(hover, /WHEN a user submits a valid email and password/);
  assert.match(hover, /Links: design 1 · tasks 2 · code 1 · tests 1/);
  assert.match(index.hover("REQ-AUTH-004"), /gap: design, code, tests/);
  assert.match(index.hover("TASK-001"), /Traces to REQ-AUTH-001 \(User Login\)/);
  assert.match(index.hover("REQ-AUTH-099"), /not found/);
  assert.deepEqual(index.definition("TASK-001"), { id: "TASK-001", title: "Create users and sessions tables", path: "storage/tasks/auth-tasks.md", line: 9 });
  assert.equal(index.definition("REQ-AUTH-002").line, 36);
  assert.equal(new SpecIndex().hover("REQ-AUTH-001"), undefined, "nothing known: no hover");
});

test("runs with steps, costs, written files and approval state", () => {
  const runs = buildRunTree([
    {
      id: "run_1", feature: "export-orders", idea: "Export orders", status: "awaiting_approval", cost: 0.00012,
      estimate: { cost: 0.0005 },
      steps: [
        { name: "requirements", status: "done", model: "gpt-4o-mini", cost: 0.00012, output_path: "storage/specs/export-orders-requirements.md" },
        { name: "design", status: "pending", model: null, cost: 0, output_path: null },
      ],
    },
    { id: "run_0", feature: "old", idea: "x", status: "succeeded", cost: 1.5, steps: [] },
  ]);
  assert.equal(runs[0].label, "export-orders");
  assert.equal(runs[0].description, "awaiting approval · $0.0001 of ~$0.0005");
  assert.equal(runs[0].contextValue, "run.awaiting");
  assert.equal(runs[1].contextValue, "run");
  assert.equal(runs[1].description, "succeeded · $1.50");
  assert.equal(runs[1].icon, "pass");
  assert.deepEqual(runs[0].children.map((s) => s.description), ["done · gpt-4o-mini · $0.0001", "pending"]);
  assert.deepEqual(runs[0].children[0].children[0].location, { path: "storage/specs/export-orders-requirements.md", line: 1 });
});

test("the estimate lists each step and model, then the total", () => {
  const lines = formatEstimate({
    feature: "x",
    steps: [
      { step: "requirements", model: "gpt-4o-mini", input_tokens: 1234, output_tokens: 2000, cost: 0.00138, fits: true },
      { step: "design", model: "gpt-4.1", input_tokens: 3000, output_tokens: 3000, cost: 0.03, fits: false },
    ],
    input_tokens: 4234, output_tokens: 5000, cost: 0.03138, budget: 0.01, within_budget: false,
  });
  assert.deepEqual(lines, [
    "requirements: 1,234 in + 2,000 out tokens on gpt-4o-mini ≈ $0.0014",
    "design: 3,000 in + 3,000 out tokens on gpt-4.1 ≈ $0.0300 (does not fit the context window)",
    "Total: 9,234 tokens ≈ $0.0314",
    "Over the budget of $0.0100",
  ]);
});

test("spend today against the daily quota", () => {
  assert.equal(formatSpend({ cost: 0.5, tokens: 10, cost_per_day: 5, tokens_per_day: null }), "$0.5000 / $5.00 today");
  assert.equal(formatSpend({ cost: 0, tokens: 1200, cost_per_day: null, tokens_per_day: 5000 }), "1,200 / 5,000 tokens today");
  assert.equal(formatSpend({ cost: 0.01, tokens: 1, cost_per_day: null, tokens_per_day: null }), "$0.0100 today (no daily quota)");
  assert.equal(formatSpend({ cost: 0.0000036, tokens: 8, cost_per_day: null, tokens_per_day: null }), "$0.000004 today (no daily quota)");
});
