"""Budget guarantees a person can see: an 80 % warning once per budget level, and a budget gate that shows where the
money went (per agent, per step, from the ledger) with the CFO's proposed increase, or a computed one when the CFO
cannot be asked.

Real missions on real parts (Celery worker, Redis, the simulated server over HTTP). Most run against a server that
bills every call at its full reservation (``overreport_usage``), the worst case the budget must hold against: a
mission then stops within one reservation of its budget, so it always passes 80 % before it pauses.
"""

import threading
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db import connections
from django.test import Client

from agents.models import AgentSpec, LLMCall, ModelProfile
from agents.services import llm_call_reserve, llm_call_settle
from missions.budget import PURPOSE
from missions.models import Event, Mission
from missions.services import mission_submit
from reviews.gates import gate_decide
from reviews.models import ApprovalGate
from tests.conftest import wait_for
from tests.missions.test_budget import _assert_ledger_matches, _settled

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BUDGET = Decimal("0.02")


def _cfo_on(name: str, *, price_per_mtok: str) -> AgentSpec:
    """Give the CFO a model profile of its own at ``price_per_mtok`` for input and output (same simulated server)."""
    profile = ModelProfile.objects.create(
        name=name,
        provider=ModelProfile.Provider.OPENAI_COMPATIBLE,
        api_key_env="LLM_API_KEY",
        price_input_per_mtok=Decimal(price_per_mtok),
        price_cached_input_per_mtok=Decimal(price_per_mtok),
        price_output_per_mtok=Decimal(price_per_mtok),
    )
    cfo = AgentSpec.objects.get(role="cfo", is_c_suite=True)
    cfo.model_profile = profile
    cfo.save(update_fields=["model_profile"])
    return cfo


def _cheap_cfo() -> AgentSpec:
    """A CFO on a (nearly free) local model: its call always fits what is left."""
    return _cfo_on("cfo-local", price_per_mtok="0.001")


def _run_out(pm, title: str, budget: Decimal = BUDGET) -> tuple[Mission, ApprovalGate]:
    mission = mission_submit(
        requester=pm, title=title, request="Build it", budget_usd=budget, require_deploy_approval=False
    )
    _settled(mission)
    assert mission.status == Mission.Status.PAUSED_BUDGET, mission.failure_reason
    gate = ApprovalGate.objects.get(mission=mission, kind=ApprovalGate.Kind.BUDGET, status=ApprovalGate.Status.PENDING)
    return mission, gate


def _warnings(mission: Mission) -> list[Event]:
    return list(mission.events.filter(kind=Event.Kind.COST, data__budget_warning=True).order_by("seq"))


def _bills_every_call_at_its_reservation(sim) -> None:
    sim.add_faults({"kind": "overreport_usage", "factor": 1000, "times": 10_000})


