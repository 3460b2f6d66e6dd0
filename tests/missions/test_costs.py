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


def test_it_shows_each_calls_unit_prices_on_the_page_and_in_the_csv(client, company, pm):
    """The prices a call was billed at are on its ledger line; a row from before prices were kept shows a dash."""
    mission = _mission(pm)
    prices = {"price_input_per_mtok": "2.5", "price_cached_input_per_mtok": "1.25", "price_output_per_mtok": "10"}
    _call(mission, cost="0.004000", prompt_tokens=1000, completion_tokens=150, **prices)
    _call(mission, cost="0.001000", purpose="old_row")
    client.force_login(pm)
    url = reverse("missions:costs", args=[mission.code])
    body = client.get(url).content.decode()
    assert '<td class="num prices">2.5000 · 1.2500 · 10.0000</td>' in body and '<td class="num prices">—</td>' in body
    rows = list(csv.DictReader(io.StringIO(client.get(url, {"format": "csv"}).content.decode())))
    assert [Decimal(rows[0][name]) for name in prices] == [Decimal("2.5"), Decimal("1.25"), Decimal("10")]
    assert [rows[1][name] for name in prices] == ["", "", ""]


def test_it_exports_every_call_even_when_the_page_lists_only_the_first(client, company, pm):
    """Past the page's LEDGER_LIMIT the page lists the first calls and says so; the CSV still has every call and
    adds up to the mission's whole ledger."""
    from agents.selectors import LEDGER_LIMIT

    mission = _mission(pm)
    LLMCall.objects.bulk_create(
        LLMCall(mission=mission, model_name="sim-1", purpose="p", status="ok", cost_usd=Decimal("0.000137"))
        for _ in range(LEDGER_LIMIT + 3)
    )
    client.force_login(pm)
    url = reverse("missions:costs", args=[mission.code])
    response = client.get(url)
    assert len(response.context["calls"]) == LEDGER_LIMIT and response.context["ledger_limit"]
    rows = list(csv.DictReader(io.StringIO(client.get(url, {"format": "csv"}).content.decode())))
    assert len(rows) == LEDGER_LIMIT + 3
    assert sum(Decimal(row["cost_usd"]) for row in rows) == Decimal("0.000137") * (LEDGER_LIMIT + 3)


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


def test_it_is_a_tab_of_the_mission_page(client, company, pm):
    """The mission page, its cost report and its audit trail share one tab strip marking the page shown."""
    mission = _mission(pm)
    client.force_login(pm)
    pages = {
        "overview": mission.get_absolute_url(),
        "costs": reverse("missions:costs", args=[mission.code]),
        "audit": reverse("audit:mission", args=[mission.code]),
    }
    for active, url in pages.items():
        body = client.get(url).content.decode()
        for tab, href in pages.items():
            current = ' aria-current="page"' if tab == active else ""
            assert f'<a href="{href}" id="tab-{tab}"{current}>' in body, (active, tab)
