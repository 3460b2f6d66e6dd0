"""Approval gates: who may decide, which decisions each gate offers, decisions never change, the mission moves on."""

from decimal import Decimal

import pytest
from django.conf import settings

from missions.models import Event, Mission
from reviews.gates import GateError, gate_decide, gate_open
from reviews.models import ApprovalGate


def _waiting(requester, status, kind, **fields):
    mission = Mission.objects.create(
        requester=requester, title="Gated", request="r", budget_usd=Decimal("1.00"), status=status, **fields
    )
    return mission, gate_open(mission=mission, kind=kind, question="Go?")


def test_it_opens_one_pending_gate_per_kind(pm):
    """Asking twice returns the same pending gate and records one event."""
    mission, gate = _waiting(pm, Mission.Status.AWAITING_DEPLOY_APPROVAL, ApprovalGate.Kind.DEPLOY)
    again = gate_open(mission=mission, kind=ApprovalGate.Kind.DEPLOY, question="Go again?")
    assert again.pk == gate.pk
    assert mission.events.filter(kind=Event.Kind.GATE).count() == 1


def test_it_refuses_a_reviewer_deciding_on_their_own_mission(reviewer, django_capture_on_commit_callbacks):
    mission, gate = _waiting(reviewer, Mission.Status.AWAITING_DEPLOY_APPROVAL, ApprovalGate.Kind.DEPLOY)
    with pytest.raises(GateError, match="You filed this mission"):
        gate_decide(gate=gate, by=reviewer, decision="approved")
    gate.refresh_from_db()
    assert gate.is_pending


def test_it_refuses_non_reviewers(pm, other_pm):
    mission, gate = _waiting(pm, Mission.Status.AWAITING_DEPLOY_APPROVAL, ApprovalGate.Kind.DEPLOY)
    with pytest.raises(GateError, match="Only reviewers"):
        gate_decide(gate=gate, by=other_pm, decision="approved")


def test_it_offers_no_revision_on_a_budget_gate(pm, reviewer):
    """A budget increase is yes or no: there is nothing for an agent to change."""
    mission, gate = _waiting(pm, Mission.Status.PAUSED_BUDGET, ApprovalGate.Kind.BUDGET)
    with pytest.raises(GateError, match="cannot be decided as 'revision_requested'"):
        gate_decide(gate=gate, by=reviewer, decision="revision_requested", comment="x")


def test_it_needs_a_comment_to_request_a_revision(pm, reviewer):
    mission, gate = _waiting(pm, Mission.Status.AWAITING_PLAN_APPROVAL, ApprovalGate.Kind.PLAN)
    with pytest.raises(GateError, match="needs a comment"):
        gate_decide(gate=gate, by=reviewer, decision="revision_requested", comment="  ")


def test_it_never_changes_a_decision(pm, reviewer, django_capture_on_commit_callbacks):
    """The second decision is refused and the first one stands."""
    mission, gate = _waiting(pm, Mission.Status.AWAITING_DEPLOY_APPROVAL, ApprovalGate.Kind.DEPLOY)
    with django_capture_on_commit_callbacks():
        gate_decide(gate=gate, by=reviewer, decision="rejected", comment="Not now")
    with pytest.raises(GateError, match="already decided"):
        gate_decide(gate=ApprovalGate.objects.get(pk=gate.pk), by=reviewer, decision="approved")
    gate.refresh_from_db()
    assert (gate.status, gate.comment, gate.decided_by) == ("rejected", "Not now", reviewer)


@pytest.mark.parametrize(
    ("kind", "waiting", "after"),
    [
        (ApprovalGate.Kind.DEPLOY, Mission.Status.AWAITING_DEPLOY_APPROVAL, Mission.Status.REJECTED),
        (ApprovalGate.Kind.BUDGET, Mission.Status.PAUSED_BUDGET, Mission.Status.FAILED),
    ],
)
def test_it_ends_the_mission_when_a_gate_is_rejected(pm, reviewer, kind, waiting, after):
    """A rejected deploy is "Rejected" (a person said no to finished work); other rejected gates fail it."""
    mission, gate = _waiting(pm, waiting, kind)
    gate_decide(gate=gate, by=reviewer, decision="rejected", comment="Too risky")
    mission.refresh_from_db()
    assert mission.status == after and mission.is_finished
    assert mission.failure_reason == f"{gate.get_kind_display()} rejected by reviewer. “Too risky”"


