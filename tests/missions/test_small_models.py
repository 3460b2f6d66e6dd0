"""Small local models: a server that refuses a capability downgrades the profile once instead of failing the mission,
and harmless deviations in the model's answers are accepted."""

import json
from decimal import Decimal

import pytest

from agents.models import LLMCall, ModelProfile
from agents.sim.server import LLAMA_CPP_CAPABILITIES
from missions.models import DecisionCycle, Event, Mission, Step
from missions.services import mission_submit
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _submit(pm, **kwargs) -> Mission:
    return mission_submit(
        requester=pm,
        title="Small model",
        request="Build it",
        budget_usd=Decimal("3.00"),
        require_deploy_approval=False,
        **kwargs,
    )


def _settled(mission: Mission) -> str:
    def check():
        mission.refresh_from_db()
        return mission.status if (mission.is_finished or mission.is_waiting) else None

    return wait_for(check, timeout=90, message="the mission to settle")


@pytest.mark.parametrize("mode", ["broadcast", "sequential"])
def test_it_completes_against_a_llama_cpp_like_server_by_downgrading_the_profile_once(
    company, pm, sim, celery_worker, mode
):
    """The first json_schema request is refused with a 400; the profile falls back to JSON mode (recorded once, as an
    event and on the profile), the same request is sent again, and every later call (team votes too) uses JSON mode.
    The refused call is an error row at $0; the ledger still adds up to what the mission spent."""
    sim.set_capabilities(**LLAMA_CPP_CAPABILITIES)
    mission = _submit(pm, conversation_mode=mode)
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason

    profile = ModelProfile.objects.get(pk=company.pk)
    assert (profile.supports_json_schema, profile.supports_json_mode) == (False, True)
    assert profile.probe_result["capabilities"]["json_schema"]["ok"] is False
    assert "must be one of" in profile.probe_result["capabilities"]["json_schema"]["detail"]
    downgrades = list(mission.events.filter(data__downgrade="json_schema"))
    assert len(downgrades) == 1 and downgrades[0].kind == Event.Kind.ERROR
    assert downgrades[0].message.startswith("Model profile default refused JSON schema (response_format json_schema)")

    statuses = [c["status"] for c in sim.calls()]
    assert statuses[0] == 400 and statuses.count(400) == 1  # refused once, never asked that way again
    roles = [c["role"] for c in sim.calls()]
    assert roles[:2] == ["plan_draft", "plan_draft"]
    refused = LLMCall.objects.get(mission=mission, status=LLMCall.Status.ERROR)
    assert refused.purpose == "plan_draft" and refused.cost_usd == 0 and "json_schema" in refused.error
    ledger = list(LLMCall.objects.filter(mission=mission))
    assert len(ledger) == len(statuses)
    assert mission.spent_usd == sum(c.cost_usd for c in ledger) > 0 and mission.reserved_usd == 0


def test_it_fails_with_a_clear_reason_when_the_server_refuses_tools(company, pm, sim, celery_worker, settings):
    """Execution agents need tools: a server refusing them fails the step saying what to do; the profile records it."""
    settings.STEP_MAX_ATTEMPTS = 1
    sim.set_capabilities(tools=False)
    mission = _submit(pm)
    assert _settled(mission) == Mission.Status.FAILED
    assert "refuses tool calls" in mission.failure_reason and "--jinja" in mission.failure_reason
    assert ModelProfile.objects.get(pk=company.pk).supports_tools is False
    assert mission.events.filter(data__downgrade="tools").count() == 1


PLAN_WITH_DEVIATIONS = {
    "summary": "Two steps, written the way a small model writes them.",
    "steps": [
        {
            "key": "Step 1",
            "title": "Core module",
            "kind": " CodeGen ",
            "role": "Developer",
            "instructions": "Write the module with tests.",
            "depends_on": [],
            "acceptance": ["tests pass"],
            "estimated_tokens": 1000,
        },
        {
            "key": "Step-2",
            "title": "More of it",
            "kind": "codegen",
            "role": "developer",
            "instructions": "Extend the module with tests.",
            "depends_on": ["Step 1", "setup"],
            "acceptance": ["tests pass"],
            "estimated_tokens": 1000,
        },
    ],
}


def test_it_accepts_a_plan_with_odd_keys_case_and_an_unknown_dependency(company, pm, sim, celery_worker):
    """The plan comes in a Markdown code fence; keys are normalised, the kind is folded, and the dependency on no step
    is dropped with a note in the validation cycle; votes with stray case and spaces count. No repair round."""
    sim.script(
        {"role": "plan_draft", "times": 1, "reply": {"raw": f"```json\n{json.dumps(PLAN_WITH_DEVIATIONS)}\n```"}},
        {
            "role": "plan_vote",
            "times": 4,
            "reply": {"json": {"stance": " Approve ", "rationale": "Fine.", "amendments": []}},
        },
        {"role": "plan_review", "times": 1, "reply": {"json": {"verdict": "APPROVE", "findings": []}}},
    )
    mission = _submit(pm)
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason
    steps = {s.key: s for s in Step.objects.filter(plan__mission=mission)}
    assert set(steps) == {"step_1", "step_2"}
    assert steps["step_1"].kind == Step.Kind.CODEGEN and steps["step_2"].depends_on == ["step_1"]
    validation = DecisionCycle.objects.get(mission=mission, kind=DecisionCycle.Kind.VALIDATION)
    assert validation.outcome == DecisionCycle.Outcome.APPROVED
    assert "Noted: Step step_2 depended on setup, which is no other step of the plan" in validation.summary
    assert [c["role"] for c in sim.calls()].count("plan_draft") == 1  # accepted as it was, no repair request


ONE_STEP_PLAN = {
    "summary": "One tested step.",
    "steps": [
        {
            "key": "core",
            "title": "Core module",
            "kind": "codegen",
            "role": "developer",
            "instructions": "Write the module with tests.",
            "depends_on": [],
            "acceptance": ["tests pass"],
            "estimated_tokens": 1000,
        }
    ],
}


def test_it_falls_back_to_the_schema_in_the_prompt_when_json_mode_is_refused_too(company, pm, sim, celery_worker):
    """A server without any response_format: two downgrades (schema, then JSON mode), each once, and the mission
    completes with the schema in the prompt only. (The sim answers those requests as chat, so they are scripted.)"""
    sim.set_capabilities(json_schema=False, json_object=False)
    vote = {"stance": "approve", "rationale": "Fine.", "amendments": []}
    sim.script(
        {"role": "chat", "match": "matching the schema PlanDraft", "times": 1, "reply": {"json": ONE_STEP_PLAN}},
        {"role": "chat", "match": "matching the schema PlanVote", "times": 4, "reply": {"json": vote}},
        {
            "role": "chat",
            "match": "matching the schema PlanReview",
            "times": 1,
            "reply": {"json": {"verdict": "approve", "findings": []}},
        },
        {  # the code and the security reviewer, on the one step
            "role": "chat",
            "match": "matching the schema StepReview",
            "times": 2,
            "reply": {"json": {"verdict": "approve", "score": 4, "summary": "Fine.", "comments": []}},
        },
    )
    mission = _submit(pm)
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason
    profile = ModelProfile.objects.get(pk=company.pk)
    assert profile.structured_mode == "prompt"
    assert sorted(e.data["downgrade"] for e in mission.events.filter(data__has_key="downgrade")) == [
        "json_mode",
        "json_schema",
    ]
    assert [c["status"] for c in sim.calls()][:3] == [400, 400, 200]
    assert not sim.state.script_rules()  # every structured answer came from the prompt-only requests
