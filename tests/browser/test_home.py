"""The home dashboard in a browser on a phone: it updates live when a mission moves, without a reload."""

from decimal import Decimal

import pytest

from missions.models import Mission
from missions.services import mission_transition
from tests.browser.support import PHONE, in_thread
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _fail(mission):
    mission_transition(mission=mission, to=Mission.Status.FAILED, reason="The tests failed: test_checkout.")


def test_it_updates_my_missions_and_failures_live_on_a_phone(pm, live_url, browser):
    """The PM lands on home after login; their mission failing changes its status and adds it to the failures
    with the reason, with no reload, and the dashboard fits a 390 px screen."""
    mission = in_thread(
        Mission.objects.create,
        requester=pm,
        title="Checkout v2",
        request="r",
        budget_usd=Decimal("1.00"),
        status=Mission.Status.EXECUTING,
    )
    page = browser.new_context(viewport=PHONE).new_page()
    page.goto(live_url + "/login/")
    page.fill("#id_username", "pm")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_url + "/")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    row = page.locator(f"#home-mission-{mission.code}")
    assert "Executing" in row.inner_text()
    page.wait_for_selector("#notifications[data-live=connected]", state="attached")

    in_thread(_fail, mission)
    page.wait_for_function(
        f"document.getElementById('home-mission-{mission.code}').dataset.status === 'failed'", timeout=10_000
    )
    assert "The tests failed: test_checkout." in page.locator("#home-failures").inner_text()
    assert navigations == [], "the page reloaded instead of updating live"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
