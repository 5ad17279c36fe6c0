/**
 * What went wrong talking to the MUSUBI server, in the four kinds a user can fix, each with
 * the one action that fixes it. Pure: no vscode import.
 */

export type Kind = "unreachable" | "no-key" | "wrong-key" | "permission" | "quota" | "no-project" | "request";

export interface Fix {
  title: string; // the notification's button
  command: string; // the command it runs
}

export class MusubiError extends Error {
  constructor(
    readonly kind: Kind,
    message: string,
    readonly status = 0,
    readonly retryAfter: number | undefined = undefined,
  ) {
    super(message);
    this.name = "MusubiError";
  }
}

export const FIXES: Record<Kind, Fix | undefined> = {
  unreachable: { title: "Open settings", command: "musubi.openSettings" },
  "no-key": { title: "Set API key", command: "musubi.setApiKey" },
  "wrong-key": { title: "Set API key", command: "musubi.setApiKey" },
  permission: { title: "Set API key", command: "musubi.setApiKey" },
  quota: { title: "Show spend", command: "musubi.showSpend" },
  "no-project": { title: "Choose project", command: "musubi.chooseProject" },
  request: undefined,
};

/** The server's own message (`{"error": {"message"}}`), else the status line. */
export function serverMessage(status: number, body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; detail?: unknown };
    const err = parsed.error;
    if (typeof err === "object" && err && typeof err.message === "string") return err.message;
    if (typeof err === "string") return err;
    if (typeof parsed.detail === "string") return parsed.detail;
  } catch {
    /* not JSON */
  }
  return body.trim().slice(0, 200) || `HTTP ${status}`;
}

export function fromResponse(
  status: number,
  body: string,
  retryAfterHeader: string | null,
  server: string,
): MusubiError {
  const msg = serverMessage(status, body);
  if (status === 401) {
    return new MusubiError(
      "wrong-key",
      `The MUSUBI server at ${server} refused the API key (${msg}). Set a valid key.`,
      status,
    );
  }
  if (status === 403) {
    return new MusubiError(
      "permission",
      `Your MUSUBI key lacks a permission: ${msg}. Ask an admin for the role, or set another key.`,
      status,
    );
  }
  if (status === 429) {
    const after = retryAfterHeader ? Number.parseFloat(retryAfterHeader) : undefined;
    const when = after !== undefined && Number.isFinite(after) ? ` It resets in ${formatSeconds(after)}.` : "";
    return new MusubiError("quota", `MUSUBI quota reached: ${msg}.${when}`, status, after);
  }
  return new MusubiError("request", `MUSUBI: ${msg}`, status);
}

export function unreachable(server: string, cause: unknown): MusubiError {
  const why = cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause);
  return new MusubiError(
    "unreachable",
    `The MUSUBI server at ${server} is unreachable (${why}). Check musubi.serverUrl or start the server.`,
  );
}

export function formatSeconds(s: number): string {
  if (s < 90) return `${Math.ceil(s)} s`;
  if (s < 5400) return `${Math.ceil(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/**
 * One notification per kind: a kind already shown stays quiet until a request succeeds
 * again (typing with the server down must not flood the editor with toasts).
 */
export class Once {
  private shown = new Set<Kind>();
  shouldShow(kind: Kind): boolean {
    if (kind === "request") return true;
    if (this.shown.has(kind)) return false;
    this.shown.add(kind);
    return true;
  }
  ok(): void {
    this.shown.clear();
  }
}
