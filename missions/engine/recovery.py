"""Recovery: give back the claims of work whose worker vanished, so it runs again."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Max
from django.utils import timezone

from agents.services import llm_call_release_stale
from missions.clones import step_clones_remove
from missions.engine.common import connection_reset, enqueue
from missions.events import event_record
from missions.models import Event, Mission, Plan, Step
from missions.services import mission_transition

logger = logging.getLogger(__name__)

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

    now = timezone.now()
    stale = now - timedelta(seconds=settings.STALLED_AFTER_S)
    expired = list(
        Step.objects.filter(status=Step.Status.RUNNING, lease_expires_at__lt=now).values_list(
            "pk", "plan__mission", "key", "attempt", "review_revisions", "plan__mission__code"
        )
    )
    for step_id, mission_id, key, attempt, revisions, mission_code in expired:
        attempt -= revisions  # reviewers' revisions do not use up retries (Step.tries)
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
        enqueue(advance_mission, mission_id)
    llm_call_release_stale()
    return {"steps_requeued": len(expired), "missions_advanced": len(to_advance)}


def claims_release(mission_id: int) -> None:
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
