"""Turning prose and identifiers into index terms.

``tokenize("deleteCulturalHeritage(int pId)")`` gives ``["delet", "cultur", "heritag", "id"]``:
words are split at non-letters, identifiers at camelCase / snake_case boundaries, accents are
folded, stop words (English, Italian, code keywords) dropped, and what is left goes through a
light suffix stemmer for the corpus language. Both sides of a trace link go through the same
function with the same language, so the stemmer only has to be *consistent*, not correct.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Literal

from musubi.stopwords import ENGLISH_STOP_WORDS, ITALIAN_STOP_WORDS, STOP_WORDS

__all__ = [
    "Language",
    "detect_language",
    "fold",
    "split_identifier",
    "stem",
    "tokenize",
    "words",
]

Language = Literal["en", "it"]

_WORD = re.compile(r"[A-Za-z0-9]+")
# Upper-case runs (``HTTP`` in ``HTTPServer``), capitalised or lower-case words, digits.
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
# A one-letter prefix naming parameters or members (``pIdTourist``, ``mName``, ``sName``).
_PREFIX = re.compile(r"^[a-z](?=[A-Z][a-z])")


def _by_length(text: str) -> list[str]:
    """Distinct whitespace-separated words, longest first (so the longest suffix wins)."""
    return sorted(set(text.split()), key=lambda word: (-len(word), word))


_EN_SUFFIXES = _by_length(
    """
    ational ization fulness iveness ations ation ements ement ments ment ities ity ness
    ings ing ions ion ers er ies ied ed es s ly ful ive able ible al
    """
)
_IT_SUFFIXES = _by_length(
    """
    azioni azione amenti amento imenti imento mente zioni zione abili abile ibili ibile
    ita ista iste isti ando endo are ere ire ato ata ati ate ito ita iti ite uto uta uti
    ute ore ori ice ici a e i o
    """
)
_MIN_STEM = 3


def fold(text: str) -> str:
    """Strip accents and other combining marks: ``perché`` -> ``perche``."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def split_identifier(identifier: str) -> list[str]:
    """Split one identifier into lower-case parts.

    ``getHTTPResponse`` -> ``["get", "http", "response"]``; ``user_id2`` -> ``["user", "id",
    "2"]``; ``pIdTourist`` -> ``["id", "tourist"]`` (a one-letter Hungarian prefix is dropped).
    """
    parts: list[str] = []
    for chunk in re.split(r"[_\W]+", identifier):
        if not chunk:
            continue
        chunk = _PREFIX.sub("", chunk)
        parts.extend(match.group(0).lower() for match in _PART.finditer(chunk))
    return parts


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` with identifiers split, before stop words and stemming."""
    out: list[str] = []
    for match in _WORD.finditer(fold(text)):
        out.extend(split_identifier(match.group(0)))
    return out


def stem(word: str, language: Language) -> str:
    """Strip one inflectional/derivational suffix (and a trailing vowel-like letter)."""
    if len(word) <= _MIN_STEM or word.isdigit():
        return word
    suffixes = _IT_SUFFIXES if language == "it" else _EN_SUFFIXES
    for suffix in suffixes:
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            word = word[: -len(suffix)]
            break
    if language == "en" and len(word) > _MIN_STEM and word[-1] in "ey":
        word = word[:-1]
    return word


def tokenize(text: str, language: Language = "en") -> list[str]:
    """Index terms of ``text``: split, folded, without stop words, stemmed."""
    return [
        stem(word, language)
        for word in words(text)
        if len(word) > 1 and not word.isdigit() and word not in STOP_WORDS
    ]


def detect_language(texts: Iterable[str]) -> Language:
    """Guess English or Italian from how many stop words of each the texts use."""
    english = italian = 0
    for text in texts:
        for word in _WORD.findall(fold(text).lower()):
            english += word in ENGLISH_STOP_WORDS
            italian += word in ITALIAN_STOP_WORDS
    return "it" if italian > english else "en"
