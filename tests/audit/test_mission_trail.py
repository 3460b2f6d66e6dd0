"""A whole mission's audit trail on real parts: who did each thing, person or agent, in the exported JSON."""

import json
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.urls import reverse

from agents.models import AgentSpec
from missions.events import event_record
from missions.models import Event, Mission
from missions.services import mission_submit
from reviews.gates import gate_decide
from reviews.models import ApprovalGate
from tests.conftest import wait_for
from tests.sandbox_support import require_bwrap


def _status(mission: Mission) -> str:
    mission.refresh_from_db()
    return mission.status


def _finished(mission: Mission) -> str | None:
    status = _status(mission)
    return status if mission.is_finished else None


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_traces_every_decision_of_a_finished_mission_to_a_person_or_an_agent(
    client, company, pm, reviewer, sim, celery_worker
):
    """Filed by the PM, voted and built by named agents, deployed on the reviewer's approval; the engine is "system"."""
    require_bwrap()
    mission = mission_submit(requester=pm, title="Traced", request="Add a health endpoint", budget_usd=Decimal("2"))
    wait_for(lambda: _status(mission) in (Mission.Status.AWAITING_DEPLOY_APPROVAL, Mission.Status.FAILED))
    assert mission.status == Mission.Status.AWAITING_DEPLOY_APPROVAL, mission.failure_reason
    gate = ApprovalGate.objects.get(mission=mission, kind=ApprovalGate.Kind.DEPLOY, status="pending")
    gate_decide(gate=gate, by=reviewer, decision="approved", comment="Ship it")
    assert wait_for(lambda: _finished(mission), message="mission to finish") == Mission.Status.COMPLETED

    client.force_login(pm)
    response = client.get(reverse("audit:mission", args=[mission.code]) + "?format=json")
    records = json.loads(b"".join(response.streaming_content))
    by_kind: dict[str, list[dict]] = {}
    for record in records:
        by_kind.setdefault(record["kind"], []).append(record)

    assert by_kind["submitted"][0]["actor"] == "pm"
    titles = set(AgentSpec.objects.filter(is_c_suite=True, is_active=True).values_list("title", flat=True))
    assert {r["actor"] for r in by_kind["vote"]} == titles and {r["actor_type"] for r in by_kind["vote"]} == {"agent"}
    assert by_kind["tool"] and all(r["actor_type"] == "agent" and r["actor"] for r in by_kind["tool"])
    ledger = [r for r in records if r["source"] == "ledger"]
    assert ledger and all(r["actor_type"] == "agent" for r in ledger)
    decided = [r for r in by_kind["gate"] if r["data"].get("status") == "approved"]
    assert [(r["actor"], r["actor_type"]) for r in decided] == [("reviewer", "user")]
    deploying = next(r for r in by_kind["status"] if r["data"].get("status") == "deploying")
    completed = next(r for r in by_kind["status"] if r["data"].get("status") == "completed")
    assert (deploying["actor"], completed["actor_type"]) == ("reviewer", "system")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_streams_exports_under_asgi(async_client, pm):
    """Served by daphne (ASGI), an export is an async stream read a chunk at a time, the same rows as the sync one."""
    mission = await sync_to_async(Mission.objects.create)(
        requester=pm, title="Streamed", request="r", budget_usd=Decimal("1")
    )
    for n in range(3):
        await sync_to_async(event_record)(mission=mission, kind=Event.Kind.STEP, message=f"=step {n}", actor=pm)
    await async_client.aforce_login(pm)
    url = reverse("audit:mission", args=[mission.code])
    exported = await async_client.get(url + "?format=json")
    assert exported.is_async
    records = json.loads(b"".join([chunk async for chunk in exported.streaming_content]))
    assert [(r["summary"], r["actor"]) for r in records] == [(f"=step {n}", "pm") for n in range(3)]
    table = await async_client.get(url + "?format=csv")
    lines = b"".join([chunk async for chunk in table.streaming_content]).decode().splitlines()
    assert len(lines) == 4 and all(",'=step" in line for line in lines[1:])
    await sync_to_async(connections.close_all)()  # the worker thread's connection, or PostgreSQL keeps the test db
