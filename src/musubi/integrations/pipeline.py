"""The ``Pipeline`` kind: trigger a CI/CD pipeline, then follow it to its result.

Two calls make a pipeline: :meth:`Pipeline.trigger` starts one run and answers its
handle (the vendor's run id) and first status; :meth:`Pipeline.status` reads the run
again. Each vendor's own words are mapped onto one small vocabulary:

* ``state``: ``queued`` (accepted, not started), ``running``, ``completed``;
* ``result`` once completed: ``succeeded``, ``failed``, ``canceled``, ``skipped`` or
  ``unknown``. The vendor's word stays in ``vendor_status``.

Implementations (:mod:`.azure_pipelines`, :mod:`.gitlab_pipelines`) are thin ``httpx``
clients whose connections pass the egress policy. Errors are the trackers' hierarchy
(:class:`~musubi.integrations.tracker.TrackerError`): a refusal (401, an unknown
pipeline) is final, a 5xx or a timeout is worth another try.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from musubi.egress.policy import EgressRefused
from musubi.integrations.tracker import (
    TrackerRefused,
    TrackerUnavailable,
    raise_for_status,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["RESULTS", "STATES", "Pipeline", "PipelineStatus"]

STATES = ("queued", "running", "completed")
RESULTS = ("succeeded", "failed", "canceled", "skipped", "unknown")


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


class Pipeline(ABC):
    """One pipeline of one CI/CD service (an Azure Pipelines definition, a GitLab
    project's pipelines)."""

    vendor: str = ""

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
