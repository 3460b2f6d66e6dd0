"""The deep engine, end to end on real parts, with the simulated model scripted per test."""

from decimal import Decimal

import pytest

from agents.models import AgentSpec
from agents.runtime.tools import TOOL_NAMES
from missions.models import DecisionCycle, Event, Mission, Step, Vote
from missions.services import mission_submit
from reviews.gates import gate_decide
from reviews.models import ApprovalGate
from tests.conftest import wait_for
from tests.sandbox_support import require_bwrap

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

OBJECTION = {
    "stance": "object",
    "rationale": "The plan has no spending cap.",
    "amendments": ["Cap model spend at one dollar"],
}


def _submit(pm, title="Orchestrated", **kwargs) -> Mission:
    kwargs.setdefault("require_deploy_approval", False)
    return mission_submit(requester=pm, title=title, request="Build it", budget_usd=Decimal("3.00"), **kwargs)


def _settled(mission: Mission) -> str:
    """Wait until the mission is finished or waiting on a person; return its status."""

    def check():
        mission.refresh_from_db()
        return mission.status if (mission.is_finished or mission.is_waiting) else None

    return wait_for(check, timeout=90, message=f"mission {mission.title} to settle")


def _plan_with_role(role: str) -> dict:
    return {
        "summary": f"One step for the {role} role.",
        "steps": [
            {
                "key": "core",
                "title": "Accessible widget",
                "kind": "codegen",
                "role": role,
                "instructions": "Write the widget with tests.",
                "depends_on": [],
                "acceptance": ["tests pass"],
                "estimated_tokens": 1000,
            }
        ],
    }


def test_it_merges_objections_as_amendments_until_consensus(company, pm, sim, celery_worker):
    """Under the unanimous rule, the CFO's objection sends the plan into a second round with the amendment merged."""
    sim.script({"role": "plan_vote", "match": "Chief Financial Officer", "times": 1, "reply": {"json": OBJECTION}})
    mission = _submit(pm, consensus_rule="unanimous")
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason

    cycle = DecisionCycle.objects.get(mission=mission, kind=DecisionCycle.Kind.PLANNING)
    assert (cycle.outcome, cycle.rounds) == (DecisionCycle.Outcome.CONSENSUS, 2)
    dissent = Vote.objects.get(cycle=cycle, round=1, stance=Vote.Stance.OBJECT)
    assert dissent.agent.role == "cfo" and dissent.amendments == OBJECTION["amendments"]
    assert Vote.objects.filter(cycle=cycle, round=2, stance=Vote.Stance.APPROVE).count() == 4
    core = Step.objects.get(plan__mission=mission, key="core")
    assert "Cap model spend at one dollar" in core.acceptance
    assert mission.events.filter(message__startswith="Round 1: no consensus").exists()


def test_it_opens_a_deadlock_gate_that_a_reviewer_can_resolve(company, pm, reviewer, sim, celery_worker, settings):
    """An objection that never goes away ends in a deadlock gate; the reviewer adopts the plan and work goes on."""
    settings.DELIBERATION_MAX_ROUNDS = 2
    sim.script({"role": "plan_vote", "match": "Chief Financial Officer", "times": 2, "reply": {"json": OBJECTION}})
    mission = _submit(pm, consensus_rule="unanimous")
    assert _settled(mission) == Mission.Status.DEADLOCKED, mission.failure_reason
    cycle = DecisionCycle.objects.get(mission=mission, kind=DecisionCycle.Kind.PLANNING)
    assert (cycle.outcome, cycle.rounds) == (DecisionCycle.Outcome.DEADLOCK, 2)
    gate = ApprovalGate.objects.get(mission=mission, kind=ApprovalGate.Kind.DEADLOCK)
    assert "deadlocked" in gate.question

    gate_decide(gate=gate, by=reviewer, decision="approved", comment="Adopt it; the cap is handled by the budget.")
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason


