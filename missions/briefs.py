"""Compact briefs: each agent gets the mission, its own task and its inputs, never the whole history."""

import json

from missions.models import Mission, Step


def mission_header(mission: Mission) -> str:
    lines = [f"Mission: {mission.title}", f"Priority: {mission.get_priority_display()}", f"Request: {mission.request}"]
    if mission.acceptance_criteria:
        lines.append(f"Acceptance criteria: {mission.acceptance_criteria}")
    lines.append(f"Budget: ${mission.budget_usd} (spent so far ${mission.spent_usd:.4f})")
    return "\n".join(lines)


def plan_request_brief(mission: Mission, roles: list[str], feedback: list[str] = ()) -> str:
    text = (
        f"{mission_header(mission)}\n\n"
        "Draft the plan as PlanDraft: a short summary and the steps as a dependency graph "
        "(each step's depends_on lists earlier step keys). Code steps write code with pytest tests. "
        f"Roles available to staff: {', '.join(roles) or 'developer'}."
    )
    if feedback:
        text += "\n\nReviewers sent earlier plans back. Address their comments:\n" + "\n".join(
            f"- {c}" for c in feedback
        )
    return text


def vote_brief(mission: Mission, draft_json: str) -> str:
    return (
        f"{mission_header(mission)}\n\nDraft plan (JSON):\n{draft_json}\n\n"
        "Vote as PlanVote from your office's point of view: approve, object or abstain, "
        "with your rationale and any amendments you propose."
    )


def step_brief(step: Step, dependencies: list[Step]) -> str:
    mission = step.plan.mission
    lines = [
        mission_header(mission),
        f"Step: {step.key} — {step.title}",
        f"Kind: {step.kind}",
        f"Instructions: {step.instructions}",
    ]
    if step.acceptance:
        lines.append("Acceptance checks: " + "; ".join(step.acceptance))
    if dependencies:
        lines.append("Outputs of the steps this one depends on:")
        for dep in dependencies:
            lines.append(f"- {dep.key}: {json.dumps(dep.output)[:1500]}")
    lines.append(
        "Work in the repository with your tools: write the code and its pytest tests, "
        "call run_tests until they pass, then commit. Finish with a short summary of what you did."
    )
    return "\n".join(lines)
