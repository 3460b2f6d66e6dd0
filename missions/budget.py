"""What a budget gate shows and proposes: the spend per agent and per step, and the CFO's proposed increase.

1. ``spend_breakdown`` reads the ledger (one aggregate query per table).
2. ``budget_proposal`` asks the CFO agent for a structured ``BudgetProposal`` from that breakdown. Its call is
   metered to the mission like any other, so it is made only if its reservation fits what is left of the budget.
3. When the CFO cannot be asked (no CFO, the call does not fit, the model is down) or answers outside the bounds,
   the proposal is computed from the breakdown instead, and the gate says why.
"""

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

from django.conf import settings

from agents.errors import AgentRunError
from agents.schemas import BudgetProposal
from agents.selectors import c_suite_agents, mission_spend_by_agent, mission_spend_by_step
from missions.consult import ask_agent, transcript_record
from missions.inputs import MAX_BUDGET_USD
from missions.models import Mission, Step
from missions.selectors import current_plan

CENT = Decimal("0.01")
MIN_FALLBACK_USD = Decimal("1.00")
# An increase is at most ten times the budget (but $10 is always allowed, so a tiny budget can still finish).
CAP_TIMES_BUDGET = 10
CAP_FLOOR_USD = Decimal("10.00")
CFO_MAX_OUTPUT_TOKENS = 300  # a two-field answer: a small reservation, so it fits where a step's call did not
PURPOSE = "budget_proposal"


@dataclass
class Proposal:
    increase_usd: Decimal
    rationale: str
    by_cfo: bool
    cfo_unavailable: str = ""  # why the CFO could not be asked, or what was wrong with its answer
    spend_by_agent: list[dict] = field(default_factory=list)
    spend_by_step: list[dict] = field(default_factory=list)

    def gate_data(self, mission: Mission) -> dict:
        """JSON for ``ApprovalGate.data``: the approval adds ``increase_usd``; the rest is what the gate shows."""
        new_budget = mission.budget_usd + self.increase_usd
        return {
            "increase_usd": str(self.increase_usd),
            "new_budget_usd": str(new_budget),
            "proposal": {
                "by": "cfo" if self.by_cfo else "fallback",
                "rationale": self.rationale,
                "cfo_unavailable": self.cfo_unavailable,
            },
            "spend_by_agent": [_jsonable(row) for row in self.spend_by_agent],
            "spend_by_step": [_jsonable(row) for row in self.spend_by_step],
            # Raising a budget past it is confirmed by the reviewer's approval itself; the gate says so.
            "above_confirm_threshold": new_budget > settings.BUDGET_CONFIRM_ABOVE_USD,
            "confirm_above_usd": str(settings.BUDGET_CONFIRM_ABOVE_USD),
        }


def _jsonable(row: dict) -> dict:
    return {**row, "cost_usd": str(row["cost_usd"] or Decimal(0))}


def increase_cap(mission: Mission) -> Decimal:
    """The largest increase a gate may propose: ten times the budget or $10, within the largest budget there is."""
    cap = min(max(mission.budget_usd * CAP_TIMES_BUDGET, CAP_FLOOR_USD), MAX_BUDGET_USD - mission.budget_usd)
    return max(cap, CENT).quantize(CENT)


def spend_breakdown(mission: Mission) -> tuple[list[dict], list[dict]]:
    return mission_spend_by_agent(mission), mission_spend_by_step(mission)


def fallback_increase(mission: Mission, by_step: list[dict]) -> tuple[Decimal, str]:
    """Average cost of a finished step times the steps left, at least $1; without either, the budget again."""
    plan = current_plan(mission)
    steps = list(plan.steps.values_list("id", "status")) if plan else []
    finished = {pk for pk, status in steps if status == Step.Status.SUCCEEDED}
    left = sum(1 for _, status in steps if status in (Step.Status.PENDING, Step.Status.RUNNING))
    spent_on_finished = sum((row["cost_usd"] for row in by_step if row["step_id"] in finished), Decimal(0))
    if finished and left:
        average = spent_on_finished / len(finished)
        amount = average * left
        why = f"{len(finished)} finished step(s) cost ${average:.4f} each on average; {left} step(s) are left."
    else:
        amount = mission.budget_usd
        why = (
            "No step has finished yet to estimate from: the proposal doubles the budget."
            if not finished
            else "No step is left to run (the rest of the work is not in steps): the proposal doubles the budget."
        )
    amount = min(max(amount.quantize(CENT, rounding=ROUND_CEILING), MIN_FALLBACK_USD), increase_cap(mission))
    return amount, why


def _prompt(mission: Mission, reason: str, by_agent: list[dict], by_step: list[dict], cap: Decimal) -> str:
    agents = "\n".join(f"- {row['agent']}: ${row['cost_usd']} in {row['calls']} call(s)" for row in by_agent)
    steps = "\n".join(
        f"- {row['step'] or '(outside steps)'} {row['title']} [{row['status'] or 'n/a'}]: "
        f"${row['cost_usd']} in {row['calls']} call(s)"
        for row in by_step
    )
    return (
        f"Mission: {mission.title}\n"
        f"Budget: ${mission.budget_usd}\n"
        f"Spent: ${mission.spent_usd:.6f}\n"
        f"Why it stopped: {reason}\n\n"
        f"Spend per agent:\n{agents or '- none yet'}\n\n"
        f"Spend per step:\n{steps or '- none yet'}\n\n"
        f"As the CFO, propose how much to add to the budget so the mission can finish (at least what the call "
        f"that did not fit needs), in US dollars with two decimals, more than $0 and at most ${cap}, and explain "
        f"it in two or three sentences from the spend above. Answer with the schema BudgetProposal."
    )


def budget_proposal(*, mission: Mission, reason: str) -> Proposal:
    """The CFO's increase from the ledger's breakdown, or a computed one with the reason the CFO was not heard."""
    by_agent, by_step = spend_breakdown(mission)
    cap = increase_cap(mission)
    cfo = next((agent for agent in c_suite_agents() if agent.role == "cfo"), None)
    answer, problem = None, ""
    if cfo is None:
        problem = "there is no active CFO agent"
    elif (cfo.model_profile or mission.model_profile) is None:
        problem = "the CFO has no model profile"
    else:
        try:
            answer = ask_agent(
                mission=mission,
                agent=cfo,
                purpose=PURPOSE,
                prompt=_prompt(mission, reason, by_agent, by_step, cap),
                output_type=BudgetProposal,
                cycle=None,
                max_output_tokens=CFO_MAX_OUTPUT_TOKENS,
            )
        except AgentRunError as error:
            problem = str(error)
        else:
            if answer.increase_usd > cap:
                problem = f"the CFO proposed ${answer.increase_usd}, above the cap of ${cap}"
                answer = None
    if answer is not None:
        transcript_record(
            mission=mission,
            agent=cfo,
            content=f"Proposed budget increase: ${answer.increase_usd}. {answer.rationale}",
            data={"budget_proposal": True, "increase_usd": str(answer.increase_usd)},
        )
        proposal = Proposal(increase_usd=answer.increase_usd.quantize(CENT), rationale=answer.rationale, by_cfo=True)
    else:
        amount, why = fallback_increase(mission, by_step)
        problem = problem.strip()[:500].rstrip(".") + "."
        proposal = Proposal(increase_usd=amount, rationale=why, by_cfo=False, cfo_unavailable=problem)
    # Read again after the CFO's own calls (billed even when the answer was unusable): the gate's tables add up
    # to what the ledger holds.
    proposal.spend_by_agent, proposal.spend_by_step = spend_breakdown(mission)
    return proposal
