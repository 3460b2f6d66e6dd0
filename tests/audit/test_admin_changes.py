"""Admin changes to site-wide objects are audit entries with their actor, shown on the site audit."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.forms import CheckboxInput, MultiWidget
from django.urls import reverse

from agents.models import AgentSpec, LLMCall, ModelProfile
from audit.models import AuditEntry
from missions.models import Mission, MissionTemplate
from projects.models import Project
from tests.projects.conftest import product  # noqa: F401 - fixture

NEW_PASSWORD = "an entirely new passphrase 42"


def _admin_url(obj, view: str) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_{view}", args=[obj.pk])


def _form_data(page) -> dict:
    """What the admin's change form would post unchanged: its fields' current values and the inlines' forms."""
    data = {}

    def add(form):
        for name, field in form.fields.items():
            if field.disabled:
                continue
            value, key = form[name].value(), form.add_prefix(name)
            if isinstance(field.widget, MultiWidget):
                for n, part in enumerate(field.widget.decompress(value)):
                    data[f"{key}_{n}"] = "" if part is None else str(part)
            elif isinstance(field.widget, CheckboxInput):
                if value:
                    data[key] = "on"
            elif isinstance(value, list | tuple):
                data[key] = [str(v) for v in value]
            elif value is not None:
                data[key] = str(value)

    add(page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        add(formset.management_form)
        for form in formset.forms:
            add(form)
    return data


def _change(admin_client, obj, **changes):
    page = admin_client.get(_admin_url(obj, "change"))
    assert page.status_code == 200
    response = admin_client.post(_admin_url(obj, "change"), {**_form_data(page), **changes})
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    return AuditEntry.objects.latest("at", "id")


@pytest.fixture
def staff(admin_user):
    return admin_user


def test_it_audits_admin_changes_to_every_site_wide_object(admin_client, staff, company, pm):
    """Agent, model profile (its price), template, project and user: each change names the admin and the fields."""
    agent = AgentSpec.objects.get(role="cto", is_c_suite=True)
    profile = ModelProfile.objects.get(is_default=True)
    template = MissionTemplate.objects.get(slug="bug_fix")
    project = Project.objects.create(name="Shop", slug="shop", git_url="/srv/shop", head_sha="a" * 40)
    pm.date_joined = pm.date_joined.replace(microsecond=0)  # as the form shows it, so an unchanged post keeps it
    pm.save()

    made = [
        _change(admin_client, agent, title="Chief Technology Officer (acting)"),
        _change(admin_client, profile, price_output_per_mtok="12.5", api_key_env="SHOP_LLM_API_KEY"),
        _change(admin_client, template, default_budget_usd="7.50"),
        _change(admin_client, project, name="Shop front"),
        _change(admin_client, pm, email="pm@shop.example", is_staff="on"),
    ]
    assert [(e.actor, e.action) for e in made] == [(staff, AuditEntry.Action.CHANGE)] * 5
    assert made[0].changes == {"title": {"from": agent.title, "to": "Chief Technology Officer (acting)"}}
    assert made[1].changes["price_output_per_mtok"]["to"] == "12.5"
    assert made[1].changes["api_key_env"]["to"] == "SHOP_LLM_API_KEY"  # the NAME of a variable, not a key
    assert made[2].changes["default_budget_usd"]["to"] == "7.50"
    assert made[3].changes == {"name": {"from": "Shop", "to": "Shop front"}}
    assert made[4].changes == {
        "email": {"from": "pm@example.com", "to": "pm@shop.example"},
        "is_staff": {"from": False, "to": True},
    }

    site = admin_client.get(reverse("audit:site"))
    body = site.content.decode()
    summaries = [row["summary"] for row in site.context["rows"] if row["source"] == "admin"]
    assert len(summaries) == 5 and all(row["actor"] == "admin" for row in site.context["rows"])
    for text in ("agent spec", "model profile", "mission template", "project", "user “pm”"):
        assert text in body
    exported = json.loads(b"".join(admin_client.get(reverse("audit:site") + "?format=json").streaming_content))
    assert exported[0]["kind"] == "admin: change" and exported[0]["data"]["is_staff"] == {"from": False, "to": True}


def test_it_audits_additions_deletions_and_password_changes_without_the_password(admin_client, staff, company):
    """An added user, a password set in the admin and a deleted profile are audited; no password or hash is kept."""
    add = admin_client.post(
        reverse("admin:auth_user_add"),
        {"username": "newcomer", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert add.status_code == 302
    user = get_user_model().objects.get(username="newcomer")
    added = AuditEntry.objects.latest("at", "id")
    assert (added.action, added.actor, added.object_repr) == (AuditEntry.Action.ADD, staff, "newcomer")
    assert added.changes["username"] == {"to": "newcomer"}

    changed = admin_client.post(
        reverse("admin:auth_user_password_change", args=[user.pk]),
        {"password1": NEW_PASSWORD + "!", "password2": NEW_PASSWORD + "!", "usable_password": "true"},
    )
    assert changed.status_code == 302
    entry = AuditEntry.objects.latest("at", "id")
    assert entry.action == AuditEntry.Action.CHANGE and entry.object_id == str(user.pk)
    assert entry.changes and all(value == {"changed": True} for value in entry.changes.values())

    spare = ModelProfile.objects.create(name="spare")
    assert admin_client.post(_admin_url(spare, "delete"), {"post": "yes"}).status_code == 302
    deleted = AuditEntry.objects.latest("at", "id")
    assert (deleted.action, deleted.object_repr) == (AuditEntry.Action.DELETE, str(spare))
    assert deleted.changes["name"] == {"from": "spare"}

    user.refresh_from_db()
    stored = json.dumps(list(AuditEntry.objects.values("changes", "message", "object_repr")))
    for secret in (NEW_PASSWORD, user.password, user.password.split("$")[-1]):
        assert secret not in stored


def test_it_refuses_to_delete_what_append_only_records_refer_to(admin_client, pm, company):
    """A model profile named by a ledger row, and a mission with events, are shown as protected, not deleted."""
    profile = ModelProfile.objects.create(name="billed")
    mission = Mission.objects.create(requester=pm, title="Kept", request="r", budget_usd=5)
    mission.events.create(seq=1, kind="submitted", message="Filed")
    LLMCall.objects.create(mission=mission, model_profile=profile, model_name="m", purpose="p", status="ok")
    for obj in (profile, mission):
        page = admin_client.get(_admin_url(obj, "delete"))
        assert page.status_code == 200 and "Cannot delete" in page.content.decode()
        assert "1 LLM calls refer to it; they are append-only and are kept" in page.context["protected"]
        admin_client.post(_admin_url(obj, "delete"), {"post": "yes"})
        assert type(obj).objects.filter(pk=obj.pk).exists()
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.DELETE).exists()


def test_it_audits_projects_added_and_edited_on_the_projects_page(
    admin_client,
    staff,
    product,  # noqa: F811 - the fixture imported above
    settings,
    tmp_path,
):
    """The Projects page is an admin's too: adding and editing a project are audit entries with the admin."""
    settings.MIRRORS_DIR, settings.ENVS_DIR = tmp_path / "mirrors", tmp_path / "envs"
    settings.MIRRORS_DIR.mkdir()
    settings.ENVS_DIR.mkdir()
    settings.PROJECT_ALLOWED_ROOTS = []
    form = {"name": "Shop", "slug": "shop", "git_url": str(product), "default_branch": "main", "test_command": "true"}
    assert admin_client.post(reverse("projects:add"), form).status_code == 302
    added = AuditEntry.objects.get(action=AuditEntry.Action.ADD)
    assert (added.actor, added.object_repr, added.changes["git_url"]) == (staff, "Shop", {"to": str(product)})
    edit = {"name": "Shop front", "default_branch": "main", "test_command": "true", "push_url": ""}
    assert admin_client.post(reverse("projects:edit", args=["shop"]), edit).status_code == 302
    changed = AuditEntry.objects.get(action=AuditEntry.Action.CHANGE)
    assert changed.actor == staff and changed.changes == {"name": {"from": "Shop", "to": "Shop front"}}
    assert "Changed project “Shop front”" in admin_client.get(reverse("audit:site")).content.decode()


def test_it_keeps_credentials_in_a_remote_url_out_of_the_audit(db):
    """A remote URL with a user, password or token in it is audited without them: an audit row is forever."""
    from audit.services import audit_values

    for url, audited in [
        ("https://ci-bot:ghp_secret123@git.example.com/shop.git", "https://***@git.example.com/shop.git"),
        ("https://ghp_token456@git.example.com/shop.git", "https://***@git.example.com/shop.git"),
        ("ssh://git@git.example.com/shop.git", "ssh://***@git.example.com/shop.git"),
        ("/srv/git/shop.git", "/srv/git/shop.git"),
    ]:
        project = Project(name="Shop", slug="shop", git_url="/srv/shop", push_url=url)
        assert audit_values(project, ["push_url"]) == {"push_url": audited}


def test_it_changes_only_what_the_admin_changed_on_a_mission(admin_client, staff, company, pm):
    """A worker that moves the mission on while the admin form is open keeps its writes; the budget change is
    an event with the admin as its actor, and an audit entry."""
    mission = Mission.objects.create(requester=pm, title="Live", request="r", budget_usd="2.00")
    page = admin_client.get(_admin_url(mission, "change"))
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.EXECUTING, spent_usd="1.50")
    response = admin_client.post(_admin_url(mission, "change"), {**_form_data(page), "budget_usd": "5.00"})
    assert response.status_code == 302
    mission.refresh_from_db()
    assert (mission.status, str(mission.spent_usd), str(mission.budget_usd)) == ("executing", "1.500000", "5.00")
    event = mission.events.get(kind="cost")
    assert event.actor == staff and event.message == "Budget changed by admin in the admin: $2.00 → $5.00."
    entry = AuditEntry.objects.latest("at", "id")
    assert entry.changes == {"budget_usd": {"from": "2.00", "to": "5.00"}}
