"""Default answers of the plan_review and specialist roles, and the richer plan_draft, over HTTP."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from agents.schemas import PlanDraft, PlanReview, SpecialistDesign
from agents.sim.server import SimServer

from .support import PLAN_DRAFT_SCHEMA, PLAN_REVIEW_SCHEMA, SPECIALIST_SCHEMA, calls, user

CODE_TOOLS = {"list_files", "read_file", "search_code", "edit_file", "write_file", "run_tests", "commit"}


def answer(client: openai.OpenAI, text: str, response_format: dict[str, Any], system: str = "") -> dict[str, Any]:
    messages = ([{"role": "system", "content": system}] if system else []) + user(text)
    completion = client.chat.completions.create(model="sim-1", messages=messages, response_format=response_format)
    return json.loads(completion.choices[0].message.content)


def draft(client: openai.OpenAI, text: str) -> PlanDraft:
    """The default plan, validated by the engine's own schema."""
    return PlanDraft.model_validate(answer(client, text, PLAN_DRAFT_SCHEMA))


# --------------------------------------------------------------------------- plan_review


def test_plan_review_approves_with_no_findings(sim: SimServer, client: openai.OpenAI) -> None:
    review = answer(client, "Mission: Shop\nReview the plan.", PLAN_REVIEW_SCHEMA)
    assert review == {"verdict": "approve", "findings": []}
    PlanReview.model_validate(review)
    assert calls(sim)[-1]["role"] == "plan_review"


def test_plan_review_in_json_object_mode_wins_over_a_quoted_plan_draft(sim: SimServer, client: openai.OpenAI) -> None:
    text = "Here is the PlanDraft to check: {...}\nAnswer with only a JSON object matching the schema PlanReview."
    assert answer(client, text, {"type": "json_object"}) == {"verdict": "approve", "findings": []}
    assert calls(sim)[-1]["role"] == "plan_review"


# --------------------------------------------------------------------------- specialist


def test_specialist_design_for_accessibility(sim: SimServer, client: openai.OpenAI) -> None:
    brief = "Mission: Shop\nStep: a11y — Audit the forms\nRole needed: accessibility\nDesign the agent."
    design = answer(client, brief, SPECIALIST_SCHEMA)
    SpecialistDesign.model_validate(design)
    assert design["name"] == "accessibility-specialist"
    assert design["title"] == "Accessibility Specialist"
    assert design["role"] == "accessibility"
    assert design["tools"] and set(design["tools"]) <= CODE_TOOLS
    prompt = design["system_prompt"]
    assert "accessibility" in prompt.lower()
    assert all(word in prompt for word in ("only through your tools", "tests", "run_tests", "commit"))
    assert calls(sim)[-1]["role"] == "specialist"


@pytest.mark.parametrize(
    ("line", "name", "title", "role"),
    [
        ("Role needed: data_science", "data-science-specialist", "Data Science Specialist", "data_science"),
        ("Role needed:  Site Ops ", "site-ops-specialist", "Site Ops Specialist", "site_ops"),
        ("Role needed: qa_specialist", "qa-specialist", "Qa Specialist", "qa_specialist"),
        ("Role needed: 3d printing", "d-printing-specialist", "3D Printing Specialist", "3d_printing"),
        ("no role line", "specialist", "Specialist", "specialist"),
    ],
)
def test_specialist_names_follow_the_role(client: openai.OpenAI, line: str, name: str, title: str, role: str) -> None:
    design = answer(client, f"Mission: M\n{line}", {"type": "json_object"}, system="Reply as SpecialistDesign.")
    assert (design["name"], design["title"], design["role"]) == (name, title, role)
    SpecialistDesign.model_validate(design)


def test_specialist_design_stays_valid_for_a_very_long_role(client: openai.OpenAI) -> None:
    design = answer(client, "Role needed: " + "very long " * 20, SPECIALIST_SCHEMA)
    SpecialistDesign.model_validate(design)
    assert design["name"].startswith("very-long-") and design["name"].endswith("-specialist")
    assert len(design["role"]) <= 60


# --------------------------------------------------------------------------- plan_draft


@pytest.mark.parametrize(
    ("template", "role"),
    [
        ("feature_implementation", "developer"),
        ("api_endpoint", "developer"),
        ("bug_fix", "developer"),
        ("code_review", "developer"),
        ("test_suite", "developer"),
        ("security_audit", "security"),
        ("documentation", "docs"),
        ("database_migration", "data"),
        ("something_new", "developer"),
    ],
)
def test_plan_draft_main_role_follows_the_template(client: openai.OpenAI, template: str, role: str) -> None:
    plan = draft(client, f"Mission: Shop\nTemplate: {template}\nDraft the plan.")
    assert [s.key for s in plan.steps] == ["core", "api"]
    assert [s.role for s in plan.steps] == [role, "developer"]
    assert plan.steps[1].depends_on == ["core"]


def test_plan_draft_without_template_is_developer(client: openai.OpenAI) -> None:
    plan = draft(client, "Mission: Shop")
    assert [s.role for s in plan.steps] == ["developer", "developer"]


def test_plan_draft_merges_amendments(client: openai.OpenAI) -> None:
    brief = (
        "Mission: Payments\nTemplate: security_audit\n\nAmendments to merge:\n"
        "- Cap spend at $5\n- Add an audit log\n\nReviewers said:\n- not an amendment"
    )
    plain = draft(client, "Mission: Payments")
    plan = draft(client, brief)
    core, api = plan.steps
    assert core.role == "security"
    assert core.acceptance == [*plain.steps[0].acceptance, "Cap spend at $5", "Add an audit log"]
    assert api.acceptance == plain.steps[1].acceptance
    assert plan.summary == plain.summary + " Revised for: Cap spend at $5; Add an audit log."


def test_plan_draft_caps_merged_amendments_at_the_schema_limit(client: openai.OpenAI) -> None:
    items = [f"Amendment number {i}" for i in range(30)]
    plan = draft(client, "Mission: Many\nAmendments to merge:\n" + "\n".join(f"- {a}" for a in items))
    acceptance = plan.steps[0].acceptance
    assert len(acceptance) == 20
    assert acceptance[2:] == items[:18]
    assert plan.summary.endswith(f"; {items[-1]}.")
