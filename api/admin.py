from django.contrib import admin, messages

from agents.admin import ReadOnlyAdmin
from api.models import ApiToken
from api.services import api_token_revoke
from audit.models import AuditEntry
from audit.services import audit_record


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Who holds which token and when it was last used; an admin can revoke one (a leaked token, a leaver).

    Tokens are created by their owners only: whoever creates one sees its secret.
    """

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "user__username"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request, queryset):
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True).select_related("user"):
            token = api_token_revoke(user=token.user, token_id=token.pk)
            audit_record(
                actor=request.user,
                action=AuditEntry.Action.CHANGE,
                obj=token,
                changes={"revoked_at": {"from": None, "to": token.revoked_at.isoformat()}},
                message="Revoked in the admin.",
            )
            revoked += 1
        self.message_user(request, f"{revoked} token(s) revoked.", messages.SUCCESS)

    def has_revoke_permission(self, request) -> bool:
        return request.user.is_superuser
