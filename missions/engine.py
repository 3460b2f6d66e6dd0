"""The state machine that advances a mission, one phase per task.

Every phase starts by claiming the mission (or step) with a conditional
UPDATE, so a task delivered twice does its work once. The phases live in
their own modules (deliberation, validation, staffing, execution,
deployment); this one decides what comes next.
"""

import contextlib
import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from agents.errors import AgentRunError, BudgetExceeded, database_error_is_transient
from agents.schemas import PlanDraft
from agents.services import llm_call_release_stale
from missions.clones import step_clones_remove
from missions.consult import mission_workspace
from missions.deliberation import deliberate
from missions.deployment import mission_deploy
from missions.events import event_record
from missions.knowledge import knowledge_brief
from missions.models import DecisionCycle, Event, Mission, Plan, Step, TestRun
from missions.selectors import current_plan
from missions.services import mission_fail, mission_pause_for_budget, mission_transition
from missions.staffing import staff_plan
from missions.validation import validate_plan
from orchestrator_site.logging import mission_logging
from reviews.models import ApprovalGate
from reviews.services import gate_open

logger = logging.getLogger(__name__)


def _now():
    return timezone.now()


def mission_advance(*, mission_id: int) -> None:
    """Do whatever the mission's current status calls for; waiting and finished missions need nothing."""
    mission = Mission.objects.select_related("model_profile", "template").filter(pk=mission_id).first()
    if mission is None:
        logger.warning("advance: mission %s does not exist", mission_id)
        return
    with mission_logging(mission.code):
        try:
            if mission.status == Mission.Status.QUEUED:
                _plan(mission)
            elif mission.status == Mission.Status.STAFFING:
                _staff(mission)
            elif mission.status == Mission.Status.EXECUTING:
                _schedule(mission)
            elif mission.status == Mission.Status.DEPLOYING:
                mission_deploy(mission)
        except BudgetExceeded as error:
            # Planning and staffing get here (steps handle their own): they start over once the budget is raised.
            resume = Mission.Status.STAFFING if mission.status == Mission.Status.STAFFING else Mission.Status.QUEUED
            Plan.objects.filter(mission=mission).update(staffed_at=None)  # staffing may start again when resumed
            mission_pause_for_budget(mission=mission, reason=str(error), resume_to=resume)
        except AgentRunError as error:
            mission_fail(mission=mission, reason=str(error))
        except Exception as error:
            if database_error_is_transient(error):
                # Not the mission's fault: give back what this run claimed; the task runs again (tasks.py).
                logger.warning("advance: database connection lost (%s); retrying", error)
                connection_reset()
                _release_claims(mission_id)
                raise
            logger.exception("advance failed")
            mission_fail(mission=mission, reason=f"Internal error while advancing: {type(error).__name__}: {error}")


def connection_reset() -> None:
    """Drop a broken database connection; the next query opens a new one."""
    with contextlib.suppress(DatabaseError):
        connection.close()


def _release_claims(mission_id: int) -> None:
    """Undo the claim of the phase that was cut short, so the retried task can claim it again.

    The same as the reaper does for a stalled mission, without waiting STALLED_AFTER_S. When the
    database is still away this fails too; then the reaper does it later.
    """
    try:
        mission = Mission.objects.get(pk=mission_id)
        if mission.status in (Mission.Status.PLANNING, Mission.Status.VALIDATING):
            mission_transition(
                mission=mission,
                to=Mission.Status.QUEUED,
                expected=(Mission.Status.PLANNING, Mission.Status.VALIDATING),
                reason="The database connection dropped during planning; planning starts again.",
            )
        elif mission.status == Mission.Status.STAFFING:
            Plan.objects.filter(mission=mission).update(staffed_at=None)
        elif mission.status == Mission.Status.DEPLOYING:
            Mission.objects.filter(pk=mission_id, deployed_at__isnull=True).update(deploy_started_at=None)
    except DatabaseError:
        logger.warning("advance: could not release mission %s yet; the reaper will", mission_id, exc_info=True)
        connection_reset()


# --- Planning and validation ---------------------------------------------------------------------------


