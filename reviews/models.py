from django.conf import settings
from django.db import models

from missions.inputs import GATE_COMMENT_MAX


class PeerReview(models.Model):
    """A reviewer agent's verdict on one attempt of a step (or on a plan), with its line comments.

    ``comments`` is a list of ``{"path", "line", "body"}`` anchored to lines of the diff the reviewer saw
    (``line`` in the new version of ``path``); comments the model anchored elsewhere were dropped.
    """

    class Verdict(models.TextChoices):
        APPROVE = "approve", "Approve"
        REQUEST_CHANGES = "request_changes", "Request changes"
        REJECT = "reject", "Reject"

    mission = models.ForeignKey("missions.Mission", on_delete=models.CASCADE, related_name="peer_reviews")
    step = models.ForeignKey("missions.Step", null=True, blank=True, on_delete=models.CASCADE, related_name="reviews")
    plan = models.ForeignKey("missions.Plan", null=True, blank=True, on_delete=models.CASCADE, related_name="reviews")
    # The review round's decision cycle: its model calls (and a revision it asks for) are attributed to it.
    cycle = models.ForeignKey("missions.DecisionCycle", null=True, blank=True, on_delete=models.SET_NULL)
    reviewer = models.ForeignKey("agents.AgentSpec", on_delete=models.PROTECT)
    round = models.PositiveIntegerField(default=1)
    attempt = models.PositiveSmallIntegerField(default=1, help_text="The step's attempt that was reviewed.")
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    score = models.PositiveSmallIntegerField(default=0)
    summary = models.TextField(blank=True)
    comments = models.JSONField(default=list, blank=True)
    dropped_comments = models.PositiveSmallIntegerField(
        default=0, help_text="Comments the model anchored to a file or line that is not in the diff."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.reviewer.name}: {self.verdict}"


class ApprovalGate(models.Model):
    """A question for a human. Once decided, a gate never changes."""

    class Kind(models.TextChoices):
        PLAN = "plan", "Plan approval"
        DEPLOY = "deploy", "Deploy approval"
        BUDGET = "budget", "Budget increase"
        DEADLOCK = "deadlock", "Deadlock"
        REVIEW = "review", "Review"  # agent reviewers could not agree on a step, or one rejected it

    class Decision(models.TextChoices):
        """What a person can decide; each value is also the status the gate ends in."""

        APPROVED = "approved", "Approve"
        REJECTED = "rejected", "Reject"
        REVISION_REQUESTED = "revision_requested", "Request changes"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        REVISION_REQUESTED = "revision_requested", "Revision requested"
        CLOSED = "closed", "Closed"  # the mission ended before anyone decided; the reason is in `comment`

    mission = models.ForeignKey("missions.Mission", on_delete=models.CASCADE, related_name="gates")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    question = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True, max_length=GATE_COMMENT_MAX)

    class Meta:
        ordering = ["requested_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["mission", "kind"],
                condition=models.Q(status="pending"),
                name="one_pending_gate_per_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING

    @property
    def is_closed(self) -> bool:
        return self.status == self.Status.CLOSED


class GateComment(models.Model):
    """A reviewer's comment on a gate's change, on one line of one file (or on a whole file when ``line`` is None).

    Comments are written before the decision and go with it: a change request hands them to the agent.
    """

    gate = models.ForeignKey(ApprovalGate, on_delete=models.CASCADE, related_name="line_comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    path = models.CharField(max_length=500)
    line = models.PositiveIntegerField(null=True, blank=True)
    body = models.TextField(max_length=GATE_COMMENT_MAX)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["path", "line", "created_at", "id"]

    def __str__(self) -> str:
        return f"{self.anchor}: {self.body[:40]}"

    @property
    def anchor(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    @property
    def author_label(self) -> str:
        return str(self.author)
