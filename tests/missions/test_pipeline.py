"""A mission runs end to end on real parts: Celery worker, Redis, simulated model over HTTP, bwrap sandbox, git."""

import subprocess
import zipfile
from decimal import Decimal

import pytest

from agents.models import LLMCall
from missions.models import Event, Mission, MissionTemplate, Step
from missions.services import mission_submit
from reviews.gates import GateError, gate_decide
from reviews.models import ApprovalGate
from tests.conftest import wait_for
from tests.sandbox_support import require_bwrap

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _finished(mission: Mission):
    mission.refresh_from_db()
    return mission.status if mission.is_finished else None


def _status(mission: Mission):
    mission.refresh_from_db()
    return mission.status


def test_it_completes_a_template_mission_with_metered_calls_and_real_tests(
    company, pm, reviewer, sim, celery_worker, settings
):
    """The mission runs to the deploy gate, a reviewer approves, it deploys and completes.

    Every model call is in the ledger with the server's own usage; tests really ran in bwrap;
    the approved commit is in the production repository under the mission's tag; the archive holds the code.
    """
    require_bwrap()
    template = MissionTemplate.objects.get(slug="api_endpoint")
    mission = mission_submit(
        requester=pm,
        title="",
        request="",
        template=template,
        variables={"resource": "user authentication"},
        budget_usd=Decimal("2.00"),
    )
    wait_for(
        lambda: _status(mission) in (Mission.Status.AWAITING_DEPLOY_APPROVAL, Mission.Status.FAILED),
        message="deploy gate",
    )
    assert mission.status == Mission.Status.AWAITING_DEPLOY_APPROVAL, mission.failure_reason
    gate = ApprovalGate.objects.get(mission=mission, kind=ApprovalGate.Kind.DEPLOY, status=ApprovalGate.Status.PENDING)
    with pytest.raises(GateError, match="Only reviewers"):
        gate_decide(gate=gate, by=pm, decision="approved")
    gate_decide(gate=gate, by=reviewer, decision="approved", comment="Ship it")

    assert wait_for(lambda: _finished(mission), message="mission to finish") == Mission.Status.COMPLETED, (
        mission.failure_reason
    )

    server_calls = sim.calls()
    ledger = list(LLMCall.objects.filter(mission=mission).order_by("id"))
    assert len(ledger) == len(server_calls) >= 6  # a plan draft, four votes, tool turns
    assert all(call.status == LLMCall.Status.OK for call in ledger)
    assert sorted((c.prompt_tokens, c.completion_tokens) for c in ledger) == sorted(
        (c["usage"]["prompt_tokens"], c["usage"]["completion_tokens"]) for c in server_calls
    )
    assert {c.purpose for c in ledger} >= {"plan_draft", "plan_vote", "plan_review", "step:codegen"}
    # Tool turns ask for one call at a time: a step's tools take turns on one workspace anyway.
    assert {c["parallel_tool_calls"] for c in server_calls if c["role"] == "codegen"} == {False}
    assert mission.spent_usd == sum(c.cost_usd for c in ledger) > 0
    assert mission.reserved_usd == 0

    steps = list(Step.objects.filter(plan__mission=mission))
    assert steps and all(s.status == Step.Status.SUCCEEDED and len(s.commit_sha) == 40 for s in steps)
    runs = list(mission.test_runs.all())
    assert runs and all(r.passed > 0 and r.failed == 0 and r.isolation == "bwrap" for r in runs)

    log = subprocess.run(
        ["git", "-C", mission.workspace_path, "log", "--format=%H", mission.deploy_branch],
        capture_output=True,
        text=True,
        check=True,
    )
    assert {s.commit_sha for s in steps} <= set(log.stdout.split())

    statuses = [
        e.data.get("status") for e in mission.events.filter(kind__in=[Event.Kind.STATUS]) if e.data.get("status")
    ]
    assert statuses == [
        "planning",
        "validating",
        "staffing",
        "executing",
        "awaiting_deploy_approval",
        "deploying",
        "completed",
    ]

    head = subprocess.run(
        ["git", "-C", mission.workspace_path, "rev-parse", mission.deploy_branch],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert mission.deployed_sha == head  # the merge of every step's work
    remote = subprocess.run(
        [
            "git",
            "--git-dir",
            settings.DEPLOY_REMOTE,
            "rev-parse",
            f"{mission.deploy_tag}^{{commit}}",
            mission.deploy_branch,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert remote.stdout.split() == [head, head]
    with zipfile.ZipFile(mission.artifact_path) as archive:
        assert {"core.py", "test_core.py", "api.py", "test_api.py"} <= set(archive.namelist())
    seqs = list(mission.events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_it_fails_with_a_clear_reason_when_the_model_server_errors(company, pm, sim, celery_worker):
    """A model server answering 500 fails the mission with the reason on its page; the worker keeps working."""
    sim.add_faults({"kind": "500"})
    broken = mission_submit(requester=pm, title="Broken", request="Anything", budget_usd=Decimal("1.00"))
    assert wait_for(lambda: _finished(broken), message="mission to fail") == Mission.Status.FAILED
    assert "model call failed" in broken.failure_reason.lower()
    assert LLMCall.objects.get(mission=broken).status == LLMCall.Status.ERROR

    healthy = mission_submit(
        requester=pm,
        title="After the fault",
        request="Say hello",
        budget_usd=Decimal("1.00"),
        require_deploy_approval=False,
    )
    assert wait_for(lambda: _finished(healthy), message="second mission") == Mission.Status.COMPLETED


def test_it_fails_cleanly_on_garbage_from_the_model(company, pm, sim, celery_worker):
    """Malformed JSON from the server fails the mission with a reason instead of crashing the worker."""
    sim.add_faults({"kind": "malformed"})
    mission = mission_submit(requester=pm, title="Garbage", request="Anything", budget_usd=Decimal("1.00"))
    assert wait_for(lambda: _finished(mission), message="mission to fail") == Mission.Status.FAILED
    assert mission.failure_reason


def test_it_pauses_on_a_budget_gate_before_overspending_and_resumes_when_raised(
    company, pm, reviewer, sim, celery_worker
):
    """A budget too small for the next call's upper bound pauses the mission on a budget gate without making that
    call (only the CFO's short budget proposal fits); when a reviewer approves the increase, it completes."""
    company.max_output_tokens = 100_000  # worst case $0.06 per call at the default prices
    company.save()
    mission = mission_submit(
        requester=pm, title="Tiny budget", request="Anything", budget_usd=Decimal("0.01"), require_deploy_approval=False
    )
    wait_for(lambda: _status(mission) == Mission.Status.PAUSED_BUDGET, message="budget pause")
    assert [call["role"] for call in sim.calls()] == ["budget_proposal"]
    mission.refresh_from_db()
    assert mission.spent_usd == sum(c.cost_usd for c in mission.llm_calls.all()) and mission.reserved_usd == 0
    gate = ApprovalGate.objects.get(mission=mission, kind=ApprovalGate.Kind.BUDGET, status=ApprovalGate.Status.PENDING)
    assert "Budget exhausted" in gate.question and gate.data["proposal"]["by"] == "cfo"
    increase = Decimal(gate.data["increase_usd"])
    assert increase == Decimal("0.07")  # what the call that did not fit needs ($0.0604), in cents

    gate_decide(gate=gate, by=reviewer, decision="approved")
    assert wait_for(lambda: _finished(mission), message="mission to finish") == Mission.Status.COMPLETED, (
        mission.failure_reason
    )
    assert mission.budget_usd == Decimal("0.01") + increase
    assert Decimal(0) < mission.spent_usd <= mission.budget_usd


def test_it_fails_with_a_clear_reason_when_the_model_server_is_down(company, pm, sim, celery_worker, settings):
    """Nothing listening at LLM_BASE_URL: the mission fails saying the model call failed; no spend."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.LLM_BASE_URL = f"http://127.0.0.1:{port}/v1"  # bound then closed: connection refused
    mission = mission_submit(requester=pm, title="No server", request="Anything", budget_usd=Decimal("1.00"))
    assert wait_for(lambda: _finished(mission), message="mission to fail") == Mission.Status.FAILED
    assert "model call failed" in mission.failure_reason.lower()
    assert "connection" in mission.failure_reason.lower()
    assert mission.spent_usd == 0 and mission.reserved_usd == 0
