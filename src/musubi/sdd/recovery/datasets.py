"""Reading trace-link gold sets laid out as ``UC/``, ``CC/`` and ``answer.csv``.

This is the layout of the public requirement-to-code benchmarks (CoEST eTour, SMOS, as
packaged by the LiSSA replication package)::

    eTour_en/
      UC/UC1.txt ...          one requirement (use case) per file; the id is the file stem
      CC/AdvancedSearch.java  one code file per class; the id is the file stem
      answer.csv              ``requirement_id,class_name`` per line (no header)

Files are read as UTF-8 (a byte-order mark is dropped); a stray byte that is not UTF-8 is read
as Latin-1 rather than failing. Gold class names are matched to files case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from musubi.errors import InvalidInput, NotFound

__all__ = ["Dataset", "find_datasets", "load_dataset", "locate_dataset_root", "read_text"]

_ANSWER = "answer.csv"


@dataclass(frozen=True)
class Dataset:
    """One gold set: requirement texts, code texts (by file name) and the gold links."""

    name: str
    requirements: dict[str, str]
    code: dict[str, str]
    gold: frozenset[tuple[str, str]]

    def code_id(self, file_name: str) -> str:
        """The artefact id of a code file: its stem, as ``answer.csv`` names it."""
        return Path(file_name).stem


def read_text(path: Path) -> str:
    """Read a text file as UTF-8 (BOM dropped), falling back to Latin-1."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise NotFound(f"{folder} is not a directory", path=str(folder))
    return {path.name: path for path in sorted(folder.iterdir()) if path.is_file()}


def load_dataset(root: Path) -> Dataset:
    """Load one gold set from ``root`` (see the module docstring for the layout)."""
    root = Path(root)
    requirement_files = _files(root / "UC")
    code_files = _files(root / "CC")
    answer = root / _ANSWER
    if not answer.is_file():
        raise NotFound(f"{answer} does not exist", path=str(answer))
    requirements = {Path(name).stem: read_text(path) for name, path in requirement_files.items()}
    code = {name: read_text(path) for name, path in code_files.items()}
    by_stem = {Path(name).stem.lower(): Path(name).stem for name in code}
    gold: set[tuple[str, str]] = set()
    for number, line in enumerate(read_text(answer).splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 2 or not all(fields):
            raise InvalidInput(
                f"{answer}:{number}: expected 'requirement_id,class_name', got {line!r}",
                field="answer.csv",
            )
        requirement, target = fields
        if requirement not in requirements:
            raise InvalidInput(
                f"{answer}:{number}: unknown requirement {requirement!r}", field="answer.csv"
            )
        if target.lower() not in by_stem:
            raise InvalidInput(f"{answer}:{number}: unknown class {target!r}", field="answer.csv")
        gold.add((requirement, by_stem[target.lower()]))
    return Dataset(name=root.name, requirements=requirements, code=code, gold=frozenset(gold))


def find_datasets(root: Path) -> list[Path]:
    """``root`` itself if it is a gold set, else the gold sets directly under it, by name."""
    root = Path(root)
    if (root / _ANSWER).is_file():
        return [root]
    if not root.is_dir():
        raise NotFound(f"{root} is not a directory", path=str(root))
    return sorted(
        (child for child in root.iterdir() if (child / _ANSWER).is_file()),
        key=lambda path: path.name.lower(),
    )


def locate_dataset_root(start: Path) -> Path | None:
    """Find the gold sets from ``start`` or one of its parents: the copy vendored in a
    checkout (``tests/fixtures/datasets/traceability``), else ``shared/datasets/traceability``
    beside the folder; searching upwards from any folder inside the repository finds them.
    """
    for folder in [Path(start).resolve(), *Path(start).resolve().parents]:
        for candidate in (
            folder / "tests" / "fixtures" / "datasets" / "traceability",
            folder / "shared" / "datasets" / "traceability",
            folder.parent / "shared" / "datasets" / "traceability",
        ):
            if candidate.is_dir():
                return candidate
    return None
