"""The import graph localisation spreads scores along: import lines read from chunks."""

from __future__ import annotations

from musubi.knowledge.imports import ImportGraph, imported_modules


def test_absolute_relative_aliased_and_parenthesised_imports() -> None:
    text = """import os, shop.payments.retry as retry
from shop.billing import Invoice, send_reminder as remind
from .gateway import (
    PaymentGateway,
    charge,  # the function
)
from .. import mailer
from . import retry
def f():
    from ..billing import Invoice
"""
    got = imported_modules(text, ("shop", "payments"))
    assert got == [
        "os",
        "shop.payments.retry",
        "shop.billing.Invoice",
        "shop.billing.send_reminder",
        "shop.payments.gateway.PaymentGateway",
        "shop.payments.gateway.charge",
        "shop.mailer",
        "shop.payments.retry",
        "shop.billing.Invoice",
    ]


def test_a_relative_import_above_the_top_package_is_dropped() -> None:
    assert imported_modules("from ... import x\n", ("shop",)) == []


def test_graph_keeps_both_directions_and_drops_what_resolves_to_nothing() -> None:
    files = {"shop/billing.py": "shop.billing", "shop/payments/gateway.py": "shop.payments.gateway"}

    def resolve(dotted: str) -> list[str]:
        return [p for p, m in files.items() if dotted == m or dotted.startswith(m + ".")]

    graph = ImportGraph.build(
        [
            ("shop/billing.py", "import json\nfrom shop.payments.gateway import PaymentGateway\n"),
            ("shop/billing.py", "from shop.billing import Invoice\n"),  # itself: no edge
        ],
        lambda path: ("shop",),
        resolve,
    )
    assert graph.imports == {"shop/billing.py": {"shop/payments/gateway.py"}}
    assert graph.importers == {"shop/payments/gateway.py": {"shop/billing.py"}}
