"""The mission page on a phone: the plan's picture recolours live as steps move, the "now" line is in the first
screen, nothing scrolls sideways, the newest event is on top, and a section the person unfolded stays open."""

from decimal import Decimal

import pytest
from django.db import transaction

from missions.events import event_record
from missions.models import Event, Mission, Plan, Step, TestRun
from tests.browser.support import PHONE, in_thread
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _mission(pm) -> Mission:
    mission = Mission.objects.create(
        requester=pm,
        title="Build an API for user authentication with tokens, sessions and an admin screen",
        request="r",
        budget_usd=Decimal("5.00"),
        status=Mission.Status.EXECUTING,
    )
    plan = Plan.objects.create(mission=mission, version=1)
    core = Step.objects.create(
        plan=plan, key="core", title="Token service", role="developer", instructions="i", status="succeeded"
    )
    # A wide layer, so the picture has to wrap and shrink to fit the phone.
    for order in range(1, 9):
        Step.objects.create(
            plan=plan,
            key=f"endpoint-{order}",
            order=order,
            title=f"HTTP endpoint number {order} with a long title",
            role="developer",
            instructions="i",
            depends_on=["core"],
        )
    TestRun.objects.create(mission=mission, step=core, passed=4, isolation="bwrap", log="all green")
    event_record(mission=mission, kind=Event.Kind.STEP, message="Step core succeeded.", data={"step": "core"})
    return mission


def _step_moves(mission: Mission, key: str, status: str) -> None:
    """What the engine does when a step moves: the row and its event in one transaction, announced on commit."""
    with transaction.atomic():
        Step.objects.filter(plan__mission=mission, key=key).update(status=status)
        event_record(
            mission=mission, kind=Event.Kind.STEP, message=f"Step {key} {status}.", data={"step": key, "status": status}
        )


def test_it_recolours_the_plan_live_on_a_phone(pm, live_url, browser):
    """A step starting and succeeding recolours its node without a reload; the page fits 390 px with the now
    line in the first screen; the newest event is listed first; an unfolded test-run group stays unfolded."""
    mission = in_thread(_mission, pm)
    page = browser.new_context(viewport=PHONE).new_page()
    page.goto(live_url + "/login/")
    page.fill("#id_username", "pm")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_url + "/")
    page.goto(live_url + mission.get_absolute_url())
    page.wait_for_selector("#live-state:has-text('Live: connected.')")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    node = page.locator("#dag-node-endpoint-1")
    assert node.get_attribute("class") == "node status-pending"
    assert page.locator("#dag-node-core").get_attribute("class") == "node status-succeeded"
    group = page.locator("#tests-step-core")
    assert group.evaluate("el => el.open") is False
    group.locator("> summary").click()  # the person unfolds it
    assert group.evaluate("el => el.open") is True

    in_thread(_step_moves, mission, "endpoint-1", Step.Status.RUNNING)
    page.wait_for_selector("#dag-node-endpoint-1.status-running", timeout=10_000)
    assert "Running endpoint-1" in page.locator("#mission-now").inner_text()
    assert page.locator("#tests-step-core").evaluate("el => el.open") is True, "a live update folded it again"

    in_thread(_step_moves, mission, "endpoint-1", Step.Status.SUCCEEDED)
    page.wait_for_selector("#dag-node-endpoint-1.status-succeeded", timeout=10_000)
    assert page.locator("#mission-progress").get_attribute("aria-valuenow") == "2"
    assert navigations == [], "the page reloaded instead of updating live"

    # Newest first: the last event is drawn above the first.
    newest = page.locator("#timeline li").last.bounding_box()
    oldest = page.locator("#timeline li").first.bounding_box()
    assert newest["y"] < oldest["y"]
    assert "endpoint-1 succeeded" in page.locator("#timeline li").last.inner_text()

    width, client_width = page.evaluate(
        "[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]"
    )
    assert width <= client_width, f"the mission page is {width}px wide on a {client_width}px phone"
    page.evaluate("window.scrollTo(0, 0)")
    now = page.locator("#mission-now").bounding_box()
    assert now["y"] + now["height"] <= PHONE["height"], "the now line is below the first screen"
    svg = page.locator("#plan-dag svg").bounding_box()
    assert svg["width"] <= PHONE["width"]
