"""The usage ledger: one record per model call, kept even if the process is killed."""

from musubi.usage.ledger import UsageLedger, UsageRecord

__all__ = ["UsageLedger", "UsageRecord"]
