"""Reading a team file safely: bounded size, no YAML aliases, bounded nesting, no secrets.

Team files are trusted to name code, not to be well-formed: a YAML alias bomb (a few lines
whose aliases stand for billions of values) or a file nested thousands deep must be refused
with a message, not hang or crash start-up; aliases themselves are fine (sharing one model
client between agents is natural in YAML). And no credential may live in one, wherever it is nested:
AutoGen's own check covers only a model client's top-level `api_key`, while a bearer token in
`default_headers` or a key in some `metadata` would ship with the file just the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

MAX_FILE_BYTES = 1_048_576
MAX_DEPTH = 64
MAX_NODES = 200_000
_SECRET_KEY = re.compile(
    r"^(x[-_])?(api[-_]?key|api[-_]?token|access[-_]?token|auth[-_]?token|azure[-_]ad[-_]token"
    r"|authorization|client[-_]secret|password|secret)$",
    re.IGNORECASE,
)


class UnreadableTeamFile(ValueError):
    """The file cannot be read as a team file; the message says why, without the file name."""


def parse(text: str, *, is_json: bool) -> Any:
    """The file's data; raises UnreadableTeamFile or the parser's own error."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise UnreadableTeamFile(f"is larger than {MAX_FILE_BYTES} bytes.")
    try:
        data = json.loads(text) if is_json else yaml.safe_load(text)
    except RecursionError:
        raise UnreadableTeamFile("is nested too deeply to read.") from None
    for count, (path, _, _, depth) in enumerate(_walk(data)):
        if depth > MAX_DEPTH:
            raise UnreadableTeamFile(f"is nested deeper than {MAX_DEPTH} levels at {path}.")
        if count > MAX_NODES:
            # YAML aliases share nodes: a few lines can stand for billions of values.
            raise UnreadableTeamFile(f"expands to more than {MAX_NODES} values (YAML aliases?).")
    return data


def check_secrets(data: Any) -> None:
    """Raises UnreadableTeamFile at the first credential-like key with a value, at any depth."""
    for path, key, value, _ in _walk(data):
        if key is not None and _SECRET_KEY.match(key) and value not in (None, ""):
            raise UnreadableTeamFile(
                f"holds a credential at {path}: keys never live in team files. Set LLM_API_KEY "
                "or the provider's own variable (OPENAI_API_KEY, ...) in the environment."
            )


def _walk(data: Any) -> Iterator[tuple[str, str | None, Any, int]]:
    """(path, key, value, depth) of every node, iteratively: deep files cannot overflow."""
    stack: list[tuple[str, str | None, Any, int]] = [("$", None, data, 0)]
    while stack:
        path, key, value, depth = stack.pop()
        yield path, key, value, depth
        if isinstance(value, dict):
            for name, child in value.items():
                stack.append((f"{path}.{name}", str(name), child, depth + 1))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                stack.append((f"{path}[{index}]", None, child, depth + 1))
