"""The budget is a hard limit, even against a model server that ignores max_tokens or lies about usage.

Real missions on real parts (Celery worker, Redis, the simulated server over HTTP) with small budgets: spend never
exceeds the budget, the ledger adds up to the mission's spend to the last Decimal place, and an overrun is shown.
"""

from decimal import Decimal

import pytest

from agents.models import LLMCall
from missions.models import Event, Mission
from missions.services import mission_submit
from reviews.models import ApprovalGate
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _settled(mission: Mission) -> Mission:
    """Wait until the mission is finished or waiting on a person, with no reservation still held."""

    def check():
        mission.refresh_from_db()
        return (mission.is_finished or mission.is_waiting) and mission.reserved_usd == 0

    wait_for(check, timeout=90, message=f"mission {mission.title} to settle")
    return mission


def _assert_ledger_matches(mission: Mission) -> list[LLMCall]:
    calls = list(LLMCall.objects.filter(mission=mission))
    assert calls
    assert mission.spent_usd <= mission.budget_usd
    assert sum(c.cost_usd for c in calls) == mission.spent_usd  # Decimal: exact, not to the cent
    assert all(c.cost_usd <= c.reserved_usd for c in calls)
    return calls


def test_it_pauses_on_a_budget_gate_when_the_server_over_reports_usage(company, pm, sim, celery_worker):
    """A server that reports 1000x its real usage is billed at most each call's reservation: the mission pauses on
    a budget gate within its budget instead of overrunning it, and every lie is on the ledger and the timeline."""
    sim.add_faults({"kind": "overreport_usage", "factor": 1000, "times": 10_000})
    mission = mission_submit(
        requester=pm, title="Lied to", request="Build it", budget_usd=Decimal("0.02"), require_deploy_approval=False
    )
    _settled(mission)
    assert mission.status == Mission.Status.PAUSED_BUDGET, mission.failure_reason
    assert ApprovalGate.objects.filter(
        mission=mission, kind=ApprovalGate.Kind.BUDGET, status=ApprovalGate.Status.PENDING
    ).exists()
    calls = _assert_ledger_matches(mission)
    billed = [c for c in calls if c.status == LLMCall.Status.OK]
    assert billed and all(c.overrun and c.cost_usd == c.reserved_usd for c in billed)
    assert all(c.reported_completion_tokens > c.completion_tokens for c in billed)
    overruns = mission.events.filter(kind=Event.Kind.COST, data__overrun=True)
    assert overruns.count() == len(billed)


def test_it_never_bills_past_the_reservation_when_the_server_ignores_max_tokens(company, pm, sim, celery_worker):
    """A server that ignores a small max_tokens and sends whole answers at an expensive output price: the answer is
    cut off at the limit and billed within its reservation, and the mission fails with the reason (a plan cut
    mid-JSON is no plan) inside its budget, instead of paying for whole answers past it."""
    company.max_output_tokens = 40
    company.price_output_per_mtok = Decimal("100")  # $0.004 per capped answer; a whole sim answer costs far more
    company.save()
    sim.add_faults({"kind": "ignore_max_tokens", "times": 10_000})
    mission = mission_submit(
        requester=pm, title="Runaway", request="Build it", budget_usd=Decimal("0.05"), require_deploy_approval=False
    )
    _settled(mission)
    assert mission.status == Mission.Status.FAILED
    assert "ignored the output limit (max_tokens=40)" in mission.failure_reason
    calls = _assert_ledger_matches(mission)
    answered = [c for c in calls if c.cost_usd > 0]
    assert answered and all(c.overrun and c.completion_tokens <= 40 for c in answered)
    server_usage = sum(call["usage"]["completion_tokens"] for call in sim.calls() if call["usage"])
    assert server_usage > 40 * len(answered)  # the server did send more than the limit
    assert mission.events.filter(kind=Event.Kind.COST, data__cut_off=True).exists()
