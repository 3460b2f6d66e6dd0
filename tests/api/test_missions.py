"""Filing, listing and reading missions over the API: the filing form's rules, clean 4xx JSON for hostile input."""

import json
from decimal import Decimal
from unittest import mock

import pytest
from django.test import override_settings

from agents.models import AgentSpec, LLMCall
from missions.models import DecisionCycle, Event, Mission, Plan, Step, TestRun
from projects.models import Project
from reviews.models import PeerReview
from tests.api.conftest import bearer, secret_for, waiting_mission

URL = "/api/v1/missions"


def _post(client, secret, body, **kwargs):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(URL, data, content_type=kwargs.pop("content_type", "application/json"), headers=bearer(secret))


def test_it_files_a_free_text_mission_as_the_form_does(client, company, pm, django_capture_on_commit_callbacks):
    """201 with the mission; the same submitted event as the page, and it is started after commit."""
    body = {"title": "Health endpoint", "request": "Add GET /health.", "budget_usd": "2,50", "priority": "high"}
    with mock.patch("missions.services.mission_start") as start, django_capture_on_commit_callbacks(execute=True):
        response = _post(client, secret_for(pm), body)
    assert response.status_code == 201, response.content
    data = response.json()
    mission = Mission.objects.get(code=data["code"])
    assert (mission.requester, mission.title, mission.budget_usd, mission.priority) == (
        pm,
        "Health endpoint",
        Decimal("2.50"),
        "high",
    )
    assert mission.require_deploy_approval and not mission.require_plan_approval
    assert data["status"] == "queued" and data["budget_usd"] == "2.50" and data["url"] == mission.get_absolute_url()
    assert mission.events.filter(kind=Event.Kind.SUBMITTED).count() == 1
    start.assert_called_once_with(mission.pk, filed=True)  # as for the browser's form


def test_it_files_a_template_mission_with_variables(client, company, pm):
    body = {"template": "api_endpoint", "variables": {"resource": "invoices"}, "reviewers": [], "budget_usd": 3}
    response = _post(client, secret_for(pm), body)
    assert response.status_code == 201, response.content
    mission = Mission.objects.get(code=response.json()["code"])
    assert mission.template.slug == "api_endpoint" and "invoices" in mission.title
    # Omitted variables take their defaults, as the form's pre-filled fields give them.
    assert mission.variables == {"resource": "invoices", "operations": "create, read, update and delete", "details": ""}
    assert mission.budget_usd == Decimal("3.00")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"title": "t", "request": "r", "budget_usd": "0"},
            "budget_usd",
            "The budget must be between $0.01 and $10000.",
        ),
        (
            {"title": "t", "request": "r", "budget_usd": "1.234,56"},
            "budget_usd",
            "“1.234,56” has a thousands separator: write the budget without one, with at most two decimals, "
            "e.g. 1234.56.",
        ),
        ({"title": "t", "request": "r", "budget_usd": 1e-7}, "budget_usd", "Enter the budget as a number of dollars"),
        ({"title": "t", "request": "r", "budget_usd": "60"}, "confirm_budget", "$60.00 is above $50: tick the box"),
        ({"request": "r"}, "title", "Required when no template is chosen."),
        ({"title": "t" * 201, "request": "r"}, "title", "Ensure this value has at most 200 characters (it has 201)."),
        ({"title": "t", "request": "r" * 20_001}, "request", "at most 20000 characters (it has 20001)"),
        ({"title": "t", "request": "r", "template": "nope"}, "template", "Select a valid choice."),
        ({"title": "t", "request": "r", "template": "x\u0000"}, "template", "Null characters are not allowed."),
        ({"template": "api_endpoint"}, "variables.resource", "This field is required."),
        ({"title": "t", "request": "r", "project": "nope"}, "non_field", "There is no project 'nope' you can file"),
        ({"title": "t", "request": "r", "reviewers": ["nobody"]}, "reviewers", "Select a valid choice."),
        ({"title": "t", "request": "r", "consensus_rule": "coin"}, "consensus_rule", "Select a valid choice."),
        (
            {"template": "api_endpoint", "variables": {"resource": "x", "extra": "y"}},
            "variables",
            "Template variables unknown: extra.",
        ),
        ({"title": "t", "request": "r", "variables": {"a": "b"}}, "variables", "Template variables were given"),
    ],
)
def test_it_refuses_what_the_form_refuses(client, company, pm, body, field, message):
    """A 400 naming the field with the form's own message; nothing is filed."""
    response = _post(client, secret_for(pm), body)
    assert response.status_code == 400, response.content
    data = response.json()
    assert message in data["errors"][field][0], data
    assert message in data["detail"] and data["detail"].startswith("The mission was not filed")
    assert not Mission.objects.exists()


