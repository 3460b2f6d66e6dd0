"""What people do: a PM files a mission and watches it live; a reviewer approves the deploy; the PM downloads it."""

import zipfile

import pytest

from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _log_in(browser, live_url, username):
    page = browser.new_context().new_page()
    page.goto(live_url + "/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_url + "/")  # home, the page after login
    return page


PLAN = {
    "summary": "Token service by an authentication specialist, then the HTTP layer.",
    "steps": [
        {
            "key": "core",
            "title": "Token service",
            "kind": "codegen",
            "role": "authentication",
            "instructions": "Issue and verify tokens, with tests.",
            "depends_on": [],
            "acceptance": ["tests pass"],
            "estimated_tokens": 2000,
        },
        {
            "key": "api",
            "title": "HTTP endpoints",
            "kind": "codegen",
            "role": "developer",
            "instructions": "Expose ${core.files} over HTTP, with tests.",
            "depends_on": ["core"],
            "acceptance": ["tests pass"],
            "estimated_tokens": 2000,
        },
    ],
}


def test_it_runs_a_mission_live_through_the_deploy_gate(
    company, pm, reviewer, sim, celery_worker, live_url, browser, tmp_path
):
    """The PM watches votes, plan, a new specialist, steps and tests arrive live; the reviewer approves the
    deploy; the PM's page reaches "completed" without a reload and the archive downloads."""
    sim.script({"role": "plan_draft", "times": 1, "reply": {"json": PLAN}})
    page = _log_in(browser, live_url, "pm")
    page.click("text=New mission")
    page.select_option("select[name=template]", "api_endpoint")
    page.wait_for_selector("#id_var_resource")  # swapped in by htmx
    page.fill("#id_var_resource", "user authentication")
    page.fill("#id_title", "Build an API for user authentication")
    page.click("text=File mission")
    page.wait_for_url("**/missions/*-*/")
    assert page.locator("h1").first.inner_text() == "Build an API for user authentication"
    assert page.locator(".badge.sim").count() >= 1

    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.wait_for_selector("#mission-status-label.status-awaiting_deploy_approval", timeout=90_000)
    timeline = page.locator("#timeline").inner_text()
    for text in (
        "votes approve",
        "Plan v1 adopted",
        "Step core succeeded",
        "Tests for core",
        "Deploy approval requested",
    ):
        assert text in timeline
    assert "passed" in page.locator("#mission-tests").inner_text()
    assert page.locator("#transcript").get_by_text("write_file").count() >= 2
    assert "Waiting for a reviewer" in page.locator("#mission-gates").inner_text()
    assert page.locator("#mission-gates button").count() == 0  # the requester cannot decide

    review = _log_in(browser, live_url, "reviewer")
    review.click("text=Approvals")
    review.fill("textarea[name=comment]", "Looks good")
    review.click("button:has-text('Approve')")
    assert "Deploy approval: approve recorded." in review.locator(".flash").inner_text()

    page.wait_for_selector("#mission-status-label.status-completed", timeout=60_000)
    assert navigations == [], "the PM's page reloaded instead of updating live"
    assert "Deployed" in page.locator("#timeline").inner_text()
    with page.expect_download() as download_info:
        page.click("#download-artifact")
    path = tmp_path / "mission.zip"
    download_info.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        assert "core.py" in archive.namelist()
