"""Every table of the application, so that ``metadata`` is complete (for migrations and tests).

It imports the models of every domain package, so it sits above them all; nothing in the
application imports it. Alembic's environment (``storage/migrations/env.py``, a script
Alembic loads, not a module of :mod:`musubi.storage`) compares the migrations with it.
"""

from __future__ import annotations

from musubi.access.models import Role, RoleAssignment
from musubi.alerts import ChatAlert
from musubi.audit.models import AuditAnchor, AuditEvent, AuditHead
from musubi.batch.models import Batch, BatchJob, BatchLine, FilePart, StoredFile
from musubi.finetune.models import FineTuneCheckpoint, FineTuneEvent, FineTuneJob
from musubi.gateway.models import GatewayConfig, ProviderCredential
from musubi.identity.models import ApiKey, User
from musubi.identity.sign_in import IdpConfig, SsoPolicy, SsoSession
from musubi.integrations.models import Integration, IssueLink, OutboxItem, WebhookDelivery
from musubi.integrations.pipeline_models import PipelineConfig, PipelineRun
from musubi.knowledge.models import KnowledgeIndexRecord
from musubi.orchestrator.models import Run, RunEvent, RunStep
from musubi.quotas.models import QuotaPolicy
from musubi.sso.models import ExternalIdentity, LoginFlow, ReplayRecord, ScimGroup, ScimMember
from musubi.storage.base import Base
from musubi.storage.changes import CacheChange
from musubi.storage.tenants import Tenant
from musubi.tenancy.models import Project, Team
from musubi.usage.models import UsageDay, UsageRow

__all__ = [
    "ApiKey",
    "AuditAnchor",
    "AuditEvent",
    "AuditHead",
    "Batch",
    "BatchJob",
    "BatchLine",
    "CacheChange",
    "ChatAlert",
    "ExternalIdentity",
    "FilePart",
    "FineTuneCheckpoint",
    "FineTuneEvent",
    "FineTuneJob",
    "GatewayConfig",
    "IdpConfig",
    "Integration",
    "IssueLink",
    "KnowledgeIndexRecord",
    "LoginFlow",
    "OutboxItem",
    "PipelineConfig",
    "PipelineRun",
    "Project",
    "ProviderCredential",
    "QuotaPolicy",
    "ReplayRecord",
    "Role",
    "RoleAssignment",
    "Run",
    "RunEvent",
    "RunStep",
    "ScimGroup",
    "ScimMember",
    "SsoPolicy",
    "SsoSession",
    "StoredFile",
    "Team",
    "Tenant",
    "UsageDay",
    "UsageRow",
    "User",
    "WebhookDelivery",
    "metadata",
]

metadata = Base.metadata
