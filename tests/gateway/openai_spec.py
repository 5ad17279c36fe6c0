"""Validate request bodies against OpenAI's OpenAPI description (its request schemas,
vendored in tests/fixtures/specs/openai; see tests/fixtures/SOURCES.md)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "specs" / "openai" / "openapi.yaml"
SCHEMAS = {
    "chat": "CreateChatCompletionRequest",
    "completion": "CreateCompletionRequest",
    "embedding": "CreateEmbeddingRequest",
}


@lru_cache(maxsize=1)
def _registry() -> Registry[Any]:
    with SPEC.open() as f:
        doc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
    resource = Resource.from_contents(doc, default_specification=_spec())
    return Registry().with_resource("urn:openai", resource)


def _spec() -> Any:
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


def validate_openai_request(kind: str, body: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``body`` breaks the spec's request schema."""
    if kind not in SCHEMAS:
        return
    schema = {"$ref": f"urn:openai#/components/schemas/{SCHEMAS[kind]}"}
    Draft202012Validator(schema, registry=_registry()).validate(body)
