"""Peer review by agents: after a step's tests pass, its reviewers judge the change and the mission's rule decides.

1. `step_reviewers`: the mission's reviewers (AgentSpec names, from the template or the PM), plus one
   specialist in the step's field: an active dynamic agent the mission may use whose role is the step's
   role and who is not the step's own agent.
2. `step_review_round`: one round is a decision cycle of kind "review". Every reviewer reads the step
   brief, its test result and its diff and answers a StepReview, through the metered client (purpose
   "review", attributed to the step and the round's cycle). Comments anchored to a file or line that is
   not in the diff are dropped; text is cleaned. Each review is a PeerReview row and an event.
3. `consensus`: any reject goes to a human; else the rule (majority or unanimous) approves or asks for
   changes. Changes are a new attempt of the step (missions/engine/execution.py) while fewer than
   REVIEW_MAX_ROUNDS revisions were asked; then a human decides at a review gate.
4. The review gate's decisions, applied by reviews/gates.py: `step_review_accept`, `step_review_revise`,
   `step_review_reject`.
"""

import re
from dataclasses import dataclass, field

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from agents.errors import ModelOutputError
from agents.models import AgentSpec
from agents.runtime.metering import CallContext
from agents.runtime.structured import ask_structured
from agents.schemas import StepReview
from agents.services import agent_message_record
from missions import briefs
from missions.changes import diff_line_numbers
from missions.events import event_record
from missions.models import DecisionCycle, Event, Mission, MissionTemplate, Step
from reviews.models import PeerReview

Verdict = PeerReview.Verdict
APPROVE, REVISE, HUMAN = "approve", "revise", "human"
SUMMARY_MAX, BODY_MAX, PATH_MAX = 2000, 2000, 500
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass
class RoundOutcome:
    """What one review round decided, and what a revision or a human needs to know."""

    decision: str  # APPROVE, REVISE or HUMAN
    round: int
    cycle: DecisionCycle
    reviews: list[PeerReview] = field(default_factory=list)
    reason: str = ""

    def revision(self) -> dict:
        """The changes asked for, as the step's next attempt reads them (Step.revision)."""
        asking = [r for r in self.reviews if r.verdict != Verdict.APPROVE]
        return {
            "by": ", ".join(r.reviewer.title for r in asking) or "the reviewers",
            "round": self.round,
            "cycle": self.cycle.pk,
            "summary": " ".join(r.summary for r in asking)[:SUMMARY_MAX],
            "comments": [c for r in asking for c in r.comments][:30],
        }


def clean_text(value: str, limit: int) -> str:
    """Model text made safe to store and show: no control or direction-changing characters, bounded."""
    return _CONTROL.sub("", str(value)).strip()[:limit]


def comments_anchor(comments, lines: dict[str, set[int]]) -> tuple[list[dict], int]:
    """(the comments whose file and line the diff shows, cleaned; how many were dropped)."""
    kept, dropped = [], 0
    for comment in comments:
        path = clean_text(comment.path, PATH_MAX).removeprefix("./")
        if path not in lines and path[:2] in ("a/", "b/"):
            path = path[2:]
        body = clean_text(comment.body, BODY_MAX)
        if path in lines and comment.line in lines[path] and body:
            kept.append({"path": path, "line": comment.line, "body": body})
        else:
            dropped += 1
    return kept, dropped


def consensus(verdicts: list[str], rule: str, asked: int) -> str:
    """ "reject" when anyone rejects; "approve" when the rule is met among the ``asked``; else "request_changes"."""
    if Verdict.REJECT in verdicts:
        return Verdict.REJECT
    approvals = verdicts.count(Verdict.APPROVE)
    if rule == MissionTemplate.ReviewRule.UNANIMOUS:
        met = asked > 0 and approvals == asked
    else:
        met = approvals * 2 > asked
    return Verdict.APPROVE if met else Verdict.REQUEST_CHANGES


def step_reviewers(mission: Mission, step: Step) -> list[AgentSpec]:
    """Who reviews ``step``: the mission's reviewers in their order, then a specialist in the step's field."""
    names = [name for name in (mission.reviewers or []) if isinstance(name, str)]
    if not names:
        return []
    usable = AgentSpec.objects.usable_for(mission).filter(is_active=True).select_related("model_profile")
    found = {agent.name: agent for agent in usable.filter(name__in=names)}
    chosen = [found[name] for name in dict.fromkeys(names) if name in found and found[name].pk != step.agent_id]
    specialist = (
        usable.filter(is_dynamic=True, role=step.role)
        .exclude(pk=step.agent_id)
        .exclude(pk__in=[agent.pk for agent in chosen])
        .order_by("-reviewed_for_reuse", "pk")
        .first()
    )
    return chosen + ([specialist] if specialist else [])


