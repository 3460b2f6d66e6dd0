import re
import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.urls import reverse

from missions.inputs import ACCEPTANCE_MAX, REQUEST_MAX, TITLE_MAX

# A mission whose settled spend reaches this share of its budget gets one warning per budget level.
BUDGET_WARNING_FRACTION = Decimal("0.8")
VARIABLE_RE = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
# The reviewer agents (AgentSpec names, seeded by agents/seed.py) that review every step unless a template
# or the PM chooses others.
DEFAULT_REVIEWERS = ("code-reviewer", "security-reviewer")


def default_reviewers() -> list[str]:
    return list(DEFAULT_REVIEWERS)


class MissionTemplate(models.Model):
    """A reusable kind of mission whose text has ``{{ variable }}`` slots."""

    class ConversationMode(models.TextChoices):
        SEQUENTIAL = "sequential", "Sequential"
        ROUND_ROBIN = "round_robin", "Round-robin"
        SELECTOR = "selector", "Dynamic (selector)"
        BROADCAST = "broadcast", "Broadcast"

    class ConsensusRule(models.TextChoices):
        UNANIMOUS = "unanimous", "Unanimous"
        QUORUM = "quorum", "Quorum (majority of voters)"

    class DeadlockPolicy(models.TextChoices):
        GATE = "gate", "Ask a human (deadlock gate)"
        CEO = "ceo", "CEO breaks the tie"

    class ReviewRule(models.TextChoices):
        """How the agent reviewers' verdicts on a step combine (any reject goes to a human either way)."""

        MAJORITY = "majority", "Majority of reviewers approve"
        UNANIMOUS = "unanimous", "Every reviewer approves"

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    title_template = models.CharField(max_length=200)
    request_template = models.TextField()
    acceptance_template = models.TextField(blank=True)
    variables = models.JSONField(
        default=list, blank=True, help_text='List of {"name", "label", "help", "required", "default"}.'
    )
    conversation_mode = models.CharField(
        max_length=20, choices=ConversationMode.choices, default=ConversationMode.ROUND_ROBIN
    )
    consensus_rule = models.CharField(max_length=20, choices=ConsensusRule.choices, default=ConsensusRule.QUORUM)
    deadlock_policy = models.CharField(max_length=10, choices=DeadlockPolicy.choices, default=DeadlockPolicy.GATE)
    default_budget_usd = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("5.00"))
    reviewers = models.JSONField(
        default=default_reviewers,
        blank=True,
        help_text="Names of the agents that peer-review every step; an empty list turns peer review off.",
    )
    review_rule = models.CharField(max_length=10, choices=ReviewRule.choices, default=ReviewRule.MAJORITY)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def variable_names(self) -> list[str]:
        return [v["name"] for v in self.variables]

    def render(self, values: dict[str, str]) -> dict[str, str]:
        """Substitute the variables into title, request and acceptance text.

        Raises ``ValueError`` naming every missing or unknown variable, so the
        form can show them all at once.
        """
        known = set(self.variable_names())
        unknown = sorted(set(values) - known)
        filled = {v["name"]: (values.get(v["name"]) or v.get("default") or "").strip() for v in self.variables}
        missing = [v["name"] for v in self.variables if v.get("required", True) and not filled[v["name"]]]
        problems = []
        if missing:
            problems.append("missing: " + ", ".join(missing))
        if unknown:
            problems.append("unknown: " + ", ".join(unknown))
        if problems:
            raise ValueError("Template variables " + "; ".join(problems) + ".")

        def fill(text: str) -> str:
            return VARIABLE_RE.sub(lambda m: filled.get(m.group(1), m.group(0)), text)

        return {
            "title": fill(self.title_template),
            "request": fill(self.request_template),
            "acceptance_criteria": fill(self.acceptance_template),
        }


