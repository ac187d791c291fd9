"""How long building one request's team takes, per served team: `uv run python bench/team_build.py`.

It loads examples/teams (offline model, so no network) the way the service does, then times
`definition.build(inputs)` (fresh agents and team, shared clients and tools) with an
instruction and a two-message history, as a request with a system message would. For scale
it also times plain `Team.load_component` of the original file, which builds its own model
clients and re-runs tool source code. Prints one line per team: median and 95th percentile.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

from autogen_agentchat.base import Team
from autogen_core import CancellationToken
from autogen_core.models import AssistantMessage, UserMessage

from fastapi_autogen_team.settings import Settings
from fastapi_autogen_team.teams.clients import RunModelClient
from fastapi_autogen_team.teams.loader import read_team_file
from fastapi_autogen_team.teams.registry import load_registry
from fastapi_autogen_team.teams.run import RunInputs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "teams"


def _inputs(served_client: object) -> RunInputs:
    client = RunModelClient(served_client, CancellationToken())  # type: ignore[arg-type]
    history = [
        UserMessage(content="An earlier question.", source="user"),
        AssistantMessage(content="An earlier answer.", source="assistant"),
    ]
    return RunInputs(client, "Answer briefly.", history, max_turns=8)


def _milliseconds(action: Callable[[], object], rounds: int) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--teams-dir", default=str(EXAMPLES))
    args = parser.parse_args()
    settings = Settings(_env_file=None, TEAMS_DIR=args.teams_dir, LLM_MODEL="")  # type: ignore[call-arg]
    registry = load_registry(settings)
    for served in registry:
        build = partial(served.definition.build, _inputs(served.client))
        build()  # warm-up
        median, p95 = _milliseconds(build, args.rounds)
        name = served.definition.id
        print(f"{name:16} build per request: median {median:.3f} ms, p95 {p95:.3f} ms")
    for path in sorted(Path(args.teams_dir).iterdir()):
        load = partial(Team.load_component, read_team_file(path).component)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FunctionTool's security warning, once per load
            median, _ = _milliseconds(load, 50)
        print(f"{path.stem:16} plain Team.load_component: median {median:.3f} ms")


if __name__ == "__main__":
    main()
