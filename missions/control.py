"""People steering a mission: pause, resume, retry from the failed step, clone.

Every action moves the mission with ``mission_transition`` (a conditional UPDATE), so a click that races a
worker either wins or is refused with "changed meanwhile"; its status event names who acted. How a pause
reaches running work: the next model call is refused (``llm_call_reserve``), so a step finishes the tool
call under way and goes back to pending without using up an attempt; the claims of every phase require
its own status, so nothing new starts while the mission is paused.
"""

from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from missions.engine.common import enqueue_after_commit
from missions.events import event_record
from missions.models import Event, Mission, Plan, Step
from missions.selectors import current_plan, user_can_file_missions
from missions.services import MissionError, budget_needs_confirmation, mission_submit, mission_transition

# Where work can be stopped between two model calls. Deploying is not (a push is under way), and a
# mission waiting on a gate or for budget has nothing running.
PAUSABLE = (
    Mission.Status.QUEUED,
    Mission.Status.PLANNING,
    Mission.Status.VALIDATING,
    Mission.Status.STAFFING,
    Mission.Status.EXECUTING,
)
# Planning has no finished part to keep: it starts again from queued (answers already paid for replay
# from the ledger). Staffing and execution continue where they stopped.
RESUME_AT = {Mission.Status.PLANNING: Mission.Status.QUEUED, Mission.Status.VALIDATING: Mission.Status.QUEUED}
RETRYABLE_STEPS = (Step.Status.FAILED, Step.Status.CANCELLED)


def user_may_control(user: AbstractBaseUser, mission: Mission) -> bool:
    """Pause, resume and retry belong to the PM who filed the mission, and to admins."""
    return user.is_authenticated and (mission.requester_id == user.pk or user.is_staff)


def mission_actions(user: AbstractBaseUser, mission: Mission) -> dict[str, bool]:
    """Which of pause / resume / retry / clone ``user`` may do to ``mission`` now (the buttons shown)."""
    controls = user_may_control(user, mission)
    return {
        "pause": controls and mission.status in PAUSABLE,
        "resume": controls and mission.status == Mission.Status.PAUSED,
        "retry": controls and mission.status == Mission.Status.FAILED and bool(_failed_steps(mission)),
        "clone": user.is_authenticated and user_can_file_missions(user),
    }


def mission_pause(*, mission: Mission, by: AbstractBaseUser) -> None:
    """Pause a mission where it is; running steps stop after their current tool call."""
    mission.refresh_from_db()
    if mission.status not in PAUSABLE:
        raise MissionError(f"A mission that is {mission.get_status_display().lower()} cannot be paused.")
    if not mission_transition(
        mission=mission,
        to=Mission.Status.PAUSED,
        expected=mission.status,
        reason=f"By {by}: running steps stop after their current tool call; nothing new starts.",
        paused_from=RESUME_AT.get(mission.status, mission.status),
        actor=by,
    ):
        raise MissionError("The mission changed state meanwhile; reload and try again.")


def mission_resume(*, mission: Mission, by: AbstractBaseUser) -> None:
    """Resume a paused mission in the phase it was paused in; finished steps are not run again."""
    from missions.tasks import advance_mission

    mission.refresh_from_db()
    if mission.status != Mission.Status.PAUSED:
        raise MissionError(f"Only a paused mission can be resumed; this one is {mission.get_status_display().lower()}.")
    resume_at = mission.paused_from or Mission.Status.QUEUED
    with transaction.atomic():
        if not mission_transition(
            mission=mission,
            to=resume_at,
            expected=Mission.Status.PAUSED,
            reason=f"Resumed by {by}.",
            paused_from="",
            actor=by,
        ):
            raise MissionError("The mission changed state meanwhile; reload and try again.")
        if resume_at == Mission.Status.STAFFING:  # its claim may be held by the run the pause stopped
            Plan.objects.filter(mission=mission).update(staffed_at=None)
        elif resume_at == Mission.Status.QUEUED:  # planning starts over: the cycle it left open is over
            mission.cycles.filter(finished_at__isnull=True).update(finished_at=timezone.now())
        enqueue_after_commit(advance_mission, mission.pk)
        _backoffs_restart(mission)


