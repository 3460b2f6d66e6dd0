from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from agents.admin import EstimatedCountPaginator, ReadOnlyAdmin, RecentFilter
from audit.mixins import AuditedAdmin
from audit.models import AuditEntry


class AuditRecentFilter(RecentFilter):
    field = "at"


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor", "action", "content_type", "object_repr"]
    list_select_related = ["actor", "content_type"]
    ordering = ["-at", "-id"]
    # Content types are a small table; the recency filter replaces a date hierarchy (a scan for its years).
    list_filter = ["action", "content_type", AuditRecentFilter]
    # Admin changes only, a small table: a text search is affordable here, unlike on the ledger or events.
    search_fields = ["object_repr", "actor__username", "message"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator


# Users and roles are site-wide objects like agents and prices: their changes are audited too.
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    pass


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    pass
