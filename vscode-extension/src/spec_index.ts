/**
 * What the editor knows about each spec ID: the server's requirements (title, EARS
 * statement, priority) and trace links, plus headings found in the workspace's Markdown
 * (where TASK/ADR/REQ IDs are defined). Hover, CodeLens and go-to-definition read it.
 * Pure: no vscode import.
 */

import { DIMENSIONS, Gap, TraceEntry, TraceResponse } from "./tree";

export interface Requirement {
  id: string;
  title: string;
  file: string;
  line: number;
  priority?: string | null;
  status?: string | null;
  pattern?: string | null;
  statement?: string | null;
}

export interface Definition {
  id: string;
  title: string;
  path: string; // relative to the workspace root
  line: number; // 1-based
}

export class SpecIndex {
  requirements = new Map<string, Requirement>();
  entries = new Map<string, TraceEntry>();
  gaps = new Map<string, Gap>();
  definitions = new Map<string, Definition>();
  /** TASK/ADR ids → the requirements that link them (from trace links' `via`). */
  via = new Map<string, { requirement: string; text: string; path: string; line: number }[]>();

  setServer(requirements: Requirement[], trace: TraceResponse | undefined): void {
    this.requirements = new Map(requirements.map((r) => [r.id, r]));
    this.entries = new Map(Object.entries(trace?.matrix.entries ?? {}));
    this.gaps = new Map((trace?.gaps ?? []).filter((g) => g.kind === "missing").map((g) => [g.id, g]));
    this.via = new Map();
    for (const entry of this.entries.values()) {
      for (const [dim] of DIMENSIONS) {
        for (const l of entry[dim] as TraceEntry["tasks"]) {
          if (/^(TASK|TSK|ADR|DES|DESIGN)-/.test(l.via)) {
            const list = this.via.get(l.via) ?? [];
            list.push({ requirement: entry.id, text: l.text, path: l.path, line: l.line ?? 1 });
            this.via.set(l.via, list);
          }
        }
      }
    }
  }

  setDefinitions(path: string, found: { id: string; title: string; line: number }[]): void {
    for (const [id, d] of this.definitions) if (d.path === path) this.definitions.delete(id);
    for (const h of found) this.definitions.set(h.id, { id: h.id, title: h.title, path, line: h.line + 1 });
  }

  definition(id: string): Definition | undefined {
    const r = this.requirements.get(id);
    if (r) return { id, title: r.title, path: r.file, line: r.line };
    return this.definitions.get(id);
  }

  title(id: string): string | undefined {
    return this.requirements.get(id)?.title ?? this.definitions.get(id)?.title ?? this.via.get(id)?.[0]?.text;
  }

  /** "design 1 · tasks 2 · code 1 · tests 1", or the gap. */
  linkSummary(id: string): string | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    const parts = DIMENSIONS.map(([dim, name]) => `${name.toLowerCase()} ${(entry[dim] as unknown[]).length}`);
    const gap = this.gaps.get(id);
    return parts.join(" · ") + (gap ? ` · gap: ${(gap.missing ?? []).join(", ")}` : "");
  }

  /** Markdown for a hover on `id`; undefined when nothing is known about it. */
  hover(id: string): string | undefined {
    const r = this.requirements.get(id);
    const lines: string[] = [];
    if (r) {
      lines.push(`**${id}** — ${r.title}`);
      if (r.statement) lines.push("", `> ${r.statement}`);
      const meta = [r.status && `Status ${r.status}`, r.priority && `Priority ${r.priority}`, r.pattern && `Pattern ${r.pattern}`].filter(Boolean);
      if (meta.length) lines.push("", meta.join(" · "));
      const summary = this.linkSummary(id);
      if (summary) lines.push("", `Links: ${summary}`);
      lines.push("", `Defined in \`${r.file}:${r.line}\``);
      return lines.join("\n");
    }
    const d = this.definitions.get(id);
    const used = this.via.get(id) ?? [];
    if (!d && !used.length) {
      return this.entries.size || this.requirements.size ? `**${id}** — not found in this project's specs` : undefined;
    }
    lines.push(`**${id}** — ${d?.title ?? used[0]?.text ?? ""}`);
    if (used.length) {
      const reqs = [...new Set(used.map((u) => u.requirement))];
      lines.push("", `Traces to ${reqs.map((q) => `${q} (${this.requirements.get(q)?.title ?? ""})`).join(", ")}`);
    }
    if (d) lines.push("", `Defined in \`${d.path}:${d.line}\``);
    return lines.join("\n");
  }
}
