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

from missions.budget import budget_proposal
from missions.changes import change_line_numbers
from missions.events import event_record
from missions.inputs import GATE_COMMENT_MAX
from missions.models import Event, Mission, Step
from missions.selectors import current_plan, user_is_reviewer
from missions.services import mission_fail, mission_start, mission_transition, plan_approval_record
from notifications.services import notify_gate_decided, notify_gate_opened
from reviews import peer
from reviews.models import ApprovalGate, GateComment

LINE_COMMENTS_MAX = 200  # per gate: enough for a thorough review, not a flood

Decision = ApprovalGate.Decision

# Which decisions each kind of gate offers. A budget is yes or no; a plan (or a deadlocked one)
# can also go back to the C-suite with comments.
DECISIONS: dict[str, tuple[Decision, ...]] = {
    ApprovalGate.Kind.PLAN: (Decision.APPROVED, Decision.REJECTED, Decision.REVISION_REQUESTED),
    ApprovalGate.Kind.DEADLOCK: (Decision.APPROVED, Decision.REJECTED, Decision.REVISION_REQUESTED),
    # A change request on a deploy sends the work back to execution as a new step; a new deploy gate follows.
    ApprovalGate.Kind.DEPLOY: (Decision.APPROVED, Decision.REJECTED, Decision.REVISION_REQUESTED),
    ApprovalGate.Kind.BUDGET: (Decision.APPROVED, Decision.REJECTED),
    ApprovalGate.Kind.REVIEW: (Decision.APPROVED, Decision.REJECTED, Decision.REVISION_REQUESTED),
}
# A "no" or a "change this" without a reason leaves the agents (and the audit) guessing.
NEEDS_COMMENT = {Decision.REJECTED: "a rejection", Decision.REVISION_REQUESTED: "a change request"}


class GateError(Exception):
    """A decision that cannot be taken; the message is shown to the reviewer."""


class GateForbidden(GateError):
    """This person may not decide this gate (not a reviewer, or the mission's requester)."""


class GateSettled(GateError):
    """The gate is past deciding: decided already, closed, or its mission finished."""


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
        notify_gate_opened(gate)  # reviewers' badges, queues, toasts and mail, after commit
    return gate


def gate_open_budget(*, mission: Mission, reason: str, resume_to: str) -> None:
    """Stop spending and ask a reviewer for more budget; approval adds the proposal and resumes at ``resume_to``.

    1. A mission already stopped, or already waiting, needs nothing more (a cheap check; step 3 decides).
    2. The CFO proposes the increase from the ledger's spend per agent and step (``missions.budget``), in a
       metered call made only if it fits what is left; otherwise the proposal is computed, and the gate says why.
       Two workers that run out together may both ask; only one gate opens, and both calls are on the ledger.
    3. Pause and open the gate in one transaction, with the breakdown and the proposal in its data.
    """
    active = tuple(s for s in Mission.Status.values if s not in Mission.FINISHED and s not in Mission.WAITING)
    mission.refresh_from_db()
    if mission.status not in active:
        return
    proposal = budget_proposal(mission=mission, reason=reason)
    with transaction.atomic():
        if not mission_transition(
            mission=mission, to=Mission.Status.PAUSED_BUDGET, expected=active, reason=reason, paused_from=resume_to
        ):
            return
        mission.refresh_from_db()
        increase = proposal.increase_usd
        source = "proposed by the CFO" if proposal.by_cfo else "computed from the spend: the CFO could not propose"
        gate_open(
            mission=mission,
            kind=ApprovalGate.Kind.BUDGET,
            question=f"{reason} Approve to raise the budget by ${increase} to ${mission.budget_usd + increase} "
            f"({source}).",
            data=proposal.gate_data(mission),
        )


def gate_can_decide(user: AbstractBaseUser, gate: ApprovalGate) -> bool:
    return gate.is_pending and user_is_reviewer(user) and gate.mission.requester_id != user.pk


def gate_decisions(gate: ApprovalGate) -> tuple[Decision, ...]:
    if gate.kind == ApprovalGate.Kind.DEPLOY and (gate.data or {}).get("unmerged"):
        # Resolving the moved default branch failed already: a new step would wait behind the failed one.
        return (Decision.APPROVED, Decision.REJECTED)
    return DECISIONS[gate.kind]


