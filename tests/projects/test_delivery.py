"""Delivering a project mission: the project's own tests judge it against the baseline, and a default
branch that moved meanwhile is merged and re-tested before the push, or sent back when it cannot be."""

import shutil
import subprocess
from decimal import Decimal

import pytest

from agents.runtime.sandbox import run_pytest
from missions.models import Mission, Step, TestRun
from missions.services import mission_submit
from projects.models import Baseline
from reviews.gates import gate_decide
from reviews.models import ApprovalGate
from tests.conftest import wait_for
from tests.projects.conftest import git

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# A test of the product that breaks whenever anything but the tests folder changes: any step's work regresses it.
FROZEN = """import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_product_code_is_as_released():
    digest = hashlib.sha256()
    for path in sorted(ROOT.rglob("*")):
        parts = path.relative_to(ROOT).parts
        if path.is_file() and parts[0] not in (".git", "tests") and "__pycache__" not in parts:
            digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    assert digest.hexdigest() == "{digest}"
"""


def _commit(repo, message: str) -> str:
    git("add", "-A", cwd=repo)
    git("-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def _baseline(project, product, tmp_path) -> Baseline:
    """The project's tests run once at its head, as adding the project does."""
    from django.conf import settings

    checkout = settings.WORKSPACES_DIR / f"baseline-{tmp_path.name}"
    git("clone", "-q", str(product), str(checkout))
    result = run_pytest(checkout)
    shutil.rmtree(checkout)
    assert result.tests, result.log
    return Baseline.objects.create(
        project=project,
        sha=project.head_sha,
        log=result.log,
        verdict=Baseline.Verdict.PASSED if not (result.failed or result.errors) else Baseline.Verdict.FAILED,
        passed=result.passed,
        failed=result.failed,
        tests=[{"nodeid": t.nodeid, "outcome": t.outcome} for t in result.tests],
    )


def _submit(pm, project, **fields) -> Mission:
    return mission_submit(
        requester=pm,
        title="Add a farewell",
        request="Say goodbye too",
        budget_usd=Decimal("3.00"),
        project=project,
        **fields,
    )


def _status(mission: Mission, *wanted: str) -> str | None:
    mission.refresh_from_db()
    if mission.status in wanted or mission.is_finished:
        return mission.status
    return None


def _gate(mission: Mission) -> ApprovalGate:
    return ApprovalGate.objects.get(mission=mission, kind=ApprovalGate.Kind.DEPLOY, status=ApprovalGate.Status.PENDING)


def test_a_step_that_breaks_a_test_of_the_product_is_blocked_as_a_regression(
    company, pm, sim, celery_worker, project, product, settings, tmp_path, client
):
    settings.STEP_MAX_ATTEMPTS = 1
    (product / "tests" / "test_frozen.py").write_text(FROZEN.replace("{digest}", _frozen_digest(product)))
    project.head_sha = _commit(product, "Freeze the product")
    project.save()
    git("--git-dir", str(project.mirror_path), "fetch", "-q", "origin", "+refs/heads/*:refs/heads/*")
    baseline = _baseline(project, product, tmp_path)
    assert baseline.passed == 2 and baseline.failed == 0, baseline.log

    mission = _submit(pm, project, require_deploy_approval=False)
    assert wait_for(lambda: _status(mission), timeout=120) == Mission.Status.FAILED
    assert "regressed" in mission.failure_reason and "test_the_product_code_is_as_released" in mission.failure_reason
    run = TestRun.objects.filter(mission=mission).exclude(comparison={}).latest("id")
    assert run.comparison["regressed"] == ["tests/test_frozen.py::test_the_product_code_is_as_released"]
    assert "tests/test_greeting.py::test_greet" not in run.comparison["regressed"]
    assert not git("ls-remote", str(product), f"refs/heads/{mission.deploy_branch}", cwd=product)  # nothing pushed
    client.force_login(pm)
    page = client.get(mission.get_absolute_url()).content.decode()
    assert "1 regressed" in page and "Regressed: passed at the base commit" in page
    assert "tests/test_frozen.py::test_the_product_code_is_as_released" in page


def _frozen_digest(repo) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(repo.rglob("*")):
        parts = path.relative_to(repo).parts
        if path.is_file() and parts[0] not in (".git", "tests") and "__pycache__" not in parts:
            digest.update(str(path.relative_to(repo)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_a_default_branch_that_moved_is_merged_and_re_tested_before_the_push(
    company, pm, reviewer, sim, celery_worker, project, product, tmp_path, client
):
    _baseline(project, product, tmp_path)
    mission = _submit(pm, project, require_deploy_approval=True)
    assert wait_for(lambda: _status(mission, Mission.Status.AWAITING_DEPLOY_APPROVAL), timeout=120) == (
        Mission.Status.AWAITING_DEPLOY_APPROVAL
    ), mission.failure_reason
    gate = _gate(mission)
    (product / "shop" / "pricing.py").write_text("VAT = 0.2\n")
    upstream = _commit(product, "Someone else's work lands on main meanwhile")

    gate_decide(gate=gate, by=reviewer, decision="approved")
    assert wait_for(lambda: _status(mission), timeout=120) == Mission.Status.COMPLETED, mission.failure_reason
    pushed = git("rev-parse", f"refs/heads/{mission.deploy_branch}", cwd=product)
    assert pushed == mission.pushed_sha != gate.data["sha"]
    git("merge-base", "--is-ancestor", gate.data["sha"], pushed, cwd=product)  # the approved work
    git("merge-base", "--is-ancestor", upstream, pushed, cwd=product)  # and the moved main
    assert git("rev-parse", "main", cwd=product) == upstream  # main itself is untouched
    delivery = TestRun.objects.get(mission=mission, purpose=TestRun.Purpose.DELIVERY)
    assert delivery.failed == 0 and delivery.passed >= 2
    assert mission.events.filter(message__contains="merged it in and re-ran the tests").exists()
    client.force_login(pm)
    page = client.get(mission.get_absolute_url()).content.decode()
    assert f'from <code title="{project.head_sha}">{project.head_sha[:10]}</code> (main)' in page
    assert f'pushed <code title="{pushed}">' in page
    assert "Shop</span>" in client.get("/missions/").content.decode()  # the list names the project


def _conflicting_main(mission, project, product, settings) -> tuple[str, str]:
    """At the deploy gate, main changes the very files the mission wrote, differently: (approved, upstream)."""
    assert wait_for(lambda: _status(mission, Mission.Status.AWAITING_DEPLOY_APPROVAL), timeout=120) == (
        Mission.Status.AWAITING_DEPLOY_APPROVAL
    ), mission.failure_reason
    approved = _gate(mission).data["sha"]
    store = str(settings.GIT_STORE_DIR / "projects" / "shop.git")
    changed = git("--git-dir", store, "diff", "--name-only", project.head_sha, approved).split()
    assert changed
    for path in changed:
        (product / path).parent.mkdir(parents=True, exist_ok=True)
        (product / path).write_text("CONFLICT = 'main'\n")
    return approved, _commit(product, "Main takes the same files another way")


def _back_at_the_gate(mission) -> bool:
    return bool(
        _status(mission, Mission.Status.AWAITING_DEPLOY_APPROVAL)
        and mission.gates.filter(status=ApprovalGate.Status.PENDING).exists()
    )


def test_a_conflict_with_the_moved_default_branch_goes_back_to_execution_and_is_resolved(
    company, pm, reviewer, sim, celery_worker, project, product, settings, tmp_path
):
    _baseline(project, product, tmp_path)
    mission = _submit(pm, project, require_deploy_approval=True)
    approved, upstream = _conflicting_main(mission, project, product, settings)

    gate_decide(gate=_gate(mission), by=reviewer, decision="approved")
    # Back to execution: a resolve step starts from the merge, resolves the files, the tests pass, a new gate.
    assert wait_for(lambda: _back_at_the_gate(mission), timeout=120), mission.failure_reason
    resolve = Step.objects.get(plan__mission=mission, key="resolve-1")
    assert resolve.merge_from == upstream and resolve.status == Step.Status.SUCCEEDED, resolve.error
    assert mission.events.filter(message__contains="Back to execution").exists()
    merged = _gate(mission).data["sha"]
    gate_decide(gate=_gate(mission), by=reviewer, decision="approved")
    assert wait_for(lambda: _status(mission), timeout=120) == Mission.Status.COMPLETED, mission.failure_reason
    pushed = git("rev-parse", f"refs/heads/{mission.deploy_branch}", cwd=product)
    assert pushed == merged == mission.pushed_sha
    for ancestor in (approved, upstream):
        git("merge-base", "--is-ancestor", ancestor, pushed, cwd=product)
    marked = subprocess.run(["git", "grep", "-l", "-e", "^<<<<<<< ", pushed], cwd=product, capture_output=True)
    assert marked.returncode == 1, f"conflict markers pushed: {marked.stdout}"  # 1: nothing found


def test_a_conflict_that_cannot_be_resolved_asks_a_human_whether_to_push_unmerged(
    company, pm, reviewer, sim, celery_worker, project, product, settings, tmp_path
):
    settings.STEP_MAX_ATTEMPTS = 1
    _baseline(project, product, tmp_path)
    # The agent of the resolve step never gets the tests green (and leaves the conflict markers).
    sim.script({"role": "codegen", "match": "Step: resolve-1", "times": 1, "reply": {"variant": "always_fail"}})
    mission = _submit(pm, project, require_deploy_approval=True)
    approved, upstream = _conflicting_main(mission, project, product, settings)

    gate_decide(gate=_gate(mission), by=reviewer, decision="approved")
    assert wait_for(lambda: _back_at_the_gate(mission), timeout=120), mission.failure_reason
    resolve = Step.objects.get(plan__mission=mission, key="resolve-1")
    assert resolve.merge_from == upstream and resolve.status == Step.Status.FAILED
    unmerged = _gate(mission)
    assert unmerged.data["sha"] == approved and unmerged.data["unmerged"] is True
    assert unmerged.data["change"]["head"] == approved  # the reviewer sees what would be pushed
    assert "without main" in unmerged.question

    gate_decide(gate=unmerged, by=reviewer, decision="approved")
    assert wait_for(lambda: _status(mission), timeout=120) == Mission.Status.COMPLETED, mission.failure_reason
    assert git("rev-parse", f"refs/heads/{mission.deploy_branch}", cwd=product) == approved == mission.pushed_sha


def test_a_test_the_moved_default_branch_broke_itself_does_not_hold_the_mission_back(
    company, pm, reviewer, sim, celery_worker, project, product, tmp_path
):
    """main moved and its own change breaks test_greet: judged against main as it is now, that failure is not
    the mission's regression, so the branch is merged, re-tested and pushed; the run shows it as failing at base."""
    _baseline(project, product, tmp_path)
    mission = _submit(pm, project, require_deploy_approval=True)
    assert wait_for(lambda: _status(mission, Mission.Status.AWAITING_DEPLOY_APPROVAL), timeout=120) == (
        Mission.Status.AWAITING_DEPLOY_APPROVAL
    ), mission.failure_reason
    test = product / "tests" / "test_greeting.py"
    test.write_text(test.read_text().replace("Hello, Ada!", "Hi, Ada!"))  # a file the mission does not touch
    upstream = _commit(product, "A change on main that breaks its own test")

    gate_decide(gate=_gate(mission), by=reviewer, decision="approved")
    assert wait_for(lambda: _status(mission), timeout=120) == Mission.Status.COMPLETED, mission.failure_reason
    git("merge-base", "--is-ancestor", upstream, mission.pushed_sha, cwd=product)
    moved = project.baselines.get(sha=upstream)  # run by the worker against main as it moved
    assert moved.failed == 1 and moved.verdict == "failed"
    delivery = TestRun.objects.get(mission=mission, purpose=TestRun.Purpose.DELIVERY)
    assert delivery.failed == 1
    assert delivery.comparison["still_failing"] == ["tests/test_greeting.py::test_greet"]
    assert delivery.comparison["counts"]["regressed"] == 0


SKIPS_ONCE_TESTS_ARE_ADDED = """from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(len(list(ROOT.rglob("test_*.py"))) > 2, reason="only checked on the released tree")
def test_release_layout():
    assert (ROOT / "shop" / "greeting.py").is_file()
"""


def test_a_test_that_passed_at_the_base_and_no_longer_runs_needs_a_human(
    company, pm, sim, celery_worker, project, product, tmp_path, client
):
    """Work that makes a passing test of the product skip (or removes it) is no evidence either way: even
    without deploy approval asked for, the mission stops at a deploy gate that names the test."""
    (product / "tests" / "test_layout.py").write_text(SKIPS_ONCE_TESTS_ARE_ADDED)
    project.head_sha = _commit(product, "A layout check")
    project.save()
    git("--git-dir", str(project.mirror_path), "fetch", "-q", "origin", "+refs/heads/*:refs/heads/*")
    assert _baseline(project, product, tmp_path).passed == 2
    mission = _submit(pm, project, require_deploy_approval=False)
    assert wait_for(lambda: _status(mission, Mission.Status.AWAITING_DEPLOY_APPROVAL), timeout=120) == (
        Mission.Status.AWAITING_DEPLOY_APPROVAL
    ), mission.failure_reason
    gate = _gate(mission)
    assert gate.data["dropped_tests"] == ["tests/test_layout.py::test_release_layout"]
    assert "no longer run" in gate.question and "Push commit" in gate.question
    client.force_login(pm)
    page = client.get(mission.get_absolute_url()).content.decode()
    assert "that passed at the base commit no longer run" in page


def test_a_default_branch_that_disappeared_does_not_stop_the_push(
    company, pm, reviewer, sim, celery_worker, project, product, tmp_path
):
    """main was renamed away before the approval: the branch is pushed anyway, and the event says why unmerged."""
    _baseline(project, product, tmp_path)
    mission = _submit(pm, project, require_deploy_approval=True)
    assert wait_for(lambda: _status(mission, Mission.Status.AWAITING_DEPLOY_APPROVAL), timeout=120) == (
        Mission.Status.AWAITING_DEPLOY_APPROVAL
    ), mission.failure_reason
    git("branch", "-m", "main", "trunk", cwd=product)
    gate_decide(gate=_gate(mission), by=reviewer, decision="approved")
    assert wait_for(lambda: _status(mission), timeout=120) == Mission.Status.COMPLETED, mission.failure_reason
    assert git("rev-parse", f"refs/heads/{mission.deploy_branch}", cwd=product) == mission.pushed_sha
    assert mission.events.filter(message__contains="Could not fetch main to check whether it moved").exists()
