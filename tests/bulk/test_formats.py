"""Reading CSV and JSON into numbered items: a bad row fails alone, with its line."""

from __future__ import annotations

import json

import pytest

from musubi.bulk import parse, render
from musubi.errors import InvalidInput, PayloadTooLarge


def test_csv_rows_carry_their_line_and_a_broken_row_spoils_no_other() -> None:
    body = (
        "\ufeffname, display_name\n"  # a BOM and spaces in the header (spreadsheet exports)
        "alice,Alice\n"
        '"bob,Bob\n'  # unterminated quote: would swallow the rest of the file
        "\n"  # blank lines are not items
        'carol,"Carol\nwith a line break"\n'  # a quoted cell may span lines
        'dave,"Dave"x\n'  # text after a closing quote
        "erin\n"  # too few cells
        "frank,Frank,extra\n"  # too many
        "gina,Gina"  # no final newline
    ).encode()
    items = parse(body, "csv", "users")
    assert [(i.index, i.line) for i in items] == [
        (0, 2),
        (1, 3),
        (2, 5),
        (3, 7),
        (4, 8),
        (5, 9),
        (6, 10),
    ]
    assert items[0].data == {"name": "alice", "display_name": "Alice"}
    assert items[1].error is not None and "malformed CSV" in items[1].error
    assert items[2].data == {"name": "carol", "display_name": "Carol\nwith a line break"}
    assert items[3].error is not None and "malformed CSV" in items[3].error
    assert items[4].error == "expected 2 cells (one per column), found 1"
    assert items[5].error == "expected 2 cells (one per column), found 3"
    assert items[6].data == {"name": "gina", "display_name": "Gina"}


def test_an_unterminated_quote_on_the_last_row_fails_that_row_only() -> None:
    items = parse(b'name\nalice\n"bob\n', "csv", "users")
    assert items[0].data == {"name": "alice"}
    assert items[1].line == 3 and items[1].error and "malformed CSV" in items[1].error


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the CSV is empty"),
        (b"\n\n", "the CSV is empty"),
        (b"name,name\nx,y\n", "repeated columns: ['name']"),
        (b"name,,kind\n", "empty or repeated columns"),
        (b"\xff\xfename\n", "not UTF-8"),
    ],
)
def test_what_makes_the_whole_csv_unreadable(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(body, "csv", "users")


def test_json_array_or_items_object_and_a_non_object_fails_alone() -> None:
    items = parse(b'[{"name": "a"}, 3, {"name": "b"}]', "json", "users")
    assert [(i.index, i.line, i.error) for i in items] == [
        (0, None, None),
        (1, None, "not a JSON object"),
        (2, None, None),
    ]
    assert parse(b'{"items": [{"name": "a"}]}', "json", "users")[0].data == {"name": "a"}
    with pytest.raises(InvalidInput, match="export of 'keys', not 'users'"):
        parse(b'{"kind": "keys", "items": []}', "json", "users")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse(b'[{"name": ', "json", "users")
    with pytest.raises(InvalidInput, match="expected a JSON array"):
        parse(b'{"name": "a"}', "json", "users")


def test_too_many_items_is_refused_before_anything_is_applied() -> None:
    with pytest.raises(PayloadTooLarge, match="more than 3 items"):
        parse(json.dumps([{}] * 4).encode(), "json", "users", max_items=3)
    with pytest.raises(PayloadTooLarge):
        parse(b"name\n" + b"x\n" * 4, "csv", "users", max_items=3)
    assert len(parse(b"name\n" + b"x\n" * 3 + b"\n\n", "csv", "users", max_items=3)) == 3


def test_render_reads_back() -> None:
    rows = [{"name": 'a "quoted", name', "disabled": True, "team": None}]
    columns = ("name", "disabled", "team")
    csv_text = render(rows, columns, "csv", "users")
    assert csv_text == 'name,disabled,team\n"a ""quoted"", name",true,\n'
    [item] = parse(csv_text.encode(), "csv", "users")
    assert item.data == {"name": 'a "quoted", name', "disabled": "true", "team": ""}
    [item] = parse(render(rows, columns, "json", "users").encode(), "json", "users")
    assert item.data == rows[0]
