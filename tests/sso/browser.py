"""Real IdP processes on loopback and a tiny "browser" (httpx) that walks a login."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from tests.conftest import _free_port

IDP_DIR = Path(__file__).parent / "idp"
NPM_HINT = "npm ci --prefix tests/sso/idp"


@asynccontextmanager
async def oidc_provider(
    clients: list[dict[str, Any]], accounts: dict[str, dict[str, Any]], log: Path
) -> AsyncIterator[str]:
    """Run panva/oidc-provider on a free loopback port; yields its issuer URL. Its
    warnings and errors go to ``log``."""
    node = shutil.which("node")
    if node is None or not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(f"the test IdP is not installed: run `{NPM_HINT}` (needs Node.js)")
    config = {"port": _free_port(), "clients": clients, "accounts": accounts}
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            node,
            str(IDP_DIR / "server.mjs"),
            json.dumps(config),
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=IDP_DIR,
        )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
        assert line.startswith(b"READY "), line
        yield line.decode().split(" ", 1)[1].strip()
    finally:
        proc.terminate()
        await proc.wait()


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
_INPUT = re.compile(r"<input([^>]*)>", re.S)
_ATTR = re.compile(r'([a-z-]+)="([^"]*)"')


async def browser_login(
    browser: httpx.AsyncClient, start_url: str, *, login: str, stop_at: str
) -> httpx.Response:
    """Follow redirects and submit the IdP's login and consent forms until a response
    from a URL starting with ``stop_at`` (our callback) comes back; return that one."""
    url: str | None = start_url
    method, data = "GET", None
    for _ in range(20):
        assert url is not None
        r = await browser.request(method, url, data=data)
        if str(r.url).startswith(stop_at):
            return r
        if r.is_redirect:
            url, method, data = urljoin(str(r.url), r.headers["location"]), "GET", None
            continue
        form = _FORM.search(r.text)
        assert form is not None, f"{r.status_code} at {r.url}: {r.text[:500]}"
        data = {}
        for attrs in _INPUT.findall(form.group(2)):
            found = dict(_ATTR.findall(attrs))
            if "name" in found:
                data[found["name"]] = unescape(found.get("value", ""))
        if "login" in data:
            data.update(login=login, password="any")  # the dev login accepts any password
        url, method = urljoin(str(r.url), unescape(form.group(1))), "POST"
    raise AssertionError("the login did not come back to MUSUBI")