def _page(user, url: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_it_warns_once_at_80_percent_and_again_after_a_budget_increase(company, pm, reviewer, sim, celery_worker):
    """Settled spend past 80 % of the budget writes one warning event (with the figures a toast needs); approving
    the CFO's increase and spending past 80 % of the new budget warns once more, and spend never passes the budget."""
    _bills_every_call_at_its_reservation(sim)
    _cheap_cfo()
    sim.script(  # enough for a few more calls, not for the whole mission: it passes 80 % of $0.03 too
        {"role": "budget_proposal", "reply": {"json": {"increase_usd": "0.01", "rationale": "A little more."}}}
    )
    mission, gate = _run_out(pm, "Warned")
    _assert_ledger_matches(mission)
    (first,) = _warnings(mission)
    assert first.data["budget_warning"] is True
    assert first.data["budget_usd"] == "0.02"
    assert Decimal("0.016") <= Decimal(first.data["spent_usd"]) <= BUDGET
    assert "Budget warning" in first.message
    assert mission.budget_warned_at_usd == BUDGET
    # The warning belongs to the settle that crossed the line: the calls billed before it were under 80 %.
    assert gate.data["proposal"]["by"] == "cfo", gate.data["proposal"]
    increase = Decimal(gate.data["increase_usd"])
    assert increase == Decimal("0.01")

    gate_decide(gate=gate, by=reviewer, decision="approved")
    mission.refresh_from_db()
    assert mission.budget_usd == BUDGET + increase
    _settled(mission)
    _assert_ledger_matches(mission)
    warnings = _warnings(mission)
    assert [w.data["budget_usd"] for w in warnings] == ["0.02", "0.03"]
    assert Decimal(warnings[1].data["spent_usd"]) >= Decimal("0.024")
    page = _page(pm, mission.get_absolute_url())
    assert f'id="event-{warnings[1].seq}" data-seq="{warnings[1].seq}" class="event event-cost event-warning"' in page


def test_it_does_not_warn_below_80_percent(company, pm, sim, celery_worker):
    """A mission that finishes well within its budget never gets a warning."""
    mission = mission_submit(
        requester=pm, title="Plenty", request="Build it", budget_usd=Decimal("5"), require_deploy_approval=False
    )
    _settled(mission)
    assert mission.status == Mission.Status.COMPLETED, mission.failure_reason
    _assert_ledger_matches(mission)
    assert mission.spent_usd < Decimal("4")
    assert _warnings(mission) == []
    assert mission.budget_warned_at_usd is None


def test_it_warns_once_when_two_workers_settle_past_80_percent_at_once(company, pm):
    """Eight calls settled at the same moment, each of which takes the spend past 80 %: one warning, not eight."""
    mission = mission_submit(requester=pm, title="Race", request="Build it", budget_usd=Decimal("1.00"))
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.EXECUTING, spent_usd=Decimal("0.79"))
    company.price_input_per_mtok = company.price_output_per_mtok = Decimal("1000")  # $0.01 for 10 tokens
    company.save()
    calls = [
        llm_call_reserve(
            mission_id=mission.pk,
            profile=company,
            model_name="sim",
            purpose="race",
            prompt_token_bound=5,
            max_output_tokens=5,
        )
        for _ in range(8)
    ]
    start = threading.Barrier(len(calls))
    errors = []

    def settle(call):
        try:
            start.wait()
            llm_call_settle(call=call, prompt_tokens=5, completion_tokens=5, latency_ms=1)
        except Exception as error:  # reported below: a thread's exception would otherwise vanish
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=settle, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    mission.refresh_from_db()
    assert mission.spent_usd == Decimal("0.87")
    assert mission.reserved_usd == 0
    (warning,) = _warnings(mission)
    assert warning.data["spent_usd"] == "0.800000"


def test_it_shows_the_spend_per_agent_and_step_and_the_cfo_proposal_on_the_budget_gate(
    company, pm, reviewer, sim, celery_worker, settings
):
    """The budget gate's tables are the ledger summed per agent and per step (the CFO's own metered call included),
    with the CFO's proposal and rationale, on the mission page and in the reviewer's queue."""
    settings.BUDGET_CONFIRM_ABOVE_USD = Decimal("0.03")
    _bills_every_call_at_its_reservation(sim)
    cfo = _cheap_cfo()
    mission, gate = _run_out(pm, "Breakdown")
    calls = _assert_ledger_matches(mission)
    (cfo_call,) = [c for c in calls if c.purpose == PURPOSE]
    assert cfo_call.agent_id == cfo.pk and cfo_call.status == LLMCall.Status.OK
    assert cfo_call.max_output_tokens == 300  # a short answer, a small reservation
    by_agent, by_step = defaultdict(Decimal), defaultdict(Decimal)
    for call in calls:
        by_agent[call.agent.title if call.agent else "(no agent)"] += call.cost_usd
        by_step[call.step.key if call.step else ""] += call.cost_usd
    shown_agents = {row["agent"]: Decimal(row["cost_usd"]) for row in gate.data["spend_by_agent"]}
    shown_steps = {row["step"]: Decimal(row["cost_usd"]) for row in gate.data["spend_by_step"]}
    assert shown_agents == dict(by_agent)
    assert shown_steps == dict(by_step)
    assert sum(shown_agents.values()) == sum(shown_steps.values()) == mission.spent_usd
    assert {row["calls"] for row in gate.data["spend_by_step"] if row["step"] == "core"} == {
        sum(1 for c in calls if c.step and c.step.key == "core")
    }
    proposal = gate.data["proposal"]
    assert proposal == {
        "by": "cfo",
        "rationale": proposal["rationale"],
        "cfo_unavailable": "",
    }
    top_agent = max(by_agent, key=by_agent.get)
    assert proposal["rationale"].startswith(f"As CFO: {top_agent} spent the most")
    assert gate.data["increase_usd"] == "0.02" and gate.data["new_budget_usd"] == "0.04"  # the sim CFO doubles it
    assert "by $0.02 to $0.04 (proposed by the CFO)" in gate.question
    assert gate.data["above_confirm_threshold"] is True

    for page in (_page(pm, mission.get_absolute_url()), _page(reviewer, "/gates/")):
        assert "Proposed increase: $0.02</strong> (to $0.04)" in page
        assert "written by the CFO agent" in page
        assert f"As CFO: {top_agent} spent the most (${by_agent[top_agent]})" in page, proposal["rationale"]
        assert '<table class="small spend-by-agent">' in page and '<table class="small spend-by-step">' in page
        assert f"<td>{top_agent}</td>" in page
        assert f'<td class="num">{by_step["core"]}</td>' in page
        assert "The new budget is above $0.03: approving confirms it." in page


