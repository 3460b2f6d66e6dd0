"""A mission's steps and the sandbox: tampered test runs need a human, failed clones go, no sandbox stops code."""

import shutil
import subprocess
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from agents.runtime import sandbox
from missions.models import Mission, Step
from missions.services import mission_submit
from reviews.models import ApprovalGate
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ALTERS = "alters how tests run"


def _submit(pm, **kwargs) -> Mission:
    kwargs.setdefault("require_deploy_approval", False)
    return mission_submit(requester=pm, title="Widget", request="Build it", budget_usd=Decimal("3.00"), **kwargs)


def _settled(mission: Mission) -> str:
    def check():
        mission.refresh_from_db()
        return mission.status if (mission.is_finished or mission.is_waiting) else None

    return wait_for(check, timeout=90, message="mission to settle")


def _step_clones(mission: Mission) -> list:
    steps_dir = django_settings.WORKSPACES_DIR / f"{mission.code.hex}-steps"
    return sorted(p.name for p in steps_dir.iterdir()) if steps_dir.exists() else []


def test_it_holds_a_step_whose_conftest_turns_failures_into_passes_for_a_human(
    company, pm, reviewer, sim, celery_worker, client
):
    """Broken code hidden by a planted conftest.py "passes", but the step is flagged, the deploy gate is forced
    (even though the mission asked for none) and says the change alters how tests run, on the page and the queue."""
    sim.script({"role": "codegen", "match": "Step: core", "times": 1, "reply": {"variant": "tamper_tests"}})
    mission = _submit(pm)
    assert _settled(mission) == Mission.Status.AWAITING_DEPLOY_APPROVAL, mission.failure_reason
    core = Step.objects.get(plan__mission=mission, key="core")
    assert core.status == Step.Status.SUCCEEDED
    assert (core.alters_test_config, core.test_config_files) == (True, ["conftest.py"])
    run = mission.test_runs.get(step=core)
    assert run.failed == 0 and run.passed > 0  # the forged result the gate must not trust
    gate = ApprovalGate.objects.get(mission=mission, kind=ApprovalGate.Kind.DEPLOY)
    assert ALTERS in gate.question and "not evidence" in gate.question
    assert gate.data["alters_test_config"] == {"core": ["conftest.py"]}
    assert mission.deployed_sha == ""

    client.force_login(pm)
    page = client.get(mission.get_absolute_url()).content.decode()
    assert "This change alters how tests run" in page and "needs human review" in page
    client.force_login(reviewer)
    queue = client.get(reverse("reviews:queue")).content.decode()
    assert "This change alters how tests run" in queue


def test_it_deletes_the_clone_of_every_attempt(company, pm, sim, celery_worker, settings):
    """A failed attempt's private clone is removed like a successful one's; only the mission repository stays."""
    settings.STEP_MAX_ATTEMPTS = 2
    settings.STEP_RETRY_BASE_S = 1
    settings.STEP_MAX_TOOL_ITERATIONS = 6
    sim.script({"role": "codegen", "match": "Step: core", "times": 1, "reply": {"variant": "always_fail"}})
    mission = _submit(pm)
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason
    core = Step.objects.get(plan__mission=mission, key="core")
    assert core.attempt == 2
    assert _step_clones(mission) == []


def test_it_stops_a_mission_without_a_sandbox_with_the_reason(company, pm, sim, celery_worker, monkeypatch, tmp_path):
    """No usable bubblewrap and no explicit SANDBOX_BACKEND=subprocess: no code runs, the mission fails at once
    (no retries) with a reason naming bubblewrap and the setting."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    monkeypatch.delenv("SANDBOX_BACKEND", raising=False)
    monkeypatch.setenv("PATH", str(bin_dir))  # git, but no bwrap: a machine without bubblewrap
    sandbox._probe_bwrap.cache_clear()
    try:
        mission = _submit(pm)
        assert _settled(mission) == Mission.Status.FAILED
    finally:
        sandbox._probe_bwrap.cache_clear()
    assert "bubblewrap" in mission.failure_reason and "SANDBOX_BACKEND=subprocess" in mission.failure_reason
    assert not mission.test_runs.exists()
    assert set(Step.objects.filter(plan__mission=mission).values_list("attempt", flat=True)) <= {0, 1}


def test_the_start_up_banner_says_which_sandbox_runs_code_or_why_none(monkeypatch):
    """sandbox_status() names the backend, the weaker one as weaker, and without bwrap says code will not run."""
    monkeypatch.setenv("SANDBOX_BACKEND", "subprocess")
    backend, line = sandbox.sandbox_status()
    assert backend == "subprocess" and "weaker sandbox" in line
    monkeypatch.delenv("SANDBOX_BACKEND")
    monkeypatch.setattr(sandbox, "_probe_bwrap", lambda: (False, "the bwrap executable was not found on PATH."))
    backend, line = sandbox.sandbox_status()
    assert backend == "" and "will not run" in line and "bubblewrap" in line and "SANDBOX_BACKEND" in line
    monkeypatch.setattr(sandbox, "_probe_bwrap", lambda: (True, ""))
    backend, line = sandbox.sandbox_status()
    assert backend == "bwrap" and "no network" in line


def test_it_runs_the_tests_itself_when_the_work_changed_after_the_agents_green_run(company, pm, sim, celery_worker):
    """An agent that breaks the module after its green run and commits without testing again: the engine runs
    the tests on the committed tree, refuses the attempt with the reason, and the retry's correct work is merged."""
    sim.script({"role": "codegen", "match": "Step: core", "times": 1, "reply": {"variant": "break_after_tests"}})
    mission = _submit(pm)
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason
    core = Step.objects.get(plan__mission=mission, key="core")
    assert core.attempt == 2
    runs = list(mission.test_runs.filter(step=core).order_by("id").values_list("failed", flat=True))
    assert runs[0] == 0 and runs[1] > 0  # the agent's green run, then the engine's run on what it committed
    assert mission.events.filter(message__contains="changed after the agent's last test run").exists()
    workspace = mission.workspace_path
    shown = subprocess.run(
        ["git", "-C", workspace, "show", f"{mission.deploy_branch}:core.py"], capture_output=True, text=True
    )
    assert shown.returncode == 0 and "sim:buggy" not in shown.stdout
