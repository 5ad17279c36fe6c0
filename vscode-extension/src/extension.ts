/**
 * MUSUBI in VS Code: the orchestration view, inline suggestions through the gateway, the
 * traceability view (tree, hover, CodeLens, go to definition, diagnostics) and the cost
 * estimator. This module only adapts the pure modules (ids, fim, debounce, tree,
 * spec_index, inline_core, api) to the editor's API.
 */

import * as path from "node:path";
import * as vscode from "vscode";

import { Client } from "./api";
import { FIXES, MusubiError, Once, formatSeconds } from "./errors";
import { findHeadings, findIds, idAt } from "./ids";
import { InlineEngine, InlineSettings } from "./inline_core";
import { Requirement, SpecIndex } from "./spec_index";
import {
  Node,
  RunEstimate,
  RunOut,
  Spend,
  TraceResponse,
  buildRunTree,
  buildTraceTree,
  formatEstimate,
  formatSpend,
} from "./tree";

const KEY_SECRET = "musubi.apiKey";
const started = performance.now();

interface Settings {
  serverUrl: string;
  project: string;
  inline: InlineSettings & { enabled: boolean };
}

function settings(): Settings {
  const c = vscode.workspace.getConfiguration("musubi");
  const project = c.get<string>("project", "").trim();
  return {
    serverUrl: c.get<string>("serverUrl", "http://127.0.0.1:8000"),
    project,
    inline: {
      enabled: c.get<boolean>("inline.enabled", true),
      debounceMs: c.get<number>("inline.debounceMs", 150),
      model: c.get<string>("inline.model", "musubi/code-completion"),
      maxTokens: c.get<number>("inline.maxTokens", 64),
      snippets: c.get<boolean>("inline.relatedSnippets", true),
      project: project || undefined,
    },
  };
}

function root(): vscode.Uri | undefined {
  return vscode.workspace.workspaceFolders?.[0]?.uri;
}

function fileUri(rel: string): vscode.Uri | undefined {
  const r = root();
  if (!r) return undefined;
  return path.isAbsolute(rel) ? vscode.Uri.file(rel) : vscode.Uri.joinPath(r, rel);
}

function relPath(uri: vscode.Uri): string {
  const r = root();
  return r ? path.relative(r.fsPath, uri.fsPath).split(path.sep).join("/") : uri.fsPath;
}

class Musubi {
  key: string | undefined;
  readonly client: Client;
  readonly once = new Once();
  readonly index = new SpecIndex();
  readonly diagnostics = vscode.languages.createDiagnosticCollection("musubi");
  readonly output = vscode.window.createOutputChannel("MUSUBI");
  readonly inlineStatus = vscode.window.createStatusBarItem("musubi.inline", vscode.StatusBarAlignment.Right, 100);
  readonly spendStatus = vscode.window.createStatusBarItem("musubi.spend", vscode.StatusBarAlignment.Right, 99);
  readonly trace = new TreeView(this, "trace");
  readonly runs = new TreeView(this, "runs");
  readonly engine: InlineEngine;
  inlineOff: string | undefined; // why suggestions are off
  inlineOffUntil = 0;
  private following = new Map<string, AbortController>();
  private lensChanged = new vscode.EventEmitter<void>();
  readonly onLensChanged = this.lensChanged.event;

  constructor(readonly context: vscode.ExtensionContext) {
    this.client = new Client(() => ({ url: settings().serverUrl, key: this.key }));
    this.engine = new InlineEngine(this.client, () => settings().inline);
    this.inlineStatus.name = "MUSUBI suggestions";
    this.spendStatus.name = "MUSUBI spend";
    this.spendStatus.command = "musubi.showSpend";
  }

