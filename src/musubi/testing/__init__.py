"""Helpers for plugin authors: the contract every implementation of a kind must keep.

Call them from your own tests (``docs/plugins.md``)::

    from musubi.testing import check_embedder, check_provider_class

    def test_my_embedder_keeps_the_contract():
        check_embedder(MyEmbedder())
"""

from __future__ import annotations

from musubi.testing.contracts import (
    PipelineSide,
    TrackerSide,
    check_embedder,
    check_entry_point,
    check_pipeline,
    check_provider_class,
    check_step,
    check_tracker,
    check_vector_store,
)

__all__ = [
    "PipelineSide",
    "TrackerSide",
    "check_embedder",
    "check_entry_point",
    "check_pipeline",
    "check_provider_class",
    "check_step",
    "check_tracker",
    "check_vector_store",
]
