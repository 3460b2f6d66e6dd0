"""Planning: the C-suite deliberates, the validator checks, and the loop repeats with its findings.

Claimed by the transition queued → planning, so a task delivered twice plans once.
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.errors import AgentRunError
from agents.schemas import PlanDraft
from missions.engine.deliberation import deliberate
from missions.engine.staffing import mission_staff
from missions.engine.validation import validate_plan
from missions.events import event_record
from missions.models import DecisionCycle, Event, Mission, Plan, Step
from missions.services import mission_fail, mission_transition, plan_approval_record
from reviews.gates import gate_open
from reviews.models import ApprovalGate


def mission_plan(mission: Mission) -> None:
    """Deliberate, validate, and loop back with the findings at most VALIDATION_MAX_ATTEMPTS times.

    Then: a deadlock (without a CEO tie-break) or a required plan approval
    waits on a gate; otherwise staffing starts at once.
    """
    if not mission_transition(
        mission=mission, to=Mission.Status.PLANNING, expected=Mission.Status.QUEUED, started_at=timezone.now()
    ):
        return
    if mission.model_profile is None:
        raise AgentRunError("No model profile is configured: run `manage.py seed_demo` or add one in the admin.")
    feedback = list(
        mission.gates.filter(
            status=ApprovalGate.Status.REVISION_REQUESTED, kind__in=(ApprovalGate.Kind.PLAN, ApprovalGate.Kind.DEADLOCK)
        ).values_list("comment", flat=True)
    )
    for attempt in range(settings.VALIDATION_MAX_ATTEMPTS + 1):
        outcome = deliberate(mission, feedback=feedback)
        if not outcome.agreed:
            plan = _plan_store(mission, outcome.cycle, outcome.draft, adopted=False)
            question = (
                f"The C-suite is deadlocked on plan v{plan.version} ({outcome.tally}). "
                "Adopt it anyway, send it back with comments, or reject the mission."
            )
            _await_plan_decision(mission, ApprovalGate.Kind.DEADLOCK, question, plan=plan)
            return
        if not mission_transition(mission=mission, to=Mission.Status.VALIDATING, expected=Mission.Status.PLANNING):
            return
        findings = validate_plan(mission, outcome.draft)
        if not findings:
            break
        if attempt == settings.VALIDATION_MAX_ATTEMPTS:
            mission_fail(mission=mission, reason="The plan failed validation: " + " ".join(findings))
            return
        feedback += findings
        if not mission_transition(
            mission=mission,
            to=Mission.Status.PLANNING,
            expected=Mission.Status.VALIDATING,
            reason=f"Back to the C-suite with {len(findings)} finding(s).",
        ):
            return
    plan = _plan_store(mission, outcome.cycle, outcome.draft, adopted=True)
    if mission.require_plan_approval:
        question = f"The C-suite agreed on plan v{plan.version} ({outcome.tally}). Approve it before work starts?"
        _await_plan_decision(mission, ApprovalGate.Kind.PLAN, question, plan=plan, expected=Mission.Status.VALIDATING)
    else:
        with transaction.atomic():  # approved automatically: the forecast is kept with the move
            approved = mission_transition(
                mission=mission, to=Mission.Status.STAFFING, expected=Mission.Status.VALIDATING
            )
            if approved:
                plan_approval_record(mission=mission)
        if approved:
            mission_staff(mission)


def _await_plan_decision(
    mission: Mission, kind: str, question: str, *, plan: Plan, expected: str = Mission.Status.PLANNING
) -> None:
    waiting = Mission.Status.DEADLOCKED if kind == ApprovalGate.Kind.DEADLOCK else Mission.Status.AWAITING_PLAN_APPROVAL
    with transaction.atomic():
        if mission_transition(mission=mission, to=waiting, expected=expected):
            gate_open(mission=mission, kind=kind, question=question, data={"plan": plan.version})


def _plan_store(mission: Mission, cycle: DecisionCycle, draft: PlanDraft, *, adopted: bool) -> Plan:
    with transaction.atomic():
        version = (mission.plans.order_by("-version").values_list("version", flat=True).first() or 0) + 1
        plan = Plan.objects.create(mission=mission, version=version, summary=draft.summary, cycle=cycle)
        Step.objects.bulk_create(
            Step(
                plan=plan,
                key=s.key,
                order=i,
                title=s.title,
                kind=s.kind,
                role=s.role,
                instructions=s.instructions,
                depends_on=s.depends_on,
                acceptance=s.acceptance,
                estimated_tokens=s.estimated_tokens,
            )
            for i, s in enumerate(draft.steps)
        )
        event_record(
            mission=mission,
            kind=Event.Kind.PLAN,
            message=f"Plan v{version} {'adopted' if adopted else 'proposed without consensus'}: "
            f"{', '.join(s.key for s in draft.steps)}.",
            data={"plan": version},
        )
    return plan
