"""Approval gates, the whole lifecycle in one place: open, who may decide, decide, apply the decision, close.

1. The engine opens a gate (`gate_open`, `gate_open_budget`) and the mission waits, holding no worker.
2. `gate_can_decide` says who may decide: a reviewer who did not file the mission, while it is pending.
3. `gate_decide` records the decision once (a conditional UPDATE) and, in the same transaction,
   `_apply` moves the mission on; the next phase starts after commit.
4. When a mission finishes any other way, `mission_transition` calls `gates_close_open` in the
   transaction that finishes it, so no finished mission ever shows a gate that can still be decided.

missions/ never decides a gate: the only way in from there is `gates_close_open`.
"""

from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from missions.events import event_record
from missions.inputs import GATE_COMMENT_MAX
from missions.models import Event, Mission
from missions.selectors import user_is_reviewer
from missions.services import mission_fail, mission_start, mission_transition
from reviews.models import ApprovalGate

Decision = ApprovalGate.Decision

# Which decisions each kind of gate offers. A budget is yes or no; a plan (or a deadlocked one)
# can also go back to the C-suite with comments.
DECISIONS: dict[str, tuple[Decision, ...]] = {
    ApprovalGate.Kind.PLAN: (Decision.APPROVED, Decision.REJECTED, Decision.REVISION_REQUESTED),
    ApprovalGate.Kind.DEADLOCK: (Decision.APPROVED, Decision.REJECTED, Decision.REVISION_REQUESTED),
    ApprovalGate.Kind.DEPLOY: (Decision.APPROVED, Decision.REJECTED),
    ApprovalGate.Kind.BUDGET: (Decision.APPROVED, Decision.REJECTED),
    ApprovalGate.Kind.REVIEW: (Decision.APPROVED, Decision.REJECTED, Decision.REVISION_REQUESTED),
}
# A "no" or a "change this" without a reason leaves the agents (and the audit) guessing.
NEEDS_COMMENT = {Decision.REJECTED: "a rejection", Decision.REVISION_REQUESTED: "a change request"}


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


def gate_open_budget(*, mission: Mission, reason: str, resume_to: str) -> None:
    """Stop spending and ask a reviewer for more budget; approval resumes at ``resume_to``."""
    increase = max(Decimal("1.00"), mission.budget_usd).quantize(Decimal("0.01"))
    with transaction.atomic():
        active = tuple(s for s in Mission.Status.values if s not in Mission.FINISHED and s not in Mission.WAITING)
        if not mission_transition(
            mission=mission, to=Mission.Status.PAUSED_BUDGET, expected=active, reason=reason, paused_from=resume_to
        ):
            return
        gate_open(
            mission=mission,
            kind=ApprovalGate.Kind.BUDGET,
            question=f"{reason} Approve to raise the budget by ${increase} to ${mission.budget_usd + increase}.",
            data={"increase_usd": str(increase)},
        )


def gate_can_decide(user: AbstractBaseUser, gate: ApprovalGate) -> bool:
    return gate.is_pending and user_is_reviewer(user) and gate.mission.requester_id != user.pk


def gate_decisions(gate: ApprovalGate) -> tuple[Decision, ...]:
    return DECISIONS[gate.kind]


def gate_decide(*, gate: ApprovalGate, by: AbstractBaseUser, decision: str, comment: str = "") -> ApprovalGate:
    """Record the decision (once) and move the mission on after commit."""
    gate.refresh_from_db()
    if gate.is_closed:
        raise GateError(f"This gate was closed without a decision: {gate.comment} There is nothing left to decide.")
    if not gate.is_pending:
        raise GateError("This gate was already decided.")
    mission = Mission.objects.get(pk=gate.mission_id)  # fresh: the cached one may predate a cancel
    if mission.is_finished:
        status = mission.get_status_display().lower()
        raise GateError(f"The mission is already {status}; its gates can no longer be decided.")
    if decision not in gate_decisions(gate):
        raise GateError(f"A {gate.get_kind_display().lower()} cannot be decided as {decision!r}.")
    decision = Decision(decision)
    if not user_is_reviewer(by):
        raise GateError("Only reviewers can decide approval gates.")
    if mission.requester_id == by.pk:
        raise GateError("You filed this mission; another reviewer has to decide.")
    comment = comment.strip()
    if len(comment) > GATE_COMMENT_MAX:
        raise GateError(f"The comment is {len(comment):,} characters long; the limit is {GATE_COMMENT_MAX:,}.")
    if decision in NEEDS_COMMENT and not comment:
        raise GateError(f"Say why: {NEEDS_COMMENT[decision]} needs a comment.")
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
            mission=mission,
            kind=Event.Kind.GATE,
            message=f"{gate.get_kind_display()} {gate.get_status_display().lower()} by {by}"
            + (f": “{comment}”" if comment else "."),
            data={"gate": gate.pk, "kind": gate.kind, "status": decision, "by": by.pk},
            actor=by,
        )
        _apply(gate=gate, mission=mission)
    return gate


def _apply(*, gate: ApprovalGate, mission: Mission) -> None:
    """Move the mission on from the gate it was waiting at; runs inside the decision's transaction."""
    kind, status, by = gate.kind, gate.status, gate.decided_by
    if status == Decision.REJECTED:
        reason = f"{gate.get_kind_display()} rejected by {gate.decided_by}. “{gate.comment}”"
        if kind == ApprovalGate.Kind.DEPLOY:  # a person said no to finished work: rejected, not failed
            mission_transition(
                mission=mission, to=Mission.Status.REJECTED, reason=reason, failure_reason=reason, actor=by
            )
        else:
            mission_fail(mission=mission, reason=reason, actor=by)
        return
    moved = False
    if kind == ApprovalGate.Kind.DEPLOY:
        moved = mission_transition(
            mission=mission, to=Mission.Status.DEPLOYING, expected=Mission.Status.AWAITING_DEPLOY_APPROVAL, actor=by
        )
    elif kind in (ApprovalGate.Kind.PLAN, ApprovalGate.Kind.DEADLOCK):
        approved = status == Decision.APPROVED
        moved = mission_transition(
            mission=mission,
            to=Mission.Status.STAFFING if approved else Mission.Status.QUEUED,
            # A deadlock gate opened before the "deadlocked" status existed waits in plan approval.
            expected=(Mission.Status.AWAITING_PLAN_APPROVAL, Mission.Status.DEADLOCKED),
            actor=by,
        )
    elif kind == ApprovalGate.Kind.BUDGET:
        increase = Decimal(gate.data.get("increase_usd", "0"))
        Mission.objects.filter(pk=mission.pk, status=Mission.Status.PAUSED_BUDGET).update(
            budget_usd=F("budget_usd") + increase
        )
        mission.refresh_from_db()
        moved = mission_transition(
            mission=mission,
            to=mission.paused_from or Mission.Status.QUEUED,
            expected=Mission.Status.PAUSED_BUDGET,
            reason=f"Budget raised by ${increase} to ${mission.budget_usd}.",
            paused_from="",
            actor=by,
        )
    if moved:
        transaction.on_commit(lambda: mission_start(mission.pk), robust=True)


def gates_close_open(*, mission: Mission, reason: str) -> int:
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
