from __future__ import annotations

import itertools

import pytest

from musubi.knowledge.chunking import ChunkOptions, chunk_file
from musubi.knowledge.languages import LANGUAGES, detect_language
from tests.knowledge.snippets import SNIPPETS

pytest.importorskip("tree_sitter", reason="the knowledge extra is not installed")

UNITS = ("function", "method", "class")


def test_at_least_fifteen_languages_have_snippets() -> None:
    assert set(SNIPPETS) == set(LANGUAGES)
    assert len(LANGUAGES) >= 15


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_units_per_language(language: str) -> None:
    name, source, expected = SNIPPETS[language]
    assert detect_language(name) == language
    chunks = chunk_file(name, language, source)
    assert [(c.kind, c.symbol) for c in chunks if c.kind in UNITS] == expected
    lines = source.splitlines()
    for c in chunks:  # each chunk's text ends with exactly its own lines
        assert c.text.endswith("\n".join(lines[c.start - 1 : c.end]))


def test_python_boundaries_and_method_keeps_class_header() -> None:
    _, source, _ = SNIPPETS["python"]
    by_symbol = {c.symbol: c for c in chunk_file("a.py", "python", source)}
    assert (by_symbol["top"].start, by_symbol["top"].end) == (4, 6)  # decorator included
    assert (by_symbol["Shape"].start, by_symbol["Shape"].end) == (9, 13)  # header, doc, fields
    method = by_symbol["Shape.area"]
    assert (method.start, method.end) == (14, 15)
    assert method.text.splitlines()[0] == "class Shape:"
    imports = [c for c in chunk_file("a.py", "python", source) if c.kind == "block"]
    assert imports[0].text.startswith("import os")


def test_oversized_unit_split_with_overlap_and_header() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(200))
    source = f"def big():\n{body}\n"
    chunks = chunk_file("b.py", "python", source, ChunkOptions(max_lines=50, overlap=10))
    assert len(chunks) > 3 and all(c.symbol == "big" for c in chunks)
    assert chunks[0].start == 1 and chunks[-1].end == 201
    for a, b in itertools.pairwise(chunks):
        assert b.start == a.end - 9  # 10 lines shared
        assert b.text.startswith("def big():")


def test_unknown_language_line_windows() -> None:
    text = "\n".join(f"line {i}" for i in range(1, 121))
    chunks = chunk_file("notes.xyz", "text", text, ChunkOptions(max_lines=50, overlap=10))
    assert [(c.start, c.end) for c in chunks] == [(1, 50), (41, 90), (81, 120)]
    assert {c.kind for c in chunks} == {"lines"}


def test_markdown_by_heading() -> None:
    text = "intro\n# Title\nabout\n## Usage\n```\n# not a heading\n```\n## API\nx\n"
    chunks = chunk_file("README.md", "markdown", text)
    assert [(c.symbol, c.start, c.end) for c in chunks] == [
        ("", 1, 1),
        ("Title", 2, 3),
        ("Title > Usage", 4, 7),
        ("Title > API", 8, 9),
    ]


def test_markdown_headings_of_one_level_are_siblings() -> None:
    """Before: with a level skipped (a page of ``##`` sections, ``#`` then ``###``), each
    heading came back nested in the previous one of the same level."""
    text = "## Install\na\n## Usage\nb\n### CLI\nc\n### API\nd\n## FAQ\ne\n"
    chunks = chunk_file("docs/guide.md", "markdown", text)
    assert [c.symbol for c in chunks] == [
        "Install",
        "Usage",
        "Usage > CLI",
        "Usage > API",
        "FAQ",
    ]
    skipped = chunk_file("x.md", "markdown", "# T\n### One\n1\n### Two\n2\n## Three\n3\n")
    assert [c.symbol for c in skipped] == ["T", "T > One", "T > Two", "T > Three"]


def test_blank_file_has_no_chunks() -> None:
    assert chunk_file("e.py", "python", "\n\n  \n") == []
