"""Tenants (organisations) → teams → projects, and the tenant bound to each request."""
