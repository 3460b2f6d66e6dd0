import hashlib
import json

from django import forms
from django.conf import settings

from agents.models import AgentSpec
from missions.inputs import ACCEPTANCE_MAX, REQUEST_MAX, TITLE_MAX, VARIABLE_MAX, budget_parse
from missions.models import Mission, MissionTemplate
from missions.services import budget_needs_confirmation, mission_compose
from projects.models import Project

VAR_PREFIX = "var_"


class MissionForm(forms.Form):
    """A mission from free text, or from a template whose variables become extra fields."""

    project = forms.ModelChoiceField(
        queryset=Project.objects.none(),
        required=False,
        empty_label="No project (start from an empty repository)",
        to_field_name="slug",
        help_text="The product repository the agents work on; the result is a branch pushed to it.",
    )
    template = forms.ModelChoiceField(
        queryset=MissionTemplate.objects.filter(is_active=True),
        required=False,
        empty_label="Free text (no template)",
        to_field_name="slug",
    )
    title = forms.CharField(max_length=TITLE_MAX, required=False, help_text="Leave empty to use the template's title.")
    request = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        required=False,
        max_length=REQUEST_MAX,
        help_text=f"At most {REQUEST_MAX:,} characters. With a template, this is added to its request as notes.",
    )
    acceptance_criteria = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=ACCEPTANCE_MAX
    )
    priority = forms.ChoiceField(choices=Mission.Priority.choices, initial=Mission.Priority.NORMAL)
    # Text, not type=number: a browser's number field reads "5,00" as 500 in some locales.
    budget_usd = forms.CharField(
        label="Budget (USD)",
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        help_text="Dollars, e.g. 5 or 5.00 (a decimal comma works too).",
    )
    confirm_budget = forms.BooleanField(required=False, label="Yes, I mean this budget")
    previewed = forms.CharField(required=False, widget=forms.HiddenInput)

    consensus_rule = forms.ChoiceField(
        choices=[("", "As the template says (quorum without one)"), *MissionTemplate.ConsensusRule.choices],
        required=False,
        label="C-suite consensus rule",
    )
    conversation_mode = forms.ChoiceField(
        choices=[("", "As the template says (round-robin without one)"), *MissionTemplate.ConversationMode.choices],
        required=False,
        label="How the C-suite deliberates",
    )
    deadlock_policy = forms.ChoiceField(
        choices=[("", "As the template says (ask a human)"), *MissionTemplate.DeadlockPolicy.choices],
        required=False,
        label="On deadlock",
    )
    require_plan_approval = forms.BooleanField(
        required=False, initial=False, label="Ask a reviewer to approve the plan"
    )
    require_deploy_approval = forms.BooleanField(required=False, initial=True, label="Ask a reviewer before deploying")
    reviewers = forms.ModelMultipleChoiceField(
        queryset=AgentSpec.objects.filter(
            is_active=True, is_c_suite=False, is_dynamic=False, role__endswith="reviewer"
        ).order_by("title"),
        to_field_name="name",
        required=False,
        label="Peer reviewers",
        widget=forms.SelectMultiple(attrs={"size": 3}),
        help_text="Agents that review every step's change. None chosen: as the template says "
        "(the code and the security reviewer without one).",
    )
    review_rule = forms.ChoiceField(
        choices=[("", "As the template says (majority without one)"), *MissionTemplate.ReviewRule.choices],
        required=False,
        label="Peer reviewers decide by",
    )
    skip_peer_review = forms.BooleanField(required=False, label="No agent peer review of the steps")

    def __init__(self, *args, template: MissionTemplate | None = None, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:
            self.fields["project"].queryset = Project.objects.open_to(user)
        if not self.fields["project"].queryset.exists():
            del self.fields["project"]  # no project to choose: the form stays as it was
        self.fields["budget_usd"].initial = (
            template.default_budget_usd if template else settings.DEFAULT_MISSION_BUDGET_USD
        )
        self.chosen_template = template
        if template is not None:
            self.fields["template"].initial = template.slug
            for var in template.variables:
                self.fields[VAR_PREFIX + var["name"]] = forms.CharField(
                    label=var.get("label") or var["name"].replace("_", " ").capitalize(),
                    help_text=var.get("help", ""),
                    required=var.get("required", True),
                    initial=var.get("default", ""),
                    max_length=VARIABLE_MAX,
                )

    def variable_fields(self):
        return [self[name] for name in self.fields if name.startswith(VAR_PREFIX)]

    def clean_budget_usd(self):
        try:
            return budget_parse(self.cleaned_data["budget_usd"])
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None

    def clean(self):
        data = super().clean()
        template = data.get("template")
        variables = {name[len(VAR_PREFIX) :]: value for name, value in data.items() if name.startswith(VAR_PREFIX)}
        data["variables"] = variables
        self.composed = None
        budget = data.get("budget_usd")
        self.needs_budget_confirmation = budget is not None and budget_needs_confirmation(budget)
        if self.needs_budget_confirmation and not data.get("confirm_budget"):
            self.add_error(
                "confirm_budget",
                f"${budget} is above ${settings.BUDGET_CONFIRM_ABOVE_USD}: tick the box to confirm this budget.",
            )
        chosen = list(data.get("reviewers") or [])
        if data.get("skip_peer_review") and chosen:
            self.add_error("skip_peer_review", "Choose reviewers or turn peer review off, not both.")
        # None: the template's reviewers; []: no peer review.
        data["reviewer_names"] = [] if data.get("skip_peer_review") else [a.name for a in chosen] or None
        if template is None:
            for name in ("title", "request"):
                if name not in self.errors and not (data.get(name) or "").strip():
                    self.add_error(name, "Required when no template is chosen.")
        if any(name in self.errors for name in ("title", "request", "acceptance_criteria")):
            return data
        try:
            self.composed = mission_compose(
                title=data.get("title", ""),
                request=data.get("request", ""),
                acceptance_criteria=data.get("acceptance_criteria", ""),
                template=template,
                variables=variables,
            )
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        return data

    def submit_arguments(self) -> dict:
        """The valid form as ``mission_submit``'s arguments (all but the requester): the page and the API file alike."""
        data = self.cleaned_data
        return {
            "title": data["title"],
            "request": data["request"],
            "acceptance_criteria": data["acceptance_criteria"],
            "template": data["template"],
            "variables": data["variables"],
            "priority": data["priority"],
            "budget_usd": data["budget_usd"],
            "budget_confirmed": data["confirm_budget"],
            "refuse_duplicates": True,
            "require_plan_approval": data["require_plan_approval"],
            "require_deploy_approval": data["require_deploy_approval"],
            "consensus_rule": data["consensus_rule"],
            "conversation_mode": data["conversation_mode"],
            "deadlock_policy": data["deadlock_policy"],
            "project": data.get("project"),
            "reviewers": data["reviewer_names"],
            "review_rule": data["review_rule"],
        }

    def digest(self) -> str:
        """A fingerprint of what would be filed, so filing can check it is what the preview showed."""
        data = self.cleaned_data
        filed = {
            **self.composed,
            "budget_usd": str(data["budget_usd"]),
            "template": str(data.get("template") or ""),
            "project": getattr(data.get("project"), "slug", ""),
        }
        return hashlib.sha256(json.dumps(filed, sort_keys=True).encode()).hexdigest()[:32]

    def can_preview(self) -> bool:
        """The text and the budget are valid (an unticked budget confirmation does not hide the preview)."""
        return getattr(self, "composed", None) is not None and "budget_usd" in self.cleaned_data

    def preview_is_stale(self) -> bool:
        """A preview was shown, and the mission changed after it."""
        shown = self.cleaned_data.get("previewed", "")
        return bool(shown) and shown != self.digest()
