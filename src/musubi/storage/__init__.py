"""Relational storage: engine and sessions, the tenant-scoped base model, migrations."""
