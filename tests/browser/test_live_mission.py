"""What a product manager does: log in, file a mission, watch it complete live."""

import pytest

from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_it_lets_a_pm_file_a_mission_and_watch_it_complete_live(
    company, pm, celery_worker, live_url, browser, tmp_path
):
    """The timeline reaches "completed" on the page the PM is looking at, with no reload."""
    page = browser.new_page()
    page.goto(live_url + "/")
    page.fill("#id_username", "pm")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/missions/")

    page.click("text=New mission")
    page.select_option("select[name=template]", "api_endpoint")
    page.wait_for_selector("#id_var_resource")  # swapped in by htmx
    page.fill("#id_var_resource", "user authentication")
    page.click("text=File mission")
    page.wait_for_url("**/missions/*-*/")
    assert page.locator("h1").first.inner_text() == "API: user authentication"
    assert page.locator(".badge.sim").count() >= 1

    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.wait_for_selector("#mission-status-label.status-completed", timeout=90_000)
    assert navigations == [], "the page reloaded instead of updating live"

    timeline = page.locator("#timeline").inner_text()
    for text in ("votes approve", "Plan v1 adopted", "Step core succeeded", "Tests for core", "Completed"):
        assert text in timeline
    assert "passed" in page.locator("#mission-tests").inner_text()
    assert page.locator("#transcript").get_by_text("write_file").count() >= 2
    page.screenshot(path=str(tmp_path / "mission.png"), full_page=True)
