"""Configuring a project's trackers: create, replace, show (never the secrets), delete,
and open a :class:`~musubi.integrations.tracker.Tracker` for one. Secrets are sealed with
the gateway's :class:`~musubi.gateway.secrets.SecretBox` (the same key as provider
credentials); the tracker's URL passes the tenant's egress policy when it is saved and
again when each connection is opened.

Trackers and chat notifiers are pluggable kinds
(:data:`~musubi.integrations.tracker.TRACKERS`,
:data:`~musubi.integrations.chat.CHAT_NOTIFIERS`): what differs between vendors (default URL
and rate, the target's form, the egress check, building the client) is asked of the
implementation's class, so a plugin's is configured exactly as a built-in one. A name
installed as both a tracker and a chat notifier is taken as the tracker."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.audit.service import record
from musubi.egress.policy import EgressPolicy
from musubi.errors import InvalidInput, NotFound, PluginError
from musubi.gateway.secrets import SecretBox
from musubi.integrations.chat import CHAT_NOTIFIERS, ChatNotifier, notifier_class
from musubi.integrations.kind import Configurable
from musubi.integrations.models import Integration, IssueLink, OutboxItem
from musubi.integrations.tracker import (
    TRACKERS,
    RateLimiter,
    Tracker,
    TrackerRefused,
    tracker_class,
)
from musubi.storage.base import utcnow
from musubi.tenancy.models import Project

__all__ = [
    "CHAT_NOTIFIERS",
    "TRACKERS",
    "all_kinds",
    "chat_names",
    "delete_integration",
    "get_integration",
    "integration_class",
    "list_integrations",
    "open_notifier",
    "open_tracker",
    "public_integration",
    "set_integration",
    "tracker_names",
]


KIND_MAX = 20  # Integration.kind's length


def tracker_names() -> tuple[str, ...]:
    """The installed trackers (built-ins and plugins)."""
    return tuple(TRACKERS.names())


def chat_names() -> tuple[str, ...]:
    """The installed chat notifiers (built-ins and plugins), trackers' names left out."""
    trackers = set(tracker_names())
    return tuple(name for name in CHAT_NOTIFIERS.names() if name not in trackers)


def all_kinds() -> tuple[str, ...]:
    """Every kind of integration a project can have: the installed trackers, then chats."""
    return (*tracker_names(), *chat_names())


def integration_class(kind: str) -> type[Tracker] | type[ChatNotifier]:
    """The class of the ``kind`` integration: a tracker, or else a chat notifier;
    :class:`InvalidInput` listing every installed one if it is neither."""
    if kind in tracker_names():
        return tracker_class(kind)
    if kind in chat_names():
        return notifier_class(kind)
    known = all_kinds()
    raise InvalidInput(f"unknown tracker {kind!r}; one of {', '.join(known)}", field="kind")


def _hint(token: str) -> str:
    return f"…{token[-4:]}" if len(token) >= 8 else "…"


async def _project(s: AsyncSession, project_id: str) -> Project:
    project = await s.get(Project, project_id)
    if project is None:
        raise NotFound(f"project {project_id!r} not found", model=Project, id=project_id)
    return project


def _check_kind(kind: str) -> None:
    known = all_kinds()
    if kind not in known:
        raise InvalidInput(f"unknown tracker {kind!r}; one of {', '.join(known)}", field="kind")


def _check_options(options: dict[str, Any], text_options: tuple[str, ...]) -> None:
    rate = options.get("rate_per_s")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0
    ):
        raise InvalidInput(
            "options.rate_per_s must be a number of requests a second (>= 0)", "options"
        )
    burst = options.get("burst")
    if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
        raise InvalidInput("options.burst must be a whole number >= 1", "options")
    approvers = options.get("approvers")
    if approvers is not None and (
        not isinstance(approvers, list) or not all(isinstance(a, str) for a in approvers)
    ):
        raise InvalidInput("options.approvers must be a list of chat user ids", "options")
    for name in (*text_options, "openid_url"):
        if name in options and not isinstance(options[name], str):
            raise InvalidInput(f"options.{name} must be text", "options")


