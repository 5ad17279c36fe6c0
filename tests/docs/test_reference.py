"""The generated reference cannot drift: every route, command, option and setting says
what it is, and the pages name each route's permission and scope."""

from __future__ import annotations

from typing import Any

import pytest

from tests.docs import hooks

docs = hooks.load()


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    doc: dict[str, Any] = docs.openapi_document()
    return doc


def test_every_route_is_described() -> None:
    assert docs.undocumented_routes() == [], "give these routes a summary= or a docstring"


def test_every_command_and_option_is_described() -> None:
    assert docs.undocumented_commands() == [], "give these commands/options a help text"


def test_every_setting_is_described() -> None:
    assert docs.undocumented_settings() == [], "give these Settings fields a description"


def test_every_operation_names_its_permission_and_scope(openapi: dict[str, Any]) -> None:
    from musubi.api.app import PUBLIC_PATHS

    for method, path, op in docs.operations(openapi):
        if path in PUBLIC_PATHS:
            assert "x-musubi-scope" not in op, f"{method} {path} is public"
        else:
            assert op.get("x-musubi-scope") in {"tenant", "team", "project", "own"}, (method, path)
    teams = openapi["paths"]["/v1/teams"]["post"]
    assert (teams["x-musubi-permission"], teams["x-musubi-scope"]) == ("teams:write", "tenant")


def test_the_rest_page_lists_every_operation(openapi: dict[str, Any]) -> None:
    page = docs.rest_reference(openapi)
    for method, path, _ in docs.operations(openapi):
        assert f"### `{method} {path}`" in page
    assert "Permission: `teams:write` · scope: `tenant`" in page


def test_the_cli_page_lists_every_command() -> None:
    page = docs.cli_reference()
    for name, _ in docs.cli_commands():
        assert f"## `{name}`" in page
    assert "`musubi serve`" in page and "`musubi trace check`" in page


def test_the_settings_page_lists_every_variable() -> None:
    from musubi.settings import Settings

    page = docs.settings_reference()
    for name in Settings.model_fields:
        assert f"`MUSUBI_{name.upper()}`" in page