  /** One notification per kind of failure, with the action that fixes it. */
  async report(err: unknown, what: string): Promise<void> {
    const e = err instanceof MusubiError ? err : new MusubiError("request", `MUSUBI: ${what} failed: ${String(err)}`);
    this.output.appendLine(`${new Date().toISOString()} ${what}: ${e.kind}: ${e.message}`);
    if (["no-key", "wrong-key"].includes(e.kind)) this.setInlineOff(e.kind === "no-key" ? "no API key" : "wrong API key");
    if (e.kind === "quota") this.setInlineOff("quota reached", e.retryAfter);
    if (!this.once.shouldShow(e.kind)) return;
    const fix = FIXES[e.kind];
    const choice = await (fix ? vscode.window.showErrorMessage(e.message, fix.title) : vscode.window.showErrorMessage(e.message));
    if (fix && choice === fix.title) await vscode.commands.executeCommand(fix.command);
  }

  ok(): void {
    this.once.ok();
  }

  project(): string | undefined {
    return settings().project || undefined;
  }

  requireProject(): string {
    const p = this.project();
    if (!p) throw new MusubiError("no-project", "No MUSUBI project is chosen for this workspace. Choose one.");
    return p;
  }

  // -- status bar --------------------------------------------------------------------
  setInlineOff(why: string | undefined, retryAfter?: number): void {
    this.inlineOff = why;
    this.inlineOffUntil = retryAfter ? Date.now() + retryAfter * 1000 : 0;
    this.updateInlineStatus();
  }

  updateInlineStatus(): void {
    const s = settings().inline;
    const why = !s.enabled ? "turned off" : !this.key ? "no API key" : this.inlineOff;
    if (why) {
      const until = this.inlineOffUntil > Date.now() ? ` (resets in ${formatSeconds((this.inlineOffUntil - Date.now()) / 1000)})` : "";
      this.inlineStatus.text = `$(circle-slash) MUSUBI: suggestions off — ${why}${until}`;
      this.inlineStatus.tooltip = "MUSUBI inline suggestions are off. Click to fix.";
      this.inlineStatus.command = !this.key || why.includes("key") ? "musubi.setApiKey" : "musubi.toggleInline";
    } else {
      this.inlineStatus.text = "$(sparkle) MUSUBI";
      this.inlineStatus.tooltip = `MUSUBI inline suggestions on (${s.model}). Click to turn off.`;
      this.inlineStatus.command = "musubi.toggleInline";
    }
    this.inlineStatus.show();
  }

  async refreshSpend(): Promise<Spend | undefined> {
    const project = this.project();
    if (!project || !this.key) {
      this.spendStatus.hide();
      return undefined;
    }
    try {
      const s = await this.client.get<Spend>(`/v1/projects/${encodeURIComponent(project)}/spend`);
      this.spendStatus.text = `$(graph) ${formatSpend(s)}`;
      this.spendStatus.tooltip = `MUSUBI spend of project ${project} today (UTC) against its daily quota`;
      this.spendStatus.show();
      this.ok();
      return s;
    } catch (err) {
      this.spendStatus.text = "$(graph) spend: —";
      this.spendStatus.show();
      if (err instanceof MusubiError && err.kind === "permission") return undefined; // no usage:read: quiet
      await this.report(err, "spend");
      return undefined;
    }
  }

  // -- traceability ------------------------------------------------------------------
  traceNodes: Node[] = [];
  runNodes: Node[] = [];

  async refreshTrace(): Promise<void> {
    await this.scanHeadings();
    const project = this.project();
    if (!project || !this.key) {
      this.traceNodes = [info(!this.key ? "Set an API key to see the project's trace" : "Choose a MUSUBI project", !this.key ? "musubi.setApiKey" : "musubi.chooseProject")];
      this.trace.changed();
      return;
    }
    try {
      const p = encodeURIComponent(project);
      const [reqs, trace] = await Promise.all([
        this.client.get<{ requirements: Requirement[]; diagnostics: Finding[] }>(`/v1/projects/${p}/sdd/requirements`),
        this.client.get<TraceResponse>(`/v1/projects/${p}/sdd/trace?commits=false`),
      ]);
      this.ok();
      this.index.setServer(reqs.requirements, trace);
      this.traceNodes = buildTraceTree(trace);
      this.setDiagnostics(reqs.diagnostics, trace);
    } catch (err) {
      this.traceNodes = [info("Could not load the trace (see the notification)", "musubi.refresh")];
      await this.report(err, "trace");
    }
    this.trace.changed();
    this.lensChanged.fire();
  }

