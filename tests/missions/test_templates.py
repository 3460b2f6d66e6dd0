"""Mission templates: variable substitution, the seeded eight, and the mission form built from them."""

from decimal import Decimal

import pytest

from missions.forms import MissionForm
from missions.models import VARIABLE_RE, MissionTemplate
from missions.seed import TEMPLATES, seed_templates


def _template(**fields) -> MissionTemplate:
    spec = {
        "slug": "greeting",
        "name": "Greeting",
        "title_template": "Greet {{ who }}",
        "request_template": "Say {{greeting}} to {{who}} in {{ language }}.",
        "acceptance_template": "{{who}} is greeted.",
        "variables": [
            {"name": "who", "label": "Who", "required": True},
            {"name": "greeting", "label": "Greeting", "required": True, "default": "hello"},
            {"name": "language", "label": "Language", "required": False},
        ],
    }
    spec.update(fields)
    return MissionTemplate.objects.create(**spec)


def _form_data(**overrides) -> dict:
    data = {"template": "", "title": "T", "request": "R", "priority": "normal", "budget_usd": "2.00"}
    data.update(overrides)
    return data


# --- render ---------------------------------------------------------------------------------------


def test_it_substitutes_variables(db):
    """Every {{ name }} slot, with or without spaces, takes its value in title, request and acceptance."""
    rendered = _template().render({"who": "Ada", "greeting": "hi", "language": "French"})
    assert rendered == {
        "title": "Greet Ada",
        "request": "Say hi to Ada in French.",
        "acceptance_criteria": "Ada is greeted.",
    }


def test_it_uses_defaults_and_blanks_optional_variables(db):
    """A missing variable with a default takes it; an optional one without a default becomes empty."""
    rendered = _template().render({"who": "Ada"})
    assert rendered["request"] == "Say hello to Ada in ."


def test_it_strips_values(db):
    """Values are trimmed; a value of only spaces counts as missing."""
    template = _template()
    assert template.render({"who": "  Ada \n"})["title"] == "Greet Ada"
    with pytest.raises(ValueError, match="missing: who"):
        template.render({"who": "   "})


def test_it_names_missing_variables(db):
    """Every missing required variable is named, in declaration order."""
    template = _template(
        variables=[{"name": "a", "label": "A"}, {"name": "b", "label": "B"}, {"name": "c", "label": "C"}]
    )
    with pytest.raises(ValueError) as caught:
        template.render({"b": "x"})
    assert str(caught.value) == "Template variables missing: a, c."


def test_it_names_unknown_variables(db):
    """Variables the template does not declare are refused and named, sorted."""
    with pytest.raises(ValueError) as caught:
        _template().render({"who": "Ada", "zeta": "1", "alpha": "2"})
    assert str(caught.value) == "Template variables unknown: alpha, zeta."


def test_it_names_missing_and_unknown_together(db):
    """Both problems are reported at once, so the form can show them all."""
    with pytest.raises(ValueError) as caught:
        _template().render({"whom": "Ada"})
    assert str(caught.value) == "Template variables missing: who; unknown: whom."


def test_it_inserts_values_literally(db):
    """Values are inserted as text: backslashes, group references and slots in a value are not expanded."""
    rendered = _template().render({"who": r"C:\new\1 {{greeting}}", "greeting": "hi"})
    assert rendered["title"] == r"Greet C:\new\1 {{greeting}}"


def test_it_leaves_undeclared_slots_alone(db):
    """A slot that is not a declared variable stays as written rather than vanishing."""
    template = _template(title_template="Greet {{who}} {{ undeclared }}")
    assert template.render({"who": "Ada"})["title"] == "Greet Ada {{ undeclared }}"


def test_it_lists_variable_names(db):
    """variable_names() gives the declared names in order."""
    assert _template().variable_names() == ["who", "greeting", "language"]


# --- the seeded eight -----------------------------------------------------------------------------


def test_it_seeds_eight_templates_idempotently(db):
    """seed_templates creates the eight standard templates once; a second run creates none."""
    assert seed_templates() == 8
    assert seed_templates() == 0
    assert MissionTemplate.objects.count() == 8
    assert set(MissionTemplate.objects.values_list("slug", flat=True)) == {t["slug"] for t in TEMPLATES}


@pytest.mark.parametrize("spec", TEMPLATES, ids=[t["slug"] for t in TEMPLATES])
def test_it_renders_every_seeded_template(company, spec):
    """Each seeded template renders with a value for each required variable, leaving no slot unfilled."""
    template = MissionTemplate.objects.get(slug=spec["slug"])
    values = {v["name"]: f"<{v['name']} value>" for v in template.variables if v["required"] and not v["default"]}
    rendered = template.render(values)
    for text in rendered.values():
        assert not VARIABLE_RE.search(text), text
    assert rendered["title"] and rendered["request"] and rendered["acceptance_criteria"]
    for value in values.values():
        assert value in rendered["title"] + rendered["request"]
    # Every slot in the texts is a declared variable, and every declared variable is used.
    slots = set(VARIABLE_RE.findall(spec["title_template"] + spec["request_template"] + spec["acceptance_template"]))
    assert slots == set(template.variable_names())


