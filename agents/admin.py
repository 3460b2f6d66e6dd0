from django.contrib import admin, messages
from django.db import models
from django.utils.html import format_html, format_html_join

from agents.models import AgentMessage, AgentSpec, LLMCall, ModelProfile
from agents.runtime.probe import CAPABILITIES
from agents.services import model_profile_check


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledger and logs are append-only: visible to admins, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ModelProfile)
class ModelProfileAdmin(admin.ModelAdmin):
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
class AgentSpecAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "title",
        "role",
        "model_profile",
        "is_c_suite",
        "is_dynamic",
        "is_active",
        "created_by_mission",
    ]
    list_filter = ["is_c_suite", "is_dynamic", "is_active", "role"]
    search_fields = ["name", "title", "role", "system_prompt"]
    raw_id_fields = ["created_by_mission"]


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
        "latency_ms",
    ]
    list_filter = ["status", "purpose", "model_name"]
    search_fields = ["mission__title", "mission__code", "purpose", "provider_request_id"]
    date_hierarchy = "created_at"


@admin.register(AgentMessage)
class AgentMessageAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "mission", "source", "kind", "step"]
    list_filter = ["kind"]
    search_fields = ["mission__title", "source", "content"]
