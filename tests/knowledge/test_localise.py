"""Issue-to-file localisation: the signals read from an issue, and the ranking they drive.

The end-to-end cases are built so that retrieval alone (today's ``rank_files``) gets them
wrong, which each test asserts first: the ranking only comes out right through the signal
under test (a traceback frame, a defined class name, the demotion of tests).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from musubi.cli.main import cli
from musubi.knowledge.embeddings.hashing import HashingEmbedder
from musubi.knowledge.indexer import index_repository
from musubi.knowledge.localise import extract_signals, file_lexical, file_role, localise
from musubi.knowledge.retrieval import Retriever, rank_files
from musubi.knowledge.store import Filters, KnowledgeIndex
from musubi.knowledge.vectorstores import MemoryVectorStore

pytest.importorskip("tree_sitter", reason="the knowledge extra is not installed")

SHOP = {
    "shop/__init__.py": "from shop.billing import Invoice\n\n__all__ = ['Invoice']\n",
    "shop/billing.py": '''"""Invoices and the reminders sent for unpaid ones."""

from shop.payments.gateway import PaymentGateway


class Invoice:
    def __init__(self, lines, discount=0):
        self.lines = lines
        self.discount = discount

    def total(self):
        return sum(line.amount for line in self.lines)


def send_reminder(invoice, mailer):
    """Charge the saved card of an unpaid invoice, then mail the customer."""
    PaymentGateway().charge(invoice.card, invoice.total())
    mailer.send(invoice.customer, "reminder")
''',
    "shop/mailer.py": '''"""Reminder e-mails for unpaid invoices."""


def render_reminder(invoice):
    return (
        f"Dear customer, your invoice is unpaid: the invoice total is {invoice.total()}. "
        "This reminder is sent for every unpaid invoice until the invoice is paid."
    )


def send(customer, text):
    return customer.email, text
''',
    "shop/payments/__init__.py": "",
    "shop/payments/gateway.py": '''from shop.payments.retry import RetryPolicy


class PaymentGateway:
    """Charges cards through the acquirer; every charge is retried by a RetryPolicy."""

    def __init__(self, policy=None):
        self.policy = policy or RetryPolicy(attempts=3)

    def charge(self, card, amount):
        if amount <= 0:
            raise ValueError("amount must be positive")
        return self.policy.run(lambda: card.debit(amount))
''',
    "shop/payments/retry.py": """class RetryPolicy:
    def __init__(self, attempts):
        self.attempts = attempts

    def run(self, call):
        for _ in range(self.attempts - 1):
            try:
                return call()
            except OSError:
                continue
        return call()
""",
    "tests/test_billing.py": """from shop.billing import Invoice


def test_invoice_total_with_discount():
    invoice = Invoice([], discount=10)
    assert invoice.total() == 0  # the invoice total ignores the invoice discount


def test_invoice_total_discount_rounding():
    invoice = Invoice([], discount=5)
    assert invoice.total() == 0  # invoice discount, invoice total
""",
    "docs/billing.md": "# Invoices\n\nAn invoice total is the sum of its lines, less the "
    "discount.\n",
}

TRACEBACK_ISSUE = """Reminder for an unpaid invoice crashes

Sending the reminder for an unpaid invoice whose total is zero fails; the customer gets no
reminder e-mail at all and the invoice stays unpaid.

Traceback (most recent call last):
  File "/srv/shop-app/jobs/remind.py", line 14, in <module>
    run_all()
  File "/srv/shop-app/.venv/lib/python3.11/site-packages/shop/billing.py", line 17, in send_reminder
    PaymentGateway().charge(invoice.card, invoice.total())
  File "/srv/shop-app/.venv/lib/python3.11/site-packages/shop/payments/gateway.py", line 12, \
in charge
    raise ValueError("amount must be positive")
ValueError: amount must be positive
"""


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def shop(tmp_path: Path) -> Retriever:
    root = _write(tmp_path / "shop-repo", SHOP)
    index = KnowledgeIndex.memory()
    embedder = HashingEmbedder()
    store = MemoryVectorStore(embedder.dim)
    index_repository(root, index, embedder, store)
    return Retriever(index, embedder, store)


def _retrieval_only(retriever: Retriever, issue: str) -> list[str]:
    """Today's ranking: chunk hits aggregated per file."""
    return [p for p, _ in rank_files(retriever.search(issue, 50), 10)]


