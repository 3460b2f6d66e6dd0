"""Mission pages: login, list, new, detail and cancel, through the Django test client."""

import uuid
from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import reverse

from agents.models import AgentMessage
from missions.models import Event, Mission, MissionTemplate
from tests.conftest import PASSWORD

LIST_URL = reverse("missions:list")
NEW_URL = reverse("missions:new")


def _mission(requester, title="A mission", **fields) -> Mission:
    fields.setdefault("request", "Do the thing.")
    fields.setdefault("budget_usd", Decimal("5.00"))
    return Mission.objects.create(requester=requester, title=title, **fields)


def _valid_post(**overrides) -> dict:
    data = {
        "template": "",
        "title": "Add a health page",
        "request": "Expose /healthz with database and Redis checks.",
        "acceptance_criteria": "It answers 200 when healthy.",
        "priority": "normal",
        "budget_usd": "3.50",
        "require_deploy_approval": "on",
    }
    data.update(overrides)
    return data


# --- Login ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/missions/", "/missions/new/", f"/missions/{uuid.UUID(int=7)}/", "/gates/", "/"])
def test_it_redirects_anonymous_users_to_the_login_page(client, db, path):
    """Every page but the login page and /healthz asks an anonymous visitor to log in first."""
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


def test_it_serves_healthz_without_login(client, db):
    """/healthz answers with its JSON to anonymous monitoring, never a login redirect."""
    response = client.get("/healthz")
    assert response.status_code in (200, 503)
    assert response["Content-Type"] == "application/json"
    assert {"database", "redis", "worker"} <= set(response.json())


