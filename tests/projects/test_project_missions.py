"""Missions against a project: they start from its mirrored HEAD and deliver a branch pushed to its remote."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from missions.models import Mission
from missions.services import mission_submit
from tests.conftest import wait_for
from tests.projects.conftest import git as _git

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _finished(mission: Mission) -> str | None:
    mission.refresh_from_db()
    return mission.status if (mission.is_finished or mission.is_waiting) else None


def test_a_mission_on_a_project_starts_at_its_head_and_pushes_a_branch_that_contains_it(
    company, pm, sim, celery_worker, project, product
):
    mission = mission_submit(
        requester=pm,
        title="Add a farewell",
        request="Say goodbye too",
        budget_usd=Decimal("3.00"),
        require_deploy_approval=False,
        project=project,
    )
    assert mission.base_sha == project.head_sha
    assert wait_for(lambda: _finished(mission), timeout=120) == Mission.Status.COMPLETED, mission.failure_reason
    pushed = _git("rev-parse", f"refs/heads/{mission.deploy_branch}", cwd=product)
    assert pushed == mission.pushed_sha == mission.deployed_sha
    _git("merge-base", "--is-ancestor", project.head_sha, pushed, cwd=product)  # the base is in its history
    assert _git("rev-parse", "main", cwd=product) == project.head_sha  # the default branch is untouched
    files = _git("ls-tree", "-r", "--name-only", pushed, cwd=product).split()
    assert "shop/greeting.py" in files and "tests/test_greeting.py" in files  # the product's own code stays
    runs = list(mission.test_runs.all())
    assert runs and all(r.failed == 0 and r.passed > 1 for r in runs)  # the product's test ran with the new ones
    summary = _summary(mission)
    assert summary["project"] == "shop" and summary["base_sha"] == project.head_sha
    assert summary["branch"] == mission.deploy_branch and summary["pushed_sha"] == pushed


def _summary(mission: Mission) -> dict:
    from missions.management.commands.submit_mission import mission_summary

    return json.loads(json.dumps(mission_summary(mission)))


def test_submit_mission_takes_a_project_and_reports_it(company, pm, project):
    out = StringIO()
    call_command(
        "submit_mission",
        "--requester",
        pm.username,
        "--project",
        "shop",
        "--title",
        "Add a farewell",
        "--request",
        "Say goodbye too",
        "--json",
        stdout=out,
    )
    summary = json.loads(out.getvalue())
    assert summary["project"] == "shop" and summary["base_sha"] == project.head_sha
    assert summary["branch"].startswith("missions/")


def test_a_project_the_requester_may_not_use_is_refused_and_nothing_is_filed(company, pm, project):
    project.restricted = True
    project.save()
    with pytest.raises(ValueError, match="may not file missions against Shop"):
        mission_submit(requester=pm, title="t", request="r", budget_usd=Decimal("1"), project=project)
    assert not Mission.objects.exists()


def test_a_refused_duplicate_leaves_no_branch_in_the_store(company, pm, project, settings):
    from missions.repository import mission_repo_url
    from missions.services import DuplicateMissionError

    fields = dict(requester=pm, title="Twice", request="Same", budget_usd=Decimal("1"), project=project)
    first = mission_submit(refuse_duplicates=True, **fields)
    with pytest.raises(DuplicateMissionError):
        mission_submit(refuse_duplicates=True, **fields)
    store = mission_repo_url(first)
    branches = _git("--git-dir", store, "for-each-ref", "--format=%(refname)", "refs/heads/").split()
    assert branches == [f"refs/heads/{first.deploy_branch}"]
