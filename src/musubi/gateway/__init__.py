"""The LLM gateway: OpenAI- and Anthropic-compatible APIs in front of many providers, with
routing, fallbacks, a circuit breaker, caching, coalescing, budgets and the usage ledger."""
