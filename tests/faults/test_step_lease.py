"""Short step leases: a live worker keeps its step through a silence longer than the lease."""

from decimal import Decimal

import pytest

from agents.models import LLMCall
from agents.sim.server import SimServer
from missions import engine
from missions.models import Mission, Step
from missions.selectors import current_plan
from missions.services import mission_submit
from tests.conftest import wait_for
from tests.live import celery_worker_process, worker_process_stop

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LEASE_S = 5  # the shortest STEP_LEASE_S allows
SILENT_S = 1.5 * LEASE_S  # one model call that hangs past the lease, then is retried by the client


@pytest.fixture
def sim_server(settings):
    with SimServer(latency_ms=100) as server:
        settings.LLM_BASE_URL = server.base_url
        yield server


def test_it_does_not_reap_a_step_that_runs_longer_than_its_lease(company, pm, sim_server, tmp_path):
    """A model call silent for longer than a lease: the reaper, run all along, never takes the step from its worker."""
    worker = celery_worker_process(
        LLM_BASE_URL=sim_server.base_url, STEP_LEASE_S=str(LEASE_S), LLM_MAX_RETRIES="2", log=tmp_path / "worker.log"
    )
    try:
        mission = mission_submit(
            requester=pm,
            title="Take your time",
            request="A step slower than its lease",
            budget_usd=Decimal("2.00"),
            require_deploy_approval=False,
        )

        def step_in_flight():
            step = Step.objects.filter(plan__mission=mission, status=Step.Status.RUNNING).first()
            return step if step and LLMCall.objects.filter(step=step, status=LLMCall.Status.OK).exists() else None

        wait_for(step_in_flight, timeout=90, interval=0.05, message="a step in flight")
        sim_server.add_faults({"kind": "timeout", "seconds": SILENT_S})  # the step's next model call hangs
        requeued = 0

        def finished_while_reaping():
            nonlocal requeued
            requeued += engine.reap_stalled()["steps_requeued"]
            mission.refresh_from_db()
            return mission.status if mission.is_finished else None

        status = wait_for(finished_while_reaping, timeout=150, interval=0.5, message="the mission to finish")
        assert status == Mission.Status.COMPLETED, mission.failure_reason
        assert not sim_server.state.pending_faults(), "the slow call never happened"
        assert requeued == 0, "the reaper took a step from a live worker"
        assert set(current_plan(mission).steps.values_list("attempt", flat=True)) == {1}
    finally:
        worker_process_stop(worker)
