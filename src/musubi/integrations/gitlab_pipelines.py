"""GitLab pipeline triggers (REST v4; gitlab.com or self-managed).

Trigger: ``POST /projects/:id/trigger/pipeline`` with the project's *pipeline trigger
token* (``token``), the ``ref`` and ``variables[NAME]`` form fields, as GitLab's
documentation of the Pipeline triggers API shows. Follow:
``GET /projects/:id/pipelines/:pipeline_id`` with an access token (``read_api``) in
``PRIVATE-TOKEN``: a trigger token can start pipelines but not read them. Final statuses
are ``success``, ``failed``, ``canceled`` and ``skipped``; ``manual`` waits for a person
and is followed like a running pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from musubi.integrations.pipeline import Pipeline, PipelineStatus

if TYPE_CHECKING:
    import httpx

__all__ = ["FINAL", "GitLabPipeline", "gitlab_status"]

FINAL = {"success": "succeeded", "failed": "failed", "canceled": "canceled", "skipped": "skipped"}
_QUEUED = {"created", "waiting_for_resource", "preparing", "pending", "scheduled"}


def gitlab_status(data: dict[str, Any]) -> PipelineStatus:
    """A pipeline of the Pipelines API, in the common vocabulary."""
    vendor = str(data.get("status", ""))
    if vendor in FINAL:
        state, result = "completed", FINAL[vendor]
    else:
        state, result = ("queued" if vendor in _QUEUED else "running"), None
    return PipelineStatus(
        external_id=str(data["id"]),
        state=state,
        result=result,
        vendor_status=vendor,
        web_url=str(data.get("web_url") or ""),
        raw=data,
    )


class GitLabPipeline(Pipeline):
    vendor: ClassVar[str] = "gitlab"
    default_base_url: ClassVar[str] = "https://gitlab.com"
    base_url_example: ClassVar[str] = "https://gitlab.example"
    target_help: ClassVar[str] = "the GitLab project path (group/project) or id"
    secrets: ClassVar[dict[str, str]] = {
        "token": "an access token with read_api, to follow the pipeline",
        "trigger_token": "the project's pipeline trigger token",
    }

    @classmethod
    def from_config(
        cls,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        target: str,
        pipeline: str,
        secret: dict[str, str],
    ) -> GitLabPipeline:
        return cls(
            client,
            base_url=base_url,
            project=target,
            trigger_token=secret["trigger_token"],
            token=secret["token"],
        )

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        project: str,
        trigger_token: str,
        token: str,
    ) -> None:
        super().__init__(client)
        self.base = f"{base_url.rstrip('/')}/api/v4/projects/{quote(project, safe='')}"
        self.trigger_token = trigger_token
        self.headers = {"PRIVATE-TOKEN": token}

    async def trigger(self, ref: str, variables: dict[str, str]) -> PipelineStatus:
        form = {"token": self.trigger_token, "ref": ref or "main"}
        form |= {f"variables[{k}]": v for k, v in variables.items()}
        r = await self.send("POST", f"{self.base}/trigger/pipeline", "trigger pipeline", data=form)
        return gitlab_status(r.json())

    async def status(self, external_id: str) -> PipelineStatus:
        url = f"{self.base}/pipelines/{int(external_id)}"
        r = await self.send("GET", url, "get pipeline", headers=self.headers)
        return gitlab_status(r.json())
