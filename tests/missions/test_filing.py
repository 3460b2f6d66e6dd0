"""Filing a mission as a new user would: budgets as typed, long text, templates with notes, preview, duplicates."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from missions.inputs import REQUEST_MAX
from missions.knowledge import knowledge_brief, knowledge_search
from missions.models import KnowledgeEntry, Mission, MissionTemplate
from missions.services import DuplicateMissionError, mission_submit
from reviews.gates import GateError, gate_decide, gate_open

NEW_URL = reverse("missions:new")


def _post(**overrides) -> dict:
    data = {
        "template": "",
        "title": "Add a health page",
        "request": "Expose /healthz with database and Redis checks.",
        "acceptance_criteria": "",
        "priority": "normal",
        "budget_usd": "3.50",
        "require_deploy_approval": "on",
    }
    data.update(overrides)
    return data


def _template_post(**overrides) -> dict:
    fields = {
        "template": "api_endpoint",
        "title": "",
        "request": "",
        "var_resource": "user authentication",
        "var_operations": "login and logout",
        "var_details": "",
    }
    return _post(**{**fields, **overrides})


def _cli(*args) -> str:
    out = io.StringIO()
    call_command("submit_mission", "--requester", "pm", *args, stdout=out)
    return out.getvalue()


# --- Budgets as people type them ------------------------------------------------------------------


def test_it_offers_a_text_budget_field_so_the_browser_cannot_drop_a_comma(client, company, pm):
    """The budget is a text input with a decimal keypad: a number input reads "5,00" as 500 in some locales."""
    client.force_login(pm)
    body = client.get(NEW_URL).content.decode()
    assert 'type="text" name="budget_usd"' in body and 'inputmode="decimal"' in body
    assert 'type="number" name="budget_usd"' not in body


@pytest.mark.parametrize(
    ("typed", "budget"),
    [("5,00", "5.00"), ("5,5", "5.50"), ("5.00", "5.00"), ("$5", "5.00"), (" 12.5 ", "12.50"), ("50", "50.00")],
)
def test_it_reads_a_decimal_comma_as_cents(client, company, pm, typed, budget):
    """5,00 is five dollars, never five hundred; a point works the same; $50 is not above the $50 threshold."""
    client.force_login(pm)
    response = client.post(NEW_URL, _post(budget_usd=typed))
    assert response.status_code == 302, response.context["form"].errors
    assert Mission.objects.get().budget_usd == Decimal(budget)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("1.234,56", "has a thousands separator"),
        ("1,234.56", "has a thousands separator"),
        ("1,234", "is ambiguous"),
        ("1.234", "is ambiguous"),
        ("5.1234", "at most two decimals"),
        ("five", "Enter the budget as a number of dollars"),
    ],
)
def test_it_refuses_budgets_it_would_have_to_guess(client, company, pm, typed, message):
    """Thousands separators and three decimals are refused with a message saying how to write the amount."""
    client.force_login(pm)
    response = client.post(NEW_URL, _post(budget_usd=typed))
    assert response.status_code == 400
    errors = response.context["form"].errors["budget_usd"]
    assert any(message in error for error in errors), errors
    assert not Mission.objects.exists()


def test_it_asks_for_confirmation_above_the_threshold(client, company, pm):
    """$75 with no confirmation re-shows the form with a confirm box and files nothing; ticked, it files."""
    client.force_login(pm)
    response = client.post(NEW_URL, _post(budget_usd="75"))
    assert response.status_code == 400
    assert 'name="confirm_budget"' in response.content.decode()
    assert "above $50: tick the box" in response.context["form"].errors["confirm_budget"][0]
    assert not Mission.objects.exists()

    response = client.post(NEW_URL, _post(budget_usd="75", confirm_budget="on"))
    assert response.status_code == 302
    assert Mission.objects.get().budget_usd == Decimal("75.00")


def test_it_does_not_show_the_confirm_box_for_an_ordinary_budget(client, company, pm):
    client.force_login(pm)
    assert 'name="confirm_budget"' not in client.get(NEW_URL).content.decode()


def test_it_follows_the_confirmation_setting_in_the_service(company, pm, settings):
    """mission_submit refuses a budget above BUDGET_CONFIRM_ABOVE_USD unless budget_confirmed."""
    settings.BUDGET_CONFIRM_ABOVE_USD = Decimal("10")
    with pytest.raises(ValueError, match=r"A budget above \$10 needs confirmation"):
        mission_submit(requester=pm, title="T", request="R", budget_usd=Decimal("10.01"))
    mission = mission_submit(requester=pm, title="T", request="R", budget_usd="10,01", budget_confirmed=True)
    assert mission.budget_usd == Decimal("10.01")


def test_it_reads_budgets_the_same_way_on_the_command_line(company, pm):
    """--budget 5,00 files $5.00; above the threshold it needs --confirm-budget; 1.234,56 is refused."""
    _cli("--title", "T", "--request", "R", "--budget", "5,00")
    assert Mission.objects.get().budget_usd == Decimal("5.00")
    with pytest.raises(CommandError, match="add --confirm-budget"):
        _cli("--title", "T2", "--request", "R", "--budget", "75")
    with pytest.raises(CommandError, match="thousands separator"):
        _cli("--title", "T3", "--request", "R", "--budget", "1.234,56", "--confirm-budget")
    _cli("--title", "T4", "--request", "R", "--budget", "75", "--confirm-budget")
    assert Mission.objects.get(title="T4").budget_usd == Decimal("75.00")


# --- Text limits and the knowledge search ---------------------------------------------------------


def test_it_refuses_a_request_over_the_limit_everywhere(client, company, pm):
    """20,000 characters are accepted; 200,000 are refused by the form, the CLI and the service alike."""
    huge = "a" * 200_000
    client.force_login(pm)
    response = client.post(NEW_URL, _post(request=huge))
    assert response.status_code == 400
    assert "at most 20000 characters" in response.context["form"].errors["request"][0]
    with pytest.raises(CommandError, match="The request is 200,000 characters long; the limit is 20,000."):
        _cli("--title", "T", "--request", huge)
    with pytest.raises(ValueError, match="The request is 20,001 characters long"):
        mission_submit(requester=pm, title="T", request="b" * (REQUEST_MAX + 1), budget_usd=Decimal("1"))
    assert not Mission.objects.exists()
    mission_submit(requester=pm, title="T", request="c" * REQUEST_MAX, budget_usd=Decimal("1"))


@pytest.mark.parametrize(
    "text",
    [
        "x" * 200_000,  # one enormous "word": once an SQLite LIKE pattern too complex
        " ".join(f"word{i:05d}" for i in range(30_000)),  # very many distinct words
        "%_%_ " * 40_000 + " deploy",  # LIKE wildcards
    ],
)
def test_it_searches_knowledge_safely_for_any_text(company, pm, text):
    """Any request text, however long or odd, gives a bounded search that does not fail the mission."""
    earlier = Mission.objects.create(requester=pm, title="Old", request="r", budget_usd=Decimal("1"))
    KnowledgeEntry.objects.create(mission=earlier, kind="lesson", title="How to deploy", body="Deploy carefully.")
    mission = Mission.objects.create(requester=pm, title="New", request=text, budget_usd=Decimal("1"))
    found = knowledge_search(text, requester_id=pm.pk)
    assert all(isinstance(entry, KnowledgeEntry) for entry in found)
    knowledge_brief(mission)  # what a step's brief calls; raised OperationalError before


def test_it_still_finds_knowledge_by_the_words_of_the_request(company, pm):
    earlier = Mission.objects.create(requester=pm, title="Old", request="r", budget_usd=Decimal("1"))
    entry = KnowledgeEntry.objects.create(mission=earlier, kind="lesson", title="Payments", body="Retry webhooks.")
    assert knowledge_search("Handle payments webhooks " + "z" * 500, requester_id=pm.pk) == [entry]


# --- Templates keep their request; the preview shows what is filed --------------------------------


def test_it_appends_typed_text_to_the_template_request_as_notes(client, company, pm):
    """A request typed with a template is added after the rendered template request, so its variables stay."""
    client.force_login(pm)
    response = client.post(NEW_URL, _template_post(request="Use the existing session table."))
    assert response.status_code == 302
    mission = Mission.objects.get()
    rendered = MissionTemplate.objects.get(slug="api_endpoint").render(mission.variables)["request"].strip()
    assert mission.request == f"{rendered}\n\nAdditional notes:\nUse the existing session table."
    assert "user authentication" in mission.request


def test_it_previews_and_then_files_exactly_what_was_previewed(client, company, pm):
    """Preview shows the rendered request and files nothing; filing with that preview files the same text."""
    client.force_login(pm)
    response = client.post(NEW_URL, _template_post(request="Rate-limit logins.", preview="1"))
    assert response.status_code == 200
    assert not Mission.objects.exists()
    preview = response.context["preview"]
    assert preview["request"].startswith("Build an API for user authentication supporting login and logout.")
    assert preview["request"].endswith("Additional notes:\nRate-limit logins.")
    body = response.content.decode()
    assert "What will be filed" in body and f'name="previewed" value="{preview["digest"]}"' in body

    response = client.post(NEW_URL, _template_post(request="Rate-limit logins.", previewed=preview["digest"]))
    assert response.status_code == 302
    mission = Mission.objects.get()
    assert (mission.title, mission.request, mission.budget_usd) == (
        preview["title"],
        preview["request"],
        preview["budget_usd"],
    )


def test_it_shows_the_preview_again_when_the_form_changed_after_it(client, company, pm):
    """Filing with an outdated preview files nothing and shows the new preview to check."""
    client.force_login(pm)
    digest = client.post(NEW_URL, _template_post(preview="1")).context["preview"]["digest"]
    response = client.post(NEW_URL, _template_post(var_resource="billing", previewed=digest))
    assert response.status_code == 200
    assert not Mission.objects.exists()
    assert "changed after the preview" in response.content.decode()
    assert "billing" in response.context["preview"]["request"]


def test_it_renders_only_the_preview_fragment_for_htmx(client, company, pm):
    """The live preview (htmx) gets the preview section alone, errors or not."""
    client.force_login(pm)
    response = client.post(NEW_URL, _template_post(preview="1"), headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and 'id="preview"' not in body  # the section's content, swapped into it
    assert "Build an API for user authentication" in body
    assert 'name="previewed"' not in body  # the live preview does not bind what is filed
    response = client.post(NEW_URL, _template_post(preview="1", var_resource=""), headers={"HX-Request": "true"})
    assert response.status_code == 200 and "fix the fields marked above first" in response.content.decode()


# --- Duplicates -----------------------------------------------------------------------------------


def test_it_refuses_the_same_mission_filed_again_from_the_form(client, company, pm):
    """Back, then "File mission" again: the second identical post is refused with a link to the first."""
    client.force_login(pm)
    assert client.post(NEW_URL, _template_post()).status_code == 302
    response = client.post(NEW_URL, _template_post())
    assert response.status_code == 400
    first = Mission.objects.get()
    body = response.content.decode()
    assert "You filed this same mission" in body
    assert f'<a href="{first.get_absolute_url()}">{first.title}</a>' in body
    assert client.post(NEW_URL, _template_post(var_details="Also logout everywhere.")).status_code == 302
    assert Mission.objects.count() == 2


def test_it_allows_the_same_mission_again_after_the_window(client, company, pm):
    client.force_login(pm)
    client.post(NEW_URL, _post())
    Mission.objects.update(created_at=Mission.objects.get().created_at - timedelta(minutes=11))
    assert client.post(NEW_URL, _post()).status_code == 302
    assert Mission.objects.count() == 2


def test_it_refuses_a_duplicate_from_the_service_and_the_cli(company, pm, other_pm):
    """The same requester, title, request, template and variables within 10 minutes; another PM is not affected."""
    kwargs = {"title": "T", "request": "R", "budget_usd": Decimal("1"), "refuse_duplicates": True}
    first = mission_submit(requester=pm, **kwargs)
    with pytest.raises(DuplicateMissionError) as caught:
        mission_submit(requester=pm, **kwargs)
    assert caught.value.mission == first
    mission_submit(requester=other_pm, **kwargs)
    with pytest.raises(CommandError, match="Add --allow-duplicate"):
        _cli("--title", "T", "--request", "R")
    _cli("--title", "T", "--request", "R", "--allow-duplicate")
    assert Mission.objects.filter(requester=pm).count() == 2


def test_it_previews_before_the_budget_is_confirmed(client, company, pm):
    """A budget waiting for its confirmation does not hide the preview; the confirm box is shown beside it."""
    client.force_login(pm)
    response = client.post(NEW_URL, _template_post(budget_usd="75", preview="1"))
    assert response.context["preview"]["budget_usd"] == Decimal("75.00")
    assert 'name="confirm_budget"' in response.content.decode()
    assert not Mission.objects.exists()


def test_it_limits_template_variables_and_gate_comments(company, pm, reviewer):
    """A variable value over 500 characters and a gate comment over 2,000 are refused with their limits."""
    with pytest.raises(CommandError, match="The value of resource is 501 characters long; the limit is 500."):
        _cli("--template", "api_endpoint", "--var", "resource=" + "r" * 501)
    mission = Mission.objects.create(
        requester=pm, title="T", request="R", budget_usd=Decimal("1"), status=Mission.Status.AWAITING_DEPLOY_APPROVAL
    )
    gate = gate_open(mission=mission, kind="deploy", question="Ship?")
    with pytest.raises(GateError, match="The comment is 2,001 characters long; the limit is 2,000."):
        gate_decide(gate=gate, by=reviewer, decision="rejected", comment="c" * 2001)
    gate.refresh_from_db()
    assert gate.is_pending
