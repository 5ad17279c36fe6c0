/**
 * Fill-in-the-middle requests for inline suggestions: the text before the cursor (prefix),
 * after it (suffix) and a few related snippets from the knowledge engine, as an
 * OpenAI-compatible `/v1/completions` body (`prompt` + `suffix`, the FIM form OpenAI,
 * DeepSeek, Mistral and Ollama accept). The model is `musubi/code-completion`: the gateway
 * routes the task to the tenant's chosen model. Pure: no vscode import.
 */

export interface Snippet {
  path: string;
  start: number;
  text: string;
}

export interface FimInput {
  prefix: string;
  suffix: string;
  languageId: string;
  path: string;
  snippets?: Snippet[];
  model?: string;
  maxTokens?: number;
}

export interface FimBody {
  model: string;
  prompt: string;
  suffix: string;
  max_tokens: number;
  temperature: number;
  stop: string[];
}

export const LIMITS = {
  prefixChars: 4000,
  suffixChars: 1500,
  snippets: 3,
  snippetChars: 600,
};

const HASH_COMMENT = new Set([
  "python", "ruby", "shellscript", "perl", "r", "yaml", "toml", "dockerfile", "makefile",
  "powershell", "elixir", "julia", "coffeescript",
]);

export function commentPrefix(languageId: string): string {
  if (HASH_COMMENT.has(languageId)) return "# ";
  if (languageId === "sql" || languageId === "lua" || languageId === "haskell") return "-- ";
  if (languageId === "markdown" || languageId === "plaintext") return "";
  return "// ";
}

/** Cut the prefix at a line start within the budget, so the model sees whole lines. */
export function tail(text: string, chars: number): string {
  if (text.length <= chars) return text;
  const cut = text.slice(text.length - chars);
  const nl = cut.indexOf("\n");
  return nl >= 0 && nl < cut.length - 1 ? cut.slice(nl + 1) : cut;
}

export function head(text: string, chars: number): string {
  if (text.length <= chars) return text;
  const cut = text.slice(0, chars);
  const nl = cut.lastIndexOf("\n");
  return nl > 0 ? cut.slice(0, nl + 1) : cut;
}

/** Related snippets as comment lines before the code, the file's own path first. */
export function snippetHeader(input: FimInput): string {
  const c = commentPrefix(input.languageId);
  const picked = (input.snippets ?? [])
    .filter((s) => s.path !== input.path && s.text.trim())
    .slice(0, LIMITS.snippets);
  const lines: string[] = [];
  for (const s of picked) {
    lines.push(`${c}Related: ${s.path}:${s.start}`);
    for (const l of head(s.text, LIMITS.snippetChars).replace(/\n$/, "").split("\n")) {
      lines.push(`${c}${l}`);
    }
  }
  lines.push(`${c}File: ${input.path}`);
  return lines.join("\n") + "\n";
}

export function buildFimRequest(input: FimInput): FimBody {
  return {
    model: input.model ?? "musubi/code-completion",
    prompt: snippetHeader(input) + tail(input.prefix, LIMITS.prefixChars),
    suffix: head(input.suffix, LIMITS.suffixChars),
    max_tokens: input.maxTokens ?? 64,
    temperature: 0,
    stop: ["\n\n\n"],
  };
}

/** The text to insert: nothing when the model only repeats what follows the cursor. */
export function cleanCompletion(text: string, suffix: string): string {
  let out = text.replace(/\s+$/, (ws) => (ws.includes("\n") ? "" : ws));
  const next = suffix.split("\n")[0]?.trim() ?? "";
  if (next && out.endsWith(next)) out = out.slice(0, out.length - next.length);
  return out.trim() === "" ? "" : out;
}

/** The cache key: what the model saw (a suggestion is cached per prefix and suffix). */
export function cacheKey(body: FimBody): string {
  return `${body.model}\u0000${body.prompt}\u0000${body.suffix}`;
}

/**
 * The query sent to the knowledge engine for related snippets: the last complete lines
 * before the cursor's line. The line being typed is left out, so every keystroke within a
 * line reuses the snippets found for it (a search costs far more than the completion).
 */
export function snippetQuery(prefix: string, lines = 3): string {
  return prefix
    .split("\n")
    .slice(0, -1)
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .slice(-lines)
    .join("\n")
    .slice(0, 500);
}
