"""Benchmark: cost of one live update (record an event, render the fragments a socket sends).

Run: ``make bench BENCH_ARGS=live_updates`` (the harness: bench/results/live_updates.json, BENCHMARKS.md), or by hand
DATABASE_URL=postgres://postgres@127.0.0.1:5432/<scratch> .venv/bin/python bench/live_updates.py, which
writes bench/results/live_updates_<database>.json. Uses a throwaway mission, left cancelled afterwards
(its events are append-only).
"""

import json
import os
import platform
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")

import django  # noqa: E402
from common import figure, stats  # noqa: E402 - bench/common.py, beside this script

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.template.loader import render_to_string  # noqa: E402

from missions import selectors  # noqa: E402
from missions.consumers import LIVE_PARTIALS  # noqa: E402
from missions.events import event_record  # noqa: E402
from missions.models import Event, Mission  # noqa: E402

EVENTS = 300


def measure(*, events: int = EVENTS) -> dict:
    """Record ``events`` events on a throwaway mission, rendering a socket's fragments every tenth."""
    user, _ = get_user_model().objects.get_or_create(username="bench-user")
    mission = Mission.objects.create(requester=user, title="bench", request="bench", budget_usd=Decimal("1"))
    try:
        record_ms, render_ms = [], []
        for n in range(events):
            started = time.perf_counter()
            event_record(mission=mission, kind=Event.Kind.STATUS, message=f"event {n}")
            record_ms.append((time.perf_counter() - started) * 1000)
            if n % 10 == 9:
                started = time.perf_counter()
                fresh = Mission.objects.get(pk=mission.pk)
                context = {
                    **selectors.mission_detail(fresh),
                    "new_events": selectors.mission_events(fresh, after=n - 1),
                    "user": user,  # the socket renders for its user (controls, gate forms)
                }
                render_to_string("missions/detail.html#event-batch", context)
                for name in LIVE_PARTIALS:
                    render_to_string(f"missions/detail.html#{name}", context)
                render_ms.append((time.perf_counter() - started) * 1000)
        result = {
            "benchmark": "live_updates",
            "database": connection.vendor,
            "python": platform.python_version(),
            "events": events,
            "event_record_ms": stats(record_ms),
            "socket_render_ms_at_up_to_300_events": stats(render_ms),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    finally:
        # Events are append-only (PostgreSQL refuses to delete them): the throwaway mission stays, cancelled.
        Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.CANCELLED)
    return result


def run(*, smoke: bool = False) -> dict:
    """For the harness: the server's part of a live update (benchmark 4 measures it in chromium; not built)."""
    result = measure(events=20) if smoke else measure()
    return {
        "title": "Live update, server side",
        "goal": "no goal of its own: the server's share of benchmark 4 (event commit → DOM p99 ≤ 150 ms in chromium)",
        "size": {"events": result["events"]},
        "figures": [
            figure("event record median", result["event_record_ms"]["median"], "ms"),
            figure("event record p95", result["event_record_ms"]["p95"], "ms"),
            figure("socket render median", result["socket_render_ms_at_up_to_300_events"]["median"], "ms"),
            figure("socket render p95", result["socket_render_ms_at_up_to_300_events"]["p95"], "ms"),
        ],
        "details": result,
    }


def main() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    result = measure()
    out = ROOT / "bench" / "results" / f"live_updates_{connection.vendor}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