  private async scanHeadings(): Promise<void> {
    if (!root()) return;
    const files = await vscode.workspace.findFiles("{storage,docs,steering}/**/*.md", "**/node_modules/**", 500);
    for (const uri of files) {
      const text = new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
      this.index.setDefinitions(relPath(uri), findHeadings(text));
    }
  }

  private setDiagnostics(findings: Finding[], trace: TraceResponse): void {
    this.diagnostics.clear();
    const byFile = new Map<string, vscode.Diagnostic[]>();
    const add = (file: string | null | undefined, line: number | null | undefined, d: vscode.Diagnostic) => {
      if (!file) return;
      const l = Math.max(0, (line ?? 1) - 1);
      d.range = new vscode.Range(l, 0, l, 1000);
      byFile.set(file, [...(byFile.get(file) ?? []), d]);
    };
    for (const f of findings) {
      const sev = f.severity === "error" ? vscode.DiagnosticSeverity.Error : f.severity === "warning" ? vscode.DiagnosticSeverity.Warning : vscode.DiagnosticSeverity.Information;
      const d = new vscode.Diagnostic(new vscode.Range(0, 0, 0, 1), f.message, sev);
      d.source = "MUSUBI EARS";
      d.code = f.code;
      add(f.file, f.line, d);
    }
    for (const g of trace.gaps) {
      const d = new vscode.Diagnostic(new vscode.Range(0, 0, 0, 1), g.message, vscode.DiagnosticSeverity.Warning);
      d.source = "MUSUBI trace";
      d.code = `trace-${g.kind}`;
      add(g.file, g.line, d);
    }
    for (const [file, list] of byFile) {
      const uri = fileUri(file);
      if (uri) this.diagnostics.set(uri, list);
    }
  }

  // -- orchestration -----------------------------------------------------------------
  async refreshRuns(): Promise<void> {
    const project = this.project();
    if (!project || !this.key) {
      this.runNodes = [info(!this.key ? "Set an API key to see runs" : "Choose a MUSUBI project", !this.key ? "musubi.setApiKey" : "musubi.chooseProject")];
      this.runs.changed();
      return;
    }
    try {
      const list = await this.client.get<{ items: RunOut[] }>(`/v1/projects/${encodeURIComponent(project)}/runs`);
      const recent = list.items.slice(0, 20);
      const full = await Promise.all(recent.map((r) => this.client.get<RunOut>(`/v1/runs/${encodeURIComponent(r.id)}`)));
      this.ok();
      this.runNodes = full.length ? buildRunTree(full) : [info("No runs yet: start one", "musubi.startRun")];
      for (const r of full) if (["queued", "running"].includes(r.status)) this.follow(r.id);
    } catch (err) {
      this.runNodes = [info("Could not load runs (see the notification)", "musubi.refresh")];
      await this.report(err, "runs");
    }
    this.runs.changed();
  }

  /** Live over the run's events: refresh the tree on each, until the run waits or ends. */
  follow(runId: string): void {
    if (this.following.has(runId)) return;
    const ctrl = new AbortController();
    this.following.set(runId, ctrl);
    let pending: NodeJS.Timeout | undefined;
    const soon = () => {
      if (pending) return;
      pending = setTimeout(() => {
        pending = undefined;
        void this.refreshRuns();
      }, 250);
    };
    this.client
      .events(`/v1/runs/${encodeURIComponent(runId)}/events`, (e) => {
        this.output.appendLine(`run ${runId}: ${e.event}`);
        soon();
      }, ctrl.signal)
      .catch((err: unknown) => this.report(err, "run events"))
      .finally(() => {
        this.following.delete(runId);
        soon();
        void this.refreshSpend();
      });
  }