def test_it_escapes_the_cfo_rationale(company, pm, reviewer, sim, celery_worker):
    """The CFO's rationale is model text: shown as text on the gate, never as markup."""
    _bills_every_call_at_its_reservation(sim)
    _cheap_cfo()
    rationale = '<script>alert("cfo")</script> <a href="javascript:x()">more</a>'
    sim.script(
        {"role": "budget_proposal", "times": 1, "reply": {"json": {"increase_usd": 0.5, "rationale": rationale}}}
    )
    mission, gate = _run_out(pm, "Escaped")
    assert gate.data["increase_usd"] == "0.50"
    for page in (_page(pm, mission.get_absolute_url()), _page(reviewer, "/gates/")):
        assert "&lt;script&gt;alert(&quot;cfo&quot;)&lt;/script&gt;" in page
        assert "<script>alert" not in page and '<a href="javascript:' not in page


@pytest.mark.parametrize(
    ("replies", "why"),
    [
        ([{"raw": "I think about two dollars."}] * 2, "BudgetProposal answer was invalid twice"),
        ([{"json": {"increase_usd": -3, "rationale": "Refund."}}] * 2, "greater than 0"),
        ([{"json": {"increase_usd": 1.005, "rationale": "Cents and a half."}}] * 2, "2 decimal places"),
        ([{"json": {"increase_usd": 5000, "rationale": "Be generous."}}], "above the cap of $10.00"),
    ],
    ids=["prose", "negative", "three-decimals", "over-the-cap"],
)
def test_it_falls_back_to_a_computed_proposal_when_the_cfo_answers_garbage(
    company, pm, reviewer, sim, celery_worker, replies, why
):
    """An unusable CFO answer (after one repair round) is billed like any call, and the gate proposes an increase
    computed from the spend instead (at least $1), saying why; approving it raises the budget by that amount."""
    _bills_every_call_at_its_reservation(sim)
    _cheap_cfo()
    sim.script(*({"role": "budget_proposal", "times": 1, "reply": reply} for reply in replies))
    mission, gate = _run_out(pm, "Garbage")
    calls = _assert_ledger_matches(mission)
    assert len([c for c in calls if c.purpose == PURPOSE]) == len(replies)
    proposal = gate.data["proposal"]
    assert proposal["by"] == "fallback"
    assert why in proposal["cfo_unavailable"]
    assert gate.data["increase_usd"] == "1.00"
    assert "(computed from the spend: the CFO could not propose)" in gate.question
    page = _page(reviewer, "/gates/")
    assert "computed from the spend" in page and "The CFO could not propose" in page

    gate_decide(gate=gate, by=reviewer, decision="approved")
    mission.refresh_from_db()
    assert mission.budget_usd == BUDGET + Decimal("1.00")
    _settled(mission)
    assert mission.status == Mission.Status.COMPLETED, mission.failure_reason
    _assert_ledger_matches(mission)


