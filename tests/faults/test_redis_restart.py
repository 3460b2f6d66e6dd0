"""Redis restarts under a running mission: the worker reconnects, the mission completes, live pages stay open."""

import asyncio
import logging
import time
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from agents.models import LLMCall
from agents.sim.server import SimServer
from missions.events import event_record
from missions.models import Event, Mission, Step
from missions.services import mission_submit
from tests.conftest import wait_for
from tests.live import RedisServer, celery_worker_process, worker_process_stop
from tests.missions.test_consumer import HOST, ORIGIN, _cookie_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Redis stays down from mid-step until the step has finished, and this much longer, so the step's
# "advance the mission" is published into the outage (Celery's default publish retries gave up after ~1 s).
REDIS_DOWN_AFTER_STEP_S = 1
# Idle sockets used to die every ~6 s (a 5 s BZPOPMIN against a shorter read timeout); two of those
# periods prove the point in a fifth of the 60 s the issue names. A minute-long wait would add 48 s to
# every run for no more certainty: a socket that survives one blocking pop survives them all.
IDLE_S = 12


@pytest.fixture
def private_redis(tmp_path, settings):
    """A private redis-server the test may restart; this process's Celery app publishes to it."""
    from orchestrator_site.celery import app

    with RedisServer(tmp_path) as server:
        previous = app.conf.broker_url
        _broker_use(app, server.url)
        settings.REDIS_URL = server.url
        try:
            yield server
        finally:
            _broker_use(app, previous)


def _broker_use(app, url: str) -> None:
    """Point the app's publishing at another broker: forget its pools, so they are looked up for the new URL.

    The pools themselves stay open in kombu's registry, keyed by URL, for when the old broker is used again.
    (``app.close()`` would also deregister the app; Celery itself resets these two after a fork.)
    """
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = url


@pytest.fixture
def slow_sim(settings):
    with SimServer(latency_ms=100) as server:
        settings.LLM_BASE_URL = server.base_url
        yield server


def test_it_completes_the_mission_when_redis_restarts_mid_step(company, pm, private_redis, slow_sim, tmp_path):
    """Redis goes away while a step runs: the worker reconnects and stays up, and the mission completes."""
    log = tmp_path / "worker.log"
    worker = celery_worker_process(REDIS_URL=private_redis.url, LLM_BASE_URL=slow_sim.base_url, log=log)
    try:
        mission = mission_submit(
            requester=pm,
            title="Restart Redis under me",
            request="Survive a Redis restart",
            budget_usd=Decimal("2.00"),
            require_deploy_approval=False,
        )

        def step_in_flight():
            step = Step.objects.filter(plan__mission=mission, status=Step.Status.RUNNING).first()
            return step if step and LLMCall.objects.filter(step=step, status=LLMCall.Status.OK).exists() else None

        step = wait_for(step_in_flight, timeout=90, interval=0.05, message="a step in flight")
        private_redis.stop()
        wait_for(
            lambda: Step.objects.filter(pk=step.pk).exclude(status=Step.Status.RUNNING).exists(),
            timeout=60,
            message="the step to finish while Redis is down",
        )
        time.sleep(REDIS_DOWN_AFTER_STEP_S)
        private_redis.start()

        def finished():
            mission.refresh_from_db()
            return mission.status if mission.is_finished else None

        assert wait_for(finished, timeout=120, message="the mission to finish") == Mission.Status.COMPLETED, (
            mission.failure_reason
        )
        assert worker.poll() is None, f"the worker exited with {worker.returncode}"
        output = log.read_text()
        assert "Connection to broker lost" in output, "the restart did not reach the worker"
        assert "Unrecoverable error" not in output and "raised unexpected" not in output, output[-3000:]
    finally:
        worker_process_stop(worker)


@pytest.mark.asyncio
async def test_it_keeps_an_idle_live_page_socket_open(pm, caplog):
    """A live page with nothing happening keeps its socket, without errors, and still gets the next event."""
    mission = await sync_to_async(Mission.objects.create)(
        requester=pm, title="Quiet mission", request="Nothing happens", budget_usd=Decimal("1.00")
    )
    await sync_to_async(event_record)(mission=mission, kind=Event.Kind.STATUS, message="filed")
    communicator = WebsocketCommunicator(
        _application(), f"/ws/missions/{mission.code}/", headers=[ORIGIN, HOST, await sync_to_async(_cookie_for)(pm)]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.send_json_to({"type": "resume", "after": 0})
    assert "filed" in await communicator.receive_from(timeout=5)  # the replay
    with caplog.at_level(logging.WARNING):
        await asyncio.sleep(IDLE_S)
        assert not communicator.future.done(), communicator.future.exception()
        await sync_to_async(event_record)(mission=mission, kind=Event.Kind.STATUS, message="finally, news")
        assert "finally, news" in await communicator.receive_from(timeout=5)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    await communicator.disconnect()


def _application():
    from orchestrator_site.asgi import application

    return application
