"""A project with a setup command: its missions' test runs use the environment it makes, built on the worker
from the worker's own checkout (workers share no disk with the web host), read-only and without network."""

import shutil
from decimal import Decimal

import pytest

from missions.models import Mission
from missions.services import mission_submit
from projects.services import project_add
from tests.conftest import wait_for
from tests.projects.conftest import git
from tests.sandbox_support import require_bwrap

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Installs a package only the environment has (a .pth pointing into it), as `pip install -e .` would.
SETUP = (
    "site=$(python -c \"import sysconfig; print(sysconfig.get_paths()['purelib'])\") && "
    'mkdir -p "$VIRTUAL_ENV/pkgs/vat" && '
    "printf 'RATE = 0.2\\n' > \"$VIRTUAL_ENV/pkgs/vat/__init__.py\" && "
    'echo "$VIRTUAL_ENV/pkgs" > "$site/vat.pth"'
)
NEEDS_THE_ENVIRONMENT = "import vat\n\n\ndef test_the_rate_comes_from_the_environment():\n    assert vat.RATE == 0.2\n"


def test_a_missions_tests_run_in_the_setup_environment_the_worker_builds_itself(
    company, pm, sim, celery_worker, product, tmp_path, settings
):
    require_bwrap()
    settings.MIRRORS_DIR = tmp_path / "mirrors"
    settings.MIRRORS_DIR.mkdir()
    settings.ENVS_DIR = tmp_path / "envs"
    settings.GIT_STORE_DIR = tmp_path / "store"
    (product / "tests" / "test_vat.py").write_text(NEEDS_THE_ENVIRONMENT)
    git("add", "-A", cwd=product)
    git("-c", "user.name=D", "-c", "user.email=d@example.com", "commit", "-q", "-m", "VAT from a package", cwd=product)
    project = project_add(name="Shop", slug="shop", git_url=str(product), setup_command=SETUP)
    assert project.baselines.get().passed == 2  # the baseline ran in the environment
    mission = mission_submit(
        requester=pm,
        title="Add a farewell",
        request="Say goodbye too",
        budget_usd=Decimal("3"),
        project=project,
        require_deploy_approval=False,
    )
    # As on another host: neither the web host's environment nor its mirror is there for the worker.
    shutil.rmtree(settings.ENVS_DIR)
    shutil.rmtree(project.mirror_path)

    assert wait_for(lambda: _finished(mission), timeout=120) == Mission.Status.COMPLETED, mission.failure_reason
    runs = list(mission.test_runs.all())
    assert runs and all(r.failed == 0 and r.errors == 0 for r in runs)
    assert all(
        "tests/test_vat.py::test_the_rate_comes_from_the_environment" in {t["nodeid"] for t in r.tests} for r in runs
    )
    assert (settings.ENVS_DIR / "shop" / project.head_sha).is_dir()  # rebuilt by the worker, from its clone


def _finished(mission: Mission) -> str | None:
    mission.refresh_from_db()
    return mission.status if (mission.is_finished or mission.is_waiting) else None
