"""The mission audit page and the site audit: who did what and when, on a page and in JSON and CSV exports."""

import csv
import io
import json
from decimal import Decimal

import pytest
from django.urls import reverse

from agents.models import AgentSpec, LLMCall
from audit.exports import csv_safe
from audit.models import AuditEntry
from audit.services import audit_record
from missions.control import mission_pause, mission_resume
from missions.events import event_record
from missions.models import Event, Mission
from missions.services import mission_cancel
from reviews.gates import gate_decide, gate_open
from reviews.models import ApprovalGate


def _mission(requester, status=Mission.Status.AWAITING_PLAN_APPROVAL, title="Audited") -> Mission:
    return Mission.objects.create(
        requester=requester, title=title, request="Build it", budget_usd=Decimal("5.00"), status=status
    )


def _url(mission: Mission, fmt: str = "") -> str:
    return reverse("audit:mission", args=[mission.code]) + (f"?format={fmt}" if fmt else "")


def _body(response) -> str:
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


def _steered(pm, reviewer, capture) -> Mission:
    """A plan approved by the reviewer, then paused, resumed and cancelled by the PM."""
    mission = _mission(pm)
    gate = gate_open(mission=mission, kind=ApprovalGate.Kind.PLAN, question="Approve the plan?")
    with capture():  # the next phases would start after commit; the test only reads the trail
        gate_decide(gate=gate, by=reviewer, decision=ApprovalGate.Decision.APPROVED, comment="Looks right")
        mission_pause(mission=mission, by=pm)
        mission_resume(mission=mission, by=pm)
        mission_cancel(mission=mission, by=pm)
    return mission


def test_it_names_the_person_behind_each_decision_on_the_mission_audit(
    client, pm, reviewer, django_capture_on_commit_callbacks
):
    """A gate decision, a pause, a resume and a cancel each show with their actor, in order, on the page."""
    mission = _steered(pm, reviewer, django_capture_on_commit_callbacks)
    acted = list(mission.events.exclude(actor=None).order_by("seq").values_list("actor__username", "message"))
    assert [who for who, _ in acted] == ["reviewer", "reviewer", "pm", "pm", "pm"]
    assert "Plan approval approved by reviewer" in acted[0][1] and acted[1][1].startswith("Staffing.")
    assert [message.split(".")[0] for _, message in acted[2:]] == ["Paused", "Staffing", "Cancelled"]

    client.force_login(pm)
    page = client.get(_url(mission))
    assert page.status_code == 200
    rows = page.context["rows"]
    assert [(row["actor"], row["actor_type"]) for row in rows if row["actor_type"] == "user"] == [
        ("reviewer", "user"),
        ("reviewer", "user"),
        ("pm", "user"),
        ("pm", "user"),
        ("pm", "user"),
    ]
    assert [row["at"] for row in rows] == sorted(row["at"] for row in rows)
    body = page.content.decode()
    assert "Plan approval approved by reviewer" in body and "Cancelled by pm." in body
    assert reverse("audit:mission", args=[mission.code]) in client.get(mission.get_absolute_url()).content.decode()


def test_it_exports_the_mission_audit_as_json_and_csv(client, pm, reviewer, django_capture_on_commit_callbacks):
    """Both exports hold every row of the trail with its actor; the CSV parses with the same columns."""
    mission = _steered(pm, reviewer, django_capture_on_commit_callbacks)
    LLMCall.objects.create(mission=mission, model_name="sim-1", purpose="plan_vote", status=LLMCall.Status.OK)
    client.force_login(pm)

    exported = client.get(_url(mission, "json"))
    assert exported.status_code == 200 and exported["Content-Type"] == "application/json"
    assert exported["Content-Disposition"] == f'attachment; filename="audit-{mission.code}.json"'
    records = json.loads(_body(exported))
    assert len(records) == mission.events.count() + 1
    decided = next(r for r in records if r["kind"] == "gate" and r["actor"] == "reviewer")
    assert decided["actor_type"] == "user" and decided["data"]["status"] == "approved"
    assert decided["mission"] == str(mission.code)
    assert [r["actor"] for r in records if r["summary"].startswith(("Paused", "Cancelled"))] == ["pm", "pm"]
    ledger = next(r for r in records if r["source"] == "ledger")
    assert ledger["kind"] == "model call: plan_vote" and ledger["data"]["cost_usd"] == "0.000000"

    exported = client.get(_url(mission, "csv"))
    assert exported["Content-Type"] == "text/csv; charset=utf-8"
    table = list(csv.DictReader(io.StringIO(_body(exported))))
    assert [(r["at"], r["actor"], r["summary"]) for r in table] == [
        (r["at"], r["actor"], r["summary"]) for r in records
    ]
    cancel = next(r for r in table if r["summary"].startswith("Cancelled"))
    assert (cancel["actor_type"], cancel["actor"], cancel["kind"]) == ("user", "pm", "status")
    assert json.loads(cancel["data"]) == {"status": "cancelled", "from": "staffing"}


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_it_quotes_csv_cells_a_spreadsheet_would_run(client, pm, start):
    """An event whose text starts like a formula is exported with a leading quote; other cells are unchanged."""
    mission = _mission(pm)
    event_record(mission=mission, kind=Event.Kind.STEP, message=f'{start}HYPERLINK("http://evil.example","x")')
    client.force_login(pm)
    table = list(csv.DictReader(io.StringIO(_body(client.get(_url(mission, "csv"))))))
    assert table[-1]["summary"] == f'\'{start}HYPERLINK("http://evil.example","x")'
    assert table[-1]["kind"] == "step" and not table[-1]["at"].startswith("'")
    assert csv_safe("plain") == "plain" and csv_safe({"a": 1}) == '{"a": 1}' and csv_safe(None) == ""


