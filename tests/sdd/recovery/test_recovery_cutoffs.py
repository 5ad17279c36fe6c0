"""Per-requirement cut-offs and class roles (issue 22): each pinned by a case it fixes."""

from __future__ import annotations

from musubi.sdd.recovery import RecoveryConfig, Requirement, SourceFile, recover
from musubi.sdd.recovery.roles import class_role
from musubi.sdd.recovery.scoring import select

# One requirement whose standardised scores all stand out (a z-score cut keeps them all).
STANDARDISED = {"R1": {f"f{i}": 3.0 - i * 0.1 for i in range(8)}}
SUPPORT = {
    "R1": {"f0": 1.0, "f1": 0.9, "f2": 0.8, "f3": 0.6, "f4": 0.4, "f5": 0.3, "f6": 0.2, "f7": 0.1}
}


def test_z_score_cut_alone_keeps_every_standing_out_file() -> None:
    assert len(select(STANDARDISED, SUPPORT, 1.75)) == 8


def test_relative_cut_follows_the_requirements_own_best_score() -> None:
    chosen = select(STANDARDISED, SUPPORT, 1.75, relative=0.5)
    assert [col for _, col in chosen] == ["f0", "f1", "f2", "f3"]


def test_max_links_caps_a_requirement_best_first() -> None:
    chosen = select(STANDARDISED, SUPPORT, 1.75, max_links=2)
    assert [col for _, col in chosen] == ["f0", "f1"]


def test_best_file_is_kept_even_below_every_cut() -> None:
    low = {"R1": {"a": 0.1, "b": 0.0}}
    assert select(low, {"R1": {"a": 0.5, "b": 0.4}}, 1.75, relative=0.9) == [("R1", "a")]


EXCEPTION = """
/** Raised when creating an invoice for a paid order fails. */
public class InvoiceOrderException extends Exception {
    public InvoiceOrderException(String message) { super(message); }
}
"""


def _user(name: str, body: str) -> SourceFile:
    return SourceFile(
        f"{name}.java",
        f"public class {name} {{\n  {body}\n"
        '  void fail() throws InvoiceOrderException { throw new InvoiceOrderException("x"); }\n}\n',
    )


FILES = [
    SourceFile("InvoiceOrderException.java", EXCEPTION),
    _user("BillingService", "/** Bill a paid order. */ void createInvoice() {}"),
    _user("LoginController", "/** Check a password and open a session. */ void login() {}"),
    _user("ReminderMailer", "/** Mail a payment reminder to late customers. */ void mail() {}"),
    _user("ReportPrinter", "/** Print the monthly sales report. */ void print() {}"),
    _user("StockCounter", "/** Count the articles left in the warehouse. */ void count() {}"),
]
REQUIREMENTS = [
    Requirement("UC1", "The operator creates an invoice for an order that was paid."),
    Requirement("UC2", "A user logs in with a password."),
    Requirement("UC3", "The system mails a payment reminder."),
]


def test_class_roles_are_recognised() -> None:
    assert class_role(EXCEPTION) == "exception"
    assert class_role("public enum Status { OPEN, CLOSED }") == "enum"
    bean = "public class A { public int getId() {return id;} public void setId(int i) {id=i;} }"
    assert class_role(bean) == "data"
    assert class_role(FILES[1].text) is None


def test_generic_exception_no_longer_outranks_the_class_doing_the_work() -> None:
    without = recover(REQUIREMENTS, FILES, RecoveryConfig(role_weights={}))
    assert without.ranked("UC1")[0][0] == "InvoiceOrderException.java"  # the failure fixed
    result = recover(REQUIREMENTS, FILES)
    assert result.ranked("UC1")[0][0] == "BillingService.java"
    linked = {s.path for s in result.suggestions if s.requirement == "UC1"}
    assert "InvoiceOrderException.java" not in linked


def test_roles_only_apply_to_generic_classes() -> None:
    # Mentioned by no other file: the exception is not generic and keeps its full score.
    alone = [FILES[0], SourceFile("Other.java", "public class Other { void print() {} }")]
    with_roles = recover(REQUIREMENTS[:1], alone)
    without = recover(REQUIREMENTS[:1], alone, RecoveryConfig(role_weights={}))
    assert with_roles.similarity == without.similarity