def test_it_refuses_a_project_the_user_may_not_file_against(client, company, pm, admin):
    """A restricted project is as unknown to a non-member as a missing one; its members (and admins) may use it."""
    Project.objects.create(slug="secret", name="Secret", git_url="/srv/secret.git", head_sha="a" * 40, restricted=True)
    Project.objects.create(slug="open", name="Open", git_url="/srv/open.git", head_sha="b" * 40)
    response = _post(client, secret_for(pm), {"title": "t", "request": "r", "project": "secret"})
    assert response.status_code == 400
    assert response.json()["errors"]["project"] == [
        "Select a valid choice. That choice is not one of the available choices."
    ]


def test_it_refuses_a_duplicate_with_409_and_the_first_missions_code(client, company, pm):
    secret = secret_for(pm)
    first = _post(client, secret, {"title": "Twice", "request": "Same words."}).json()
    response = _post(client, secret, {"title": "Twice", "request": "Same words."})
    assert response.status_code == 409
    assert response.json()["mission"] == first["code"] and "You filed this same mission" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("this is not json", "application/json"),
        ("{", "application/json"),
        ("[1, 2, 3]", "application/json"),
        ('"a string"', "application/json"),
        ("null", "application/json"),
        (json.dumps({"title": ["a"], "request": {"b": 1}}), "application/json"),
        (json.dumps({"title": "t", "request": "r", "budget_usd": {"$gt": 0}}), "application/json"),
        (json.dumps({"title": "t", "request": "r", "budget_usd": True}), "application/json"),
        ('{"title": "t", "request": "r", "budget_usd": NaN}', "application/json"),
        ('{"title": "t", "request": "r", "budget_usd": 1e400}', "application/json"),
        (json.dumps({"title": "t", "request": "r", "variables": ["x"]}), "application/json"),
        (json.dumps({"title": "t", "request": "r", "priority": "whenever"}), "application/json"),
        (json.dumps({"title": "t", "request": "r", "confirm_budget": "perhaps"}), "application/json"),
        (json.dumps({"title": "t", "request": "r", "reviewers": "code"}), "application/json"),
        ("title=t&request=r", "application/x-www-form-urlencoded"),
        ("\udcff".encode("utf-8", "surrogatepass"), "application/json"),
        (json.dumps({"title": "t", "request": "r", "budget_usd": "9" * 5000}), "application/json"),
        (json.dumps({"title": "t" * 3_000_000, "request": "r"}), "application/json"),
        ("", "application/json"),
    ],
)
def test_it_answers_hostile_input_with_clean_json_4xx(client, company, pm, body, content_type):
    """Wrong types, broken or huge bodies: a 4xx with a JSON message, never a 500, and the input is not echoed."""
    response = _post(client, secret_for(pm), body, content_type=content_type)
    assert 400 <= response.status_code < 500, response.content[:500]
    data = response.json()
    assert isinstance(data["detail"], str) and data["detail"]
    assert len(response.content) < 5_000
    assert not Mission.objects.exists()


def test_it_paginates_the_list_with_limit_and_offset(client, pm):
    """Newest first, ``count`` of all, at most 100 a page; a status filter; bad parameters are a 422."""
    for n in range(5):
        Mission.objects.create(requester=pm, title=f"m{n}", request="r", budget_usd=1)
    Mission.objects.create(requester=pm, title="done", request="r", budget_usd=1, status=Mission.Status.COMPLETED)
    secret = secret_for(pm)
    page = client.get(URL, {"limit": 2, "offset": 1}, headers=bearer(secret)).json()
    assert page["count"] == 6 and [m["title"] for m in page["items"]] == ["m4", "m3"]
    done = client.get(URL, {"status": "completed"}, headers=bearer(secret)).json()
    assert [m["title"] for m in done["items"]] == ["done"]
    huge = {"offset": 2**63}  # past the database's integer range
    for params in ({"limit": 101}, {"limit": 0}, {"offset": -1}, huge, {"status": "sleeping"}, {"limit": "x"}):
        response = client.get(URL, params, headers=bearer(secret))
        assert response.status_code == 422, params
        assert response.json()["detail"].startswith("Invalid request: query.")


def test_it_lists_in_a_fixed_number_of_queries(client, pm, django_assert_max_num_queries):
    for n in range(30):
        Mission.objects.create(requester=pm, title=f"m{n}", request="r", budget_usd=1)
    secret = secret_for(pm)
    with django_assert_max_num_queries(6):
        assert len(client.get(URL, {"limit": 30}, headers=bearer(secret)).json()["items"]) == 30


