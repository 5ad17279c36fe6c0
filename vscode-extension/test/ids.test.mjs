// ID parsing: the same IDs MUSUBI's Python reader (src/musubi/sdd/ids.py) accepts.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

const require = createRequire(import.meta.url);
const { findIds, idAt, parseId, findHeadings } = require("../out/ids.js");

test("finds sequential, hierarchical, scoped and distributed IDs with their kinds", () => {
  const text = "see REQ-AUTH-001, TASK-1.1 and ADR-002; NFR-003 and DESIGN-010, REQ-004-N01, REQ-AUTH-K7Q2M4";
  assert.deepEqual(
    findIds(text).map((f) => [f.id, f.kind, f.group]),
    [
      ["REQ-AUTH-001", "REQ", "requirements"],
      ["TASK-1.1", "TASK", "tasks"],
      ["ADR-002", "ADR", "design"],
      ["NFR-003", "NFR", "requirements"],
      ["DESIGN-010", "DESIGN", "design"],
      ["REQ-004-N01", "REQ", "requirements"],
      ["REQ-AUTH-K7Q2M4", "REQ", "requirements"],
    ],
  );
});

test("rejects what the Python reader rejects", () => {
  assert.deepEqual(findIds("REQ-AUTH-02 is a typo; REQ-N01 alone; xREQ-001; REQ-001x; REQ-001-x"), []);
  assert.equal(findIds("test_req_auth_001").length, 0, "test names are matched by the trace scanner, not as IDs");
});

test("the ID under the cursor, with its columns", () => {
  const line = "def login():  # Implements REQ-AUTH-001: create a session";
  const start = line.indexOf("REQ");
  assert.equal(idAt(line, start + 3)?.id, "REQ-AUTH-001");
  assert.equal(idAt(line, start)?.start, start);
  assert.equal(idAt(line, start + 12)?.end, start + 12);
  assert.equal(idAt(line, 2), undefined);
});

test("parseId reads a whole string or nothing", () => {
  assert.equal(parseId("TASK-001")?.id, "TASK-001");
  assert.equal(parseId("TASK-001 x"), undefined);
  assert.equal(parseId("nothing"), undefined);
});

test("headings define IDs with their titles (0-based lines)", () => {
  const md = "# Design\n\n### ADR-001: Stream the CSV\ntext REQ-AUTH-001\n## TASK-002 – Empty export answer\n### Not REQ-AUTH-009 here\n";
  assert.deepEqual(findHeadings(md), [
    { id: "ADR-001", title: "Stream the CSV", line: 2 },
    { id: "TASK-002", title: "Empty export answer", line: 4 },
  ]);
});
