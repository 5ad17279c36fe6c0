"""``musubi plugins``: the pluggable kinds and the implementations installed for each.

Reads the ``musubi.*`` entry points of every installed distribution (:mod:`musubi.kinds`),
built-ins included, and says whether each one loads here (a missing extra is named).
"""

from __future__ import annotations

from typing import Any

import click

from musubi.cli.output import emit, json_option
from musubi.errors import MusubiError
from musubi.kinds import Kind, groups

COLUMNS = ["kind", "name", "distribution", "version", "status"]  # --json adds target, extras


@click.group()
def plugins() -> None:
    """Pluggable kinds and their implementations (entry points)."""


def _status(kind: Kind[Any], name: str) -> str:
    try:
        kind.load(name)
    except MusubiError as exc:
        return exc.message
    return "ok"


@plugins.command("list")
@click.option("--kind", "only", default=None, help="Only this kind, e.g. providers.")
@json_option
def list_plugins(only: str | None, as_json: bool) -> None:
    """Each kind, its implementations, and the distribution and version each came from."""
    known = groups()
    if only is not None and only not in known:
        raise click.BadParameter(
            f"no kind {only!r}; installed kinds: {', '.join(known)}", param_hint="--kind"
        )
    rows: list[dict[str, Any]] = []
    for group in known:
        if only is not None and group != only:
            continue
        kind: Kind[Any] = Kind(group, object)
        for impl in kind.implementations():
            rows.append(
                {
                    "kind": impl.kind,
                    "name": impl.name,
                    "distribution": impl.distribution,
                    "version": impl.version,
                    "target": impl.target,
                    "extras": list(impl.extras),
                    "status": _status(kind, impl.name),
                }
            )
    emit(rows, as_json=as_json, columns=COLUMNS, title="plugins")