  dispose(): void {
    for (const c of this.following.values()) c.abort();
  }
}

interface Finding {
  file: string;
  line: number | null;
  severity: string;
  code: string;
  message: string;
}

function info(label: string, command: string): Node {
  return { key: `info:${label}`, kind: "info", label, icon: "info", contextValue: command, children: [] };
}

class TreeView implements vscode.TreeDataProvider<Node> {
  private emitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  constructor(
    private readonly m: Musubi,
    private readonly which: "trace" | "runs",
  ) {}
  changed(): void {
    this.emitter.fire(undefined);
  }
  getChildren(node?: Node): Node[] {
    if (node) return node.children;
    return this.which === "trace" ? this.m.traceNodes : this.m.runNodes;
  }
  getTreeItem(node: Node): vscode.TreeItem {
    const state = node.children.length
      ? node.kind === "run" && ["awaiting_approval", "running", "queued"].some((s) => node.description?.startsWith(s.replace("_", " ")))
        ? vscode.TreeItemCollapsibleState.Expanded
        : vscode.TreeItemCollapsibleState.Collapsed
      : vscode.TreeItemCollapsibleState.None;
    const item = new vscode.TreeItem(node.label, state);
    item.id = `${this.which}:${node.key}`;
    if (node.description !== undefined) item.description = node.description;
    if (node.tooltip !== undefined) item.tooltip = node.tooltip;
    if (node.icon) item.iconPath = new vscode.ThemeIcon(node.icon);
    item.contextValue = node.kind === "info" ? "info" : (node.contextValue ?? node.kind);
    if (node.kind === "info" && node.contextValue) {
      item.command = { command: node.contextValue, title: node.label };
    } else if (node.location && node.kind !== "requirement") {
      item.command = { command: "musubi.openLocation", title: "Open", arguments: [node.location] };
    }
    return item;
  }
}

// -- editor features -------------------------------------------------------------------

class IdHover implements vscode.HoverProvider {
  constructor(private readonly m: Musubi) {}
  provideHover(doc: vscode.TextDocument, pos: vscode.Position): vscode.Hover | undefined {
    const found = idAt(doc.lineAt(pos.line).text, pos.character);
    if (!found) return undefined;
    const text = this.m.index.hover(found.id);
    if (!text) return undefined;
    const md = new vscode.MarkdownString(text);
    return new vscode.Hover(md, new vscode.Range(pos.line, found.start, pos.line, found.end));
  }
}

class IdLens implements vscode.CodeLensProvider {
  readonly onDidChangeCodeLenses: vscode.Event<void>;
  constructor(private readonly m: Musubi) {
    this.onDidChangeCodeLenses = m.onLensChanged;
  }
  provideCodeLenses(doc: vscode.TextDocument): vscode.CodeLens[] {
    const out: vscode.CodeLens[] = [];
    const seen = new Set<string>();
    for (let line = 0; line < Math.min(doc.lineCount, 5000); line++) {
      for (const f of findIds(doc.lineAt(line).text)) {
        if (seen.has(`${line}:${f.id}`)) continue;
        seen.add(`${line}:${f.id}`);
        const title = this.m.index.title(f.id);
        if (!title) continue;
        const links = this.m.index.linkSummary(f.id);
        const range = new vscode.Range(line, f.start, line, f.end);
        out.push(
          new vscode.CodeLens(range, {
            title: `${f.id}: ${title}${links ? ` — ${links}` : ""}`,
            command: "musubi.goToId",
            arguments: [f.id],
          }),
        );
      }
    }
    return out;
  }
}

