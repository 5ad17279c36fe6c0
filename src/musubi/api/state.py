"""What the app owns for its lifetime (no module globals): built in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from musubi.audit.signing import Signer
from musubi.identity.auth import Authenticator
from musubi.settings import Settings
from musubi.storage.database import Database

__all__ = ["AppState"]


@dataclass
class AppState:
    settings: Settings
    db: Database
    signer: Signer
    auth: Authenticator
