"""Deciding gates over the API: the browser's rules (reviews/gates.py), with a status code per kind of refusal."""

import json

import pytest

from missions.models import Mission
from reviews.models import ApprovalGate
from tests.api.conftest import bearer, secret_for, waiting_mission


def _decide(client, secret, gate, **body):
    return client.post(
        f"/api/v1/gates/{gate.pk}/decision", json.dumps(body), content_type="application/json", headers=bearer(secret)
    )


def test_it_lists_the_gates_waiting_for_me_never_on_my_own_missions(client, pm, reviewer, admin):
    """The approval queue's rules: pending, oldest first, not on missions the reviewer filed or that finished."""
    _, first = waiting_mission(pm, title="First")
    waiting_mission(reviewer, title="The reviewer's own")
    _, plan = waiting_mission(pm, title="Plan", kind=ApprovalGate.Kind.PLAN)
    finished, _ = waiting_mission(pm, title="Finished")
    Mission.objects.filter(pk=finished.pk).update(status=Mission.Status.CANCELLED)
    data = client.get("/api/v1/gates", headers=bearer(secret_for(reviewer))).json()
    assert data["count"] == 2
    assert [(g["mission_title"], g["kind"]) for g in data["items"]] == [("First", "deploy"), ("Plan", "plan")]
    assert data["items"][0]["id"] == first.pk and data["items"][0]["decisions"]
    only_plans = client.get("/api/v1/gates", {"kind": "plan"}, headers=bearer(secret_for(reviewer))).json()
    assert [g["id"] for g in only_plans["items"]] == [plan.pk]
    assert client.get("/api/v1/gates", headers=bearer(secret_for(admin))).json()["count"] == 3  # incl. reviewer's


def test_it_moves_the_mission_on_when_a_reviewer_approves(client, pm, reviewer, django_capture_on_commit_callbacks):
    mission, gate = waiting_mission(pm)
    with django_capture_on_commit_callbacks():
        response = _decide(client, secret_for(reviewer), gate, decision="approved", comment="Ship it")
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["status"], data["decided_by"], data["comment"], data["decisions"]) == (
        "approved",
        "reviewer",
        "Ship it",
        [],
    )
    mission.refresh_from_db()
    assert mission.status == Mission.Status.DEPLOYING
    assert mission.events.filter(actor=reviewer).exists()


def test_it_keeps_separation_of_duties(client, reviewer, pm):
    """A reviewer who filed the mission may not decide its gate: 403, and the gate stays pending."""
    _, gate = waiting_mission(reviewer)
    response = _decide(client, secret_for(reviewer), gate, decision="approved")
    assert response.status_code == 403
    assert response.json() == {"detail": "You filed this mission; another reviewer has to decide."}
    _, gate_of_pm = waiting_mission(pm, title="PM's")
    response = _decide(client, secret_for(pm), gate_of_pm, decision="approved")
    assert (response.status_code, response.json()["detail"]) == (403, "Only reviewers can decide approval gates.")
    assert set(ApprovalGate.objects.values_list("status", flat=True)) == {"pending"}


def test_it_answers_409_to_a_second_decision(client, pm, reviewer, admin, django_capture_on_commit_callbacks):
    """Decisions never change: the second one is a conflict, and the first stands."""
    _, gate = waiting_mission(pm)
    with django_capture_on_commit_callbacks():
        assert _decide(client, secret_for(reviewer), gate, decision="rejected", comment="Not now").status_code == 200
    response = _decide(client, secret_for(admin), gate, decision="approved")
    assert (response.status_code, response.json()) == (409, {"detail": "This gate was already decided."})
    gate.refresh_from_db()
    assert (gate.status, gate.decided_by, gate.comment) == ("rejected", reviewer, "Not now")


def test_it_answers_409_for_a_gate_closed_with_its_mission(client, pm, reviewer):
    mission, gate = waiting_mission(pm)
    from missions.services import mission_cancel

    mission_cancel(mission=mission, by=pm)
    response = _decide(client, secret_for(reviewer), gate, decision="approved")
    assert response.status_code == 409 and "closed without a decision" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"decision": "rejected"}, 400, "Say why: a rejection needs a comment."),
        ({"decision": "revision_requested", "comment": "  "}, 400, "Say why: a change request needs a comment."),
        ({"decision": "approved", "comment": "x" * 2001}, 400, "The comment is 2,001 characters long"),
        ({"decision": "revision_requested", "comment": "c", "step": "nope"}, 400, "There is no step 'nope'"),
        ({"decision": "maybe"}, 422, "Invalid request: body.decision: Input should be 'approved'"),
        ({}, 422, "Invalid request: body.decision: Field required."),
        ({"decision": "approved", "comment": 5}, 422, "Invalid request: body.comment: Input should be a valid string."),
    ],
)
def test_it_refuses_an_incomplete_decision(client, pm, reviewer, body, status, detail):
    _, gate = waiting_mission(pm)
    response = _decide(client, secret_for(reviewer), gate, **body)
    assert response.status_code == status
    assert response.json()["detail"].startswith(detail)
    gate.refresh_from_db()
    assert gate.is_pending


def test_it_offers_only_the_decisions_of_the_gate_kind(client, pm, reviewer):
    """A budget gate is yes or no; asking it for changes is a 400 with the service's message."""
    mission = Mission.objects.create(
        requester=pm, title="Broke", request="r", budget_usd=1, status=Mission.Status.PAUSED_BUDGET
    )
    from reviews.gates import gate_open

    gate = gate_open(mission=mission, kind=ApprovalGate.Kind.BUDGET, question="More?")
    response = _decide(client, secret_for(reviewer), gate, decision="revision_requested", comment="hm")
    assert response.status_code == 400
    assert response.json()["detail"] == "A budget increase cannot be decided as 'revision_requested'."


def test_it_answers_404_for_an_unknown_gate_or_one_on_a_mission_i_cannot_see(client, pm, other_pm):
    _, gate = waiting_mission(pm)
    response = _decide(client, secret_for(other_pm), gate, decision="approved")
    assert (response.status_code, response.json()) == (404, {"detail": "No such gate."})
    # The same answer for a gate that does not exist: which ids exist cannot be probed.
    response = _decide(client, secret_for(other_pm), type(gate)(pk=10**9), decision="approved")
    assert (response.status_code, response.json()) == (404, {"detail": "No such gate."})


def test_it_lists_gates_in_a_fixed_number_of_queries(client, pm, reviewer, django_assert_max_num_queries):
    for n in range(15):
        waiting_mission(pm, title=f"m{n}")
    secret = secret_for(reviewer)
    with django_assert_max_num_queries(6):
        assert client.get("/api/v1/gates", {"limit": 50}, headers=bearer(secret)).json()["count"] == 15