def step_review_round(
    *, mission: Mission, step: Step, reviewers: list[AgentSpec], diff: str, tests: str
) -> RoundOutcome:
    """Ask every reviewer about the step's change (one round) and decide; raises what a model call raises."""
    round_no = (PeerReview.objects.filter(step=step).aggregate(last=Max("round"))["last"] or 0) + 1
    names = ", ".join(agent.title for agent in reviewers)
    cycle = _cycle_open(mission, f"Peer review of step {step.key}, round {round_no}, by {names}.")
    prompt = briefs.step_review_brief(
        step, diff=diff, tests=tests, round_no=round_no, max_rounds=settings.REVIEW_MAX_ROUNDS
    )
    lines = diff_line_numbers(diff)
    reviews = []
    try:
        for agent in reviewers:
            context = CallContext(
                mission_id=mission.pk, purpose="review", cycle_id=cycle.pk, step_id=step.pk, agent_id=agent.pk
            )
            try:
                answer = async_to_sync(ask_structured)(
                    profile=agent.model_profile or mission.model_profile,
                    system_prompt=agent.system_prompt,
                    prompt=prompt,
                    output_type=StepReview,
                    context=context,
                )
            except ModelOutputError as error:  # one unusable reviewer does not fail the step: it did not approve
                event_record(
                    mission=mission,
                    kind=Event.Kind.REVIEW,
                    message=f"{agent.title}'s review of step {step.key} was unusable: {error}",
                    data={"step": step.key, "round": round_no, "agent": agent.name},
                    actor_agent=agent,
                )
                continue
            reviews.append(_review_record(mission, step, cycle, agent, answer, lines, round_no))
    except BaseException as error:  # paused, cancelled, out of budget, worker stopping: the round ends here
        DecisionCycle.objects.filter(pk=cycle.pk, finished_at__isnull=True).update(
            summary=f"Step {step.key}, round {round_no}: interrupted ({type(error).__name__}).",
            finished_at=timezone.now(),
        )
        raise
    verdict = consensus([r.verdict for r in reviews], mission.review_rule, asked=len(reviewers))
    if verdict == Verdict.APPROVE:
        decision, reason = APPROVE, "approved"
    elif verdict == Verdict.REJECT:
        decision, reason = (
            HUMAN,
            "rejected by " + ", ".join(r.reviewer.title for r in reviews if r.verdict == Verdict.REJECT),
        )
    elif not any(r.verdict == Verdict.REQUEST_CHANGES for r in reviews):
        # Nobody said what to change (every answer unusable, or approvals short of the rule): sending the step
        # back would repeat the same round with nothing to act on, so a person decides.
        unusable = len(reviewers) - len(reviews)
        decision, reason = HUMAN, f"no usable request for changes ({unusable} unusable review{'s' * (unusable != 1)})"
    elif round_no <= settings.REVIEW_MAX_ROUNDS:
        decision, reason = REVISE, "changes requested"
    else:
        rounds = settings.REVIEW_MAX_ROUNDS
        decision, reason = HUMAN, f"still not approved after {rounds} revision{'s' if rounds > 1 else ''}"
    tally = ", ".join(f"{r.reviewer.title}: {r.get_verdict_display().lower()} ({r.score}/5)" for r in reviews)
    outcome = DecisionCycle.Outcome.APPROVED if decision == APPROVE else DecisionCycle.Outcome.REJECTED
    _cycle_close(cycle, outcome, f"Step {step.key}, round {round_no}: {reason}. {tally or 'No usable review.'}")
    return RoundOutcome(decision=decision, round=round_no, cycle=cycle, reviews=reviews, reason=reason)


def _review_record(
    mission: Mission, step: Step, cycle: DecisionCycle, agent: AgentSpec, answer: StepReview, lines, round_no: int
) -> PeerReview:
    comments, dropped = comments_anchor(answer.comments, lines)
    with transaction.atomic():
        review = PeerReview.objects.create(
            mission=mission,
            step=step,
            cycle=cycle,
            reviewer=agent,
            round=round_no,
            attempt=step.attempt,
            verdict=answer.verdict,
            score=answer.score,
            summary=clean_text(answer.summary, SUMMARY_MAX),
            comments=comments,
            dropped_comments=dropped,
        )
        lines_text = "".join(f"\n- {c['path']}:{c['line']}: {c['body']}" for c in comments)
        agent_message_record(
            mission_id=mission.pk,
            cycle_id=cycle.pk,
            step_id=step.pk,
            agent_id=agent.pk,
            source=agent.title,
            content=f"{review.get_verdict_display()} ({review.score}/5): {review.summary}{lines_text}",
            data={"review": review.pk},
        )
        note = f" ({dropped} comment{'s' if dropped > 1 else ''} not on a line of the diff dropped)" if dropped else ""
        event_record(
            mission=mission,
            kind=Event.Kind.REVIEW,
            message=f"{agent.title} reviewed step {step.key} (round {round_no}): "
            f"{review.get_verdict_display().lower()}, {review.score}/5 — {review.summary}{note}",
            data={"review": review.pk, "step": step.key, "verdict": review.verdict, "round": round_no},
            actor_agent=agent,
        )
    return review


