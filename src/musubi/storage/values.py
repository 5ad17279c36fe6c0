"""What a database can store, checked on every statement's parameters in one place.

PostgreSQL refuses a NUL character in text (asyncpg raises, the request answered 500) and
both databases refuse integers past 64 bits; a string holding a lone UTF-16 surrogate
cannot even be encoded for the driver. Rather than each request model, importer and SCIM
handler remembering these rules, :func:`install` checks the bound parameters of every
statement an engine runs and raises :class:`~musubi.errors.InvalidInput` naming the
parameter's column (``name``, ``repo_path``, ``id``), the same on SQLite and PostgreSQL.
Nothing was sent, so the transaction rolls back as for any other refused input.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from musubi.errors import InvalidInput

__all__ = ["check_value", "install"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_NUMBERED = re.compile(r"_\d+$")


def check_value(field: str, value: object) -> None:
    """Raise :class:`InvalidInput` if ``value`` cannot be stored."""
    if isinstance(value, str):
        if value.isascii() and "\x00" not in value:
            return
        bad = _BAD_TEXT.search(value)
        if bad is not None:
            what = "a NUL character" if bad[0] == "\x00" else "a lone UTF-16 surrogate"
            raise InvalidInput(f"{field}: contains {what}", field=field)
    elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise InvalidInput(f"{field}: integer outside the 64-bit range", field=field)


def _field(key: str) -> str:
    """The column a bind parameter stands for: ``name``, ``name_1`` → name; ``pk_1`` → id."""
    name = _NUMBERED.sub("", key)
    return "id" if name == "pk" else name


def _check_statement(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    for params in getattr(context, "compiled_parameters", None) or ():
        for key, value in params.items():
            # the common cases inline, the column's name worked out only for a refusal:
            # a flush of the usage ledger binds thousands of values (issue 24)
            if isinstance(value, str):
                if not (value.isascii() and "\x00" not in value):
                    check_value(_field(key), value)
            elif isinstance(value, int):
                if not INT64_MIN <= value <= INT64_MAX:
                    check_value(_field(key), value)
            elif isinstance(value, list | tuple):  # an expanding IN (...) parameter
                for item in value:
                    check_value(_field(key), item)


def install(engine: Engine) -> None:
    """Check the parameters of every statement ``engine`` runs (before they are sent)."""
    event.listen(engine, "before_cursor_execute", _check_statement)
