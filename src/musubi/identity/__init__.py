"""Users, service accounts and API keys."""