class Mission(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PLANNING = "planning", "Planning"
        VALIDATING = "validating", "Validating"
        AWAITING_PLAN_APPROVAL = "awaiting_plan_approval", "Awaiting plan approval"
        DEADLOCKED = "deadlocked", "Deadlocked"
        STAFFING = "staffing", "Staffing"
        EXECUTING = "executing", "Executing"
        AWAITING_REVIEW = "awaiting_review", "Awaiting review"
        AWAITING_DEPLOY_APPROVAL = "awaiting_deploy_approval", "Awaiting deploy approval"
        DEPLOYING = "deploying", "Deploying"
        PAUSED_BUDGET = "paused_budget", "Paused: budget"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"

    class Priority(models.TextChoices):
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"
        URGENT = "urgent", "Urgent"

    FINISHED = {Status.COMPLETED, Status.FAILED, Status.REJECTED, Status.CANCELLED}
    WAITING = {
        Status.AWAITING_PLAN_APPROVAL,
        Status.DEADLOCKED,
        Status.AWAITING_REVIEW,
        Status.AWAITING_DEPLOY_APPROVAL,
        Status.PAUSED_BUDGET,
        Status.PAUSED,
    }

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(max_length=TITLE_MAX)
    request = models.TextField(max_length=REQUEST_MAX)
    acceptance_criteria = models.TextField(blank=True, max_length=ACCEPTANCE_MAX)
    template = models.ForeignKey(MissionTemplate, null=True, blank=True, on_delete=models.SET_NULL)
    variables = models.JSONField(default=dict, blank=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="missions")
    status = models.CharField(max_length=30, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # The status a paused mission (by a person, or for budget) goes back to when it resumes.
    paused_from = models.CharField(max_length=30, choices=Status.choices, blank=True)
    budget_usd = models.DecimalField(max_digits=10, decimal_places=2)
    spent_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    reserved_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    # The budget the 80 % warning was last given for: a raised budget warns again at its own 80 %.
    budget_warned_at_usd = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    require_plan_approval = models.BooleanField(default=False)
    require_deploy_approval = models.BooleanField(default=True)
    consensus_rule = models.CharField(
        max_length=20, choices=MissionTemplate.ConsensusRule.choices, default=MissionTemplate.ConsensusRule.QUORUM
    )
    deadlock_policy = models.CharField(
        max_length=10, choices=MissionTemplate.DeadlockPolicy.choices, default=MissionTemplate.DeadlockPolicy.GATE
    )
    conversation_mode = models.CharField(
        max_length=20,
        choices=MissionTemplate.ConversationMode.choices,
        default=MissionTemplate.ConversationMode.ROUND_ROBIN,
    )
    # The agents that peer-review each step (AgentSpec names; empty: no peer review) and how they decide.
    reviewers = models.JSONField(default=list, blank=True)
    review_rule = models.CharField(
        max_length=10, choices=MissionTemplate.ReviewRule.choices, default=MissionTemplate.ReviewRule.MAJORITY
    )
    model_profile = models.ForeignKey("agents.ModelProfile", null=True, blank=True, on_delete=models.SET_NULL)
    # Against a project: its repository at base_sha, worked on branch missions/<code>; none: an empty repository.
    project = models.ForeignKey(
        "projects.Project", null=True, blank=True, on_delete=models.PROTECT, related_name="missions"
    )
    base_sha = models.CharField(max_length=40, blank=True)
    pushed_sha = models.CharField(max_length=40, blank=True, help_text="What was pushed to the project's remote.")
    uses_simulated_model = models.BooleanField(default=False)
    workspace_path = models.CharField(max_length=500, blank=True)
    knowledge_snapshot = models.TextField(blank=True, help_text="Knowledge given to this mission's steps.")
    deploy_started_at = models.DateTimeField(null=True, blank=True)
    deployed_sha = models.CharField(max_length=40, blank=True)
    deployed_ref = models.CharField(max_length=200, blank=True)
    deployed_at = models.DateTimeField(null=True, blank=True)
    artifact_path = models.CharField(max_length=500, blank=True)
    last_event_seq = models.PositiveIntegerField(default=0)
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("missions:detail", kwargs={"code": self.code})

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def is_waiting(self) -> bool:
        return self.status in self.WAITING

    @property
    def phase(self) -> str:
        """The status in a sentence, for the "now" line a watcher reads first."""
        return PHASES.get(self.status, self.get_status_display())

    @property
    def budget_remaining_usd(self) -> Decimal:
        return self.budget_usd - self.spent_usd - self.reserved_usd

    @property
    def budget_used_percent(self) -> int:
        if not self.budget_usd:
            return 100
        return min(100, int((self.spent_usd + self.reserved_usd) * 100 / self.budget_usd))

    @property
    def budget_warning_due(self) -> bool:
        """Settled spend has reached BUDGET_WARNING_FRACTION of the budget, and this budget was not warned of yet."""
        return (
            self.budget_usd > 0
            and self.spent_usd >= self.budget_usd * BUDGET_WARNING_FRACTION
            and self.budget_warned_at_usd != self.budget_usd
        )

    @property
    def deploy_tag(self) -> str:
        return f"mission-{self.code}"

    @property
    def deploy_branch(self) -> str:
        return f"missions/{self.code}"

    @property
    def group_name(self) -> str:
        return f"mission_{self.code.hex}"


PHASES = {
    Mission.Status.QUEUED: "Queued: waiting for a worker.",
    Mission.Status.PLANNING: "Planning: the C-suite drafts the plan and votes on it.",
    Mission.Status.VALIDATING: "Validating the plan.",
    Mission.Status.AWAITING_PLAN_APPROVAL: "Waiting for a reviewer to approve the plan.",
    Mission.Status.DEADLOCKED: "Deadlocked: a reviewer must decide.",
    Mission.Status.STAFFING: "Staffing: an agent for every step.",
    Mission.Status.EXECUTING: "Executing the plan's steps.",
    Mission.Status.AWAITING_REVIEW: "Waiting for a reviewer to review a step.",
    Mission.Status.AWAITING_DEPLOY_APPROVAL: "Waiting for a reviewer to approve the deploy.",
    Mission.Status.DEPLOYING: "Deploying.",
    Mission.Status.PAUSED_BUDGET: "Paused: the budget needs raising.",
    Mission.Status.PAUSED: "Paused.",
    Mission.Status.COMPLETED: "Completed.",
    Mission.Status.FAILED: "Failed.",
    Mission.Status.REJECTED: "Rejected.",
    Mission.Status.CANCELLED: "Cancelled.",
}


class DecisionCycle(models.Model):
    """One deliberation or phase of a mission, with its outcome."""

    class Kind(models.TextChoices):
        PLANNING = "planning", "Planning"
        VALIDATION = "validation", "Validation"
        STAFFING = "staffing", "Staffing"
        EXECUTION = "execution", "Execution"
        REVIEW = "review", "Review"
        DEPLOYMENT = "deployment", "Deployment"

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        CONSENSUS = "consensus", "Consensus"
        DEADLOCK = "deadlock", "Deadlock"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    mission = models.ForeignKey(Mission, on_delete=models.CASCADE, related_name="cycles")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    rounds = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.PENDING)
    summary = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["mission", "number"]
        constraints = [models.UniqueConstraint(fields=["mission", "number"], name="unique_cycle_number")]

    def __str__(self) -> str:
        return f"#{self.number} {self.kind} ({self.outcome})"


class Vote(models.Model):
    """A C-suite member's stance in one round. Dissent is kept."""

    class Stance(models.TextChoices):
        APPROVE = "approve", "Approve"
        OBJECT = "object", "Object"
        ABSTAIN = "abstain", "Abstain"

    cycle = models.ForeignKey(DecisionCycle, on_delete=models.CASCADE, related_name="votes")
    round = models.PositiveIntegerField(default=1)
    agent = models.ForeignKey("agents.AgentSpec", on_delete=models.PROTECT)
    stance = models.CharField(max_length=10, choices=Stance.choices)
    rationale = models.TextField()
    amendments = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cycle", "round", "id"]
        constraints = [models.UniqueConstraint(fields=["cycle", "round", "agent"], name="one_vote_per_round")]

    def __str__(self) -> str:
        return f"{self.agent.name}: {self.stance}"


class Plan(models.Model):
    mission = models.ForeignKey(Mission, on_delete=models.CASCADE, related_name="plans")
    version = models.PositiveIntegerField()
    summary = models.TextField(blank=True)
    cycle = models.ForeignKey(DecisionCycle, null=True, blank=True, on_delete=models.SET_NULL)
    staffed_at = models.DateTimeField(null=True, blank=True)
    # The forecast as it stood when the plan was approved (by a person or automatically): its steps' estimated
    # tokens priced at the mission's model then, so later price or step changes do not rewrite what was judged.
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_estimated_tokens = models.PositiveIntegerField(null=True, blank=True)
    approved_estimated_cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    approved_model_name = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["mission", "-version"]
        constraints = [models.UniqueConstraint(fields=["mission", "version"], name="unique_plan_version")]

    def __str__(self) -> str:
        return f"Plan v{self.version}"


class Step(models.Model):
    """A node of the plan's DAG, claimed by one worker at a time through a lease."""

    class Kind(models.TextChoices):
        CODEGEN = "codegen", "Code generation"
        REVIEW = "review", "Review"
        TEST = "test", "Test"
        DOCS = "docs", "Documentation"
        DEPLOY = "deploy", "Deploy"
        CUSTOM = "custom", "Custom"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        IN_REVIEW = "in_review", "Awaiting review"  # done and pushed; a human decides at a review gate
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="steps")
    key = models.SlugField(max_length=60)
    order = models.PositiveIntegerField(default=0)
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CODEGEN)
    role = models.CharField(max_length=60)
    agent = models.ForeignKey("agents.AgentSpec", null=True, blank=True, on_delete=models.SET_NULL)
    instructions = models.TextField()
    depends_on = models.JSONField(default=list, blank=True)
    acceptance = models.JSONField(default=list, blank=True)
    estimated_tokens = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempt = models.PositiveSmallIntegerField(default=0)
    # Attempts that were revisions asked for by reviewers (agents or a person): they do not use up retries.
    review_revisions = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True, help_text="WORKER_NAME of the worker that claimed it last.")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True, help_text="A failed attempt waits until then (backoff).")
    output = models.JSONField(default=dict, blank=True)
    summary = models.TextField(blank=True)
    commit_sha = models.CharField(max_length=40, blank=True)
    # The change adds or edits test configuration or plugins (conftest.py, pytest.ini, ...): its own test
    # run cannot vouch for it, so it needs a human decision before deploy.
    alters_test_config = models.BooleanField(default=False)
    test_config_files = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    # A "resolve conflicts" step: the project's default branch had moved to this commit at deploy; the step
    # starts by merging the branch as it is then and resolves what the merge leaves.
    merge_from = models.CharField(max_length=40, blank=True)
    # Changes asked for by the reviewers (agents or a human at a review gate), for the step's next attempt:
    # {"by": ..., "round": n, "cycle": id, "summary": ..., "comments": [{"path", "line", "body"}]}.
    revision = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["plan", "order", "id"]
        constraints = [models.UniqueConstraint(fields=["plan", "key"], name="unique_step_key")]

    def __str__(self) -> str:
        return f"{self.key}: {self.title}"

    @property
    def tries(self) -> int:
        """Attempts that count towards STEP_MAX_ATTEMPTS: every attempt but the reviewers' revisions."""
        return max(0, self.attempt - self.review_revisions)


