"""A mission that ends closes its open gates; nobody can approve a closed gate; a deadlock is called one."""

from decimal import Decimal

import pytest
from django.urls import reverse

from missions.models import Event, Mission
from missions.services import mission_cancel, mission_fail, mission_transition
from reviews.gates import GateError, gate_decide, gate_open
from reviews.models import ApprovalGate


def _waiting(requester, status=Mission.Status.AWAITING_DEPLOY_APPROVAL, kind=ApprovalGate.Kind.DEPLOY):
    mission = Mission.objects.create(
        requester=requester, title="Gated", request="r", budget_usd=Decimal("1.00"), status=status
    )
    return mission, gate_open(mission=mission, kind=kind, question="Deploy it?")


def test_it_closes_the_open_gate_when_the_mission_is_cancelled(pm):
    """Cancelling closes the pending deploy gate with the reason, and the timeline says so."""
    mission, gate = _waiting(pm)
    mission_cancel(mission=mission, by=pm)
    gate.refresh_from_db()
    assert gate.status == ApprovalGate.Status.CLOSED
    assert gate.comment == "The mission was cancelled. Cancelled by pm."
    assert gate.decided_by is None and gate.decided_at is not None
    assert mission.events.filter(
        kind=Event.Kind.GATE, message__startswith="Deploy approval closed without a decision"
    ).exists()


@pytest.mark.parametrize("end", [Mission.Status.COMPLETED, Mission.Status.FAILED, Mission.Status.CANCELLED])
def test_it_closes_open_gates_whichever_way_the_mission_ends(pm, end):
    mission, gate = _waiting(pm, status=Mission.Status.PAUSED_BUDGET, kind=ApprovalGate.Kind.BUDGET)
    if end == Mission.Status.FAILED:
        mission_fail(mission=mission, reason="The model server is gone.")
    else:
        mission_transition(mission=mission, to=end)
    gate.refresh_from_db()
    assert gate.status == ApprovalGate.Status.CLOSED
    assert gate.comment.startswith(f"The mission was {Mission.Status(end).label.lower()}.")


def test_it_refuses_to_decide_a_closed_gate(pm, reviewer):
    """Approving the deploy of a cancelled mission is refused with a clear message; nothing changes."""
    mission, gate = _waiting(pm)
    mission_cancel(mission=mission, by=pm)
    with pytest.raises(GateError, match="This gate was closed without a decision: The mission was cancelled"):
        gate_decide(gate=gate, by=reviewer, decision="approved")
    gate.refresh_from_db()
    mission.refresh_from_db()
    assert (gate.status, gate.decided_by, mission.status) == ("closed", None, "cancelled")


def test_it_refuses_a_pending_gate_left_on_a_finished_mission(pm, reviewer):
    """A gate still pending on a mission that already ended (data from before this rule) cannot be approved."""
    mission, gate = _waiting(pm)
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.CANCELLED)
    with pytest.raises(GateError, match="The mission is already cancelled; its gates can no longer be decided."):
        gate_decide(gate=gate, by=reviewer, decision="approved")
    gate.refresh_from_db()
    assert gate.is_pending


def test_it_tells_the_reviewer_in_the_page_that_the_gate_was_closed(client, pm, reviewer):
    """A reviewer's stale page posting "Approve" gets the message; the mission page shows the gate closed."""
    mission, gate = _waiting(pm)
    mission_cancel(mission=mission, by=pm)
    client.force_login(reviewer)
    response = client.post(reverse("reviews:decide", kwargs={"pk": gate.pk}), {"decision": "approved"}, follow=True)
    body = response.content.decode()
    assert "This gate was closed without a decision" in body
    assert "Closed without a decision" in body
    assert reverse("reviews:decide", kwargs={"pk": gate.pk}) not in body  # no decision form
    queue = client.get(reverse("reviews:queue"))
    assert list(queue.context["gates"]) == [] and list(queue.context["decided"]) == []


def test_it_shows_a_deadlock_as_deadlocked(client, pm):
    """A mission waiting on a deadlock gate is "Deadlocked" on its page, not "Awaiting plan approval"."""
    mission, _ = _waiting(pm, status=Mission.Status.DEADLOCKED, kind=ApprovalGate.Kind.DEADLOCK)
    client.force_login(pm)
    body = client.get(mission.get_absolute_url()).content.decode()
    assert 'class="status status-deadlocked" id="mission-status-label">Deadlocked<' in body
    assert mission.is_waiting and not mission.is_finished


def test_it_still_resolves_a_deadlock_gate_opened_before_the_deadlocked_status(pm, reviewer):
    """A deadlock gate whose mission waits in the old "awaiting plan approval" status can still be adopted."""
    mission, gate = _waiting(pm, status=Mission.Status.AWAITING_PLAN_APPROVAL, kind=ApprovalGate.Kind.DEADLOCK)
    gate_decide(gate=gate, by=reviewer, decision="approved")
    mission.refresh_from_db()
    assert mission.status == Mission.Status.STAFFING