def test_it_lets_the_ceo_break_a_tie_when_configured(company, pm, sim, celery_worker, settings):
    settings.DELIBERATION_MAX_ROUNDS = 2
    sim.script({"role": "plan_vote", "match": "Chief Financial Officer", "times": 2, "reply": {"json": OBJECTION}})
    mission = _submit(pm, consensus_rule="unanimous", deadlock_policy="ceo")
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason
    cycle = DecisionCycle.objects.get(mission=mission, kind=DecisionCycle.Kind.PLANNING)
    assert cycle.outcome == DecisionCycle.Outcome.APPROVED and "CEO broke the tie" in cycle.summary
    assert not mission.gates.exists()


def test_it_repairs_an_invalid_plan_and_loops_back_on_validation_findings(company, pm, sim, celery_worker):
    """Garbage from the planner gets one repair request; the validator's findings send the plan back once."""
    sim.script(
        {"role": "plan_draft", "times": 1, "reply": {"raw": "this is not a plan"}},
        {
            "role": "plan_review",
            "times": 1,
            "reply": {"json": {"verdict": "reject", "findings": ["No step handles invalid input."]}},
        },
    )
    mission = _submit(pm)
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason
    roles = [call["role"] for call in sim.calls()]
    assert roles.count("plan_review") == 2
    assert roles[:2] == ["plan_draft", "plan_draft"]  # the invalid answer, then the repaired one
    validations = list(
        DecisionCycle.objects.filter(mission=mission, kind=DecisionCycle.Kind.VALIDATION).order_by("number")
    )
    assert [c.outcome for c in validations] == [DecisionCycle.Outcome.REJECTED, DecisionCycle.Outcome.APPROVED]
    assert "No step handles invalid input." in validations[0].summary
    assert mission.events.filter(message__contains="Back to the C-suite with 1 finding").exists()


def test_it_fails_with_the_findings_when_validation_keeps_failing(company, pm, sim, celery_worker, settings):
    settings.VALIDATION_MAX_ATTEMPTS = 1
    findings = {"verdict": "reject", "findings": ["Deploys untested code."]}
    sim.script({"role": "plan_review", "times": 5, "reply": {"json": findings}})
    mission = _submit(pm)
    assert _settled(mission) == Mission.Status.FAILED
    assert mission.failure_reason == "The plan failed validation: Deploys untested code."


def test_it_creates_a_specialist_once_and_reuses_it(company, pm, sim, celery_worker):
    """A role nobody covers gets a designed specialist; the next mission needing that role reuses it."""
    plan = {"role": "plan_draft", "times": 1, "reply": {"json": _plan_with_role("accessibility")}}
    sim.script(plan)
    first = _submit(pm, title="First")
    assert _settled(first) == Mission.Status.COMPLETED, first.failure_reason
    specialist = AgentSpec.objects.get(role="accessibility")
    assert specialist.is_dynamic and specialist.created_by_mission == first
    assert set(specialist.tools) <= set(TOOL_NAMES) and "write_file" in specialist.tools
    assert Step.objects.get(plan__mission=first).agent == specialist
    assert first.events.filter(message__startswith="Created specialist").exists()

    sim.script(plan)
    second = _submit(pm, title="Second")
    assert _settled(second) == Mission.Status.COMPLETED, second.failure_reason
    assert AgentSpec.objects.filter(role="accessibility").count() == 1
    assert Step.objects.get(plan__mission=second).agent == specialist
    assert [c["role"] for c in sim.calls()].count("specialist") == 1


def test_it_fixes_a_failing_test_on_the_next_iteration(company, pm, sim, celery_worker):
    """The first implementation's tests fail in the sandbox; the agent fixes the code and the tests pass."""
    sim.script({"role": "codegen", "match": "Step: core", "times": 1, "reply": {"variant": "fail_then_fix"}})
    mission = _submit(pm)
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason
    runs = list(mission.test_runs.filter(step__key="core").order_by("id"))
    assert len(runs) == 2
    assert runs[0].failed > 0 and runs[1].failed == 0 and runs[1].passed > 0
    core = Step.objects.get(plan__mission=mission, key="core")
    assert core.attempt == 1 and core.status == Step.Status.SUCCEEDED


