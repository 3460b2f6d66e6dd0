"""Adding a project from hostile input: sources that lead outside the allowed roots, setup commands that
attack the host or fail, repositories too big to clone, and test commands the judge could not use."""

import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from projects.models import Project
from projects.services import ProjectError, environment_for, project_update
from tests.projects.conftest import git
from tests.projects.test_adding import add, assert_nothing_left, commit

pytestmark = pytest.mark.django_db

OUTSIDE = r"outside the directories local repositories may come from \(PROJECT_ALLOWED_ROOTS\)"


@pytest.fixture(autouse=True)
def dirs(settings, tmp_path):
    settings.MIRRORS_DIR = tmp_path / "mirrors"
    settings.ENVS_DIR = tmp_path / "envs"
    settings.MIRRORS_DIR.mkdir()
    settings.ENVS_DIR.mkdir()
    settings.PROJECT_ALLOWED_ROOTS = []
    return settings


@pytest.fixture
def allowed(dirs, tmp_path) -> Path:
    """PROJECT_ALLOWED_ROOTS is tmp/allowed; the product (tmp/product) lies outside it."""
    root = tmp_path / "allowed"
    root.mkdir()
    dirs.PROJECT_ALLOWED_ROOTS = [str(root)]
    return root


# ----------------------------------------------------------------- 1. local sources outside the roots
def test_percent_escapes_in_a_file_url_cannot_leave_the_allowed_roots(product, allowed, dirs):
    """git decodes %-escapes in file:// paths, so an escaped '..' is a '..'; another host is refused."""
    for url in (
        f"file://{allowed}/%2e%2e/product",
        f"file://{allowed}/%2E%2E/product",
        f"file://{allowed}/..%2fproduct",
        f"file://localhost{allowed}/%2e%2e/product",
    ):
        with pytest.raises(ProjectError, match=OUTSIDE):
            add(product, git_url=url)
        assert_nothing_left(dirs)
    with pytest.raises(ProjectError, match="names the host 'files.example': a file:// URL must be on this machine"):
        add(product, git_url=f"file://files.example{allowed}/shop")
    assert_nothing_left(dirs)


def test_a_file_url_inside_the_roots_is_decoded_and_accepted(product, allowed):
    subprocess.run(["git", "clone", "-q", str(product), str(allowed / "shop")], check=True)
    project = add(product, git_url=f"file://localhost{allowed}/sh%6fp")
    assert project.head_sha == git("rev-parse", "HEAD", cwd=product)


def test_git_files_links_and_alternates_cannot_lead_a_clone_outside_the_roots(product, allowed, dirs):
    """Each of these lies inside the roots but makes git read the product's repository outside them."""
    gitfile = allowed / "gitfile"
    gitfile.mkdir()
    (gitfile / ".git").write_text(f"gitdir: {product}/.git\n")
    (allowed / "sneaky.git").symlink_to(product / ".git")  # cloning .../sneaky finds sneaky.git
    borrowing = allowed / "borrowing.git"
    git("init", "-q", "--bare", str(borrowing))
    (borrowing / "objects" / "info" / "alternates").write_text(f"{product}/.git/objects\n")
    git("--git-dir", str(borrowing), "update-ref", "refs/heads/main", git("rev-parse", "HEAD", cwd=product))
    for url in (str(gitfile), f"file://{gitfile}", str(allowed / "sneaky"), str(borrowing), f"file://{borrowing}"):
        with pytest.raises(ProjectError, match=OUTSIDE):
            add(product, git_url=url)
        assert_nothing_left(dirs)


# ----------------------------------------------------------------- 2. setup commands against the host
def test_a_setup_command_cannot_make_the_host_write_through_a_planted_marker(product, dirs, tmp_path):
    """The ready marker lives outside the environment: a symlink planted in it is never followed, and
    setuid/setgid bits the command set are gone."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    setup = (
        f'ln -s {victim} "$VIRTUAL_ENV/.mo-ready" && ln -s {victim} "$VIRTUAL_ENV/../$(basename $VIRTUAL_ENV).ready"; '
        'cp /bin/true "$VIRTUAL_ENV/bin/suid" && chmod 6755 "$VIRTUAL_ENV/bin/suid"'
    )
    project = add(product, setup_command=setup)
    assert victim.read_text() == "precious"
    env = environment_for(project, project.head_sha)
    assert not os.lstat(env / "bin" / "suid").st_mode & (stat.S_ISUID | stat.S_ISGID)
    (env / "kept").write_text("reused, not made again")
    assert environment_for(project, project.head_sha) == env and (env / "kept").exists()
    assert victim.read_text() == "precious"


def test_a_setup_command_that_leaves_a_fifo_is_refused(product, dirs):
    with pytest.raises(ProjectError, match=r"left 1 device file\(s\), FIFO\(s\) or socket\(s\).*: trap"):
        add(product, setup_command='mkfifo "$VIRTUAL_ENV/trap"')
    assert_nothing_left(dirs)


# ----------------------------------------------------------------- 3. size limit while cloning
def test_a_repository_over_the_size_limit_is_refused(product, dirs):
    (product / "data.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # committed with the README
    commit(product, "README", "incompressible data\n")
    dirs.PROJECT_MAX_MB = 1
    with pytest.raises(ProjectError, match=r"more than the 1 MB allowed \(PROJECT_MAX_MB\)"):
        add(product)
    assert_nothing_left(dirs)


def test_a_clone_is_stopped_as_soon_as_it_passes_the_size_limit(product, dirs):
    """A source that keeps sending (a FIFO among its objects, fed 2 MB and held open, like a slow remote):
    git is killed at the first poll past 1 MB rather than waiting for the clone's time limit."""
    dirs.PROJECT_MAX_MB, dirs.PROJECT_CLONE_TIMEOUT_S = 1, 30
    fifo = product / ".git" / "objects" / "zz-stream"
    os.mkfifo(fifo)
    done, fed = threading.Event(), []

    def feed() -> None:
        deadline = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < deadline:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until git opens it to read
            except OSError:
                time.sleep(0.05)
                continue
            os.set_blocking(fd, True)
            try:
                for _ in range(32):
                    os.write(fd, os.urandom(64 * 1024))
                    fed.append(64 * 1024)
                done.wait(30)  # hold it open: git would wait forever
            except BrokenPipeError:
                fed.append(-1)  # git, the reader, is gone
            finally:
                os.close(fd)
            return

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    started = time.monotonic()
    try:
        with pytest.raises(ProjectError) as caught:
            add(product)
    finally:
        done.set()
        feeder.join(10)
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert "more than the 1 MB allowed (PROJECT_MAX_MB): the clone was stopped after writing" in message
    assert sum(n for n in fed if n > 0) > 1024 * 1024
    assert_nothing_left(dirs)


