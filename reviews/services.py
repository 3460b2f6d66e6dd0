"""Approval gates: a question for a human, decided once, by a reviewer who did not file the mission."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from missions.events import event_record
from missions.inputs import GATE_COMMENT_MAX
from missions.models import Event, Mission
from missions.selectors import user_is_reviewer
from reviews.models import ApprovalGate

# Which decisions each kind of gate offers. A deploy or a budget is yes or no;
# a plan (or a deadlocked one) can also go back to the C-suite with comments.
DECISIONS = {
    ApprovalGate.Kind.PLAN: ("approved", "rejected", "revision_requested"),
    ApprovalGate.Kind.DEADLOCK: ("approved", "rejected", "revision_requested"),
    ApprovalGate.Kind.DEPLOY: ("approved", "rejected"),
    ApprovalGate.Kind.BUDGET: ("approved", "rejected"),
}


class GateError(Exception):
    """A decision that cannot be taken; the message is shown to the reviewer."""


def gate_open(*, mission: Mission, kind: str, question: str, data: dict | None = None) -> ApprovalGate:
    """Ask the question; at most one pending gate of a kind per mission."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                gate = ApprovalGate.objects.create(mission=mission, kind=kind, question=question, data=data or {})
        except IntegrityError:
            return ApprovalGate.objects.get(mission=mission, kind=kind, status=ApprovalGate.Status.PENDING)
        event_record(
            mission=mission,
            kind=Event.Kind.GATE,
            message=f"{gate.get_kind_display()} requested: {question}",
            data={"gate": gate.pk, "kind": kind, "status": gate.status},
        )
    return gate


def gate_can_decide(user: AbstractBaseUser, gate: ApprovalGate) -> bool:
    return gate.is_pending and user_is_reviewer(user) and gate.mission.requester_id != user.pk


def gate_decide(*, gate: ApprovalGate, by: AbstractBaseUser, decision: str, comment: str = "") -> ApprovalGate:
    """Record the decision (once) and move the mission on after commit."""
    from missions.services import mission_apply_gate_decision

    gate.refresh_from_db()
    if gate.is_closed:
        raise GateError(f"This gate was closed without a decision: {gate.comment} There is nothing left to decide.")
    if not gate.is_pending:
        raise GateError("This gate was already decided.")
    mission = Mission.objects.get(pk=gate.mission_id)  # fresh: the cached one may predate a cancel
    if mission.is_finished:
        status = mission.get_status_display().lower()
        raise GateError(f"The mission is already {status}; its gates can no longer be decided.")
    if decision not in DECISIONS[gate.kind]:
        raise GateError(f"A {gate.get_kind_display().lower()} cannot be decided as {decision!r}.")
    if not user_is_reviewer(by):
        raise GateError("Only reviewers can decide approval gates.")
    if gate.mission.requester_id == by.pk:
        raise GateError("You filed this mission; another reviewer has to decide.")
    comment = comment.strip()
    if len(comment) > GATE_COMMENT_MAX:
        raise GateError(f"The comment is {len(comment):,} characters long; the limit is {GATE_COMMENT_MAX:,}.")
    if decision == ApprovalGate.Status.REVISION_REQUESTED and not comment:
        raise GateError("Say what should change: a revision request needs a comment.")
    with transaction.atomic():
        # The conditional UPDATE makes decisions immutable even when two reviewers click at once.
        decided = (
            ApprovalGate.objects.filter(pk=gate.pk, status=ApprovalGate.Status.PENDING)
            .exclude(mission__status__in=Mission.FINISHED)
            .update(status=decision, decided_by=by, decided_at=timezone.now(), comment=comment)
        )
        if not decided:
            gate.refresh_from_db()
            if gate.is_closed:
                raise GateError(f"This gate was closed without a decision: {gate.comment}")
            raise GateError("This gate was already decided.")
        gate.refresh_from_db()
        event_record(
            mission=gate.mission,
            kind=Event.Kind.GATE,
            message=f"{gate.get_kind_display()} {gate.get_status_display().lower()} by {by}"
            + (f": “{comment}”" if comment else "."),
            data={"gate": gate.pk, "kind": gate.kind, "status": decision},
        )
        mission_apply_gate_decision(gate=gate)
    return gate


def gate_close_open(*, mission: Mission, reason: str) -> int:
    """Close the mission's undecided gates because it ended, recording why; returns how many were closed.

    Runs inside the transaction that finishes the mission, so a reviewer's
    click that comes after it finds the gate closed, never pending.
    """
    closed = 0
    for gate in ApprovalGate.objects.select_for_update().filter(mission=mission, status=ApprovalGate.Status.PENDING):
        gate.status = ApprovalGate.Status.CLOSED
        gate.decided_at = timezone.now()
        gate.comment = reason[:GATE_COMMENT_MAX]
        gate.save(update_fields=["status", "decided_at", "comment"])
        event_record(
            mission=mission,
            kind=Event.Kind.GATE,
            message=f"{gate.get_kind_display()} closed without a decision: {reason}",
            data={"gate": gate.pk, "kind": gate.kind, "status": gate.status},
        )
        closed += 1
    return closed
