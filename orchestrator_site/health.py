"""/healthz: database, Redis and worker heartbeat, as JSON; 503 when one is down."""

import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from orchestrator_site.redis_clients import redis_command_client


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as error:
        return {"ok": False, "error": type(error).__name__}


def _redis_and_worker() -> tuple[dict, dict]:
    try:
        with redis_command_client(timeout_s=2) as client:
            client.ping()
            beat = client.get(settings.HEARTBEAT_KEY)
    except Exception as error:
        down = {"ok": False, "error": type(error).__name__}
        return down, {"ok": False, "error": "redis unavailable"}
    if beat is None:
        return {"ok": True}, {"ok": False, "error": "no heartbeat"}
    age = max(0.0, time.time() - float(beat))
    return {"ok": True}, {"ok": age <= settings.HEARTBEAT_MAX_AGE_S, "age_s": round(age, 1)}


def _sandbox() -> dict:
    from agents.runtime.sandbox import sandbox_isolation
    from missions.engine.execution import weak_sandbox_refusal

    refusal = weak_sandbox_refusal()
    if refusal:
        return {"ok": False, "error": refusal}
    return {"ok": True, "isolation": sandbox_isolation()}


@login_not_required
@never_cache
def healthz(request):
    redis_state, worker_state = _redis_and_worker()
    checks = {"database": _database(), "redis": redis_state, "worker": worker_state, "sandbox": _sandbox()}
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse({"ok": healthy, **checks}, status=200 if healthy else 503)
