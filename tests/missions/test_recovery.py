"""Crash recovery and the production sandbox guard."""

from datetime import timedelta
from decimal import Decimal
from unittest.mock import patch

import pytest
from django.utils import timezone

from missions import engine
from missions.events import event_record
from missions.models import Event, Mission, Plan, Step


@pytest.fixture
def queued(monkeypatch):
    """advance_mission.delay calls, captured instead of sent to the broker."""
    from missions.tasks import advance_mission

    calls = []
    monkeypatch.setattr(advance_mission, "delay", lambda mission_id: calls.append(mission_id))
    return calls


def _mission(pm, status, *, quiet_for_s=0):
    mission = Mission.objects.create(requester=pm, title="m", request="r", budget_usd=Decimal("1"), status=status)
    # Written quiet_for_s ago (events are append-only: on PostgreSQL their time cannot be changed afterwards).
    with patch("django.utils.timezone.now", return_value=timezone.now() - timedelta(seconds=quiet_for_s)):
        event_record(mission=mission, kind=Event.Kind.STATUS, message="last sign of life")
    return mission


def test_it_requeues_a_step_whose_lease_expired(pm, queued):
    """A running step past its lease goes back to pending and its mission is advanced again."""
    mission = _mission(pm, Mission.Status.EXECUTING)
    plan = Plan.objects.create(mission=mission, version=1)
    past = timezone.now() - timedelta(seconds=5)
    dead = Step.objects.create(
        plan=plan, key="a", title="a", role="developer", instructions="i", status="running", lease_expires_at=past
    )
    alive = Step.objects.create(
        plan=plan,
        key="b",
        title="b",
        role="developer",
        instructions="i",
        status="running",
        lease_expires_at=past + timedelta(hours=1),
    )
    assert engine.reap_stalled() == {"steps_requeued": 1, "missions_advanced": 1}
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.status, alive.status) == ("pending", "running")
    assert queued == [mission.pk]


def test_it_advances_quiet_missions_and_restarts_stuck_planning(pm, queued, settings):
    settings.STALLED_AFTER_S = 60
    quiet_queued = _mission(pm, Mission.Status.QUEUED, quiet_for_s=120)
    busy = _mission(pm, Mission.Status.EXECUTING, quiet_for_s=5)
    stuck = _mission(pm, Mission.Status.PLANNING, quiet_for_s=120)
    waiting = _mission(pm, Mission.Status.AWAITING_DEPLOY_APPROVAL, quiet_for_s=999)
    engine.reap_stalled()
    stuck.refresh_from_db()
    assert stuck.status == Mission.Status.QUEUED
    assert sorted(queued) == sorted([quiet_queued.pk, stuck.pk])
    assert busy.pk not in queued and waiting.pk not in queued


def test_it_refuses_the_weaker_sandbox_in_production_unless_chosen(settings, monkeypatch):
    from missions.engine import execution as engine_module

    monkeypatch.setattr(engine_module, "sandbox_isolation", lambda: "subprocess")
    settings.PRODUCTION = False
    assert engine_module.weak_sandbox_refusal() == ""
    settings.PRODUCTION = True
    settings.SANDBOX_BACKEND = ""
    assert "Refusing to run generated code without bubblewrap" in engine_module.weak_sandbox_refusal()
    settings.SANDBOX_BACKEND = "subprocess"
    assert engine_module.weak_sandbox_refusal() == ""
    monkeypatch.setattr(engine_module, "sandbox_isolation", lambda: "bwrap")
    settings.SANDBOX_BACKEND = ""
    assert engine_module.weak_sandbox_refusal() == ""


def test_it_cancels_pending_steps_with_the_mission(pm):
    from missions.services import mission_cancel

    mission = _mission(pm, Mission.Status.EXECUTING)
    plan = Plan.objects.create(mission=mission, version=1)
    step = Step.objects.create(plan=plan, key="a", title="a", role="developer", instructions="i")
    mission_cancel(mission=mission, by=pm)
    step.refresh_from_db()
    assert step.status == Step.Status.CANCELLED


