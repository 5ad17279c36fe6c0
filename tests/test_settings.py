"""Settings come from MUSUBI_* environment variables; keyword arguments override them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from musubi.settings import Settings


def test_environment_variables_are_parsed_by_field_type(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MUSUBI_HOME", str(tmp_path))
    monkeypatch.setenv("MUSUBI_PORT", "8081")
    monkeypatch.setenv("musubi_server_gc", "yes")  # names in any case, as before
    monkeypatch.setenv("MUSUBI_AUTH_CACHE_SECONDS", "0.5")
    monkeypatch.setenv("MUSUBI_QUEUE", "redis")
    monkeypatch.setenv("MUSUBI_BOOTSTRAP_KEY", "msk_abcdefgh_secret")
    monkeypatch.setenv("MUSUBI_NOT_A_SETTING", "ignored")
    s = Settings()
    assert (s.home, s.port, s.server_gc, s.auth_cache_seconds) == (tmp_path, 8081, True, 0.5)
    assert s.queue == "redis"
    assert s.bootstrap_key is not None
    assert s.bootstrap_key.get_secret_value() == "msk_abcdefgh_secret"
    assert "msk_abcdefgh_secret" not in repr(s)


def test_keyword_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_PORT", "8081")
    assert Settings(port=9000).port == 9000


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUSUBI_PORT", raising=False)
    monkeypatch.delenv("MUSUBI_QUEUE", raising=False)
    s = Settings()
    assert (s.port, s.queue) == (8000, "database")


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [("MUSUBI_PORT", "eighty", "port"), ("MUSUBI_QUEUE", "kafka", "queue")],
)
def test_a_bad_value_names_its_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as err:
        Settings()
    assert err.value.errors()[0]["loc"] == (field,)
