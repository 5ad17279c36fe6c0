/**
 * Spec IDs (REQ-AUTH-001, TASK-1.1, ADR-002, …) as MUSUBI's Python reader parses them
 * (src/musubi/sdd/ids.py): the same regular expression and the same extra rules, so the
 * editor links exactly what `musubi trace` links. Pure: no vscode import.
 */

export const KIND_GROUPS: Record<string, readonly string[]> = {
  requirements: ["REQ", "FR", "NFR"],
  design: ["ADR", "DES", "DESIGN"],
  tasks: ["TASK", "TSK", "T"],
};
export const KINDS: readonly string[] = Object.values(KIND_GROUPS).flat();

const DIST = "[0-9A-HJKMNP-TV-Z]{5}[0-9]";
const SEG = "[A-Z0-9]+";
const KIND = [...KINDS].sort((a, b) => b.length - a.length).join("|");
const SOURCE =
  `(?<![A-Za-z0-9_-])(?<kind>${KIND})-` +
  `(?:(?<scope>${SEG}(?:[.-]${SEG})*?)(?<sep>[.-]))?` +
  `(?<number>\\d{3,}|${DIST}|[A-Z]+\\d+|\\d{1,2})` +
  `(?![A-Za-z0-9_]|[.-][A-Za-z0-9])`;

export interface FoundId {
  id: string;
  kind: string;
  group: "requirements" | "design" | "tasks";
  start: number; // offset in the text searched
  end: number;
}

function valid(number: string, scope: string | undefined): boolean {
  if (/^\d+$/.test(number) && number.length < 3) {
    return scope !== undefined && /^\d+$/.test(scope.split(/[.-]/).pop() ?? "");
  }
  if (!/^\d+$/.test(number) && !new RegExp(`^${DIST}$`).test(number)) {
    return scope !== undefined;
  }
  return true;
}

export function groupOf(kind: string): FoundId["group"] {
  for (const [group, kinds] of Object.entries(KIND_GROUPS)) {
    if (kinds.includes(kind)) return group as FoundId["group"];
  }
  throw new Error(`unknown kind ${kind}`);
}

/** Every ID in `text`, in order. */
export function findIds(text: string): FoundId[] {
  const out: FoundId[] = [];
  for (const m of text.matchAll(new RegExp(SOURCE, "g"))) {
    const g = m.groups ?? {};
    const kind = g.kind ?? "";
    const number = g.number ?? "";
    if (!valid(number, g.scope)) continue;
    const start = m.index ?? 0;
    out.push({ id: m[0], kind, group: groupOf(kind), start, end: start + m[0].length });
  }
  return out;
}

/** The ID under column `col` of `line`, if any. */
export function idAt(line: string, col: number): FoundId | undefined {
  return findIds(line).find((f) => f.start <= col && col <= f.end);
}

/** A whole string read as one ID (undefined when it is not exactly one). */
export function parseId(text: string): FoundId | undefined {
  const found = findIds(text);
  return found.length === 1 && found[0]?.start === 0 && found[0].end === text.length
    ? found[0]
    : undefined;
}

export interface Heading {
  id: string;
  title: string;
  line: number; // 0-based
}

/** `### REQ-AUTH-001: User Login` headings of a Markdown spec: where an ID is defined. */
export function findHeadings(markdown: string): Heading[] {
  const out: Heading[] = [];
  markdown.split(/\r?\n/).forEach((text, line) => {
    const m = /^#{1,6}\s+(.*)$/.exec(text);
    if (!m) return;
    const rest = m[1] ?? "";
    const first = findIds(rest)[0];
    if (!first || first.start !== 0) return;
    const title = rest.slice(first.end).replace(/^\s*[:：\-–—]\s*/, "").trim();
    out.push({ id: first.id, title, line });
  });
  return out;
}
