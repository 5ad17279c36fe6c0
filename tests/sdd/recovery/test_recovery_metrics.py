"""Precision, recall, F1 and F2 on a tiny hand-made gold set; the dataset reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from musubi.errors import InvalidInput
from musubi.sdd.recovery.datasets import find_datasets, load_dataset
from musubi.sdd.recovery.evaluate import evaluate_dataset, format_report, metrics

GOLD = {("R1", "A"), ("R1", "B"), ("R2", "C"), ("R3", "D")}


def test_metrics_by_hand() -> None:
    # 2 of 3 predictions are right; 2 of 4 gold links are found.
    m = metrics([("R1", "A"), ("R2", "C"), ("R2", "A"), ("R2", "C")], GOLD)
    assert (m.true_positives, m.predicted, m.gold) == (2, 3, 4)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(0.5)
    assert m.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert m.f2 == pytest.approx(5 * (2 / 3) * 0.5 / (4 * (2 / 3) + 0.5))


def test_metrics_edge_cases() -> None:
    assert metrics([], GOLD).f1 == 0.0
    assert metrics(GOLD, GOLD).f2 == 1.0
    assert metrics([("R9", "Z")], GOLD).precision == 0.0


def _write_dataset(root: Path, answer: str) -> Path:
    (root / "UC").mkdir(parents=True)
    (root / "CC").mkdir()
    (root / "UC" / "UC1.txt").write_text(
        "Use case name: DeleteInvoice\nThe clerk deletes an invoice of a customer.",
        encoding="utf-8-sig",
    )
    (root / "UC" / "UC2.txt").write_text("Send a reminder e-mail to a late customer.")
    (root / "CC" / "InvoiceManager.java").write_text(
        "public class InvoiceManager { public void deleteInvoice(int id) {} }"
    )
    (root / "CC" / "MailSender.java").write_text(
        "/** Sends reminder e-mails. */ public class MailSender { void sendReminder() {} }"
    )
    (root / "answer.csv").write_text(answer)
    return root


def test_load_and_evaluate_small_dataset(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "tiny", "UC1,invoicemanager\r\nUC2,MailSender\r\n")
    assert find_datasets(tmp_path) == [root]
    dataset = load_dataset(root)
    assert dataset.gold == {("UC1", "InvoiceManager"), ("UC2", "MailSender")}
    assert dataset.requirements["UC1"].startswith("Use case name")  # BOM dropped
    report = evaluate_dataset(dataset)
    assert report.metrics.f1 == 1.0
    text = format_report([report], 1.75)
    assert "tiny" in text and "1.000" in text


def test_bad_answer_line_names_file_and_line(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "bad", "UC1,InvoiceManager\nUC2;MailSender\n")
    with pytest.raises(InvalidInput, match=r"answer.csv:2: expected"):
        load_dataset(root)


def test_unknown_class_in_answer(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "bad", "UC1,Nope\n")
    with pytest.raises(InvalidInput, match="unknown class 'Nope'"):
        load_dataset(root)
