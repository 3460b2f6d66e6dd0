from django.contrib import admin
from django.db import transaction

from agents.admin import LargeTableAdmin, ReadOnlyAdmin
from audit.mixins import AuditedAdmin
from audit.services import audit_values
from missions.events import event_record
from missions.models import DecisionCycle, Event, KnowledgeEntry, Mission, MissionTemplate, Plan, Step, TestRun, Vote


@admin.register(MissionTemplate)
class MissionTemplateAdmin(AuditedAdmin):
    list_display = ["name", "slug", "conversation_mode", "consensus_rule", "default_budget_usd", "is_active"]
    list_filter = ["is_active", "conversation_mode", "consensus_rule"]
    search_fields = ["name", "slug", "description"]


class StepInline(admin.TabularInline):
    model = Step
    extra = 0
    fields = ["key", "title", "kind", "role", "agent", "status", "attempt", "commit_sha"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Mission)
class MissionAdmin(AuditedAdmin):
    list_display = [
        "title",
        "status",
        "priority",
        "requester",
        "budget_usd",
        "spent_usd",
        "uses_simulated_model",
        "created_at",
    ]
    list_select_related = ["requester"]
    list_filter = ["status", "priority", "template", "uses_simulated_model"]
    search_fields = ["title", "request", "code", "requester__username"]
    readonly_fields = [
        "code",
        "status",
        "paused_from",
        "failure_reason",
        "deployed_sha",
        "deployed_at",
        "artifact_path",
        "spent_usd",
        "reserved_usd",
        "last_event_seq",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
    ]
    date_hierarchy = "created_at"

    def save_model(self, request, obj, form, change):
        """Write only the fields the admin changed: a worker updates status, spend and events meanwhile, and a
        whole-row save would put back what the form read. A budget change is an event on the mission too."""
        if not change:
            return super().save_model(request, obj, form, change)
        changed = [name for name in form.changed_data if obj._meta.get_field(name).concrete]
        before = Mission.objects.get(pk=obj.pk)
        obj._audit_fields, obj._audit_before = changed, audit_values(before, changed)
        if not changed:
            return None
        with transaction.atomic():
            obj.save(update_fields=[*changed, "updated_at"])
            if "budget_usd" in changed:
                event_record(
                    mission=obj,
                    kind=Event.Kind.COST,
                    message=f"Budget changed by {request.user} in the admin: ${before.budget_usd} → ${obj.budget_usd}.",
                    data={"budget_usd": str(obj.budget_usd), "from": str(before.budget_usd)},
                    actor=request.user,
                )
        return None


@admin.register(DecisionCycle)
class DecisionCycleAdmin(ReadOnlyAdmin):
    list_display = ["mission", "number", "kind", "rounds", "outcome", "started_at"]
    list_select_related = ["mission"]
    list_filter = ["kind", "outcome"]
    search_fields = ["mission__title", "summary"]


@admin.register(Vote)
class VoteAdmin(ReadOnlyAdmin):
    list_display = ["cycle", "round", "agent", "stance", "created_at"]
    list_select_related = ["cycle", "agent"]
    list_filter = ["stance", "agent"]
    search_fields = ["rationale", "cycle__mission__title"]


@admin.register(Plan)
class PlanAdmin(ReadOnlyAdmin):
    list_display = ["mission", "version", "created_at"]
    list_select_related = ["mission"]
    search_fields = ["mission__title", "summary"]
    inlines = [StepInline]


@admin.register(Step)
class StepAdmin(ReadOnlyAdmin):
    list_display = ["key", "title", "plan", "kind", "role", "agent", "status", "attempt", "finished_at"]
    list_select_related = ["plan", "agent"]
    list_filter = ["status", "kind", "role"]
    search_fields = ["key", "title", "plan__mission__title"]


@admin.register(Event)
class EventAdmin(LargeTableAdmin):
    list_display = ["mission", "seq", "kind", "message", "actor", "actor_agent", "created_at"]
    list_select_related = ["mission", "actor", "actor_agent"]
    list_filter = ["kind"]


@admin.register(TestRun)
class TestRunAdmin(ReadOnlyAdmin):
    list_display = ["mission", "step", "passed", "failed", "errors", "isolation", "duration_s", "created_at"]
    list_select_related = ["mission", "step"]
    list_filter = ["isolation", "timed_out"]
    search_fields = ["mission__title", "log"]


@admin.register(KnowledgeEntry)
class KnowledgeEntryAdmin(AuditedAdmin):
    list_display = ["title", "kind", "mission", "created_at"]
    list_select_related = ["mission"]
    list_filter = ["kind"]
    search_fields = ["title", "body"]
