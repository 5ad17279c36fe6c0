"""A tenant's fine-tuned models as gateway credentials (built into its routing table).

Each succeeded job of the bound tenant is one model, ``ft:<base>:<tenant>:<suffix>``:
those served here go under one ``finetuned`` credential (adapter and base paths in its
options), those loaded on a vLLM server under one ``vllm-lora`` credential per server.
Another tenant's table is built from its own rows only (tenant-scoped queries), so an
adapter is invisible and unusable outside its tenant.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.finetune.models import FineTuneJob
from musubi.gateway.providers.base import Credential

__all__ = ["LOCAL_CREDENTIAL", "finetuned_credentials"]

LOCAL_CREDENTIAL = "finetuned"


async def finetuned_credentials(session: AsyncSession) -> list[Credential]:
    rows = (
        await session.execute(
            select(
                FineTuneJob.fine_tuned_model,
                FineTuneJob.adapter_path,
                FineTuneJob.base_path,
                FineTuneJob.serving,
            ).where(FineTuneJob.status == "succeeded", FineTuneJob.fine_tuned_model.is_not(None))
        )
    ).all()
    local: dict[str, dict[str, str]] = {}
    remote: dict[str, list[str]] = {}
    for name, adapter, base, serving in rows:
        if name is None or adapter is None or base is None:
            continue
        if not serving or serving == "local":
            local[name] = {"adapter": adapter, "base": base}
        else:
            remote.setdefault(serving, []).append(name)
    creds = []
    if local:
        creds.append(
            Credential(
                name=LOCAL_CREDENTIAL,
                provider="finetuned",
                models=tuple(sorted(local)),
                options={"adapters": local},
                trusted=True,
            )
        )
    for i, (url, names) in enumerate(sorted(remote.items())):
        creds.append(
            Credential(
                name=f"finetuned-vllm{i or ''}",
                provider="vllm-lora",
                base_url=url,
                models=tuple(sorted(names)),
                trusted=True,
            )
        )
    return creds
