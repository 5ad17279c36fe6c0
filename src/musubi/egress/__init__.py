"""Outbound connections on a tenant's behalf: the egress policy (:mod:`.policy`) and the
HTTP clients that apply it when they connect (:mod:`.clients`, imported where used)."""

from musubi.egress.policy import (
    DENIED_NETWORKS,
    UNRESTRICTED,
    EgressDenied,
    EgressPolicy,
    EgressRefused,
    EgressRules,
)

__all__ = [
    "DENIED_NETWORKS",
    "UNRESTRICTED",
    "EgressDenied",
    "EgressPolicy",
    "EgressRefused",
    "EgressRules",
]