# -- signals --------------------------------------------------------------------------------


def test_python_traceback_gives_frame_paths_innermost_first_and_functions() -> None:
    signals = extract_signals(TRACEBACK_ISSUE)
    assert signals.frames[:2] == (
        "/srv/shop-app/.venv/lib/python3.11/site-packages/shop/payments/gateway.py",
        "/srv/shop-app/.venv/lib/python3.11/site-packages/shop/billing.py",
    )
    assert {"charge", "send_reminder", "PaymentGateway"} <= set(signals.identifiers)
    assert "<module>" not in signals.identifiers and "Traceback" not in signals.identifiers


def test_java_and_javascript_frames_become_paths() -> None:
    signals = extract_signals(
        'Exception in thread "main" java.lang.IllegalStateException: closed\n'
        "    at com.acme.billing.InvoiceService.close(InvoiceService.java:88)\n"
        "    at com.acme.App$Runner.main(App.java:12)\n"
        "TypeError: x is undefined\n"
        "    at renderCart (/home/me/shop/src/cart/render.js:41:13)\n"
    )
    assert signals.frames[:3] == (
        "com/acme/billing/InvoiceService.java",
        "com/acme/App.java",
        "/home/me/shop/src/cart/render.js",
    )
    assert "com.acme.billing.InvoiceService" in signals.modules
    assert {"close", "renderCart"} <= set(signals.identifiers)


def test_paths_modules_and_identifiers_in_prose() -> None:
    signals = extract_signals(
        "`Session.merge_environment_settings` drops the proxies (see requests/sessions.py "
        "and utils.py, e.g. version 2.31). Calling django.db.models.query.QuerySet.update() "
        "on a HTTPAdapter subclass fails; the Session object is reused."
    )
    assert signals.paths == ("requests/sessions.py", "utils.py")
    assert "django.db.models.query.QuerySet.update" in signals.modules
    assert "e.g" not in signals.modules
    assert {"Session.merge_environment_settings", "merge_environment_settings", "QuerySet"} <= set(
        signals.identifiers
    )
    assert {"HTTPAdapter", "update"} <= set(signals.identifiers)
    assert "Session" in signals.capitalised  # mid-sentence: checked against class names


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("src/shop/billing.py", "source"),
        ("tests/test_billing.py", "test"),
        ("sympy/core/tests/test_basic.py", "test"),
        ("pkg/billing_test.go", "test"),
        ("web/cart.spec.ts", "test"),
        ("src/test/java/com/acme/AppTest.java", "test"),
        ("docs/usage.rst", "doc"),
        ("README.md", "doc"),
        ("examples/plot_kmeans.py", "example"),
    ],
)
def test_file_roles(path: str, role: str) -> None:
    assert file_role(path) == role


# -- ranking --------------------------------------------------------------------------------


def test_the_file_named_only_by_a_traceback_frame_ranks_first(shop: Retriever) -> None:
    assert _retrieval_only(shop, TRACEBACK_ISSUE)[0] != "shop/payments/gateway.py"
    files = localise(shop, TRACEBACK_ISSUE, 5)
    assert files[0].path == "shop/payments/gateway.py"
    assert "traceback" in files[0].why
    frame_two = next(f for f in files if f.path == "shop/billing.py")
    assert "traceback" in frame_two.why and frame_two.score < files[0].score


def test_the_file_defining_a_named_class_ranks_first(shop: Retriever) -> None:
    issue = (
        "Card charges give up one attempt early\n\nThe payment gateway charge is retried "
        "after a network error, but a RetryPolicy with three attempts only tries twice "
        "before the charge of the card fails."
    )
    assert _retrieval_only(shop, issue)[0] != "shop/payments/retry.py"
    files = localise(shop, issue, 5)
    assert files[0].path == "shop/payments/retry.py"
    assert "defines: RetryPolicy" in files[0].why


