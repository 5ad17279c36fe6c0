"""What MUSUBI adds to an inline suggestion in VS Code, and what the extension sends.

- **Latency added**: the extension's inline engine (``vscode-extension/out/inline_core.js``,
  the code the editor runs) asks a real ``musubi serve`` on loopback, which routes the
  ``code-completion`` task to a fake OpenAI upstream that answers at once; each keystroke's
  request is timed from the engine's call to the text it returns (no debounce), beside the
  same FIM body sent straight to the fake. The difference is MUSUBI's share: key check,
  quota reservation, routing, the provider call, usage and audit, and the extension's own
  request building. P50/P95 over ``--keystrokes`` keystrokes, each with a new prefix (no cache
  hit), without related snippets, with snippets while typing within a line (the search is
  keyed on the lines before the cursor's, so it is cached), and with a new search each time.
- **Requests per 100 keystrokes**: a person typing (log-normal gaps around ``--gap-ms``, a
  one-second pause every 15 keys) with the editor asking on every keystroke; what the
  debounce and cancellation let through to the gateway, and how many of those were aborted.
- **Activation time** (``--editor``): code-server with the packaged .vsix in chromium; the
  extension records how long ``activate`` took from its module's load.

    PYTHONPATH=src .venv/bin/python bench/vscode_inline.py [--keystrokes 200] [--editor]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.vscode.editor import code_server, fake_upstream, missing_editor, musubi_server
from tests.vscode.helpers import CHROMIUM, EXTENSION, build_vsix, npm

DRIVER = Path(__file__).with_name("vscode_inline_driver.mjs")


def drive(cfg: dict[str, object]) -> dict[str, object]:
    done = subprocess.run(
        ["node", str(DRIVER), json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def index_project(url: str, key: str, project: str) -> bool:
    """Index the sample project so suggestions carry related snippets."""
    headers = {"Authorization": f"Bearer {key}"}
    r = httpx.post(
        f"{url}/v1/projects/{project}/knowledge/index",
        params={"wait": "true"},
        headers=headers,
        timeout=600,
    )
    return r.status_code == 200


def activation_ms(tmp: Path, repo: Path, url: str, project: str, key: str) -> float:
    from playwright.sync_api import sync_playwright

    settings = {"musubi.serverUrl": url, "musubi.project": project}
    with code_server(tmp, build_vsix(), repo, settings) as editor:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(editor.url)
            stats = editor.user_data / "User/globalStorage/musubi.musubi/activation.json"
            deadline = time.monotonic() + 120
            while not stats.exists():
                assert time.monotonic() < deadline, "the extension did not activate"
                time.sleep(0.2)
            browser.close()
        return float(json.loads(stats.read_text())["activation_ms"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keystrokes", type=int, default=200)
    ap.add_argument("--gap-ms", type=float, default=180.0, help="mean gap between keys")
    ap.add_argument("--debounce-ms", type=int, default=150)
    ap.add_argument("--editor", action="store_true", help="also measure activation time")
    args = ap.parse_args()
    assert npm("exec", "--", "tsc", "-p", ".").returncode == 0, "cannot compile the extension"
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs; extension {EXTENSION}")
    with tempfile.TemporaryDirectory() as d, fake_upstream() as (_, upstream):
        tmp = Path(d)
        with musubi_server(tmp, upstream) as server:
            base = {
                "gateway": server.url,
                "key": server.dev_key,
                "direct": upstream,
                "model": "musubi/code-completion",
                "upstreamModel": "gpt-4o-mini",
                "project": server.project_id,
                "keystrokes": args.keystrokes,
            }
            rows = []
            indexed = index_project(server.url, server.owner_key, server.project_id)
            kinds = [("FIM", False, False)]
            if indexed:
                kinds += [("+ snippets, same line", True, False)]
                kinds += [("+ snippets, new search", True, True)]
            for label, snippets, new_line in kinds:
                r = drive({**base, "mode": "latency", "snippets": snippets, "newLine": new_line})
                via = [float(x) for x in r["via"]]  # type: ignore[union-attr]
                straight = [float(x) for x in r["straight"]]  # type: ignore[union-attr]
                added = [a - b for a, b in zip(via, straight, strict=True)]
                rows.append((label, via, straight, added))
            print(f"\nInline suggestion latency, {args.keystrokes} keystrokes (ms)")
            print(
                f"{'request':22} {'via MUSUBI p50':>15} {'p95':>7} {'direct p50':>11} {'p95':>7}"
                f" {'added p50':>10} {'p95':>7}"
            )
            for label, via, straight, added in rows:
                print(
                    f"{label:22} {pct(via, 50):15.1f} {pct(via, 95):7.1f} {pct(straight, 50):11.1f}"
                    f" {pct(straight, 95):7.1f} {pct(added, 50):10.1f} {pct(added, 95):7.1f}"
                )
            if not indexed:
                print("(the project could not be indexed: no snippet row)")
            t = drive(
                {
                    **base,
                    "mode": "typing",
                    "debounceMs": args.debounce_ms,
                    "meanGapMs": args.gap_ms,
                    "pauseEvery": 15,
                }
            )
            n = int(t["keystrokes"])  # type: ignore[call-overload]
            per100 = 100 / n
            print(
                f"\nTyping {n} keys (mean gap {args.gap_ms:.0f} ms, 1 s pause every 15), "
                f"debounce {args.debounce_ms} ms, per 100 keystrokes"
            )
            print(f"{'asked by editor':>16} {'sent':>6} {'aborted':>8} {'shown':>6}")
            print(
                f"{100:16d} {int(t['sent']) * per100:6.1f} {int(t['aborted']) * per100:8.1f}"  # type: ignore[call-overload]
                f" {int(t['shown']) * per100:6.1f}"  # type: ignore[call-overload]
            )
            if args.editor:
                why = missing_editor()
                if why:
                    print(f"\nactivation: not measured ({why})")
                else:
                    ms = activation_ms(
                        tmp, server.repo, server.url, server.project_id, server.dev_key
                    )
                    print(f"\nExtension activation (code-server 4.139.1, chromium): {ms:.1f} ms")


if __name__ == "__main__":
    main()
