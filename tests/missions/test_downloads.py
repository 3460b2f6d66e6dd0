"""The deploy gate shows the mission's change; the patch and the archive download from the git store.

Real git throughout: the mission branch lives in a store repository (missions/repository.py), work is pushed
to it as a step would, and a downloaded patch is applied with ``git am`` in a fresh clone.
"""

import io
import re
import subprocess
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse

from missions.engine.delivery import execution_done
from missions.models import Mission, TestRun
from missions.repository import mission_branch_create, mission_checkout, mission_repo_url
from missions.services import mission_submit
from reviews.models import ApprovalGate
from tests.conftest import wait_for
from tests.projects import conftest as projects_conftest
from tests.projects.conftest import git

APP = "def total(items):\n    return sum(items)\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


product, project = projects_conftest.product, projects_conftest.project  # the product's repo, as a project


@pytest.fixture
def store(settings, tmp_path):
    settings.GIT_STORE_DIR = tmp_path / "store"
    return settings.GIT_STORE_DIR


def _mission(requester, **fields) -> Mission:
    fields.setdefault("status", Mission.Status.EXECUTING)
    return Mission.objects.create(
        requester=requester, title="Totals", request="Add totals", budget_usd=Decimal(2), **fields
    )


def _push_work(mission: Mission) -> str:
    """Commit work on the mission branch and push it to the store, as a step does; returns the new head."""
    with mission_checkout(mission, "work") as workspace:
        workspace.write_file("README.md", "# Workspace\n\nTotals for <b>carts</b>.\n")
        workspace.write_file("shop/totals.py", APP)
        workspace.write_file(
            "tests/test_totals.py",
            "from shop.totals import total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n",
        )
        workspace.commit("Add totals")
        (workspace.root / "logo.png").write_bytes(PNG)
        workspace.write_file("shop/evil.py", "# </pre><script>alert(1)</script>\n")
        head = workspace.commit("Add a logo")
        assert workspace.push_head(mission.deploy_branch)
        return head


@pytest.fixture
def worked(pm, store):
    """A mission without a project whose branch holds two commits of work on top of its README root."""
    mission = _mission(pm)
    root = mission_branch_create(mission)
    return mission, root, _push_work(mission)


def _deploy_gate(mission: Mission) -> ApprovalGate:
    return ApprovalGate.objects.get(mission=mission, kind=ApprovalGate.Kind.DEPLOY)


def _download(client, mission: Mission, kind: str):
    return client.get(reverse(f"missions:change_{kind}", args=[mission.code]))


# --- the gate -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_opens_the_deploy_gate_with_the_change_against_the_branch_root(worked):
    """Without a project the base is the branch's root commit; the gate stores the whole summary."""
    mission, root, head = worked

    execution_done(mission, [])

    mission.refresh_from_db()
    assert mission.status == Mission.Status.AWAITING_DEPLOY_APPROVAL
    change = _deploy_gate(mission).data["change"]
    assert (change["base"], change["head"]) == (root, head)
    files = {f["path"]: f for f in change["files"]}
    assert set(files) == {"README.md", "shop/totals.py", "tests/test_totals.py", "logo.png", "shop/evil.py"}
    assert files["README.md"]["status"] == "modified" and files["shop/totals.py"]["added"] == 2
    assert files["logo.png"]["binary"] and files["logo.png"]["patch"] == ""
    assert [c["subject"] for c in change["commits"]] == ["Add a logo", "Add totals"]


@pytest.mark.django_db
def test_the_mission_page_shows_the_files_and_the_coloured_escaped_diff(worked, client, reviewer):
    """The reviewer reads the change on the gate: files with counts, coloured lines, binaries named, no live HTML."""
    mission, _root, head = worked
    execution_done(mission, [])
    client.force_login(reviewer)

    html = client.get(mission.get_absolute_url()).content.decode()

    assert "5 files changed" in html and f"<code>{head[:10]}</code>" in html
    assert '<span class="badge file-added">added</span> <code>shop/totals.py</code>' in html
    numbered = r'<tr class="diff-gi" id="d-\d+-\d+-L1"><td class="ln"></td><td class="ln" data-line="1"[^>]*>1</td>'
    assert re.search(numbered + r'<td class="code">\+def total\(items\):</td></tr>', html)
    assert '<td class="code">-# Workspace</td>' not in html  # the unchanged first line is context
    assert "binary file" in html and "Binary file: not shown as a diff." in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "Totals for &lt;b&gt;carts&lt;/b&gt;" in html and "<b>carts" not in html
    assert reverse("missions:change_patch", args=[mission.code]) in html
    assert reverse("missions:change_zip", args=[mission.code]) in html
    assert "Add a logo" in html  # the commits


