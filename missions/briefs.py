"""Compact briefs: each agent gets the mission, its own task and its inputs, never the whole history."""

import json
import re

from missions.models import Mission, Step


def mission_header(mission: Mission, *, budget: bool = True) -> str:
    lines = [f"Mission: {mission.title}", f"Priority: {mission.get_priority_display()}", f"Request: {mission.request}"]
    if mission.acceptance_criteria:
        lines.append(f"Acceptance criteria: {mission.acceptance_criteria}")
    if budget:  # step briefs leave it out: a re-run brief must be identical, so answers replay from the ledger
        lines.append(f"Budget: ${mission.budget_usd}")
    return "\n".join(lines)


def plan_request_brief(
    mission: Mission,
    roles: list[str],
    feedback: list[str] = (),
    amendments: list[str] = (),
    previous=None,
    knowledge: str = "",
    repo_map: str = "",
) -> str:
    text = mission_header(mission) + "\n"
    if mission.template:
        text += f"Template: {mission.template.slug}\n"
    text += (
        "\nDraft the plan as PlanDraft: a short summary and the steps as a dependency graph "
        "(each step's depends_on lists earlier step keys). Code steps write code with pytest tests. "
        "A step may use an earlier step's output in its instructions as ${step_key.summary}, "
        "${step_key.commit} or ${step_key.files}. "
        f"Roles available to staff (others get a specialist): {', '.join(roles) or 'developer'}."
    )
    if repo_map:  # a mission on a project: plan against the code that is there
        text += f"\n\nThe steps change this existing repository (extend its modules, keep its tests green):\n{repo_map}"
    if knowledge:
        text += f"\n\n{knowledge}"
    if feedback:
        text += "\n\nEarlier plans were sent back. Address these findings and comments:\n"
        text += "\n".join(f"- {c}" for c in feedback)
    if previous is not None:
        text += f"\n\nYour previous draft (JSON):\n{previous.model_dump_json()}"
    if amendments:
        text += "\n\nAmendments to merge:\n" + "\n".join(f"- {a}" for a in amendments)
    return text


def vote_brief(mission: Mission, draft_json: str, round_no: int = 1) -> str:
    return (
        f"{mission_header(mission)}\n\nRound {round_no}. Draft plan (JSON):\n{draft_json}\n\n"
        "Vote as PlanVote from your office's point of view: approve, object or abstain, "
        "with your rationale and any amendments you propose."
    )


def review_brief(mission: Mission, draft_json: str, findings: list[str]) -> str:
    text = f"{mission_header(mission)}\n\nPlan to validate (JSON):\n{draft_json}\n\n"
    if findings:
        text += "Automatic checks already found:\n" + "\n".join(f"- {f}" for f in findings) + "\n\n"
    return text + (
        "Answer as PlanReview: approve, or reject with findings (gaps such as untested code, "
        "missing steps or risks the plan ignores)."
    )


def specialist_brief(mission: Mission, role: str, step: Step, tools: tuple[str, ...]) -> str:
    return (
        f"{mission_header(mission)}\n\nRole needed: {role}\n"
        f"For step: {step.key} — {step.title}: {step.instructions}\n\n"
        "Design this specialist as SpecialistDesign: a short lowercase name, a title, the role, "
        f"a system prompt, and the tools it needs, chosen only from: {', '.join(tools)}."
    )


REFERENCE_RE = re.compile(r"\$\{([a-z][a-z0-9_]*)\.([a-z_]+)\}")
REFERENCE_FIELDS = ("summary", "commit", "files")


def resolve_references(text: str, outputs: dict[str, dict]) -> str:
    """Replace ${step.field} with that upstream step's output (validation made sure it is upstream)."""

    def value(match: re.Match) -> str:
        output = outputs.get(match.group(1))
        if output is None or match.group(2) not in REFERENCE_FIELDS:
            return match.group(0)
        found = output.get(match.group(2), "")
        return ", ".join(found) if isinstance(found, list) else str(found)

    return REFERENCE_RE.sub(value, text)


