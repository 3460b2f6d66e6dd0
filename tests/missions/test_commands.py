"""Management commands: seed_demo and submit_mission."""

import io
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from agents.models import AgentSpec, ModelProfile
from missions.models import Event, Mission, MissionTemplate
from missions.selectors import PRODUCT_MANAGERS_GROUP, REVIEWERS_GROUP
from tests.conftest import password_logs_in


def _run(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def _counts() -> dict:
    return {
        "users": get_user_model().objects.count(),
        "groups": Group.objects.count(),
        "profiles": ModelProfile.objects.count(),
        "agents": AgentSpec.objects.count(),
        "templates": MissionTemplate.objects.count(),
    }


# --- seed_demo ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _own_data_dir(settings, tmp_path):
    """seed_demo makes the demo repository and its mirror under DATA_DIR: each test gets its own."""
    settings.DATA_DIR = tmp_path / "data"
    settings.MIRRORS_DIR = tmp_path / "data" / "mirrors"
    settings.ENVS_DIR = tmp_path / "data" / "envs"
    settings.MIRRORS_DIR.mkdir(parents=True)


def test_it_adds_the_sample_repository_as_the_demo_project_with_a_passing_baseline(db, settings):
    import subprocess

    from projects.models import Project

    out = _run("seed_demo")
    project = Project.objects.get(slug="sample-inventory")
    baseline = project.baselines.get()
    assert baseline.verdict == "passed" and baseline.passed >= 15 and baseline.failed == 0
    assert f"Demo project sample-inventory from {settings.DATA_DIR / 'demo' / 'sample-inventory'}" in out
    log = subprocess.run(["git", "-C", project.git_url, "log", "--format=%H"], capture_output=True, text=True)
    assert log.stdout.split() == [project.head_sha]  # a repository of its own, one commit on main
    assert project.mirror_path.is_dir() and project.languages.get("Python", 0) >= 6
    assert "Demo project sample-inventory already exists." in _run("seed_demo")
    assert Project.objects.count() == 1


def test_it_seeds_the_demo_company_idempotently(db, monkeypatch):
    """Running seed_demo twice leaves the same users, groups, agents, profile and templates."""
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    first = _run("seed_demo")
    counts = _counts()
    assert counts["users"] == 3
    assert counts["groups"] == 2
    assert counts["profiles"] == 1
    assert counts["templates"] == 8
    assert counts["agents"] > 4  # the C-suite and the roster
    assert "Created user pm with password" in first

    second = _run("seed_demo")
    assert _counts() == counts
    assert "Seeded: 0 new agents, 0 new templates" in second
    assert "Demo users already exist; their passwords are unchanged." in second
    assert "Created user" not in second


def test_it_puts_demo_users_in_their_groups(db, monkeypatch):
    """pm files missions, reviewer reviews, admin is a superuser; reviewers may view the apps in the admin."""
    monkeypatch.setenv("DEMO_PASSWORD", "a demo password that is long")
    _run("seed_demo")
    User = get_user_model()
    assert list(User.objects.get(username="pm").groups.values_list("name", flat=True)) == [PRODUCT_MANAGERS_GROUP]
    assert list(User.objects.get(username="reviewer").groups.values_list("name", flat=True)) == [REVIEWERS_GROUP]
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    codenames = set(Group.objects.get(name=REVIEWERS_GROUP).permissions.values_list("codename", flat=True))
    assert {"view_mission", "view_llmcall", "view_approvalgate"} <= codenames
    assert not any(codename.startswith(("add_", "change_", "delete_")) for codename in codenames)


def test_it_uses_demo_password(db, monkeypatch):
    """With DEMO_PASSWORD set, every demo user logs in with it and the password is not printed."""
    password = "a demo password that is long"
    monkeypatch.setenv("DEMO_PASSWORD", password)
    out = _run("seed_demo")
    assert password not in out
    assert "Created user pm with password (DEMO_PASSWORD)" in out
    for username in ("pm", "reviewer", "admin"):
        assert password_logs_in(username, password), username


def test_it_prints_generated_passwords_that_work(db, monkeypatch):
    """Without DEMO_PASSWORD, each new user gets a random password, printed once, that logs in."""
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    out = _run("seed_demo")
    passwords = dict(re.findall(r"Created user (\w+) with password (\S+)", out))
    assert set(passwords) == {"pm", "reviewer", "admin"}
    assert len(set(passwords.values())) == 3
    for username, password in passwords.items():
        assert password_logs_in(username, password), username


def test_it_keeps_existing_passwords(db, monkeypatch):
    """A second run with another DEMO_PASSWORD does not reset the first one."""
    monkeypatch.setenv("DEMO_PASSWORD", "the first password of all")
    _run("seed_demo")
    monkeypatch.setenv("DEMO_PASSWORD", "a second different password")
    _run("seed_demo")
    assert password_logs_in("pm", "the first password of all")
    assert not password_logs_in("pm", "a second different password")


# --- submit_mission -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--requester", "nobody", "--title", "T", "--request", "R"], "No user 'nobody'."),
        (["--requester", "pm", "--template", "nope"], "No template 'nope'. Known: "),
        (
            ["--requester", "pm", "--template", "api_endpoint", "--var", "resource"],
            "--var takes NAME=VALUE, got 'resource'.",
        ),
        (
            ["--requester", "pm", "--template", "api_endpoint", "--var", "=users"],
            "--var takes NAME=VALUE, got '=users'.",
        ),
        (
            ["--requester", "pm", "--title", "T", "--request", "R", "--budget", "lots"],
            "--budget: Enter the budget as a number of dollars, e.g. 5 or 5.00, not “lots”.",
        ),
        (["--requester", "pm", "--title", "T", "--request", "R", "--budget", "0"], "The budget must be between"),
        (["--requester", "pm", "--title", "T", "--request", "R", "--budget", "-1"], "The budget must be between"),
        (["--requester", "pm", "--title", "T", "--request", "R", "--budget", "1e9"], "--budget: Enter the budget as"),
        (["--requester", "pm", "--title", "T", "--request", "R", "--budget", "99999"], "The budget must be between"),
        (["--requester", "pm", "--title", "T"], "A mission needs a title and a request."),
        (["--requester", "pm", "--template", "api_endpoint"], "Template variables missing: resource."),
        (
            ["--requester", "pm", "--template", "api_endpoint", "--var", "resource=x", "--var", "colour=red"],
            "Template variables unknown: colour.",
        ),
        (
            ["--requester", "pm", "--title", "T", "--request", "R", "--var", "a=b"],
            "Template variables were given without a template.",
        ),
    ],
)
def test_it_rejects_bad_arguments(company, pm, args, message):
    """Each mistake is a CommandError with a clear message, and no mission is filed."""
    with pytest.raises(CommandError) as caught:
        _run("submit_mission", *args)
    assert message in str(caught.value)
    assert not Mission.objects.exists()


