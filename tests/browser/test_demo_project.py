"""A PM files a feature request against the demo project; a reviewer reads the coloured diff and approves it;
the branch pushed to the project's repository holds the base commit and passes the project's own tests."""

import io
import subprocess

import pytest
from django.conf import settings
from django.core.management import call_command

from agents.runtime.sandbox import run_pytest
from missions.models import Mission
from projects.models import Project
from tests.browser.test_live_mission import _log_in

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_a_pm_files_on_the_demo_project_and_a_reviewer_approves_the_coloured_diff(
    company, pm, reviewer, sim, celery_worker, live_url, browser, monkeypatch
):
    # Playwright's sync API keeps an event loop on this thread; the ORM reads below are plain sync calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    call_command("seed_demo", stdout=io.StringIO())
    project = Project.objects.get(slug="sample-inventory")

    page = _log_in(browser, live_url, "pm")
    page.click("text=New mission")
    page.select_option("select[name=project]", label="Sample inventory")
    page.fill("#id_title", "Low stock alerts")
    page.fill("#id_request", "List the items whose quantity is below a threshold, so the shop can reorder them.")
    page.click("text=File mission")
    page.wait_for_url("**/missions/*-*/")
    mission = Mission.objects.get(title="Low stock alerts")
    assert mission.project == project and mission.base_sha == project.head_sha
    page.wait_for_selector("#mission-status-label.status-awaiting_deploy_approval", timeout=90_000)

    review = _log_in(browser, live_url, "reviewer")
    review.goto(live_url + mission.get_absolute_url())
    change = review.locator("#mission-gates .change")
    assert "changed" in change.locator(".change-summary").inner_text()
    assert change.locator(".diff-lines tr.diff-gi").count() > 0  # added lines, coloured
    added = change.locator(".diff-lines tr.diff-gi td.code").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert added not in ("rgba(0, 0, 0, 0)", "transparent"), "added lines are not coloured"
    review.fill("#mission-gates textarea[name=comment]", "Reads well")
    review.click("#mission-gates button:has-text('Approve')")
    page.wait_for_selector("#mission-status-label.status-completed", timeout=90_000)

    mission.refresh_from_db()
    repo = project.git_url
    pushed = _git(repo, "rev-parse", f"refs/heads/{mission.deploy_branch}")
    assert pushed == mission.pushed_sha
    _git(repo, "merge-base", "--is-ancestor", project.head_sha, pushed)  # the base commit is in its history
    checkout = settings.WORKSPACES_DIR / f"check-{mission.code.hex}"
    _git(repo, "worktree", "add", "-q", "--detach", str(checkout), pushed)
    try:
        result = run_pytest(checkout)  # the project's own suite, plus the mission's tests, in the sandbox
    finally:
        _git(repo, "worktree", "remove", "--force", str(checkout))
    assert result.failed == 0 and result.errors == 0 and result.passed > project.baselines.get().passed
