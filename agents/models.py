import os
import re
from decimal import Decimal
from fnmatch import fnmatchcase

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

MILLION = Decimal(1_000_000)
ENV_NAME_PATTERN = r"^(?!(DJANGO_)?SECRET_KEY$)[A-Z][A-Z0-9_]*$"


def api_key_env_allowed(name: str) -> bool:
    """Whether a profile may send the variable ``name`` as its bearer token.

    Only names (or ``*`` patterns) listed in LLM_KEY_ENV_ALLOWED: whoever edits a
    profile also chooses its URL, so any other variable (AWS_SECRET_ACCESS_KEY,
    GITHUB_TOKEN, SECRET_KEY) would be sent to a server of their choice.
    """
    if not re.match(ENV_NAME_PATTERN, name or ""):
        return False
    return any(fnmatchcase(name, pattern) for pattern in settings.LLM_KEY_ENV_ALLOWED)


def validate_api_key_env(name: str) -> None:
    if not api_key_env_allowed(name):
        allowed = ", ".join(settings.LLM_KEY_ENV_ALLOWED) or "(none)"
        raise ValidationError(
            "%(name)s is not an allowed key variable; allowed (LLM_KEY_ENV_ALLOWED): %(allowed)s.",
            code="key_env_not_allowed",
            params={"name": name, "allowed": allowed},
        )


