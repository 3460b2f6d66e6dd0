"""Shared pieces of the phases: asking one agent for a structured answer, cycles, transcripts."""

from typing import TypeVar

from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone
from pydantic import BaseModel

from agents.models import AgentSpec
from agents.runtime.metering import CallContext
from agents.runtime.structured import ask_structured
from agents.services import agent_message_record
from missions.events import event_record
from missions.models import DecisionCycle, Event, Mission

T = TypeVar("T", bound=BaseModel)


def ask_agent(
    *,
    mission: Mission,
    agent: AgentSpec,
    purpose: str,
    prompt: str,
    output_type: type[T],
    cycle: DecisionCycle | None,
    max_output_tokens: int | None = None,
) -> T:
    """One metered model call as ``agent``, parsed into ``output_type`` (raises AgentRunError subclasses)."""
    context = CallContext(
        mission_id=mission.pk,
        purpose=purpose,
        cycle_id=cycle.pk if cycle else None,
        agent_id=agent.pk,
        max_output_tokens=max_output_tokens,
    )
    return async_to_sync(ask_structured)(
        profile=agent.model_profile or mission.model_profile,
        system_prompt=agent.system_prompt,
        prompt=prompt,
        output_type=output_type,
        context=context,
    )


def transcript_record(
    *, mission: Mission, agent: AgentSpec, content: str, cycle=None, data: dict | None = None
) -> None:
    agent_message_record(
        mission_id=mission.pk,
        cycle_id=cycle.pk if cycle else None,
        agent_id=agent.pk,
        source=agent.title,
        content=content,
        data=data or {},
    )


def cycle_open(mission: Mission, kind: str, summary: str) -> DecisionCycle:
    with transaction.atomic():
        number = (mission.cycles.order_by("-number").values_list("number", flat=True).first() or 0) + 1
        cycle = DecisionCycle.objects.create(mission=mission, number=number, kind=kind, rounds=1, summary=summary)
        event_record(mission=mission, kind=Event.Kind.CYCLE, message=summary, data={"cycle": number, "kind": kind})
    return cycle


def cycle_close(cycle: DecisionCycle, outcome: str, summary: str, *, rounds: int | None = None) -> None:
    with transaction.atomic():
        fields = {"outcome": outcome, "summary": summary, "finished_at": timezone.now()}
        if rounds is not None:
            fields["rounds"] = rounds
        DecisionCycle.objects.filter(pk=cycle.pk).update(**fields)
        message = (
            f"{cycle.get_kind_display()} #{cycle.number}: {DecisionCycle.Outcome(outcome).label.lower()}. {summary}"
        )
        event_record(
            mission=cycle.mission,
            kind=Event.Kind.CYCLE,
            message=message,
            data={"cycle": cycle.number, "outcome": outcome},
        )
