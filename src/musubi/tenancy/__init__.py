"""Tenants (organisations) → teams → projects: their tables and their management.

The tenant row itself is :mod:`musubi.storage.tenants` (the root of tenant scoping, which
storage and the audit log read), and the tenant bound to each request is :mod:`musubi.context`.
"""
