"""A tamper-evident audit log: per-tenant hash chains with Ed25519-signed heads."""