def gate_decide(
    *, gate: ApprovalGate, by: AbstractBaseUser, decision: str, comment: str = "", step_key: str = ""
) -> ApprovalGate:
    """Record the decision (once) and move the mission on after commit.

    ``step_key`` names the step a change request on a deploy revises (its agent does the work); empty: a new step.
    """
    gate.refresh_from_db()
    if gate.is_closed:
        raise GateSettled(f"This gate was closed without a decision: {gate.comment} There is nothing left to decide.")
    if not gate.is_pending:
        raise GateSettled("This gate was already decided.")
    mission = Mission.objects.get(pk=gate.mission_id)  # fresh: the cached one may predate a cancel
    if mission.is_finished:
        status = mission.get_status_display().lower()
        raise GateSettled(f"The mission is already {status}; its gates can no longer be decided.")
    if decision not in gate_decisions(gate):
        raise GateError(f"A {gate.get_kind_display().lower()} cannot be decided as {decision!r}.")
    decision = Decision(decision)
    if not user_is_reviewer(by):
        raise GateForbidden("Only reviewers can decide approval gates.")
    if mission.requester_id == by.pk:
        raise GateForbidden("You filed this mission; another reviewer has to decide.")
    comment = comment.strip()
    if len(comment) > GATE_COMMENT_MAX:
        raise GateError(f"The comment is {len(comment):,} characters long; the limit is {GATE_COMMENT_MAX:,}.")
    if decision in NEEDS_COMMENT and not comment:
        raise GateError(f"Say why: {NEEDS_COMMENT[decision]} needs a comment.")
    step_key = step_key.strip()
    if step_key and step_key not in revisable_steps(gate):
        raise GateError(f"There is no step {step_key[:60]!r} to revise; choose one of the plan's steps or a new step.")
    with transaction.atomic():
        # Mission row first, then the gate: the order a cancel or a failure takes them in (mission_transition,
        # then gates_close_open), so a click and a cancel at the same moment queue instead of deadlocking.
        Mission.objects.select_for_update().filter(pk=mission.pk).exists()
        # The conditional UPDATE makes decisions immutable even when two reviewers click at once.
        decided = (
            ApprovalGate.objects.filter(pk=gate.pk, status=ApprovalGate.Status.PENDING)
            .exclude(mission__status__in=Mission.FINISHED)
            .update(status=decision, decided_by=by, decided_at=timezone.now(), comment=comment)
        )
        if not decided:
            gate.refresh_from_db()
            if gate.is_closed:
                raise GateSettled(f"This gate was closed without a decision: {gate.comment}")
            raise GateSettled("This gate was already decided.")
        gate.refresh_from_db()
        event_record(
            mission=mission,
            kind=Event.Kind.GATE,
            message=f"{gate.get_kind_display()} {gate.get_status_display().lower()} by {by}"
            + (f": “{comment}”" if comment else "."),
            data={"gate": gate.pk, "kind": gate.kind, "status": decision, "by": by.pk},
            actor=by,
        )
        notify_gate_decided(gate)  # it leaves every reviewer's badge and queue, after commit
        _apply(gate=gate, mission=mission, step_key=step_key)
    return gate


def revisable_steps(gate: ApprovalGate) -> list[str]:
    """The steps a change request on this deploy gate can name: the plan's code steps."""
    if gate.kind != ApprovalGate.Kind.DEPLOY:
        return []
    plan = current_plan(gate.mission)
    if plan is None:
        return []
    return list(plan.steps.filter(kind=Step.Kind.CODEGEN).values_list("key", flat=True))


def gate_comment_add(*, gate: ApprovalGate, by: AbstractBaseUser, path: str, line: str | int | None, body: str):
    """A reviewer's comment on one line of the gate's change (or on a whole file when ``line`` is empty).

    Only someone who may decide the gate may comment on it, and only on a line the change shows, so a
    comment always points at something the agent can find.
    """
    gate.refresh_from_db()
    if not gate_can_decide(by, gate) or Mission.objects.get(pk=gate.mission_id).is_finished:
        raise GateError("Only a reviewer who may decide this gate can comment on it, while it is open.")
    body = (body or "").strip()
    if not body:
        raise GateError("Write the comment first.")
    if len(body) > GATE_COMMENT_MAX:
        raise GateError(f"The comment is {len(body):,} characters long; the limit is {GATE_COMMENT_MAX:,}.")
    lines = change_line_numbers((gate.data or {}).get("change") or {})
    path = (path or "").strip()
    if path not in lines:
        raise GateError("Choose a file of this change to comment on.")
    number = None
    if line not in (None, ""):
        try:
            number = int(str(line).strip())
        except ValueError:
            raise GateError(f"Line {str(line)[:20]!r} is not a number.") from None
        if number not in lines[path]:
            raise GateError(f"Line {number} of {path} is not in the change shown; comment on a line of its diff.")
    if gate.line_comments.count() >= LINE_COMMENTS_MAX:
        raise GateError(f"This gate has {LINE_COMMENTS_MAX} comments already; put the rest in the decision's comment.")
    with transaction.atomic():
        comment = GateComment.objects.create(gate=gate, author=by, path=path, line=number, body=body)
        event_record(
            mission=gate.mission,
            kind=Event.Kind.GATE,
            message=f"{by} commented on {comment.anchor}: “{body[:200]}”",
            data={"gate": gate.pk, "kind": gate.kind, "status": gate.status, "comment": comment.pk, "by": by.pk},
            actor=by,
        )
    return comment


