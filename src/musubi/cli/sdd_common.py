"""Shared pieces of the SDD commands: ``--path/-C``, error mapping, diagnostics output."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from musubi.cli.output import emit, fail
from musubi.errors import MusubiError
from musubi.sdd.diagnostics import Diagnostic, Severity

__all__ = ["handle_errors", "path_option", "print_diagnostics", "project_root"]

F = TypeVar("F", bound=Callable[..., Any])


def path_option(func: F) -> F:
    """Add ``--path/-C`` (the project root, default the current directory) as ``root``."""
    return click.option(
        "--path",
        "-C",
        "root",
        type=click.Path(file_okay=False, path_type=Path),
        default=".",
        show_default=True,
        help="Project root (the folder holding steering/ and storage/).",
    )(func)


def project_root(root: Path) -> Path:
    return root.resolve()


def handle_errors(func: F) -> F:
    """Turn MUSUBI errors into ``error: …`` on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MusubiError as exc:
            fail(exc.message)
        except ValueError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


def print_diagnostics(
    diagnostics: Iterable[Diagnostic], *, as_json: bool, title: str | None = None
) -> list[Diagnostic]:
    """Print findings (``file:line: severity: message``, or JSON) and return them."""
    items = sorted(diagnostics, key=lambda d: (d.file, d.line or 0, -d.severity.rank))
    if as_json:
        emit([d.model_dump(mode="json") for d in items], as_json=True)
        return items
    if title:
        click.echo(title)
    for d in items:
        color = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "blue"}
        click.echo(
            f"{d.file}:{d.line or 1}: "
            + click.style(d.severity.value, fg=color[d.severity])
            + f": {d.message}"
        )
    counts = {s: sum(1 for d in items if d.severity is s) for s in Severity}
    click.echo(
        f"{counts[Severity.ERROR]} error(s), {counts[Severity.WARNING]} warning(s), "
        f"{counts[Severity.INFO]} note(s)",
        err=True,
    )
    return items
