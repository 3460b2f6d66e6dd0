from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import urlencode
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from missions.selectors import mission_for_user, user_is_reviewer
from reviews.gates import Decision, GateError, gate_comment_add, gate_decide
from reviews.models import ApprovalGate
from reviews.selectors import gate_queue_for_user, recent_decisions

QUEUE_PAGE_SIZE = 25


def gate_queue(request):
    """The gates waiting for this reviewer, oldest first, a page at a time; the same few queries for any length."""
    if not user_is_reviewer(request.user):
        raise PermissionDenied("Only reviewers can see the approval queue.")
    kind = request.GET.get("kind", "")
    gates = gate_queue_for_user(request.user)
    if kind in ApprovalGate.Kind.values:
        gates = gates.filter(kind=kind)
    else:
        kind = ""
    page = Paginator(gates, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "gates": page.object_list,
        "kind": kind,
        "kinds": ApprovalGate.Kind.choices,
        "pager_params": urlencode({"kind": kind}) + "&" if kind else "",
        "decided": recent_decisions(),
    }
    return render(request, "reviews/queue.html", context)


@require_POST
def gate_decide_view(request, pk):
    gate = get_object_or_404(ApprovalGate.objects.select_related("mission"), pk=pk)
    mission = mission_for_user(request.user, gate.mission.code)  # 404 for a mission the user cannot see
    decision = request.POST.get("decision", "")
    try:
        if decision not in Decision.values:
            raise GateError("Choose approve, reject or request changes.")
        gate_decide(
            gate=gate,
            by=request.user,
            decision=decision,
            comment=request.POST.get("comment", ""),
            step_key=request.POST.get("step", ""),
        )
    except GateError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{gate.get_kind_display()}: {Decision(decision).label.lower()} recorded.")
    target = request.POST.get("next") == "queue" and "reviews:queue"
    url = redirect(target) if target else redirect(mission)
    if request.htmx:  # a form re-rendered live posts through htmx; follow with a full page load
        return HttpResponseClientRedirect(url.url)
    return url


@require_POST
def gate_comment_view(request, pk):
    """Add a line comment to a gate's change; back to the gate on the mission page, where it shows."""
    gate = get_object_or_404(ApprovalGate.objects.select_related("mission"), pk=pk)
    mission = mission_for_user(request.user, gate.mission.code)  # 404 for a mission the user cannot see
    try:
        comment = gate_comment_add(
            gate=gate,
            by=request.user,
            path=request.POST.get("path", ""),
            line=request.POST.get("line", ""),
            body=request.POST.get("body", ""),
        )
    except GateError as error:
        messages.error(request, str(error))
        return redirect(f"{mission.get_absolute_url()}#change-{gate.pk}")
    messages.success(request, f"Comment added on {comment.anchor}.")
    return redirect(f"{mission.get_absolute_url()}#change-{gate.pk}")
