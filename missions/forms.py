from decimal import Decimal

from django import forms
from django.conf import settings

from missions.models import Mission, MissionTemplate
from missions.services import MAX_BUDGET_USD

VAR_PREFIX = "var_"


class MissionForm(forms.Form):
    """A mission from free text, or from a template whose variables become extra fields."""

    template = forms.ModelChoiceField(
        queryset=MissionTemplate.objects.filter(is_active=True),
        required=False,
        empty_label="Free text (no template)",
        to_field_name="slug",
    )
    title = forms.CharField(max_length=200, required=False, help_text="Leave empty to use the template's title.")
    request = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False)
    acceptance_criteria = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    priority = forms.ChoiceField(choices=Mission.Priority.choices, initial=Mission.Priority.NORMAL)
    budget_usd = forms.DecimalField(
        label="Budget (USD)", min_value=Decimal("0.01"), max_value=MAX_BUDGET_USD, decimal_places=2, max_digits=10
    )

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

    def __init__(self, *args, template: MissionTemplate | None = None, **kwargs):
        super().__init__(*args, **kwargs)
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
                    max_length=500,
                )

    def variable_fields(self):
        return [self[name] for name in self.fields if name.startswith(VAR_PREFIX)]

    def clean(self):
        data = super().clean()
        template = data.get("template")
        variables = {name[len(VAR_PREFIX) :]: value for name, value in data.items() if name.startswith(VAR_PREFIX)}
        data["variables"] = variables
        if template is None:
            for name in ("title", "request"):
                if name not in self.errors and not (data.get(name) or "").strip():
                    self.add_error(name, "Required when no template is chosen.")
        else:
            try:
                template.render(variables)
            except ValueError as error:
                raise forms.ValidationError(str(error)) from None
        return data
