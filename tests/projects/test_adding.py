"""Adding a project: a real mirror, stats and a sandboxed baseline; refused input leaves nothing behind."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from projects.models import Baseline, Project
from projects.services import ProjectError, environment_for, project_add, project_refresh, project_update
from tests.projects.conftest import git

pytestmark = pytest.mark.django_db

FAILING = "def test_broken():\n    assert 1 == 2\n"
# Puts a package ``localpkg`` into the environment (a directory and a .pth file naming it).
SETUP = (
    "site=$(python -c \"import sysconfig; print(sysconfig.get_paths()['purelib'])\") && "
    'mkdir -p "$VIRTUAL_ENV/pkgs/localpkg" && '
    "printf 'ANSWER = 42\\n' > \"$VIRTUAL_ENV/pkgs/localpkg/__init__.py\" && "
    'echo "$VIRTUAL_ENV/pkgs" > "$site/localpkg.pth"'
)
USES_ENV = "import localpkg\n\n\ndef test_env():\n    assert localpkg.ANSWER == 42\n"


@pytest.fixture(autouse=True)
def dirs(settings, tmp_path):
    settings.MIRRORS_DIR = tmp_path / "mirrors"
    settings.ENVS_DIR = tmp_path / "envs"
    settings.MIRRORS_DIR.mkdir()
    settings.ENVS_DIR.mkdir()
    settings.PROJECT_ALLOWED_ROOTS = []
    return settings


def commit(repo: Path, path: str, text: str, message: str = "Change") -> str:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=PM", "-c", "user.email=pm@example.com", "commit", "-q", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def add(product: Path, **fields) -> Project:
    return project_add(**{"name": "Shop", "slug": "shop", "git_url": str(product), **fields})


def assert_nothing_left(settings) -> None:
    assert not Project.objects.exists() and not Baseline.objects.exists()
    assert list(settings.MIRRORS_DIR.iterdir()) == []
    assert list(settings.ENVS_DIR.iterdir()) == []


def test_it_mirrors_a_local_repository_and_records_a_passed_baseline(product, dirs):
    """The mirror is bare at MIRRORS_DIR/<slug>.git; HEAD, files, languages and the baseline are stored."""
    project = add(product)
    head = git("rev-parse", "HEAD", cwd=product)
    assert project.mirror_path == dirs.MIRRORS_DIR / "shop.git"
    assert git("--git-dir", str(project.mirror_path), "rev-parse", "--is-bare-repository") == "true"
    assert (project.head_sha, project.file_count, project.languages) == (head, 3, {"Python": 3})
    assert project.size_bytes > 0 and project.mirrored_at is not None
    baseline = project.current_baseline()
    assert (baseline.verdict, baseline.passed, baseline.failed, baseline.sha) == ("passed", 1, 0, head)
    assert baseline.tests == [{"nodeid": "tests/test_greeting.py::test_greet", "outcome": "passed"}]
    assert baseline.isolation and "passed" in baseline.log


def test_it_records_a_failing_baseline_and_adds_the_project(product):
    """Tests that fail at the base are recorded (they will not block missions); the project is added."""
    commit(product, "tests/test_broken.py", FAILING)
    project = add(product)
    baseline = project.current_baseline()
    assert (baseline.verdict, baseline.passed, baseline.failed) == ("failed", 1, 1)
    assert {"nodeid": "tests/test_broken.py::test_broken", "outcome": "failed"} in baseline.tests


def test_it_refuses_bad_input_and_leaves_nothing(product, dirs, tmp_path):
    """Each bad URL, branch, size or baseline gives a clear error, and no row, mirror or environment is left."""
    planted = tmp_path / "pwned"
    cases = [
        ({"git_url": str(tmp_path / "no-such-repo")}, "Could not clone"),
        ({"git_url": f"ext::sh -c touch% {planted}"}, "transport helper (such as ext::)"),
        ({"git_url": f"--upload-pack=touch {planted}"}, "must not start with '-'"),
        ({"git_url": "http://example.com/repo.git"}, "must be https://, ssh://"),
        ({"git_url": "relative/path"}, "must be https://, ssh://"),
        ({"git_url": f"file://{product}\x07"}, "control characters"),
        ({"default_branch": "develop"}, "The repository has no branch 'develop'."),
        ({"default_branch": "-x"}, "is not a valid branch name"),
        ({"default_branch": "a..b"}, "is not a valid branch name"),
        ({"slug": "Not A Slug"}, "The slug must be"),
        ({"test_command": "no-such-command"}, "could not run at"),
        ({"test_command": "pytest 'open"}, "cannot be parsed"),
        ({"setup_command": "echo broken; exit 3"}, "The setup command did not complete"),
        ({"push_url": "ext::sh"}, "The push URL uses a git transport helper"),
    ]
    for fields, message in cases:
        with pytest.raises(ProjectError) as caught:
            add(product, **fields)
        assert message in str(caught.value), fields
        assert_nothing_left(dirs)
    assert not planted.exists()


def test_it_refuses_a_local_path_outside_the_allowed_roots(product, dirs, tmp_path):
    """With PROJECT_ALLOWED_ROOTS set, a path or file:// URL elsewhere is refused; one inside is accepted."""
    dirs.PROJECT_ALLOWED_ROOTS = [str(tmp_path / "allowed")]
    for url in (str(product), f"file://{product}", f"{tmp_path}/allowed/../product"):
        with pytest.raises(ProjectError, match="outside the directories local repositories may come from"):
            add(product, git_url=url)
        assert_nothing_left(dirs)
    dirs.PROJECT_ALLOWED_ROOTS = [str(tmp_path)]
    assert add(product, git_url=f"file://{product}").head_sha