def _cycle_open(mission: Mission, summary: str) -> DecisionCycle:
    with transaction.atomic():
        # Steps run in parallel: lock the mission so two rounds never take the same cycle number.
        Mission.objects.select_for_update().filter(pk=mission.pk).first()
        number = (mission.cycles.aggregate(last=Max("number"))["last"] or 0) + 1
        cycle = DecisionCycle.objects.create(
            mission=mission, number=number, kind=DecisionCycle.Kind.REVIEW, rounds=1, summary=summary
        )
        event_record(mission=mission, kind=Event.Kind.CYCLE, message=summary, data={"cycle": number, "kind": "review"})
    return cycle


def _cycle_close(cycle: DecisionCycle, outcome: str, summary: str) -> None:
    with transaction.atomic():
        DecisionCycle.objects.filter(pk=cycle.pk).update(outcome=outcome, summary=summary, finished_at=timezone.now())
        event_record(
            mission=cycle.mission,
            kind=Event.Kind.CYCLE,
            message=f"Review #{cycle.number}: {DecisionCycle.Outcome(outcome).label.lower()}. {summary}",
            data={"cycle": cycle.number, "outcome": outcome},
        )


# ----------------------------------------------------------------------------- the review gate's decisions


def review_gate_question(step: Step) -> str:
    reason = (step.output or {}).get("review_reason", "the agent reviewers did not approve it")
    return (
        f"Step {step.key} ({step.title}): {reason}. Approve to accept the step as it is, request changes to "
        "send it back to its agent with your comment, or reject to fail the mission."
    )


def _held_step(gate) -> Step | None:
    return Step.objects.filter(pk=gate.data.get("step_id"), status=Step.Status.IN_REVIEW).first()


def step_review_accept(*, gate, mission: Mission) -> None:
    """A person accepted the held step as it is: it succeeded."""
    step = _held_step(gate)
    if step is None:
        return
    Step.objects.filter(pk=step.pk, status=Step.Status.IN_REVIEW).update(
        status=Step.Status.SUCCEEDED, finished_at=timezone.now()
    )
    event_record(
        mission=mission,
        kind=Event.Kind.STEP,
        message=f"Step {step.key} succeeded: accepted by {gate.decided_by} at the review gate.",
        data={"step": step.key, "status": Step.Status.SUCCEEDED},
        actor=gate.decided_by,
    )


def step_review_revise(*, gate, mission: Mission) -> None:
    """A person asked for changes: the step runs once more with the comment as its revision."""
    step = _held_step(gate)
    if step is None:
        return
    revision = {"by": str(gate.decided_by), "round": gate.data.get("round", 0), "summary": gate.comment, "comments": []}
    Step.objects.filter(pk=step.pk, status=Step.Status.IN_REVIEW).update(
        status=Step.Status.PENDING,
        revision=revision,
        review_revisions=F("review_revisions") + 1,  # the attempt this starts is a revision, not a retry
        error="",
        retry_at=None,
        finished_at=None,
    )
    event_record(
        mission=mission,
        kind=Event.Kind.STEP,
        message=f"Step {step.key} goes back to its agent with {gate.decided_by}'s comment.",
        data={"step": step.key, "status": Step.Status.PENDING},
        actor=gate.decided_by,
    )


def step_review_reject(*, gate, mission: Mission) -> None:
    """A person rejected the held step: it failed (the mission fails with it, in reviews/gates.py)."""
    step = _held_step(gate)
    if step is not None:
        # The rejected work stays on the mission branch: a retry's brief says so, with the person's reason.
        revision = {"by": str(gate.decided_by), "summary": gate.comment, "comments": [], "rejected": True}
        Step.objects.filter(pk=step.pk, status=Step.Status.IN_REVIEW).update(
            status=Step.Status.FAILED,
            error=f"Rejected at the review gate: {gate.comment}",
            revision=revision,
            finished_at=timezone.now(),
        )