def test_it_retries_a_failing_step_with_backoff_then_gives_up(company, pm, sim, celery_worker, settings):
    settings.STEP_MAX_ATTEMPTS = 2
    settings.STEP_RETRY_BASE_S = 1
    settings.STEP_MAX_TOOL_ITERATIONS = 6
    sim.script({"role": "codegen", "match": "Step: core", "times": 2, "reply": {"variant": "always_fail"}})
    mission = _submit(pm)
    assert _settled(mission) == Mission.Status.FAILED
    core = Step.objects.get(plan__mission=mission, key="core")
    assert (core.status, core.attempt) == (Step.Status.FAILED, 2)
    assert mission.failure_reason.startswith("Step core failed: Tests did not pass")
    retry = mission.events.get(kind=Event.Kind.STEP, message__contains="Retrying in")
    assert "attempt 1 of 2" in retry.message
    assert mission.events.filter(message__contains="(attempt 2 of 2)").exists()
    starts = mission.events.filter(kind=Event.Kind.STEP, message__startswith="Step core started").order_by("seq")
    assert [event.data.get("attempt") for event in starts] == [1, 2]  # the page groups each attempt's work


TEMPLATE_VARIABLES = {
    "feature_implementation": {"feature": "CSV export"},
    "bug_fix": {"symptom": "totals are off by one", "steps": "add two items", "expected": "the right total"},
    "code_review": {"component": "the billing module"},
    "security_audit": {"component": "the login form"},
    "api_endpoint": {"resource": "user authentication"},
    "database_migration": {"table": "orders", "change": "add a status column"},
    "test_suite": {"component": "the parser"},
    "documentation": {"component": "the public API"},
}
MAIN_ROLE = {"security_audit": "security", "documentation": "docs", "database_migration": "data"}


@pytest.mark.parametrize("slug", sorted(TEMPLATE_VARIABLES))
def test_it_runs_every_template_through_to_deployment(company, pm, sim, celery_worker, slug):
    """Consensus, validation, staffing by role, sandboxed tests and deployment, for each of the eight templates."""
    from missions.models import MissionTemplate

    template = MissionTemplate.objects.get(slug=slug)
    mission = mission_submit(
        requester=pm,
        title="",
        request="",
        template=template,
        variables=TEMPLATE_VARIABLES[slug],
        budget_usd=Decimal("3.00"),
        require_deploy_approval=False,
    )
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason
    core = Step.objects.select_related("agent").get(plan__mission=mission, key="core")
    assert core.agent.role == MAIN_ROLE.get(slug, "developer")
    assert mission.test_runs.filter(passed__gt=0, failed=0).count() >= 2
    assert len(mission.deployed_sha) == 40
    outcomes = set(mission.cycles.values_list("kind", "outcome"))
    assert {("planning", "consensus"), ("validation", "approved")} <= outcomes


def _step(key: str, depends_on: list[str]) -> dict:
    return {
        "key": key,
        "title": f"Module {key}",
        "kind": "codegen",
        "role": "developer",
        "instructions": f"Write {key} with tests." + (f" Build on ${{{depends_on[0]}.files}}." if depends_on else ""),
        "depends_on": depends_on,
        "acceptance": ["tests pass"],
        "estimated_tokens": 1000,
    }


def _step_span(mission, key: str):
    """When the step first started and when it succeeded, from its events."""
    events = [e for e in mission.events.filter(kind=Event.Kind.STEP) if (e.data or {}).get("step") == key]
    started = min(e.created_at for e in events if e.data.get("status") == Step.Status.RUNNING)
    return started, max(e.created_at for e in events if e.data.get("status") == Step.Status.SUCCEEDED)


