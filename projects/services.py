"""Adding, changing and refreshing a project: the one place the Projects page and ``project_add`` call.

Adding a project, step by step:
1. Check every field (URL forms, branch name, slug, commands) before touching anything.
2. Clone a bare mirror into a temporary directory next to MIRRORS_DIR, within PROJECT_CLONE_TIMEOUT_S
   and PROJECT_MAX_MB, and check the default branch is there.
3. Read the tree's stats at the branch's HEAD.
4. Run the baseline there: the setup command (cached per commit under ENVS_DIR), then the test command.
   A baseline that could not run refuses the project; failing tests are recorded and accepted.
5. Only then rename the mirror into place and save the Project and its Baseline together. On any error
   everything made in 2-4 is removed, so a refused project leaves nothing behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.runtime.sandbox import (
    PytestResult,
    SandboxError,
    SandboxLimits,
    parse_command,
    run_setup_command,
    run_test_command,
)
from projects import mirror
from projects.models import DEFAULT_TEST_COMMAND, Baseline, Project

BASELINE_LOG_CHARS = 20_000
ERROR_LOG_CHARS = 1_500
# Beside an environment ENVS_DIR/<slug>/<sha> (never inside it: the setup command writes there), each
# holding the setup command it is about: <sha>.ready is written last into a finished one, <sha>.failed
# remembers why the last try failed, so runs within PROJECT_SETUP_RETRY_S do not try again.
READY_SUFFIX = ".ready"
FAILED_SUFFIX = ".failed"
MARKER_MAX_BYTES = 64 * 1024
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")
_SCP_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")  # git@host:path
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
ALTERNATES_DEPTH = 5  # git follows alternates of alternates this deep
UPDATABLE = frozenset(
    {"name", "default_branch", "test_command", "setup_command", "push_url", "merge_after_approval", "restricted"}
)
REBASELINE = frozenset({"default_branch", "test_command", "setup_command"})


class ProjectError(ValueError):
    """A project could not be added or changed; the message says why, for a person."""


def project_add(
    *,
    name: str,
    slug: str,
    git_url: str,
    default_branch: str = "main",
    test_command: str = DEFAULT_TEST_COMMAND,
    setup_command: str = "",
    push_url: str = "",
    merge_after_approval: bool = False,
    restricted: bool = False,
    created_by=None,
) -> Project:
    """Mirror the repository, run its baseline and save the project; ProjectError leaves nothing behind."""
    project = Project(
        name=name.strip(),
        slug=slug.strip(),
        git_url=git_url.strip(),
        default_branch=default_branch.strip(),
        test_command=test_command.strip(),
        setup_command=setup_command.strip(),
        push_url=push_url.strip(),
        merge_after_approval=merge_after_approval,
        restricted=restricted,
        created_by=created_by,
    )
    _check_fields(project)
    if Project.objects.filter(slug=project.slug).exists():
        raise ProjectError(f"A project with the slug {project.slug!r} exists already.")
    if project.mirror_path.exists():
        raise ProjectError(f"A mirror for {project.slug!r} exists already at {project.mirror_path}; remove it first.")
    envs_existed = (settings.ENVS_DIR / project.slug).exists()
    scratch = Path(tempfile.mkdtemp(prefix=f".{project.slug}-", dir=settings.MIRRORS_DIR))
    try:
        staged = scratch / "mirror.git"
        _clone(project.git_url, staged)
        sha = _branch_head(staged, project.default_branch)
        _take_stats(project, staged, sha)
        baseline = _baseline_run(project, staged, sha)
        _refuse_if_errored(project, baseline, sha)
        _refuse_if_unjudgeable(project, baseline, sha)
        try:
            os.rename(staged, project.mirror_path)
        except OSError as error:
            raise ProjectError(f"Could not put the mirror in place at {project.mirror_path}: {error}.") from None
        try:
            with transaction.atomic():
                project.save()
                baseline.project = project
                baseline.save()
        except IntegrityError:
            shutil.rmtree(project.mirror_path, ignore_errors=True)
            raise ProjectError(f"A project with the slug {project.slug!r} exists already.") from None
    except BaseException:
        if not envs_existed:
            shutil.rmtree(settings.ENVS_DIR / project.slug, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return project


def project_update(project: Project, *, members=None, **fields) -> Project:
    """Change a project's settings; a new branch or command runs a new baseline first (refused if errored)."""
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ProjectError(f"These project fields cannot be changed here: {', '.join(sorted(unknown))}.")
    changed = Project.objects.get(pk=project.pk)  # a copy: a refused change leaves the caller's object as it was
    for key, value in fields.items():
        setattr(changed, key, value.strip() if isinstance(value, str) else value)
    _check_fields(changed)
    rerun = any(getattr(changed, key) != getattr(project, key) for key in REBASELINE & set(fields))
    baseline = None
    if rerun:
        sha = _branch_head(changed.mirror_path, changed.default_branch)
        if changed.setup_command != project.setup_command:
            _forget_failures(changed)
            _remove(_marker(_env_path(changed, sha), READY_SUFFIX))
            shutil.rmtree(_env_path(changed, sha), ignore_errors=True)
        _take_stats(changed, changed.mirror_path, sha)
        baseline = _baseline_run(changed, changed.mirror_path, sha)
        _refuse_if_errored(changed, baseline, sha)
        _refuse_if_unjudgeable(changed, baseline, sha)
    with transaction.atomic():
        changed.save()
        if members is not None:
            changed.members.set(members)
        if baseline is not None:
            Baseline.objects.filter(project=changed, sha=baseline.sha).delete()
            baseline.project = changed
            baseline.save()
    return changed


