"""/api/v1/missions: file, list and read missions and their costs, through the pages' own form and selectors."""

from uuid import UUID

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.pagination import paginate

from agents import selectors as agent_selectors
from api.errors import ApiError, Status
from api.pagination import Page
from api.schemas import (
    COMMON_ERRORS,
    DuplicateOut,
    ErrorOut,
    FieldErrorsOut,
    MissionCostsOut,
    MissionIn,
    MissionOut,
    MissionSummaryOut,
)
from missions import control, selectors
from missions.forms import VAR_PREFIX, MissionForm
from missions.models import Mission, MissionTemplate
from missions.services import DuplicateMissionError, MissionError, mission_cancel, mission_submit

router = Router(tags=["missions"])


class MissionFilter(Schema):
    status: Mission.Status | None = None


@router.get("", response={200: list[MissionSummaryOut], **COMMON_ERRORS}, summary="Missions I may see, newest first")
@paginate(Page)
def mission_list(request: HttpRequest, filters: Query[MissionFilter]):
    return selectors.mission_list_for_user(request.auth, status=filters.status or "")


@router.post(
    "",
    response={201: MissionOut, 400: FieldErrorsOut, 403: ErrorOut, 409: DuplicateOut, 413: ErrorOut, **COMMON_ERRORS},
    summary="File a mission (the filing form's rules) and start it",
)
def mission_create(request: HttpRequest, payload: MissionIn):
    user = request.auth
    if not selectors.user_can_file_missions(user):
        raise ApiError(403, "Only product managers can file missions.")
    # A NUL cannot be in a slug, and PostgreSQL refuses it in a query: not looked up (the form says why).
    slug = payload.template if payload.template and "\x00" not in payload.template else None
    template = MissionTemplate.objects.filter(slug=slug, is_active=True).first() if slug else None
    form = MissionForm(_form_data(payload, template), template=template, user=user)
    if payload.project and "project" not in form.fields:
        # The form drops its project field when no project is open to the user; the API must not drop the value.
        form.add_error(None, f"There is no project {payload.project[:60]!r} you can file against.")
    # The form only has fields for the chosen template's variables; the API must not drop the others silently.
    variable_errors = _variable_errors(payload, template)
    if not form.is_valid() or variable_errors:
        raise _refusal(form, variable_errors)
    try:
        mission = mission_submit(requester=user, **form.submit_arguments())
    except DuplicateMissionError as error:
        raise ApiError(409, str(error), mission=str(error.mission.code)) from None
    except ValueError as error:
        raise ApiError(400, f"The mission was not filed: {error}", errors={"non_field": [str(error)]}) from None
    return Status(201, mission)


def _form_data(payload: MissionIn, template: MissionTemplate | None) -> dict:
    """The JSON body as the filing form's fields, so the form validates it exactly as it does a browser's post."""
    budget = payload.budget_usd
    if budget is None:  # the form's pre-filled value
        budget = template.default_budget_usd if template else settings.DEFAULT_MISSION_BUDGET_USD
    data = payload.dict(exclude={"variables", "template", "project", "budget_usd"})
    data.update(template=payload.template or "", project=payload.project or "", budget_usd=str(budget))
    defaults = {var["name"]: var.get("default", "") for var in template.variables} if template else {}
    data.update({VAR_PREFIX + name: value for name, value in (defaults | payload.variables).items()})
    return data


def _variable_errors(payload: MissionIn, template: MissionTemplate | None) -> list[str]:
    """The filing service's messages for variables no field of the form would take."""
    if not payload.variables or payload.template and template is None:
        return []  # none given, or the template itself is unknown (the form says so)
    if template is None:
        return ["Template variables were given without a template."]
    unknown = sorted(set(payload.variables) - set(template.variable_names()))
    return [f"Template variables unknown: {', '.join(name[:60] for name in unknown)}."] if unknown else []


def _refusal(form: MissionForm, variable_errors: list[str]) -> ApiError:
    """The form's errors, with ``var_x`` named ``variables.x``, and the first of them as the message."""
    errors = {"variables": variable_errors} if variable_errors else {}
    for field, messages in form.errors.get_json_data().items():
        name = "non_field" if field == "__all__" else field.replace(VAR_PREFIX, "variables.", 1)
        errors[name] = [m["message"] for m in messages]
    field, messages = next(iter(errors.items()))
    where = "" if field == "non_field" else f"{field}: "
    return ApiError(400, f"The mission was not filed: {where}{messages[0]}", errors=errors)


