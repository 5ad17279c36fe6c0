/**
 * Debounce and cancellation for inline suggestions: each keystroke starts a ticket that
 * aborts the previous one; a ticket waits `ms` and goes on only if no newer keystroke came.
 * The in-flight HTTP request of an aborted ticket is cancelled through its AbortSignal.
 * Pure: no vscode import (timers are injectable for tests).
 */

export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export const sleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });

export class Ticket {
  readonly controller = new AbortController();
  constructor(readonly seq: number) {}
  get signal(): AbortSignal {
    return this.controller.signal;
  }
  get cancelled(): boolean {
    return this.controller.signal.aborted;
  }
  cancel(): void {
    this.controller.abort();
  }
}

export class Latest {
  private seq = 0;
  private current: Ticket | undefined;
  started = 0;
  superseded = 0;

  /** A new ticket; the previous one is cancelled (its wait ends, its request aborts). */
  begin(): Ticket {
    if (this.current && !this.current.cancelled) {
      this.current.cancel();
      this.superseded += 1;
    }
    this.started += 1;
    this.current = new Ticket(++this.seq);
    return this.current;
  }

  /** Wait out the debounce; true when this ticket is still the latest and not cancelled. */
  async settle(ticket: Ticket, ms: number, wait: Sleep = sleep): Promise<boolean> {
    if (ms > 0) await wait(ms, ticket.signal);
    return !ticket.cancelled && ticket === this.current;
  }
}

/** A small LRU map (suggestions cached per prefix). */
export class Lru<K, V> {
  private map = new Map<K, V>();
  hits = 0;
  constructor(private readonly size: number) {}
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    this.map.delete(key);
    this.map.set(key, v);
    this.hits += 1;
    return v;
  }
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.size) {
      const oldest = this.map.keys().next().value as K;
      this.map.delete(oldest);
    }
  }
  get length(): number {
    return this.map.size;
  }
}