async def set_integration(
    s: AsyncSession,
    box: SecretBox,
    egress: EgressPolicy,
    *,
    project_id: str,
    kind: str,
    target: str,
    base_url: str = "",
    token: str | None = None,
    email: str | None = None,
    webhook_secret: str | None = None,
    status_map: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
    enabled: bool = True,
) -> Integration:
    """Create or replace the ``kind`` tracker of a project. Omitted secrets are kept while
    ``base_url`` stays the same; a new ``base_url`` needs them given again."""
    cls: type[Configurable] = integration_class(kind)
    if len(kind) > KIND_MAX:  # the column holding it; a plugin's entry point name too long
        raise InvalidInput(
            f"{kind!r} is installed, but an integration's name is {KIND_MAX} characters "
            "at most: the plugin must register a shorter one",
            field="kind",
        )
    cls.check_target(target)
    await _project(s, project_id)
    base_url = base_url or cls.default_base_url
    if not base_url:
        raise InvalidInput(f"{kind} needs base_url (e.g. {cls.base_url_example})", "base_url")
    cls.check_destination(base_url, egress)
    row = await s.scalar(
        select(Integration).where(Integration.project_id == project_id, Integration.kind == kind)
    )
    # Stored secrets are kept only for the same destination: a new base_url must be given
    # its secrets again, or a project admin could send the stored token to a host of theirs.
    moved = row is not None and row.base_url != base_url.rstrip("/")
    secret = box.open(row.secret) if row is not None and not moved else {}
    for name, value in (("token", token), ("email", email), ("webhook_secret", webhook_secret)):
        if value is not None:
            secret[name] = value
    if not secret.get("token") and cls.needs_token:
        why = (
            "base_url changed, so the stored token is not sent there: give token again"
            if moved
            else "an API token or personal access token"
        )
        raise InvalidInput(f"token is required ({why})", "token")
    _check_options(options or {}, cls.text_options)
    openid = (options or {}).get("openid_url")
    if openid:
        egress.check_url(str(openid), field="options.openid_url")
    if row is None:
        row = Integration(project_id=project_id, kind=kind)
        s.add(row)
    row.base_url, row.target = base_url.rstrip("/"), target
    row.secret, row.key_hint = box.seal(secret), _hint(secret.get("token", ""))
    row.status_map = {k.lower(): v for k, v in (status_map or {}).items()}
    kept = {k: v for k, v in (row.options or {}).items() if k == "events_since"}
    row.options, row.enabled = {**kept, **dict(options or {})}, enabled
    if issubclass(cls, ChatNotifier):
        row.options.setdefault("events_since", utcnow().isoformat())
    row.state, row.last_error = "ok", None
    await s.flush()
    await record(
        s,
        "integration.set",
        f"{project_id}/{kind}",
        detail={"base_url": row.base_url, "target": target, "secrets": sorted(secret)},
    )
    return row


async def list_integrations(s: AsyncSession, project_id: str) -> list[Integration]:
    await _project(s, project_id)
    rows = await s.scalars(
        select(Integration).where(Integration.project_id == project_id).order_by(Integration.kind)
    )
    return list(rows)


async def get_integration(
    s: AsyncSession, project_id: str, kind: str, *, among: tuple[str, ...] | None = None
) -> Integration:
    """The ``kind`` integration of a project; ``among`` narrows the kinds accepted
    (:func:`tracker_names` or :func:`chat_names`)."""
    _check_kind(kind)
    if among is not None and kind not in among:
        raise InvalidInput(f"{kind} is not one of {', '.join(among)} here", field="kind")
    row = await s.scalar(
        select(Integration).where(Integration.project_id == project_id, Integration.kind == kind)
    )
    if row is None:
        raise NotFound(f"project {project_id!r} has no {kind} integration", model=Integration)
    return row


