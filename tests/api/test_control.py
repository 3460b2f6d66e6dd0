"""Steering a mission through the API: cancel, pause, resume, retry and clone with the mission page's rules."""

from decimal import Decimal

import pytest

from missions.models import Mission
from tests.api.conftest import bearer

BASE = "/api/v1/missions"


def _mission(requester, status=Mission.Status.EXECUTING, **fields) -> Mission:
    return Mission.objects.create(
        requester=requester, title="Checkout", request="Build it.", budget_usd=Decimal("2.00"), status=status, **fields
    )


def _post(client, secret, mission, action, body=None):
    return client.post(f"{BASE}/{mission.code}/{action}", body or {}, content_type="application/json",
                       headers=bearer(secret))  # fmt: skip


@pytest.mark.parametrize(
    ("persona", "status"),
    [("anonymous", 401), ("revoked", 401), ("other_pm", 404), ("reviewer", 403), ("pm", 200), ("admin", 200)],
)
def test_only_the_requester_or_an_admin_pauses_a_mission(client, tokens, pm, persona, status):
    mission = _mission(pm)
    response = _post(client, tokens[persona], mission, "pause")
    assert response.status_code == status, response.content
    assert response.json().get("status", "") == ("paused" if status == 200 else "")
    mission.refresh_from_db()
    assert mission.status == (Mission.Status.PAUSED if status == 200 else Mission.Status.EXECUTING)


def test_it_pauses_resumes_and_cancels_in_turn(client, tokens, pm, django_capture_on_commit_callbacks):
    mission = _mission(pm)
    with django_capture_on_commit_callbacks():
        assert _post(client, tokens["pm"], mission, "pause").json()["status"] == "paused"
        assert _post(client, tokens["pm"], mission, "resume").json()["status"] == "executing"
        assert _post(client, tokens["pm"], mission, "cancel").json()["status"] == "cancelled"
    response = _post(client, tokens["pm"], mission, "pause")
    assert response.status_code == 409
    assert response.json()["detail"] == "A mission that is cancelled cannot be paused."


def test_it_refuses_to_retry_a_mission_that_did_not_fail(client, tokens, pm):
    response = _post(client, tokens["pm"], _mission(pm), "retry")
    assert response.status_code == 409 and response.json()["detail"]


def test_it_clones_a_mission_as_the_caller(client, tokens, pm, other_pm, company, django_capture_on_commit_callbacks):
    original = _mission(pm, status=Mission.Status.COMPLETED)
    with django_capture_on_commit_callbacks():
        response = _post(client, tokens["pm"], original, "clone")
    assert response.status_code == 201, response.content
    clone = Mission.objects.get(code=response.json()["code"])
    assert (clone.requester, clone.title, clone.budget_usd) == (pm, "Checkout", Decimal("2.00"))
    assert _post(client, tokens["reviewer"], original, "clone").status_code == 403
    assert _post(client, tokens["other_pm"], original, "clone").status_code == 404


def test_a_clone_above_the_confirmation_threshold_needs_confirming(client, tokens, pm, company, settings):
    settings.BUDGET_CONFIRM_ABOVE_USD = Decimal("1.00")
    original = _mission(pm, status=Mission.Status.COMPLETED)
    refused = _post(client, tokens["pm"], original, "clone")
    assert refused.status_code == 400 and refused.json()["detail"].startswith("Not cloned: ")
    assert _post(client, tokens["pm"], original, "clone", {"confirm_budget": True}).status_code == 201
