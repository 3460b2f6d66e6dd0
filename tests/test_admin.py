"""The admin: every registered model's pages open, and the ledger and logs are read-only."""

from decimal import Decimal

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from agents.models import AgentMessage, AgentSpec, LLMCall
from api.services import api_token_create
from audit.models import AuditEntry
from audit.services import audit_record
from missions.models import (
    DecisionCycle,
    Event,
    KnowledgeEntry,
    Mission,
    MissionTemplate,
    Plan,
    Step,
    TestRun,
    Vote,
)
from notifications.models import NotificationPreference
from projects.models import Baseline, Project
from reviews.models import ApprovalGate, PeerReview

# Every record of what happened; gates are decided in the queue, not the admin.
READ_ONLY = [
    Event,
    LLMCall,
    AgentMessage,
    ApprovalGate,
    Vote,
    TestRun,
    PeerReview,
    DecisionCycle,
    Plan,
    Step,
    AuditEntry,
]


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def records(company, pm):
    """One or two rows of every model the admin shows."""
    template = MissionTemplate.objects.get(slug="api_endpoint")
    cto = AgentSpec.objects.get(role="cto", is_c_suite=True)
    developer = AgentSpec.objects.filter(is_c_suite=False).first()
    rows = {}
    for n in range(2):
        mission = Mission.objects.create(
            requester=pm, title=f"Admin mission {n}", request="R", budget_usd=Decimal("5"), template=template
        )
        cycle = DecisionCycle.objects.create(mission=mission, number=1, kind=DecisionCycle.Kind.PLANNING)
        plan = Plan.objects.create(mission=mission, version=1, summary="S", cycle=cycle)
        step = Step.objects.create(
            plan=plan, key="api", title="Build it", role="developer", instructions="I", agent=developer
        )
        rows.update(
            mission=mission,
            cycle=cycle,
            plan=plan,
            step=step,
            vote=Vote.objects.create(cycle=cycle, agent=cto, stance=Vote.Stance.APPROVE, rationale="Fine"),
            event=Event.objects.create(mission=mission, seq=1, kind=Event.Kind.SUBMITTED, message="Filed"),
            test_run=TestRun.objects.create(mission=mission, step=step, passed=3, isolation="bwrap"),
            gate=ApprovalGate.objects.create(mission=mission, kind=ApprovalGate.Kind.DEPLOY, question="Deploy?"),
            review=PeerReview.objects.create(
                mission=mission, step=step, reviewer=cto, verdict=PeerReview.Verdict.APPROVE
            ),
            call=LLMCall.objects.create(
                mission=mission, model_name="sim-1", purpose="plan_draft", finished_at=timezone.now()
            ),
            message=AgentMessage.objects.create(mission=mission, source="cto", content="Hello"),
            knowledge=KnowledgeEntry.objects.create(mission=mission, kind="lesson", title="Lesson", body="Learned"),
            project=(
                project := Project.objects.create(
                    name=f"Shop {n}", slug=f"shop-{n}", git_url="/srv/shop", head_sha="a" * 40
                )
            ),
            baseline=Baseline.objects.create(project=project, sha="a" * 40, verdict=Baseline.Verdict.PASSED, passed=3),
            audit=audit_record(actor=pm, action=AuditEntry.Action.CHANGE, obj=template, message="Admin mission"),
        )
    # Axes' login records (written directly: a real login costs a full password hash per test).
    seen = {"username": "pm", "ip_address": "127.0.0.1", "user_agent": "test", "path_info": "/login/"}
    AccessAttempt.objects.create(**seen, get_data="", post_data="", failures_since_start=1)
    AccessFailureLog.objects.create(**seen)
    AccessLog.objects.create(**seen)
    NotificationPreference.objects.create(user=pm, email=False)
    api_token_create(user=pm, name="Admin mission script")
    return rows


REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)


@pytest.mark.parametrize("model", REGISTERED, ids=[model._meta.label for model in REGISTERED])
def test_it_opens_every_changelist(admin_client, records, model):
    """Each registered model's changelist opens for a superuser and lists its rows."""
    response = admin_client.get(_url(model, "changelist"))
    assert response.status_code == 200
    count = model.objects.count()
    assert count >= 1, "the fixture should give every model a row"
    assert response.context["cl"].result_count == count


@pytest.mark.parametrize("model", REGISTERED, ids=[model._meta.label for model in REGISTERED])
def test_it_opens_every_change_page(admin_client, records, model):
    """Each registered model's change (or read-only view) page opens for a superuser."""
    obj = model.objects.first()
    response = admin_client.get(_url(model, "change", obj.pk))
    assert response.status_code == 200
    assert str(obj) in response.content.decode() or model in READ_ONLY


@pytest.mark.parametrize("model", REGISTERED, ids=[model._meta.label for model in REGISTERED])
def test_it_searches_every_changelist(admin_client, records, model):
    """Searching a changelist works (search_fields are valid lookups)."""
    response = admin_client.get(_url(model, "changelist"), {"q": "Admin mission 1"})
    assert response.status_code == 200


def test_it_shows_rows_in_the_mission_changelist(admin_client, records):
    """The mission changelist shows the missions' titles."""
    body = admin_client.get(_url(Mission, "changelist")).content.decode()
    assert "Admin mission 0" in body
    assert "Admin mission 1" in body


@pytest.mark.parametrize("model", READ_ONLY, ids=[model._meta.label for model in READ_ONLY])
def test_it_keeps_the_ledger_and_logs_read_only(admin_client, records, model):
    """Records of what happened cannot be added, changed or deleted in the admin, even by a superuser."""
    changelist = admin_client.get(_url(model, "changelist"))
    assert changelist.status_code == 200
    assert changelist.context["has_add_permission"] is False
    assert _url(model, "add").encode() not in changelist.content
    assert admin_client.get(_url(model, "add")).status_code == 403

    obj = model.objects.first()
    before = model.objects.count()
    assert admin_client.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert model.objects.count() == before
    view = admin_client.get(_url(model, "change", obj.pk))
    assert view.status_code == 200
    assert view.context["has_change_permission"] is False


@pytest.mark.parametrize("model", READ_ONLY, ids=[model._meta.label for model in READ_ONLY])
def test_it_refuses_edits_to_records_of_what_happened(admin_client, records, model):
    """A staff superuser's add, change and delete posts are refused (403) and change nothing."""
    obj = model.objects.first()
    before = {field.attname: getattr(obj, field.attname) for field in model._meta.concrete_fields}
    form = {name: "" if value is None else str(value) for name, value in before.items() if name != "id"}
    assert admin_client.post(_url(model, "add"), form).status_code == 403
    assert admin_client.post(_url(model, "change", obj.pk), form).status_code == 403
    assert admin_client.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    bulk_delete = {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
    admin_client.post(_url(model, "changelist"), bulk_delete)
    obj.refresh_from_db()
    assert {field.attname: getattr(obj, field.attname) for field in model._meta.concrete_fields} == before
    assert model.objects.filter(pk=obj.pk).exists()


def test_it_lets_admins_add_templates(admin_client, records):
    """Editable models do offer the add page."""
    response = admin_client.get(_url(MissionTemplate, "changelist"))
    assert _url(MissionTemplate, "add").encode() in response.content
    assert admin_client.get(_url(MissionTemplate, "add")).status_code == 200


def test_it_keeps_the_admin_for_staff(client, reviewer):
    """A non-staff reviewer is sent to the admin login, not shown the admin."""
    client.force_login(reviewer)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
