"""A PM and a reviewer run a mission from the API alone, on real parts: Celery worker, Redis, the simulated model."""

import pytest

from missions.models import Mission
from tests.api.conftest import bearer, secret_for
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _read(client, secret, code) -> dict:
    response = client.get(f"/api/v1/missions/{code}", headers=bearer(secret))
    assert response.status_code == 200, response.content
    return response.json()


def test_it_files_follows_and_approves_a_mission_through_the_api(
    client, company, pm, reviewer, sim, celery_worker, settings
):
    """Filed with the PM's token, the worker runs it to the deploy gate; the reviewer's token approves; it completes."""
    settings.API_RATE_LIMIT = 100_000  # the test polls far faster than any script should
    pm_secret, reviewer_secret = secret_for(pm), secret_for(reviewer)
    body = {"template": "api_endpoint", "variables": {"resource": "user authentication"}, "budget_usd": "2.00"}
    response = client.post("/api/v1/missions", body, content_type="application/json", headers=bearer(pm_secret))
    assert response.status_code == 201, response.content
    code = response.json()["code"]

    waiting = {Mission.Status.AWAITING_DEPLOY_APPROVAL, *Mission.FINISHED}
    mission = wait_for(
        lambda: (data := _read(client, pm_secret, code))["status"] in waiting and data,
        timeout=180,
        message="the deploy gate",
    )
    assert mission["status"] == "awaiting_deploy_approval", mission["failure_reason"]
    assert mission["steps"] and all(step["status"] == "succeeded" for step in mission["steps"])
    assert mission["test_runs"] and all(run["ok"] for run in mission["test_runs"])
    assert mission["cost"]["spent_usd"] != "0"
    [gate] = [g for g in mission["gates"] if g["status"] == "pending"]
    assert gate["kind"] == "deploy"

    queue = client.get("/api/v1/gates", headers=bearer(reviewer_secret)).json()
    assert [g["id"] for g in queue["items"]] == [gate["id"]]
    decide = f"/api/v1/gates/{gate['id']}/decision"
    refused = client.post(decide, {"decision": "approved"}, content_type="application/json", headers=bearer(pm_secret))
    assert refused.status_code == 403  # the PM filed it: never their decision
    approved = client.post(
        decide, {"decision": "approved", "comment": "Ship it"}, content_type="application/json",
        headers=bearer(reviewer_secret),
    )  # fmt: skip
    assert approved.status_code == 200, approved.content

    done = wait_for(
        lambda: (data := _read(client, pm_secret, code))["status"] in Mission.FINISHED and data,
        timeout=120,
        message="the mission to finish",
    )
    assert done["status"] == "completed", done["failure_reason"]
    costs = client.get(f"/api/v1/missions/{code}/costs", headers=bearer(pm_secret)).json()
    assert costs["totals"]["cost_usd"] == costs["spent_usd"] == done["spent_usd"]
