from django.contrib import admin
from django.db import models

from agents.models import AgentMessage, AgentSpec, LLMCall, ModelProfile


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
