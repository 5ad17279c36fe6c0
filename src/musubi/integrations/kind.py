"""What an integration's class says about itself before any instance exists.

Trackers (:class:`~musubi.integrations.tracker.Tracker`) and chat notifiers
(:class:`~musubi.integrations.chat.ChatNotifier`) are pluggable kinds: when a project's
integration is saved, :mod:`musubi.integrations.service` asks the implementation's class
(found through its entry point) for its defaults and checks, instead of knowing each vendor.
"""

from __future__ import annotations

from typing import ClassVar

from musubi.egress.policy import EgressPolicy
from musubi.errors import InvalidInput

__all__ = ["Configurable"]


class Configurable:
    """Class attributes and class methods an integration kind's implementation carries;
    override the ones whose default does not fit."""

    #: The entry point's name (``jira``, ``slack``, ``example_files``).
    vendor: ClassVar[str] = ""
    #: The base URL used when an integration gives none; "" makes ``base_url`` required.
    default_base_url: ClassVar[str] = ""
    #: An example of ``base_url``, for the error naming a missing one.
    base_url_example: ClassVar[str] = "https://tracker.example"
    #: Whether the integration must hold a ``token`` secret.
    needs_token: ClassVar[bool] = True
    #: What ``target`` is, for the error naming a bad one.
    target_help: ClassVar[str] = "the project on the tracker"
    #: Options (``options.<name>``) this implementation reads, which must be text.
    text_options: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_target(cls, target: str) -> None:
        """Refuse a ``target`` this implementation cannot use (:class:`InvalidInput`
        naming the field ``target``); the default wants some non-blank text."""
        if not target.strip():
            raise InvalidInput(f"target must be {cls.target_help}", field="target")

    @classmethod
    def check_destination(cls, base_url: str, egress: EgressPolicy) -> None:
        """Refuse a ``base_url`` the tenant's egress policy does not allow; called when
        the integration is saved and again each time it is opened. The default is the
        policy's check of an ``http(s)`` URL: an implementation that reaches anything
        else (files, another protocol) must override this and say how the policy applies,
        so nothing bypasses the policy by default."""
        egress.check_url(base_url, field="base_url")
