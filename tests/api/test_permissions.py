"""The API's permission matrix: who may do what, with the pages' rules (mission_for_user, gate_decide)."""

import pytest

from reviews.models import ApprovalGate
from tests.api.conftest import bearer, waiting_mission

PERSONAS = ("anonymous", "pm", "other_pm", "reviewer", "admin", "revoked")
# Expected status per operation, for each persona in PERSONAS' order. The mission and its gate are the pm's.
MATRIX = {
    "list": (401, 200, 200, 200, 200, 401),
    "read": (401, 200, 404, 200, 200, 401),
    "costs": (401, 200, 404, 200, 200, 401),
    "create": (401, 201, 201, 403, 201, 401),
    "gates": (401, 403, 403, 200, 200, 401),
    "decide": (401, 403, 404, 200, 200, 401),
}
CASES = [(op, persona, codes[i]) for op, codes in MATRIX.items() for i, persona in enumerate(PERSONAS)]


def _call(client, operation: str, headers: dict, mission, gate):
    if operation == "list":
        return client.get("/api/v1/missions", headers=headers)
    if operation == "read":
        return client.get(f"/api/v1/missions/{mission.code}", headers=headers)
    if operation == "costs":
        return client.get(f"/api/v1/missions/{mission.code}/costs", headers=headers)
    if operation == "create":
        body = {"title": "From the API", "request": "Add a health endpoint.", "budget_usd": "1.50"}
        return client.post("/api/v1/missions", body, content_type="application/json", headers=headers)
    if operation == "gates":
        return client.get("/api/v1/gates", headers=headers)
    body = {"decision": "approved", "comment": "Ship it"}
    return client.post(f"/api/v1/gates/{gate.pk}/decision", body, content_type="application/json", headers=headers)


@pytest.mark.parametrize(("operation", "persona", "expected"), CASES)
def test_it_enforces_the_permission_matrix(client, company, pm, tokens, operation, persona, expected):
    """Every answer, allowed or not, is JSON; refusals carry a message in ``detail``."""
    mission, gate = waiting_mission(pm)
    response = _call(client, operation, bearer(tokens[persona]), mission, gate)
    assert response.status_code == expected, response.content
    assert response["Content-Type"].startswith("application/json")
    if expected >= 400:
        assert response.json()["detail"]
    gate.refresh_from_db()
    if operation == "decide":
        assert gate.status == (ApprovalGate.Status.APPROVED if expected == 200 else ApprovalGate.Status.PENDING)


def test_it_lists_only_the_missions_each_persona_may_see(client, pm, other_pm, tokens):
    """A PM sees their own missions; a reviewer and an admin see all."""
    waiting_mission(pm, title="PM's")
    waiting_mission(other_pm, title="Other PM's")
    seen = {}
    for persona in ("pm", "other_pm", "reviewer", "admin"):
        items = client.get("/api/v1/missions", headers=bearer(tokens[persona])).json()["items"]
        seen[persona] = sorted(item["title"] for item in items)
    assert seen == {
        "pm": ["PM's"],
        "other_pm": ["Other PM's"],
        "reviewer": ["Other PM's", "PM's"],
        "admin": ["Other PM's", "PM's"],
    }