@pytest.mark.parametrize("spec", TEMPLATES, ids=[t["slug"] for t in TEMPLATES])
def test_it_requires_the_required_variables_of_every_seeded_template(company, spec):
    """Rendering a seeded template with nothing names its required variables that have no default."""
    template = MissionTemplate.objects.get(slug=spec["slug"])
    needed = [v["name"] for v in template.variables if v["required"] and not v["default"]]
    assert needed, "every standard template asks for something"
    with pytest.raises(ValueError) as caught:
        template.render({})
    assert str(caught.value) == "Template variables missing: " + ", ".join(needed) + "."


# --- the form -------------------------------------------------------------------------------------


def test_it_validates_a_free_text_form(company):
    """Free text with title, request and a budget is valid and has no variables."""
    form = MissionForm(_form_data())
    assert form.is_valid(), form.errors
    assert form.cleaned_data["template"] is None
    assert form.cleaned_data["variables"] == {}
    assert form.cleaned_data["budget_usd"] == Decimal("2.00")
    assert form.variable_fields() == []


def test_it_requires_title_and_request_without_a_template(company):
    """Without a template, title and request are required."""
    form = MissionForm(_form_data(title="", request=""))
    assert not form.is_valid()
    assert form.errors["title"] == ["Required when no template is chosen."]
    assert form.errors["request"] == ["Required when no template is chosen."]


def test_it_adds_a_field_per_template_variable(company):
    """A template's variables become fields with its labels, help, required flags and defaults."""
    template = MissionTemplate.objects.get(slug="api_endpoint")
    form = MissionForm(template=template)
    fields = {bound.name: bound.field for bound in form.variable_fields()}
    assert list(fields) == ["var_resource", "var_operations", "var_details"]
    assert fields["var_resource"].label == "Resource"
    assert fields["var_resource"].required is True
    assert fields["var_resource"].help_text == "What the API is about, e.g. user authentication."
    assert fields["var_operations"].initial == "create, read, update and delete"
    assert fields["var_details"].required is False
    assert form.fields["budget_usd"].initial == template.default_budget_usd
    assert form.fields["template"].initial == "api_endpoint"


def test_it_validates_a_template_form(company):
    """Title and request may be empty with a template; variables are collected without their prefix."""
    template = MissionTemplate.objects.get(slug="api_endpoint")
    form = MissionForm(
        _form_data(
            template="api_endpoint", title="", request="", var_resource="users", var_operations="read", var_details=""
        ),
        template=template,
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["template"] == template
    assert form.cleaned_data["variables"] == {"resource": "users", "operations": "read", "details": ""}


def test_it_refuses_a_template_other_than_the_one_rendered(company):
    """Posting a template other than the one whose fields were shown is invalid: its variables do not fit."""
    shown = MissionTemplate.objects.get(slug="api_endpoint")
    form = MissionForm(_form_data(template="bug_fix", var_resource="users"), template=shown)
    assert not form.is_valid()
    assert "var_symptom" not in form.fields  # the fields shown are those of the rendered template
    assert "unknown: " in form.non_field_errors()[0]


def test_it_puts_template_render_errors_on_the_form(company):
    """A variable left empty is required on its field and named by the template check."""
    template = MissionTemplate.objects.get(slug="bug_fix")
    form = MissionForm(
        _form_data(template="bug_fix", var_symptom="crash", var_steps="", var_expected="no crash"), template=template
    )
    assert not form.is_valid()
    assert form.errors["var_steps"] == ["This field is required."]
    assert form.non_field_errors() == ["Template variables missing: steps."]


def test_it_uses_the_configured_default_budget_without_a_template(company, settings):
    """The budget field starts at DEFAULT_MISSION_BUDGET_USD for free text."""
    settings.DEFAULT_MISSION_BUDGET_USD = Decimal("7.50")
    assert MissionForm().fields["budget_usd"].initial == Decimal("7.50")


@pytest.mark.parametrize("budget", ["0", "0.001", "-1", "10000.01", "1e9", "abc", "NaN", "Infinity", ""])
def test_it_rejects_bad_budgets(company, budget):
    """Budgets outside $0.01–$10000, with more than two decimals, or not numbers are invalid."""
    form = MissionForm(_form_data(budget_usd=budget))
    assert not form.is_valid()
    assert "budget_usd" in form.errors
