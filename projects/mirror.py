"""Git on a project's bare mirror: clone with limits, fetch, read the tree's stats, check a commit out.

The URL comes from a person and the repository from anywhere, so git runs with a fixed argv (``--``
before every URL), no system or global config, no prompts, only the transports the product supports
(GIT_ALLOW_PROTOCOL: never ``ext::``), in its own process group that a timeout kills whole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agents.runtime.workspace import SAFE_GIT_CONFIG, safe_git_env

LOCAL_GIT_TIMEOUT_S = 60
ERROR_CHARS = 500
SIZE_POLL_S = 0.5  # how often a clone's directory is measured while git writes it

# Files per language, by extension; everything else is "Other".
LANGUAGES = {
    ".py": "Python", ".pyi": "Python", ".js": "JavaScript", ".mjs": "JavaScript", ".jsx": "JavaScript",
    ".ts": "TypeScript", ".tsx": "TypeScript", ".html": "HTML", ".css": "CSS", ".scss": "CSS",
    ".md": "Markdown", ".rst": "reStructuredText", ".txt": "Text", ".toml": "TOML", ".yml": "YAML",
    ".yaml": "YAML", ".json": "JSON", ".cfg": "Config", ".ini": "Config", ".sh": "Shell", ".go": "Go",
    ".rs": "Rust", ".java": "Java", ".kt": "Kotlin", ".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++",
    ".hpp": "C++", ".cs": "C#", ".rb": "Ruby", ".php": "PHP", ".sql": "SQL", ".swift": "Swift",
}  # fmt: skip


class MirrorError(Exception):
    """A git operation on a mirror failed; the message is for a person."""


class MirrorTooLarge(MirrorError):
    """A clone grew past its size limit and was stopped; ``size`` is what it had written by then."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the clone was stopped after writing {size / 1024 / 1024:.1f} MB")
        self.size, self.limit = size, limit


@dataclass(frozen=True)
class TreeStats:
    file_count: int
    size_bytes: int
    languages: dict[str, int]


def git(
    *args: str,
    cwd: Path | None = None,
    timeout: float = LOCAL_GIT_TIMEOUT_S,
    watch: Callable[[], None] | None = None,
) -> str:
    """Run git safely; MirrorError with git's own message on failure or timeout.

    ``watch`` is called every SIZE_POLL_S while git runs; a MirrorError it raises kills git's process
    group and is raised here.
    """
    argv = ["git"]
    for item in SAFE_GIT_CONFIG:
        argv += ["-c", item]
    argv += list(args)
    env = safe_git_env()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a timeout kills git's helpers (ssh, remote-https) with it
        )
    except OSError as error:
        raise MirrorError(f"Could not run git: {error}.") from None
    deadline = time.monotonic() + timeout
    while True:
        left = max(0.0, deadline - time.monotonic())
        try:
            out, err = proc.communicate(timeout=min(left, SIZE_POLL_S) if watch else left)
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                _kill(proc)
                raise MirrorError(f"git {args[0]} did not finish within {timeout:g}s.") from None
        if watch is not None:
            try:
                watch()
            except MirrorError:
                _kill(proc)
                raise
    if proc.returncode != 0:
        message = err.decode("utf-8", errors="replace").strip()[-ERROR_CHARS:]
        raise MirrorError(message or f"git {args[0]} exited with code {proc.returncode}.")
    return out.decode("utf-8", errors="replace")


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: helpers (ssh, remote-https, upload-pack) too
    proc.communicate()


def mirror_clone(url: str, dest: Path, *, timeout: float, max_bytes: int | None = None) -> None:
    """A bare mirror of ``url`` at ``dest`` (which must not exist).

    With ``max_bytes``, git is stopped (MirrorTooLarge) as soon as ``dest`` grows past it, so a huge
    repository never fills the disk; what it wrote stays at ``dest`` for the caller to remove.
    """

    def watch() -> None:
        size = disk_size(dest)
        if size > max_bytes:
            raise MirrorTooLarge(size, max_bytes)

    git(
        "clone", "--mirror", "--quiet", "--no-hardlinks", "--", url, str(dest),
        timeout=timeout, watch=watch if max_bytes is not None else None,
    )  # fmt: skip


def mirror_fetch(mirror: Path, *, timeout: float) -> None:
    """Bring the mirror up to date with upstream (branches deleted there go here too)."""
    git("--git-dir", str(mirror), "fetch", "--quiet", "--prune", "origin", timeout=timeout)


def branch_head(mirror: Path, branch: str) -> str:
    """The commit ``branch`` points to in the mirror; MirrorError when there is no such branch."""
    try:
        return git(
            "--git-dir", str(mirror), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"
        ).strip()
    except MirrorError:
        raise MirrorError(f"The repository has no branch {branch!r}.") from None


def disk_size(path: Path) -> int:
    """Bytes the directory takes (files' apparent sizes; symlinks not followed)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def tree_stats(mirror: Path, sha: str) -> TreeStats:
    """Files, bytes and files per language in the tree at ``sha``."""
    out = git("--git-dir", str(mirror), "ls-tree", "-r", "-l", "-z", sha)
    count = size = 0
    languages: Counter[str] = Counter()
    for entry in out.split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        _, kind, _, blob_size = meta.split()
        if kind != "blob":
            continue  # submodules
        count += 1
        size += int(blob_size) if blob_size.isdigit() else 0
        languages[LANGUAGES.get(Path(path).suffix.lower(), "Other")] += 1
    return TreeStats(count, size, dict(languages.most_common()))


def checkout(mirror: Path, sha: str, dest: Path) -> Path:
    """A working copy of the mirror at ``sha`` (detached) in ``dest``."""
    git("clone", "--quiet", "--no-hardlinks", "--no-checkout", "--", str(mirror), str(dest))
    git("-C", str(dest), "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", sha)
    return dest
