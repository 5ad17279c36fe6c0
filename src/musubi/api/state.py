"""Moved to :mod:`musubi.runtime` (the composition root, below the web package); these
names stay importable from here for code written before the move."""

from __future__ import annotations

from musubi.runtime import AppState, load_signer, open_state, quota_store, signing_key_path

__all__ = ["AppState", "load_signer", "open_state", "quota_store", "signing_key_path"]