def test_it_refuses_a_repository_over_the_size_limit(product, dirs):
    dirs.PROJECT_MAX_MB = 0
    with pytest.raises(ProjectError, match=r"more than the 0 MB allowed \(PROJECT_MAX_MB\)"):
        add(product)
    assert_nothing_left(dirs)


def test_it_refuses_a_second_project_with_the_same_slug(product):
    add(product)
    with pytest.raises(ProjectError, match="A project with the slug 'shop' exists already."):
        add(product, name="Other")
    assert Project.objects.count() == 1


def test_a_setup_command_builds_a_cached_environment_the_tests_use(product, dirs):
    """The setup command runs once per commit into ENVS_DIR/<slug>/<sha>; the baseline imports from it."""
    commit(product, "tests/test_env.py", USES_ENV)
    project = add(product, setup_command=SETUP)
    assert project.current_baseline().verdict == "passed", project.current_baseline().log
    env = environment_for(project, project.head_sha)
    assert env == dirs.ENVS_DIR / "shop" / project.head_sha
    (env / "kept").write_text("a second call reuses the environment")
    assert environment_for(project, project.head_sha) == env and (env / "kept").exists()
    assert environment_for(Project(slug="bare", setup_command=""), project.head_sha) is None


def test_refresh_follows_a_moved_head_with_a_new_baseline(product):
    project = add(product)
    moved = commit(product, "tests/test_more.py", "def test_more():\n    pass\n")
    project = project_refresh(project)
    assert project.head_sha == moved and project.file_count == 4
    assert project.current_baseline().passed == 2
    assert project.baselines.count() == 2


def test_refresh_says_when_the_default_branch_disappeared(product):
    project = add(product)
    git("checkout", "-q", "-b", "other", cwd=product)
    git("branch", "-q", "-D", "main", cwd=product)
    with pytest.raises(ProjectError, match="The repository has no branch 'main'."):
        project_refresh(project)
    project.refresh_from_db()
    assert project.head_sha  # the last good state stays


def test_update_reruns_the_baseline_and_refuses_a_command_that_cannot_run(product):
    project = add(product)
    with pytest.raises(ProjectError, match="could not run at"):
        project_update(project, test_command="no-such-command")
    project.refresh_from_db()
    assert project.test_command == "python -m pytest -q"
    project = project_update(project, test_command="true", push_url="/srv/push.git")
    assert (project.test_command, project.push_url) == ("true", "/srv/push.git")
    baseline = project.current_baseline()
    assert (baseline.verdict, baseline.passed, baseline.tests) == ("passed", 1, [])
    with pytest.raises(ProjectError, match="cannot be changed here: git_url"):
        project_update(project, git_url="/elsewhere")


def test_the_command_adds_a_project_and_prints_json(product):
    out = StringIO()
    call_command("project_add", "--slug", "shop", "--url", str(product), "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["slug"] == "shop" and data["head_sha"] == git("rev-parse", "HEAD", cwd=product)
    assert (data["file_count"], data["languages"]) == (3, {"Python": 3})
    assert data["baseline"]["verdict"] == "passed" and data["baseline"]["passed"] == 1
    assert set(data["baseline"]) == {"verdict", "passed", "failed", "errors", "skipped", "duration_s"}


def test_the_command_reports_an_error_and_leaves_nothing(product, dirs, tmp_path):
    with pytest.raises(CommandError, match="Could not clone"):
        call_command("project_add", "--slug", "shop", "--url", str(tmp_path / "missing"))
    assert_nothing_left(dirs)