def project_refresh(project: Project) -> Project:
    """Fetch the mirror, update HEAD and stats; a moved HEAD gets its baseline (recorded even when errored)."""
    try:
        mirror.mirror_fetch(project.mirror_path, timeout=settings.PROJECT_CLONE_TIMEOUT_S)
    except mirror.MirrorError as error:
        raise ProjectError(f"Could not fetch {project.git_url}: {error}") from None
    sha = _branch_head(project.mirror_path, project.default_branch)
    if sha != project.head_sha or not project.baselines.filter(sha=sha).exists():
        _take_stats(project, project.mirror_path, sha)
        if not project.baselines.filter(sha=sha).exists():
            baseline = _baseline_run(project, project.mirror_path, sha)
            baseline.project = project
            baseline.save()
    project.mirrored_at = timezone.now()
    project.save()
    return project


def environment_for(project: Project, sha: str, *, source: Path | None = None) -> Path | None:
    """The project's environment at ``sha`` (made now if missing); None without a setup command.

    ``source`` is a repository holding ``sha`` (a worker has no mirror: it passes its own clone); default
    the mirror. A virtualenv is not relocatable (scripts name their own path), so it is built at its final
    path under a lock, and its ``.ready`` marker is written last: a directory without it (a crash mid-build)
    is made again. A failed build is remembered for PROJECT_SETUP_RETRY_S: until then ProjectError at once,
    with the reason, instead of another slow or hanging run before every test run.
    """
    return _environment(project, sha, source=source or project.mirror_path)


def _environment(project: Project, sha: str, *, source: Path, retry: bool = False) -> Path | None:
    """environment_for, checking out from ``source`` (while a project is added, its staged mirror);
    ``retry``: a person asked (adding, changing, refreshing), so a remembered failure is tried again."""
    if not project.setup_command:
        return None
    env_dir = _env_path(project, sha)
    ready, failed = _marker(env_dir, READY_SUFFIX), _marker(env_dir, FAILED_SUFFIX)
    with _env_lock(env_dir):
        if _read_marker(ready).get("command") == project.setup_command:
            return env_dir
        if not retry:
            _raise_if_failed_recently(_read_marker(failed), project.setup_command)
        _remove(ready)
        _remove(failed)
        shutil.rmtree(env_dir, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f"{project.slug}-setup-", dir=settings.WORKSPACES_DIR))
        try:
            checkout = mirror.checkout(source, sha, work / "repo")
            limits = SandboxLimits(timeout_s=settings.PROJECT_SETUP_TIMEOUT_S, cpu_s=settings.PROJECT_SETUP_TIMEOUT_S)
            run_setup_command(checkout, project.setup_command, env_dir=env_dir, limits=limits)
            _write_marker(ready, {"command": project.setup_command})
        except mirror.MirrorError as error:  # the source lacks the commit: not the setup command's fault
            shutil.rmtree(env_dir, ignore_errors=True)
            raise ProjectError(f"The setup command did not complete: {error}") from None
        except SandboxError as error:
            shutil.rmtree(env_dir, ignore_errors=True)
            message = f"The setup command did not complete: {error}"
            _write_marker(failed, {"command": project.setup_command, "message": message, "at": time.time()})
            raise ProjectError(message) from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return env_dir


