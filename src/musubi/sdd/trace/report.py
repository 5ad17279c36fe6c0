"""Traceability reports in Markdown and self-contained HTML."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from musubi.sdd.trace.matrix import Gap, Matrix, coverage

__all__ = ["render_html", "render_markdown"]

_MARK = {"fully-traced": "✅", "partial": "⚠️", "untraced": "❌"}


def _cell(links: list[Any]) -> list[str]:
    return [link.where for link in links]


def render_markdown(
    matrix: Matrix,
    gaps: list[Gap],
    *,
    title: str = "Traceability Report",
    now: datetime | None = None,
) -> str:
    cov = coverage(matrix)
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"# {title}",
        "",
        f"Generated {when} by `musubi trace report`.",
        "",
        "## Coverage",
        "",
        "| Dimension | Covered |",
        "|-----------|---------|",
    ]
    for dim in ("design", "tasks", "code", "tests", "commits"):
        out.append(f"| {dim} | {cov[dim]}% |")
    out += [
        "",
        f"**Fully traced**: {cov['fullyTraced']} of {cov['requirements']} "
        f"({cov['coveragePercent']}%)",
        "",
        "## Matrix",
        "",
        "| Requirement | Title | Design | Tasks | Code | Tests | Commits | Status |",
        "|-------------|-------|--------|-------|------|-------|---------|--------|",
    ]
    for e in matrix.entries.values():
        cells = [
            ", ".join(_cell(getattr(e, d))) or "-"
            for d in ("design", "tasks", "code", "tests", "commits")
        ]
        cells[1] = ", ".join(x.via for x in e.tasks) or "-"
        title_cell = e.title.replace("|", "\\|")
        out.append(
            f"| {e.id} | {title_cell} | " + " | ".join(cells) + f" | {_MARK[e.status]} {e.status} |"
        )
    out += ["", "## Gaps", ""]
    out += [f"- **{g.id}**: {g.message}" for g in gaps] or ["No gaps."]
    return "\n".join(out) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border:1px solid #ccc;padding:.35rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f3f3f3}.fully-traced{background:#e8f7e8}.partial{background:#fff6e0}
.untraced{background:#fde8e8}code{font-size:.85em}
"""


def render_html(
    matrix: Matrix,
    gaps: list[Gap],
    *,
    title: str = "Traceability Report",
    now: datetime | None = None,
) -> str:
    esc = html.escape
    cov = coverage(matrix)
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")

    def links(items: list[Any]) -> str:
        return "<br>".join(f"<code>{esc(w)}</code>" for w in _cell(items)) or "&ndash;"

    rows = []
    for e in matrix.entries.values():
        tasks = "<br>".join(esc(x.via) for x in e.tasks) or "&ndash;"
        rows.append(
            f'<tr class="{e.status}"><td>{esc(e.id)}</td><td>{esc(e.title)}</td>'
            f"<td>{links(e.design)}</td><td>{tasks}</td><td>{links(e.code)}</td>"
            f"<td>{links(e.tests)}</td><td>{links(e.commits)}</td><td>{esc(e.status)}</td></tr>"
        )
    cov_rows = "".join(
        f"<tr><td>{d}</td><td>{cov[d]}%</td></tr>"
        for d in ("design", "tasks", "code", "tests", "commits")
    )
    gap_items = "".join(f"<li><b>{esc(g.id)}</b>: {esc(g.message)}</li>" for g in gaps)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{esc(title)}</h1><p>Generated {esc(when)} by <code>musubi trace report</code>.</p>\n"
        f"<h2>Coverage</h2><p>Fully traced: {cov['fullyTraced']} of {cov['requirements']} "
        f"({cov['coveragePercent']}%)</p><table><tr><th>Dimension</th><th>Covered</th></tr>"
        f"{cov_rows}</table>\n<h2>Matrix</h2><table><tr><th>Requirement</th><th>Title</th>"
        "<th>Design</th><th>Tasks</th><th>Code</th><th>Tests</th><th>Commits</th>"
        f"<th>Status</th></tr>{''.join(rows)}</table>\n<h2>Gaps</h2>"
        f"{'<ul>' + gap_items + '</ul>' if gaps else '<p>No gaps.</p>'}\n</body></html>\n"
    )