def _plan(mission: Mission) -> None:
    """Deliberate, validate, and loop back with the findings at most VALIDATION_MAX_ATTEMPTS times.

    Then: a deadlock (without a CEO tie-break) or a required plan approval
    waits on a gate; otherwise staffing starts at once.
    """
    if not mission_transition(
        mission=mission, to=Mission.Status.PLANNING, expected=Mission.Status.QUEUED, started_at=_now()
    ):
        return
    if mission.model_profile is None:
        raise AgentRunError("No model profile is configured: run `manage.py seed_demo` or add one in the admin.")
    feedback = list(
        mission.gates.filter(status=ApprovalGate.Status.REVISION_REQUESTED).values_list("comment", flat=True)
    )
    for attempt in range(settings.VALIDATION_MAX_ATTEMPTS + 1):
        outcome = deliberate(mission, feedback=feedback)
        if not outcome.agreed:
            plan = _plan_store(mission, outcome.cycle, outcome.draft, adopted=False)
            question = (
                f"The C-suite is deadlocked on plan v{plan.version} ({outcome.tally}). "
                "Adopt it anyway, send it back with comments, or reject the mission."
            )
            _await_plan_decision(mission, ApprovalGate.Kind.DEADLOCK, question)
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
        _await_plan_decision(mission, ApprovalGate.Kind.PLAN, question, expected=Mission.Status.VALIDATING)
    elif mission_transition(mission=mission, to=Mission.Status.STAFFING, expected=Mission.Status.VALIDATING):
        _staff(mission)


def _await_plan_decision(mission: Mission, kind: str, question: str, expected: str = Mission.Status.PLANNING) -> None:
    waiting = Mission.Status.DEADLOCKED if kind == ApprovalGate.Kind.DEADLOCK else Mission.Status.AWAITING_PLAN_APPROVAL
    with transaction.atomic():
        if mission_transition(mission=mission, to=waiting, expected=expected):
            gate_open(mission=mission, kind=kind, question=question)


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


# --- Staffing and execution ------------------------------------------------------------------------------


def _staff(mission: Mission) -> None:
    """Give every step of the current plan an agent, prepare the workspace, start executing.

    Claimed through the plan's ``staffed_at``, so a redelivered task does not design specialists twice;
    a claim older than STALLED_AFTER_S (its worker died) can be taken over.
    """
    plan = current_plan(mission)
    now = _now()
    stale = now - timedelta(seconds=settings.STALLED_AFTER_S)
    if (
        not Plan.objects.filter(pk=plan.pk)
        .filter(Q(staffed_at__isnull=True) | Q(staffed_at__lt=stale))
        .update(staffed_at=now)
    ):
        return
    staff_plan(mission, plan)
    Mission.objects.filter(pk=mission.pk).update(knowledge_snapshot=knowledge_brief(mission))
    workspace = mission_workspace(mission)
    workspace.init()
    Mission.objects.filter(pk=mission.pk).update(workspace_path=str(workspace.root))
    if mission_transition(mission=mission, to=Mission.Status.EXECUTING, expected=Mission.Status.STAFFING):
        _schedule(mission)


def _schedule(mission: Mission) -> None:
    """Finish when every step succeeded; fail on a step that failed for good; else start the ready steps."""
    plan = current_plan(mission)
    steps = list(plan.steps.all()) if plan else []
    failed = [s for s in steps if s.status == Step.Status.FAILED]
    if failed:
        mission_fail(mission=mission, reason=f"Step {failed[0].key} failed: {failed[0].error}")
        return
    if steps and all(s.status == Step.Status.SUCCEEDED for s in steps):
        _execution_done(mission, steps)
        return
    done = {s.key for s in steps if s.status == Step.Status.SUCCEEDED}
    now = _now()
    ready = [
        s.pk
        for s in steps
        if s.status == Step.Status.PENDING and set(s.depends_on) <= done and (s.retry_at is None or s.retry_at <= now)
    ]
    from missions.tasks import run_step

    for step_id in ready:
        transaction.on_commit(lambda step_id=step_id: run_step.delay(step_id))


