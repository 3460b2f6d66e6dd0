"""A plan keeps its forecast as it stood when it was approved, by a reviewer at its gate or automatically."""

from decimal import Decimal

from missions.engine.planning import mission_plan
from missions.models import Mission, Plan, Step
from missions.services import mission_submit
from reviews.gates import gate_decide, gate_open
from reviews.models import ApprovalGate


def _awaiting_plan_approval(pm, profile) -> Mission:
    mission = Mission.objects.create(
        requester=pm, title="Forecast", request="r", budget_usd=Decimal("5"), model_profile=profile,
        status=Mission.Status.AWAITING_PLAN_APPROVAL,
    )  # fmt: skip
    plan = Plan.objects.create(mission=mission, version=1)
    for key, tokens in (("api", 1500), ("docs", 500)):
        Step.objects.create(plan=plan, key=key, title=key, role="developer", instructions="i", estimated_tokens=tokens)
    return mission


def test_it_keeps_the_forecast_when_a_reviewer_approves_the_plan(company, pm, reviewer):
    """2,000 estimated tokens priced as output at the mission's model: what validation checked against the budget;
    a price change afterwards leaves the record alone."""
    profile = company
    mission = _awaiting_plan_approval(pm, profile)
    gate = gate_open(mission=mission, kind=ApprovalGate.Kind.PLAN, question="Approve?")
    gate_decide(gate=gate, by=reviewer, decision="approved")
    plan = mission.plans.get()
    expected = (2000 * profile.price_output_per_mtok / 1_000_000).quantize(Decimal("0.000001"))
    assert plan.approved_at is not None
    assert (plan.approved_estimated_tokens, plan.approved_estimated_cost_usd) == (2000, expected)
    assert plan.approved_model_name == profile.resolved_model_name()
    profile.price_output_per_mtok *= 10
    profile.save()
    plan.refresh_from_db()
    assert plan.approved_estimated_cost_usd == expected


def test_it_keeps_no_forecast_for_a_plan_sent_back(company, pm, reviewer):
    mission = _awaiting_plan_approval(pm, company)
    gate = gate_open(mission=mission, kind=ApprovalGate.Kind.PLAN, question="Approve?")
    gate_decide(gate=gate, by=reviewer, decision="revision_requested", comment="Smaller steps.")
    assert mission.plans.get().approved_at is None


def test_it_keeps_the_forecast_when_the_plan_needs_no_approval(company, pm, sim):
    """Planning that goes straight to staffing records the adopted plan's forecast on the way."""
    mission = mission_submit(
        requester=pm, title="Auto", request="Build it", budget_usd=Decimal("3.00"), require_deploy_approval=False
    )
    mission_plan(mission)
    plan = mission.plans.order_by("-version").first()
    tokens = sum(plan.steps.values_list("estimated_tokens", flat=True))
    assert tokens > 0 and plan.approved_estimated_tokens == tokens
    assert plan.approved_estimated_cost_usd == company.cost_usd(prompt_tokens=0, completion_tokens=tokens)