def _raise_if_failed_recently(failure: dict, setup_command: str) -> None:
    """ProjectError with the remembered reason while the last failure of this command is recent."""
    at = failure.get("at")
    if failure.get("command") != setup_command or not isinstance(at, (int, float)):
        return
    retry_at = at + settings.PROJECT_SETUP_RETRY_S
    if time.time() >= retry_at:
        return
    stamp = "%Y-%m-%d %H:%M:%S UTC"
    raise ProjectError(
        f"{failure.get('message', 'The setup command did not complete.')}\n"
        f"(Remembered from the run at {time.strftime(stamp, time.gmtime(at))}; the setup command is tried "
        f"again after {time.strftime(stamp, time.gmtime(retry_at))} (PROJECT_SETUP_RETRY_S), or at once when "
        "it is changed.)"
    )


# ----------------------------------------------------------------- checks
def check_git_url(url: str, *, label: str = "The repository URL") -> None:
    """Refuse URL forms git could run commands from or read arbitrary local paths through."""
    if not url:
        raise ProjectError(f"{label} is empty.")
    if _CONTROL_RE.search(url):
        raise ProjectError(f"{label} contains control characters.")
    if url.startswith("-"):
        raise ProjectError(f"{label} must not start with '-' (git would read it as an option).")
    if "::" in url.split("/")[0] or url.lower().startswith("ext:"):
        raise ProjectError(f"{label} uses a git transport helper (such as ext::), which is not allowed.")
    lowered = url.lower()
    if lowered.startswith(("https://", "ssh://")):
        if not urlsplit(url).hostname:
            raise ProjectError(f"{label} has no host name.")
        return
    if lowered.startswith("file://"):
        _check_local(_file_url_path(url, label), label)
        return
    if url.startswith("/"):
        _check_local(url, label)
        return
    if _SCP_RE.match(url):
        return
    raise ProjectError(f"{label} must be https://, ssh://, git@host:path, file:// or an absolute local path.")


def _file_url_path(url: str, label: str) -> str:
    """The local path git reads for a file:// URL: git decodes %-escapes, so ``%2e%2e`` is ``..``."""
    host, slash, path = url[len("file://") :].partition("/")
    if host.lower() not in ("", "localhost"):
        raise ProjectError(f"{label} names the host {host!r}: a file:// URL must be on this machine.")
    path = unquote(slash + path)
    if _CONTROL_RE.search(path):
        raise ProjectError(f"{label} contains control characters.")
    return path


def _check_local(path: str, label: str) -> None:
    """With PROJECT_ALLOWED_ROOTS set: the path, and every git directory a clone of it would read, lie inside."""
    roots = [os.path.realpath(root) for root in settings.PROJECT_ALLOWED_ROOTS]
    if not roots:
        return
    for place in (path, *_git_dirs_read(path)):
        real = os.path.realpath(place)
        if not any(real == top or real.startswith(top.rstrip("/") + "/") for top in roots):
            raise ProjectError(
                f"{label} is outside the directories local repositories may come from (PROJECT_ALLOWED_ROOTS)."
            )


