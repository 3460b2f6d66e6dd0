"""Work of missions under way runs before the first task of a mission just filed."""

import json
from decimal import Decimal

import pytest
from django.conf import settings

from missions.engine.common import enqueue
from missions.models import Mission, Step
from missions.services import mission_start, mission_submit
from missions.tasks import advance_mission, run_step
from orchestrator_site.celery import app
from orchestrator_site.redis_clients import redis_command_client
from reviews.gates import gate_decide
from reviews.models import ApprovalGate
from tests.conftest import wait_for
from tests.live import celery_worker_process, worker_process_stop

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The Redis transport's list for each priority step (Celery's "Redis Message Priorities"): the queue's own name
# for 0, the name, kombu's separator and the step for the others.
UNDER_WAY = settings.CELERY_TASK_DEFAULT_QUEUE
NEW = f"{settings.CELERY_TASK_DEFAULT_QUEUE}\x06\x16{settings.TASK_PRIORITY_NEW_MISSION}"


def _submit(pm, title: str, **kwargs) -> Mission:
    kwargs.setdefault("require_deploy_approval", False)
    return mission_submit(requester=pm, title=title, request="Build it", budget_usd=Decimal("3.00"), **kwargs)


def _waiting() -> dict[str, list[tuple[str, str]]]:
    """The tasks waiting in each priority list, oldest first: (task name, its arguments)."""
    with redis_command_client() as client:
        lists = {name: client.lrange(key, 0, -1) for name, key in (("under way", UNDER_WAY), ("new", NEW))}
    return {
        name: [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in map(json.loads, reversed(messages))]
        for name, messages in lists.items()
    }


@pytest.fixture
def empty_queue():
    app.control.purge()  # every priority list of the test queue
    yield
    app.control.purge()


def test_it_queues_a_filed_mission_behind_work_under_way(company, pm, empty_queue):
    """Filing a mission sends its first task with the new-mission priority; a mission started again (a gate
    decided), a step and the reaper's restarts keep the default priority, that of work under way."""
    filed = _submit(pm, "Just filed")
    waiting = _waiting()
    assert waiting == {"under way": [], "new": [("missions.tasks.advance_mission", f"({filed.pk},)")]}

    mission_start(filed.pk)
    enqueue(run_step, 4242)
    enqueue(advance_mission, filed.pk)
    assert _waiting()["under way"] == [
        ("missions.tasks.advance_mission", f"({filed.pk},)"),
        ("missions.tasks.run_step", "(4242,)"),
        ("missions.tasks.advance_mission", f"({filed.pk},)"),
    ]


def test_it_finishes_a_mission_under_way_before_starting_missions_filed_earlier(
    company, pm, reviewer, sim, tmp_path, empty_queue
):
    """One worker process, three missions filed while another waits at its plan gate, then the gate approved:
    the worker takes the approved mission's next tasks first, although they were queued last, and runs it to
    the end before it starts any of the three, which then complete too."""
    log = tmp_path / "worker.log"
    worker = celery_worker_process(LLM_BASE_URL=sim.base_url, log=log)
    try:
        first = _submit(pm, "Under way", require_plan_approval=True)

        def at_gate():
            first.refresh_from_db()
            return first.status == Mission.Status.AWAITING_PLAN_APPROVAL

        wait_for(at_gate, timeout=90, message="the first mission at its plan gate")
    finally:
        worker_process_stop(worker)
    later = [_submit(pm, f"Filed later {n}") for n in range(3)]
    gate = ApprovalGate.objects.get(mission=first, kind=ApprovalGate.Kind.PLAN)
    gate_decide(gate=gate, by=reviewer, decision=ApprovalGate.Decision.APPROVED)
    waiting = _waiting()
    assert [args for _, args in waiting["new"]] == [f"({m.pk},)" for m in later]
    assert waiting["under way"] == [("missions.tasks.advance_mission", f"({first.pk},)")]

    worker = celery_worker_process(LLM_BASE_URL=sim.base_url, log=log)  # -c 1: one task at a time
    try:

        def all_finished():
            missions = [Mission.objects.get(pk=m.pk) for m in (first, *later)]
            return missions if all(m.is_finished for m in missions) else None

        first, *later = wait_for(all_finished, timeout=240, message="every mission to finish")
    finally:
        worker_process_stop(worker)
    for mission in (first, *later):
        assert mission.status == Mission.Status.COMPLETED, (mission.failure_reason, log.read_text()[-3000:])
    first_steps = Step.objects.filter(plan__mission=first)
    assert first_steps.exists() and all(s.started_at < first.finished_at for s in first_steps)
    started = sorted((m.started_at, m.title) for m in later)
    assert first.finished_at < started[0][0], f"the first mission finished at {first.finished_at}, after {started}"
