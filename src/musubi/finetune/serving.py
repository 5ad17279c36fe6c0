"""A tenant's fine-tuned models as gateway credentials (built into its routing table).

Each succeeded job of the bound tenant is one model, ``ft:<base>:<tenant>:<suffix>``:
those served here go under one ``finetuned`` credential (adapter and base paths in its
options), those loaded on a vLLM server under one ``vllm-lora`` credential per server.
Another tenant's table is built from its own rows only (tenant-scoped queries), so an
adapter is invisible and unusable outside its tenant. The ``finetuned`` credential carries
the engine that runs its adapters (:class:`TransformersEngine`), so the provider
(:mod:`musubi.gateway.providers.finetuned`) needs nothing from this package.

:func:`finetuned_credentials` is wired into the gateway by the composition root
(:func:`musubi.runtime.credential_sources`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.finetune.models import FineTuneJob
from musubi.gateway.providers.base import Credential

__all__ = ["LOCAL_CREDENTIAL", "TransformersEngine", "finetuned_credentials"]

LOCAL_CREDENTIAL = "finetuned"


class TransformersEngine:
    """Runs adapters in this process (:mod:`musubi.finetune.trainer`: transformers and
    PEFT, the ``finetune`` extra, imported on the first call, not when a table is built)."""

    def load_merged(self, base: Path, adapter_dir: Path) -> tuple[Any, Any]:
        from musubi.finetune.trainer import load_merged

        return load_merged(base, adapter_dir)

    def generate(
        self,
        model: Any,
        tokenizer: Any,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> tuple[str, int, int, str]:
        from musubi.finetune.trainer import generate

        return generate(
            model,
            tokenizer,
            messages,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
        )


ENGINE = TransformersEngine()


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
                options={"adapters": local, "engine": ENGINE},
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