# ----------------------------------------------------------------- 4. failed setups are remembered
def test_a_failed_setup_is_remembered_until_it_may_be_retried(project, dirs):
    """Missions' test runs get the remembered reason at once; a changed command forgets it."""
    dirs.PROJECT_SETUP_RETRY_S = 600
    Project.objects.filter(pk=project.pk).update(setup_command="echo no index here; exit 3")
    project.refresh_from_db()
    with pytest.raises(ProjectError) as first:
        environment_for(project, project.head_sha)
    assert "The setup command failed (exit code 3)" in str(first.value) and "Remembered" not in str(first.value)
    with pytest.raises(ProjectError) as again:
        environment_for(project, project.head_sha)
    assert "The setup command failed (exit code 3)" in str(again.value) and "no index here" in str(again.value)
    assert "Remembered from the run at" in str(again.value)
    assert "tried again after" in str(again.value) and "PROJECT_SETUP_RETRY_S" in str(again.value)

    dirs.PROJECT_SETUP_RETRY_S = 0  # old enough: tried again
    with pytest.raises(ProjectError) as retried:
        environment_for(project, project.head_sha)
    assert "Remembered" not in str(retried.value)

    dirs.PROJECT_SETUP_RETRY_S = 600
    failing = project.setup_command
    project = project_update(project, setup_command="true")
    assert environment_for(project, project.head_sha) == dirs.ENVS_DIR / "shop" / project.head_sha
    Project.objects.filter(pk=project.pk).update(setup_command=failing)  # as the admin might set it back
    project.refresh_from_db()
    with pytest.raises(ProjectError) as after_change:
        environment_for(project, project.head_sha)
    assert "Remembered" not in str(after_change.value)  # the change forgot the old failure: it ran again


def test_a_hanging_setup_is_stopped_once_and_then_answered_at_once(project, dirs):
    dirs.PROJECT_SETUP_TIMEOUT_S, dirs.PROJECT_SETUP_RETRY_S = 2, 600
    Project.objects.filter(pk=project.pk).update(setup_command="sleep 60")
    project.refresh_from_db()
    started = time.monotonic()
    with pytest.raises(ProjectError, match="stopped after its 2s time limit"):
        environment_for(project, project.head_sha)
    assert time.monotonic() - started >= 2
    started = time.monotonic()
    with pytest.raises(ProjectError, match=r"(?s)stopped after its 2s time limit.*Remembered from the run at"):
        environment_for(project, project.head_sha)
    assert time.monotonic() - started < 1.5


# ----------------------------------------------------------------- 5. test commands the judge cannot use
NO_RESULTS = "gives no per-test results, so regressions cannot be told apart: make it pass at the base commit"


@pytest.mark.parametrize("command", ["false", "sh -c 'echo 3 tests failed; exit 1'"])
def test_a_failing_command_without_per_test_results_is_refused(product, dirs, command):
    head = git("rev-parse", "HEAD", cwd=product)
    with pytest.raises(ProjectError) as caught:
        add(product, test_command=command)
    assert f"`{command}` fails at {head[:10]} and {NO_RESULTS}, or use a pytest command." in str(caught.value)
    assert_nothing_left(dirs)


def test_changing_to_a_failing_command_without_per_test_results_is_refused(product):
    project = add(product)
    with pytest.raises(ProjectError, match=NO_RESULTS):
        project_update(project, test_command="false")
    project.refresh_from_db()
    assert project.test_command == "python -m pytest -q" and project.baselines.count() == 1
    assert project_update(project, test_command="true").current_baseline().verdict == "passed"
