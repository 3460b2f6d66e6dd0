"""Benchmark: the approval queue with 825 pending gates (the issue-9 measurement: 830 queries, 851 ms before).

Run: ``make bench BENCH_ARGS=gate_queue`` (the harness: bench/results/gate_queue.json, BENCHMARKS.md), or by hand
DATABASE_URL=postgres://postgres@127.0.0.1:5432/<scratch> .venv/bin/python bench/gate_queue.py, which
writes bench/results/gate_queue_<database>.json. Creates throwaway users, missions and gates and
deletes them afterwards.
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
from django.contrib.auth.models import Group  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402

from missions.models import Mission  # noqa: E402
from missions.selectors import REVIEWERS_GROUP  # noqa: E402
from reviews.models import ApprovalGate  # noqa: E402

GATES = 825
RUNS = 30


def measure(*, gates: int = GATES, runs: int = RUNS) -> dict:
    """Time the queue page over ``runs`` requests with ``gates`` pending gates; the throwaway rows go afterwards."""
    users = get_user_model().objects
    requester, _ = users.get_or_create(username="bench-queue-pm")
    reviewer, _ = users.get_or_create(username="bench-queue-reviewer")
    reviewer.groups.add(Group.objects.get_or_create(name=REVIEWERS_GROUP)[0])
    missions = Mission.objects.bulk_create(
        Mission(
            requester=requester,
            title=f"bench queue {n}",
            request="bench",
            budget_usd=Decimal("5"),
            status=Mission.Status.AWAITING_DEPLOY_APPROVAL,
        )
        for n in range(gates)
    )
    ApprovalGate.objects.bulk_create(
        ApprovalGate(mission=m, kind=ApprovalGate.Kind.DEPLOY, question=f"Deploy {m.title}?") for m in missions
    )
    try:
        client = Client(HTTP_HOST="localhost")
        client.force_login(reviewer)
        client.get(reverse("reviews:queue"))  # warm caches and the session
        times, queries = [], []
        for n in range(runs):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(reverse("reviews:queue"), {"page": str(1 + n % 3)})
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
            queries.append(len(captured.captured_queries))
        result = {
            "benchmark": "gate_queue",
            "database": connection.vendor,
            "python": platform.python_version(),
            "pending_gates": gates,
            "gates_on_page": response.content.count(b'class="decision"'),
            "runs": runs,
            "response_ms": stats(times),
            "queries_per_page": max(queries),
            "before_issue_9": {"queries": 830, "response_ms": 851, "note": "one page of all 825 gates"},
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    finally:
        ApprovalGate.objects.filter(mission__in=missions).delete()
        Mission.objects.filter(pk__in=[m.pk for m in missions]).delete()
    return result


def run(*, smoke: bool = False) -> dict:
    """For the harness: the queue page against issue 11's page goals (≤ 150 ms, ≤ 20 queries)."""
    result = measure(gates=30, runs=3) if smoke else measure()
    gates = result["pending_gates"]
    return {
        "title": "Approval queue page",
        "goal": f"part of benchmark 5 (pages at scale), at {gates} pending gates: server time ≤ 150 ms, ≤ 20 queries",
        "size": {"pending_gates": gates, "runs": result["runs"]},
        "figures": [
            figure("response median", result["response_ms"]["median"], "ms", goal=150),
            figure("response p95", result["response_ms"]["p95"], "ms"),
            figure("queries per page", result["queries_per_page"], "queries", goal=20),
        ],
        "details": result,
    }


def main() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    result = measure()
    out = ROOT / "bench" / "results" / f"gate_queue_{connection.vendor}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
