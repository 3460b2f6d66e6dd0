"""Benchmark: the admin's ledger changelist (agents.LLMCall) with 500,000 rows and 5,000 missions; since issue 11
also the transcript and event changelists with 100,000 rows each.

Run (PostgreSQL, a scratch database of its own: the rows stay, the append-only trigger refuses deleting them):
    createdb -h 127.0.0.1 -U postgres admin_scratch
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/admin_scratch .venv/bin/python bench/admin_ledger.py [label]

The first run generates the rows (bulk_create in batches, under two minutes); later runs reuse them. Each run
times the changelist as a superuser with Django's test client (server time and query count per page) and
stores the figures under ``label`` (default "after") in bench/results/admin_ledger.json, keeping the other
labels. The "before" figures are this script run from an export of main before issue 11 (``git archive``), with
agents migration 0011 (its indexes) unapplied, on the same rows; main has no "purpose" or "written" filter.
"""

import json
import os
import platform
import random
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")

import django  # noqa: E402
from common import stats  # noqa: E402 - bench/common.py, beside this script

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from agents.models import AgentMessage, AgentSpec, LLMCall  # noqa: E402
from agents.seed import seed_agents, seed_model_profile  # noqa: E402
from missions.models import Event, Mission, Plan, Step  # noqa: E402

MISSIONS = 5_000
ROWS = 500_000
LOG_ROWS_PER_MISSION = 20  # events and transcript entries: 100,000 of each
BATCH = 5_000
RUNS = 20
PURPOSES = ["plan_draft", "plan_vote", "plan_review", "speaker_selection", "review", "step:codegen", "step:test"]
STATUSES = [LLMCall.Status.OK] * 8 + [LLMCall.Status.ERROR, LLMCall.Status.CACHE_HIT]


