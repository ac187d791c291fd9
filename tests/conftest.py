from collections.abc import Iterator

import pytest

from support.upstream import ScriptedUpstream


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    """A scripted OpenAI-compatible upstream on loopback, for one test."""
    with ScriptedUpstream() as scripted:
        yield scripted
