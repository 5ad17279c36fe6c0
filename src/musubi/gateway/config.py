"""A tenant's router configuration, with built-in defaults that need no setup."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_TASKS", "TASKS", "RouterConfig"]

TASKS = ("requirements", "design", "code", "review", "embedding", "cheap", "code-completion")

DEFAULT_TASKS: dict[str, list[str]] = {
    "requirements": ["claude-sonnet-4", "gpt-4.1", "gemini-1.5-pro", "gpt-4o", "llama3.2"],
    "design": ["claude-opus-4", "claude-sonnet-4", "gpt-4.1", "gemini-1.5-pro", "llama3.2"],
    "code": ["claude-sonnet-4", "gpt-4.1", "deepseek-chat", "gpt-4o", "llama3.2"],
    "review": ["gpt-4.1", "claude-sonnet-4", "gemini-1.5-pro", "gpt-4o", "llama3.2"],
    "embedding": ["text-embedding-3-small", "text-embedding-3-large"],
    "cheap": ["gpt-4o-mini", "claude-3-5-haiku", "gemini-2.0-flash", "llama-3.3-70b", "llama3.2"],
    # inline suggestions in the editor (fill in the middle): fast, cheap models first
    "code-completion": ["gpt-4o-mini", "deepseek-chat", "mistral-small", "llama3.2"],
}


class RouterConfig(BaseModel):
    """Stored per tenant; every field has a default."""

    model_config = ConfigDict(extra="forbid")

    aliases: dict[str, str] = Field(default_factory=dict, description="name -> model")
    tasks: dict[str, list[str]] = Field(
        default_factory=dict,
        description="task -> models in order of preference (merged over the defaults); "
        "called as model 'musubi/<task>' or with header 'x-musubi-task'",
    )
    fallbacks: dict[str, list[str]] = Field(
        default_factory=dict, description="model -> models to try when all its deployments fail"
    )
    allow: list[str] = Field(
        default_factory=lambda: ["*"], description="glob patterns of usable model names"
    )
    retries: int = Field(default=1, ge=0, le=5, description="retries per deployment")
    backoff_s: float = Field(default=0.2, ge=0, le=10)
    max_retry_after_s: float = Field(
        default=5.0, ge=0, description="a longer Retry-After moves on instead of waiting"
    )
    timeout_s: float = Field(default=120.0, gt=0, le=900)
    breaker_failures: int = Field(default=5, ge=1, description="consecutive failures to open")
    breaker_cooldown_s: float = Field(default=30.0, ge=0)
    cache: bool = Field(default=True, description="exact-match response cache")
    cache_ttl_s: int = Field(default=300, ge=1)
    batch_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="lines of this tenant's batches in flight at once, per worker process "
        "(empty: MUSUBI_BATCH_CONCURRENCY)",
    )

    def task_models(self, task: str) -> list[str]:
        return self.tasks.get(task) or DEFAULT_TASKS.get(task, [])
