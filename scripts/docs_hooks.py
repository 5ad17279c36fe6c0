"""MkDocs hooks: the reference pages, generated from the code so they cannot drift.

* ``reference/rest.md`` from the OpenAPI document the server serves (every route with its
  permission, scope, body fields and error answers); ``reference/openapi.json`` beside it.
* ``reference/cli.md`` from the click commands of ``musubi`` (every command and option).
* ``reference/settings.md`` from :class:`musubi.settings.Settings` (every ``MUSUBI_*``).

``tests/docs/test_reference.py`` imports this file and fails on a route, command, option or
setting without a description; ``mkdocs build --strict`` (in ``scripts/check``) renders it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import click

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


# ---------------------------------------------------------------- REST


def openapi_document() -> dict[str, Any]:
    """The document ``GET /openapi.json`` answers, built without a database or a server."""
    os.environ.setdefault("MUSUBI_HOME", tempfile.mkdtemp(prefix="musubi-docs-"))
    from musubi.api.app import create_app
    from musubi.settings import Settings

    return create_app(Settings()).openapi()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def undocumented_routes() -> list[str]:
    """Routes with neither a summary of their own nor a docstring (FastAPI would guess a
    summary from the function's name)."""
    os.environ.setdefault("MUSUBI_HOME", tempfile.mkdtemp(prefix="musubi-docs-"))
    from musubi.api.app import api_routes, create_app
    from musubi.settings import Settings

    return [
        f"{','.join(sorted(route.methods or ()))} {route.path}"
        for route in api_routes(create_app(Settings()).routes)
        if route.include_in_schema and not (route.summary or (route.description or "").strip())
    ]


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(f"`{v}`" for v in schema["enum"])
    return str(schema.get("type", "any"))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _body_fields(doc: dict[str, Any], op: dict[str, Any]) -> list[str]:
    content = op.get("requestBody", {}).get("content", {})
    schema: dict[str, Any] = next(iter(content.values()))["schema"] if content else {}
    name = schema.get("$ref", "").rsplit("/", 1)[-1]
    model = doc.get("components", {}).get("schemas", {}).get(name, {})
    props: dict[str, Any] = model.get("properties", {})
    if not props:
        return [f"Body: `{_type(schema)}`", ""] if content else []
    required = set(model.get("required", []))
    rows = ["| Field | Type | Required | Description |", "|---|---|---|---|"]
    for field, spec in props.items():
        rows.append(
            f"| `{field}` | {_cell(_type(spec))} | {'yes' if field in required else ''} "
            f"| {_cell(spec.get('description', spec.get('title', '')))} |"
        )
    return [f"Body (`{name}`):", "", *rows, ""]


def rest_reference(doc: dict[str, Any]) -> str:
    lines = [
        "# REST API reference",
        "",
        "Generated from the OpenAPI document the server serves at `/openapi.json` "
        "([download](openapi.json)); `/docs` on a running server is the same document, "
        "interactive. Every route declares the permission it needs and where it applies "
        "(its *scope*, see [Access and roles](../access.md)); every error is answered in "
        "the shape of the route's clients (MUSUBI's, OpenAI's, Anthropic's or SCIM's).",
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for method, path, op in operations(doc):
        by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((method, path, op))
    for tag in sorted(by_tag):
        lines += [f"## {tag}", ""]
        for method, path, op in by_tag[tag]:
            permission = op.get("x-musubi-permission")
            scope = op.get("x-musubi-scope", "public")
            who = "none (public)" if scope == "public" else f"`{permission or 'any key'}`"
            answers = ", ".join(sorted(op.get("responses", {})))
            lines += [
                f"### `{method} {path}`",
                "",
                f"**{op.get('summary', '')}**",
                "",
                op.get("description", "").strip(),
                "",
                f"Permission: {who} · scope: `{scope}` · answers: {answers}",
                "",
                *_body_fields(doc, op),
            ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- CLI


def cli_commands() -> Iterator[tuple[str, click.Command]]:
    """Every leaf command of ``musubi``, with its full name (imports each subcommand)."""
    from musubi.cli.main import cli

    def walk(cmd: click.Command, name: str) -> Iterator[tuple[str, click.Command]]:
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd, info_name=name)
            for sub in cmd.list_commands(ctx):
                child = cmd.get_command(ctx, sub)
                if child is not None and not child.hidden:
                    yield from walk(child, f"{name} {sub}")
        else:
            yield name, cmd

    yield from walk(cli, "musubi")


def undocumented_commands() -> list[str]:
    missing = []
    for name, cmd in cli_commands():
        if not (cmd.help or cmd.short_help):
            missing.append(name)
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden and not param.help:
                missing.append(f"{name} {param.opts[0]}")
    return missing


def cli_reference() -> str:
    lines = [
        "# CLI reference",
        "",
        "Generated from the `musubi` command itself; `musubi COMMAND --help` prints the same.",
        "",
    ]
    for name, cmd in cli_commands():
        ctx = click.Context(cmd, info_name=name)
        usage = " ".join(cmd.collect_usage_pieces(ctx))
        lines += [f"## `{name}`", "", (cmd.help or cmd.short_help or "").strip(), ""]
        lines += ["```text", f"{name} {usage}".rstrip(), "```", ""]
        rows = []
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                flags = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
                default = "" if param.default in (None, False, ()) else f"`{param.default}`"
                rows.append(f"| {flags} | {_cell(param.help or '')} | {default} |")
        if rows:
            lines += ["| Option | Description | Default |", "|---|---|---|", *rows, ""]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Settings


def undocumented_settings() -> list[str]:
    from musubi.settings import Settings

    return [name for name, field in Settings.model_fields.items() if not field.description]


def settings_reference() -> str:
    from musubi.settings import ENV_PREFIX, Settings

    lines = [
        "# Configuration",
        "",
        "Every setting has an embedded default: MUSUBI runs with no configuration at all. "
        f"Each is read from the environment variable `{ENV_PREFIX}<NAME>` (any case). "
        "Generated from `musubi.settings.Settings`.",
        "",
        "| Variable | Type | Default | Description |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = "computed"
        elif field.default is None:
            default = "unset"
        else:
            default = f"`{field.default}`"
        kind = getattr(field.annotation, "__name__", None) or str(field.annotation)
        lines.append(
            f"| `{ENV_PREFIX}{name.upper()}` | {_cell(kind.replace('typing.', ''))} "
            f"| {default} | {_cell(field.description or '')} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- MkDocs


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    doc = openapi_document()
    pages = {
        "reference/rest.md": rest_reference(doc),
        "reference/cli.md": cli_reference(),
        "reference/settings.md": settings_reference(),
        "reference/openapi.json": json.dumps(doc, indent=1),
    }
    for uri, content in pages.items():
        files.append(File.generated(config, uri, content=content))
    return files