@pytest.mark.django_db
def test_a_change_that_cannot_be_computed_still_opens_the_gate_and_says_why(pm, store, client, reviewer):
    """A base commit missing from the branch is stated on the gate; the decision is still possible."""
    mission = _mission(pm, base_sha="ab" * 20)
    mission_branch_create(mission)

    execution_done(mission, [])

    mission.refresh_from_db()
    gate = _deploy_gate(mission)
    assert mission.status == Mission.Status.AWAITING_DEPLOY_APPROVAL and gate.is_pending
    assert gate.data["change"] == {
        "error": f"The change could not be computed: Not a commit in this repository: '{'ab' * 20}'."
    }
    client.force_login(reviewer)
    html = client.get(mission.get_absolute_url()).content.decode()
    assert "The change could not be computed" in html and 'name="decision"' in html


@pytest.mark.django_db
def test_the_gate_shows_the_last_test_runs_comparison_with_the_baseline(worked, client, reviewer):
    """Regressed and fixed tests from the last run's comparison are listed with the change."""
    mission = worked[0]
    TestRun.objects.create(mission=mission, isolation="bwrap", passed=1, comparison={"regressed": ["old::gone"]})
    comparison = {"regressed": ["tests/test_a.py::test_sum"], "fixed": ["tests/test_b.py::test_div"], "new": []}
    TestRun.objects.create(mission=mission, isolation="bwrap", passed=3, failed=1, comparison=comparison)
    execution_done(mission, [])
    client.force_login(reviewer)

    html = client.get(mission.get_absolute_url()).content.decode()

    assert "Tests against the baseline" in html
    assert "Regressed: passed at the base, fail now (1)" in html and "tests/test_a.py::test_sum" in html
    assert "Fixed: failed at the base, pass now (1)" in html and "New tests" not in html
    assert "old::gone" not in html  # an earlier run's comparison is not the change's


# --- downloads ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_patch_download_applies_with_git_am_onto_the_base(worked, client, pm, tmp_path):
    """``git am`` of the download, onto the base in a fresh clone, gives exactly the branch head's tree."""
    mission, root, head = worked
    client.force_login(pm)

    response = _download(client, mission, "patch")

    assert response.status_code == 200 and response["Content-Type"] == "text/x-patch"
    assert response["Content-Disposition"] == f'attachment; filename="{mission.code}.patch"'
    patch = tmp_path / "change.patch"
    patch.write_bytes(response.content)
    clone = tmp_path / "fresh"
    git("clone", "-q", "--branch", mission.deploy_branch, mission_repo_url(mission), str(clone))
    git("checkout", "-q", "--detach", root, cwd=clone)
    git("-c", "user.name=R", "-c", "user.email=r@example.com", "am", "-q", str(patch), cwd=clone)
    assert git("rev-parse", "HEAD^{tree}", cwd=clone) == git("rev-parse", f"{head}^{{tree}}", cwd=clone)
    assert git("log", "--format=%s", f"{root}..HEAD", cwd=clone).splitlines() == ["Add a logo", "Add totals"]


@pytest.mark.django_db
def test_the_archive_download_is_the_branch_head_tree(worked, client, reviewer):
    mission, _root, _head = worked
    client.force_login(reviewer)

    response = _download(client, mission, "zip")

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="{mission.code}.zip"'
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.read("shop/totals.py").decode() == APP and archive.read("logo.png") == PNG


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["patch", "zip"])
def test_only_who_may_see_the_mission_can_download(worked, client, outsider, other_pm, kind):
    """Someone else's mission is a 404, like a missing one; signed out is sent to log in."""
    mission = worked[0]
    response = _download(client, mission, kind)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    for user in (outsider, other_pm):
        client.force_login(user)
        assert _download(client, mission, kind).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["patch", "zip"])
def test_there_is_nothing_to_download_before_the_branch_or_the_change_exists(pm, store, client, kind):
    """No branch yet: 404. A branch still at its base: 409 with the reason."""
    mission = _mission(pm)
    client.force_login(pm)
    assert _download(client, mission, kind).status_code == 404
    mission_branch_create(mission)
    response = _download(client, mission, kind)
    assert response.status_code == 409
    assert response.content.decode() == "The mission has no change yet: its branch is still at the base commit."