def test_it_falls_back_when_the_cfo_call_does_not_fit_the_budget(company, pm, reviewer, sim, celery_worker):
    """A CFO on a model too expensive for what is left is not called at all (no ledger row, nothing spent): the
    gate proposes the computed increase and says the call did not fit."""
    _bills_every_call_at_its_reservation(sim)
    _cfo_on("cfo-expensive", price_per_mtok="100000")  # 300 output tokens alone: $30
    mission, gate = _run_out(pm, "Too dear")
    calls = _assert_ledger_matches(mission)
    assert not [c for c in calls if c.purpose == PURPOSE]
    assert not [call for call in sim.calls() if call["role"] == "budget_proposal"]
    proposal = gate.data["proposal"]
    assert proposal["by"] == "fallback"
    assert proposal["cfo_unavailable"].startswith("Budget exhausted: the next model call (budget_proposal)")
    assert gate.data["increase_usd"] == "1.00"
    page = _page(pm, mission.get_absolute_url())
    assert "The CFO could not propose: Budget exhausted" in page

    gate_decide(gate=gate, by=reviewer, decision="approved")
    mission.refresh_from_db()
    assert mission.budget_usd == Decimal("1.02")
    wait_for(lambda: Mission.objects.get(pk=mission.pk).status != Mission.Status.PAUSED_BUDGET, message="resume")
    _settled(mission)
    _assert_ledger_matches(mission)


@pytest.mark.parametrize(
    ("budget", "finished", "left", "increase", "why"),
    [
        (Decimal("20"), 2, 2, Decimal("3.00"), "2 finished step(s) cost $1.5000 each on average; 2 step(s) are left."),
        (Decimal("20"), 2, 0, Decimal("20.00"), "No step is left to run"),
        (Decimal("20"), 0, 4, Decimal("20.00"), "No step has finished yet to estimate from"),
        (Decimal("0.50"), 0, 4, Decimal("1.00"), "doubles the budget"),  # at least $1
        (Decimal("2000"), 0, 4, Decimal("2000.00"), "doubles the budget"),
        (Decimal("9000"), 0, 4, Decimal("1000.00"), "doubles the budget"),  # never past the largest budget
    ],
)
def test_it_computes_the_fallback_proposal_from_the_spend_per_finished_step(
    company, pm, budget, finished, left, increase, why
):
    """The computed proposal: the average ledger cost of a finished step times the steps left; before any step has
    finished, the budget again; at least $1, and never past the largest budget a mission may have."""
    from missions.budget import fallback_increase, spend_breakdown
    from missions.models import Plan, Step

    mission = mission_submit(requester=pm, title="Sums", request="R", budget_usd=budget, budget_confirmed=True)
    plan = Plan.objects.create(mission=mission, version=1)
    statuses = [Step.Status.SUCCEEDED] * finished + [Step.Status.PENDING] * left
    for n, status in enumerate(statuses):
        step = Step.objects.create(
            plan=plan, key=f"s{n}", title=f"S{n}", role="developer", instructions="x", status=status
        )
        if status == Step.Status.SUCCEEDED:
            for cost in ("1.000000", "0.500000"):
                LLMCall.objects.create(
                    mission=mission, step=step, model_name="m", purpose="step", cost_usd=Decimal(cost), reserved_usd=1
                )
    LLMCall.objects.create(mission=mission, model_name="m", purpose="plan_draft", cost_usd=Decimal("7"), reserved_usd=7)
    _, by_step = spend_breakdown(mission)
    amount, reason = fallback_increase(mission, by_step)
    assert (amount, why in reason) == (increase, True), reason


def test_it_needs_confirm_budget_on_the_command_line_above_the_threshold(company, pm, settings):
    """submit_mission refuses a budget above BUDGET_CONFIRM_ABOVE_USD without --confirm-budget, and files it with."""
    import io

    from django.core.management import CommandError, call_command

    settings.BUDGET_CONFIRM_ABOVE_USD = Decimal("50")
    args = ["submit_mission", "--requester", "pm", "--title", "Big", "--request", "R", "--budget", "75"]
    with pytest.raises(CommandError, match=r"--budget 75.00 is above \$50: add --confirm-budget if you mean it."):
        call_command(*args, stdout=io.StringIO())
    assert not Mission.objects.exists()
    call_command(*args, "--confirm-budget", stdout=io.StringIO())
    assert Mission.objects.get().budget_usd == Decimal("75.00")
