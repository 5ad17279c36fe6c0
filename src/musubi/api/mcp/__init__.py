"""MUSUBI as an MCP server: :mod:`.server` mounts it at ``/mcp/`` of ``musubi serve`` (a
MUSUBI key per request), :mod:`.tools` defines the tools, each calling the REST route's own
function as the caller (``musubi mcp`` serves the same tools over stdio)."""