def step_brief(
    step: Step,
    dependencies: list[Step],
    previous_error: str = "",
    knowledge: str = "",
    repo_map: str = "",
    revision: dict | None = None,
) -> str:
    mission = step.plan.mission
    outputs = {dep.key: dep.output for dep in dependencies}
    lines = [
        mission_header(mission, budget=False),
        f"Step: {step.key} — {step.title}",
        f"Kind: {step.kind}",
        f"Instructions: {resolve_references(step.instructions, outputs)}",
    ]
    if step.acceptance:
        lines.append("Acceptance checks: " + "; ".join(step.acceptance))
    if dependencies:
        lines.append("Outputs of the steps this one depends on:")
        for dep in dependencies:
            compact = {field: dep.output.get(field) for field in REFERENCE_FIELDS if dep.output.get(field)}
            lines.append(f"- {dep.key}: {json.dumps(compact)[:1500]}")  # never the diff: briefs stay compact
    if repo_map:
        lines.append(repo_map)
    if knowledge:
        lines.append(knowledge)
    if previous_error:
        lines.append(f"A previous attempt at this step failed: {previous_error[:1500]}")
    if revision:
        lines.append(revision_section(revision))
    if repo_map:
        lines.append(
            "Work in this existing repository with your tools: find the code with search_code, read the "
            "lines you need with read_file, change existing files with edit_file (exact text, unique), add "
            "pytest tests, call run_tests until the whole suite passes, then commit. "
            "Finish with a short summary of what you did."
        )
    else:
        lines.append(
            "Work in the repository with your tools: write the code and its pytest tests, "
            "call run_tests until they pass, then commit. Finish with a short summary of what you did."
        )
    return "\n".join(lines)


REVIEW_DIFF_MAX = 30_000  # characters of the diff a reviewer reads; the rest is cut with a note


def revision_section(revision: dict) -> str:
    """What the reviewers asked for, as the step's next attempt reads it (the comments are model or human text)."""
    by = revision.get("by") or "The reviewers"
    summary = str(revision.get("summary", ""))[:1500]
    if revision.get("rejected"):
        return (
            f"{by} rejected this step's earlier work at its review gate: {summary}\n"
            "That work is still in the repository: rework it so that the objection no longer holds, run the tests, "
            "commit."
        )
    lines = [f"Review round {revision.get('round', 1)} asked for changes ({by}): {summary}"]
    for comment in (revision.get("comments") or [])[:30]:
        lines.append(f"- {comment.get('path')}:{comment.get('line')}: {str(comment.get('body', ''))[:500]}")
    lines.append("The work so far is in the repository: change it to address these comments, run the tests, commit.")
    return "\n".join(lines)


def step_review_brief(step: Step, *, diff: str, tests: str, round_no: int, max_rounds: int) -> str:
    """What a reviewer agent reads: the mission, the step's task, its test result and its diff (bounded)."""
    shown = diff[:REVIEW_DIFF_MAX]
    if len(diff) > len(shown):
        shown += f"\n[diff cut: showing {REVIEW_DIFF_MAX:,} of {len(diff):,} characters]\n"
    lines = [
        mission_header(step.plan.mission, budget=False),
        f"Step: {step.key} — {step.title}",
        f"Kind: {step.kind}",
        f"Instructions: {step.instructions}",
    ]
    if step.acceptance:
        lines.append("Acceptance checks: " + "; ".join(step.acceptance))
    lines += [
        f"Review round: {round_no} (the author may be sent back {max_rounds} times in all)",
        f"Tests: {tests}",
        f"Diff of the step:\n{shown}",
        "Review the change as StepReview: verdict approve, request_changes (the author can fix it) or reject "
        "(it must not ship); a score from 1 to 5; a short summary; and comments, each anchored to a file path "
        "and a line number of the new version as the diff shows it (path, line, body).",
    ]
    return "\n".join(lines)
