"""A worker killed with SIGKILL in the middle of a step: the mission still completes, nothing is paid twice."""

import os
import signal
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from agents.models import LLMCall
from agents.sim.server import SimServer
from missions import engine
from missions.models import Mission, Step
from missions.services import mission_submit
from tests.browser.conftest import _database_url
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.fixture
def slow_sim(settings):
    with SimServer(latency_ms=250) as server:
        settings.LLM_BASE_URL = server.base_url
        yield server


@pytest.fixture
def worker_process(slow_sim):
    """A real prefork Celery worker in its own process, on the test queue and database, with 5 s step leases."""
    from orchestrator_site.celery import app

    app.control.purge()
    env = dict(
        os.environ,
        DATABASE_URL=_database_url(),
        LLM_BASE_URL=slow_sim.base_url,
        LLM_SIMULATED="1",
        REDIS_URL=settings.REDIS_URL,
        CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        CHANNELS_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        DATA_DIR=str(settings.DATA_DIR),
        STEP_LEASE_S="5",
    )
    argv = [sys.executable, "-m", "celery", "-A", "orchestrator_site", "worker", "-P", "prefork", "-c", "1"]
    argv += ["-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "--without-mingle", "--without-gossip", "-l", "WARNING"]
    worker = subprocess.Popen(argv, cwd=ROOT, env=env)
    yield worker
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()


def test_it_completes_the_mission_after_a_worker_is_killed_mid_step(company, pm, worker_process):
    mission = mission_submit(
        requester=pm,
        title="Crash me",
        request="Survive a crash",
        budget_usd=Decimal("2.00"),
        require_deploy_approval=False,
    )

    def step_in_flight():
        step = Step.objects.filter(plan__mission=mission, status=Step.Status.RUNNING).first()
        if step and LLMCall.objects.filter(step=step, status=LLMCall.Status.OK).count() >= 2:
            return step
        return None

    step = wait_for(step_in_flight, timeout=90, interval=0.05, message="a step half done")
    children = wait_for(lambda: _children(worker_process.pid), message="the pool process")
    for child in children:
        os.kill(child, signal.SIGKILL)  # the process running the step dies at once

    # The dead worker renews nothing: its step is reaped within one lease (5 s), and not much later.
    requeued = wait_for(
        lambda: engine.reap_stalled()["steps_requeued"], timeout=5 + 2, interval=0.2, message="the step to be reaped"
    )
    assert requeued == 1

    def finished():
        mission.refresh_from_db()
        return mission.status if mission.is_finished else None

    assert wait_for(finished, timeout=120, message="the mission to finish") == Mission.Status.COMPLETED, (
        mission.failure_reason
    )
    step.refresh_from_db()
    assert step.attempt == 2 and step.status == Step.Status.SUCCEEDED
    paid = Counter(
        LLMCall.objects.filter(mission=mission, status=LLMCall.Status.OK).values_list("fingerprint", flat=True)
    )
    assert paid and max(paid.values()) == 1, "an identical request was paid twice"
    replayed = LLMCall.objects.filter(mission=mission, step=step, status=LLMCall.Status.CACHE_HIT)
    assert replayed.count() >= 2 and all(call.cost_usd == 0 for call in replayed)
