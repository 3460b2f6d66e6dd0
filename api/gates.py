"""/api/v1/gates: the gates waiting for me, and deciding one, by the browser's own rules (reviews/gates.py)."""

from django.http import HttpRequest
from ninja import Query, Router, Schema
from ninja.pagination import paginate

from api.errors import ApiError
from api.pagination import Page
from api.schemas import COMMON_ERRORS, ErrorOut, GateDecisionIn, GateOut
from missions.selectors import missions_visible_to, user_is_reviewer
from reviews.gates import GateError, GateForbidden, GateSettled, gate_decide
from reviews.models import ApprovalGate
from reviews.selectors import gate_queue_for_user

router = Router(tags=["gates"])


class GateFilter(Schema):
    kind: ApprovalGate.Kind | None = None


@router.get(
    "",
    response={200: list[GateOut], 403: ErrorOut, **COMMON_ERRORS},
    summary="Gates waiting for my decision, oldest first",
)
@paginate(Page)
def gate_list(request: HttpRequest, filters: Query[GateFilter]):
    if not user_is_reviewer(request.auth):
        raise ApiError(403, "Only reviewers can see the approval queue.")
    gates = gate_queue_for_user(request.auth).select_related("decided_by")
    return gates.filter(kind=filters.kind) if filters.kind else gates


@router.post(
    "/{gate_id}/decision",
    response={200: GateOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, **COMMON_ERRORS},
    summary="Approve, reject or request changes (once; never on a mission you filed)",
)
def gate_decision(request: HttpRequest, gate_id: int, payload: GateDecisionIn):
    # One 404 for a gate that does not exist and one on a mission the user cannot see: ids are not probed.
    visible = ApprovalGate.objects.filter(mission__in=missions_visible_to(request.auth).values("pk"))
    gate = visible.select_related("mission").filter(pk=gate_id).first()
    if gate is None:
        raise ApiError(404, "No such gate.")
    try:
        gate = gate_decide(
            gate=gate, by=request.auth, decision=payload.decision.value, comment=payload.comment, step_key=payload.step
        )
    except GateForbidden as error:
        raise ApiError(403, str(error)) from None
    except GateSettled as error:
        raise ApiError(409, str(error)) from None
    except GateError as error:  # the decision itself: a missing comment, a decision this gate does not offer
        raise ApiError(400, str(error)) from None
    return ApprovalGate.objects.select_related("mission", "decided_by").get(pk=gate.pk)
