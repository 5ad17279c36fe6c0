"""The provider kinds the gateway knows: registered here, in one place."""

from __future__ import annotations

from musubi.egress import UNRESTRICTED, EgressPolicy
from musubi.gateway.providers.anthropic import Anthropic
from musubi.gateway.providers.base import ClientPool, Credential, Provider
from musubi.gateway.providers.bedrock import Bedrock
from musubi.gateway.providers.finetuned import FineTunedLocal, VllmLora
from musubi.gateway.providers.gemini import Gemini
from musubi.gateway.providers.local import Local
from musubi.gateway.providers.openai_compat import (
    AzureOpenAI,
    DeepSeek,
    Groq,
    Mistral,
    Ollama,
    OpenAI,
    OpenAICompatible,
    Together,
)

__all__ = ["BUILTIN_PROVIDERS", "ProviderRegistry"]

BUILTIN_PROVIDERS: tuple[type[Provider], ...] = (
    OpenAI,
    AzureOpenAI,
    OpenAICompatible,
    Mistral,
    Groq,
    Together,
    DeepSeek,
    Ollama,
    Anthropic,
    Gemini,
    Bedrock,
    Local,
    FineTunedLocal,
    VllmLora,
)


class ProviderRegistry:
    """Provider kinds by name: the one place they are registered (owned by the gateway)."""

    def __init__(self, kinds: tuple[type[Provider], ...] = BUILTIN_PROVIDERS) -> None:
        self.kinds: dict[str, type[Provider]] = {k.name: k for k in kinds}

    def register(self, kind: type[Provider]) -> None:
        self.kinds[kind.name] = kind

    def build(
        self, credential: Credential, pool: ClientPool, egress: EgressPolicy | None = None
    ) -> Provider:
        """The provider of ``credential``, connecting where ``egress`` allows (a trusted
        credential, set up by the server itself, anywhere)."""
        policy = UNRESTRICTED if credential.trusted else egress
        return self.kinds[credential.provider](credential, pool, policy)
