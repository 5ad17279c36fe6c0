"""The ``Pipeline`` kind: trigger a CI/CD pipeline, then follow it to its result.

Two calls make a pipeline: :meth:`Pipeline.trigger` starts one run and answers its
handle (the vendor's run id) and first status; :meth:`Pipeline.status` reads the run
again. Each vendor's own words are mapped onto one small vocabulary:

* ``state``: ``queued`` (accepted, not started), ``running``, ``completed``;
* ``result`` once completed: ``succeeded``, ``failed``, ``canceled``, ``skipped`` or
  ``unknown``. The vendor's word stays in ``vendor_status``.

Pipelines are a pluggable kind (:data:`PIPELINES`, entry points ``musubi.pipelines``):
an entry point names a :class:`Pipeline` subclass, which carries its vendor's specifics
as class attributes and class methods (default URL, the target's and the pipeline id's
form, the secrets it needs, the egress check of its URL) and is built by
:meth:`Pipeline.from_config`. The built-ins (:mod:`.azure_pipelines`,
:mod:`.gitlab_pipelines`) are thin ``httpx`` clients whose connections pass the egress
policy. Errors are the trackers' hierarchy
(:class:`~musubi.integrations.tracker.TrackerError`): a refusal (401, an unknown
pipeline) is final, a 5xx or a timeout is worth another try.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from musubi.egress.policy import EgressRefused
from musubi.errors import InvalidInput, PluginError
from musubi.integrations.kind import Configurable
from musubi.integrations.tracker import (
    TrackerRefused,
    TrackerUnavailable,
    raise_for_status,
)
from musubi.kinds import Kind

if TYPE_CHECKING:
    import httpx

__all__ = [
    "PIPELINES",
    "RESULTS",
    "SECRETS",
    "STATES",
    "Pipeline",
    "PipelineStatus",
    "pipeline_class",
]

STATES = ("queued", "running", "completed")
RESULTS = ("succeeded", "failed", "canceled", "skipped", "unknown")
#: The secrets a pipeline's configuration can hold (the API's write-only fields).
SECRETS = ("token", "trigger_token")


@dataclass(frozen=True)
class PipelineStatus:
    """One pipeline run as the vendor shows it now."""

    external_id: str  # the vendor's run id (ADO run id, GitLab pipeline id)
    state: str  # one of STATES
    result: str | None = None  # one of RESULTS once completed
    vendor_status: str = ""  # the vendor's own word ("inProgress", "running", "success")
    web_url: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def done(self) -> bool:
        return self.state == "completed"


def _egress_refusal(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, EgressRefused):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class Pipeline(Configurable, ABC):
    """One pipeline of one CI/CD service (an Azure Pipelines definition, a GitLab
    project's pipelines).

    A subclass is an implementation of the kind: its entry point's name is its
    ``vendor``. What MUSUBI asks of it before any instance exists (when a pipeline is
    configured) is on the class: the attributes and checks of
    :class:`~musubi.integrations.kind.Configurable` (``needs_token`` aside: ``secrets``
    says which secrets are required), ``pipeline_help``, :meth:`check_pipeline`,
    ``secrets`` and :meth:`from_config`; override the ones whose default does not fit.
    """

    target_help: ClassVar[str] = "the project on the CI/CD service"
    #: What ``pipeline`` is, for the error naming a bad one ("" : not used).
    pipeline_help: ClassVar[str] = ""
    #: The secrets a configuration must hold (among :data:`SECRETS`), each with what it
    #: is, for the error naming a missing one.
    secrets: ClassVar[dict[str, str]] = {"token": "an access token"}

    @classmethod
    def check_target(cls, target: str) -> None:
        """Refuse a blank ``target``, or one starting with ``/`` (it goes into URL paths)."""
        if not target.strip() or target.startswith("/"):
            raise InvalidInput(f"target must be {cls.target_help}", field="target")

    @classmethod
    def check_pipeline(cls, pipeline: str) -> None:
        """Refuse a ``pipeline`` (the pipeline's id on the service) this implementation
        cannot use (:class:`InvalidInput` naming the field ``pipeline``); the default
        takes any text, or none."""

    @classmethod
    @abstractmethod
    def from_config(
        cls,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        target: str,
        pipeline: str,
        secret: dict[str, str],
    ) -> Pipeline:
        """The pipeline of a configuration: ``client`` goes through the tenant's egress
        policy, ``secret`` holds the unsealed secrets (those of ``secrets``, checked when
        the configuration was saved)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(self, method: str, url: str, describe: str, **kwargs: Any) -> httpx.Response:
        """One request; transport and HTTP errors translated into the tracker errors."""
        import httpx

        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise TrackerUnavailable(f"{self.vendor}: timeout on {describe}") from exc
        except httpx.TransportError as exc:
            if _egress_refusal(exc):  # the operator's policy: no retry will change it
                raise TrackerRefused(f"{self.vendor}: {exc} (egress policy)") from exc
            raise TrackerUnavailable(f"{self.vendor}: cannot connect ({exc})") from exc
        raise_for_status(self.vendor, response, describe)
        return response

    @abstractmethod
    async def trigger(self, ref: str, variables: dict[str, str]) -> PipelineStatus:
        """Start one run on ``ref`` (a branch or tag) with these variables."""

    @abstractmethod
    async def status(self, external_id: str) -> PipelineStatus:
        """The run ``external_id`` as it is now."""

    async def aclose(self) -> None:
        await self.client.aclose()


PIPELINES: Kind[Pipeline] = Kind("pipelines", Pipeline)
"""CI/CD pipelines: an entry point of ``musubi.pipelines`` names a :class:`Pipeline`
subclass, built with :meth:`Pipeline.from_config`."""


def pipeline_class(name: str) -> type[Pipeline]:
    """The pipeline class called ``name``: :class:`InvalidInput` (field ``kind``) listing
    the installed ones if there is none, :class:`PluginError` if its entry point is not a
    subclass."""
    if name not in PIPELINES.names():
        known = ", ".join(PIPELINES.names()) or "none installed"
        raise InvalidInput(f"unknown pipeline kind {name!r}; installed: {known}", field="kind")
    found: Any = PIPELINES.load(name)
    if not (isinstance(found, type) and issubclass(found, Pipeline)):
        raise PluginError(
            f"{PIPELINES.group} entry point {name!r} is {found!r}, not a Pipeline subclass"
        )
    return found