@pytest.mark.django_db
def test_the_deployed_archive_link_still_works(worked, client, pm, settings):
    """The old /artifact/ download (the archive a deploy stored) is unchanged."""
    mission = worked[0]
    archive = Path(settings.ARTIFACTS_DIR) / f"{mission.code}.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    Mission.objects.filter(pk=mission.pk).update(artifact_path=str(archive), deployed_sha=worked[2])
    client.force_login(pm)
    response = client.get(reverse("missions:artifact", args=[mission.code]))
    assert response.status_code == 200 and b"".join(response.streaming_content).startswith(b"PK")


@pytest.mark.django_db
def test_the_deployed_archive_comes_from_the_git_store_on_a_host_that_has_no_copy(worked, client, pm):
    """The worker that deployed kept the zip on its own disk; the web host makes it from git at the deployed sha."""
    mission, root, head = worked
    Mission.objects.filter(pk=mission.pk).update(artifact_path="/elsewhere/on/the/worker.zip", deployed_sha=root)
    client.force_login(pm)
    response = client.get(reverse("missions:artifact", args=[mission.code]))
    assert response.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert names == ["README.md"]  # the deployed commit, not the branch's later head
    Mission.objects.filter(pk=mission.pk).update(deployed_sha="")
    assert client.get(reverse("missions:artifact", args=[mission.code])).status_code == 404


@pytest.mark.django_db
def test_a_history_with_merges_downloads_as_one_patch_that_applies_on_the_base(worked, client, pm, tmp_path):
    """format-patch leaves merge commits out; a branch with merges (parallel steps) downloads as one commit."""
    mission, root, head = worked
    with mission_checkout(mission, "side") as workspace:
        workspace.checkout_detached(root)
        workspace.write_file("side.py", "SIDE = 1\n")
        side = workspace.commit("A parallel step")
        workspace.checkout_detached(head)
        assert workspace.merge_in(side, "Merge the parallel step") == []
        assert workspace.push_head(mission.deploy_branch)
        merged_tree = workspace.head_tree()
    client.force_login(pm)
    response = _download(client, mission, "patch")
    assert response.status_code == 200 and response.content.count(b"\nSubject: ") == 1
    clone = tmp_path / "applied"
    git("clone", "-q", "--branch", mission.deploy_branch, mission_repo_url(mission), str(clone))
    git("checkout", "-q", "--detach", root, cwd=clone)
    (tmp_path / "change.patch").write_bytes(response.content)
    git("-c", "user.name=R", "-c", "user.email=r@example.com", "am", "-q", str(tmp_path / "change.patch"), cwd=clone)
    assert git("rev-parse", "HEAD^{tree}", cwd=clone) == merged_tree


# --- end to end -----------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_project_mission_reaches_the_gate_with_its_diff_and_its_patch_applies_on_the_base(
    company, pm, reviewer, other_pm, sim, celery_worker, project, product, client, tmp_path
):
    """Through real workers and the simulated model: the gate shows the change against the project's base
    commit, and the downloaded patch applies with ``git am`` on that commit in a fresh clone of the product."""
    mission = mission_submit(
        requester=pm, title="Add a farewell", request="Say goodbye too", budget_usd=Decimal("3.00"), project=project
    )
    wait_for(lambda: _status(mission) in (Mission.Status.AWAITING_DEPLOY_APPROVAL, Mission.Status.FAILED), timeout=120)
    assert mission.status == Mission.Status.AWAITING_DEPLOY_APPROVAL, mission.failure_reason
    change = _deploy_gate(mission).data["change"]
    assert change["base"] == project.head_sha and change["files"] and change["added"] > 0
    assert "shop/greeting.py" not in {f["path"] for f in change["files"] if f["status"] == "deleted"}

    client.force_login(reviewer)
    html = client.get(mission.get_absolute_url()).content.decode()
    first = change["files"][0]
    assert f"<code>{first['path']}</code>" in html and 'class="diff-gi"' in html
    assert f"{change['files_total']} file" in html

    response = _download(client, mission, "patch")
    assert response.status_code == 200
    patch = tmp_path / "change.patch"
    patch.write_bytes(response.content)
    clone = tmp_path / "fresh"
    git("clone", "-q", str(product), str(clone))
    git("checkout", "-q", "--detach", project.head_sha, cwd=clone)
    git("-c", "user.name=R", "-c", "user.email=r@example.com", "am", "-q", str(patch), cwd=clone)
    applied = git("ls-tree", "-r", "HEAD", cwd=clone)
    head_tree = subprocess.run(
        ["git", "--git-dir", mission_repo_url(mission), "ls-tree", "-r", change["head"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert applied == head_tree

    client.force_login(other_pm)
    assert _download(client, mission, "patch").status_code == 404
    assert _download(client, mission, "zip").status_code == 404


def _status(mission: Mission) -> str:
    mission.refresh_from_db()
    return mission.status
