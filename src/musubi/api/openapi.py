"""The OpenAPI document, made to say what the server really answers.

FastAPI documents each route's success and a 422 in its own ``{"detail": [...]}`` shape;
MUSUBI answers errors in another shape (:mod:`musubi.api.errors`), and every route can
also refuse a caller (401, 403), an unknown id (404), a body (413, 422 or 400) or a head
(431) before its own code runs. :func:`document_errors` adds those answers to every
operation, in the shape the route's clients get (MUSUBI's, OpenAI's, Anthropic's or
SCIM's), and the key schemes, so that generated clients and API fuzzers (schemathesis,
run in CI by tests/security/test_fuzz_openapi.py) can hold the server to it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from musubi.api.deps import require

__all__ = ["api_routes", "document_errors", "document_permissions", "install_openapi"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
                "request_id": {"type": ["string", "null"]},
            },
        }
    },
}
_OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
_SCIM_ERROR = {
    "type": "object",
    "required": ["schemas", "status"],
    "properties": {
        "schemas": {"type": "array", "items": {"type": "string"}},
        "status": {"type": "string"},
        "detail": {"type": "string"},
        "scimType": {"type": "string"},
    },
}
_SCHEMAS = {
    "Error": _ERROR,
    "OpenAIError": _OPENAI_ERROR,
    "AnthropicError": _ANTHROPIC_ERROR,
    "ScimError": _SCIM_ERROR,
}

_WHY = {
    400: "Malformed request (the OpenAI and Anthropic routes' word for 422)",
    401: "No key, or an unknown, wrong, expired or revoked one",
    403: "The key lacks the permission",
    404: "Not found (or another tenant's)",
    409: "Conflicts with the current state (a name taken, a state that forbids it)",
    413: "Request body over the limit",
    422: "Invalid input; `field` names it",
    429: "A quota is spent for now (see Retry-After)",
    431: "Request line and headers over the limit",
    502: "The model provider failed",
    504: "The model provider did not answer in time",
}
_GATEWAY = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages")
_INFRA = ("/healthz", "/readyz", "/metrics", "/openapi.json")


def _shape(path: str) -> str:
    """Which error body a path answers (as :func:`musubi.api.errors._client_shape`)."""
    if path.startswith("/v1/messages"):
        return "AnthropicError"
    if path in _GATEWAY or path.startswith(("/v1/models", "/v1/files", "/v1/batches")):
        return "OpenAIError"
    return "Error"


def _content(schema: str, scim: bool) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    if scim:
        content["application/scim+json"] = {"schema": {"$ref": "#/components/schemas/ScimError"}}
    return content


def _codes(path: str, method: str, public: bool, has_body: bool) -> list[int]:
    shape = _shape(path)
    codes = [431, 400 if shape != "Error" else 422]
    if path.startswith("/scim/"):
        codes += [400, 422]
    # a failed SSO login is a 401; so is a webhook or chat request with a bad signature
    if not public or path.startswith(("/v1/sso/", "/v1/integrations/")):
        codes += [401, 403]
    if path not in _INFRA:
        codes += [404, 409]
    if method != "get" and path not in _INFRA:
        codes.append(413)
    if has_body:
        codes.append(413)
    vendor = "/integrations" in path or "/pipelines" in path
    if path in _GATEWAY or path.startswith("/v1/sso/") or vendor:
        codes += [502, 504]  # integrations: the tracker, chat or CI/CD service failed
    if path in _GATEWAY:
        codes.append(429)
    return sorted(set(codes))


def document_errors(schema: dict[str, Any], public_paths: Collection[str]) -> None:
    """Add the error answers and key schemes to an OpenAPI document (in place)."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(_SCHEMAS)
    for unused in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(unused, None)
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "msk_… API key"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    }
    for path, operations in schema.get("paths", {}).items():
        public = path in public_paths or path.startswith("/docs")
        scim = path.startswith("/scim/")
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            if _shape(path) != "Error":  # these answer 400 where others answer 422
                responses.pop("422", None)
            if scim:  # SCIM answers its own media type
                for answer in responses.values():
                    content = answer.get("content", {})
                    if "application/json" in content:
                        content["application/scim+json"] = content.pop("application/json")
            for code in _codes(path, method, public, "requestBody" in op):
                error = "Error" if scim and code in (401, 403, 422, 431, 413) else _shape(path)
                responses[str(code)] = {
                    "description": _WHY[code],
                    "content": _content(error, scim and code in (400, 404, 409)),
                }
            op["security"] = [] if public else [{"bearer": []}, {"apiKey": []}]


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route of an app, including those of included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        router = getattr(route, "original_router", None)  # FastAPI's included routers
        if router is not None:
            yield from api_routes(router.routes)


def document_permissions(schema: dict[str, Any], app: FastAPI) -> None:
    """Name each operation's permission and scope (``x-musubi-permission``, ``x-musubi-scope``),
    read from the route's ``require(permission, scope)``; public routes have neither."""
    for route in api_routes(app.routes):
        declared = [d.call for d in route.dependant.dependencies if isinstance(d.call, require)]
        if not declared or route.path not in schema.get("paths", {}):
            continue
        for method in route.methods or ():
            op = schema["paths"][route.path].get(method.lower())
            if op is not None:
                op["x-musubi-permission"] = declared[0].permission
                op["x-musubi-scope"] = declared[0].scope


def install_openapi(app: FastAPI, public_paths: Collection[str]) -> None:
    """Serve the completed document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            document_errors(schema, public_paths)
            document_permissions(schema, app)
            app.openapi_schema = schema
        return app.openapi_schema

    setter: Callable[[], dict[str, Any]] = openapi
    app.openapi = setter  # type: ignore[method-assign]
