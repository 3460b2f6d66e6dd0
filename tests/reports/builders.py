"""Small builders for report fixtures: missions, ledger rows, gates, steps and reviews at chosen moments."""

from datetime import UTC, datetime
from decimal import Decimal

from agents.models import AgentSpec, LLMCall
from missions.models import DecisionCycle, Mission, MissionTemplate, Plan, Step, TestRun
from projects.models import Project
from reviews.models import ApprovalGate, PeerReview


def at(day: int, hour: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def template(slug: str = "bug_fix", name: str = "Bug fix") -> MissionTemplate:
    return MissionTemplate.objects.create(slug=slug, name=name, title_template="t", request_template="r")


def project(slug: str = "shop", name: str = "Shop") -> Project:
    return Project.objects.create(name=name, slug=slug, git_url=f"/srv/{slug}.git")


def agent(name: str = "dev", role: str = "developer", title: str = "Developer") -> AgentSpec:
    return AgentSpec.objects.create(name=name, role=role, title=title, system_prompt="p")


def mission(requester, *, filed: datetime, status=Mission.Status.EXECUTING, finished: datetime | None = None, **fields):
    made = Mission.objects.create(
        requester=requester,
        title=fields.pop("title", "M"),
        request="r",
        budget_usd=Decimal("5"),
        status=status,
        **fields,
    )
    Mission.objects.filter(pk=made.pk).update(created_at=filed, finished_at=finished)
    made.refresh_from_db()
    return made


def call(mission, cost: str, when: datetime, *, prompt: int = 0, completion: int = 0, **fields) -> LLMCall:
    # Backdated while pending, in one update: PostgreSQL's ledger trigger refuses edits to a settled row.
    row = LLMCall.objects.create(mission=mission, model_name=fields.pop("model_name", "sim-1"), purpose="p", **fields)
    LLMCall.objects.filter(pk=row.pk).update(
        created_at=when, status="ok", cost_usd=Decimal(cost), prompt_tokens=prompt, completion_tokens=completion
    )
    return row


def gate(mission, kind, requested: datetime, decided: datetime) -> ApprovalGate:
    made = ApprovalGate.objects.create(mission=mission, kind=kind, question="?", status=ApprovalGate.Status.APPROVED)
    ApprovalGate.objects.filter(pk=made.pk).update(requested_at=requested, decided_at=decided)
    return made


def plan(mission, *, version: int = 1, tokens: int | None = None, cost: str | None = None, model: str = "sim-1"):
    approved = {}
    if tokens is not None:
        approved = {
            "approved_at": mission.created_at,
            "approved_estimated_tokens": tokens,
            "approved_estimated_cost_usd": Decimal(cost),
            "approved_model_name": model,
        }
    return Plan.objects.create(mission=mission, version=version, **approved)


def step(plan, key: str, *, attempt: int = 1, review_revisions: int = 0, status=Step.Status.SUCCEEDED) -> Step:
    return Step.objects.create(
        plan=plan,
        key=key,
        title=key,
        role="developer",
        instructions="i",
        attempt=attempt,
        review_revisions=review_revisions,
        status=status,
    )


def review_round(step, reviewer: AgentSpec, round_no: int, *, approved: bool) -> PeerReview:
    mission = step.plan.mission
    number = DecisionCycle.objects.filter(mission=mission).count() + 1
    outcome = DecisionCycle.Outcome.APPROVED if approved else DecisionCycle.Outcome.REJECTED
    cycle = DecisionCycle.objects.create(mission=mission, number=number, kind="review", outcome=outcome)
    verdict = PeerReview.Verdict.APPROVE if approved else PeerReview.Verdict.REQUEST_CHANGES
    return PeerReview.objects.create(
        mission=mission, step=step, cycle=cycle, reviewer=reviewer, round=round_no, verdict=verdict
    )


def test_run(mission, *, passed: int, failed: int = 0, errors: int = 0, regressed: int = 0, step=None, purpose="agent"):
    comparison = {"counts": {"regressed": regressed}} if regressed else {}
    return TestRun.objects.create(
        mission=mission,
        step=step,
        purpose=purpose,
        passed=passed,
        failed=failed,
        errors=errors,
        isolation="subprocess",
        comparison=comparison,
    )