def test_it_lists_known_templates_on_a_typo(company, pm):
    """An unknown template slug lists the known ones."""
    with pytest.raises(CommandError) as caught:
        _run("submit_mission", "--requester", "pm", "--template", "api-endpoint")
    assert "api_endpoint" in str(caught.value)
    assert "bug_fix" in str(caught.value)


@pytest.mark.parametrize("budget", ["NaN", "sNaN"])
def test_it_rejects_a_nan_budget(company, pm, budget):
    """--budget NaN is refused with a CommandError like any other non-budget, not a traceback."""
    with pytest.raises(CommandError, match="budget"):
        _run("submit_mission", "--requester", "pm", "--title", "T", "--request", "R", "--budget", budget)
    assert not Mission.objects.exists()


def test_it_rejects_an_unknown_priority(company, pm):
    """--priority only takes the known priorities (argparse refuses others)."""
    with pytest.raises(CommandError, match="invalid choice: 'whenever'"):
        _run("submit_mission", "--requester", "pm", "--title", "T", "--request", "R", "--priority", "whenever")
    assert not Mission.objects.exists()


def test_it_files_a_mission_and_prints_one_line(company, pm):
    """Without --json it prints code, status and title on one line."""
    out = _run(
        "submit_mission", "--requester", "pm", "--title", "From the CLI", "--request", "Do it", "--budget", "1.25"
    )
    mission = Mission.objects.get()
    assert out == f"{mission.code} queued From the CLI\n"
    assert str(mission.budget_usd) == "1.25"
    assert mission.requester == pm
    assert list(mission.events.values_list("seq", "kind")) == [(1, Event.Kind.SUBMITTED)]


def test_it_prints_json(company, pm):
    """--json prints the mission as JSON with code, status, steps, test runs and gates."""
    out = _run(
        "submit_mission",
        "--requester",
        "pm",
        "--template",
        "api_endpoint",
        "--var",
        "resource=user authentication",
        "--var",
        "details=Use=signs in values",
        "--priority",
        "high",
        "--json",
    )
    summary = json.loads(out)
    mission = Mission.objects.get()
    assert summary["code"] == str(mission.code)
    assert summary["status"] == "queued"
    assert summary["title"] == "API: user authentication"
    assert summary["steps"] == []
    assert summary["test_runs"] == []
    assert summary["open_gates"] == []
    assert summary["budget_usd"] == "5.00"
    assert summary["simulated_model"] is True
    assert mission.priority == "high"
    assert mission.variables["details"] == "Use=signs in values"  # only the first = splits


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_waits_for_the_mission_to_complete(company, pm, sim, celery_worker):
    """--wait blocks until the real worker finishes the mission; the JSON shows it completed with passing tests."""
    out = _run(
        "submit_mission",
        "--no-deploy-approval",
        "--requester",
        "pm",
        "--template",
        "api_endpoint",
        "--var",
        "resource=user authentication",
        "--budget",
        "2.00",
        "--wait",
        "--timeout",
        "240",
        "--json",
    )
    summary = json.loads(out)
    assert summary["status"] == "completed", summary["failure_reason"]
    assert summary["title"] == "API: user authentication"
    assert summary["steps"] and all(step["status"] == "succeeded" for step in summary["steps"])
    assert all(len(step["commit"]) == 40 for step in summary["steps"])
    assert summary["test_runs"] and all(run["passed"] > 0 and run["failed"] == 0 for run in summary["test_runs"])
    assert float(summary["spent_usd"]) > 0
    assert len(summary["deployed_sha"]) == 40 and summary["artifact"].endswith(".zip")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_waits_until_the_mission_stops_at_a_gate(company, pm, sim, celery_worker):
    """With deploy approval on (the default), --wait returns at the deploy gate and shows it open."""
    out = _run(
        "submit_mission", "--requester", "pm", "--title", "Gate", "--request", "Stop at the gate", "--wait", "--json"
    )
    summary = json.loads(out)
    assert summary["status"] == "awaiting_deploy_approval", summary["failure_reason"]
    assert [gate["kind"] for gate in summary["open_gates"]] == ["deploy"]
    assert summary["deployed_sha"] == ""
    assert len(sim.calls()) >= 6


def test_it_refuses_requesters_who_may_not_file_missions(company, outsider):
    """The CLI applies the same rule as the form: only product managers (or staff) file missions."""
    with pytest.raises(CommandError, match="may not file missions"):
        _run("submit_mission", "--requester", "outsider", "--title", "T", "--request", "R")
    assert not Mission.objects.exists()
