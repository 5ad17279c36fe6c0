"""Usage quotas: requests, tokens and cost per minute, day and month, per tenant, team,
project and key; reserved before the work and reconciled after it."""

from musubi.quotas.service import Quotas, QuotaScope, Reservation

__all__ = ["QuotaScope", "Quotas", "Reservation"]