def test_a_test_file_ranks_below_its_source(shop: Retriever) -> None:
    issue = "invoice discount ignored\n\nthe invoice total ignores the invoice discount."
    before = _retrieval_only(shop, issue)
    assert before.index("tests/test_billing.py") < before.index("shop/billing.py")
    ranked = [f.path for f in localise(shop, issue, 10)]
    assert ranked.index("shop/billing.py") < ranked.index("tests/test_billing.py")
    demoted = next(f for f in localise(shop, issue, 10) if f.path == "tests/test_billing.py")
    assert "test file (demoted)" in demoted.why


def test_an_issue_about_tests_keeps_them_demoted_unless_told_otherwise(
    shop: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22, part 2: a title about tests or docs used to lift their demotion; on the
    tuning commits that cost Acc@5 .568 -> .504 (the file to change is the source), so
    ``ABOUT_LIFT`` was fitted to 0. The knob still restores the old behaviour."""
    import musubi.knowledge.localise as loc

    issue = "Flaky test for the invoice discount\n\nThe invoice total ignores the discount."
    test_file = next(f for f in localise(shop, issue, 10) if f.path == "tests/test_billing.py")
    assert "test file (demoted)" in test_file.why
    monkeypatch.setattr(loc, "ABOUT_LIFT", 1.0)
    lifted = next(f for f in localise(shop, issue, 10) if f.path == "tests/test_billing.py")
    assert not any("demoted" in w for w in lifted.why) and lifted.score > test_file.score


def test_paths_and_module_paths_written_in_the_issue(shop: Retriever) -> None:
    issue = "Unpaid invoice reminder e-mails break the package exports in shop/__init__.py"
    assert _retrieval_only(shop, issue)[0] != "shop/__init__.py"
    by_path = localise(shop, issue, 3)
    assert by_path[0].path == "shop/__init__.py"
    assert "mentioned: shop/__init__.py" in by_path[0].why
    slow = "Importing shop.payments.retry is slow on a cold start"
    assert _retrieval_only(shop, slow)[0] != "shop/payments/retry.py"
    by_module = localise(shop, slow, 3)
    assert by_module[0].path == "shop/payments/retry.py"
    assert "module: shop.payments.retry" in by_module[0].why


def test_filters_limit_the_files(shop: Retriever) -> None:
    files = localise(shop, TRACEBACK_ISSUE, 10, Filters(path_glob="shop/billing*"))
    assert [f.path for f in files] == ["shop/billing.py"]


def test_whole_file_bm25_follows_reindexing(tmp_path: Path) -> None:
    root = _write(tmp_path / "r", {"a.py": "def alpha():\n    return 1\n", "b.py": "X = 2\n"})
    index = KnowledgeIndex.memory()
    index_repository(root, index)
    assert [p for p, _ in file_lexical(index, "alpha")] == ["a.py"]
    (root / "b.py").write_text("def alpha_beta():\n    return 'alpha'\n")
    (root / "a.py").unlink()
    index_repository(root, index)
    assert [p for p, _ in file_lexical(index, "alpha")] == ["b.py"]


def test_cli_files_carry_the_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_HOME", str(tmp_path / "home"))
    root = _write(tmp_path / "shop-repo", SHOP)
    runner = CliRunner()
    done = runner.invoke(cli, ["index", str(root), "--embedder", "hashing", "--json"])
    assert done.exit_code == 0, done.output
    args = ["--repo", str(root), "--embedder", "hashing", "--files", "-k", "3"]
    out = runner.invoke(cli, ["search", TRACEBACK_ISSUE, *args, "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert rows[0]["path"] == "shop/payments/gateway.py" and "traceback" in rows[0]["why"]
    assert set(rows[0]) == {"path", "score", "why"}
    table = runner.invoke(cli, ["search", TRACEBACK_ISSUE, *args])
    assert table.exit_code == 0 and "gateway.py" in table.output


def test_whole_file_text_is_scaled_over_the_files_that_can_win(
    shop: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: the test file has the best whole-file BM25 for this issue; scaled over every
    file it squeezed the source file's text score. Scaled over source files (tests are not
    what this issue is about), the source file gets the full text score."""
    import musubi.knowledge.localise as loc

    issue = "invoice discount ignored\n\nthe invoice total ignores the invoice discount."
    assert file_lexical(shop.index, issue, 5)[0][0] == "tests/test_billing.py"
    monkeypatch.setattr(loc, "TEXT_SOURCE_ONLY", 0.0)
    before = {f.path: f.score for f in localise(shop, issue, 10)}
    monkeypatch.setattr(loc, "TEXT_SOURCE_ONLY", 1.0)
    after = {f.path: f.score for f in localise(shop, issue, 10)}
    assert after["shop/billing.py"] > before["shop/billing.py"]
    assert after["tests/test_billing.py"] < before["tests/test_billing.py"]


# -- signals fitted on this repository's history (issue 22, part 2) -------------------------


def _ranked(retriever: Retriever, issue: str, k: int = 4) -> list[str]:
    return [f.path for f in localise(retriever, issue, k)]


def test_words_naming_a_files_module_path_lift_it(
    shop: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The words "payments gateway" name ``shop/payments/gateway.py`` without writing its path; the
    prose (reminders, unpaid invoices) reads like ``shop/billing.py``."""
    import musubi.knowledge.localise as loc

    issue = "Payments gateway: reminders for unpaid invoices are charged twice"
    assert _retrieval_only(shop, issue)[0] == "shop/billing.py"
    monkeypatch.setattr(loc, "W_IMPORTS", 0.0)  # the gateway is also imported by billing
    first = localise(shop, issue, 3)[0]
    assert first.path == "shop/payments/gateway.py"
    assert "path words: gateway, payments" in first.why
    evidence = loc.gather_evidence(shop, issue)
    assert evidence.files["shop/payments/gateway.py"].path_words > 0.5
    assert evidence.files["shop/billing.py"].path_words == 0  # no word of its own name
    monkeypatch.setattr(loc, "W_PATH_WORDS", 0.0)
    assert _ranked(shop, issue)[0] == "shop/billing.py"


def test_a_file_imported_by_the_best_candidate_gets_a_share_of_its_score(
    shop: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry policy that gives up early is used by the gateway the issue describes:
    ``shop/payments/gateway.py`` imports ``shop/payments/retry.py``."""
    import musubi.knowledge.localise as loc

    issue = "Payments retry gives up too early: a card charge for an unpaid invoice reminder fails"
    assert "shop/payments/retry.py" not in _retrieval_only(shop, issue)[:3]
    monkeypatch.setattr(loc, "W_PATH_WORDS", 0.0)  # "payments retry" also names the file
    files = localise(shop, issue, 4)
    assert "shop/payments/retry.py" in [f.path for f in files[:3]]
    retry = next(f for f in files if f.path == "shop/payments/retry.py")
    assert "imported by shop/payments/gateway.py" in retry.why
    monkeypatch.setattr(loc, "W_IMPORTS", 0.0)
    assert "shop/payments/retry.py" not in _ranked(shop, issue, 3)


def test_a_file_importing_the_best_candidate_gets_a_share_of_its_score(
    shop: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off by default (``W_IMPORTERS`` = 0: on the tuning commits it moved no Acc@k); the
    mechanism, when set."""
    import musubi.knowledge.localise as loc

    monkeypatch.setattr(loc, "W_IMPORTERS", 0.1)
    issue = "Payments gateway: reminders for unpaid invoices are charged twice"
    with_importers = {f.path: f for f in localise(shop, issue, 4)}
    billing = with_importers["shop/billing.py"]
    assert "imports shop/payments/gateway.py" in billing.why
    monkeypatch.setattr(loc, "W_IMPORTERS", 0.0)
    without = {f.path: f.score for f in localise(shop, issue, 4)}
    assert billing.score > without["shop/billing.py"]


def test_what_localise_reads_from_the_index_follows_reindexing(tmp_path: Path) -> None:
    """Definitions, path words and imports are kept between queries; a changed index is
    read again."""
    root = _write(tmp_path / "r", {"app/core.py": "def run():\n    return 1\n"})
    index = KnowledgeIndex.memory()
    index_repository(root, index)
    issue = "RateLimiter lets every request through"
    assert not any(f.why[0].startswith("defines") for f in localise(Retriever(index), issue))
    _write(
        root, {"app/limits.py": "class RateLimiter:\n    def allow(self):\n        return True\n"}
    )
    index_repository(root, index)
    first = localise(Retriever(index), issue)[0]
    assert first.path == "app/limits.py" and "defines: RateLimiter" in first.why