def test_it_runs_independent_steps_in_parallel_and_merges_their_work(company, pm, sim, celery_worker):
    """Two independent steps run at the same time in their own clones; the step after them sees both."""
    plan = {
        "summary": "Two modules side by side, then one on top.",
        "steps": [_step("alpha", []), _step("beta", []), _step("gamma", ["alpha", "beta"])],
    }
    sim.script({"role": "plan_draft", "times": 1, "reply": {"json": plan}})
    sim.set_latency(250)  # each step then takes over a second: long enough to overlap on a loaded machine
    mission = _submit(pm)
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason
    steps = {s.key: s for s in Step.objects.filter(plan__mission=mission)}
    alpha, beta, gamma = steps["alpha"], steps["beta"], steps["gamma"]
    # From each step's first start to its success (a retried attempt restarts started_at): both were in flight at once.
    spans = {key: _step_span(mission, key) for key in ("alpha", "beta")}
    (a_start, a_end), (b_start, b_end) = spans["alpha"], spans["beta"]
    attempts = {s.key: s.attempt for s in steps.values()}
    assert a_start < b_end and b_start < a_end, f"alpha and beta did not overlap: {spans}, attempts {attempts}"
    assert gamma.started_at >= max(alpha.finished_at, beta.finished_at)
    gamma_brief = gamma.messages.filter(source="Brief").get().content
    assert "Build on alpha.py, test_alpha.py." in gamma_brief  # ${alpha.files} resolved from alpha's output
    gamma_tests = mission.test_runs.filter(step=gamma).last()
    assert gamma_tests.passed >= 9  # alpha's, beta's and its own tests, all in one tree
    import zipfile

    with zipfile.ZipFile(mission.artifact_path) as archive:
        assert {"alpha.py", "beta.py", "gamma.py"} <= set(archive.namelist())


def _vote_calls(mission: Mission, round_no: int) -> list:
    """The plan_vote ledger rows of one round, in the order the calls were made."""
    from agents.models import LLMCall

    calls = list(LLMCall.objects.filter(mission=mission, purpose="plan_vote").select_related("agent").order_by("id"))
    return calls[(round_no - 1) * 4 : round_no * 4]


@pytest.mark.parametrize("mode", ["broadcast", "sequential", "round_robin", "selector"])
def test_it_deliberates_in_each_conversation_mode(company, pm, sim, celery_worker, mode):
    """Every mode collects the four votes; sequential voters hear the earlier votes; round-robin rotates the
    first speaker; the selector asks a model who speaks next."""
    sim.script({"role": "plan_vote", "match": "Chief Financial Officer", "times": 1, "reply": {"json": OBJECTION}})
    mission = _submit(pm, consensus_rule="unanimous", conversation_mode=mode)
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason
    cycle = DecisionCycle.objects.get(mission=mission, kind=DecisionCycle.Kind.PLANNING)
    assert cycle.rounds == 2 and Vote.objects.filter(cycle=cycle).count() == 8
    first, second = _vote_calls(mission, 1), _vote_calls(mission, 2)
    if mode in ("sequential", "round_robin", "selector"):
        prompts = [call.prompt_tokens for call in first]
        assert prompts == sorted(prompts) and prompts[0] < prompts[-1], "later voters did not hear earlier votes"
    if mode == "sequential":
        assert [c.agent.role for c in second] == ["ceo", "cto", "cfo", "cro"]
    if mode == "round_robin":
        assert [c.agent.role for c in first] == ["ceo", "cto", "cfo", "cro"]
        assert [c.agent.role for c in second] == ["cto", "cfo", "cro", "ceo"]
    selections = mission.llm_calls.filter(purpose="speaker_selection").count()
    assert (selections > 0) == (mode == "selector")


@pytest.mark.parametrize(
    ("command", "expected"),
    [("python -m compileall -q .", "completed"), ("python -c 'import sys; sys.exit(3)'", "failed")],
)
def test_it_runs_the_deploy_command_in_the_sandbox_before_pushing(
    company, pm, sim, celery_worker, settings, command, expected
):
    """DEPLOY_COMMAND runs on the approved tree; a failing command stops the deploy with its exit code."""
    require_bwrap()
    settings.DEPLOY_COMMAND = command
    mission = _submit(pm)
    assert _settled(mission) == expected, mission.failure_reason
    ran = mission.events.get(message__startswith="Deploy command")
    assert "bwrap sandbox" in ran.message
    if expected == "failed":
        assert "exited 3" in mission.failure_reason and mission.deployed_sha == ""
    else:
        assert len(mission.deployed_sha) == 40
