"""``musubi sso``: configure an IdP and the policy from the operator CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from musubi.cli.main import cli


def run(home: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), env={"MUSUBI_HOME": str(home)})
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else result.output


def test_add_update_policy_remove(tmp_path: Path) -> None:
    home = tmp_path / "home"
    mapping = '{"groups_claim": "realm_access.roles", "rules": [{"value": "a", "role": "admin"}]}'
    add = ["sso", "add", "corp", "--issuer", "https://idp.example.com", "--client-id", "abc"]
    added = json.loads(
        run(home, *add, "--client-secret", "top-secret-value", "--mapping", mapping, "--json")
    )
    assert added["mapping"]["rules"][0]["role"] == "admin"
    with sqlite3.connect(home / "musubi.db") as db:
        stored = db.execute("SELECT secret FROM sso_idps").fetchone()[0]
    assert "top-secret-value" not in stored and stored.startswith("gAAAA")  # Fernet
    assert json.loads(run(home, "sso", "update", "corp", "--disable", "--json"))["enabled"] is False
    # requiring SSO with no enabled IdP would lock every human user (owners too) out
    refused = run(home, "sso", "policy", "--require-sso", code=1)
    assert "require_sso needs an enabled identity provider" in refused
    assert json.loads(run(home, "sso", "update", "corp", "--enable", "--json"))["enabled"] is True
    policy = json.loads(
        run(home, "sso", "policy", "--require-sso", "--idle-minutes", "15", "--json")
    )
    assert (policy["require_sso"], policy["idle_minutes"]) == (True, 15)
    assert policy["scim_manages_owners"] is False
    changed = json.loads(run(home, "sso", "policy", "--scim-manages-owners", "--json"))
    assert changed["scim_manages_owners"] is True
    assert "require_sso" in run(home, "sso", "remove", "corp", code=1)  # its last IdP
    run(home, "sso", "policy", "--allow-keys")
    bad = ["sso", "add", "x", "--issuer", "http://evil.example", "--client-id", "c"]
    refused = run(home, *bad, "--client-secret", "s", code=1)
    assert "issuer must be an https:// URL" in refused
    run(home, "sso", "remove", "corp")
    assert json.loads(run(home, "sso", "idps", "--json")) == []


def test_add_saml_idp_and_roll_its_certificate(tmp_path: Path) -> None:
    from tests.sso.saml_idp import key_pair

    home = tmp_path / "home"
    old, new = key_pair(tmp_path, "old"), key_pair(tmp_path, "new")
    add = ["sso", "add", "corp-saml", "--protocol", "saml", "--issuer", "urn:corp:idp"]
    saml = ["--sso-url", "https://idp.example.com/sso", "--cert", str(old.cert_file)]
    added = json.loads(run(home, *add, *saml, "--json"))
    assert (added["protocol"], added["saml"]["certificates"]) == ("saml", [old.cert_pem])
    both = [*saml, "--cert", str(new.cert_file)]
    rolled = json.loads(run(home, "sso", "update", "corp-saml", *both, "--json"))
    assert rolled["saml"]["certificates"] == [old.cert_pem, new.cert_pem]
    refused = run(home, *add[:2], "x", *add[3:], code=2)
    assert "--sso-url and one or two --cert" in refused
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    refused = run(home, *add[:2], "y", *add[3:], *saml[:2], "--cert", str(bad), code=1)
    assert "not a PEM certificate" in refused
