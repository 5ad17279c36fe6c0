"""Tokenising, identifier splitting, stemming, language detection, code parts."""

from __future__ import annotations

import pytest

from musubi.sdd.recovery.structure import parse_code
from musubi.text import detect_language, fold, split_identifier, stem, tokenize


@pytest.mark.parametrize(
    ("identifier", "parts"),
    [
        ("deleteCulturalHeritage", ["delete", "cultural", "heritage"]),
        ("getHTTPResponse", ["get", "http", "response"]),
        ("user_id2", ["user", "id", "2"]),
        ("pIdTourist", ["id", "tourist"]),
        ("IDBTourist", ["idb", "tourist"]),
        ("MAX_RETRIES", ["max", "retries"]),
        ("XMLHttpRequest", ["xml", "http", "request"]),
    ],
)
def test_split_identifier(identifier: str, parts: list[str]) -> None:
    assert split_identifier(identifier) == parts


def test_tokenize_drops_stop_words_and_keywords_and_stems() -> None:
    assert tokenize("public void deleteCulturalHeritage(int pId) throws the Exception") == [
        "delet",
        "cultur",
        "heritag",
        "id",
        "except",
    ]


def test_stemming_is_consistent_across_inflections() -> None:
    assert stem("searching", "en") == stem("searches", "en") == stem("search", "en")
    assert stem("deletion", "en") == stem("delete", "en")
    assert stem("utente", "it") == stem("utenti", "it")
    assert stem("cancellazione", "it") == stem("cancellare", "it")


def test_fold_and_italian_stop_words() -> None:
    assert fold("perché è già") == "perche e gia"
    assert tokenize("L'utente è loggato al sistema", "it") == ["utent", "logg", "sistem"]


def test_detect_language() -> None:
    assert detect_language(["The user shall be able to delete the cultural object."]) == "en"
    assert detect_language(["L'utente clicca sul pulsante e il sistema visualizza i dati"]) == "it"


def test_parse_code_separates_parts() -> None:
    java = """
    package it.example;
    /** Manages the cultural heritage objects of an agency. */
    public class CulturalHeritageManager extends Manager {
        private BeanTourist currentTourist;
        // remove one object
        public boolean deleteCulturalHeritage(int pId) throws RemoteException {
            log("deleted heritage");
        }
    }
    """
    parts = parse_code("src/CulturalHeritageManager.java", java).parts
    assert parts["name"] == ["CulturalHeritageManager", "CulturalHeritageManager"]
    assert "deleteCulturalHeritage" in parts["method"]
    assert "currentTourist" in parts["field"]
    assert "BeanTourist" in parts["type"]
    assert any("cultural heritage objects" in c for c in parts["comment"])
    assert any("remove one object" in c for c in parts["comment"])
    assert parts["string"] == ["deleted heritage"]
    assert "remove" not in parts["code"][0]


def test_parse_python() -> None:
    source = '''
class InvoiceService:
    """Creates invoices for paid orders."""

    def create_invoice(self, order_id: int) -> "Invoice":  # one per order
        return Invoice(order_id)
'''
    parsed = parse_code("billing/service.py", source)
    assert "InvoiceService" in parsed.parts["name"]
    assert "create_invoice" in parsed.parts["method"]
    assert any("paid orders" in c for c in parsed.parts["comment"])
    assert any("one per order" in c for c in parsed.parts["comment"])
    assert "Invoice" in parsed.references