def generate(requester) -> None:
    """Write MISSIONS missions (a plan and a step each) and ROWS settled ledger rows over the last 90 days."""
    rng = random.Random(11)
    now = timezone.now()
    profile = seed_model_profile()
    seed_agents(profile)
    agents = list(AgentSpec.objects.all())
    with transaction.atomic():
        missions = Mission.objects.bulk_create(
            (
                Mission(
                    requester=requester,
                    title=f"bench ledger {n}",
                    request="bench",
                    budget_usd=Decimal("5"),
                    status=Mission.Status.COMPLETED,
                )
                for n in range(MISSIONS)
            ),
            batch_size=BATCH,
        )
        plans = Plan.objects.bulk_create((Plan(mission=m, version=1) for m in missions), batch_size=BATCH)
        steps = Step.objects.bulk_create(
            (Step(plan=p, key="build", title="Build it", role="developer", instructions="I") for p in plans),
            batch_size=BATCH,
        )
    # created_at is auto_now_add; the rows need their own times spread over 90 days (no UPDATE: the trigger).
    created = LLMCall._meta.get_field("created_at")
    created.auto_now_add = False
    try:
        for start in range(0, ROWS, BATCH):
            rows = []
            for n in range(start, min(start + BATCH, ROWS)):
                m = n % MISSIONS
                at = now - timedelta(seconds=(ROWS - n) * 90 * 86_400 // ROWS)
                rows.append(
                    LLMCall(
                        mission=missions[m],
                        step=steps[m] if n % 2 else None,
                        agent=rng.choice(agents),
                        model_profile=profile,
                        model_name="sim-1",
                        purpose=rng.choice(PURPOSES),
                        status=rng.choice(STATUSES),
                        prompt_tokens=rng.randint(200, 4000),
                        completion_tokens=rng.randint(50, 800),
                        cost_usd=Decimal("0.000420"),
                        latency_ms=rng.randint(5, 900),
                        provider_request_id=f"req-{n}",
                        created_at=at,
                        finished_at=at,
                    )
                )
            LLMCall.objects.bulk_create(rows)
    finally:
        created.auto_now_add = True


def generate_logs(requester) -> None:
    """Write LOG_ROWS_PER_MISSION events and transcript entries for each of the ledger's missions."""
    missions = list(Mission.objects.filter(requester=requester).order_by("id"))
    steps = dict(Step.objects.filter(plan__mission__in=missions).values_list("plan__mission_id", "id"))
    for start in range(0, len(missions), BATCH // LOG_ROWS_PER_MISSION):
        chunk = missions[start : start + BATCH // LOG_ROWS_PER_MISSION]
        Event.objects.bulk_create(
            Event(mission=m, seq=n, kind=Event.Kind.STEP, message=f"Step event {n}")
            for m in chunk
            for n in range(1, LOG_ROWS_PER_MISSION + 1)
        )
        AgentMessage.objects.bulk_create(
            AgentMessage(mission=m, step_id=steps.get(m.id), source="developer", content=f"Message {n}")
            for m in chunk
            for n in range(LOG_ROWS_PER_MISSION)
        )


def measure(client: Client, params: dict, url: str = "admin:agents_llmcall_changelist") -> dict:
    url = reverse(url)
    client.get(url, params)  # warm the plan cache and the session
    times, queries = [], []
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url, params)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        queries.append(len(captured.captured_queries))
    slowest = sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:3]
    return {
        "params": params,
        "rows_on_page": response.content.partition(b"<tbody>")[2].partition(b"</tbody>")[0].count(b"<tr"),
        "response_ms": stats(times),
        "queries": max(queries),
        "slowest_queries_ms": [round(float(q["time"]) * 1000, 1) for q in slowest],
    }


def main() -> None:
    from django.core.management import call_command

    label = sys.argv[1] if len(sys.argv) > 1 else "after"
    call_command("migrate", verbosity=0)
    users = get_user_model().objects
    requester, _ = users.get_or_create(username="bench-ledger-pm")
    admin, _ = users.get_or_create(username="bench-ledger-admin", defaults={"is_staff": True, "is_superuser": True})
    if not LLMCall.objects.filter(mission__requester=requester).exists():
        started = time.perf_counter()
        generate(requester)
        print(f"generated {ROWS} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if not Event.objects.filter(mission__requester=requester).exists():
        generate_logs(requester)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # What autovacuum does to an insert-only table soon after a load: statistics and the visibility map.
            for table in ["agents_llmcall", "agents_agentmessage", "missions_event"]:
                cursor.execute(f"VACUUM ANALYZE {table}")
            cursor.execute("ANALYZE")
    code = str(Mission.objects.filter(requester=requester).order_by("id").values_list("code", flat=True)[1234])
    client = Client(HTTP_HOST="localhost")
    client.force_login(admin)
    pages = {
        "first page": {},
        "status error": {"status__exact": "error"},
        "search a mission code": {"q": code},
        "page 50": {"p": "50"},
    }
    if label != "before":  # filters the admin had not before issue 11
        pages.update({"purpose review": {"purpose": "review"}, "written last 24 hours": {"written": "24h"}})
    others = {
        "transcripts first page": ({}, "admin:agents_agentmessage_changelist"),
        "events first page": ({}, "admin:missions_event_changelist"),
        "events search a mission code": ({"q": code}, "admin:missions_event_changelist"),
    }
    out = ROOT / "bench" / "results" / "admin_ledger.json"
    result = json.loads(out.read_text()) if out.exists() else {}
    result.update(
        benchmark="admin_ledger",
        database=connection.vendor,
        goal={"response_ms_median": 150, "queries": 20},
        rows=LLMCall.objects.count(),
        missions=Mission.objects.count(),
        events=Event.objects.count(),
        transcript_entries=AgentMessage.objects.count(),
    )
    result[label] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),  # a shared machine: other jobs slow the rendering
        "runs": RUNS,
        "pages": {name: measure(client, params) for name, params in pages.items()},
        "other_lists": {name: measure(client, params, url) for name, (params, url) in others.items()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result[label], indent=2))


if __name__ == "__main__":
    main()
