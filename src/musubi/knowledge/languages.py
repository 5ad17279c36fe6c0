"""Which language a file is in, and the tree-sitter grammar and node types for it.

Grammars come from per-language PyPI wheels (``tree-sitter-python`` …, the ``knowledge``
extra), so nothing is downloaded at run time. Each :class:`LanguageSpec` names the node
types that are *units* (functions, methods, classes) and *wrappers* whose range a unit
inside them takes over (decorators, ``export``, ``template<>``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from musubi.knowledge.errors import MissingExtra

if TYPE_CHECKING:
    from tree_sitter import Language

__all__ = ["LANGUAGES", "LanguageSpec", "detect_language", "grammar"]


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    module: str  # the grammar wheel's module
    function: str = "language"
    extensions: tuple[str, ...] = ()
    functions: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()
    wrappers: frozenset[str] = field(default_factory=frozenset)


def _spec(
    name: str,
    module: str,
    exts: str,
    functions: str,
    classes: str,
    wrappers: str = "",
    fn: str = "",
) -> LanguageSpec:
    return LanguageSpec(
        name=name,
        module=module,
        function=fn or "language",
        extensions=tuple(exts.split()),
        functions=frozenset(functions.split()),
        classes=frozenset(classes.split()),
        wrappers=frozenset(wrappers.split()),
    )


_JS_FUNCS = "function_declaration generator_function_declaration method_definition"
_JS_CLASSES = "class_declaration abstract_class_declaration interface_declaration"

LANGUAGES: dict[str, LanguageSpec] = {
    s.name: s
    for s in (
        _spec(
            "python",
            "tree_sitter_python",
            ".py .pyi",
            "function_definition",
            "class_definition",
            "decorated_definition",
        ),
        _spec(
            "javascript",
            "tree_sitter_javascript",
            ".js .mjs .cjs .jsx",
            _JS_FUNCS,
            "class_declaration",
            "export_statement",
        ),
        _spec(
            "typescript",
            "tree_sitter_typescript",
            ".ts .mts .cts",
            _JS_FUNCS,
            _JS_CLASSES + " enum_declaration",
            "export_statement",
            fn="language_typescript",
        ),
        _spec(
            "tsx",
            "tree_sitter_typescript",
            ".tsx",
            _JS_FUNCS,
            _JS_CLASSES,
            "export_statement",
            fn="language_tsx",
        ),
        _spec(
            "java",
            "tree_sitter_java",
            ".java",
            "method_declaration constructor_declaration",
            "class_declaration interface_declaration enum_declaration record_declaration",
        ),
        _spec(
            "go",
            "tree_sitter_go",
            ".go",
            "function_declaration method_declaration",
            "type_declaration",
        ),
        _spec(
            "rust",
            "tree_sitter_rust",
            ".rs",
            "function_item",
            "impl_item trait_item struct_item enum_item mod_item",
        ),
        _spec("c", "tree_sitter_c", ".c .h", "function_definition", "struct_specifier"),
        _spec(
            "cpp",
            "tree_sitter_cpp",
            ".cc .cpp .cxx .hpp .hh .hxx",
            "function_definition",
            "class_specifier struct_specifier namespace_definition",
            "template_declaration",
        ),
        _spec(
            "c_sharp",
            "tree_sitter_c_sharp",
            ".cs",
            "method_declaration constructor_declaration",
            "class_declaration interface_declaration struct_declaration record_declaration "
            "namespace_declaration",
        ),
        _spec("ruby", "tree_sitter_ruby", ".rb", "method singleton_method", "class module"),
        _spec(
            "php",
            "tree_sitter_php",
            ".php",
            "function_definition method_declaration",
            "class_declaration interface_declaration trait_declaration",
            fn="language_php",
        ),
        _spec("bash", "tree_sitter_bash", ".sh .bash", "function_definition", ""),
        _spec(
            "kotlin",
            "tree_sitter_kotlin",
            ".kt .kts",
            "function_declaration",
            "class_declaration object_declaration",
        ),
        _spec(
            "scala",
            "tree_sitter_scala",
            ".scala",
            "function_definition",
            "class_definition object_definition trait_definition",
        ),
        _spec("lua", "tree_sitter_lua", ".lua", "function_declaration", ""),
        _spec(
            "swift",
            "tree_sitter_swift",
            ".swift",
            "function_declaration",
            "class_declaration protocol_declaration",
        ),
    )
}

# Formats chunked without a grammar.
MARKDOWN_EXTENSIONS = (".md", ".markdown", ".mdx", ".rst")
_BY_EXT = {ext: spec.name for spec in LANGUAGES.values() for ext in spec.extensions}
_BY_EXT.update({ext: "markdown" for ext in MARKDOWN_EXTENSIONS})
_TEXT_EXT = {
    ".txt": "text",
    ".yml": "yaml",
    ".yaml": "yaml",
    ".toml": "toml",
    ".json": "json",
    ".html": "html",
    ".css": "css",
    ".sql": "sql",
    ".xml": "xml",
    ".ini": "ini",
    ".cfg": "ini",
    ".proto": "proto",
    ".r": "r",
    ".m": "objc",
    ".pl": "perl",
}


def detect_language(path: str) -> str:
    """The language name of ``path`` by extension (``text`` when unknown)."""
    p = PurePosixPath(path)
    suffix = p.suffix.lower()
    if suffix in _BY_EXT:
        return _BY_EXT[suffix]
    if p.name in {"Dockerfile", "Makefile", "CMakeLists.txt"}:
        return p.name.lower()
    return _TEXT_EXT.get(suffix, "text")


@cache
def grammar(name: str) -> Language | None:
    """The tree-sitter language for ``name``, or None when it has no grammar."""
    spec = LANGUAGES.get(name)
    if spec is None:
        return None
    try:
        from tree_sitter import Language
    except ImportError as exc:
        raise MissingExtra("knowledge", "tree-sitter") from exc
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        raise MissingExtra("knowledge", spec.module.replace("_", "-")) from exc
    return Language(getattr(module, spec.function)())