class IdDefinition implements vscode.DefinitionProvider {
  constructor(private readonly m: Musubi) {}
  provideDefinition(doc: vscode.TextDocument, pos: vscode.Position): vscode.Location | undefined {
    const found = idAt(doc.lineAt(pos.line).text, pos.character);
    const def = found && this.m.index.definition(found.id);
    const uri = def && fileUri(def.path);
    return uri ? new vscode.Location(uri, new vscode.Position(Math.max(0, def.line - 1), 0)) : undefined;
  }
}

class Inline implements vscode.InlineCompletionItemProvider {
  constructor(private readonly m: Musubi) {}
  async provideInlineCompletionItems(
    doc: vscode.TextDocument,
    pos: vscode.Position,
    _ctx: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[]> {
    const s = settings().inline;
    if (!s.enabled || !this.m.key) return [];
    if (this.m.inlineOff) {
      if (this.m.inlineOffUntil && Date.now() >= this.m.inlineOffUntil) this.m.setInlineOff(undefined);
      else if (this.m.inlineOff !== "server unreachable") return [];
    }
    const ctrl = new AbortController();
    token.onCancellationRequested(() => ctrl.abort());
    const offset = doc.offsetAt(pos);
    const text = doc.getText();
    try {
      const suggestion = await this.m.engine.suggest(
        { prefix: text.slice(0, offset), suffix: text.slice(offset), languageId: doc.languageId, path: relPath(doc.uri) },
        ctrl.signal,
      );
      if (this.m.inlineOff === "server unreachable") this.m.setInlineOff(undefined);
      this.m.ok();
      if (!suggestion || token.isCancellationRequested) return [];
      return [new vscode.InlineCompletionItem(suggestion, new vscode.Range(pos, pos))];
    } catch (err) {
      if (err instanceof MusubiError && err.kind === "unreachable") this.m.setInlineOff("server unreachable");
      await this.m.report(err, "inline suggestion");
      return [];
    }
  }
}

// -- commands --------------------------------------------------------------------------

async function openLocation(loc: { path: string; line: number }): Promise<void> {
  const uri = fileUri(loc.path);
  if (!uri) return;
  const doc = await vscode.workspace.openTextDocument(uri);
  const line = Math.max(0, loc.line - 1);
  await vscode.window.showTextDocument(doc, { selection: new vscode.Range(line, 0, line, 0) });
}

async function pickRun(m: Musubi, node: Node | undefined, status: string[]): Promise<string | undefined> {
  if (node?.runId) return node.runId;
  const project = m.requireProject();
  const list = await m.client.get<{ items: RunOut[] }>(`/v1/projects/${encodeURIComponent(project)}/runs`);
  const items = list.items.filter((r) => status.includes(r.status));
  if (!items.length) {
    void vscode.window.showInformationMessage(`No MUSUBI run is ${status.join(" or ").replace("_", " ")}.`);
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(
    items.map((r) => ({ label: r.feature, description: `${r.status} · ${r.id}`, id: r.id })),
    { placeHolder: "Which run?" },
  );
  return pick?.id;
}

const STEP_CHOICES = [
  { label: "Plan: requirements, design, tasks", steps: ["requirements", "design", "tasks"] },
  { label: "requirements", steps: ["requirements"] },
  { label: "requirements, design", steps: ["requirements", "design"] },
  { label: "design", steps: ["design"] },
  { label: "tasks", steps: ["tasks"] },
  { label: "change", steps: ["change"] },
  { label: "reverse", steps: ["reverse"] },
  { label: "steering", steps: ["steering"] },
];

async function startRun(m: Musubi): Promise<void> {
  const project = m.requireProject();
  const choice = await vscode.window.showQuickPick(STEP_CHOICES, { placeHolder: "MUSUBI: which steps to run?" });
  if (!choice) return;
  const idea = choice.steps[0] === "steering" ? "" : await vscode.window.showInputBox({
    prompt: choice.steps[0] === "reverse" ? "The module path to describe" : choice.steps[0] === "change" ? "The change request" : "The feature idea",
    ignoreFocusOut: true,
  });
  if (idea === undefined) return;
  const body = { idea, steps: choice.steps };
  const p = encodeURIComponent(project);
  const est = await m.client.post<RunEstimate>(`/v1/projects/${p}/runs/estimate`, body);
  const lines = formatEstimate(est);
  const go = await vscode.window.showInformationMessage(
    `MUSUBI estimate for “${est.feature ?? idea}”`,
    { modal: true, detail: lines.join("\n") },
    "Start run",
  );
  if (go !== "Start run") return;
  const run = await m.client.post<RunOut>(`/v1/projects/${p}/runs`, body);
  void vscode.window.showInformationMessage(`MUSUBI run ${run.id} started (${run.feature}).`);
  m.follow(run.id);
  await m.refreshRuns();
}

async function chooseProject(m: Musubi): Promise<void> {
  const list = await m.client.get<{ items: { id: string; name: string; repo_path?: string | null }[] }>("/v1/projects?limit=200");
  const pick = await vscode.window.showQuickPick(
    list.items.map((p) => ({ label: p.name, description: p.id, id: p.id })),
    { placeHolder: "The MUSUBI project of this workspace" },
  );
  if (!pick) return;
  await vscode.workspace.getConfiguration("musubi").update("project", pick.id, vscode.ConfigurationTarget.Workspace);
}

async function estimateSelection(m: Musubi): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  const text = editor ? editor.document.getText(editor.selection.isEmpty ? undefined : editor.selection) : "";
  const prompt = text || (await vscode.window.showInputBox({ prompt: "The prompt to estimate" }));
  if (!prompt) return;
  const models = vscode.workspace.getConfiguration("musubi").get<string[]>("estimateModels", ["musubi/code-completion"]);
  const res = await m.client.post<{ estimates: { model: string; input_tokens: number; cost: number; input_cost: number; fits: boolean }[] }>(
    "/v1/musubi/estimate",
    { models, prompt, max_tokens: 1000 },
  );
  const detail = res.estimates
    .map((e) => `${e.model}: ${e.input_tokens.toLocaleString("en-US")} tokens in; $${e.input_cost.toFixed(6)} in, $${e.cost.toFixed(6)} with 1,000 out${e.fits ? "" : " (too long)"}`)
    .join("\n");
  await vscode.window.showInformationMessage("MUSUBI estimate", { modal: true, detail });
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const m = new Musubi(context);
  m.key = await context.secrets.get(KEY_SECRET);
  const guarded = (what: string, fn: (...args: never[]) => Promise<unknown>) =>
    async (...args: never[]) => {
      try {
        await fn(...args);
      } catch (err) {
        await m.report(err, what);
      }
    };
  const refresh = async () => {
    await Promise.all([m.refreshTrace(), m.refreshRuns(), m.refreshSpend()]);
  };
  const sel: vscode.DocumentSelector = [{ scheme: "file" }, { scheme: "vscode-remote" }, { scheme: "untitled" }];
  context.subscriptions.push(
    m.diagnostics,
    m.output,
    m.inlineStatus,
    m.spendStatus,
    { dispose: () => m.dispose() },
    vscode.window.registerTreeDataProvider("musubi.trace", m.trace),
    vscode.window.registerTreeDataProvider("musubi.runs", m.runs),
    vscode.languages.registerHoverProvider(sel, new IdHover(m)),
    vscode.languages.registerCodeLensProvider(sel, new IdLens(m)),
    vscode.languages.registerDefinitionProvider(sel, new IdDefinition(m)),
    vscode.languages.registerInlineCompletionItemProvider(sel, new Inline(m)),
    vscode.commands.registerCommand("musubi.setApiKey", guarded("set key", async () => {
      const key = await vscode.window.showInputBox({ prompt: "MUSUBI API key (msk_…)", password: true, ignoreFocusOut: true });
      if (!key) return;
      await context.secrets.store(KEY_SECRET, key.trim());
    })),
    vscode.commands.registerCommand("musubi.openSettings", () => vscode.commands.executeCommand("workbench.action.openSettings", "musubi")),
    vscode.commands.registerCommand("musubi.chooseProject", guarded("choose project", () => chooseProject(m))),
    vscode.commands.registerCommand("musubi.refresh", guarded("refresh", refresh)),
    vscode.commands.registerCommand("musubi.startRun", guarded("start run", () => startRun(m))),
    vscode.commands.registerCommand("musubi.approveRun", guarded("approve", async (node?: Node) => {
      const id = await pickRun(m, node, ["awaiting_approval"]);
      if (!id) return;
      const run = await m.client.post<RunOut>(`/v1/runs/${encodeURIComponent(id)}/approve`, {});
      void vscode.window.showInformationMessage(`MUSUBI run ${run.id} approved: the next stage runs.`);
      m.follow(id);
      await m.refreshRuns();
    })),
    vscode.commands.registerCommand("musubi.rejectRun", guarded("reject", async (node?: Node) => {
      const id = await pickRun(m, node, ["awaiting_approval", "queued", "running"]);
      if (!id) return;
      await m.client.post<RunOut>(`/v1/runs/${encodeURIComponent(id)}/cancel`, {});
      void vscode.window.showInformationMessage(`MUSUBI run ${id} rejected and cancelled.`);
      await m.refreshRuns();
    })),
    vscode.commands.registerCommand("musubi.openLocation", guarded("open", openLocation)),
    vscode.commands.registerCommand("musubi.goToId", guarded("go to ID", async (id: string) => {
      const def = m.index.definition(id);
      if (!def) return void vscode.window.showInformationMessage(`${id} is not defined in this project's specs.`);
      await openLocation(def);
    })),
    vscode.commands.registerCommand("musubi.estimateSelection", guarded("estimate", () => estimateSelection(m))),
    vscode.commands.registerCommand("musubi.showSpend", guarded("spend", async () => {
      const s = await m.refreshSpend();
      if (s) void vscode.window.showInformationMessage(`MUSUBI spend today: ${formatSpend(s)}.`);
    })),
    vscode.commands.registerCommand("musubi.toggleInline", guarded("toggle", async () => {
      const c = vscode.workspace.getConfiguration("musubi");
      await c.update("inline.enabled", !c.get<boolean>("inline.enabled", true), vscode.ConfigurationTarget.Global);
    })),
    context.secrets.onDidChange(async (e) => {
      if (e.key !== KEY_SECRET) return;
      m.key = await context.secrets.get(KEY_SECRET);
      m.once.ok();
      m.setInlineOff(undefined);
      await refresh();
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!e.affectsConfiguration("musubi")) return;
      m.updateInlineStatus();
      if (e.affectsConfiguration("musubi.serverUrl") || e.affectsConfiguration("musubi.project")) {
        m.once.ok();
        m.setInlineOff(undefined);
        await refresh();
      }
    }),
    vscode.workspace.onDidSaveTextDocument(async (doc) => {
      if (doc.languageId === "markdown" || /\.(py|ts|js|go|java|rs)$/.test(doc.fileName)) await m.refreshTrace();
    }),
  );
  const timer = setInterval(() => void m.refreshSpend(), 60_000);
  context.subscriptions.push({ dispose: () => clearInterval(timer) });
  m.updateInlineStatus();
  const ms = performance.now() - started;
  m.output.appendLine(`activated in ${ms.toFixed(1)} ms`);
  await vscode.workspace.fs.createDirectory(context.globalStorageUri);
  await vscode.workspace.fs.writeFile(
    vscode.Uri.joinPath(context.globalStorageUri, "activation.json"),
    new TextEncoder().encode(JSON.stringify({ activation_ms: ms })),
  );
  void refresh();
}

export function deactivate(): void {
  /* subscriptions are disposed by VS Code */
}