def test_it_sends_a_stalled_validation_back_to_planning(pm, queued, settings):
    settings.STALLED_AFTER_S = 60
    stuck = _mission(pm, Mission.Status.VALIDATING, quiet_for_s=120)
    engine.reap_stalled()
    stuck.refresh_from_db()
    assert stuck.status == Mission.Status.QUEUED and queued == [stuck.pk]


def test_it_fails_a_step_whose_worker_keeps_dying(pm, queued, settings):
    """After STEP_MAX_ATTEMPTS lost workers the step fails instead of looping forever."""
    settings.STEP_MAX_ATTEMPTS = 2
    mission = _mission(pm, Mission.Status.EXECUTING)
    plan = Plan.objects.create(mission=mission, version=1)
    past = timezone.now() - timedelta(seconds=5)
    step = Step.objects.create(
        plan=plan, key="a", title="a", role="r", instructions="i", status="running", attempt=2, lease_expires_at=past
    )
    engine.reap_stalled()
    step.refresh_from_db()
    assert step.status == Step.Status.FAILED and "worker was lost on attempt 2 of 2" in step.error


def test_it_drops_the_result_of_a_run_that_was_taken_over(pm, django_capture_on_commit_callbacks):
    """A slow first run finishing after the reaper restarted the step must not overwrite the second run."""
    from missions.engine import execution

    mission = _mission(pm, Mission.Status.EXECUTING)
    plan = Plan.objects.create(mission=mission, version=1)
    step = Step.objects.create(plan=plan, key="a", title="a", role="r", instructions="i", status="running", attempt=2)
    stale_view = Step.objects.get(pk=step.pk)
    stale_view.attempt = 1
    with django_capture_on_commit_callbacks():
        execution._step_finish(mission, stale_view, {"summary": "old run", "commit": ""}, "")
    step.refresh_from_db()
    assert (step.status, step.summary) == (Step.Status.RUNNING, "")


def _clones(mission, *names):
    """Leftover attempt clones of ``mission``'s steps, as a lost worker leaves them."""
    from missions.clones import step_clones_dir

    root = step_clones_dir(mission.code)
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "core.py").write_text("x = 1\n")
    return lambda: sorted(path.name for path in root.iterdir())


def test_it_deletes_a_lost_attempts_clone_when_the_step_is_claimed_again(pm, queued, settings, tmp_path):
    """A worker killed on attempt 1 left its clone; the claim of attempt 2 removes it (and no other step's)."""
    from missions.engine.execution import step_run

    settings.WORKSPACES_DIR = tmp_path
    mission = _mission(pm, Mission.Status.EXECUTING)
    plan = Plan.objects.create(mission=mission, version=1)
    # As the reaper leaves a lost attempt 1: pending again, the attempt kept. No agent: the run stops at once.
    step = Step.objects.create(plan=plan, key="a", title="a", role="r", instructions="i", attempt=1)
    left = _clones(mission, "a-1", "ab-1", "a_b-1")
    step_run(step_id=step.pk)
    step.refresh_from_db()
    assert step.attempt == 2 and "no agent" in step.error
    assert left() == ["a_b-1", "ab-1"]


def test_it_deletes_the_clones_of_a_step_whose_worker_keeps_dying(pm, queued, settings, tmp_path):
    """A step the reaper fails for good is never claimed again: the reaper removes its clones itself."""
    settings.STEP_MAX_ATTEMPTS = 2
    settings.WORKSPACES_DIR = tmp_path
    mission = _mission(pm, Mission.Status.EXECUTING)
    plan = Plan.objects.create(mission=mission, version=1)
    past = timezone.now() - timedelta(seconds=5)
    Step.objects.create(
        plan=plan, key="a", title="a", role="r", instructions="i", status="running", attempt=2, lease_expires_at=past
    )
    left = _clones(mission, "a-1", "a-2", "b-1")
    engine.reap_stalled()
    assert left() == ["b-1"]
