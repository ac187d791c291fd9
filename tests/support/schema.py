"""Validation against OpenAI's published schemas in ../shared/openai-schema/."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

_FILE = "openai-chat-models.schema.json"
_PLACES = (
    Path(__file__).resolve().parents[3] / "shared" / "openai-schema",
    Path("/work/shared/openai-schema"),
)


@cache
def _components() -> dict[str, Any]:
    for place in _PLACES:
        if (place / _FILE).is_file():
            return json.loads((place / _FILE).read_text())["components"]
    raise FileNotFoundError(f"{_FILE} not found in any of {[str(p) for p in _PLACES]}")


@cache
def _validator(name: str) -> Draft202012Validator:
    schema = {"components": _components(), "$ref": f"#/components/schemas/{name}"}
    return Draft202012Validator(schema)


def validate(instance: Any, name: str) -> None:
    """Raises jsonschema.ValidationError unless `instance` matches schema `name`."""
    _validator(name).validate(instance)
