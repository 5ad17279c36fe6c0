"""Recovery on small synthetic projects: ranking, evidence, structure, the CLI command."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from musubi.cli.sdd_recovery import recover as recover_command
from musubi.sdd.recovery import Requirement, SourceFile, recover
from musubi.sdd.recovery.project import code_files, recover_project

FILES = [
    SourceFile(
        "src/billing/invoice.py",
        '''
class InvoiceService:
    """Create and cancel invoices for paid orders."""

    def create_invoice(self, order: "Order") -> "InvoiceRecord":
        return InvoiceRecord(order.total)

    def cancel_invoice(self, invoice_id: int) -> None:
        """Cancelled invoices keep their number."""
''',
    ),
    SourceFile(
        "src/billing/records.py",
        '''
class InvoiceRecord:
    """A stored row: number, total, status."""
    number: int
''',
    ),
    SourceFile(
        "src/auth/login.py",
        '''
class LoginView:
    """Check a user's password and open a session."""

    def login(self, email: str, password: str) -> "Session":
        return open_session(email)
''',
    ),
    SourceFile(
        "src/mail/reminder.py",
        '''
def send_payment_reminder(customer_email: str) -> None:
    """E-mail a reminder to a customer whose payment is late."""
''',
    ),
    SourceFile("src/util/strings.py", "def slugify(text: str) -> str:\n    return text.lower()\n"),
]

REQUIREMENTS = [
    Requirement("REQ-BILL-001", "WHEN an order is paid, the system SHALL create an invoice."),
    Requirement("REQ-AUTH-001", "WHEN a user logs in with email and password, open a session."),
    Requirement("REQ-MAIL-001", "The system SHALL e-mail a payment reminder to late customers."),
]


def test_obvious_file_ranks_first_with_evidence() -> None:
    result = recover(REQUIREMENTS, FILES)
    assert result.language == "en"
    assert result.ranked("REQ-BILL-001")[0][0] == "src/billing/invoice.py"
    assert result.ranked("REQ-AUTH-001")[0][0] == "src/auth/login.py"
    assert result.ranked("REQ-MAIL-001")[0][0] == "src/mail/reminder.py"
    suggested = {(s.requirement, s.path) for s in result.suggestions}
    assert ("REQ-BILL-001", "src/billing/invoice.py") in suggested
    assert ("REQ-AUTH-001", "src/auth/login.py") in suggested
    assert not any(s.path == "src/util/strings.py" for s in result.suggestions)
    invoice = next(s for s in result.suggestions if s.path == "src/billing/invoice.py")
    terms = {e.term: e.parts for e in invoice.evidence}
    assert "invoice" in terms
    assert "name" in terms["invoice"] or "method" in terms["invoice"]
    assert invoice.to_dict()["evidence"][0]["weight"] > 0


def test_structure_lifts_a_file_the_matched_one_uses() -> None:
    # records.py shares only "invoice" with the requirement; invoice.py, which uses
    # InvoiceRecord, matches much better and lends it part of its score.
    result = recover([REQUIREMENTS[0]], FILES)
    lexical = result.similarity["REQ-BILL-001"]
    combined = result.combined["REQ-BILL-001"]
    records = "src/billing/records.py"
    assert combined[records] > lexical[records] / max(lexical.values()) * 0.7


def test_same_input_same_output() -> None:
    first = [s.to_dict() for s in recover(REQUIREMENTS, FILES).suggestions]
    second = [s.to_dict() for s in recover(REQUIREMENTS, list(reversed(FILES))).suggestions]
    assert first == second


REQUIREMENTS_MD = """# Billing Requirements

## 1. Invoices

### REQ-BILL-001: Invoice on payment

**Pattern**: Event-Driven
**Priority**: P1

**EARS Statement**:
```
WHEN an order is paid, THEN the system SHALL create an invoice for the order.
```

**Acceptance Criteria**:
- [ ] Cancelled invoices keep their number

### REQ-BILL-002: Payment reminder

**Pattern**: Ubiquitous

**EARS Statement**:
```
The system SHALL e-mail a payment reminder to customers whose payment is late.
```
"""


def _project(root: Path) -> Path:
    (root / "storage" / "specs").mkdir(parents=True)
    (root / "storage" / "specs" / "billing-requirements.md").write_text(REQUIREMENTS_MD)
    for f in FILES:
        path = root / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.text)
    (root / "node_modules" / "x").mkdir(parents=True)
    (root / "node_modules" / "x" / "invoice.js").write_text("// invoice invoice invoice")
    return root


def test_project_recovery_skips_explicit_links(tmp_path: Path) -> None:
    root = _project(tmp_path)
    paths = [f.path for f in code_files(root)]
    assert "src/billing/invoice.py" in paths
    assert not any(p.startswith("node_modules") for p in paths)
    result, requirements = recover_project(root)
    assert [r.id for r in requirements] == ["REQ-BILL-001", "REQ-BILL-002"]
    pairs = {(s.requirement, s.path) for s in result.suggestions}
    assert ("REQ-BILL-001", "src/billing/invoice.py") in pairs
    assert ("REQ-BILL-002", "src/mail/reminder.py") in pairs
    # Once the code names the requirement, the link is explicit: no longer suggested.
    invoice = root / "src/billing/invoice.py"
    invoice.write_text("# Implements REQ-BILL-001\n" + invoice.read_text())
    result, _ = recover_project(root)
    pairs = {(s.requirement, s.path) for s in result.suggestions}
    assert ("REQ-BILL-001", "src/billing/invoice.py") not in pairs


def test_recover_command_json_and_table(tmp_path: Path) -> None:
    root = _project(tmp_path)
    runner = CliRunner()
    done = runner.invoke(recover_command, ["-C", str(root), "--json", "-r", "REQ-BILL-002"])
    assert done.exit_code == 0, done.output
    rows = json.loads(done.stdout)
    assert rows[0]["requirement"] == "REQ-BILL-002"
    assert rows[0]["path"] == "src/mail/reminder.py"
    assert rows[0]["evidence"] and {"term", "parts", "weight"} <= set(rows[0]["evidence"][0])
    done = runner.invoke(recover_command, ["-C", str(root), "--top", "1"])
    assert done.exit_code == 0, done.output
    assert "src/billing/invoice.py" in done.stdout
    done = runner.invoke(recover_command, ["-C", str(root), "-r", "REQ-NOPE-001"])
    assert done.exit_code == 1
    assert "unknown requirement" in done.stderr