def _git_dirs_read(path: str) -> list[str]:
    """Where a local clone of ``path`` could read from: each candidate git clone tries (path/.git, path,
    path.git/.git, path.git, path.bundle), the git dir a ``.git`` file points to ("gitdir: ..."), its
    ``commondir`` and the object directories its ``objects/info/alternates`` name (followed a few levels,
    as git does)."""
    found: list[str] = []
    pending = []
    for suffix in ("/.git", "", ".git/.git", ".git", ".bundle"):
        candidate = path.rstrip("/") + suffix if suffix else path
        if not os.path.lexists(candidate):
            continue
        found.append(candidate)
        if os.path.isfile(candidate):
            target = _read_small(candidate)
            if target.startswith("gitdir:"):
                pending.append(os.path.join(os.path.dirname(candidate), target[len("gitdir:") :].strip()))
        else:
            pending.append(candidate)
    for _ in range(ALTERNATES_DEPTH):
        more = []
        for git_dir in pending:
            found.append(git_dir)
            common = _read_small(os.path.join(git_dir, "commondir")).strip()
            if common:
                more.append(os.path.join(git_dir, common))
            objects = os.path.join(git_dir, "objects")
            for line in _read_small(os.path.join(objects, "info", "alternates")).splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    # An alternate is an objects directory; its parent is the git dir to check further.
                    found.append(os.path.join(objects, line))
                    more.append(os.path.dirname(os.path.join(objects, line).rstrip("/")))
        pending = more
    return found + pending


