"""The mission cost report: the ledger summed by phase, agent and step, and model, call by call, and as CSV."""

import csv
import io
from decimal import Decimal

from django.urls import reverse

from agents.models import AgentSpec, LLMCall
from missions.models import DecisionCycle, Mission, Plan, Step


def _mission(requester) -> Mission:
    return Mission.objects.create(requester=requester, title="Costly", request="r", budget_usd=Decimal("5.00"))


def _call(mission, *, cost, purpose="plan_draft", cycle=None, step=None, agent=None, model="sim-1", **fields):
    return LLMCall.objects.create(
        mission=mission,
        cycle=cycle,
        step=step,
        agent=agent,
        model_name=model,
        purpose=purpose,
        status=LLMCall.Status.OK,
        cost_usd=Decimal(cost),
        **fields,
    )


def _ledger(company, pm):
    mission = _mission(pm)
    cto = AgentSpec.objects.get(role="cto", is_c_suite=True)
    dev = AgentSpec.objects.filter(is_c_suite=False).first()
    planning = DecisionCycle.objects.create(mission=mission, number=1, kind=DecisionCycle.Kind.PLANNING)
    step = Step.objects.create(plan=Plan.objects.create(mission=mission, version=1), key="core", title="C", role="d")
    _call(mission, cost="0.010000", cycle=planning, agent=cto, prompt_tokens=100, completion_tokens=50)
    _call(mission, cost="0.020000", cycle=planning, agent=cto, prompt_tokens=200, completion_tokens=60)
    _call(mission, cost="0.005000", purpose="step:codegen", step=step, agent=dev, model="big", cached_tokens=30)
    _call(mission, cost="0.001000", purpose="=HYPERLINK(x)", step=step, agent=dev)
    return mission


def test_it_sums_the_ledger_by_phase_agent_step_and_model(client, company, pm, django_assert_max_num_queries):
    """Each table's rows add up to the ledger, biggest first; the page runs a fixed number of queries."""
    mission = _ledger(company, pm)
    client.force_login(pm)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("missions:costs", args=[mission.code]))
    assert response.status_code == 200
    phases = {row["phase"]: row["cost_usd"] for row in response.context["by_phase"]}
    assert phases == {"planning": Decimal("0.030000"), "execution": Decimal("0.006000")}
    models = [(row["model_name"], row["calls"]) for row in response.context["by_model"]]
    assert models == [("sim-1", 3), ("big", 1)]
    by_agent_step = response.context["by_agent_step"]
    assert sum(row["cost_usd"] for row in by_agent_step) == Decimal("0.036000")
    assert by_agent_step[0]["names"] == ["Chief Technology Officer (CTO)", None]
    assert len(response.context["calls"]) == 4
    body = response.content.decode()
    assert "<td>planning</td>" in body and "$0.030000" in body and 'href="?format=csv"' in body


def test_it_exports_the_ledger_as_formula_safe_csv(client, company, pm):
    """The CSV has a row per call whose costs sum to the mission's ledger; a cell that looks like a formula is
    quoted."""
    mission = _ledger(company, pm)
    client.force_login(pm)
    response = client.get(reverse("missions:costs", args=[mission.code]), {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 4
    assert sum(Decimal(row["cost_usd"]) for row in rows) == Decimal("0.036")
    assert [row["phase"] for row in rows] == ["planning", "planning", "execution", "execution"]
    assert rows[3]["purpose"] == "'=HYPERLINK(x)"


def test_it_shows_costs_only_to_who_may_see_the_mission(client, company, pm, other_pm, reviewer):
    """Another PM gets a 404, like for the mission itself; a reviewer sees it; anonymous goes to log in."""
    mission = _ledger(company, pm)
    url = reverse("missions:costs", args=[mission.code])
    assert client.get(url).status_code == 302
    client.force_login(other_pm)
    assert client.get(url).status_code == 404
    assert client.get(url, {"format": "csv"}).status_code == 404
    client.force_login(reviewer)
    assert client.get(url).status_code == 200
