"""The built-in team: a drafter and a reviewer, the reviewer's reply being the answer.

The reviewer always speaks last (the run stops when it has spoken, or after MAX_TURNS), so
its tokens can stream to the client as the answer while they arrive, with no buffering.
"""

from __future__ import annotations

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import ChatAgent, Team
from autogen_agentchat.conditions import MaxMessageTermination, SourceMatchTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core.model_context import UnboundedChatCompletionContext

from . import prompts
from .run import RunInputs, TeamDefinition

# When this team took its current shape (2026-12-04): what /v1/models reports as `created`.
BUILTIN_CREATED = 1_796_342_400
DRAFTER = "drafter"
REVIEWER = "reviewer"


def _agent(name: str, system_message: str, inputs: RunInputs) -> AssistantAgent:
    if inputs.instructions:
        system_message += prompts.CLIENT_INSTRUCTIONS + inputs.instructions
    return AssistantAgent(
        name,
        model_client=inputs.model_client.for_agent(name),
        system_message=system_message,
        model_client_stream=False,  # the client streams the tokens itself, past the runtime
        model_context=UnboundedChatCompletionContext(initial_messages=list(inputs.history)),
    )


def build_team(inputs: RunInputs) -> RoundRobinGroupChat:
    agents: list[ChatAgent | Team] = [
        _agent(DRAFTER, prompts.DRAFTER, inputs),
        _agent(REVIEWER, prompts.REVIEWER, inputs),
    ]
    # MaxMessageTermination counts the task message too.
    stop = SourceMatchTermination([REVIEWER]) | MaxMessageTermination(inputs.max_turns + 1)
    return RoundRobinGroupChat(agents, termination_condition=stop)


def builtin_definition(model_label: str) -> TeamDefinition:
    return TeamDefinition(
        id="autogen-team",
        name="AutoGen drafter and reviewer",
        description=(
            "The built-in two-agent team: a drafter writes a draft, a reviewer checks it and "
            f"writes the answer. Model behind the agents: {model_label}."
        ),
        answer_agent=REVIEWER,
        created=BUILTIN_CREATED,
        build=build_team,
    )
