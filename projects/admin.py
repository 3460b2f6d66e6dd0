from django.contrib import admin

from agents.admin import ReadOnlyAdmin
from audit.mixins import AuditedAdmin
from projects.models import Baseline, Project


class BaselineInline(admin.TabularInline):
    model = Baseline
    extra = 0
    fields = ["sha", "verdict", "passed", "failed", "errors", "skipped", "duration_s", "isolation", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Project)
class ProjectAdmin(AuditedAdmin):
    """Stats come from the mirror. Adding a project, and changing where its code comes from or how it is
    tested, goes through the Projects page (or project_add), which checks the URL and runs a new baseline."""

    list_display = ["name", "slug", "git_url", "default_branch", "head_sha", "file_count", "restricted", "is_active"]
    list_filter = ["is_active", "restricted"]
    search_fields = ["name", "slug", "git_url"]
    filter_horizontal = ["members"]
    readonly_fields = [
        "slug",
        "git_url",
        "default_branch",
        "test_command",
        "setup_command",
        "push_url",
        "head_sha",
        "file_count",
        "size_bytes",
        "languages",
        "mirrored_at",
        "created_by",
        "created_at",
    ]
    inlines = [BaselineInline]

    def has_add_permission(self, request):
        return False


@admin.register(Baseline)
class BaselineAdmin(ReadOnlyAdmin):
    list_display = ["project", "sha", "verdict", "passed", "failed", "errors", "duration_s", "created_at"]
    list_filter = ["verdict"]
    search_fields = ["project__name", "sha"]
