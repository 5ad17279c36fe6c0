"""The SDD workflow state machine, persisted in ``storage/workflow-state.yml``.

Stages and modes follow MUSUBI's workflow engine::

    small   requirements → implement → validate
    medium  requirements → design → tasks → implement → validate
    large   steering → requirements → design → tasks → implement → validate → review

After the last stage the workflow is ``done``. Besides moving forward, a stage may loop back
(``validate → implement``, ``review → requirements``…), each loop recorded as a feedback
loop. Open blockers stop :func:`advance` unless forced. The file keeps MUSUBI's camelCase keys
(``currentStage``, ``history``…), and keys this module does not know are kept as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from musubi.errors import Conflict, InvalidInput, NotFound
from musubi.sdd.files import atomic_write, read_text

__all__ = [
    "MODES",
    "STATE_FILE",
    "Clock",
    "advance",
    "block",
    "load_state",
    "next_stages",
    "open_blockers",
    "start",
    "status",
    "unblock",
]

STATE_FILE = "storage/workflow-state.yml"
MODES: dict[str, tuple[str, ...]] = {
    "small": ("requirements", "implement", "validate"),
    "medium": ("requirements", "design", "tasks", "implement", "validate"),
    "large": ("steering", "requirements", "design", "tasks", "implement", "validate", "review"),
}
FEEDBACK: dict[str, dict[str, tuple[str, ...]]] = {
    "small": {"validate": ("implement",)},
    "medium": {"validate": ("implement", "requirements")},
    "large": {"validate": ("implement",), "review": ("implement", "requirements")},
}
ALIASES = {"implementation": "implement", "validation": "validate", "complete": "done"}
Clock = Callable[[], datetime]


def _now(clock: Clock | None) -> str:
    return (clock or (lambda: datetime.now(UTC)))().replace(microsecond=0).isoformat()


def load_state(root: Path) -> dict[str, Any] | None:
    import yaml  # lazily: a server that never reads the workflow never loads PyYAML

    path = root / STATE_FILE
    if not path.exists():
        return None
    data = yaml.safe_load(read_text(path))
    if not isinstance(data, dict):
        raise InvalidInput(f"{STATE_FILE}: expected a mapping with currentStage, mode, history")
    return data


def _require(root: Path) -> dict[str, Any]:
    state = load_state(root)
    if state is None:
        raise NotFound("no workflow yet; start one with `musubi workflow start <feature>`")
    return state


def _save(root: Path, state: dict[str, Any]) -> None:
    import yaml

    atomic_write(
        root / STATE_FILE, yaml.safe_dump(state, sort_keys=False, allow_unicode=True, width=100)
    )


def start(
    root: Path,
    feature: str,
    mode: str = "medium",
    *,
    force: bool = False,
    clock: Clock | None = None,
) -> dict[str, Any]:
    if mode not in MODES:
        raise InvalidInput(f"unknown mode {mode!r}; choose small, medium or large", field="mode")
    old = load_state(root)
    if old and old.get("status") != "completed" and not force:
        raise Conflict(
            f"workflow for {old.get('feature')!r} is still at "
            f"{old.get('currentStage')!r}; finish it or pass --force"
        )
    now = _now(clock)
    first = MODES[mode][0]
    state: dict[str, Any] = {
        "feature": feature,
        "mode": mode,
        "currentStage": first,
        "status": "in-progress",
        "startedAt": now,
        "stages": {first: {"enteredAt": now, "status": "in-progress", "attempts": 1}},
        "blockers": [],
        "history": [
            {
                "timestamp": now,
                "action": "workflow-started",
                "stage": first,
                "feature": feature,
                "mode": mode,
            }
        ],
    }
    _save(root, state)
    return state


def next_stages(state: dict[str, Any]) -> list[str]:
    """Stages the workflow may move to now: the next one forward, then feedback loops."""
    mode = state.get("mode", "medium")
    stages = MODES.get(mode, MODES["medium"])
    current = ALIASES.get(state.get("currentStage", ""), state.get("currentStage", ""))
    if state.get("status") == "completed":
        return []
    if current not in stages:
        return [stages[0]]
    i = stages.index(current)
    forward = [stages[i + 1]] if i + 1 < len(stages) else ["done"]
    return forward + list(FEEDBACK.get(mode, {}).get(current, ()))


def open_blockers(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in state.get("blockers") or [] if not b.get("resolvedAt")]


def advance(
    root: Path,
    to: str | None = None,
    *,
    notes: str = "",
    force: bool = False,
    clock: Clock | None = None,
) -> dict[str, Any]:
    state = _require(root)
    current = state.get("currentStage", "")
    allowed = next_stages(state)
    if not allowed:
        raise Conflict("the workflow is done; start a new one with `musubi workflow start`")
    target = ALIASES.get(to, to) if to else allowed[0]
    if target not in allowed:
        raise InvalidInput(
            f"cannot go from {current} to {target} in {state.get('mode')} mode; "
            f"allowed: {', '.join(allowed)}",
            field="to",
        )
    blockers = open_blockers(state)
    if blockers and not force:
        reasons = "; ".join(f"#{b['id']} {b['reason']}" for b in blockers)
        raise Conflict(
            f"{len(blockers)} open blocker(s): {reasons} "
            "(resolve with `musubi workflow unblock <n>` or pass --force)"
        )
    now = _now(clock)
    stages = state.setdefault("stages", {})
    if current in stages:
        stages[current].update({"completedAt": now, "status": "completed"})
    mode_stages = MODES.get(state.get("mode", "medium"), ())
    backwards = (
        target in mode_stages
        and current in mode_stages
        and mode_stages.index(target) < mode_stages.index(current)
    )
    entry: dict[str, Any] = {"timestamp": now, "from": current, "to": target}
    if target == "done":
        state.update({"status": "completed", "completedAt": now, "currentStage": current})
        entry["action"] = "workflow-completed"
    else:
        stage = stages.setdefault(target, {})
        stage.update({"enteredAt": now, "status": "in-progress"})
        stage["attempts"] = int(stage.get("attempts", 0)) + 1
        state["currentStage"] = target
        entry["action"] = "feedback-loop" if backwards else "stage-transition"
    if notes:
        entry["notes"] = notes
    if force and blockers:
        entry["forced"] = True
    state.setdefault("history", []).append(entry)
    _save(root, state)
    return state


def block(root: Path, reason: str, *, clock: Clock | None = None) -> dict[str, Any]:
    if not reason.strip():
        raise InvalidInput("a blocker needs a reason", field="reason")
    state = _require(root)
    blockers = state.setdefault("blockers", [])
    number = max((int(b.get("id", 0)) for b in blockers), default=0) + 1
    now = _now(clock)
    blocker = {"id": number, "reason": reason, "stage": state.get("currentStage"), "createdAt": now}
    blockers.append(blocker)
    state.setdefault("history", []).append(
        {
            "timestamp": now,
            "action": "blocked",
            "stage": state.get("currentStage"),
            "blocker": number,
            "notes": reason,
        }
    )
    _save(root, state)
    return blocker


def unblock(root: Path, number: int, *, clock: Clock | None = None) -> dict[str, Any]:
    state = _require(root)
    for b in state.get("blockers") or []:
        if int(b.get("id", 0)) == number and not b.get("resolvedAt"):
            now = _now(clock)
            b["resolvedAt"] = now
            state.setdefault("history", []).append(
                {"timestamp": now, "action": "unblocked", "blocker": number}
            )
            _save(root, state)
            return dict(b)
    raise NotFound(f"no open blocker #{number}")


def status(root: Path) -> dict[str, Any]:
    """A summary for people and scripts: stages with their state, blockers, next steps."""
    state = _require(root)
    mode = state.get("mode", "medium")
    current = state.get("currentStage")
    done = state.get("status") == "completed"
    recorded = state.get("stages") or {}
    rows = []
    for name in MODES.get(mode, ()):
        info = recorded.get(name, {})
        shown = info.get("status") or "pending"
        if name == current and not done:
            shown = "in-progress"
        rows.append(
            {
                "stage": name,
                "status": shown,
                "enteredAt": info.get("enteredAt"),
                "completedAt": info.get("completedAt"),
                "attempts": info.get("attempts"),
            }
        )
    skipped = [s for s in MODES["large"] if s not in MODES.get(mode, ())]
    return {
        "feature": state.get("feature"),
        "mode": mode,
        "currentStage": current,
        "status": state.get("status", "in-progress"),
        "stages": rows,
        "skipped": skipped,
        "blockers": open_blockers(state),
        "next": next_stages(state),
        "history": state.get("history") or [],
    }
