"""The database drops the worker's connection mid-mission (pg_terminate_backend): the mission still completes."""

import re
from decimal import Decimal

import pytest
from django.db import connection

from agents.models import LLMCall
from agents.sim.server import SimServer
from missions.models import Mission, Step
from missions.selectors import current_plan
from missions.services import mission_submit
from tests.conftest import wait_for
from tests.live import celery_worker_process, worker_process_stop

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_terminate_backend needs PostgreSQL"),
]


@pytest.fixture
def slow_sim(settings):
    with SimServer(latency_ms=250) as server:
        settings.LLM_BASE_URL = server.base_url
        yield server


def _terminate_other_sessions() -> int:
    """Kill every other session on the test database (the worker's), as a failover or an admin would."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return sum(1 for (terminated,) in cursor.fetchall() if terminated)


def test_it_completes_the_mission_when_the_database_drops_the_workers_connection(company, pm, slow_sim, tmp_path):
    """Connections cut during planning and during a step are reconnected and retried; the mission completes."""
    log = tmp_path / "worker.log"
    worker = celery_worker_process(LLM_BASE_URL=slow_sim.base_url, log=log)
    try:
        mission = mission_submit(
            requester=pm,
            title="Cut my connection",
            request="Survive a dropped database connection",
            budget_usd=Decimal("2.00"),
            require_deploy_approval=False,
        )

        def planning_in_flight():
            mission.refresh_from_db()
            calls = LLMCall.objects.filter(mission=mission, status=LLMCall.Status.OK).count()
            return mission.status == Mission.Status.PLANNING and calls >= 2

        wait_for(planning_in_flight, timeout=90, interval=0.05, message="planning in flight")
        assert _terminate_other_sessions() >= 1, "no worker session to cut during planning"

        def step_in_flight():
            step = Step.objects.filter(plan__mission=mission, status=Step.Status.RUNNING).first()
            return step if step and LLMCall.objects.filter(step=step, status=LLMCall.Status.OK).exists() else None

        wait_for(step_in_flight, timeout=120, interval=0.05, message="a step in flight")
        assert _terminate_other_sessions() >= 1, "no worker session to cut during the step"

        def finished():
            mission.refresh_from_db()
            return mission.status if mission.is_finished else None

        assert wait_for(finished, timeout=180, message="the mission to finish") == Mission.Status.COMPLETED, (
            mission.failure_reason
        )
        assert worker.poll() is None, f"the worker exited with {worker.returncode}"
        output = log.read_text()
        assert "advance: database connection lost" in output, "the cut during planning did not reach the worker"
        assert re.search(r"step \d+: database connection lost", output), "the cut during the step did not reach it"
        attempts = set(current_plan(mission).steps.values_list("attempt", flat=True))
        assert attempts == {1}, "a dropped connection cost a step an attempt"
    finally:
        worker_process_stop(worker)
