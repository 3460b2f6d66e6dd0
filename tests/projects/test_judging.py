"""How a project's test run is judged against its baseline: regressions and new failures block, old ones do not."""

from types import SimpleNamespace

from agents.runtime.sandbox import PytestResult, TestOutcome
from missions.engine.testing import test_verdict as verdict_of


def _run(**outcomes: str) -> PytestResult:
    tests = [TestOutcome(nodeid=f"tests/test_a.py::{name}", outcome=outcome) for name, outcome in outcomes.items()]
    count = lambda *kinds: sum(1 for t in tests if t.outcome in kinds)  # noqa: E731
    return PytestResult(
        passed=count("passed"),
        failed=count("failed"),
        errors=count("error"),
        skipped=count("skipped"),
        duration_s=0.1,
        log="",
        tests=tests,
        returncode=1 if count("failed", "error") else 0,
    )


def _baseline(**outcomes: str):
    return SimpleNamespace(tests=[{"nodeid": f"tests/test_a.py::{n}", "outcome": o} for n, o in outcomes.items()])


def test_a_test_that_already_failed_at_the_base_is_shown_but_does_not_block():
    verdict = verdict_of(_run(ok="passed", broken="failed", added="passed"), _baseline(ok="passed", broken="failed"))
    assert verdict.ok, verdict.reason
    assert verdict.comparison["still_failing"] == ["tests/test_a.py::broken"]
    assert verdict.comparison["new"] == ["tests/test_a.py::added"]


def test_regressions_and_new_failures_block_and_are_named():
    verdict = verdict_of(
        _run(ok="failed", skipped_before="error", added="failed", fixed="passed"),
        _baseline(ok="passed", skipped_before="skipped", fixed="failed", gone="passed"),
    )
    assert not verdict.ok
    assert verdict.comparison["regressed"] == ["tests/test_a.py::ok", "tests/test_a.py::skipped_before"]
    assert verdict.comparison["new_failing"] == ["tests/test_a.py::added"]
    assert verdict.comparison["fixed"] == ["tests/test_a.py::fixed"]
    assert verdict.comparison["removed"] == ["tests/test_a.py::gone"]
    assert (
        "2 regressed" in verdict.reason
        and "tests/test_a.py::ok" in verdict.reason
        and "1 new tests fail" in verdict.reason
    )


def test_without_a_baseline_any_failure_blocks_and_an_empty_run_is_not_green():
    assert not verdict_of(_run(a="passed", b="failed")).ok
    assert verdict_of(_run(a="passed")).ok
    assert verdict_of(_run()).reason == "No tests ran."


def test_a_command_without_per_test_results_is_judged_by_its_exit_status():
    passing = PytestResult(passed=1, failed=0, errors=0, skipped=0, duration_s=1, log="", returncode=0)
    failing = PytestResult(passed=0, failed=1, errors=0, skipped=0, duration_s=1, log="", returncode=2)
    assert verdict_of(passing, _baseline(a="passed")).ok
    assert "exit 2" in verdict_of(failing, _baseline(a="passed")).reason


def test_a_test_that_passed_at_the_base_and_is_skipped_or_gone_now_is_named_as_dropped():
    from missions.engine.testing import dropped_tests

    verdict = verdict_of(_run(a="passed", b="skipped"), _baseline(a="passed", b="passed", c="passed"))
    assert verdict.ok  # no evidence either way: not a failure, but a human looks (execution_done opens a gate)
    assert dropped_tests(verdict.comparison) == ["tests/test_a.py::b", "tests/test_a.py::c"]
