"""How the CLI prints: rich tables for people, ``--json`` for scripts.

Every listing command takes ``--json`` (see :func:`json_option`) and prints through
:func:`emit`, so output looks and behaves the same everywhere.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def json_option(func: F) -> F:
    """Add ``--json`` to a command; the command receives it as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        func
    )


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def emit(
    rows: Iterable[Mapping[str, Any]] | Mapping[str, Any],
    *,
    as_json: bool,
    columns: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Print one object (a mapping) or a list of them."""
    if as_json:
        json.dump(
            rows if isinstance(rows, Mapping) else list(rows),
            sys.stdout,
            indent=2,
            default=_plain,
            ensure_ascii=False,
        )
        sys.stdout.write("\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if isinstance(rows, Mapping):
        table = Table(show_header=False, title=title)
        table.add_column("field", style="bold")
        table.add_column("value")
        for key, value in rows.items():
            table.add_row(key, _text(value))
        console.print(table)
        return
    items = list(rows)
    cols = list(columns or (items[0].keys() if items else []))
    table = Table(title=title)
    for col in cols:
        table.add_column(col, overflow="fold")  # ids stay whole, even on a narrow terminal
    for item in items:
        table.add_row(*(_text(item.get(col)) for col in cols))
    console.print(table)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=_plain, ensure_ascii=False)
    return str(_plain(value))


def fail(message: str, code: int = 1) -> None:
    """Print an error for a person and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)
