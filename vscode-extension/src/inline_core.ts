/**
 * The inline suggestion engine, without the editor: debounce, cancel on the next
 * keystroke, cache per prefix, related snippets from the knowledge engine, and the FIM
 * call through the gateway. The provider in extension.ts adapts it to VS Code; the bench
 * (bench/vscode_inline.py) drives this same code. Pure: no vscode import.
 */

import type { Client } from "./api";
import { Latest, Lru, Sleep, sleep as realSleep } from "./debounce";
import { MusubiError } from "./errors";
import { buildFimRequest, cacheKey, cleanCompletion, FimInput, Snippet, snippetQuery } from "./fim";

export interface InlineSettings {
  debounceMs: number;
  model: string;
  maxTokens: number;
  snippets: boolean;
  project: string | undefined;
}

export interface Completion {
  choices?: { text?: string }[];
}

interface Hit {
  path: string;
  start: number;
  text: string;
}

export class InlineEngine {
  readonly latest = new Latest();
  readonly cache = new Lru<string, string>(200);
  private readonly snippetCache = new Lru<string, Snippet[]>(100);
  private snippetsOffUntil = 0;
  sent = 0; // FIM requests sent to the gateway
  aborted = 0; // of those, cancelled by a newer keystroke

  constructor(
    private readonly client: Client,
    private readonly settings: () => InlineSettings,
    private readonly wait: Sleep = realSleep,
    private readonly now: () => number = Date.now,
  ) {}

  /** The suggestion for this cursor, or "" (superseded, nothing to add). Throws MusubiError. */
  async suggest(input: Omit<FimInput, "snippets" | "model" | "maxTokens">, cancel?: AbortSignal): Promise<string> {
    const s = this.settings();
    const ticket = this.latest.begin();
    cancel?.addEventListener("abort", () => ticket.cancel(), { once: true });
    const plain = buildFimRequest({ ...input, model: s.model, maxTokens: s.maxTokens });
    const quick = this.cache.get(cacheKey(plain));
    if (quick !== undefined) return quick;
    if (!(await this.latest.settle(ticket, s.debounceMs, this.wait))) return "";
    const snippets = await this.related(input.prefix, input.path, ticket.signal);
    if (ticket.cancelled) return "";
    const body = buildFimRequest({ ...input, snippets, model: s.model, maxTokens: s.maxTokens });
    this.sent += 1;
    let answer: Completion;
    try {
      answer = await this.client.post<Completion>("/v1/completions", body, ticket.signal);
    } catch (err) {
      if (ticket.cancelled) {
        this.aborted += 1;
        return "";
      }
      throw err;
    }
    const text = cleanCompletion(answer.choices?.[0]?.text ?? "", input.suffix);
    this.cache.set(cacheKey(plain), text);
    return ticket.cancelled ? "" : text;
  }

  /** A few snippets related to what is typed (best effort: an unindexed project has none). */
  private async related(prefix: string, path: string, signal: AbortSignal): Promise<Snippet[]> {
    const s = this.settings();
    if (!s.snippets || !s.project || this.now() < this.snippetsOffUntil) return [];
    const query = snippetQuery(prefix);
    if (!query) return [];
    const known = this.snippetCache.get(query);
    if (known) return known;
    try {
      const res = await this.client.post<{ hits: Hit[] }>(
        `/v1/projects/${encodeURIComponent(s.project)}/knowledge/search`,
        { query, k: 4 },
        signal,
      );
      const hits = res.hits.filter((h) => h.path !== path).map((h) => ({ path: h.path, start: h.start, text: h.text }));
      this.snippetCache.set(query, hits);
      return hits;
    } catch (err) {
      if (signal.aborted) return [];
      if (err instanceof MusubiError && ["no-key", "wrong-key", "unreachable", "quota"].includes(err.kind)) throw err;
      this.snippetsOffUntil = this.now() + 5 * 60_000; // not indexed, or no knowledge:read
      return [];
    }
  }
}
