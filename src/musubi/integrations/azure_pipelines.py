"""Azure Pipelines runs (REST 7.1, ``pipelines`` area).

Trigger: ``POST {org}/{project}/_apis/pipelines/{pipelineId}/runs`` with
``RunPipelineParameters`` (the branch as ``resources.repositories.self.refName``, the
variables as ``{name: {"value": …}}``: Azure refuses a variable the pipeline does not let
be set at queue time, and the refusal names it). Follow: ``GET …/runs/{runId}`` until
``state == "completed"``, then ``result``. A personal access token with *Build (read and
execute)*, sent as HTTP Basic with an empty user name.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from musubi.errors import InvalidInput
from musubi.integrations.pipeline import Pipeline, PipelineStatus

if TYPE_CHECKING:
    import httpx

__all__ = ["AzurePipeline", "ado_status"]

_STATES = {"unknown": "queued", "inProgress": "running", "canceling": "running"}
API = {"api-version": "7.1"}


def ado_status(data: dict[str, Any]) -> PipelineStatus:
    """A ``Run`` of the description, in the common vocabulary."""
    vendor = str(data.get("state", "unknown"))
    state = "completed" if vendor == "completed" else _STATES.get(vendor, "queued")
    result = str(data.get("result") or "unknown") if state == "completed" else None
    web = ((data.get("_links") or {}).get("web") or {}).get("href", "")
    return PipelineStatus(
        external_id=str(data["id"]),
        state=state,
        result=result,
        vendor_status=vendor if state != "completed" else f"completed/{result}",
        web_url=str(web),
        raw=data,
    )


class AzurePipeline(Pipeline):
    vendor: ClassVar[str] = "azure_pipelines"
    base_url_example: ClassVar[str] = "https://dev.azure.com/<organization>"
    target_help: ClassVar[str] = "the Azure DevOps project name"
    pipeline_help: ClassVar[str] = "the Azure Pipelines pipeline id (a number)"
    secrets: ClassVar[dict[str, str]] = {"token": "a PAT with Build (read and execute)"}

    @classmethod
    def check_pipeline(cls, pipeline: str) -> None:
        """The pipeline id: ASCII digits (``str.isdigit`` takes '²'), within int32."""
        if not (pipeline.isascii() and pipeline.isdigit() and 0 < int(pipeline) < 2**31):
            raise InvalidInput(f"pipeline must be {cls.pipeline_help}", field="pipeline")

    @classmethod
    def from_config(
        cls,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        target: str,
        pipeline: str,
        secret: dict[str, str],
    ) -> AzurePipeline:
        return cls(
            client,
            base_url=base_url,
            project=target,
            pipeline_id=int(pipeline),
            token=secret["token"],
        )

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,  # https://dev.azure.com/{organization}
        project: str,
        pipeline_id: int,
        token: str,
    ) -> None:
        super().__init__(client)
        self.base = (
            f"{base_url.rstrip('/')}/{quote(project, safe='')}/_apis/pipelines/{pipeline_id}/runs"
        )
        basic = base64.b64encode(f":{token}".encode()).decode()
        self.headers = {"Authorization": f"Basic {basic}"}

    async def trigger(self, ref: str, variables: dict[str, str]) -> PipelineStatus:
        body: dict[str, Any] = {}
        if ref:
            refname = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
            body["resources"] = {"repositories": {"self": {"refName": refname}}}
        if variables:
            body["variables"] = {k: {"value": v, "isSecret": False} for k, v in variables.items()}
        r = await self.send(
            "POST", self.base, "run pipeline", json=body, params=API, headers=self.headers
        )
        return ado_status(r.json())

    async def status(self, external_id: str) -> PipelineStatus:
        r = await self.send(
            "GET", f"{self.base}/{int(external_id)}", "get run", params=API, headers=self.headers
        )
        return ado_status(r.json())
