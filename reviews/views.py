from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from missions.selectors import user_is_reviewer
from reviews.selectors import gate_queue_for_user, recent_decisions


def gate_queue(request):
    if not user_is_reviewer(request.user):
        raise PermissionDenied("Only reviewers can see the approval queue.")
    return render(
        request, "reviews/queue.html", {"gates": gate_queue_for_user(request.user), "decided": recent_decisions()}
    )
