"""Entry point of the ``musubi`` command.

Each subcommand lives in its own module and is imported only when it is run (or when its
own ``--help`` is shown), so ``musubi --help`` imports click and nothing heavy.
"""

from __future__ import annotations

import importlib

import click

from musubi import __version__

# name -> (module, attribute, one-line help shown by ``musubi --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("musubi.cli.serve", "serve", "Run the API server."),
    "worker": ("musubi.cli.worker", "worker", "Run batch (Redis) or fine-tuning jobs."),
    "batch": ("musubi.cli.batch", "batch", "Submit, follow, fetch and cancel batches."),
    "finetune": ("musubi.cli.finetune", "finetune", "Fine-tuning: datasets, LoRA jobs, adapters."),
    "db": ("musubi.cli.db", "db", "Database migrations."),
    "tenants": ("musubi.cli.tenants", "tenants", "Manage tenants (organisations)."),
    "teams": ("musubi.cli.teams", "teams", "Manage teams of a tenant."),
    "projects": ("musubi.cli.projects", "projects", "Manage projects of a tenant."),
    "users": ("musubi.cli.users", "users", "Manage users and service accounts."),
    "keys": ("musubi.cli.keys", "keys", "Manage API keys."),
    "roles": ("musubi.cli.roles", "roles", "Manage custom roles and role assignments."),
    "bulk": ("musubi.cli.bulk", "bulk", "Bulk import/export of users, keys, projects, roles."),
    "audit": ("musubi.cli.audit", "audit", "List, verify and export the audit log."),
    "sso": ("musubi.cli.sso", "sso", "SSO: identity providers, policy, sessions."),
    "providers": ("musubi.cli.gateway", "providers", "Gateway provider credentials."),
    "models": ("musubi.cli.gateway", "models", "The model catalogue and usable models."),
    "plugins": ("musubi.cli.plugins", "plugins", "Pluggable kinds and their implementations."),
    "ci": ("musubi.cli.ci", "ci", "Post the review gates as a CI check (GitHub, GitLab, ADO)."),
    "integrations": (
        "musubi.cli.integrations",
        "integrations",
        "Trackers (JIRA, GitHub): configure, sync, outbox, conflicts.",
    ),
    # Spec-driven development (work on a plain repository, no server needed).
    "init": ("musubi.cli.sdd_init", "init", "Scaffold steering/ and storage/ in a repository."),
    "requirements": ("musubi.cli.sdd_requirements", "requirements", "EARS requirements."),
    "design": ("musubi.cli.sdd_design", "design", "Design documents and ADRs."),
    "tasks": ("musubi.cli.sdd_tasks", "tasks", "Task breakdowns and their dependency graph."),
    "change": ("musubi.cli.sdd_change", "change", "Delta specs: init, apply, archive."),
    "workflow": ("musubi.cli.sdd_workflow", "workflow", "Workflow stages, blockers, history."),
    "validate": ("musubi.cli.sdd_validate", "validate", "Review gates and constitution checks."),
    "trace": ("musubi.cli.sdd_trace", "trace", "Traceability matrix, gaps, coverage, impact."),
    # The orchestrator: models do the SDD steps through a server (docs/orchestrator.md).
    "plan": ("musubi.cli.runs", "plan", "Requirements, design, tasks by models, with approvals."),
    "run": ("musubi.cli.runs", "run", "One step by a model: change, reverse, steering, ..."),
    "runs": ("musubi.cli.runs", "runs", "Orchestrator runs: list, show, approve, cancel."),
    "mcp": ("musubi.cli.runs", "mcp", "Serve MUSUBI's MCP tools over stdio."),
    # Code knowledge engine.
    "index": ("musubi.cli.knowledge", "index", "Index a repository for code search."),
    "search": ("musubi.cli.knowledge", "search", "Hybrid search of an indexed repository."),
    "context": ("musubi.cli.knowledge", "context", "Pack context for a task into a budget."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def __init__(self, *args: object, lazy: dict[str, tuple[str, str, str]], **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, attr, _ = self.lazy[cmd_name]
            command = getattr(importlib.import_module(module), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{module}.{attr} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Show the help lines without importing the modules.
        rows = [(name, self.lazy[name][2]) for name in sorted(self.lazy)]
        rows += [
            (name, cmd.get_short_help_str())
            for name, cmd in sorted(self.commands.items())
            if name not in self.lazy
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))


def register(name: str, module: str, attr: str, help_line: str) -> None:
    """Add a lazily imported subcommand (used by areas that extend the CLI)."""
    COMMANDS[name] = (module, attr, help_line)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="musubi")
def cli() -> None:
    """MUSUBI: specification-driven development with AI, for organisations."""


def main() -> None:
    cli()
