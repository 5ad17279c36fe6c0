"""Bulk administration: create or update users, keys, projects and role assignments
from CSV or JSON, item by item, and export them in a form the import accepts back.

Used by ``POST|GET /v1/bulk/{kind}`` and ``musubi bulk import|export``; see docs/bulk.md.
"""

from __future__ import annotations

from typing import Any

from musubi.bulk.assignments import ASSIGNMENTS
from musubi.bulk.base import Caller, Kind
from musubi.bulk.formats import MAX_ITEMS, Format, RawItem, parse, render
from musubi.bulk.keys import KEYS
from musubi.bulk.projects import PROJECTS
from musubi.bulk.run import ItemResult, Report, export_rows, import_items
from musubi.bulk.users import USERS

__all__ = [
    "KINDS",
    "MAX_ITEMS",
    "Caller",
    "Format",
    "ItemResult",
    "Kind",
    "RawItem",
    "Report",
    "export_rows",
    "import_items",
    "parse",
    "render",
]

KINDS: dict[str, Kind[Any]] = {k.name: k for k in (USERS, KEYS, PROJECTS, ASSIGNMENTS)}
