"""What the API reads and writes. Money is a decimal string ("5.00"), never a float; times are ISO 8601."""

from datetime import datetime
from uuid import UUID

from ninja import Field, Schema
from pydantic import StrictFloat, StrictInt

from missions.models import Mission, TestRun
from missions.selectors import mission_steps
from reviews.gates import gate_decisions
from reviews.models import ApprovalGate


class ErrorOut(Schema):
    detail: str = Field(description="What went wrong, in a sentence.")


class FieldErrorsOut(ErrorOut):
    errors: dict[str, list[str]] = Field(description="Messages per field (`non_field` for the whole request).")


class ValidationIssueOut(Schema):
    type: str
    loc: list[str | int]
    msg: str


class ValidationErrorOut(ErrorOut):
    errors: list[ValidationIssueOut] = Field(description="Each problem with where it is (`body`, `query`, `path`).")


# Any operation may answer these: no or a bad token, a malformed request, too many requests for the token.
COMMON_ERRORS = {401: ErrorOut, 422: ValidationErrorOut, 429: ErrorOut}


class DuplicateOut(ErrorOut):
    mission: UUID = Field(description="The code of the identical mission filed moments ago.")


class MissionIn(Schema):
    """A mission, as the filing form takes it: free text, or a template slug and its variables."""

    title: str = ""
    request: str = ""
    acceptance_criteria: str = ""
    template: str | None = Field(None, description="A template's slug; its variables go in `variables`.")
    variables: dict[str, str] = {}
    project: str | None = Field(None, description="A project's slug you may file against.")
    priority: Mission.Priority = Mission.Priority.NORMAL
    # Strict numbers: a lax int would read `true` as $1.
    budget_usd: str | StrictInt | StrictFloat | None = Field(
        None, description="Dollars, e.g. \"5.00\"; unset: the template's or the site's default."
    )
    confirm_budget: bool = Field(False, description="Required for a budget above the site's confirmation limit.")
    require_plan_approval: bool = False
    require_deploy_approval: bool = True
    consensus_rule: str = ""
    conversation_mode: str = ""
    deadlock_policy: str = ""
    reviewers: list[str] = Field([], description="Reviewer agents' names; empty: the template's.")
    review_rule: str = ""
    skip_peer_review: bool = False


def _money(value) -> str:
    return str(value)


class CostSummaryOut(Schema):
    budget_usd: str
    spent_usd: str
    reserved_usd: str
    remaining_usd: str


class MissionSummaryOut(Schema):
    code: UUID
    title: str
    status: str
    status_label: str
    priority: str
    requester: str
    project: str | None
    template: str | None
    budget_usd: str
    spent_usd: str
    simulated_model: bool
    created_at: datetime
    finished_at: datetime | None
    url: str

    @staticmethod
    def resolve_status_label(mission: Mission) -> str:
        return mission.get_status_display()

    @staticmethod
    def resolve_requester(mission: Mission) -> str:
        return mission.requester.get_username()

    @staticmethod
    def resolve_project(mission: Mission) -> str | None:
        return mission.project.slug if mission.project_id else None

    @staticmethod
    def resolve_template(mission: Mission) -> str | None:
        return mission.template.slug if mission.template_id else None

    @staticmethod
    def resolve_budget_usd(mission: Mission) -> str:
        return _money(mission.budget_usd)

    @staticmethod
    def resolve_spent_usd(mission: Mission) -> str:
        return _money(mission.spent_usd)

    @staticmethod
    def resolve_simulated_model(mission: Mission) -> bool:
        return mission.uses_simulated_model

    @staticmethod
    def resolve_url(mission: Mission) -> str:
        return mission.get_absolute_url()


class PeerReviewOut(Schema):
    reviewer: str
    round: int
    attempt: int
    verdict: str
    score: int
    summary: str
    comments: list[dict]

    @staticmethod
    def resolve_reviewer(review) -> str:
        return review.reviewer.name


class StepOut(Schema):
    key: str
    title: str
    kind: str
    role: str
    agent: str | None
    status: str
    attempt: int
    depends_on: list[str]
    summary: str
    commit_sha: str
    error: str
    started_at: datetime | None
    finished_at: datetime | None
    reviews: list[PeerReviewOut]

    @staticmethod
    def resolve_agent(step) -> str | None:
        return step.agent.name if step.agent_id else None

    @staticmethod
    def resolve_reviews(step) -> list:
        return list(step.reviews.all())  # prefetched by mission_steps


class TestRunOut(Schema):
    __test__ = False  # not a pytest test class

    step: str | None
    purpose: str
    passed: int
    failed: int
    errors: int
    skipped: int
    duration_s: float
    isolation: str
    timed_out: bool
    ok: bool
    created_at: datetime

    @staticmethod
    def resolve_step(run) -> str | None:
        return run.step.key if run.step_id else None


class GateOut(Schema):
    id: int
    mission: UUID
    mission_title: str
    kind: str
    status: str
    question: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    comment: str
    decisions: list[str] = Field(description="What may be decided while it is pending.")

    @staticmethod
    def resolve_mission(gate: ApprovalGate) -> UUID:
        return gate.mission.code

    @staticmethod
    def resolve_mission_title(gate: ApprovalGate) -> str:
        return gate.mission.title

    @staticmethod
    def resolve_decided_by(gate: ApprovalGate) -> str | None:
        return gate.decided_by.get_username() if gate.decided_by_id else None

    @staticmethod
    def resolve_decisions(gate: ApprovalGate) -> list[str]:
        return [str(d) for d in gate_decisions(gate)] if gate.is_pending else []


class MissionOut(MissionSummaryOut):
    request: str
    acceptance_criteria: str
    failure_reason: str
    started_at: datetime | None
    cost: CostSummaryOut
    steps: list[StepOut] = Field(description="The newest plan's steps, with their peer reviews.")
    test_runs: list[TestRunOut]
    gates: list[GateOut]

    # The related rows come from the mission page's own selectors, a fixed number of queries for any mission.
    @staticmethod
    def resolve_cost(mission: Mission) -> dict:
        return {
            "budget_usd": str(mission.budget_usd),
            "spent_usd": str(mission.spent_usd),
            "reserved_usd": str(mission.reserved_usd),
            "remaining_usd": str(mission.budget_remaining_usd),
        }

    @staticmethod
    def resolve_steps(mission: Mission) -> list:
        return mission_steps(mission)

    @staticmethod
    def resolve_test_runs(mission: Mission) -> list:
        return list(TestRun.objects.filter(mission=mission).select_related("step"))

    @staticmethod
    def resolve_gates(mission: Mission) -> list:
        return list(mission.gates.select_related("decided_by", "mission"))


class GateDecisionIn(Schema):
    decision: ApprovalGate.Decision
    comment: str = Field("", description="Required to reject or request changes.")
    step: str = Field("", description="On a deploy gate's change request: the step to revise (empty: a new step).")


class CostRowOut(Schema):
    calls: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    cost_usd: str
    latency_ms: int


class PhaseCostOut(CostRowOut):
    phase: str


class AgentStepCostOut(CostRowOut):
    agent: str | None
    step: str | None


class ModelCostOut(CostRowOut):
    model: str


class MissionCostsOut(Schema):
    mission: UUID
    budget_usd: str
    spent_usd: str
    reserved_usd: str
    totals: CostRowOut
    by_phase: list[PhaseCostOut]
    by_agent_step: list[AgentStepCostOut]
    by_model: list[ModelCostOut]
