/**
 * The REST client of the MUSUBI server (Node's fetch; no dependency). Every failure is a
 * MusubiError of a kind the user can fix. Pure: no vscode import.
 */

import { fromResponse, MusubiError, unreachable } from "./errors";
import { SseEvent, SseParser } from "./sse";

export interface Target {
  url: string;
  key: string | undefined;
}

export type Fetch = typeof fetch;

export class Client {
  requests = 0;
  constructor(
    private readonly target: () => Target,
    private readonly fetchImpl: Fetch = fetch,
  ) {}

  get server(): string {
    return this.target().url.replace(/\/+$/, "");
  }

  private async send(method: string, path: string, body?: unknown, signal?: AbortSignal, accept = "application/json"): Promise<Response> {
    const { key } = this.target();
    if (!key) throw new MusubiError("no-key", "No MUSUBI API key is set. Run “MUSUBI: Set API key”.");
    const headers: Record<string, string> = { authorization: `Bearer ${key}`, accept };
    if (body !== undefined) headers["content-type"] = "application/json";
    const init: RequestInit = { method, headers };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (signal) init.signal = signal;
    this.requests += 1;
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.server}${path}`, init);
    } catch (err) {
      if (signal?.aborted) throw err;
      throw unreachable(this.server, err);
    }
    if (!res.ok) {
      throw fromResponse(res.status, await res.text(), res.headers.get("retry-after"), this.server);
    }
    return res;
  }

  async json<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.send(method, path, body, signal);
    return (await res.json()) as T;
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.json<T>("GET", path, undefined, signal);
  }

  post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.json<T>("POST", path, body, signal);
  }

  /** Follow a server-sent events stream until it ends or `signal` aborts. */
  async events(path: string, onEvent: (e: SseEvent) => void, signal?: AbortSignal): Promise<void> {
    const res = await this.send("GET", path, undefined, signal, "text/event-stream");
    if (!res.body) return;
    const parser = new SseParser();
    const decoder = new TextDecoder();
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (const e of parser.push(decoder.decode(value, { stream: true }))) onEvent(e);
      }
    } catch (err) {
      if (!signal?.aborted) throw err;
    }
  }
}