@pytest.mark.parametrize(
    ("kind", "waiting", "decision", "after"),
    [
        (ApprovalGate.Kind.DEPLOY, Mission.Status.AWAITING_DEPLOY_APPROVAL, "approved", Mission.Status.DEPLOYING),
        (ApprovalGate.Kind.PLAN, Mission.Status.AWAITING_PLAN_APPROVAL, "approved", Mission.Status.STAFFING),
        (ApprovalGate.Kind.PLAN, Mission.Status.AWAITING_PLAN_APPROVAL, "revision_requested", Mission.Status.QUEUED),
        (ApprovalGate.Kind.DEADLOCK, Mission.Status.DEADLOCKED, "approved", Mission.Status.STAFFING),
        (ApprovalGate.Kind.DEADLOCK, Mission.Status.DEADLOCKED, "revision_requested", Mission.Status.QUEUED),
    ],
)
def test_it_moves_the_mission_on_and_restarts_the_engine(
    pm, reviewer, django_capture_on_commit_callbacks, monkeypatch, kind, waiting, decision, after
):
    """An approval (or revision request) moves the mission to the next phase and queues advance_mission once,
    as work under way (before missions just filed)."""
    from missions.tasks import advance_mission

    started = []
    monkeypatch.setattr(advance_mission, "apply_async", lambda args, priority: started.append((*args, priority)))
    mission, gate = _waiting(pm, waiting, kind)
    with django_capture_on_commit_callbacks(execute=True):
        gate_decide(gate=gate, by=reviewer, decision=decision, comment="Please add rate limiting")
    mission.refresh_from_db()
    assert mission.status == after
    assert started == [(mission.pk, settings.TASK_PRIORITY_UNDER_WAY)]


def test_it_raises_the_budget_and_resumes_where_the_mission_paused(pm, reviewer, django_capture_on_commit_callbacks):
    mission, gate = _waiting(
        pm, Mission.Status.PAUSED_BUDGET, ApprovalGate.Kind.BUDGET, paused_from=Mission.Status.EXECUTING
    )
    gate.data = {"increase_usd": "2.50"}
    gate.save()
    with django_capture_on_commit_callbacks():
        gate_decide(gate=gate, by=reviewer, decision="approved")
    mission.refresh_from_db()
    assert (mission.status, mission.budget_usd, mission.paused_from) == ("executing", Decimal("3.50"), "")


def test_it_decides_through_the_queue_page(client, pm, reviewer, django_capture_on_commit_callbacks):
    """A reviewer's form post decides the gate and returns to the queue with a message."""
    mission, gate = _waiting(pm, Mission.Status.AWAITING_DEPLOY_APPROVAL, ApprovalGate.Kind.DEPLOY)
    client.force_login(reviewer)
    page = client.get("/gates/")
    assert f'action="/gates/{gate.pk}/decide/"'.encode() in page.content
    with django_capture_on_commit_callbacks():
        response = client.post(f"/gates/{gate.pk}/decide/", {"decision": "approved", "next": "queue"}, follow=True)
    assert response.redirect_chain[-1][0] == "/gates/"
    assert b"Deploy approval: approve recorded." in response.content
    gate.refresh_from_db()
    assert gate.status == "approved" and gate.decided_by == reviewer


def test_it_shows_errors_from_the_decide_view_without_deciding(client, pm, reviewer):
    mission, gate = _waiting(pm, Mission.Status.AWAITING_DEPLOY_APPROVAL, ApprovalGate.Kind.DEPLOY)
    client.force_login(reviewer)
    response = client.post(f"/gates/{gate.pk}/decide/", {"decision": "maybe"}, follow=True)
    assert b"Choose approve, reject or request changes." in response.content
    gate.refresh_from_db()
    assert gate.is_pending


