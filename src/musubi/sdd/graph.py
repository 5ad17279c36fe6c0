"""The task dependency graph: cycles, parallel groups and Mermaid output.

Edges point from a dependency to the task that needs it (``TASK-001 --> TASK-003`` means
TASK-003 depends on TASK-001). Parallel groups are topological levels: every task in a group
has all its dependencies in earlier groups, so a group can be worked on at the same time.
"""

from __future__ import annotations

from pydantic import BaseModel

from musubi.sdd.diagnostics import Diagnostic, Severity
from musubi.sdd.tasks import Task

__all__ = ["TaskGraph", "build_graph"]


class TaskGraph(BaseModel):
    tasks: dict[str, Task]
    edges: list[tuple[str, str]]  # (dependency, dependent)
    cycles: list[list[str]] = []
    groups: list[list[str]] = []
    blocked: list[str] = []  # tasks that cannot be scheduled because of a cycle
    diagnostics: list[Diagnostic] = []

    def mermaid(self, *, direction: str = "TD") -> str:
        def node(tid: str) -> str:
            title = self.tasks[tid].title.replace('"', "'") if tid in self.tasks else "missing"
            return f'{tid.replace("-", "_")}["{tid}: {title}"]'

        lines = [f"graph {direction}"]
        linked = {t for edge in self.edges for t in edge}
        for n, group in enumerate(self.groups, start=1):
            lines.append(f'  subgraph group{n}["Parallel group {n}"]')
            lines += [f"    {node(t)}" for t in group]
            lines.append("  end")
        for tid in self.tasks:
            if tid in self.blocked or (tid not in linked and not self.groups):
                lines.append(f"  {node(tid)}")
        for dep, task in self.edges:
            lines.append(f"  {dep.replace('-', '_')} --> {task.replace('-', '_')}")
        in_cycle = {t for c in self.cycles for t in c}
        if in_cycle:
            lines.append("  classDef cycle fill:#fdd,stroke:#c00")
            lines += [f"  class {t.replace('-', '_')} cycle" for t in sorted(in_cycle)]
        return "\n".join(lines) + "\n"


def _cycles(nodes: list[str], deps: dict[str, list[str]]) -> list[list[str]]:
    """Elementary cycles found by depth-first search, each reported once."""
    seen_cycles: set[frozenset[str]] = set()
    out: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in deps.get(n, []):
            if state.get(d) == 1:
                cycle = stack[stack.index(d) :]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    out.append([*cycle, d])
            elif d in deps and state.get(d) is None:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in nodes:
        if state.get(n) is None:
            visit(n)
    return out


def build_graph(tasks: list[Task]) -> TaskGraph:
    by_id = {t.id: t for t in tasks}
    deps: dict[str, list[str]] = {t.id: [] for t in tasks}
    edges: list[tuple[str, str]] = []
    diags: list[Diagnostic] = []
    for t in tasks:
        for d in t.depends_on:
            if d == t.id:
                diags.append(
                    Diagnostic(
                        file=t.file,
                        line=t.line,
                        code="tasks.self-dependency",
                        item=t.id,
                        message=f"{t.id} depends on itself",
                    )
                )
                continue
            if d not in by_id:
                diags.append(
                    Diagnostic(
                        file=t.file,
                        line=t.line,
                        code="tasks.unknown-dependency",
                        item=t.id,
                        message=f"{t.id} depends on {d}, which does not exist",
                    )
                )
                continue
            deps[t.id].append(d)
            edges.append((d, t.id))
    cycles = _cycles(list(by_id), deps)
    for cycle in cycles:
        first = by_id[cycle[0]]
        diags.append(
            Diagnostic(
                file=first.file,
                line=first.line,
                code="tasks.cycle",
                item=first.id,
                message="dependency cycle: " + " -> ".join(cycle),
            )
        )
    remaining = {tid: set(ds) for tid, ds in deps.items()}
    groups: list[list[str]] = []
    done: set[str] = set()
    while True:
        ready = [tid for tid in by_id if tid not in done and remaining[tid] <= done]
        if not ready:
            break
        groups.append(ready)
        done |= set(ready)
    blocked = [tid for tid in by_id if tid not in done]
    for tid in blocked:
        if not any(tid in c for c in cycles):
            t = by_id[tid]
            diags.append(
                Diagnostic(
                    file=t.file,
                    line=t.line,
                    severity=Severity.WARNING,
                    code="tasks.blocked",
                    item=tid,
                    message=f"{tid} waits on a task inside a dependency cycle",
                )
            )
    return TaskGraph(
        tasks=by_id, edges=edges, cycles=cycles, groups=groups, blocked=blocked, diagnostics=diags
    )
