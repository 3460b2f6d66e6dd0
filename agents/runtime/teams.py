"""How the C-suite hears each other in a round: the template's conversation mode, on AutoGen teams.

* broadcast   — every member votes on the draft alone (no one sees another vote);
* sequential  — a RoundRobinGroupChat in a fixed order: each member sees the votes before theirs;
* round_robin — the same, but who speaks first rotates from round to round;
* selector    — a SelectorGroupChat: a model picks who speaks next among those who have not voted.
"""

import asyncio
from dataclasses import dataclass

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import StructuredMessage
from autogen_agentchat.teams import RoundRobinGroupChat, SelectorGroupChat
from django.db import InterfaceError, OperationalError

from agents.errors import AgentRunError, BudgetExceeded, MissionStopped, ModelOutputError, ModelUnavailable
from agents.models import ModelProfile
from agents.runtime.clients import model_client_for
from agents.runtime.executor import agent_name
from agents.runtime.metering import CallContext, MeteredChatCompletionClient
from agents.runtime.structured import ask_structured, fallback_client_for
from agents.schemas import PlanVote

MODES = ("broadcast", "sequential", "round_robin", "selector")
VOTE_MESSAGES = [StructuredMessage[PlanVote]]  # teams must know the structured message type they carry


@dataclass(frozen=True)
class Voter:
    key: str
    title: str
    system_prompt: str
    profile: ModelProfile
    context: CallContext


async def collect_votes(*, mode: str, voters: list[Voter], brief: str, round_no: int) -> dict[str, PlanVote]:
    """Every voter's PlanVote for this round, keyed by ``Voter.key``."""
    if mode not in MODES:
        raise AgentRunError(f"Unknown conversation mode {mode!r}; use one of {', '.join(MODES)}.")
    if mode == "broadcast":
        answers = await asyncio.gather(
            *(
                ask_structured(
                    profile=v.profile,
                    system_prompt=v.system_prompt,
                    prompt=brief,
                    output_type=PlanVote,
                    context=v.context,
                )
                for v in voters
            )
        )
        return {v.key: answer for v, answer in zip(voters, answers, strict=True)}
    order = voters
    if mode == "round_robin":
        shift = (round_no - 1) % len(voters)
        order = voters[shift:] + voters[:shift]
    return await _team_votes(mode, order, brief)


async def _team_votes(mode: str, voters: list[Voter], brief: str) -> dict[str, PlanVote]:
    clients = [fallback_client_for(v.profile, v.context) for v in voters]
    by_name = {agent_name(v.key): v.key for v in voters}
    agents = [
        AssistantAgent(
            name=agent_name(v.key),
            description=v.title,
            model_client=client,
            system_message=v.system_prompt,
            output_content_type=PlanVote,
        )
        for v, client in zip(voters, clients, strict=True)
    ]
    if mode == "selector":
        chooser_context = CallContext(
            mission_id=voters[0].context.mission_id, purpose="speaker_selection", cycle_id=voters[0].context.cycle_id
        )
        chooser = MeteredChatCompletionClient(
            model_client_for(voters[0].profile), profile=voters[0].profile, context=chooser_context
        )
        clients.append(chooser)

        def not_yet_voted(thread) -> list[str]:
            spoken = {m.source for m in thread if isinstance(m, StructuredMessage)}
            return [name for name in by_name if name not in spoken] or list(by_name)

        team = SelectorGroupChat(
            agents,
            model_client=chooser,
            max_turns=len(agents),
            candidate_func=not_yet_voted,
            custom_message_types=VOTE_MESSAGES,
        )
    else:
        team = RoundRobinGroupChat(agents, max_turns=len(agents), custom_message_types=VOTE_MESSAGES)
    try:
        result = await team.run(task=brief)
    except AgentRunError:
        raise
    except Exception as error:  # a vote that does not parse, a selector that never answers, ...
        raise _unwrap(error) or ModelOutputError(
            f"The {mode} deliberation could not complete: {type(error).__name__}: {str(error).splitlines()[0]}"
        ) from error
    finally:
        for client in clients:
            await client.close()
    votes = {
        by_name[m.source]: m.content
        for m in result.messages
        if isinstance(m, StructuredMessage) and isinstance(m.content, PlanVote) and m.source in by_name
    }
    missing = sorted(set(by_name.values()) - set(votes))
    if missing:
        raise ModelOutputError(f"No vote came from {', '.join(missing)} in the {mode} deliberation.")
    return votes


def _unwrap(error: Exception) -> Exception | None:
    """A team re-raises a participant's error as RuntimeError("Type: message ..."); recover ours.

    The budget pause and a cancel must still work when they happen inside a team, and a dropped
    database connection must stay a database error (the task retries it) rather than fail the mission.
    """
    first_line = str(error).splitlines()[0] if str(error) else ""
    for kind in (BudgetExceeded, MissionStopped, ModelUnavailable, ModelOutputError, OperationalError, InterfaceError):
        prefix = f"{kind.__name__}: "
        if first_line.startswith(prefix):
            return kind(first_line[len(prefix) :])
    return None