def _read_small(path: str) -> str:
    """The start of a small control file (a .git file, commondir, alternates); '' when it is not one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return ""
        return handle.read(64 * 1024).decode("utf-8", errors="replace")


def check_branch(branch: str) -> None:
    if not branch or branch.startswith("-") or "@{" in branch or len(branch) > 120 or _CONTROL_RE.search(branch):
        raise ProjectError(f"{branch!r} is not a valid branch name.")
    proc = subprocess.run(["git", "check-ref-format", "--branch", branch], capture_output=True, check=False)
    if proc.returncode != 0:
        raise ProjectError(f"{branch!r} is not a valid branch name.")


def _check_fields(project: Project) -> None:
    if not project.name or len(project.name) > 120:
        raise ProjectError("Give the project a name of at most 120 characters.")
    if not _SLUG_RE.match(project.slug) or project.slug == "add":
        raise ProjectError(
            "The slug must be 1-60 lowercase letters, digits or hyphens, starting with a letter or digit."
        )
    check_git_url(project.git_url)
    if project.push_url:
        check_git_url(project.push_url, label="The push URL")
    check_branch(project.default_branch)
    if len(project.test_command) > 500 or len(project.setup_command) > 500:
        raise ProjectError("Commands may be at most 500 characters long.")
    try:
        parse_command(project.test_command)
    except SandboxError as error:
        raise ProjectError(f"The test command is not usable: {error}") from None
    if "\0" in project.setup_command:
        raise ProjectError("The setup command contains a NUL character.")


# ----------------------------------------------------------------- mirror, stats, baseline
def _clone(url: str, dest: Path) -> None:
    limit = settings.PROJECT_MAX_MB * 1024 * 1024
    try:
        mirror.mirror_clone(url, dest, timeout=settings.PROJECT_CLONE_TIMEOUT_S, max_bytes=limit)
    except mirror.MirrorTooLarge as error:
        raise ProjectError(
            f"The repository is more than the {settings.PROJECT_MAX_MB} MB allowed (PROJECT_MAX_MB): {error}."
        ) from None
    except mirror.MirrorError as error:
        raise ProjectError(f"Could not clone {url}: {error}") from None
    size = mirror.disk_size(dest)  # a clone quicker than one poll
    if size > limit:
        raise ProjectError(
            f"The repository is {size / 1024 / 1024:.1f} MB, more than the {settings.PROJECT_MAX_MB} MB "
            "allowed (PROJECT_MAX_MB)."
        )


def _branch_head(repo: Path, branch: str) -> str:
    try:
        return mirror.branch_head(repo, branch)
    except mirror.MirrorError as error:
        raise ProjectError(str(error)) from None


def _take_stats(project: Project, repo: Path, sha: str) -> None:
    stats = mirror.tree_stats(repo, sha)
    project.head_sha = sha
    project.file_count = stats.file_count
    project.size_bytes = stats.size_bytes
    project.languages = stats.languages
    project.mirrored_at = timezone.now()


def _baseline_run(project: Project, repo: Path, sha: str) -> Baseline:
    """An unsaved Baseline of the test command at ``sha`` (setup first when there is one)."""
    work = Path(tempfile.mkdtemp(prefix=f"{project.slug}-baseline-", dir=settings.WORKSPACES_DIR))
    try:
        checkout = mirror.checkout(repo, sha, work / "repo")
        env_dir = _environment(project, sha, source=repo, retry=True)
        limits = SandboxLimits(timeout_s=settings.SANDBOX_TIMEOUT_S)
        result = run_test_command(checkout, project.test_command, limits=limits, env_dir=env_dir)
    except SandboxError as error:
        raise ProjectError(f"The baseline test run could not start: {error}") from None
    except mirror.MirrorError as error:
        raise ProjectError(f"Could not check out {sha[:10]}: {error}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Baseline(
        sha=sha,
        verdict=baseline_verdict(result),
        passed=result.passed,
        failed=result.failed,
        errors=result.errors,
        skipped=result.skipped,
        duration_s=result.duration_s,
        isolation=result.isolation,
        tests=[{"nodeid": t.nodeid, "outcome": t.outcome} for t in result.tests],
        log=result.log[-BASELINE_LOG_CHARS:],
    )


def baseline_at(project: Project, sha: str, *, source: Path) -> Baseline:
    """The project's baseline at ``sha``, run now from ``source`` (a repository holding it) when there is none.

    A worker calls this for a default branch that moved: the mission is then judged against that commit.
    """
    found = project.baselines.filter(sha=sha).first()
    if found is not None:
        return found
    baseline = _baseline_run(project, source, sha)
    baseline.project = project
    try:
        with transaction.atomic():
            baseline.save()
    except IntegrityError:  # another worker ran it meanwhile
        return project.baselines.get(sha=sha)
    return baseline


def baseline_verdict(result: PytestResult) -> str:
    """passed / failed, or errored when the command could not run (stopped, nothing collected, only errors)."""
    ran = result.passed + result.failed
    if result.timed_out or ran == 0:
        return Baseline.Verdict.ERRORED
    if result.failed or result.errors:
        return Baseline.Verdict.FAILED
    return Baseline.Verdict.PASSED


def _refuse_if_errored(project: Project, baseline: Baseline, sha: str) -> None:
    if baseline.verdict != Baseline.Verdict.ERRORED:
        return
    if baseline.errors:
        why = "the tests could not be collected, or the command could not start or was stopped"
    else:
        why = "no tests ran"
    raise ProjectError(
        f"The test command {project.test_command!r} could not run at {sha[:10]}: {why}. "
        f"Fix the command (or the setup command) and try again.\n{baseline.log[-ERROR_LOG_CHARS:]}"
    )


def _refuse_if_unjudgeable(project: Project, baseline: Baseline, sha: str) -> None:
    """A failing command without per-test results (not pytest) would block every step: the judge could only
    ask for exit 0, which the base itself does not reach, and could not tell a regression from old failures."""
    if baseline.verdict != Baseline.Verdict.FAILED or baseline.tests:
        return
    raise ProjectError(
        f"`{project.test_command}` fails at {sha[:10]} and gives no per-test results, so regressions cannot be "
        "told apart: make it pass at the base commit, or use a pytest command."
        f"\n{baseline.log[-ERROR_LOG_CHARS:]}"
    )


# ----------------------------------------------------------------- environments
def _env_path(project: Project, sha: str) -> Path:
    return settings.ENVS_DIR / project.slug / sha


def _marker(env_dir: Path, suffix: str) -> Path:
    return env_dir.parent / f"{env_dir.name}{suffix}"


def _read_marker(path: Path) -> dict:
    """A marker's JSON; {} when missing or not a small regular file (never follows a symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return {}
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MARKER_MAX_BYTES:
            return {}
        try:
            data = json.loads(handle.read(MARKER_MAX_BYTES))
        except ValueError:
            return {}
    return data if isinstance(data, dict) else {}


def _write_marker(path: Path, data: dict) -> None:
    """A fresh file (an old one, or anything planted there, is unlinked first; nothing is followed)."""
    _remove(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _forget_failures(project: Project) -> None:
    """A changed setup command gets a fresh try at every commit."""
    for path in (settings.ENVS_DIR / project.slug).glob(f"*{FAILED_SUFFIX}"):
        _remove(path)


@contextmanager
def _env_lock(env_dir: Path):
    """One builder per environment on this host (workers on other hosts have their own ENVS_DIR)."""
    env_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(env_dir.parent / f"{env_dir.name}.lock", flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