class Event(models.Model):
    """The append-only mission log: audit trail, live-update source and replay buffer."""

    class Kind(models.TextChoices):
        SUBMITTED = "submitted", "Mission submitted"
        STATUS = "status", "Status changed"
        CYCLE = "cycle", "Decision cycle"
        VOTE = "vote", "Vote"
        PLAN = "plan", "Plan"
        STEP = "step", "Step"
        TOOL = "tool", "Tool call"
        TEST_RUN = "test_run", "Test run"
        GATE = "gate", "Approval gate"
        REVIEW = "review", "Peer review"
        COST = "cost", "Cost"
        ERROR = "error", "Error"

    mission = models.ForeignKey(Mission, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Who did it: a person (a decision, a pause, a cancel), an agent (a vote, a tool call), or neither (the
    # engine). PROTECT: events are append-only, so an actor who acted is deactivated, never deleted.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_agent = models.ForeignKey(
        "agents.AgentSpec", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["mission", "seq"]
        constraints = [models.UniqueConstraint(fields=["mission", "seq"], name="unique_event_seq")]

    def __str__(self) -> str:
        return f"{self.seq} {self.kind}: {self.message[:60]}"

    @property
    def actor_label(self) -> str:
        if self.actor_id:
            return str(self.actor)
        if self.actor_agent_id:
            return self.actor_agent.title or self.actor_agent.name
        return "system"


class TestRun(models.Model):
    """One real run of the generated tests in the sandbox."""

    __test__ = False  # not a pytest test class

    class Purpose(models.TextChoices):
        AGENT = "agent", "Run by the agent"
        ACCEPTANCE = "acceptance", "Acceptance run by the engine"
        DELIVERY = "delivery", "Re-run before delivery"

    mission = models.ForeignKey(Mission, on_delete=models.CASCADE, related_name="test_runs")
    purpose = models.CharField(max_length=12, choices=Purpose.choices, default=Purpose.AGENT)
    # Against the project's baseline: {"regressed": [...], "fixed": [...], "new": [...], "still_failing": [...], ...}
    comparison = models.JSONField(default=dict, blank=True)
    step = models.ForeignKey(Step, null=True, blank=True, on_delete=models.CASCADE, related_name="test_runs")
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    duration_s = models.FloatField(default=0)
    isolation = models.CharField(max_length=20)
    timed_out = models.BooleanField(default=False)
    tests = models.JSONField(default=list, blank=True)
    log = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.errors} errors"

    @property
    def ok(self) -> bool:
        """Green as the engine judged it: on a project, no regression and no failing new test."""
        counts = (self.comparison or {}).get("counts")
        if counts and self.tests:
            return not (self.timed_out or counts.get("regressed") or counts.get("new_failing"))
        return self.passed > 0 and not (self.failed or self.errors or self.timed_out)


class KnowledgeEntry(models.Model):
    """A lesson or decision kept from a finished mission, retrieved into later briefs by text search."""

    class Kind(models.TextChoices):
        DECISION = "decision", "Decision"
        LESSON = "lesson", "Lesson"

    mission = models.ForeignKey(Mission, null=True, blank=True, on_delete=models.SET_NULL, related_name="knowledge")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    title = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "knowledge entries"

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title}"
