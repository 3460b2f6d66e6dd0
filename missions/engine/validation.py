"""Validation: deterministic checks of the plan, then the validator agent's review."""

from decimal import Decimal

from agents.schemas import PlanDraft, PlanReview
from agents.selectors import agent_for_role
from missions import briefs
from missions.consult import ask_agent, cycle_close, cycle_open
from missions.models import DecisionCycle, Mission


def plan_findings(mission: Mission, draft: PlanDraft) -> list[str]:
    """What is wrong with the plan, by rule; empty when it is sound.

    1. The dependency graph names only earlier steps (so it is acyclic) — PlanDraft guarantees it; checked again.
    2. Something writes code: a mission without a code step produces nothing to test or deploy.
    3. A deploy step comes after every code step (code is generated, reviewed and tested first).
    4. Every ${step.field} reference names an upstream step and a known field.
    5. The estimated tokens, priced as output, fit the remaining budget.
    """
    findings: list[str] = []
    keys = [s.key for s in draft.steps]
    ancestors: dict[str, set[str]] = {}
    for step in draft.steps:
        unknown = [d for d in step.depends_on if d not in ancestors]
        if unknown:
            findings.append(f"Step {step.key} depends on {', '.join(unknown)}, which do not come before it.")
        ancestors[step.key] = set(step.depends_on).union(*(ancestors.get(d, set()) for d in step.depends_on))
    code_steps = {s.key for s in draft.steps if s.kind == "codegen"}
    if not code_steps:
        findings.append("No step writes code: add a codegen step with tests.")
    for step in draft.steps:
        if step.kind == "deploy":
            untested = sorted(code_steps - ancestors[step.key])
            if untested:
                findings.append(f"Deploy step {step.key} does not wait for code steps {', '.join(untested)}.")
        for ref_step, field in briefs.REFERENCE_RE.findall(step.instructions):
            if ref_step not in keys:
                findings.append(f"Step {step.key} refers to ${{{ref_step}.{field}}}, but there is no step {ref_step}.")
            elif ref_step not in ancestors[step.key]:
                findings.append(f"Step {step.key} refers to ${{{ref_step}.{field}}}, which is not upstream of it.")
            elif field not in briefs.REFERENCE_FIELDS:
                findings.append(
                    f"Step {step.key} refers to unknown field {field!r} (use {', '.join(briefs.REFERENCE_FIELDS)})."
                )
    profile = mission.model_profile
    mission.refresh_from_db(fields=["budget_usd", "spent_usd", "reserved_usd"])  # deliberation just spent some
    if profile is not None:
        tokens = sum(s.estimated_tokens for s in draft.steps)
        estimate = profile.cost_usd(prompt_tokens=0, completion_tokens=tokens)
        if estimate > max(mission.budget_remaining_usd, Decimal(0)):
            findings.append(
                f"The plan's estimated {tokens} tokens cost about ${estimate:.4f}, "
                f"more than the ${mission.budget_remaining_usd:.4f} left."
            )
    return findings


def validate_plan(mission: Mission, draft: PlanDraft) -> list[str]:
    """Run the checks and the validator agent in a validation cycle; return every finding.

    What was changed to accept the draft (e.g. a dependency on no step, dropped) is noted in the
    cycle's summary but sends nothing back: the plan as stored is sound without it.
    """
    cycle = cycle_open(mission, DecisionCycle.Kind.VALIDATION, "Validating the plan.")
    findings = plan_findings(mission, draft)
    validator = agent_for_role("validator", mission=mission)
    if validator is not None:
        review = ask_agent(
            mission=mission,
            agent=validator,
            purpose="plan_review",
            prompt=briefs.review_brief(mission, draft.model_dump_json(), findings),
            output_type=PlanReview,
            cycle=cycle,
        )
        if review.verdict == "reject":
            findings += review.findings or ["The validator rejected the plan without saying why."]
    noted = " Noted: " + " ".join(draft.notes) if draft.notes else ""
    if findings:
        cycle_close(cycle, DecisionCycle.Outcome.REJECTED, "Findings: " + " ".join(findings) + noted)
    else:
        summary = "The plan passed every check and the validator's review."
        cycle_close(cycle, DecisionCycle.Outcome.APPROVED, summary + noted)
    return findings