def test_it_shows_the_login_form(client, db):
    """The login page renders its form to anonymous visitors."""
    response = client.get("/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'name="password"' in response.content


def test_it_logs_in_with_the_right_password(client, pm):
    """A correct username and password log the user in and land on the home dashboard."""
    response = client.post("/login/", {"username": "pm", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_it_follows_next_after_login(client, pm):
    """The ?next= page the visitor asked for is where the login leads."""
    response = client.post("/login/", {"username": "pm", "password": PASSWORD, "next": NEW_URL})
    assert response.status_code == 302
    assert response["Location"] == NEW_URL


def test_it_ignores_an_offsite_next(client, pm):
    """A ?next= pointing to another site is not followed after login (no open redirect)."""
    response = client.post("/login/", {"username": "pm", "password": PASSWORD, "next": "https://evil.example/"})
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_it_sends_logged_in_users_from_the_login_page_home(client, pm):
    """Someone already logged in who opens /login/ lands on the home dashboard."""
    client.force_login(pm)
    response = client.get("/login/")
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_it_refuses_a_wrong_password(client, pm):
    """A wrong password re-renders the form with an error and logs nobody in."""
    response = client.post("/login/", {"username": "pm", "password": "wrong"})
    assert response.status_code == 200
    assert b'role="alert"' in response.content
    assert b"Please enter a correct username and password" in response.content
    assert "_auth_user_id" not in client.session
    assert client.get(LIST_URL).status_code == 302


def test_it_logs_out_only_with_post(client, pm):
    """GET /logout/ is refused (405); POST logs out and goes back to the login page."""
    client.force_login(pm)
    assert client.get("/logout/").status_code == 405
    assert "_auth_user_id" in client.session

    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert "_auth_user_id" not in client.session
    assert client.get(LIST_URL).status_code == 302


# --- List -----------------------------------------------------------------------------------------


def test_it_lists_only_own_missions_for_a_product_manager(client, pm, other_pm):
    """A PM sees the missions they filed and not another PM's."""
    _mission(pm, "Mine to see")
    _mission(other_pm, "Someone else's secret")
    client.force_login(pm)
    response = client.get(LIST_URL)
    assert response.status_code == 200
    assert b"Mine to see" in response.content
    assert b"Someone else&#x27;s secret" not in response.content
    assert [m.title for m in response.context["page"].object_list] == ["Mine to see"]


def test_it_lists_every_mission_for_a_reviewer(client, pm, other_pm, reviewer):
    """A reviewer sees all missions, whoever filed them."""
    _mission(pm, "From pm")
    _mission(other_pm, "From other pm")
    client.force_login(reviewer)
    response = client.get(LIST_URL)
    assert response.status_code == 200
    assert b"From pm" in response.content
    assert b"From other pm" in response.content


def test_it_filters_by_status(client, pm):
    """?status= keeps only missions in that status."""
    _mission(pm, "Still queued")
    _mission(pm, "All done", status=Mission.Status.COMPLETED)
    client.force_login(pm)
    response = client.get(LIST_URL, {"status": "completed"})
    assert response.status_code == 200
    assert b"All done" in response.content
    assert b"Still queued" not in response.content
    assert b'<option value="completed" selected>' in response.content


def test_it_ignores_an_unknown_status(client, pm):
    """A status that does not exist is ignored: every mission shows, no error."""
    _mission(pm, "Still queued")
    _mission(pm, "All done", status=Mission.Status.COMPLETED)
    client.force_login(pm)
    response = client.get(LIST_URL, {"status": "bogus'; DROP TABLE"})
    assert response.status_code == 200
    assert response.context["status"] == ""
    assert b"Still queued" in response.content
    assert b"All done" in response.content


def test_it_searches_title_and_request(client, pm):
    """?q= matches the title or the request, case-insensitively."""
    _mission(pm, "Add OAuth login")
    _mission(pm, "Fix CSV export", request="The export mangles oauth tokens.")
    _mission(pm, "Unrelated work")
    client.force_login(pm)
    response = client.get(LIST_URL, {"q": "OAUTH"})
    titles = {m.title for m in response.context["page"].object_list}
    assert titles == {"Add OAuth login", "Fix CSV export"}
    assert b"Unrelated work" not in response.content


def test_it_says_when_no_mission_matches(client, pm):
    """An empty result explains that the filters matched nothing."""
    _mission(pm, "Something")
    client.force_login(pm)
    response = client.get(LIST_URL, {"q": "nothing like this"})
    assert b"No missions match these filters" in response.content


def test_it_paginates(client, pm):
    """25 missions make two pages; page 2 holds the five oldest and links back."""
    for n in range(25):
        _mission(pm, f"Mission number {n:02d}")
    client.force_login(pm)

    first = client.get(LIST_URL)
    assert len(first.context["page"].object_list) == 20
    assert b"Page 1 of 2" in first.content
    assert b"?page=2" in first.content

    second = client.get(LIST_URL, {"page": "2"})
    assert second.status_code == 200
    assert len(second.context["page"].object_list) == 5
    assert b"Page 2 of 2" in second.content
    assert b"?page=1" in second.content
    assert b"25 missions" in second.content


@pytest.mark.parametrize("page", ["abc", "0", "-3", "99"])
def test_it_tolerates_bad_page_numbers(client, pm, page):
    """A malformed or out-of-range page number shows a valid page instead of an error."""
    _mission(pm, "Only one")
    client.force_login(pm)
    response = client.get(LIST_URL, {"page": page})
    assert response.status_code == 200
    assert b"Only one" in response.content


def test_it_returns_only_the_results_fragment_to_htmx(client, pm):
    """An htmx request gets just the #results section, not a whole page."""
    _mission(pm, "Fragment me")
    client.force_login(pm)
    response = client.get(LIST_URL, headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="results">')
    assert "<html" not in body
    assert 'id="q"' not in body  # the filter form is outside the fragment
    assert "Fragment me" in body


def test_it_returns_the_whole_page_to_a_boosted_htmx_request(client, pm):
    """A boosted htmx navigation swaps the whole body, so it gets the whole page."""
    client.force_login(pm)
    response = client.get(LIST_URL, headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert b"<html" in response.content


# --- New ------------------------------------------------------------------------------------------


def test_it_offers_the_eight_templates(client, company, pm):
    """GET shows the template picker with every active template and the free-text fields."""
    client.force_login(pm)
    response = client.get(NEW_URL)
    assert response.status_code == 200
    body = response.content.decode()
    for template in MissionTemplate.objects.all():
        assert f'<option value="{template.slug}">{template.name}</option>' in body
    assert MissionTemplate.objects.count() == 8
    assert len(response.context["templates"]) == 8
    assert "<legend>Free text</legend>" in body


def test_it_hides_inactive_templates(client, company, pm):
    """A deactivated template is not offered."""
    MissionTemplate.objects.filter(slug="bug_fix").update(is_active=False)
    client.force_login(pm)
    response = client.get(NEW_URL)
    assert b'value="bug_fix"' not in response.content
    assert b'value="api_endpoint"' in response.content


def test_it_shows_the_variables_of_the_chosen_template(client, company, pm):
    """?template=api_endpoint selects it and shows its variable fields with labels, defaults and help."""
    client.force_login(pm)
    response = client.get(NEW_URL, {"template": "api_endpoint"})
    assert response.status_code == 200
    body = response.content.decode()
    assert '<option value="api_endpoint" selected>API endpoint</option>' in body
    assert "<legend>API endpoint</legend>" in body
    assert '<label for="id_var_resource">Resource *</label>' in body
    assert 'name="var_operations"' in body
    assert 'value="create, read, update and delete"' in body  # the default
    assert '<label for="id_var_details">Details</label>' in body  # optional: no star
    assert response.context["form"]["budget_usd"].initial == Decimal("5.00")


def test_it_returns_only_the_fieldset_to_htmx(client, company, pm):
    """The htmx template picker gets just the #template-fields fieldset."""
    client.force_login(pm)
    response = client.get(NEW_URL, {"template": "bug_fix"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<fieldset id="template-fields"')
    assert "<html" not in body
    assert 'name="var_symptom"' in body
    assert 'name="title"' not in body


def test_it_treats_an_unknown_template_as_free_text(client, company, pm):
    """An unknown slug falls back to free text instead of failing."""
    client.force_login(pm)
    response = client.get(NEW_URL, {"template": "no_such_template"})
    assert response.status_code == 200
    assert response.context["chosen"] is None
    assert b"<legend>Free text</legend>" in response.content
    assert b'name="var_' not in response.content


def test_it_files_a_free_text_mission(client, company, pm, django_capture_on_commit_callbacks):
    """A valid POST creates the mission and its first event, schedules the start, and shows the mission."""
    client.force_login(pm)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(NEW_URL, _valid_post())

    mission = Mission.objects.get()
    assert response.status_code == 302
    assert response["Location"] == mission.get_absolute_url()
    assert mission.requester == pm
    assert mission.title == "Add a health page"
    assert mission.request == "Expose /healthz with database and Redis checks."
    assert mission.acceptance_criteria == "It answers 200 when healthy."
    assert mission.budget_usd == Decimal("3.50")
    assert mission.status == Mission.Status.QUEUED
    assert mission.template is None
    assert mission.require_deploy_approval is True
    events = list(mission.events.all())
    assert [(e.seq, e.kind) for e in events] == [(1, Event.Kind.SUBMITTED)]
    assert mission.last_event_seq == 1
    # One callback starts the mission, one tells live pages about event 1.
    assert len(callbacks) == 2

    page = client.get(response["Location"])
    assert b"Mission filed." in page.content


def test_it_starts_the_mission_exactly_once_on_commit(
    client, company, pm, django_capture_on_commit_callbacks, monkeypatch
):
    """Running the on-commit callbacks enqueues advance_mission once, for the new mission, behind work under way."""
    import missions.events
    import missions.tasks

    started, notified = [], []

    class FakeTask:
        def apply_async(self, args, priority):
            started.append((*args, priority))

    monkeypatch.setattr(missions.tasks, "advance_mission", FakeTask())
    monkeypatch.setattr(missions.events, "_notify", lambda group, seq: notified.append((group, seq)))
    client.force_login(pm)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(NEW_URL, _valid_post())

    mission = Mission.objects.get()
    assert started == [(mission.pk, settings.TASK_PRIORITY_NEW_MISSION)]
    assert notified == [(mission.group_name, 1)]


def test_it_files_a_mission_from_a_template(client, company, pm):
    """With a template, the title and request come from it with the variables filled in."""
    client.force_login(pm)
    response = client.post(
        NEW_URL,
        _valid_post(
            template="api_endpoint",
            title="",
            request="",
            acceptance_criteria="",
            var_resource="user authentication",
            var_operations="login and logout",
            var_details="",
        ),
    )
    assert response.status_code == 302
    mission = Mission.objects.get()
    assert mission.title == "API: user authentication"
    assert mission.request.startswith("Build an API for user authentication supporting login and logout.")
    assert mission.template.slug == "api_endpoint"
    assert mission.variables["resource"] == "user authentication"
    assert mission.acceptance_criteria == "Every operation validates its input and is covered by tests."


def test_it_keeps_an_explicit_title_over_the_template(client, company, pm):
    """A title typed by the PM wins over the template's."""
    client.force_login(pm)
    client.post(
        NEW_URL,
        _valid_post(
            template="bug_fix", title="My own title", request="", var_symptom="x", var_steps="y", var_expected="z"
        ),
    )
    mission = Mission.objects.get()
    assert mission.title == "My own title"
    assert mission.request == "Fix the bug where x. Steps to reproduce: y. Expected: z."


@pytest.mark.parametrize(
    ("overrides", "field", "error"),
    [
        ({"title": ""}, "title", "Required when no template is chosen."),
        ({"request": "   "}, "request", "Required when no template is chosen."),
        ({"budget_usd": "0"}, "budget_usd", "The budget must be between $0.01 and $10000."),
        ({"budget_usd": "-5"}, "budget_usd", "The budget must be between $0.01 and $10000."),
        ({"budget_usd": "10000.01"}, "budget_usd", "The budget must be between $0.01 and $10000."),
        ({"budget_usd": "99999999999"}, "budget_usd", "The budget must be between $0.01 and $10000."),
        ({"budget_usd": "lots"}, "budget_usd", "Enter the budget as a number of dollars, e.g. 5 or 5.00"),
        ({"budget_usd": "NaN"}, "budget_usd", "Enter the budget as a number of dollars, e.g. 5 or 5.00"),
        ({"budget_usd": ""}, "budget_usd", "This field is required."),
        ({"priority": "whenever"}, "priority", "Select a valid choice."),
    ],
)
def test_it_rejects_invalid_input(client, company, pm, overrides, field, error):
    """Invalid input answers 400 with the error next to the field and files nothing."""
    client.force_login(pm)
    response = client.post(NEW_URL, _valid_post(**overrides))
    assert response.status_code == 400
    form = response.context["form"]
    assert any(error in message for message in form.errors[field]), form.errors
    assert b'class="field invalid"' in response.content
    assert Mission.objects.count() == 0
    assert Event.objects.count() == 0


def test_it_names_a_missing_template_variable(client, company, pm):
    """A required template variable left empty is a 400 with the error on that field; nothing is filed."""
    client.force_login(pm)
    response = client.post(
        NEW_URL,
        _valid_post(template="api_endpoint", title="", request="", var_resource="", var_operations="", var_details=""),
    )
    assert response.status_code == 400
    assert response.context["form"].errors["var_resource"] == ["This field is required."]
    assert b'class="field invalid"' in response.content
    assert b"Template variables missing: resource." in response.content
    assert Mission.objects.count() == 0


def test_it_refuses_an_unknown_template_on_post(client, company, pm):
    """A posted slug that is not an active template (say, deactivated meanwhile) is a 400 on that field."""
    MissionTemplate.objects.filter(slug="bug_fix").update(is_active=False)
    client.force_login(pm)
    response = client.post(NEW_URL, _valid_post(template="bug_fix", var_symptom="x"))
    assert response.status_code == 400
    assert "Select a valid choice" in response.context["form"].errors["template"][0]
    assert Mission.objects.count() == 0


def test_it_rerenders_with_variables_on_pick(client, company, pm):
    """The no-JS "Use template" button re-renders the form with the template's fields and files nothing."""
    client.force_login(pm)
    response = client.post(NEW_URL, _valid_post(template="api_endpoint", pick="1", title="Kept title"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<legend>API endpoint</legend>" in body
    assert '<label for="id_var_resource">Resource *</label>' in body
    assert 'value="Kept title"' in body
    assert "errorlist" not in body
    assert Mission.objects.count() == 0


def test_it_forbids_filing_to_users_without_the_pm_group(client, company, outsider):
    """A logged-in user who is not a product manager gets 403 on the new-mission page, GET or POST."""
    client.force_login(outsider)
    assert client.get(NEW_URL).status_code == 403
    assert client.post(NEW_URL, _valid_post()).status_code == 403
    assert Mission.objects.count() == 0


# --- Detail ---------------------------------------------------------------------------------------


def test_it_shows_the_mission(client, pm):
    """The requester sees the title, status, request and budget of their mission."""
    mission = _mission(pm, "Shiny feature", request="Please build it.", budget_usd=Decimal("7.25"))
    client.force_login(pm)
    response = client.get(mission.get_absolute_url())
    assert response.status_code == 200
    body = response.content.decode()
    assert "<h1>Shiny feature</h1>" in body
    assert 'id="mission-status-label">Queued</span>' in body
    assert "Please build it." in body
    assert "of $7.25" in body
    assert str(mission.code) in body
    assert 'class="badge sim"' not in body
    assert "Cancel mission" in body


def test_it_shows_the_simulated_model_badge(client, company, pm):
    """A mission run by the simulated model says so on its page."""
    from missions.services import mission_submit

    mission = mission_submit(requester=pm, title="Simulated", request="Anything", budget_usd=Decimal("1.00"))
    assert mission.uses_simulated_model
    client.force_login(pm)
    response = client.get(mission.get_absolute_url())
    assert b'<span class="badge sim"' in response.content
    assert b"simulated model</span>" in response.content


def test_it_shows_the_failure_reason(client, pm):
    """A failed mission shows why."""
    mission = _mission(pm, status=Mission.Status.FAILED, failure_reason="Model call failed: 500")
    client.force_login(pm)
    response = client.get(mission.get_absolute_url())
    assert b"<strong>Failed:</strong> Model call failed: 500" in response.content
    assert b"Cancel mission" not in response.content


def test_it_404s_on_an_unknown_mission(client, pm):
    """A well-formed code that matches no mission is a 404."""
    client.force_login(pm)
    assert client.get(reverse("missions:detail", kwargs={"code": uuid.uuid4()})).status_code == 404


@pytest.mark.parametrize("code", ["not-a-uuid", "1234", "0" * 31])
def test_it_404s_on_a_malformed_code(client, pm, code):
    """A code that is not a UUID is a 404, not a 500."""
    client.force_login(pm)
    assert client.get(f"/missions/{code}/").status_code == 404


def test_it_hides_another_pms_mission_behind_a_404(client, pm, other_pm):
    """Another PM's mission looks exactly like a missing one: 404, not 403."""
    mission = _mission(other_pm, "Not yours")
    client.force_login(pm)
    response = client.get(mission.get_absolute_url())
    assert response.status_code == 404
    assert b"Not yours" not in response.content


def test_it_shows_any_mission_to_a_reviewer(client, pm, reviewer):
    """A reviewer can open any mission, without the cancel button (they did not file it)."""
    mission = _mission(pm, "Reviewable")
    client.force_login(reviewer)
    response = client.get(mission.get_absolute_url())
    assert response.status_code == 200
    assert b"<h1>Reviewable</h1>" in response.content
    assert b"Cancel mission" not in response.content


def test_it_escapes_mission_text(client, pm):
    """Title, request and event messages are escaped, so a <script> in them never runs."""
    mission = _mission(pm, "<script>alert('t')</script>", request="<script>alert('r')</script>")
    Event.objects.create(mission=mission, seq=1, kind=Event.Kind.STATUS, message="<img src=x onerror=alert(1)>")
    client.force_login(pm)
    body = client.get(mission.get_absolute_url()).content.decode()
    assert "<script>alert(" not in body
    assert "&lt;script&gt;alert(&#x27;t&#x27;)&lt;/script&gt;" in body
    assert "&lt;script&gt;alert(&#x27;r&#x27;)&lt;/script&gt;" in body
    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


def test_it_sanitises_agent_messages_in_the_transcript(client, pm):
    """Agent text in the transcript is rendered as Markdown without live HTML."""
    mission = _mission(pm)
    AgentMessage.objects.create(mission=mission, source="cto", content="**Plan** ready <script>alert(1)</script>")
    client.force_login(pm)
    body = client.get(mission.get_absolute_url()).content.decode()
    assert "<strong>Plan</strong> ready" in body
    assert "<script>alert(1)</script>" not in body


# --- Cancel ---------------------------------------------------------------------------------------


def test_it_cancels_on_post_by_the_requester(client, pm):
    """The requester's POST cancels the mission and logs who did it."""
    mission = _mission(pm)
    client.force_login(pm)
    response = client.post(reverse("missions:cancel", kwargs={"code": mission.code}))
    assert response.status_code == 302
    assert response["Location"] == mission.get_absolute_url()
    mission.refresh_from_db()
    assert mission.status == Mission.Status.CANCELLED
    assert mission.finished_at is not None
    event = mission.events.get()
    assert event.kind == Event.Kind.STATUS
    assert event.data == {"status": "cancelled", "from": "queued"}
    assert "Cancelled by pm." in event.message
    page = client.get(response["Location"])
    assert b"Mission cancelled." in page.content
    assert b"Cancel mission" not in page.content


def test_it_refuses_to_cancel_on_get(client, pm):
    """Cancelling changes state, so GET is not allowed (405) and changes nothing."""
    mission = _mission(pm)
    client.force_login(pm)
    assert client.get(reverse("missions:cancel", kwargs={"code": mission.code})).status_code == 405
    mission.refresh_from_db()
    assert mission.status == Mission.Status.QUEUED


def test_it_404s_when_another_pm_cancels(client, pm, other_pm):
    """Another PM cannot even see the mission, so cancelling it is a 404."""
    mission = _mission(other_pm)
    client.force_login(pm)
    assert client.post(reverse("missions:cancel", kwargs={"code": mission.code})).status_code == 404
    mission.refresh_from_db()
    assert mission.status == Mission.Status.QUEUED
    assert not mission.events.exists()


def test_it_forbids_a_reviewer_to_cancel_someone_elses_mission(client, pm, reviewer):
    """A reviewer can see the mission but only its requester (or staff) may cancel it."""
    mission = _mission(pm)
    client.force_login(reviewer)
    assert client.post(reverse("missions:cancel", kwargs={"code": mission.code})).status_code == 403
    mission.refresh_from_db()
    assert mission.status == Mission.Status.QUEUED


@pytest.mark.parametrize("status", [Mission.Status.COMPLETED, Mission.Status.FAILED, Mission.Status.CANCELLED])
def test_it_does_not_cancel_a_finished_mission(client, pm, status):
    """Cancelling a finished mission shows an error and changes nothing."""
    mission = _mission(pm, status=status)
    client.force_login(pm)
    response = client.post(reverse("missions:cancel", kwargs={"code": mission.code}), follow=True)
    assert response.status_code == 200
    label = Mission.Status(status).label.lower()
    assert (
        f'<p class="flash flash-error" role="status">The mission is already {label}.</p>' in response.content.decode()
    )
    mission.refresh_from_db()
    assert mission.status == status
    assert not mission.events.exists()


def test_it_lets_the_pm_override_how_the_c_suite_decides(client, company, pm, django_capture_on_commit_callbacks):
    """The consensus rule, conversation mode and deadlock policy chosen in the form reach the mission."""
    client.force_login(pm)
    data = {
        "template": "api_endpoint",
        "var_resource": "payments",
        "var_operations": "create",
        "priority": "normal",
        "budget_usd": "2.00",
        "consensus_rule": "unanimous",
        "conversation_mode": "selector",
        "deadlock_policy": "ceo",
    }
    with django_capture_on_commit_callbacks():
        response = client.post("/missions/new/", data)
    assert response.status_code == 302
    mission = Mission.objects.get()
    assert (mission.consensus_rule, mission.conversation_mode, mission.deadlock_policy) == (
        "unanimous",
        "selector",
        "ceo",
    )
    response = client.post("/missions/new/", {**data, "conversation_mode": "shouting"})
    assert response.status_code == 400 and Mission.objects.count() == 1


def test_it_keeps_the_filter_in_the_page_links(client, pm):
    """Page links carry the status filter and the search, encoded."""
    for n in range(25):
        _mission(pm, f"Mission number {n:02d} & more")
    client.force_login(pm)
    page = client.get(LIST_URL, {"q": "& more", "status": "queued"}).content.decode()
    assert 'href="?status=queued&amp;q=%26+more&amp;page=2" rel="next"' in page
