"""Workers that share nothing but git: two worker processes with their own DATA_DIRs, as if on two hosts."""

import subprocess
from decimal import Decimal

import pytest

from missions.models import Mission, Step
from missions.services import mission_submit
from tests.conftest import wait_for
from tests.live import celery_worker_process, celery_workers_wait, worker_process_stop
from tests.projects.conftest import git as _git

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _step(key: str, depends_on: list[str]) -> dict:
    return {
        "key": key,
        "title": f"Module {key}",
        "kind": "codegen",
        "role": "developer",
        "instructions": f"Write {key} with tests.",
        "depends_on": depends_on,
        "acceptance": ["tests pass"],
        "estimated_tokens": 1000,
    }


PLAN = {
    "summary": "Three modules side by side, then one on top.",
    "steps": [_step("alpha", []), _step("beta", []), _step("delta", []), _step("gamma", ["alpha", "beta", "delta"])],
}


def test_two_workers_with_their_own_data_dirs_complete_one_mission_through_git_alone(
    company, pm, sim, project, product, settings, tmp_path
):
    """PostgreSQL (or the test database), Redis and a git URL are all the two workers share: both run steps of
    one mission with parallel steps, each in its own DATA_DIR, and the branch pushed to the project holds every
    step's work on top of the base commit."""
    shared = tmp_path / "shared-git"
    settings.GIT_WORKSPACE_URL = str(shared)  # the web process pushes the base there
    sim.script({"role": "plan_draft", "times": 1, "reply": {"json": PLAN}})
    workers = []
    for name in ("host-a", "host-b"):
        data_dir = tmp_path / name
        data_dir.mkdir()
        workers.append(
            celery_worker_process(
                DATA_DIR=str(data_dir),
                GIT_WORKSPACE_URL=f"file://{shared}",
                node=name,
                WORKER_NAME=name,
                LLM_BASE_URL=sim.base_url,
                SANDBOX_BACKEND=settings.SANDBOX_BACKEND or "",
                log=tmp_path / f"{name}.log",
            )
        )
    try:
        celery_workers_wait(["host-a", "host-b"])  # else a loaded machine lets the first up take every step
        mission = mission_submit(
            requester=pm,
            title="Four modules",
            request="Build alpha, beta and delta, then gamma",
            budget_usd=Decimal("5.00"),
            require_deploy_approval=False,
            project=project,
        )

        def finished():
            mission.refresh_from_db()
            return mission.status if mission.is_finished else None

        assert wait_for(finished, timeout=180, message="the mission to finish") == Mission.Status.COMPLETED, (
            mission.failure_reason + (tmp_path / "host-a.log").read_text()[-2000:]
        )
    finally:
        for worker in workers:
            worker_process_stop(worker)
    steps = list(Step.objects.filter(plan__mission=mission))
    assert {s.worker for s in steps} == {"host-a", "host-b"}, [(s.key, s.worker) for s in steps]
    pushed = _git("rev-parse", f"refs/heads/{mission.deploy_branch}", cwd=product)
    _git("merge-base", "--is-ancestor", mission.base_sha, pushed, cwd=product)
    files = set(_git("ls-tree", "-r", "--name-only", pushed, cwd=product).split())
    assert {"alpha.py", "beta.py", "delta.py", "gamma.py", "shop/greeting.py"} <= files
    for name in ("host-a", "host-b"):  # each host kept nothing of the mission's work on its own disk
        leftovers = [p for p in (tmp_path / name / "workspaces").rglob("*") if p.is_file()]
        assert leftovers == [], leftovers
    assert (
        subprocess.run(
            ["git", "-C", str(shared / "projects" / "shop.git"), "rev-parse", mission.deploy_branch],
            capture_output=True,
        ).returncode
        == 0
    )
