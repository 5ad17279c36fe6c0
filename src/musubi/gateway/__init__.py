"""The model gateway: OpenAI- and Anthropic-compatible calls routed to providers."""