def test_it_hides_gates_of_missions_the_user_cannot_see(client, pm, other_pm):
    """Deciding a gate of someone else's mission is a 404, like the mission itself; GET is not allowed."""
    mission, gate = _waiting(pm, Mission.Status.AWAITING_DEPLOY_APPROVAL, ApprovalGate.Kind.DEPLOY)
    client.force_login(other_pm)
    assert client.post(f"/gates/{gate.pk}/decide/", {"decision": "approved"}).status_code == 404
    assert client.get(f"/gates/{gate.pk}/decide/").status_code == 405
    assert client.post("/gates/999999/decide/", {"decision": "approved"}).status_code == 404


def test_it_shows_the_decision_form_on_the_mission_page_to_reviewers_only(client, pm, reviewer):
    mission, gate = _waiting(pm, Mission.Status.AWAITING_DEPLOY_APPROVAL, ApprovalGate.Kind.DEPLOY)
    form = f'id="decide-gate-{gate.pk}"'.encode()
    client.force_login(reviewer)
    assert form in client.get(mission.get_absolute_url()).content
    client.force_login(pm)
    page = client.get(mission.get_absolute_url()).content
    assert form not in page and b"Waiting for a reviewer" in page


def test_it_serves_the_archive_only_when_deployed(client, pm, other_pm, tmp_path):
    mission = Mission.objects.create(requester=pm, title="Shipped thing", request="r", budget_usd=Decimal("1.00"))
    client.force_login(pm)
    assert client.get(f"/missions/{mission.code}/artifact/").status_code == 404
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    Mission.objects.filter(pk=mission.pk).update(artifact_path=str(archive), deployed_sha="a" * 40)
    response = client.get(f"/missions/{mission.code}/artifact/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="shipped-thing-{mission.code}.zip"'
    client.force_login(other_pm)
    assert client.get(f"/missions/{mission.code}/artifact/").status_code == 404


def test_it_refuses_a_crafted_post_by_a_requester_who_is_a_reviewer(
    client, reviewer, django_capture_on_commit_callbacks
):
    """A reviewer who filed the mission sees no form, and a hand-made POST (even via the queue) decides nothing."""
    mission, gate = _waiting(reviewer, Mission.Status.AWAITING_DEPLOY_APPROVAL, ApprovalGate.Kind.DEPLOY)
    client.force_login(reviewer)
    assert f'id="decide-gate-{gate.pk}"'.encode() not in client.get(mission.get_absolute_url()).content
    assert f"queue-gate-{gate.pk}".encode() not in client.get("/gates/").content
    for extra in ({}, {"next": "queue"}, {"step": "x"}):
        with django_capture_on_commit_callbacks() as callbacks:
            response = client.post(f"/gates/{gate.pk}/decide/", {"decision": "approved", **extra}, follow=True)
        assert b"You filed this mission; another reviewer has to decide." in response.content
        assert not callbacks
    gate.refresh_from_db()
    assert gate.is_pending and gate.decided_by is None


def test_it_refuses_a_stale_form_after_the_mission_was_cancelled(client, pm, reviewer):
    """A form loaded before the PM cancelled is refused: the gate was closed, nothing is approved."""
    from missions.services import mission_cancel

    mission, gate = _waiting(pm, Mission.Status.AWAITING_DEPLOY_APPROVAL, ApprovalGate.Kind.DEPLOY)
    client.force_login(reviewer)
    assert f'id="decide-gate-{gate.pk}"'.encode() in client.get(mission.get_absolute_url()).content
    mission_cancel(mission=mission, by=pm)
    response = client.post(f"/gates/{gate.pk}/decide/", {"decision": "approved"}, follow=True)
    assert b"This gate was closed without a decision: The mission was cancelled." in response.content
    gate.refresh_from_db()
    mission.refresh_from_db()
    assert gate.is_closed and mission.status == Mission.Status.CANCELLED
