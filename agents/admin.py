import uuid
from datetime import timedelta

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connections, models
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from agents.models import AgentMessage, AgentSpec, LLMCall, ModelProfile
from agents.runtime.probe import CAPABILITIES
from agents.services import model_profile_check
from audit.mixins import AuditedAdmin
from audit.models import AuditEntry
from audit.services import audit_record
from missions.models import Mission, Step


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records of what happened (ledger, logs, votes, test runs, reviews, plans) are visible, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class EstimatedCountPaginator(Paginator):
    """Count an unfiltered big table from PostgreSQL's statistics: COUNT(*) of 500,000 rows costs more than the
    rest of the page. A filtered list, a small table and SQLite are counted exactly."""

    estimate_above = 100_000

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where:
            connection = connections[self.object_list.db]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [query.model._meta.db_table]
                    )
                    row = cursor.fetchone()
                if row and row[0] > self.estimate_above:
                    return int(row[0])
        return super().count


class RecentFilter(admin.SimpleListFilter):
    """How long ago a row was written, by fixed choices: a range on the indexed time, never a scan of the table for
    the choices (as a date hierarchy's list of years and months is)."""

    title = "time written"
    parameter_name = "written"
    field = "created_at"
    ranges = {
        "1h": ("Last hour", timedelta(hours=1)),
        "24h": ("Last 24 hours", timedelta(days=1)),
        "7d": ("Last 7 days", timedelta(days=7)),
        "30d": ("Last 30 days", timedelta(days=30)),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.ranges.items()]

    def queryset(self, request, queryset):
        if self.value() not in self.ranges:
            return queryset
        return queryset.filter(**{f"{self.field}__gte": timezone.now() - self.ranges[self.value()][1]})


class LargeTableAdmin(ReadOnlyAdmin):
    """A read-only changelist of a table that grows with every mission (the ledger, transcripts, events): no full
    COUNT(*), no filter whose choices are read from the table, and a search that uses an index.

    The search takes a mission's code (its public UUID, shown in its URL): the rows of that mission. Subclasses
    add exact matches on an indexed field of their own in ``search_exact``."""

    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # Shows the search box; get_search_results does the lookups, each an exact match on an index.
    search_fields = ["mission__code"]
    search_exact: list[str] = []
    search_help_text = "A mission's code (the UUID in its address)."

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = models.Q(pk__in=[])
        try:
            code = uuid.UUID(term)
        except ValueError:
            pass
        else:
            # The mission first, by its unique code: a join on the code would let the database walk the whole
            # time index looking for that mission's rows.
            mission_id = Mission.objects.filter(code=code).values_list("id", flat=True).first()
            if mission_id is not None:
                matches |= models.Q(mission_id=mission_id)
        for name in self.search_exact:
            matches |= models.Q(**{name: term})
        return queryset.filter(matches), False


@admin.register(ModelProfile)
class ModelProfileAdmin(AuditedAdmin):
    list_display = [
        "name",
        "provider",
        "model_name",
        "base_url",
        "api_key_env",
        "price_input_per_mtok",
        "price_output_per_mtok",
        "is_default",
    ]
    list_filter = ["provider", "is_default", "supports_tools", "supports_json_schema"]
    search_fields = ["name", "model_name", "base_url"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    exclude = ["probe_result"]  # shown as the table below; only a check (or a refusal at run time) writes it
    readonly_fields = ["probed_at", "check_result"]
    actions = ["check_model"]

    @admin.display(description="Last model check")
    def check_result(self, obj: ModelProfile) -> str:
        found = (obj.probe_result or {}).get("capabilities") or {}
        if not found:
            return "Not checked yet: select the profile in the list and run the “Check model” action."
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            (
                (label, "ok" if found[name]["ok"] else "refused", found[name]["detail"])
                for name, label in CAPABILITIES.items()
                if name in found
            ),
        )
        return format_html("<table>{}</table>", rows)

    @admin.action(description="Check model: probe the endpoint and store its capabilities")
    def check_model(self, request, queryset):
        for profile in queryset:
            found = model_profile_check(profile=profile)["capabilities"]
            audit_record(
                actor=request.user,
                action=AuditEntry.Action.CHANGE,
                obj=profile,
                changes={name: {"to": found[name]["ok"]} for name in found},
                message="Checked the model: capabilities probed and stored.",
            )
            refused = [name for name in CAPABILITIES if not found[name]["ok"]]
            if not found["plain"]["ok"]:
                level, text = messages.ERROR, f"{profile.name}: plain completion failed: {found['plain']['detail']}"
            elif refused:
                details = "; ".join(f"{name}: {found[name]['detail']}" for name in refused)
                level, text = messages.WARNING, f"{profile.name}: works, but refused {details}."
            else:
                level, text = messages.SUCCESS, f"{profile.name}: every capability works."
            self.message_user(request, f"{text} Structured answers use {profile.structured_mode}.", level)


