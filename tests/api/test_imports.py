"""What a server worker loads: every module imported at start is resident in every worker
(the gateway's idle-RSS goal), so heavy ones are imported where they are used."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Needed only by some requests or commands: Alembic (a migration), httpx (an OIDC login;
# it also loads its CLI's rich and pygments), the ML and SSO stacks, the offline model,
# PyYAML (SDD documents; the model catalogue is TOML), the PostgreSQL dialect (a server on
# SQLite never needs it). prometheus_client is no dependency any more (musubi.api.metrics
# renders the two families; its exposition server, WSGI and urllib imports cost ~1 MB).
LAZY = (
    "alembic",
    "httpx",
    "rich",
    "numpy",
    "torch",
    "tokenizers",
    "authlib",
    "saml2",
    "gguf",
    "yaml",
    "sqlalchemy.dialects.postgresql",
    "prometheus_client",
)


pytestmark = pytest.mark.slow  # fresh interpreters


def test_the_app_module_loads_no_heavy_optional_module() -> None:
    code = f"import sys, musubi.api.app\nprint(','.join(m for m in {LAZY!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at start: {out.stdout.strip()}"
