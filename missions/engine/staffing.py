"""Staffing: every step gets an agent; a role nobody covers gets a specialist designed by a model.

Claimed through the plan's ``staffed_at``; then the workspace is prepared and execution starts.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from agents.errors import AgentRunError
from agents.models import AgentSpec
from agents.runtime.tools import TOOL_NAMES
from agents.runtime.workspace import WorkspaceError
from agents.schemas import SpecialistDesign
from agents.selectors import agent_for_role
from missions import briefs
from missions.consult import ask_agent, cycle_close, cycle_open
from missions.engine.execution import mission_schedule
from missions.events import event_record
from missions.knowledge import knowledge_brief
from missions.models import DecisionCycle, Event, Mission, Plan, Step
from missions.repository import mission_branch_create, mission_repo_url
from missions.selectors import current_plan
from missions.services import mission_fail, mission_transition


def mission_staff(mission: Mission) -> None:
    """Give every step of the current plan an agent, prepare the workspace, start executing.

    Claimed through the plan's ``staffed_at``, so a redelivered task does not design specialists twice;
    a claim older than STALLED_AFTER_S (its worker died) can be taken over.
    """
    plan = current_plan(mission)
    now = timezone.now()
    stale = now - timedelta(seconds=settings.STALLED_AFTER_S)
    if (
        not Plan.objects.filter(pk=plan.pk)
        .filter(Q(staffed_at__isnull=True) | Q(staffed_at__lt=stale))
        .update(staffed_at=now)
    ):
        return
    staff_plan(mission, plan)
    Mission.objects.filter(pk=mission.pk).update(knowledge_snapshot=knowledge_brief(mission))
    try:
        start = mission_branch_create(mission)  # a project's branch was made from its mirror when filed
    except WorkspaceError as error:
        mission_fail(mission=mission, reason=str(error))
        return
    Mission.objects.filter(pk=mission.pk).update(
        workspace_path=mission_repo_url(mission), base_sha=mission.base_sha or start
    )
    if mission_transition(mission=mission, to=Mission.Status.EXECUTING, expected=Mission.Status.STAFFING):
        mission_schedule(mission)


def staff_plan(mission: Mission, plan: Plan) -> None:
    """Assign an active agent to each step, creating specialists where no agent covers the role."""
    cycle = None
    for step in plan.steps.all():
        agent = agent_for_role(step.role, mission=mission)
        if agent is None:
            cycle = cycle or cycle_open(mission, DecisionCycle.Kind.STAFFING, "Staffing: designing specialists.")
            agent = design_specialist(mission, step, cycle)
        with transaction.atomic():
            Step.objects.filter(pk=step.pk).update(agent=agent)
            event_record(
                mission=mission,
                kind=Event.Kind.STEP,
                message=f"Step {step.key} staffed with {agent.title}.",
                data={"step": step.key, "agent": agent.name},
            )
    if cycle is not None:
        cycle_close(cycle, DecisionCycle.Outcome.APPROVED, "Every step has an agent.")


def _agent_manager(mission: Mission) -> AgentSpec:
    """The agent that designs specialists for ``mission``: never another requester's unreviewed one."""
    manager = agent_for_role("agent_manager", mission=mission)
    cto = AgentSpec.objects.usable_for(mission).filter(role="cto", is_active=True).order_by("is_dynamic", "pk")
    manager = manager or cto.select_related("model_profile").first()
    if manager is None:
        raise AgentRunError("No agent manager (or CTO) is active to design a specialist.")
    return manager


def design_specialist(mission: Mission, step: Step, cycle: DecisionCycle) -> AgentSpec:
    """Have a model design an agent for ``step.role`` and save it for this requester's missions.

    It is the requester's own (``owner``) until an admin reviews its prompt and
    promotes it for reuse by everyone: it was written from this mission's text.

    Only the fields of SpecialistDesign are taken: the tools are cut to the
    allow-list, the role is the one the plan asked for, and the model profile
    is the mission's own — nothing a model writes is loaded as configuration.
    """
    design = ask_agent(
        mission=mission,
        agent=_agent_manager(mission),
        purpose="specialist_design",
        prompt=briefs.specialist_brief(mission, step.role, step, TOOL_NAMES),
        output_type=SpecialistDesign,
        cycle=cycle,
    )
    tools = [tool for tool in design.tools if tool in TOOL_NAMES]
    dropped = sorted(set(design.tools) - set(TOOL_NAMES))
    with transaction.atomic():
        existing = agent_for_role(step.role, mission=mission)  # another worker may have created it meanwhile
        if existing is not None:
            return existing
        agent = AgentSpec.objects.create(
            name=_unique_name(design.name),
            role=step.role,
            title=design.title,
            system_prompt=design.system_prompt,
            tools=tools,
            model_profile=mission.model_profile,
            is_dynamic=True,
            created_by_mission=mission,
            owner=mission.requester,
        )
        note = f" Refused tools outside the allow-list: {', '.join(dropped)}." if dropped else ""
        event_record(
            mission=mission,
            kind=Event.Kind.STEP,
            message=f"Created specialist {agent.title} for role {step.role} "
            f"(tools: {', '.join(tools) or 'none'}).{note}",
            data={"agent": agent.name, "role": step.role},
        )
    return agent


def _unique_name(name: str) -> str:
    candidate, n = name, 2
    while AgentSpec.objects.filter(name=candidate).exists():
        candidate, n = f"{name[:55]}-{n}", n + 1
    return candidate