@admin.register(AgentSpec)
class AgentSpecAdmin(AuditedAdmin):
    list_display = [
        "name",
        "title",
        "role",
        "model_profile",
        "is_c_suite",
        "is_dynamic",
        "is_active",
        "owner",
        "reviewed_for_reuse",
        "created_by_mission",
    ]
    list_filter = ["is_c_suite", "is_dynamic", "reviewed_for_reuse", "is_active", "role"]
    search_fields = ["name", "title", "role", "system_prompt"]
    readonly_fields = ["owner", "created_by_mission", "reviewed_for_reuse", "reviewed_by", "reviewed_at"]
    actions = ["promote_for_reuse", "withdraw_from_reuse"]

    @admin.action(description="Promote for reuse (I have read their prompts and tools)", permissions=["change"])
    def promote_for_reuse(self, request, queryset):
        promoted = 0
        for agent in queryset.filter(reviewed_for_reuse=False):
            agent.promote_for_reuse(by=request.user)
            _reuse_audit(request, agent, promoted=True)
            promoted += 1
        self.message_user(request, f"{promoted} agent(s) promoted: every mission may now use them.", messages.SUCCESS)

    @admin.action(description="Withdraw from reuse (back to their owners' missions only)", permissions=["change"])
    def withdraw_from_reuse(self, request, queryset):
        withdrawn = 0
        for agent in queryset.filter(reviewed_for_reuse=True):
            agent.withdraw_from_reuse()
            _reuse_audit(request, agent, promoted=False)
            withdrawn += 1
        self.message_user(request, f"{withdrawn} agent(s) withdrawn from reuse.", messages.SUCCESS)

    # Which mission designed a specialist names that mission (its title is a page of someone's work):
    # only someone who may view missions in the admin sees it.
    def _may_see_missions(self, request) -> bool:
        return request.user.has_perm("missions.view_mission")

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if self._may_see_missions(request) else [f for f in shown if f != "created_by_mission"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return fields if self._may_see_missions(request) else [f for f in fields if f != "created_by_mission"]


def _reuse_audit(request, agent: AgentSpec, *, promoted: bool) -> None:
    audit_record(
        actor=request.user,
        action=AuditEntry.Action.CHANGE,
        obj=agent,
        changes={"reviewed_for_reuse": {"from": not promoted, "to": promoted}},
        message="Promoted for reuse." if promoted else "Withdrawn from reuse.",
    )


# What the code asks models for (the ``purpose`` of a ledger row); a step's calls are "step:<kind>".
PURPOSES = {
    "plan_draft": "Plan draft",
    "plan_vote": "Plan vote",
    "plan_review": "Plan review (validator)",
    "speaker_selection": "Speaker selection",
    "budget_proposal": "Budget proposal",
    "specialist_design": "Specialist design",
    "review": "Peer review",
    **{f"step:{kind}": f"Step: {label}" for kind, label in Step.Kind.choices},
}


class PurposeFilter(admin.SimpleListFilter):
    """The purposes the code writes, as fixed choices (not a DISTINCT over the whole ledger)."""

    title = "purpose"
    parameter_name = "purpose"

    def lookups(self, request, model_admin):
        return list(PURPOSES.items())

    def queryset(self, request, queryset):
        return queryset.filter(purpose=self.value()) if self.value() else queryset


@admin.register(LLMCall)
class LLMCallAdmin(LargeTableAdmin):
    list_display = [
        "created_at",
        "mission",
        "purpose",
        "agent",
        "step",
        "model_name",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "overrun",
        "latency_ms",
    ]
    list_select_related = ["mission", "agent", "step"]
    # Newest first, on the index agents_llmcall_recent; the id breaks ties within a microsecond.
    ordering = ["-created_at", "-id"]
    # Profiles and agents are small tables; model names and purposes are free text in a big one.
    list_filter = ["status", "overrun", PurposeFilter, "model_profile", RecentFilter]
    search_exact = ["provider_request_id"]
    search_help_text = "A mission's code (the UUID in its address) or a provider's request id."


@admin.register(AgentMessage)
class AgentMessageAdmin(LargeTableAdmin):
    list_display = ["created_at", "mission", "source", "kind", "step"]
    list_select_related = ["mission", "step"]
    ordering = ["-created_at", "-id"]
    list_filter = ["kind", RecentFilter]
