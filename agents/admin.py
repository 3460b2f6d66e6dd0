from django.contrib import admin, messages
from django.db import models
from django.utils.html import format_html, format_html_join

from agents.models import AgentMessage, AgentSpec, LLMCall, ModelProfile
from agents.runtime.probe import CAPABILITIES
from agents.services import model_profile_check
from audit.mixins import AuditedAdmin
from audit.models import AuditEntry
from audit.services import audit_record


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records of what happened (ledger, logs, votes, test runs, reviews, plans) are visible, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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


@admin.register(LLMCall)
class LLMCallAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "mission",
        "purpose",
        "agent",
        "model_name",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "overrun",
        "latency_ms",
    ]
    list_filter = ["status", "overrun", "purpose", "model_name"]
    search_fields = ["mission__title", "mission__code", "purpose", "provider_request_id"]
    date_hierarchy = "created_at"


@admin.register(AgentMessage)
class AgentMessageAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "mission", "source", "kind", "step"]
    list_filter = ["kind"]
    search_fields = ["mission__title", "source", "content"]
