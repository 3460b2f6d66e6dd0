from django.contrib import admin

from agents.admin import ReadOnlyAdmin
from reviews.models import ApprovalGate, PeerReview


@admin.register(PeerReview)
class PeerReviewAdmin(ReadOnlyAdmin):
    list_display = ["mission", "step", "reviewer", "round", "verdict", "score", "created_at"]
    list_filter = ["verdict", "reviewer"]
    search_fields = ["mission__title", "summary"]


@admin.register(ApprovalGate)
class ApprovalGateAdmin(ReadOnlyAdmin):
    """Gates are decided in the approval queue, where the rules and the audit trail apply."""

    list_display = ["mission", "kind", "status", "requested_at", "decided_by", "decided_at"]
    list_filter = ["kind", "status"]
    search_fields = ["mission__title", "question", "comment"]
    readonly_fields = ["decided_by", "decided_at"]