def test_it_pages_a_long_trail_with_a_bounded_number_of_queries(client, pm, company, django_assert_max_num_queries):
    """Page 1, page 3 and both exports run the same few queries for 300 rows as the page does for ten."""
    mission = _mission(pm)
    agent = AgentSpec.objects.get(role="cto", is_c_suite=True)
    for n in range(150):
        event_record(mission=mission, kind=Event.Kind.STEP, message=f"event {n}", actor=pm if n % 2 else None)
    LLMCall.objects.bulk_create(
        LLMCall(mission=mission, model_name="sim-1", purpose=f"call {n}", agent=agent) for n in range(140)
    )
    for n in range(10):
        audit_record(actor=pm, action=AuditEntry.Action.CHANGE, obj=mission, message=f"admin {n}")
    client.force_login(pm)
    client.get(_url(mission))  # warm the session and content type caches
    for query in ("", "?page=3"):
        with django_assert_max_num_queries(12):
            page = client.get(_url(mission) + query)
        assert page.status_code == 200 and page.context["page"].paginator.count == 300
    assert len(page.context["rows"]) == 50
    with django_assert_max_num_queries(12):  # one chunk of 500 rows: keys, then one query per source
        records = json.loads(_body(client.get(_url(mission, "json"))))
    assert len(records) == 300 and records[0]["summary"] == "event 0"
    assert {r["summary"] for r in records if r["source"] == "admin"} == {
        f"Changed mission “Audited”: admin {n}" for n in range(10)
    }


def test_it_keeps_each_mission_audit_to_those_who_may_see_the_mission(client, pm, other_pm, reviewer, outsider):
    """Another PM gets a 404 (as for the mission page), a reviewer sees it, the anonymous go to the login."""
    mission = _mission(pm)
    for fmt in ("", "json", "csv"):
        client.force_login(other_pm)
        assert client.get(_url(mission, fmt)).status_code == 404
        client.force_login(outsider)
        assert client.get(_url(mission, fmt)).status_code == 404
        client.force_login(reviewer)
        assert client.get(_url(mission, fmt)).status_code == 200
        client.logout()
        response = client.get(_url(mission, fmt))
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_it_keeps_the_site_audit_for_admins(client, admin_client, pm, reviewer):
    """PMs and reviewers get a 403 on the site audit and its exports; admins see it and its nav link."""
    site = reverse("audit:site")
    for user in (pm, reviewer):
        client.force_login(user)
        for fmt in ("", "?format=json", "?format=csv"):
            assert client.get(site + fmt).status_code == 403
        assert site.encode() not in client.get(reverse("missions:list")).content
    client.logout()
    assert client.get(site)["Location"].startswith(reverse("login"))
    assert admin_client.get(site).status_code == 200
    assert f'href="{site}"'.encode() in admin_client.get(reverse("missions:list")).content


def test_it_lists_what_people_did_across_missions_on_the_site_audit(
    admin_client, pm, reviewer, django_capture_on_commit_callbacks
):
    """Gate decisions and a cancel from a mission are on the site audit, newest first, without engine events."""
    mission = _steered(pm, reviewer, django_capture_on_commit_callbacks)
    event_record(mission=mission, kind=Event.Kind.STEP, message="the engine did this")
    rows = admin_client.get(reverse("audit:site")).context["rows"]
    assert [row["actor"] for row in rows] == ["pm", "pm", "pm", "reviewer", "reviewer"]
    assert rows[0]["summary"].startswith("Cancelled") and rows[0]["mission"] == str(mission.code)
    records = json.loads(_body(admin_client.get(reverse("audit:site") + "?format=json")))
    assert [r["actor"] for r in records] == ["pm", "pm", "pm", "reviewer", "reviewer"]


def test_it_pages_the_site_audit_with_a_bounded_number_of_queries(
    admin_client, pm, reviewer, django_assert_max_num_queries
):
    """Many missions, people and admin changes: the site page and its export still take a few queries."""
    for n in range(30):
        mission = _mission(pm, title=f"Mission {n}")
        for person in (pm, reviewer, None):
            event_record(mission=mission, kind=Event.Kind.STATUS, message=f"{person} acted on {n}", actor=person)
        audit_record(actor=reviewer, action=AuditEntry.Action.CHANGE, obj=mission, message=f"edit {n}")
    admin_client.get(reverse("audit:site"))
    with django_assert_max_num_queries(12):
        page = admin_client.get(reverse("audit:site") + "?page=2")
    assert page.context["page"].paginator.count == 90 and len(page.context["rows"]) == 40
    with django_assert_max_num_queries(12):
        records = json.loads(_body(admin_client.get(reverse("audit:site") + "?format=json")))
    assert len(records) == 90 and records[0]["summary"].startswith("Changed mission “Mission 29”")
    assert [r["at"] for r in records] == sorted((r["at"] for r in records), reverse=True)
