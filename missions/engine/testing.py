"""What counts as a green test run for a mission, and how its tests are run.

Without a project a run is green when tests ran and none failed. On a project the project's whole test
command runs, and the run is compared with the baseline at the mission's base commit: a test that passed
there and fails now is a regression and blocks, as does a new test that fails; tests that already failed
at the base are shown but do not block (the mission is not asked to fix what it did not break).
"""

from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from agents.runtime.sandbox import PytestResult, SandboxError, SandboxLimits, run_pytest, run_test_command
from missions.models import Mission
from projects.services import ProjectError, baseline_at, environment_for

FAILING = ("failed", "error")
SHOWN = 50  # node ids kept per category: the comparison is shown on pages and in briefs


@dataclass
class Verdict:
    ok: bool
    reason: str  # why not ('' when ok), phrased for the agent and the PM
    comparison: dict = field(default_factory=dict)


def mission_test_runner(mission: Mission, sha: str = ""):
    """A callable (workdir, limits) -> PytestResult that runs the mission's tests in the sandbox.

    On a project: its whole test command, in its setup environment for commit ``sha`` (default: the base;
    made on this worker from the checkout itself the first time: workers share no disk), read-only.
    """
    if not mission.project_id:
        return lambda workdir, limits: run_pytest(workdir, limits=limits)
    project = mission.project
    env_sha = sha or mission.base_sha

    def run(workdir: Path, limits: SandboxLimits) -> PytestResult:
        try:
            env_dir = environment_for(project, env_sha, source=workdir) if project.setup_command else None
        except ProjectError as error:
            raise SandboxError(str(error)) from None
        return run_test_command(workdir, project.test_command, limits=limits, env_dir=env_dir)

    return run


def run_test_command_for(mission: Mission, workspace, sha: str = "") -> PytestResult:
    """Run the mission's tests on ``workspace`` (a checkout) in the sandbox, as acceptance runs do."""
    return mission_test_runner(mission, sha)(workspace.root, SandboxLimits(timeout_s=settings.SANDBOX_TIMEOUT_S))


def test_run_fields(result: PytestResult) -> dict:
    """TestRun columns for a sandbox result."""
    return {
        "passed": result.passed,
        "failed": result.failed,
        "errors": result.errors,
        "skipped": result.skipped,
        "duration_s": result.duration_s,
        "isolation": result.isolation,
        "timed_out": result.timed_out,
        "tests": [{"nodeid": t.nodeid, "outcome": t.outcome} for t in result.tests],
        "log": result.log,
    }


def mission_baseline(mission: Mission, sha: str = "", *, source: Path | None = None):
    """The project's baseline at ``sha`` (default: the base commit); None without a project.

    With ``source`` (a repository holding ``sha``) a missing baseline is run now: after the default branch
    moved, the work is judged against where it moved to, not blamed for what the move broke.
    """
    sha = sha or mission.base_sha
    if not mission.project_id or not sha:
        return None
    if source is None:
        return mission.project.baselines.filter(sha=sha).first()
    try:
        return baseline_at(mission.project, sha, source=source)
    except ProjectError as error:
        raise SandboxError(str(error)) from None


def test_verdict(result: PytestResult, baseline=None) -> Verdict:
    """Judge one run, against ``baseline`` (a projects.Baseline) when there is one."""
    counts = f"{result.passed} passed, {result.failed} failed, {result.errors} errors"
    if result.timed_out:
        return Verdict(False, f"The tests timed out ({counts}).")
    if baseline is None:
        if result.passed and not (result.failed or result.errors):
            return Verdict(True, "")
        if not result.passed and not (result.failed or result.errors):
            return Verdict(False, "No tests ran.")
        return Verdict(False, f"Tests did not pass: {counts}.")
    comparison = compare(baseline.tests, [{"nodeid": t.nodeid, "outcome": t.outcome} for t in result.tests])
    if not result.tests:  # a command without per-test results: only its exit status can be judged
        if result.returncode == 0 and not (result.failed or result.errors):
            return Verdict(True, "", comparison)
        return Verdict(False, f"The project's test command failed (exit {result.returncode}).", comparison)
    blocking = comparison["regressed"] + comparison["new_failing"]
    if blocking:
        parts = []
        if comparison["regressed"]:
            parts.append(
                f"{len(comparison['regressed'])} regressed (passed at the base commit, fail now): "
                + ", ".join(comparison["regressed"][:10])
            )
        if comparison["new_failing"]:
            parts.append(
                f"{len(comparison['new_failing'])} new tests fail: " + ", ".join(comparison["new_failing"][:10])
            )
        return Verdict(False, f"Tests did not pass ({counts}): " + "; ".join(parts) + ".", comparison)
    if not result.passed:
        return Verdict(False, f"No test passed ({counts}).", comparison)
    return Verdict(True, "", comparison)


def dropped_tests(comparison: dict) -> list[str]:
    """Tests that passed at the base and no longer run (removed or skipped now): no evidence either way, so a
    human decides at the deploy gate, as for a change to how tests run."""
    return sorted(set(comparison.get("removed", [])) | set(comparison.get("skipped_now", [])))


def compare(base_tests: list[dict], now_tests: list[dict]) -> dict:
    """Per-test comparison of a run with the baseline: what regressed, was fixed, is new, still fails, went."""
    base = {t["nodeid"]: t["outcome"] for t in base_tests}
    now = {t["nodeid"]: t["outcome"] for t in now_tests}
    groups: dict[str, list[str]] = {
        "regressed": [],
        "fixed": [],
        "new": [],
        "new_failing": [],
        "still_failing": [],
        "skipped_now": [],
        "removed": sorted(set(base) - set(now)),
    }
    for nodeid, outcome in sorted(now.items()):
        before = base.get(nodeid)
        failing = outcome in FAILING
        if before is None:
            groups["new_failing" if failing else "new"].append(nodeid)
        elif failing and before not in FAILING:  # passed (or was skipped) at the base, fails now
            groups["regressed"].append(nodeid)
        elif before in FAILING and outcome == "passed":
            groups["fixed"].append(nodeid)
        elif before in FAILING and failing:
            groups["still_failing"].append(nodeid)
        elif before == "passed" and outcome == "skipped":
            groups["skipped_now"].append(nodeid)
    counts = {name: len(ids) for name, ids in groups.items()}
    return {**{name: ids[:SHOWN] for name, ids in groups.items()}, "counts": counts}