@router.get(
    "/{code}",
    response={200: MissionOut, 404: ErrorOut, **COMMON_ERRORS},
    summary="One mission: steps, reviews, test runs, gates, spend",
)
def mission_read(request: HttpRequest, code: UUID):
    return selectors.mission_for_user(request.auth, code)


@router.get(
    "/{code}/costs",
    response={200: MissionCostsOut, 404: ErrorOut, **COMMON_ERRORS},
    summary="Where the mission's money went",
)
def mission_costs(request: HttpRequest, code: UUID):
    """The cost report's sums (by phase, by agent and step, by model) and their totals."""
    mission = selectors.mission_for_user(request.auth, code)
    by_model = agent_selectors.mission_spend_by_model(mission)
    totals = {name: sum(row[name] or 0 for row in by_model) for name in _TOTALS}
    return {
        "mission": mission.code,
        "budget_usd": str(mission.budget_usd),
        "spent_usd": str(mission.spent_usd),
        "reserved_usd": str(mission.reserved_usd),
        "totals": _cost_row(totals),
        "by_phase": [_cost_row(r, phase=r["phase"]) for r in agent_selectors.mission_spend_by_phase(mission)],
        "by_agent_step": [
            _cost_row(r, agent=r["agent__title"], step=r["step__key"])
            for r in agent_selectors.mission_spend_by_agent_and_step(mission)
        ],
        "by_model": [_cost_row(r, model=r["model_name"]) for r in by_model],
    }


_TOTALS = ("calls", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_usd", "latency_ms")


def _cost_row(row: dict, **names) -> dict:
    return {**{name: row[name] or 0 for name in _TOTALS}, "cost_usd": str(row["cost_usd"] or "0"), **names}


class CloneIn(Schema):
    confirm_budget: bool = Field(False, description="Required when the budget is above BUDGET_CONFIRM_ABOVE_USD.")


# Steering a mission: the mission page's buttons, with their rules (the requester or an admin; the state allows it).
_STEER = {403: ErrorOut, 404: ErrorOut, 409: ErrorOut, **COMMON_ERRORS}


def _steer(request: HttpRequest, code: UUID, action) -> Mission:
    mission = selectors.mission_for_user(request.auth, code)
    if not control.user_may_control(request.auth, mission):
        raise ApiError(403, "Only the PM who filed this mission, or an admin, can do that.")
    try:
        action(mission=mission, by=request.auth)
    except MissionError as error:  # the mission's state does not allow it now
        raise ApiError(409, str(error)) from None
    return selectors.mission_for_user(request.auth, code)


@router.post("/{code}/cancel", response={200: MissionOut, **_STEER}, summary="Cancel a mission")
def mission_cancel_op(request: HttpRequest, code: UUID):
    return _steer(request, code, mission_cancel)


@router.post("/{code}/pause", response={200: MissionOut, **_STEER}, summary="Pause (steps stop after their tool call)")
def mission_pause_op(request: HttpRequest, code: UUID):
    return _steer(request, code, control.mission_pause)


@router.post("/{code}/resume", response={200: MissionOut, **_STEER}, summary="Resume a paused mission")
def mission_resume_op(request: HttpRequest, code: UUID):
    return _steer(request, code, control.mission_resume)


@router.post("/{code}/retry", response={200: MissionOut, **_STEER}, summary="Retry a failed mission's failed steps")
def mission_retry_op(request: HttpRequest, code: UUID):
    return _steer(request, code, control.mission_retry)


@router.post(
    "/{code}/clone",
    response={201: MissionOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut, **COMMON_ERRORS},
    summary="File a copy of a mission you can see, as you",
)
def mission_clone_op(request: HttpRequest, code: UUID, payload: CloneIn | None = None):
    mission = selectors.mission_for_user(request.auth, code)
    if not selectors.user_can_file_missions(request.auth):
        raise ApiError(403, "Only product managers can file missions.")
    confirmed = bool(payload and payload.confirm_budget)
    try:
        clone = control.mission_clone(mission=mission, by=request.auth, budget_confirmed=confirmed)
    except (MissionError, ValueError) as error:
        raise ApiError(400, f"Not cloned: {error}") from None
    return Status(201, selectors.mission_for_user(request.auth, clone.code))
