"""A circuit breaker per deployment.

It opens when ``threshold`` of the last ``2 x threshold`` calls failed (so an upstream
failing half its requests is cut off, not only one failing every request), stays open
for the cooldown, then lets one trial call through (half-open): a success closes it, a
failure opens it again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CircuitBreaker"]


@dataclass
class _State:
    recent: deque[bool] = field(default_factory=deque)  # True: failed
    opened_at: float | None = None
    trial: bool = False  # a half-open trial call is in flight


class CircuitBreaker:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[str, _State] = {}

    def allow(self, key: str, cooldown_s: float) -> bool:
        s = self._states.get(key)
        if s is None or s.opened_at is None:
            return True
        if self._clock() - s.opened_at < cooldown_s or s.trial:
            return False
        s.trial = True  # half-open: let one call through
        return True

    def state(self, key: str) -> str:
        s = self._states.get(key)
        if s is None or s.opened_at is None:
            return "closed"
        return "half-open" if s.trial else "open"

    def success(self, key: str) -> None:
        s = self._states.get(key)
        if s is None:
            return
        if s.trial or s.opened_at is not None:
            del self._states[key]  # the trial passed: closed, history forgotten
            return
        s.recent.append(False)

    def failure(self, key: str, threshold: int) -> None:
        s = self._states.setdefault(key, _State())
        s.recent.append(True)
        while len(s.recent) > 2 * threshold:
            s.recent.popleft()
        if s.trial or sum(s.recent) >= threshold:
            s.opened_at = self._clock()
            s.trial = False
            s.recent.clear()
