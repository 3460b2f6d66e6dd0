"""Where a mission's work lives: branch ``missions/<code>`` of a bare repository every worker reaches by git.

Workers share no filesystem. Each step clones the mission branch into a private directory, works, merges
its result onto the branch as it is then and pushes, retrying when another step pushed first. The store is
GIT_WORKSPACE_URL (for several hosts: a git URL or a path all of them mount), else DATA_DIR/git. Missions on
a project share one repository per project there (a branch each); other missions get one of their own.
"""

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings

from agents.runtime.workspace import Workspace, WorkspaceError
from missions.models import Mission


def store_root() -> str:
    return (settings.GIT_WORKSPACE_URL or str(settings.GIT_STORE_DIR)).rstrip("/")


def mission_repo_url(mission: Mission) -> str:
    """The repository holding the mission's branch (a path or git URL)."""
    if mission.project_id:
        return f"{store_root()}/projects/{mission.project.slug}.git"
    return f"{store_root()}/missions/{mission.code.hex}.git"


def _local_path(url: str) -> Path | None:
    """The directory of a local repository URL (a path or file://), None for a network URL."""
    if url.startswith("file://"):
        return Path(urlparse(url).path)
    if "://" in url or (":" in url.split("/")[0] and not url.startswith("/")):
        return None  # scp-like user@host:path
    return Path(url)


def repo_ensure(url: str) -> None:
    """Create a local store repository on first use; a network store must have it (or create it on push)."""
    path = _local_path(url)
    if path is None or (path / "HEAD").exists():
        return
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    Workspace(path)._git("init", "-q", "--bare", str(path), bare_env=True)


def mission_branch_create(mission: Mission, *, source: Path | None = None, sha: str = "") -> str:
    """Put the mission's starting commit on its branch in the store; returns that commit.

    ``sha`` from ``source`` (a local repository holding it, e.g. the project's mirror), or, without one,
    a first commit with a README. A branch that already exists is left as it is (a redelivered task).
    """
    url = mission_repo_url(mission)
    branch = f"refs/heads/{mission.deploy_branch}"
    repo_ensure(url)
    scratch = Path(tempfile.mkdtemp(prefix="mo-start-", dir=settings.WORKSPACES_DIR))
    try:
        probe = Workspace(scratch)
        existing = probe._git("ls-remote", "--", url, branch, bare_env=True).split()
        if existing:
            return existing[0]
        if source is not None:
            Workspace(source)._git("push", "-q", "--", url, f"{sha}:{branch}", bare_env=True)
            return sha
        workspace = Workspace(scratch / "repo")
        workspace.init()
        workspace._git("push", "-q", "--", url, f"HEAD:{branch}")
        return workspace.head()
    except WorkspaceError as error:
        raise WorkspaceError(f"Could not create the mission's branch in {url}: {error}") from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def mission_branch_delete(mission: Mission) -> None:
    """Remove the mission's branch from the store (a mission that was refused after its branch was made)."""
    scratch = Path(tempfile.mkdtemp(prefix="mo-delete-", dir=settings.WORKSPACES_DIR))
    try:  # git pushes only from a repository: an empty one will do
        Workspace(scratch)._git("init", "-q", "--bare", str(scratch), bare_env=True)
        Workspace(scratch)._git(
            "--git-dir",
            str(scratch),
            "push",
            "-q",
            "--",
            mission_repo_url(mission),
            f":refs/heads/{mission.deploy_branch}",
            bare_env=True,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def mission_head(mission: Mission) -> str:
    """The commit the mission branch points to now ('' before it exists)."""
    found = Workspace(settings.WORKSPACES_DIR)._git(
        "ls-remote", "--", mission_repo_url(mission), f"refs/heads/{mission.deploy_branch}", bare_env=True
    )
    return found.split()[0] if found.strip() else ""


@contextmanager
def mission_checkout(mission: Mission, purpose: str):
    """A private clone of the mission branch on this worker, removed afterwards."""
    dest = Path(tempfile.mkdtemp(prefix=f"{mission.code.hex}-{purpose}-", dir=settings.WORKSPACES_DIR)) / "repo"
    try:
        yield Workspace.clone_branch(url=mission_repo_url(mission), branch=mission.deploy_branch, dest=dest)
    finally:
        shutil.rmtree(dest.parent, ignore_errors=True)
