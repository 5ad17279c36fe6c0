/**
 * Tree models of the two views, built from the server's JSON: requirement → design →
 * tasks → code → tests from `/v1/projects/{id}/sdd/trace`, and runs → steps → written
 * files from `/v1/projects/{id}/runs` and `/v1/runs/{id}`. Pure: no vscode import; the
 * view providers only map these nodes onto TreeItems.
 */

export interface Link {
  id: string;
  kind: string;
  path: string;
  line: number | null;
  via: string;
  text: string;
}

export interface TraceEntry {
  id: string;
  title: string;
  file: string;
  line: number;
  design: Link[];
  tasks: Link[];
  code: Link[];
  tests: Link[];
  commits?: Link[];
}

export interface Gap {
  id: string;
  kind: string;
  missing?: string[];
  file?: string | null;
  line?: number | null;
  message: string;
}

export interface TraceResponse {
  matrix: { entries: Record<string, TraceEntry>; orphans?: Link[] };
  gaps: Gap[];
  coverage?: Record<string, unknown>;
}

export type NodeKind = "requirement" | "dimension" | "link" | "missing" | "run" | "step" | "file" | "info";

export interface Node {
  key: string; // stable id for the tree (expansion state survives refreshes)
  kind: NodeKind;
  label: string;
  description?: string;
  tooltip?: string;
  icon?: string; // a codicon name
  location?: { path: string; line: number }; // 1-based line, relative path
  contextValue?: string;
  runId?: string;
  children: Node[];
}

export const DIMENSIONS: readonly (readonly [keyof TraceEntry, string])[] = [
  ["design", "Design"],
  ["tasks", "Tasks"],
  ["code", "Code"],
  ["tests", "Tests"],
];

export function buildTraceTree(trace: TraceResponse): Node[] {
  const gaps = new Map<string, Gap>();
  for (const g of trace.gaps) if (g.kind === "missing") gaps.set(g.id, g);
  return Object.values(trace.matrix.entries)
    .sort((a, b) => a.id.localeCompare(b.id, "en", { numeric: true }))
    .map((entry) => {
      const gap = gaps.get(entry.id);
      const children = DIMENSIONS.map(([dim, title]): Node => {
        const links = entry[dim] as Link[];
        if (!links.length) {
          return {
            key: `${entry.id}/${dim}`,
            kind: "missing",
            label: title,
            description: "missing",
            icon: "warning",
            children: [],
          };
        }
        return {
          key: `${entry.id}/${dim}`,
          kind: "dimension",
          label: title,
          description: String(links.length),
          icon: "folder",
          children: links.map((l, i) => ({
            key: `${entry.id}/${dim}/${i}`,
            kind: "link" as const,
            label: `${l.path}${l.line ? `:${l.line}` : ""}`,
            description: l.via.startsWith("TASK") || l.via.startsWith("ADR") ? `${l.via} ${l.text}` : l.text,
            tooltip: `${l.text}\n(${l.via})`,
            icon: dim === "tests" ? "beaker" : dim === "code" ? "code" : "file",
            location: { path: l.path, line: l.line ?? 1 },
            children: [],
          })),
        };
      });
      return {
        key: entry.id,
        kind: "requirement" as const,
        label: entry.id,
        description: gap ? `${entry.title} · gap: ${(gap.missing ?? []).join(", ")}` : entry.title,
        tooltip: gap ? gap.message : `${entry.id}: ${entry.title}`,
        icon: gap ? "warning" : "pass",
        location: { path: entry.file, line: entry.line },
        children,
      };
    });
}

export interface StepOut {
  name: string;
  status: string;
  model: string | null;
  cost: number;
  input_tokens?: number;
  output_tokens?: number;
  output_path: string | null;
  estimated?: { cost?: number | null };
}

export interface RunOut {
  id: string;
  feature: string;
  idea: string;
  status: string;
  cost: number;
  estimate?: { cost?: number } | null;
  error?: string | null;
  steps?: StepOut[];
}

const RUN_ICONS: Record<string, string> = {
  queued: "clock",
  running: "sync",
  awaiting_approval: "question",
  done: "pass",
  succeeded: "pass",
  failed: "error",
  cancelled: "circle-slash",
};

export function money(usd: number | null | undefined): string {
  const v = usd ?? 0;
  if (v >= 1) return `$${v.toFixed(2)}`;
  return v === 0 || v >= 0.0001 ? `$${v.toFixed(4)}` : `$${v.toFixed(6)}`; // a suggestion costs µ$
}

export function buildRunTree(runs: RunOut[]): Node[] {
  return runs.map((run) => {
    const steps = (run.steps ?? []).map(
      (st): Node => ({
        key: `${run.id}/${st.name}`,
        kind: "step",
        label: st.name,
        description: [st.status, st.model ?? "", st.status === "pending" ? "" : money(st.cost)]
          .filter(Boolean)
          .join(" · "),
        icon: RUN_ICONS[st.status] ?? "circle-outline",
        runId: run.id,
        children: st.output_path
          ? [
              {
                key: `${run.id}/${st.name}/file`,
                kind: "file",
                label: st.output_path,
                icon: "go-to-file",
                location: { path: st.output_path, line: 1 },
                runId: run.id,
                children: [],
              },
            ]
          : [],
      }),
    );
    const estimate = run.estimate?.cost;
    return {
      key: run.id,
      kind: "run",
      label: run.feature,
      description: `${run.status.replace("_", " ")} · ${money(run.cost)}${estimate !== undefined ? ` of ~${money(estimate)}` : ""}`,
      tooltip: `${run.id}\n${run.idea}${run.error ? `\n${run.error}` : ""}`,
      icon: RUN_ICONS[run.status] ?? "circle-outline",
      contextValue: run.status === "awaiting_approval" ? "run.awaiting" : ["queued", "running"].includes(run.status) ? "run.active" : "run",
      runId: run.id,
      children: steps,
    };
  });
}

export interface StepEstimate {
  step: string;
  model: string;
  input_tokens: number;
  output_tokens: number;
  cost: number;
  fits?: boolean;
}

export interface RunEstimate {
  feature?: string;
  steps: StepEstimate[];
  input_tokens: number;
  output_tokens: number;
  cost: number;
  budget?: number | null;
  within_budget?: boolean;
}

/** The estimate shown before a run starts: a line per step and model, then the total. */
export function formatEstimate(est: RunEstimate): string[] {
  const n = (x: number) => x.toLocaleString("en-US");
  const lines = est.steps.map(
    (s) =>
      `${s.step}: ${n(s.input_tokens)} in + ${n(s.output_tokens)} out tokens on ${s.model} ≈ ${money(s.cost)}` +
      (s.fits === false ? " (does not fit the context window)" : ""),
  );
  lines.push(`Total: ${n(est.input_tokens + est.output_tokens)} tokens ≈ ${money(est.cost)}`);
  if (est.budget !== undefined && est.budget !== null && est.within_budget === false) {
    lines.push(`Over the budget of ${money(est.budget)}`);
  }
  return lines;
}

export interface Spend {
  cost: number;
  tokens: number;
  cost_per_day: number | null;
  tokens_per_day: number | null;
}

/** The status bar text: spend today against the project's daily quota. */
export function formatSpend(s: Spend): string {
  if (s.cost_per_day !== null) return `${money(s.cost)} / ${money(s.cost_per_day)} today`;
  if (s.tokens_per_day !== null) return `${s.tokens.toLocaleString("en-US")} / ${s.tokens_per_day.toLocaleString("en-US")} tokens today`;
  return `${money(s.cost)} today (no daily quota)`;
}