class ModelProfile(models.Model):
    """An endpoint and its prices. The API key is never stored: only the name of the env var holding it."""

    class Provider(models.TextChoices):
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible"
        AZURE_OPENAI = "azure_openai", "Azure OpenAI"
        SIMULATED = "simulated", "Simulated model server"

    NO_KEY = "not-needed"  # what a keyless local server (Ollama, the simulator) is sent

    name = models.SlugField(max_length=60, unique=True)
    provider = models.CharField(max_length=30, choices=Provider.choices, default=Provider.OPENAI_COMPATIBLE)
    base_url = models.URLField(blank=True, help_text="Empty: use the LLM_BASE_URL setting.")
    model_name = models.CharField(max_length=120, blank=True, help_text="Empty: use the LLM_MODEL setting.")
    api_key_env = models.CharField(
        max_length=60,
        default="LLM_API_KEY",
        validators=[validate_api_key_env],
        help_text="Name of the environment variable holding the key, e.g. LLM_API_KEY or OPENAI_API_KEY; "
        "only names allowed by the LLM_KEY_ENV_ALLOWED setting.",
    )
    price_input_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0.15"))
    price_cached_input_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0.075"))
    price_output_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0.60"))
    supports_tools = models.BooleanField(default=True)
    supports_json_schema = models.BooleanField(default=True)
    supports_json_mode = models.BooleanField(
        default=True, help_text="Accepts response_format json_object (used when JSON schema is not supported)."
    )
    context_window = models.PositiveIntegerField(default=128_000)
    max_output_tokens = models.PositiveIntegerField(default=2048)
    is_default = models.BooleanField(default=False)
    probe_result = models.JSONField(
        default=dict, blank=True, help_text="What the last model check (or a refusal at run time) found."
    )
    probed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def resolved_base_url(self) -> str:
        return self.base_url or settings.LLM_BASE_URL

    def resolved_model_name(self) -> str:
        return self.model_name or settings.LLM_MODEL

    def api_key(self) -> str:
        """Read the key from the environment at call time; a local server may need none."""
        if not api_key_env_allowed(self.api_key_env):
            return self.NO_KEY  # a name saved past the validator is never read
        return os.environ.get(self.api_key_env, "") or self.NO_KEY

    @property
    def structured_mode(self) -> str:
        """How a structured answer is asked for: json_schema, else json_mode, else the schema in the prompt only."""
        if self.supports_json_schema:
            return "json_schema"
        return "json_mode" if self.supports_json_mode else "prompt"

    @property
    def is_simulated(self) -> bool:
        if self.provider == self.Provider.SIMULATED:
            return True
        return not self.base_url and settings.LLM_SIMULATED

    @property
    def unit_prices(self) -> dict[str, Decimal]:
        """The prices a call reserved now is billed at; the ledger row keeps a copy (``LLMCall.unit_prices``)."""
        return {
            "price_input_per_mtok": self.price_input_per_mtok,
            "price_cached_input_per_mtok": self.price_cached_input_per_mtok,
            "price_output_per_mtok": self.price_output_per_mtok,
        }

    def cost_usd(self, *, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> Decimal:
        return priced_usd(
            self.unit_prices,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached_tokens,
        )


def priced_usd(
    prices: dict[str, Decimal], *, prompt_tokens: int, completion_tokens: int, cached_tokens: int
) -> Decimal:
    """Dollars for a call's tokens at per-million-token ``prices``; cached prompt tokens at the cached price."""
    uncached = max(prompt_tokens - cached_tokens, 0)
    total = (
        uncached * prices["price_input_per_mtok"]
        + cached_tokens * prices["price_cached_input_per_mtok"]
        + completion_tokens * prices["price_output_per_mtok"]
    ) / MILLION
    return total.quantize(Decimal("0.000001"))


class AgentSpecQuerySet(models.QuerySet):
    def usable_for(self, mission) -> "AgentSpecQuerySet":
        """Agents ``mission`` may be staffed with: standard ones, promoted specialists and its requester's own.

        A specialist is designed from one mission's text, which may carry injected
        instructions, so it serves only its owner's missions until an admin has read
        its prompt and promoted it. This is the one place that decides reuse: when
        projects exist, a project's specialists are one more ``| Q(...)`` here.
        """
        usable = Q(is_dynamic=False) | Q(reviewed_for_reuse=True)
        if mission.requester_id is not None:
            usable |= Q(owner_id=mission.requester_id)
        return self.filter(usable)


class AgentSpec(models.Model):
    """An agent the company can staff: the C-suite, the validator, standard roles and dynamic specialists."""

    name = models.SlugField(max_length=60, unique=True)
    role = models.CharField(max_length=60, db_index=True, help_text="What it covers, e.g. cto, developer, qa.")
    title = models.CharField(max_length=120)
    system_prompt = models.TextField()
    model_profile = models.ForeignKey(ModelProfile, null=True, blank=True, on_delete=models.SET_NULL)
    tools = models.JSONField(default=list, blank=True, help_text="Tool names from the allow-list.")
    is_c_suite = models.BooleanField(default=False)
    is_dynamic = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    created_by_mission = models.ForeignKey(
        "missions.Mission", null=True, blank=True, on_delete=models.SET_NULL, related_name="created_agents"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="specialists",
        help_text="A dynamic specialist serves only its owner's missions until it is promoted for reuse.",
    )
    reviewed_for_reuse = models.BooleanField(
        default=False, help_text="An admin read its prompt and tools and lets every mission use it."
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AgentSpecQuerySet.as_manager()

    class Meta:
        ordering = ["-is_c_suite", "name"]

    def __str__(self) -> str:
        return f"{self.title} ({self.name})"

    def promote_for_reuse(self, *, by) -> None:
        """Let every mission use this agent (after someone read its prompt); a no-op if it already may."""
        if not self.reviewed_for_reuse:
            self.reviewed_for_reuse, self.reviewed_by, self.reviewed_at = True, by, timezone.now()
            self.save(update_fields=["reviewed_for_reuse", "reviewed_by", "reviewed_at"])

    def withdraw_from_reuse(self) -> None:
        """Back to serving only its owner's missions (steps already staffed with it keep it)."""
        self.reviewed_for_reuse, self.reviewed_by, self.reviewed_at = False, None, None
        self.save(update_fields=["reviewed_for_reuse", "reviewed_by", "reviewed_at"])


class LLMCall(models.Model):
    """One model call in the cost ledger. Written before the call, settled after."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        OK = "ok", "OK"
        ERROR = "error", "Error"
        CACHE_HIT = "cache_hit", "Cache hit"

    mission = models.ForeignKey("missions.Mission", on_delete=models.CASCADE, related_name="llm_calls")
    cycle = models.ForeignKey("missions.DecisionCycle", null=True, blank=True, on_delete=models.SET_NULL)
    step = models.ForeignKey("missions.Step", null=True, blank=True, on_delete=models.SET_NULL)
    agent = models.ForeignKey(AgentSpec, null=True, blank=True, on_delete=models.SET_NULL)
    model_profile = models.ForeignKey(ModelProfile, null=True, blank=True, on_delete=models.SET_NULL)
    model_name = models.CharField(max_length=120)
    purpose = models.CharField(max_length=60)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    # The reservation's bounds: the prompt size bound and the output bound sent as max_tokens.
    prompt_token_bound = models.PositiveIntegerField(default=0)
    max_output_tokens = models.PositiveIntegerField(default=0)
    # What the server said it used; the billed tokens above never exceed the bounds.
    reported_prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    reported_completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    overrun = models.BooleanField(
        default=False, help_text="The server reported or sent more than the reservation; billed at the bound."
    )
    reserved_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    # The profile's prices when the call was reserved: it is billed at these even if an admin changes the
    # profile mid-call, and the cost report shows them. Empty on rows written before they were kept.
    price_input_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    price_cached_input_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    price_output_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    provider_request_id = models.CharField(max_length=200, blank=True, db_index=True)
    fingerprint = models.CharField(max_length=64, blank=True, db_index=True, help_text="Hash of the request.")
    response = models.JSONField(null=True, blank=True, help_text="The parsed answer, replayed on a cache hit.")
    attempt = models.PositiveSmallIntegerField(default=1)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        # The admin's ledger: newest first (paging through 500,000 rows), and its purpose filter's rows and count.
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="agents_llmcall_recent"),
            models.Index(fields=["purpose", "-created_at"], name="agents_llmcall_purpose"),
        ]
        verbose_name = "LLM call"

    def __str__(self) -> str:
        return f"{self.purpose} {self.model_name} {self.status} ${self.cost_usd}"

    @property
    def unit_prices(self) -> dict[str, Decimal] | None:
        """The prices this call is billed at, or None for a row from before they were kept."""
        prices = {
            "price_input_per_mtok": self.price_input_per_mtok,
            "price_cached_input_per_mtok": self.price_cached_input_per_mtok,
            "price_output_per_mtok": self.price_output_per_mtok,
        }
        return None if None in prices.values() else prices


class AgentMessage(models.Model):
    """A transcript entry: what an agent said, which tool it called and what came back."""

    class Kind(models.TextChoices):
        TEXT = "text", "Text"
        TOOL_CALL = "tool_call", "Tool call"
        TOOL_RESULT = "tool_result", "Tool result"

    mission = models.ForeignKey("missions.Mission", on_delete=models.CASCADE, related_name="messages")
    cycle = models.ForeignKey("missions.DecisionCycle", null=True, blank=True, on_delete=models.SET_NULL)
    step = models.ForeignKey("missions.Step", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    agent = models.ForeignKey(AgentSpec, null=True, blank=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TEXT)
    source = models.CharField(max_length=120)
    content = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        # The admin's transcript list, newest first.
        indexes = [models.Index(fields=["-created_at", "-id"], name="agents_agentmessage_recent")]

    def __str__(self) -> str:
        return f"{self.source}: {self.content[:60]}"
