"""Crash recovery and the production sandbox guard."""

from datetime import timedelta
from decimal import Decimal

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
    event = event_record(mission=mission, kind=Event.Kind.STATUS, message="last sign of life")
    Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(seconds=quiet_for_s))
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
    from missions import execution as engine_module

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
