"""Validators for the webhook JSON Schemas in docs/, with their cross-file `$ref`s
(the digest's alerts are match payloads) resolved from the files, never fetched."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema
from referencing import Registry, Resource

DOCS = Path(__file__).resolve().parents[2] / "docs"
WEBHOOK_SCHEMAS = ("payload", "digest", "notice")


def schema_path(name: str) -> Path:
    return DOCS / f"webhook-{name}.schema.json"


def example(name: str) -> dict:
    return json.loads((DOCS / f"webhook-{name}.example.json").read_text())


@cache
def registry() -> Registry:
    resources = [
        Resource.from_contents(json.loads(schema_path(n).read_text())) for n in WEBHOOK_SCHEMAS
    ]
    return Registry().with_resources((r.contents["$id"], r) for r in resources)


def webhook_validator(name: str) -> jsonschema.Draft202012Validator:
    """name: payload (newswatch.match), digest or notice."""
    schema = registry().contents(json.loads(schema_path(name).read_text())["$id"])
    return jsonschema.Draft202012Validator(schema, registry=registry())
