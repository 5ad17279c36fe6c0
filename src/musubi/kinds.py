"""Pluggable kinds: a base class plus named implementations found through entry points.

A *kind* is something MUSUBI lets another package supply: a model provider, an embedder,
a vector store, a response cache, a job queue (and the kinds later features add). Each is
declared once, beside its base class::

    PROVIDERS = Kind("providers", Provider)

and its implementations are entry points of the group ``musubi.providers``, in any installed
distribution. MUSUBI's own built-ins are declared the same way, in this package's
``pyproject.toml``, so a third-party package is not second-class::

    [project.entry-points."musubi.providers"]
    openai = "musubi.gateway.providers.openai_compat:OpenAI"
    local = "musubi.gateway.providers.local:Local [local]"

An entry point names a callable (a class or a factory) that takes the kind's arguments
(documented on its base class) and returns an instance of the base class. The optional
``[extra]`` says which extra of the declaring distribution it needs: when loading it fails
because a module is missing, :class:`~musubi.errors.MissingExtra` names that extra.

Discovery reads the installed distributions' metadata once per process
(:func:`entry_points` is cached), and an implementation's module is imported only when it
is first used, so a command that never opens a vector store never imports pgvector.
``docs/plugins.md`` is the guide for plugin authors.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any, Generic, TypeVar

from musubi.errors import InvalidInput, MissingExtra, PluginError
from musubi.extras import DISTRIBUTION

__all__ = ["Implementation", "Kind", "entry_points", "groups"]

log = logging.getLogger("musubi.kinds")

T = TypeVar("T")

PREFIX = "musubi."


@dataclass(frozen=True)
class Implementation:
    """One entry point of a kind: where it comes from, and what it needs."""

    kind: str
    name: str
    target: str  # "module:attribute"
    distribution: str
    version: str
    extras: tuple[str, ...]

    @property
    def builtin(self) -> bool:
        return self.distribution == DISTRIBUTION


@cache
def entry_points() -> dict[str, tuple[metadata.EntryPoint, ...]]:
    """Every ``musubi.*`` entry point of every installed distribution, by group (read once)."""
    found: dict[str, list[metadata.EntryPoint]] = {}
    seen: set[str] = set()
    for dist in metadata.distributions():  # first on sys.path wins, as for imports
        name = _normalise(dist.metadata["Name"] or "")
        if name in seen:
            continue
        seen.add(name)
        for ep in dist.entry_points:
            if ep.group.startswith(PREFIX):
                found.setdefault(ep.group, []).append(ep)
    return {group: tuple(eps) for group, eps in found.items()}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def groups() -> list[str]:
    """The kinds that have at least one implementation installed (``providers``, ...)."""
    return sorted(group.removeprefix(PREFIX) for group in entry_points())


def _describe(kind: str, ep: metadata.EntryPoint) -> Implementation:
    dist = ep.dist
    return Implementation(
        kind=kind,
        name=ep.name,
        target=ep.value.split("[")[0].strip(),
        distribution=dist.metadata["Name"] if dist is not None else "?",
        version=dist.version if dist is not None else "?",
        extras=tuple(ep.extras),
    )


class Kind(Generic[T]):
    """The implementations of one kind, by name, loaded on first use.

    ``base`` is what every implementation must give: :meth:`build` checks it, so a plugin
    that returns something else fails at once, naming its entry point.
    """

    def __init__(self, name: str, base: type[Any]) -> None:
        # type[Any], not type[T]: a kind's base is usually abstract, which type[T] refuses
        self.name = name
        self.base = base
        self._loaded: dict[str, Callable[..., T]] = {}
        # the choice below, for the entry points it was made from: reading each one's
        # distribution name parses a METADATA file, 50 ms a server start for every kind
        self._chosen: tuple[tuple[metadata.EntryPoint, ...], dict[str, metadata.EntryPoint]]
        self._chosen = ((), {})

    @property
    def group(self) -> str:
        return PREFIX + self.name

    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        eps = entry_points().get(self.group, ())
        if self._chosen[0] is eps:  # the same read of the installed distributions
            return self._chosen[1]
        chosen: dict[str, metadata.EntryPoint] = {}
        # A third-party entry point of the same name replaces a built-in, never the reverse.
        for ep in sorted(eps, key=lambda e: _describe(self.name, e).builtin, reverse=True):
            chosen[ep.name] = ep
        self._chosen = (eps, chosen)
        return chosen

    def names(self) -> list[str]:
        return sorted(self._entry_points())

    def implementations(self) -> list[Implementation]:
        return [_describe(self.name, ep) for _, ep in sorted(self._entry_points().items())]

    def load(self, name: str) -> Callable[..., T]:
        """The factory called ``name``: :class:`InvalidInput` if there is none,
        :class:`MissingExtra` if it needs an extra that is not installed."""
        if name in self._loaded:
            return self._loaded[name]
        eps = self._entry_points()
        ep = eps.get(name)
        if ep is None:
            known = ", ".join(sorted(eps)) or "none installed"
            raise InvalidInput(
                f"unknown {self.name} implementation {name!r}; known: {known}", field=self.name
            )
        try:
            factory: Any = ep.load()
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").split(".")[0]
            if missing in ("", "musubi"):
                raise  # a module of this package is missing: a bug, not an install step
            impl = _describe(self.name, ep)
            if impl.extras:
                if impl.builtin:
                    raise MissingExtra(impl.extras[0], missing) from exc
                install = f"pip install '{impl.distribution}[{impl.extras[0]}]'"
                raise MissingExtra(impl.extras[0], missing, install) from exc
            raise MissingExtra("", missing, f"pip install {missing}") from exc
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"{self.group} entry point {name!r} ({ep.value}) does not load: {exc}"
            ) from exc
        if not callable(factory):
            raise PluginError(f"{self.group} entry point {name!r} ({ep.value}) is not callable")
        self._loaded[name] = factory
        return factory  # type: ignore[no-any-return]

    def build(self, name: str, *args: Any, **kwargs: Any) -> T:
        """An instance of implementation ``name``, given the kind's arguments."""
        made = self.load(name)(*args, **kwargs)
        if not isinstance(made, self.base):
            raise PluginError(
                f"{self.group} entry point {name!r} gave a {type(made).__name__}, "
                f"not a {self.base.__name__}"
            )
        return made

    def load_all(self) -> dict[str, Callable[..., T]]:
        """Every implementation that loads. One that needs a missing extra is left out
        (logged), so an optional provider does not stop the server; so is a broken one
        (logged as an error: a bug of the package that declares it)."""
        out: dict[str, Callable[..., T]] = {}
        for name in self.names():
            try:
                out[name] = self.load(name)
            except MissingExtra as exc:
                log.info("%s %r is unavailable: %s", self.name, name, exc.message)
            except PluginError as exc:
                log.error("%s %r is left out: %s", self.name, name, exc.message)
        return out