def _execution_done(mission: Mission, steps: list[Step]) -> None:
    passed = TestRun.objects.filter(mission=mission).order_by("-id").values_list("passed", flat=True).first()
    summary = f"All {len(steps)} steps succeeded; last test run: {passed or 0} passed."
    altered = {s.key: s.test_config_files for s in steps if s.alters_test_config}
    if altered:
        # A change to how tests run makes its own test results no evidence: a human must decide, always.
        files = sorted({f for names in altered.values() for f in names})
        summary += (
            f" This change alters how tests run (steps {', '.join(altered)}: {', '.join(files[:8])}), so the test "
            "results above are not evidence: read those files before approving."
        )
    if mission.require_deploy_approval or altered:
        with transaction.atomic():
            if mission_transition(
                mission=mission,
                to=Mission.Status.AWAITING_DEPLOY_APPROVAL,
                expected=Mission.Status.EXECUTING,
                reason=summary,
            ):
                head = mission_workspace(mission).head()
                gate_open(
                    mission=mission,
                    kind=ApprovalGate.Kind.DEPLOY,
                    question=f"{summary} Deploy commit {head[:10]} to production?",
                    data={"sha": head, "alters_test_config": altered},
                )
    elif mission_transition(
        mission=mission, to=Mission.Status.DEPLOYING, expected=Mission.Status.EXECUTING, reason=summary
    ):
        mission_deploy(mission)


# --- Crash recovery --------------------------------------------------------------------------------------

WORKER_DRIVEN = (Mission.Status.QUEUED, Mission.Status.STAFFING, Mission.Status.EXECUTING, Mission.Status.DEPLOYING)


def reap_stalled() -> dict[str, int]:
    """Re-start work whose worker vanished (killed, crashed, or its task was lost).

    1. A running step whose lease expired goes back to pending; its mission is advanced to run it again.
    2. A mission in a worker-driven status with no event for STALLED_AFTER_S is advanced again
       (every phase is idempotent, so a mission that was merely slow loses nothing).
    3. A mission stuck in planning or validation goes back to queued: planning starts over.
    A step whose worker was lost STEP_MAX_ATTEMPTS times fails instead of looping forever (and its clones go;
    a step that runs again clears the lost attempt's clone when it is claimed).
    4. A deploy that started but never finished is cleared so it can run again (pushing the same commit is a no-op).
    5. A model call's budget reservation held past LLM_RESERVATION_STALE_S (its worker died mid-call) is released.
    """
    from missions.tasks import advance_mission

    now = _now()
    stale = now - timedelta(seconds=settings.STALLED_AFTER_S)
    expired = list(
        Step.objects.filter(status=Step.Status.RUNNING, lease_expires_at__lt=now).values_list(
            "pk", "plan__mission", "key", "attempt", "plan__mission__code"
        )
    )
    for step_id, mission_id, key, attempt, mission_code in expired:
        give_up = attempt >= settings.STEP_MAX_ATTEMPTS
        reason = f"Its worker was lost on attempt {attempt} of {settings.STEP_MAX_ATTEMPTS}."
        with transaction.atomic():
            # The same brief as before, so requests already answered replay from the ledger.
            moved = Step.objects.filter(pk=step_id, status=Step.Status.RUNNING, lease_expires_at__lt=now).update(
                status=Step.Status.FAILED if give_up else Step.Status.PENDING,
                lease_expires_at=None,
                error=reason if give_up else "",
            )
            if moved:
                event_record(
                    mission=Mission.objects.get(pk=mission_id),
                    kind=Event.Kind.STEP,
                    message=f"Step {key}: {reason} " + ("It failed." if give_up else "It runs again."),
                    data={"step": key},
                )
        if moved and give_up:  # no claim will follow to clear the lost worker's clone
            step_clones_remove(mission_code=mission_code, key=key)
    quiet = Mission.objects.annotate(last_event=Max("events__created_at")).filter(last_event__lt=stale)
    to_advance = {mission_id for _, mission_id, *_ in expired}
    to_advance |= set(quiet.filter(status__in=WORKER_DRIVEN).values_list("pk", flat=True))
    for mission in quiet.filter(status__in=(Mission.Status.PLANNING, Mission.Status.VALIDATING)):
        to_advance.add(mission.pk)
        mission_transition(
            mission=mission,
            to=Mission.Status.QUEUED,
            expected=(Mission.Status.PLANNING, Mission.Status.VALIDATING),
            reason="Planning stopped without finishing (worker lost); starting it again.",
        )
    Mission.objects.filter(
        status=Mission.Status.DEPLOYING, deploy_started_at__lt=stale, deployed_at__isnull=True
    ).update(deploy_started_at=None)
    for mission_id in to_advance:
        advance_mission.delay(mission_id)
    llm_call_release_stale()
    return {"steps_requeued": len(expired), "missions_advanced": len(to_advance)}
