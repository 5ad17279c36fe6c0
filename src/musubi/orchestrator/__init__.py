"""The orchestrator: SDD steps (requirements, design, tasks) done by models through the
gateway, validated by the SDD core, estimated first, approved between stages, resumable,
and served to coding agents over MCP. See docs/orchestrator.md.

Modules: :mod:`.steps` (what a step asks and how its answer is checked), :mod:`.llm` (the
model call, through the in-process gateway as the caller), :mod:`.estimate` (tokens and
cost before a run), :mod:`.models` and :mod:`.service` (stored runs, steps, events),
:mod:`.runner` (driving runs, leases, resume). Its faces live with the others: the REST
routes in :mod:`musubi.api.routers.runs`, the MCP server in :mod:`musubi.api.mcp`.
"""
