"""Thin Celery tasks: take ids, call the engine, never hold a worker while a mission waits."""

import time

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from missions import engine
from orchestrator_site.redis_clients import redis_command_client

TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}
# The engine re-raises only a dropped or refused database connection (see database_error_is_transient),
# after giving back what it claimed: run the task again, backing off up to a minute (about 5 minutes in all).
RETRY_ON_DATABASE_ERRORS = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(**TASK_OPTIONS, **RETRY_ON_DATABASE_ERRORS)
def advance_mission(mission_id: int) -> None:
    engine.mission_advance(mission_id=mission_id)


@shared_task(**TASK_OPTIONS, **RETRY_ON_DATABASE_ERRORS)
def run_step(step_id: int) -> None:
    engine.step_run(step_id=step_id)


@shared_task(ignore_result=True)
def reap_stalled() -> dict[str, int]:
    return engine.reap_stalled()


@shared_task(ignore_result=True)
def record_heartbeat() -> None:
    """Beat schedules this; the worker running it proves both are alive (read by /healthz)."""
    with redis_command_client() as client:
        client.set(settings.HEARTBEAT_KEY, str(time.time()), ex=settings.HEARTBEAT_MAX_AGE_S * 2)