def mission_retry(*, mission: Mission, by: AbstractBaseUser) -> list[str]:
    """Run a mission that failed in execution again from its failed steps; returns their keys.

    The failed (and the stopped-with-it) steps go back to pending with their attempts reset; steps that
    succeeded keep their work. Their last error stays, so the new attempt's brief says what went wrong.
    """
    from missions.tasks import advance_mission

    mission.refresh_from_db()
    if mission.status != Mission.Status.FAILED:
        raise MissionError(f"Only a failed mission can be retried; this one is {mission.get_status_display().lower()}.")
    steps = _failed_steps(mission)
    if not steps:
        raise MissionError(
            "Only a mission that failed in execution can be retried from its failed step; this one failed before "
            "any step ran. Clone it to file it again."
        )
    keys = [step.key for step in steps]
    with transaction.atomic():
        if not mission_transition(
            mission=mission,
            to=Mission.Status.EXECUTING,
            expected=Mission.Status.FAILED,
            reason=f"Retried by {by} from step {', '.join(keys)}.",
            failure_reason="",
            finished_at=None,
            actor=by,
        ):
            raise MissionError("The mission changed state meanwhile; reload and try again.")
        fresh = dict(status=Step.Status.PENDING, attempt=0, review_revisions=0, retry_at=None, finished_at=None)
        rejected = [step.pk for step in steps if (step.revision or {}).get("rejected")]
        retried = Step.objects.filter(pk__in=[step.pk for step in steps], status__in=RETRYABLE_STEPS)
        # A step a person rejected keeps the reason in its brief; any other starts without stale review asks.
        retried.filter(pk__in=rejected).update(**fresh, lease_expires_at=None)
        retried.exclude(pk__in=rejected).update(**fresh, lease_expires_at=None, revision={})
        enqueue_after_commit(advance_mission, mission.pk)
        _backoffs_restart(mission)
    return keys


def mission_clone(*, mission: Mission, by: AbstractBaseUser, budget_confirmed: bool = False) -> Mission:
    """File a new mission as ``by`` with ``mission``'s request, template, project, budget and settings.

    It goes through ``mission_submit``, so every filing rule applies to ``by`` (text limits, budget
    confirmation, may file against the project, the project is mirrored). The stored text is filed as it
    is, since it already holds the template's rendering; the template and its variables are kept with it.
    """
    if not user_can_file_missions(by):
        raise MissionError("Only product managers can file missions.")
    with transaction.atomic():
        clone = mission_submit(
            requester=by,
            title=mission.title,
            request=mission.request,
            acceptance_criteria=mission.acceptance_criteria,
            budget_usd=Decimal(mission.budget_usd),
            budget_confirmed=budget_confirmed,
            priority=mission.priority,
            require_plan_approval=mission.require_plan_approval,
            require_deploy_approval=mission.require_deploy_approval,
            consensus_rule=mission.consensus_rule,
            deadlock_policy=mission.deadlock_policy,
            conversation_mode=mission.conversation_mode,
            project=mission.project,
            reviewers=list(mission.reviewers),
            review_rule=mission.review_rule,
        )
        if mission.template_id or mission.variables:
            Mission.objects.filter(pk=clone.pk).update(template_id=mission.template_id, variables=mission.variables)
            clone.template_id, clone.variables = mission.template_id, mission.variables
        event_record(
            mission=clone,
            kind=Event.Kind.SUBMITTED,
            message=f"Cloned by {by} from “{mission.title}” ({mission.code}).",
            data={"cloned_from": str(mission.code)},
            actor=by,
        )
        event_record(
            mission=mission,
            kind=Event.Kind.SUBMITTED,
            message=f"{by} cloned this mission into {clone.code}.",
            data={"clone": str(clone.code)},
            actor=by,
        )
    return clone


def clone_needs_confirmation(mission: Mission) -> bool:
    return budget_needs_confirmation(mission.budget_usd)


def _backoffs_restart(mission: Mission) -> None:
    """Send again the delayed runs of steps waiting out a retry backoff.

    Their own delayed task may have come while the mission was stopped and been refused; advancing only
    starts steps whose backoff is over, so without this they would wait for the reaper.
    """
    from missions.tasks import run_step

    now = timezone.now()
    waiting = Step.objects.filter(plan__mission=mission, status=Step.Status.PENDING, retry_at__gt=now)
    for step_id, retry_at in waiting.values_list("pk", "retry_at"):
        enqueue_after_commit(run_step, step_id, countdown=(retry_at - now).total_seconds())


def _failed_steps(mission: Mission) -> list[Step]:
    plan = current_plan(mission)
    if plan is None:
        return []
    steps = list(plan.steps.filter(status__in=RETRYABLE_STEPS))
    return steps if any(step.status == Step.Status.FAILED for step in steps) else []