async def delete_integration(s: AsyncSession, project_id: str, kind: str) -> Integration:
    row = await get_integration(s, project_id, kind)
    await s.delete(row)
    await record(s, "integration.delete", f"{project_id}/{kind}")
    return row


async def counts(s: AsyncSession, integration_id: str) -> dict[str, int]:
    rows = await s.execute(
        select(OutboxItem.status, func.count())
        .where(OutboxItem.integration_id == integration_id)
        .group_by(OutboxItem.status)
    )
    out = {status: n for status, n in rows.all()}
    out["linked"] = (
        await s.scalar(
            select(func.count())
            .select_from(IssueLink)
            .where(IssueLink.integration_id == integration_id)
        )
        or 0
    )
    out["conflicts"] = (
        await s.scalar(
            select(func.count())
            .select_from(IssueLink)
            .where(IssueLink.integration_id == integration_id, IssueLink.conflict.is_not(None))
        )
        or 0
    )
    return out


def public_integration(row: Integration, box: SecretBox | None = None) -> dict[str, Any]:
    """The configuration without its secrets (which secrets are set, and a token hint)."""
    secrets = sorted(box.open(row.secret)) if box is not None else None
    return {
        "id": row.id,
        "project_id": row.project_id,
        "kind": row.kind,
        "base_url": row.base_url,
        "target": row.target,
        "token_hint": row.key_hint,
        "secrets_set": secrets,
        "status_map": row.status_map,
        "options": row.options,
        "enabled": row.enabled,
        "state": row.state,
        "last_error": row.last_error,
        "webhook_path": f"/v1/integrations/{row.id}/webhook",
    }


def open_tracker(
    row: Integration, box: SecretBox, egress: EgressPolicy, *, timeout: float = 30.0
) -> Tracker:
    """A tracker client for ``row`` whose connections pass the egress policy. The URL is
        checked against the policy again (an operator may have narrowed it since the
        integration was saved): a refusal is a :class:`TrackerRefused`, parked, not retried;
    so is a tracker whose plugin is no longer installed."""
    from musubi.egress.clients import egress_client

    try:
        cls = tracker_class(row.kind)  # a plugin uninstalled since: parked until it is back
    except InvalidInput as exc:
        raise TrackerRefused(f"{row.kind}: {exc.message}") from exc
    try:
        cls.check_destination(row.base_url, egress)
    except InvalidInput as exc:
        raise TrackerRefused(f"{row.kind}: {exc.message} (egress policy)") from exc
    secret = box.open(row.secret)
    rate = float(row.options.get("rate_per_s", cls.default_rate))
    limiter = RateLimiter(rate, burst=int(row.options.get("burst", 1)))
    client = egress_client(egress, timeout=timeout)
    tracker = cls.from_config(
        client,
        base_url=row.base_url,
        target=row.target,
        secret=secret,
        options=dict(row.options),
        limiter=limiter,
    )
    if not isinstance(tracker, Tracker):
        raise PluginError(f"{cls.__name__}.from_config gave a {type(tracker).__name__}")
    return tracker


def open_notifier(row: Integration, box: SecretBox, egress: EgressPolicy) -> ChatNotifier:
    """A notifier posting to ``row``'s channel (Slack) or workflow (Teams), or a
    plugin's; its URL is checked against the egress policy again, as a tracker's is."""
    if row.kind not in chat_names():
        raise InvalidInput(f"{row.kind} is not a chat integration", field="kind")
    cls = notifier_class(row.kind)
    cls.check_destination(row.base_url, egress)
    notifier = cls.from_config(
        egress,
        base_url=row.base_url,
        target=row.target,
        secret=box.open(row.secret),
        options=dict(row.options),
    )
    if not isinstance(notifier, ChatNotifier):
        raise PluginError(f"{cls.__name__}.from_config gave a {type(notifier).__name__}")
    return notifier
