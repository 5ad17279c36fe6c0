"""The architecture page's package map stays in step with ``src/musubi``."""

from __future__ import annotations

import re

from tests.docs.hooks import ROOT

PAGE = (ROOT / "docs/architecture.md").read_text()
PACKAGES = ROOT / "src/musubi"


def diagram_packages() -> set[str]:
    (diagram,) = re.findall(r"```mermaid\n(.*?)```", PAGE, re.DOTALL)
    return set(re.findall(r'^\s*(\w+)\["\1:', diagram, re.MULTILINE))


def source_packages() -> set[str]:
    return {
        p.name
        for p in PACKAGES.iterdir()
        if p.is_dir() and any(p.glob("*.py")) and not p.name.startswith("_")
    }


def test_every_package_is_in_the_diagram() -> None:
    missing = source_packages() - diagram_packages()
    assert not missing, f"add to docs/architecture.md's diagram: {sorted(missing)}"


def test_every_package_in_the_diagram_exists() -> None:
    gone = diagram_packages() - source_packages()
    assert not gone, f"docs/architecture.md names packages that do not exist: {sorted(gone)}"


def module_source(parts: list[str]) -> tuple[int, str] | None:
    """(how many parts name a module, its source) for the longest module prefix."""
    for n in range(len(parts), 0, -1):
        path = PACKAGES.joinpath(*parts[:n])
        if path.with_suffix(".py").is_file():
            return n, path.with_suffix(".py").read_text()
        if (path / "__init__.py").is_file():
            return n, (path / "__init__.py").read_text()
        if path.is_dir() and n == len(parts):
            return n, ""
    return None


def test_code_names_on_the_page_exist() -> None:
    """Every `package.module.Name` the page cites is in src/musubi, down to the name."""
    packages = "|".join(source_packages())
    cited = set(re.findall(rf"`((?:{packages})(?:\.\w+)+)", PAGE))
    assert len(cited) > 20
    for name in cited:
        parts = name.split(".")
        found = module_source(parts)
        assert found, f"docs/architecture.md cites {name}: no such module in src/musubi"
        n, source = found
        for attr in parts[n:]:
            imported = re.search(rf"^from musubi\.([\w.]+) import .*\b{attr}\b", source, re.M)
            if imported:  # a re-export: look where it is defined
                source = module_source(imported.group(1).split("."))[1]  # type: ignore[index]
            assert re.search(rf"\b{attr}\b", source), f"docs/architecture.md cites {name}"