def _worked_mission(company, pm) -> Mission:
    mission, gate = waiting_mission(pm)
    dev = AgentSpec.objects.filter(is_c_suite=False, role="developer").first()
    reviewer_agent = AgentSpec.objects.filter(role__endswith="reviewer").first()
    cto = AgentSpec.objects.get(role="cto", is_c_suite=True)
    plan = Plan.objects.create(mission=mission, version=1)
    step = Step.objects.create(plan=plan, key="core", title="Core", role="developer", agent=dev, status="succeeded")
    TestRun.objects.create(mission=mission, step=step, passed=4, isolation="bwrap")
    PeerReview.objects.create(mission=mission, step=step, reviewer=reviewer_agent, verdict="approve", score=5)
    planning = DecisionCycle.objects.create(mission=mission, number=1, kind=DecisionCycle.Kind.PLANNING)
    for cost, cycle, agent, model, purpose in (
        ("0.010000", planning, cto, "sim-1", "plan_draft"),
        ("0.020000", planning, cto, "sim-1", "plan_vote"),
        ("0.005000", None, dev, "big", "step:codegen"),
    ):
        # Created pending, then settled in one UPDATE: PostgreSQL's trigger refuses edits to a settled row.
        call = LLMCall.objects.create(
            mission=mission, cycle=cycle, step=None if cycle else step, agent=agent, model_name=model, purpose=purpose
        )
        LLMCall.objects.filter(pk=call.pk).update(
            status=LLMCall.Status.OK, cost_usd=Decimal(cost), prompt_tokens=100, completion_tokens=10
        )
    Mission.objects.filter(pk=mission.pk).update(spent_usd=Decimal("0.035"))
    return mission


def test_it_reads_a_mission_with_steps_reviews_tests_gates_and_spend(
    client, company, pm, django_assert_max_num_queries
):
    mission = _worked_mission(company, pm)
    secret = secret_for(pm)
    with django_assert_max_num_queries(12):
        response = client.get(f"{URL}/{mission.code}", headers=bearer(secret))
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "awaiting_deploy_approval" and data["status_label"] == "Awaiting deploy approval"
    assert data["cost"] == {"budget_usd": "2.00", "spent_usd": "0.035000", "reserved_usd": "0.000000",
                            "remaining_usd": "1.965000"}  # fmt: skip
    [step] = data["steps"]
    assert (step["key"], step["status"], step["reviews"][0]["verdict"]) == ("core", "succeeded", "approve")
    assert data["test_runs"][0] | {"created_at": None} == data["test_runs"][0] | {"created_at": None}
    assert (data["test_runs"][0]["step"], data["test_runs"][0]["passed"], data["test_runs"][0]["ok"]) == (
        "core",
        4,
        True,
    )
    [gate] = data["gates"]
    assert (gate["kind"], gate["status"], gate["decisions"]) == (
        "deploy",
        "pending",
        ["approved", "rejected", "revision_requested"],
    )


def test_it_reads_the_cost_report(client, company, pm):
    """The cost page's sums by phase, by agent and step, and by model, and totals that add up to the spend."""
    mission = _worked_mission(company, pm)
    data = client.get(f"{URL}/{mission.code}/costs", headers=bearer(secret_for(pm))).json()
    assert {row["phase"]: row["cost_usd"] for row in data["by_phase"]} == {
        "planning": "0.030000",
        "execution": "0.005000",
    }
    assert [(row["model"], row["calls"]) for row in data["by_model"]] == [("sim-1", 2), ("big", 1)]
    assert data["by_agent_step"][0]["agent"] == "Chief Technology Officer (CTO)"
    assert data["totals"]["cost_usd"] == "0.035000" == data["spent_usd"]
    assert data["totals"]["calls"] == 3 and data["totals"]["prompt_tokens"] == 300


def test_it_answers_404_json_for_a_missing_mission_or_endpoint(client, pm):
    secret = secret_for(pm)
    for path in (f"{URL}/00000000-0000-0000-0000-000000000000", "/api/v1/nothing-here", "/api/v1/"):
        response = client.get(path, headers=bearer(secret))
        assert response.status_code == 404, path
        assert response.json()["detail"]
    response = client.get(f"{URL}/not-a-uuid/costs", headers=bearer(secret))
    assert response.status_code == 422 and "valid UUID" in response.json()["detail"]


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_it_refuses_a_body_over_the_upload_limit_with_413(client, company, pm):
    response = _post(client, secret_for(pm), {"title": "t", "request": "r" * 2000})
    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is too large."}


def test_it_answers_a_wrong_method_with_405_json(client, pm):
    response = client.delete(URL, headers=bearer(secret_for(pm)))
    allowed = response["Allow"]
    assert response.status_code == 405 and sorted(allowed.split(", ")) == ["GET", "POST"]
    assert response.json() == {"detail": f"DELETE is not allowed here; use {allowed}."}


def test_it_names_the_field_of_a_wrongly_typed_value(client, company, pm):
    response = _post(client, secret_for(pm), {"title": ["a"], "request": "r"})
    assert response.status_code == 422
    assert response.json()["detail"] == "Invalid request: body.title: Input should be a valid string."