def _apply(*, gate: ApprovalGate, mission: Mission, step_key: str = "") -> None:
    """Move the mission on from the gate it was waiting at; runs inside the decision's transaction."""
    kind, status, by = gate.kind, gate.status, gate.decided_by
    if status == Decision.REJECTED:
        reason = f"{gate.get_kind_display()} rejected by {gate.decided_by}. “{gate.comment}”"
        if kind == ApprovalGate.Kind.DEPLOY:  # a person said no to finished work: rejected, not failed
            mission_transition(
                mission=mission, to=Mission.Status.REJECTED, reason=reason, failure_reason=reason, actor=by
            )
        else:
            if kind == ApprovalGate.Kind.REVIEW:  # the held step failed; retrying the mission starts from it
                peer.step_review_reject(gate=gate, mission=mission)
            mission_fail(mission=mission, reason=reason, actor=by)
        return
    moved = False
    if kind == ApprovalGate.Kind.DEPLOY and status == Decision.REVISION_REQUESTED:
        moved = _revision_step_add(gate=gate, mission=mission, step_key=step_key)
    elif kind == ApprovalGate.Kind.DEPLOY:
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
        if moved and approved:
            plan_approval_record(mission=mission)
    elif kind == ApprovalGate.Kind.REVIEW:
        # Approve: the held step is accepted as it is. Request changes: it runs once more with the comment.
        if status == Decision.APPROVED:
            peer.step_review_accept(gate=gate, mission=mission)
        else:
            peer.step_review_revise(gate=gate, mission=mission)
        moved = mission_transition(
            mission=mission, to=Mission.Status.EXECUTING, expected=Mission.Status.AWAITING_REVIEW
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


def _revision_step_add(*, gate: ApprovalGate, mission: Mission, step_key: str) -> bool:
    """Back to execution with one new step that does what the reviewer asked; its success opens a new deploy gate.

    Naming a step makes the new step its revision (same agent and role, its brief included); otherwise the
    author of the last code step does it. The new step depends on every step so far: it starts from the
    reviewed head.
    """
    if not mission_transition(
        mission=mission,
        to=Mission.Status.EXECUTING,
        expected=Mission.Status.AWAITING_DEPLOY_APPROVAL,
        reason=f"Changes requested by {gate.decided_by}: “{gate.comment}”",
        deploy_started_at=None,
        actor=gate.decided_by,
    ):
        return False
    plan = current_plan(mission)
    steps = list(plan.steps.select_related("agent"))
    keys = {s.key for s in steps}
    named = next((s for s in steps if s.key == step_key), None)
    author = named or next((s for s in reversed(steps) if s.kind == Step.Kind.CODEGEN and s.agent_id), None)
    stem = f"{named.key[:40]}-rev" if named else "revise-"
    number = next(n for n in range(1, len(steps) + 2) if f"{stem}{n}" not in keys)
    step = Step.objects.create(
        plan=plan,
        key=f"{stem}{number}",
        order=max((s.order for s in steps), default=0) + 1,
        title=(f"Revise {named.key}: " if named else "Changes requested: ") + gate.comment.splitlines()[0][:120],
        kind=Step.Kind.CODEGEN,
        role=author.role if author else "developer",
        agent=author.agent if author else None,
        instructions=_revision_instructions(gate, named),
        depends_on=[s.key for s in steps],
        acceptance=["every reviewer comment is addressed", "the project's whole test suite passes"],
    )
    event_record(
        mission=mission,
        kind=Event.Kind.STEP,
        message=f"Step {step.key} added: {step.title}.",
        data={"step": step.key, "status": step.status, "gate": gate.pk},
        actor=gate.decided_by,
    )
    return True


def _revision_instructions(gate: ApprovalGate, named: Step | None) -> str:
    parts = [f"A human reviewer read the change at the deploy gate and asked for changes:\n{gate.comment}"]
    comments = list(gate.line_comments.all())
    if comments:
        parts.append(
            "Their comments on the code (file:line — comment):\n"
            + "\n".join(f"- {c.anchor} — {c.body}" for c in comments)
        )
    if named:
        parts.append(f"This revises step {named.key} ({named.title}). Its instructions were:\n{named.instructions}")
    parts.append("Change only what the comments ask for, keep the rest of the work as it is, and run the tests.")
    return "\n\n".join(parts)


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
