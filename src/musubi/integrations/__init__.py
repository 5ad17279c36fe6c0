"""Integrations: issue trackers (JIRA, GitHub) kept in two-way sync with a project's spec
items through an outbox, with vendor-signed webhooks coming back (docs/integrations.md)."""
