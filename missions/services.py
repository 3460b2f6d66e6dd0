"""Writes about missions: submission, status transitions, cancellation."""

import logging
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.timesince import timesince

from agents.runtime.workspace import WorkspaceError
from agents.selectors import default_model_profile
from missions.events import event_record
from missions.inputs import (
    ACCEPTANCE_MAX,
    REQUEST_MAX,
    TITLE_MAX,
    VARIABLE_MAX,
    budget_parse,
    budget_range_check,
    text_check,
)
from missions.models import DEFAULT_REVIEWERS, Event, Mission, MissionTemplate, Plan, Step

logger = logging.getLogger(__name__)

# A second identical submission by the same requester within this window is refused
# (the "back, then file again" duplicate); after it, filing the same text again is deliberate.
DUPLICATE_WINDOW = timedelta(minutes=10)
NOTES_HEADING = "Additional notes"


class MissionError(Exception):
    """A request about a mission that cannot be carried out; the message is shown to the user."""


class DuplicateMissionError(ValueError):
    """The same requester filed the same mission moments ago; ``mission`` is the one already filed."""

    def __init__(self, mission: Mission):
        self.mission = mission
        minutes = int(DUPLICATE_WINDOW.total_seconds() // 60)
        super().__init__(
            f"You filed this same mission {timesince(mission.created_at)} ago (“{mission.title}”, "
            f"{mission.get_absolute_url()}). Identical missions are refused for {minutes} minutes."
        )


def mission_compose(
    *,
    title: str,
    request: str,
    acceptance_criteria: str = "",
    template: MissionTemplate | None = None,
    variables: dict[str, str] | None = None,
) -> dict[str, str]:
    """The title, request and acceptance text a mission is filed with, as the preview shows them.

    With a template, its variables are substituted; a typed title replaces the
    template's, while typed request and acceptance text are appended as
    additional notes, so the template's variables always reach the agents.
    Raises ``ValueError`` for bad variables or text over its limit.
    """
    variables = variables or {}
    for name, value in variables.items():
        text_check(f"value of {name}", value, VARIABLE_MAX)
    title, request, acceptance_criteria = title.strip(), request.strip(), acceptance_criteria.strip()
    if template is not None:
        rendered = template.render(variables)  # raises ValueError naming bad variables
        title = title or rendered["title"].strip()
        request = _with_notes(rendered["request"].strip(), request)
        acceptance_criteria = _with_notes(rendered["acceptance_criteria"].strip(), acceptance_criteria)
    elif variables:
        raise ValueError("Template variables were given without a template.")
    if not title or not request:
        raise ValueError("A mission needs a title and a request.")
    return {
        "title": title[:TITLE_MAX],  # a label: cut, since a template's title grows with its variables
        "request": text_check("request", request, REQUEST_MAX),
        "acceptance_criteria": text_check("acceptance criteria", acceptance_criteria, ACCEPTANCE_MAX),
    }


def _with_notes(rendered: str, typed: str) -> str:
    if not typed:
        return rendered
    if not rendered:
        return typed
    return f"{rendered}\n\n{NOTES_HEADING}:\n{typed}"


def budget_needs_confirmation(budget_usd: Decimal) -> bool:
    return budget_usd > settings.BUDGET_CONFIRM_ABOVE_USD


def mission_submit(
    *,
    requester: AbstractBaseUser,
    title: str,
    request: str,
    budget_usd: Decimal | str,
    acceptance_criteria: str = "",
    template: MissionTemplate | None = None,
    variables: dict[str, str] | None = None,
    priority: str = Mission.Priority.NORMAL,
    require_plan_approval: bool = False,
    require_deploy_approval: bool = True,
    consensus_rule: str = "",
    deadlock_policy: str = "",
    conversation_mode: str = "",
    budget_confirmed: bool = False,
    refuse_duplicates: bool = False,
    project=None,
    reviewers: list[str] | None = None,
    review_rule: str = "",
) -> Mission:
    """File a mission and start it once the transaction commits.

    The text is composed by ``mission_compose``. A budget above
    BUDGET_CONFIRM_ABOVE_USD needs ``budget_confirmed``. With
    ``refuse_duplicates`` (the form and the CLI), the same mission filed again
    by the same requester within DUPLICATE_WINDOW raises ``DuplicateMissionError``.

    Against a ``project`` (one the requester may file against), the mission starts from the project's
    mirrored HEAD: that commit is its base, put on its branch in the store before the mission exists.

    ``reviewers`` (AgentSpec names; ``[]`` for no peer review) and ``review_rule`` override the template's,
    whose own default is the code and security reviewers by majority.
    """
    variables = variables or {}
    reviewers, review_rule = review_settings(template=template, reviewers=reviewers, review_rule=review_rule)
    text = mission_compose(
        title=title, request=request, acceptance_criteria=acceptance_criteria, template=template, variables=variables
    )
    budget_usd = budget_parse(budget_usd) if isinstance(budget_usd, str) else budget_range_check(budget_usd)
    if budget_needs_confirmation(budget_usd) and not budget_confirmed:
        raise ValueError(
            f"A budget above ${settings.BUDGET_CONFIRM_ABOVE_USD} needs confirmation: "
            f"confirm that you mean ${budget_usd}."
        )

    profile = default_model_profile()
    code = uuid.uuid4()
    if project is not None:
        _project_branch_create(project=project, requester=requester, code=code)
    try:
        with transaction.atomic():
            if refuse_duplicates:
                # Lock the requester's row so two identical posts at once cannot both pass the check.
                get_user_model().objects.select_for_update().filter(pk=requester.pk).first()
                _refuse_duplicate(requester=requester, template=template, variables=variables, **text)
            mission = Mission.objects.create(
                code=code,
                project=project,
                base_sha=project.head_sha if project is not None else "",
                requester=requester,
                title=text["title"],
                request=text["request"],
                acceptance_criteria=text["acceptance_criteria"],
                template=template,
                variables=variables,
                priority=priority,
                budget_usd=budget_usd,
                require_plan_approval=require_plan_approval,
                require_deploy_approval=require_deploy_approval,
                consensus_rule=consensus_rule
                or (template.consensus_rule if template else MissionTemplate.ConsensusRule.QUORUM),
                deadlock_policy=deadlock_policy
                or (template.deadlock_policy if template else MissionTemplate.DeadlockPolicy.GATE),
                conversation_mode=conversation_mode
                or (template.conversation_mode if template else MissionTemplate.ConversationMode.ROUND_ROBIN),
                model_profile=profile,
                uses_simulated_model=bool(profile and profile.is_simulated),
                reviewers=reviewers,
                review_rule=review_rule,
            )
            event_record(
                mission=mission,
                kind=Event.Kind.SUBMITTED,
                message=f"{requester} filed the mission with a budget of ${budget_usd}.",
                data={"status": mission.status},
                actor=requester,
            )
            # robust: a broker outage must not turn a saved mission into a 500; the reaper starts it later.
            transaction.on_commit(lambda: mission_start(mission.pk, filed=True), robust=True)
    except BaseException:
        if project is not None:  # refused (a duplicate) or failed: no branch without its mission
            _project_branch_remove(project=project, code=code)
        raise
    return mission


def review_settings(
    *, template: MissionTemplate | None, reviewers: list[str] | None, review_rule: str
) -> tuple[list[str], str]:
    """The reviewers and rule a mission gets, checked: ValueError naming an unknown reviewer or rule."""
    from agents.models import AgentSpec

    chosen = reviewers is not None
    if not chosen:
        reviewers = list(template.reviewers or []) if template else list(DEFAULT_REVIEWERS)
    if not isinstance(reviewers, list | tuple) or not all(isinstance(name, str) for name in reviewers):
        raise ValueError("Reviewers must be a list of agent names.")
    reviewers = list(dict.fromkeys(name.strip() for name in reviewers if name.strip()))
    known = set(
        AgentSpec.objects.filter(name__in=reviewers, is_active=True, is_c_suite=False).values_list("name", flat=True)
    )
    unknown = [name for name in reviewers if name not in known]
    if not chosen:  # the template's (or default) reviewers that do not exist here are left out, not an error
        reviewers, unknown = [name for name in reviewers if name in known], []
    if unknown:
        raise ValueError(f"Unknown or inactive reviewer agent{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.")
    rule = review_rule or (template.review_rule if template else MissionTemplate.ReviewRule.MAJORITY)
    if rule not in MissionTemplate.ReviewRule.values:
        choices = ", ".join(MissionTemplate.ReviewRule.values)
        raise ValueError(f"The review rule must be one of {choices}, not {rule!r}.")
    return reviewers, rule


def _project_branch_create(*, project, requester, code) -> None:
    """Put the project's mirrored HEAD on the new mission's branch; ValueError (nothing filed) when it cannot."""
    from missions.repository import mission_branch_create

    if not project.may_file(requester):
        raise ValueError(f"You may not file missions against {project}.")
    if not project.head_sha or not project.mirror_path.is_dir():
        raise ValueError(f"{project} has not been mirrored yet: an admin must refresh it first.")
    try:
        mission_branch_create(Mission(code=code, project=project), source=project.mirror_path, sha=project.head_sha)
    except WorkspaceError as error:
        raise ValueError(f"Could not start from {project}'s repository: {error}") from error


def _project_branch_remove(*, project, code) -> None:
    from missions.repository import mission_branch_delete

    try:
        mission_branch_delete(Mission(code=code, project=project))
    except WorkspaceError:
        logger.warning("could not remove the branch of mission %s that was not filed", code, exc_info=True)


def _refuse_duplicate(
    *, requester: AbstractBaseUser, title: str, request: str, acceptance_criteria: str, template, variables: dict
) -> None:
    recent = Mission.objects.filter(
        requester=requester,
        title=title,
        request=request,
        template=template,
        created_at__gte=timezone.now() - DUPLICATE_WINDOW,
    ).order_by("-created_at")
    for mission in recent:
        if mission.variables == variables:  # compared here: JSON equality differs between databases
            raise DuplicateMissionError(mission)


def mission_start(mission_id: int, *, filed: bool = False) -> None:
    """Ask a worker to advance the mission; call after commit.

    The first task of a mission just ``filed`` waits until no task of a mission under way does
    (settings.TASK_PRIORITY_NEW_MISSION); a gate decided or a budget raised continues work under way.
    """
    from missions.tasks import advance_mission

    priority = settings.TASK_PRIORITY_NEW_MISSION if filed else settings.TASK_PRIORITY_UNDER_WAY
    advance_mission.apply_async((mission_id,), priority=priority)


def mission_transition(
    *,
    mission: Mission,
    to: str,
    expected: str | tuple[str, ...] | None = None,
    reason: str = "",
    actor: AbstractBaseUser | None = None,
    **fields,
) -> bool:
    """Move a mission to status ``to`` if it is still in ``expected``; ``actor`` is who moved it, if a person.

    The conditional UPDATE is the claim: when two workers race, exactly one
    sees a row updated; the other gets False and must stop.
    """
    if isinstance(expected, str):
        expected = (expected,)
    now = timezone.now()
    values = {"status": to, "updated_at": now, **fields}
    if to in Mission.FINISHED:
        values["finished_at"] = now
    if to in (Mission.Status.FAILED, Mission.Status.CANCELLED) and reason:
        values["failure_reason"] = reason
    with transaction.atomic():
        rows = Mission.objects.filter(pk=mission.pk)
        if expected:
            rows = rows.filter(status__in=expected)
        else:
            rows = rows.exclude(status__in=Mission.FINISHED)
        previous = mission.status
        if not rows.update(**values):
            return False
        for name, value in values.items():
            setattr(mission, name, value)
        label = Mission.Status(to).label
        event_record(
            mission=mission,
            kind=Event.Kind.STATUS if to != Mission.Status.FAILED else Event.Kind.ERROR,
            message=f"{label}." + (f" {reason}" if reason else ""),
            data={"status": to, "from": previous},
            actor=actor,
        )
        from notifications.services import notify_mission_changed, notify_mission_finished

        notify_mission_changed(mission)  # the requester's home dashboard, after commit
        if to in Mission.FINISHED:
            from reviews.gates import gates_close_open  # the one way in from missions/ (see reviews/gates.py)

            ended = f"The mission was {label.lower()}." + (f" {reason}" if reason else "")
            gates_close_open(mission=mission, reason=ended)
            # A step held for a human's review is not waiting for anyone any more.
            Step.objects.filter(plan__mission=mission, status=Step.Status.IN_REVIEW).update(
                status=Step.Status.CANCELLED, finished_at=now
            )
            notify_mission_finished(mission)  # the requester's toast and mail, after commit
    logger.info("mission %s: %s -> %s", mission.code, previous, to)
    return True


def mission_fail(*, mission: Mission, reason: str, actor: AbstractBaseUser | None = None) -> bool:
    """Fail the mission and keep what it learned for later missions."""
    from missions.knowledge import knowledge_record_retrospective

    failed = mission_transition(mission=mission, to=Mission.Status.FAILED, reason=reason, actor=actor)
    if failed:
        knowledge_record_retrospective(mission)
    return failed


def plan_approval_record(*, mission: Mission) -> Plan | None:
    """Keep the current plan's forecast as it stands at its approval (the KPI report judges it later).

    The estimate is the steps' estimated tokens priced as output at the mission's model, the figure validation
    checked against the budget (missions/engine/validation.py, rule 5). Recorded once per plan: a redelivered
    task or a second approval path leaves the first record alone.
    """
    plan = mission.plans.order_by("-version").first()
    if plan is None:
        return None
    tokens = plan.steps.aggregate(total=Sum("estimated_tokens"))["total"] or 0
    profile = mission.model_profile
    cost = profile.cost_usd(prompt_tokens=0, completion_tokens=tokens) if profile is not None else None
    Plan.objects.filter(pk=plan.pk, approved_at__isnull=True).update(
        approved_at=timezone.now(),
        approved_estimated_tokens=tokens,
        approved_estimated_cost_usd=cost,
        approved_model_name=profile.resolved_model_name() if profile is not None else "",
    )
    return plan


def mission_cancel(*, mission: Mission, by: AbstractBaseUser) -> None:
    """Cancel an unfinished mission; running steps notice at their next model call or tool."""
    if mission.is_finished:
        raise MissionError(f"The mission is already {mission.get_status_display().lower()}.")
    with transaction.atomic():
        if not mission_transition(mission=mission, to=Mission.Status.CANCELLED, reason=f"Cancelled by {by}.", actor=by):
            raise MissionError("The mission changed state meanwhile; reload and try again.")
        Step.objects.filter(plan__mission=mission, status__in=(Step.Status.PENDING, Step.Status.IN_REVIEW)).update(
            status=Step.Status.CANCELLED
        )
        mission.cycles.filter(finished_at__isnull=True).update(finished_at=timezone.now())
