"""Which indexed Python files import which: the graph :func:`~musubi.knowledge.localise.localise`
spreads a candidate's score along.

An issue names the file where the symptom shows; the fix is often one import away (the
helper the failing function calls, the caller that passes the wrong argument). LocAgent and
the other graph-based localisers follow these edges with a model; here they are followed
once, without one: the files a top candidate imports, and the files that import it, get a
share of its score (``W_IMPORTS``, ``W_IMPORTERS`` in :mod:`musubi.knowledge.localise`).

The graph is read from the chunks the index already holds (no file is re-read): every
``import a.b`` and ``from a.b import c`` line of a Python chunk, relative imports resolved
against the file's own package, then mapped onto indexed files by module path the way an
issue's dotted names are (the longest dotted prefix, at least two parts, that ends an
indexed module path). Imports of other libraries match nothing and are dropped.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["ImportGraph", "imported_modules"]

_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]+)"
    r"|import[ \t]+([\w.]+(?:[ \t]+as[ \t]+\w+)?(?:[ \t]*,[ \t]*[\w.]+(?:[ \t]+as[ \t]+\w+)?)*))",
    re.M,
)
_NAME = re.compile(r"[A-Za-z_]\w*")


def imported_modules(text: str, package: tuple[str, ...]) -> list[str]:
    """Dotted names a Python text imports, relative ones resolved within ``package``.

    ``from .store import Filters`` in package ``(musubi, knowledge)`` gives
    ``musubi.knowledge.store.Filters`` (the imported name is kept: it may be a submodule,
    and the module match takes the longest prefix that is one).
    """
    out: list[str] = []
    for m in _IMPORT.finditer(text):
        source, names, plain = m.group(1), m.group(2), m.group(3)
        if plain is not None:
            out += [part.split()[0] for part in plain.split(",") if part.strip()]
            continue
        dots = len(source) - len(source.lstrip("."))
        base = source[dots:]
        if dots:
            up = dots - 1
            if up > len(package):
                continue
            prefix = package[: len(package) - up] if up else package
            base = ".".join([*prefix, base] if base else prefix)
        if not base:
            continue
        listed = [w.split()[0] for w in names.strip("() \t").split(",") if w.strip()]
        imported = [n for n in listed if _NAME.fullmatch(n)]
        out += [f"{base}.{n}" for n in imported] or [base]
    return out


@dataclass
class ImportGraph:
    """Imports between indexed files: ``imports[a]`` are the files ``a`` imports."""

    imports: dict[str, set[str]] = field(default_factory=dict)
    importers: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        texts: Iterable[tuple[str, str]],
        package_of: Callable[[str], tuple[str, ...]],
        resolve: Callable[[str], list[str]],
    ) -> ImportGraph:
        """From ``(path, chunk text)`` pairs of Python files.

        ``package_of(path)`` is the file's package (for relative imports); ``resolve(dotted)``
        the indexed files a dotted name means (several when ambiguous: all are kept).
        """
        imports: dict[str, set[str]] = defaultdict(set)
        importers: dict[str, set[str]] = defaultdict(set)
        seen: set[tuple[str, str]] = set()
        for path, text in texts:
            if "import" not in text:
                continue
            for dotted in imported_modules(text, package_of(path)):
                if (path, dotted) in seen:
                    continue
                seen.add((path, dotted))
                for target in resolve(dotted):
                    if target != path:
                        imports[path].add(target)
                        importers[target].add(path)
        return cls(dict(imports), dict(importers))
