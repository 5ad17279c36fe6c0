"""Model providers, one module each; the kinds are registered in :mod:`.registry`."""
