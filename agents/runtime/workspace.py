"""A mission's git workspace: confined file access plus commit/diff helpers.

Paths come from a model, so every path is checked against the workspace root
before it is touched. Git runs with a fixed argv, a minimal environment and
hooks/fsmonitor/signing disabled, because the worktree (and, with the weaker
sandbox backend, even ``.git``) may have been written by untrusted code.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import os
import re
import signal
import stat
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from agents.runtime import codesearch


def _timeout_s() -> int:
    try:
        return max(5, int(os.environ.get("GIT_TIMEOUT_S", "300")))
    except ValueError:
        return 300


# One git command, a clone or push of a real project included; on expiry git and its helpers are killed.
GIT_TIMEOUT_S = _timeout_s()
LIST_LIMIT = 500
DIFF_LIMIT_BYTES = 200_000
# Real repositories have big modules: they are read by line range and edited in place up to this size.
LARGE_FILE_BYTES = 2_000_000
RANGE_MAX_CHARS = 40_000  # one ranged read's answer
MAX_SUBJECT_CHARS = 200
MAX_MESSAGE_CHARS = 5_000
DEFAULT_MESSAGE = "Update workspace"

GIT_USER_NAME = "Mission Orchestrator"
GIT_USER_EMAIL = "agents@mission-orchestrator.local"
EXCLUDE_PATTERNS = (".mo/", "__pycache__/", ".pytest_cache/")
SKIP_DIRS = frozenset({".git", ".mo", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})

# Command-line config wins over repository config, so these neutralise
# anything a sandboxed program may have planted in .git/config or hooks.
SAFE_GIT_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.quotePath=false",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "diff.external=",
    "protocol.ext.allow=never",  # no git URL may make git run a command
)

# Files that change how pytest collects, runs or reports tests: a change to them makes test results
# unreliable as evidence, so the step is flagged for a human (see Workspace.test_config_changes).
TEST_CONFIG_NAMES = frozenset(
    {"conftest.py", "pytest.ini", ".pytest.ini", "sitecustomize.py", "usercustomize.py", "pytest.py", "pluggy.py"}
)
TEST_CONFIG_DIRS = frozenset({"_pytest", "pytest", "pluggy"})  # would shadow the real pytest on sys.path
TEST_CONFIG_SECTIONS = {
    "tox.ini": ("[pytest]",),
    "setup.cfg": ("[tool:pytest]", "pytest11"),
    "pyproject.toml": ("[tool.pytest", "pytest11"),
    "setup.py": ("pytest11",),
}
TEST_CONFIG_CODE = re.compile(r"\bpytest_plugins\b|(?<!\w)_pytest\b|\bpluggy\b")  # plugins, pytest internals
SCAN_LIMIT_BYTES = 1_000_000
MAX_LISTED = 5

# The only repository config keys the product writes (init, clone). Host git refuses to run on a
# .git/config with anything else: keys such as filter.<x>.clean, diff.<x>.textconv, merge.<x>.driver,
# core.sshCommand or include.path would make host git run commands (as the worker) or read other files,
# and repository config cannot be switched off from the command line key by key.
_ALLOWED_CONFIG = re.compile(
    r"^(core\.(repositoryformatversion|filemode|bare|logallrefupdates|ignorecase|precomposeunicode|symlinks)"
    r"|user\.(name|email)|remote\.origin\.(url|fetch)|branch\.[^\n]+\.(remote|merge)|extensions\.objectformat)$"
)
_SHA_RE = re.compile(r"^[0-9a-fA-F]{4,40}$")
CONFLICTS_FILE = "mo-conflicts"  # under .git: the files a merge left conflicted, until it is committed
_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,120}$")
_PUSH_RACED = ("non-fast-forward", "fetch first", "[rejected]", "stale info", "cannot lock ref", "failed to update ref")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class WorkspaceError(Exception):
    """A workspace operation was refused or failed; the message is user-facing."""


class Workspace:
    """A git repository rooted at ``root`` that only touches files inside it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._config_seen: tuple[int, ...] | None = None  # stat of the .git/config last found clean

    # ------------------------------------------------------------------ setup
    def init(self) -> None:
        """Create the repository with an initial commit; safe to call repeatedly."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / ".git").is_dir():
            self._git("init", "-q", "-b", "main", str(self.root), bare_env=True)
        self._git("config", "user.name", GIT_USER_NAME)
        self._git("config", "user.email", GIT_USER_EMAIL)
        self._write_excludes()
        if not self._has_head():
            readme = self.root / "README.md"
            if not readme.exists():
                readme.write_text("# Workspace\n", encoding="utf-8")
            self._git("add", "-A")
            self._git("commit", "-q", "--no-verify", "-m", "Initialise workspace")

    def _write_excludes(self) -> None:
        """Keep orchestrator files and caches out of commits without a .gitignore."""
        exclude = self.root / ".git" / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        existing = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
        lines = existing.splitlines()
        missing = [p for p in EXCLUDE_PATTERNS if p not in lines]
        if missing:
            prefix = "" if not existing or existing.endswith("\n") else "\n"
            exclude.write_text(existing + prefix + "\n".join(missing) + "\n", encoding="utf-8")

    def _has_head(self) -> bool:
        try:
            self._git("rev-parse", "--verify", "-q", "HEAD")
        except WorkspaceError:
            return False
        return True

    # ------------------------------------------------------------------ paths
    def resolve(self, path: str) -> Path:
        """Map a workspace-relative path to a real path inside the root, or refuse."""
        parts = _checked_parts(path)
        root_real = self.root.resolve()
        real = root_real.joinpath(*parts).resolve()
        if real != root_real and root_real not in real.parents:
            raise WorkspaceError(f"Refused path {path!r}: it resolves outside the workspace.")
        if ".git" in {p.casefold() for p in real.relative_to(root_real).parts}:
            raise WorkspaceError(f"Refused path {path!r}: the .git directory is off limits.")
        return real

    def _open_parent(self, path: str, *, create: bool) -> tuple[int, str]:
        """(fd of the parent directory, last name) reached one component at a time with O_NOFOLLOW.

        Sandboxed code owns the tree, so any directory on the way may be swapped for a symlink to a
        host path after a check by path; walking by directory fd refuses a symlink at every step.
        """
        parts = _checked_parts(path)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.root.resolve(), flags)
        try:
            for part in parts[:-1]:
                try:
                    child = os.open(part, flags, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise WorkspaceError(f"File not found in the workspace: {path!r}.") from None
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    child = self._open_component(part, fd, flags, path)
                except OSError as exc:
                    raise _component_error(path, exc) from exc
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1]

    @staticmethod
    def _open_component(part: str, dir_fd: int, flags: int, path: str) -> int:
        try:
            return os.open(part, flags, dir_fd=dir_fd)
        except OSError as exc:
            raise _component_error(path, exc) from exc

    # ------------------------------------------------------------------ files
    def list_files(self, subdir: str = ".") -> list[str]:
        """Sorted relative file paths (at most LIST_LIMIT), skipping git and caches."""
        base = self.resolve(subdir)
        if not base.is_dir():
            raise WorkspaceError(f"Not a directory in the workspace: {subdir!r}.")
        root_real = self.root.resolve()
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            rel_dir = Path(dirpath).relative_to(root_real)
            found.extend((rel_dir / name).as_posix() for name in filenames)
            found.extend((rel_dir / d).as_posix() for d in dirnames if (Path(dirpath) / d).is_symlink())
        return sorted(found)[:LIST_LIMIT]

    def read_file(self, path: str, max_bytes: int = 200_000) -> str:
        """Return a file's text; refuse missing, non-regular or oversized files and any symlink on the way."""
        return self._read_bytes(path, max_bytes).decode("utf-8", errors="replace")

    def _read_bytes(self, path: str, max_bytes: int) -> bytes:
        """A regular file's bytes, reached without following any symlink (see read_file)."""
        self.resolve(path)  # a clear reason for links that lead outside; the walk below is what holds
        dir_fd, name = self._open_parent(path, create=False)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            raise WorkspaceError(f"File not found in the workspace: {path!r}.") from None
        except OSError as exc:
            raise _component_error(path, exc) from exc
        finally:
            os.close(dir_fd)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise WorkspaceError(f"Not a regular file: {path!r}.")
            if info.st_size > max_bytes:
                raise WorkspaceError(
                    f"File {path!r} is {info.st_size} bytes, larger than the {max_bytes}-byte read limit."
                )
            data = handle.read(max_bytes + 1)
        return data[:max_bytes]

    def write_file(self, path: str, content: str, max_bytes: int = 200_000) -> int:
        """Write UTF-8 text, creating parent folders; returns the byte count."""
        data = content.encode("utf-8")
        if len(data) > max_bytes:
            raise WorkspaceError(f"Refused to write {path!r}: {len(data)} bytes exceeds the {max_bytes}-byte limit.")
        self.resolve(path)
        dir_fd, name = self._open_parent(path, create=True)
        try:
            # O_NONBLOCK: a FIFO planted here fails at once (no reader) instead of hanging the worker.
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
        except IsADirectoryError:
            raise WorkspaceError(f"Refused to write {path!r}: it is a directory.") from None
        except OSError as exc:
            raise _component_error(path, exc) from exc
        finally:
            os.close(dir_fd)
        with os.fdopen(fd, "wb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise WorkspaceError(f"Refused to write {path!r}: it is not a regular file.")
            handle.truncate(0)
            handle.write(data)
        return len(data)

    def read_lines(self, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
        """Lines ``start_line``..``end_line`` (1-based, inclusive), numbered, under a header with the line count.

        A missing bound means the first or the last line; a range outside the file is refused with its size.
        """
        lines = self._read_bytes(path, LARGE_FILE_BYTES).decode("utf-8", errors="replace").splitlines()
        total = len(lines)
        start = 1 if start_line is None else start_line
        end = total if end_line is None else end_line
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (start, end)):
            raise WorkspaceError("start_line and end_line must be whole numbers.")
        if total == 0:
            raise WorkspaceError(f"{path!r} is empty: it has no lines to show.")
        if not 1 <= start <= total or not 1 <= end <= total:
            raise WorkspaceError(f"Lines {start}-{end} are out of range: {path!r} has {total} lines (1-{total}).")
        if end < start:
            raise WorkspaceError(f"end_line {end} is before start_line {start}.")
        width = len(str(end))
        numbered, size = [], 0
        for n in range(start, end + 1):
            row = f"{n:>{width}}\t{lines[n - 1]}"
            if size + len(row) > RANGE_MAX_CHARS and numbered:
                numbered.append(f"[cut after line {n - 1}: ask for lines {n}-{end} next]")
                end = n - 1
                break
            numbered.append(row)
            size += len(row) + 1
        return f"{path}: lines {start}-{end} of {total}\n" + "\n".join(numbered)

    def edit_file(self, path: str, old: str, new: str, max_bytes: int = LARGE_FILE_BYTES) -> int:
        """Replace the one occurrence of ``old`` with ``new``, leaving every other byte as it was; returns the size.

        ``old`` must occur exactly once: a missing one says which line looks closest, several say where
        they are, so the model can add context and try again.
        """
        if not isinstance(old, str) or not old:
            raise WorkspaceError(
                f"Refused to edit {path!r}: old is empty. Give the exact text to replace (write_file creates files)."
            )
        if not isinstance(new, str):
            raise WorkspaceError(f"Refused to edit {path!r}: new must be text.")
        try:
            text = self._read_bytes(path, max_bytes).decode("utf-8")
        except UnicodeDecodeError:
            raise WorkspaceError(f"Refused to edit {path!r}: it is not UTF-8 text.") from None
        starts = _occurrences(text, old)
        if not starts:
            raise WorkspaceError(f"The text to replace (old) was not found in {path!r}.{_closest_line(text, old)}")
        if len(starts) > 1:
            lines = ", ".join(str(text.count("\n", 0, i) + 1) for i in starts[:MAX_LISTED])
            raise WorkspaceError(
                f"The text to replace (old) occurs {len(starts)} times in {path!r} (at lines {lines}): "
                "include more of the surrounding lines so that it matches exactly once."
            )
        at = starts[0]
        return self.write_file(path, text[:at] + new + text[at + len(old) :], max_bytes)

    def search_code(self, pattern: str, path_glob: str = "**/*") -> str:
        """``path:line: text`` for lines matching a Python regex in the tree's text files, bounded (codesearch)."""
        codesearch.compile_pattern(pattern)  # a bad pattern is refused before any file is read
        wanted = codesearch.glob_regex(path_glob)
        files: list[tuple[str, str]] = []
        scanned, skipped, cut = 0, 0, False
        root = self.root.resolve()
        for rel, size in _regular_files(root):
            if not wanted.match(rel):
                continue
            if size > codesearch.MAX_FILE_BYTES:
                skipped += 1
                continue
            if scanned + size > codesearch.SCAN_LIMIT_BYTES:
                cut = True
                break
            try:
                data = self._read_bytes(rel, codesearch.MAX_FILE_BYTES)
            except WorkspaceError:
                continue  # swapped for a link or removed since the walk: not searched
            if codesearch.is_binary(data):
                continue
            scanned += len(data)
            files.append((rel, data.decode("utf-8", errors="replace")))
        notes = []
        if cut:
            notes.append(f"[searched only the first {len(files)} files ({scanned} bytes); narrow path_glob]")
        if skipped:
            notes.append(f"[skipped {skipped} file(s) over {codesearch.MAX_FILE_BYTES} bytes]")
        matches, more = codesearch.match_lines(pattern, files)
        return codesearch.format_matches(pattern, path_glob, matches, more=more, notes=notes)

    # ------------------------------------------------------------------- git
    def commit(self, message: str) -> str | None:
        """Stage everything and commit; None when the tree is unchanged.

        Refuses device files, FIFOs and sockets and symlinks that point outside the repository,
        and strips setuid/setgid bits first (git would not record them, but the file stays on disk).
        """
        self._check_tree()
        self._check_merge_resolved()
        self._git("add", "-A")
        if not self._git("status", "--porcelain", "--untracked-files=no").strip() and not self._merging():
            return None
        self._git("commit", "-q", "--no-verify", "-m", sanitize_message(message))
        (self.root / ".git" / CONFLICTS_FILE).unlink(missing_ok=True)
        return self.head()

    def _merging(self) -> bool:
        return (self.root / ".git" / "MERGE_HEAD").is_file()

    def _check_merge_resolved(self) -> None:
        """A merge in progress is committed only once no conflicted file still holds conflict markers."""
        if not self._merging():
            return
        marked = []
        try:
            conflicted = (self.root / ".git" / CONFLICTS_FILE).read_text().splitlines()
        except OSError:
            conflicted = []
        for line in sorted(set(conflicted) | set(self._git("diff", "--name-only", "--diff-filter=U").split())):
            try:
                text = self.read_file(line)
            except WorkspaceError:
                continue  # deleted or unreadable: git add decides
            # Not "=======" alone: that is also a heading underline in reST and Markdown.
            if any(row.startswith(("<<<<<<< ", ">>>>>>> ")) for row in text.splitlines()):
                marked.append(line)
        if marked:
            raise WorkspaceError(
                f"Conflict markers (<<<<<<<, =======, >>>>>>>) remain in {', '.join(marked[:10])}: "
                "edit those files to keep what both sides need, then commit."
            )

    def worktree_id(self) -> str:
        """The git tree id of the working tree as it is now (uncommitted changes included).

        Stages everything, which commit() would do anyway; two equal ids mean the same files, so a test
        run can be matched to the commit it proved.
        """
        self._git("add", "-A")
        return self._git("write-tree").strip()

    def head_tree(self) -> str:
        """The git tree id of the current commit."""
        return self._git("rev-parse", "--verify", "HEAD^{tree}").strip()

    def _check_tree(self) -> None:
        """Refuse what must not be committed, naming it; strip setuid/setgid bits."""
        root = self.root.resolve()
        refused: list[str] = []
        for path, info in _walk_worktree(root):
            rel = path.relative_to(root).as_posix()
            mode = info.st_mode
            if stat.S_ISLNK(mode):
                if problem := _link_problem(root, path):
                    refused.append(f"{rel} is a symlink pointing {problem} ({os.readlink(path)})")
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device file"
                refused.append(f"{rel} is {kind}")
            elif mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_ISUID | stat.S_ISGID))
        if refused:
            more = f" (and {len(refused) - MAX_LISTED} more)" if len(refused) > MAX_LISTED else ""
            listed = "; ".join(refused[:MAX_LISTED])
            raise WorkspaceError(f"Refused to commit: {listed}{more}. Remove or replace them, then commit again.")

    def test_config_changes(self, since: str) -> list[str]:
        """Files changed between ``since`` and HEAD that can change how pytest runs or reports tests."""
        out = self._git("diff", "--name-only", "--no-renames", "-z", _checked_sha(since), "HEAD", "--")
        changed = sorted(name for name in out.split("\0") if name)
        return [path for path in changed if _alters_tests(path, (self._blob(since, path), self._blob("HEAD", path)))]

    def _blob(self, rev: str, path: str) -> str:
        """A file's text at a revision ('' when absent or too large to scan)."""
        try:
            data = self._git_bytes("cat-file", "blob", f"{rev}:{path}")
        except WorkspaceError:
            return ""
        return data[:SCAN_LIMIT_BYTES].decode("utf-8", errors="replace")

    def head(self) -> str:
        """Full sha of the current commit."""
        return self._git("rev-parse", "--verify", "HEAD").strip()

    def diff(self, sha: str) -> str:
        """The patch introduced by one commit, capped at DIFF_LIMIT_BYTES."""
        out = self._git_bytes(
            "show",
            "--format=",
            "--patch",
            "--no-ext-diff",
            "--no-textconv",
            _checked_sha(sha),
            "--",
        )
        return _capped_patch(out)

    def diff_range(self, base: str, head: str) -> str:
        """The patch from commit ``base`` to commit ``head`` (several commits as one change), capped likewise."""
        out = self._git_bytes(
            "diff",
            "--patch",
            "--no-ext-diff",
            "--no-textconv",
            "--no-color",
            _checked_sha(base),
            _checked_sha(head),
            "--",
        )
        return _capped_patch(out)

    def changed_files(self, sha: str) -> list[str]:
        """Paths touched by one commit."""
        out = self._git(
            "show",
            "--format=",
            "--name-only",
            "--no-renames",
            "-z",
            _checked_sha(sha),
            "--",
        )
        return sorted({name for name in out.split("\0") if name.strip()})

    # ------------------------------------------------------------ shared branches
    @classmethod
    def clone_branch(cls, *, url: str, branch: str, dest: Path) -> Workspace:
        """A private clone of one branch of the repository at ``url`` (a path or git URL) in ``dest``."""
        if not _REF_RE.match(branch):
            raise WorkspaceError(f"Not a safe branch name: {branch!r}.")
        if dest.exists():
            raise WorkspaceError(f"{dest} already exists.")
        dest.parent.mkdir(parents=True, exist_ok=True)
        Workspace(dest.parent)._git(
            "clone", "-q", "--no-hardlinks", "--single-branch", "--branch", branch, "--", url, str(dest), bare_env=True
        )
        clone = cls(dest)
        clone.init()  # identity and excludes; the clone already has its history
        return clone

    def fetch_branch(self, branch: str, *, remote: str = "origin") -> str:
        """Fetch ``branch`` from ``remote`` (a remote name, path or URL); returns the commit it points to."""
        if not _REF_RE.match(branch):
            raise WorkspaceError(f"Not a safe branch name: {branch!r}.")
        self._git("fetch", "-q", "--", remote, f"refs/heads/{branch}")
        return self._git("rev-parse", "--verify", "FETCH_HEAD^{commit}").strip()

    def merge_onto(self, target: str, work: str, message: str) -> str:
        """Check out ``target`` (detached) and merge ``work`` into it; a conflict is undone and reported."""
        self.checkout_detached(target)
        try:
            self._git("merge", "-q", "--no-ff", "--no-edit", "-m", sanitize_message(message), _checked_sha(work))
        except WorkspaceError as error:
            conflicted = self._git("diff", "--name-only", "--diff-filter=U").split()
            self._git("merge", "--abort")
            files = f" in {', '.join(conflicted)}" if conflicted else ""
            raise WorkspaceError(f"The step's work conflicts with work merged meanwhile{files}.") from error
        return self.head()

    def checkout_detached(self, sha: str) -> None:
        """Check out commit ``sha`` (detached), dropping uncommitted changes."""
        self._git("checkout", "-q", "--force", "--detach", _checked_sha(sha))

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is in the history of ``descendant`` (both present in this repository)."""
        try:
            self._git("merge-base", "--is-ancestor", _checked_sha(ancestor), _checked_sha(descendant))
        except WorkspaceError:
            return False
        return True

    def merge_in(self, sha: str, message: str, *, keep_conflicts: bool = False) -> list[str]:
        """Merge commit ``sha`` into HEAD and commit; returns the conflicted files ([] when it merged).

        On a conflict the merge is undone, or, with ``keep_conflicts``, left in progress with the markers
        in the files: the next commit() then records the merge once they are resolved.
        """
        try:
            self._git("merge", "-q", "--no-ff", "--no-edit", "-m", sanitize_message(message), _checked_sha(sha))
        except WorkspaceError:
            conflicted = sorted(set(self._git("diff", "--name-only", "--diff-filter=U").split()))
            if not conflicted:
                raise
            if keep_conflicts:  # remembered: staging (worktree_id, commit) clears git's own unmerged marks
                (self.root / ".git" / CONFLICTS_FILE).write_text("\n".join(conflicted))
            else:
                self._git("merge", "--abort")
            return conflicted
        return []

    def push_head(self, branch: str, *, remote: str = "origin") -> bool:
        """Push HEAD to ``branch`` on ``remote``; False when the branch moved meanwhile (never forced)."""
        if not _REF_RE.match(branch):
            raise WorkspaceError(f"Not a safe branch name: {branch!r}.")
        try:
            self._git("push", "-q", "--", remote, f"HEAD:refs/heads/{branch}")
        except WorkspaceError as error:
            # A branch that moved, or one another step's push is updating right now ("cannot lock ref"): the
            # caller fetches, merges and tries again instead of failing the step and paying for it twice.
            if any(sign in str(error) for sign in _PUSH_RACED):
                return False
            raise
        return True

    # ------------------------------------------------------------ parallel work
    def clone_to(self, dest: Path) -> Workspace:
        """A private copy for one step, so parallel steps never see each other's half-written files."""
        if dest.exists():
            raise WorkspaceError(f"{dest} already exists.")
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._git("clone", "-q", "--no-hardlinks", str(self.root), str(dest), bare_env=True)
        clone = Workspace(dest)
        clone.init()  # identity, excludes; the clone already has its history
        return clone

    def merge_from(self, other: Workspace, message: str) -> str:
        """Merge ``other``'s HEAD into this repository; a conflict is undone and reported."""
        self._git("fetch", "-q", str(other.root), "HEAD")
        try:
            self._git("merge", "-q", "--no-ff", "--no-edit", "-m", sanitize_message(message), "FETCH_HEAD")
        except WorkspaceError as error:
            conflicted = self._git("diff", "--name-only", "--diff-filter=U").split()
            self._git("merge", "--abort")
            files = f" in {', '.join(conflicted)}" if conflicted else ""
            raise WorkspaceError(f"The step's work conflicts with work merged meanwhile{files}.") from error
        return self.head()

    # ------------------------------------------------------------- delivery
    def publish(self, *, remote: str, sha: str, branch: str, tag: str) -> None:
        """Push one commit to ``remote`` as ``branch`` and an annotated ``tag``.

        A local path that does not exist yet becomes a bare repository, so the
        default "production" remote needs no set-up. Pushing the same commit
        again is a no-op, which keeps a retried deploy harmless.
        """
        sha = _checked_sha(sha)
        for name in (branch, tag):
            if not _REF_RE.match(name):
                raise WorkspaceError(f"Not a safe ref name: {name!r}.")
        if "://" not in remote and not remote.startswith("git@"):
            target = Path(remote)
            if not (target / "HEAD").exists():
                target.mkdir(parents=True, exist_ok=True)
                self._git("init", "-q", "--bare", str(target), bare_env=True)
        self._git("tag", "-f", "-a", "-m", f"Deployed by Mission Orchestrator: {tag}", tag, sha)
        self._git("push", "--quiet", remote, f"{sha}:refs/heads/{branch}", f"+refs/tags/{tag}:refs/tags/{tag}")

    def push_commit(self, *, remote: str, sha: str, branch: str) -> None:
        """Push one commit to ``branch`` on ``remote``; refused unless it fast-forwards (never forced)."""
        if not _REF_RE.match(branch):
            raise WorkspaceError(f"Not a safe branch name: {branch!r}.")
        self._git("push", "--quiet", "--", remote, f"{_checked_sha(sha)}:refs/heads/{branch}")

    def archive(self, *, sha: str, dest: Path) -> Path:
        """Write a zip of the tree at ``sha`` (what was deployed) to ``dest``."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        data = self._git_bytes("archive", "--format=zip", _checked_sha(sha))
        tmp = dest.with_suffix(".partial")
        tmp.write_bytes(data)
        tmp.replace(dest)
        return dest

    def remote_has(self, *, remote: str, ref: str) -> str:
        """The sha ``ref`` points to on ``remote`` ('' when absent)."""
        out = self._git("ls-remote", remote, ref)
        return out.split()[0] if out.strip() else ""

    # --------------------------------------------------------------- plumbing
    def _git(self, *args: str, bare_env: bool = False) -> str:
        return self._git_bytes(*args, bare_env=bare_env).decode("utf-8", errors="replace")

    def _git_bytes(self, *args: str, bare_env: bool = False) -> bytes:
        """Run git safely; ``bare_env`` skips GIT_DIR so ``git init`` can create it."""
        if not bare_env and not (self.root / ".git").is_dir():
            raise WorkspaceError(f"Workspace {self.root} is not initialised (call init()).")
        if not bare_env:
            self._check_config()
        argv = ["git"]
        for item in SAFE_GIT_CONFIG:
            argv += ["-c", item]
        argv += list(args)
        try:
            # Its own process group: a timeout also stops the ssh or https helper git started.
            proc = subprocess.Popen(
                argv,
                cwd=self.root,
                env=_git_env(self.root, bare_env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise WorkspaceError(f"Could not run git: {exc}.") from exc
        try:
            out, err = proc.communicate(timeout=GIT_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise WorkspaceError(f"git {args[0]} timed out after {GIT_TIMEOUT_S}s (GIT_TIMEOUT_S).") from exc
        if proc.returncode != 0:
            text = (err or out).decode("utf-8", errors="replace").strip()
            raise WorkspaceError(f"git {args[0]} failed: {text or f'exit {proc.returncode}'}")
        return out

    def _check_config(self) -> None:
        """Refuse to run git on a repository whose .git/config holds keys the product never writes."""
        config = self.root / ".git" / "config"
        try:
            info = os.lstat(config)
        except FileNotFoundError:
            return
        seen = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_mode)
        if seen == self._config_seen:
            return
        if not stat.S_ISREG(info.st_mode):
            raise WorkspaceError(f"Refused to run git: {config} is not a regular file.")
        # --file without --includes reads just this file and runs nothing from it.
        argv = ["git", "config", "--file", str(config), "--no-includes", "--null", "--list"]
        proc = subprocess.run(
            argv, env=_git_env(self.root, True), capture_output=True, timeout=GIT_TIMEOUT_S, check=False
        )
        if proc.returncode != 0:
            raise WorkspaceError(
                f"Refused to run git: {config} cannot be read ({proc.stderr.decode(errors='replace')})."
            )
        keys = [item.split("\n", 1)[0] for item in proc.stdout.decode("utf-8", errors="replace").split("\0") if item]
        unexpected = sorted({key for key in keys if not _ALLOWED_CONFIG.match(key.lower())})
        if unexpected:
            raise WorkspaceError(
                f"Refused to run git: the repository config has settings the product never writes "
                f"({', '.join(unexpected[:MAX_LISTED])}); they could make git run commands. Remove them."
            )
        self._config_seen = seen


def _walk_worktree(root: Path):
    """Every entry below root except .git, never following symlinks."""
    stack = [root]
    while stack:
        current = stack.pop()
        for entry in os.scandir(current):
            if current == root and entry.name == ".git":
                continue
            info = entry.stat(follow_symlinks=False)
            yield Path(entry.path), info
            if stat.S_ISDIR(info.st_mode):
                stack.append(Path(entry.path))


def _regular_files(root: Path):
    """(relative path, size) of every regular file below root, sorted, skipping git and caches; no links."""
    found = []
    stack = [root]
    while stack:
        current = stack.pop()
        for entry in os.scandir(current):
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode) and entry.name not in SKIP_DIRS:
                stack.append(Path(entry.path))
            elif stat.S_ISREG(info.st_mode):
                found.append((Path(entry.path).relative_to(root).as_posix(), info.st_size))
    return sorted(found)


def _occurrences(text: str, old: str) -> list[int]:
    """Start offsets of ``old`` in ``text``, overlapping ones included (each would be a different edit)."""
    starts, at = [], text.find(old)
    while at != -1:
        starts.append(at)
        at = text.find(old, at + 1)
    return starts


def _closest_line(text: str, old: str) -> str:
    """A hint naming the line most like the first line of ``old`` ('' when none is close)."""
    first = next((line.strip() for line in old.splitlines() if line.strip()), "")[:200]
    if not first:
        return ""
    lines = [line.strip() for line in text.splitlines()]
    if first in lines:
        number = lines.index(first) + 1
        return f" Its first line matches line {number}; the lines after it differ (check indentation and spacing)."
    close = difflib.get_close_matches(first, lines, n=1, cutoff=0.6)
    if not close:
        return " No line looks like its first line: read the file again before editing."
    number = lines.index(close[0]) + 1
    return f" The closest line is {number}: {close[0][:200]!r}. Read the file again and copy the text exactly."


def _link_problem(root: Path, link: Path) -> str:
    """Why a symlink must not be committed ('' when it resolves inside the repository, outside .git).

    Resolved for real from where it lies, through any other links on the way (``up -> sub/d/..`` with
    ``sub/d -> ..`` leaves the repository although it reads as if it stayed inside); a dangling link is
    judged by where it would point.
    """
    real = Path(os.path.realpath(link))
    if real != root and root not in real.parents:
        return "outside the repository"
    if real.relative_to(root).parts[:1] and real.relative_to(root).parts[0].casefold() == ".git":
        return "into .git"
    return ""


def _component_error(path: str, exc: OSError) -> WorkspaceError:
    """A user-facing reason for a refused open on the way to ``path``."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return WorkspaceError(f"Refused path {path!r}: it goes through a symlink or a non-directory.")
    return WorkspaceError(f"Could not open {path!r}: {exc.strerror}.")


def _alters_tests(path: str, texts: tuple[str, ...]) -> bool:
    """Whether a changed file (its text before and after) can alter how pytest runs."""
    parts = PurePosixPath(path).parts
    name = parts[-1]
    if name in TEST_CONFIG_NAMES or name.endswith(".pth") or parts[0] in TEST_CONFIG_DIRS:
        return True
    if name in TEST_CONFIG_SECTIONS:
        return any(marker in text for marker in TEST_CONFIG_SECTIONS[name] for text in texts)
    if name.endswith(".py"):
        return any(TEST_CONFIG_CODE.search(text) for text in texts)
    return False


def _checked_parts(path: str) -> tuple[str, ...]:
    """Reject malformed or escaping paths before the filesystem is consulted."""
    if not isinstance(path, str) or not path.strip():
        raise WorkspaceError("Refused path: it is empty.")
    if "\0" in path:
        raise WorkspaceError("Refused path: it contains a NUL byte.")
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        raise WorkspaceError(f"Refused path {path!r}: use a path relative to the workspace.")
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if ".." in parts:
        raise WorkspaceError(f"Refused path {path!r}: '..' is not allowed.")
    if ".git" in {p.casefold() for p in parts}:
        raise WorkspaceError(f"Refused path {path!r}: the .git directory is off limits.")
    return parts


def _capped_patch(out: bytes) -> str:
    if len(out) <= DIFF_LIMIT_BYTES:
        return out.decode("utf-8", errors="replace")
    head = out[:DIFF_LIMIT_BYTES].decode("utf-8", errors="replace")
    return f"{head}\n[diff truncated: showing {DIFF_LIMIT_BYTES} of {len(out)} bytes]\n"


def _checked_sha(sha: str) -> str:
    """Only hex object names, so a value can never be taken as a git option."""
    if not isinstance(sha, str) or not _SHA_RE.match(sha):
        raise WorkspaceError(f"Not a commit sha: {sha!r}.")
    return sha


def sanitize_message(message: str) -> str:
    """Non-empty subject of at most MAX_SUBJECT_CHARS, control characters removed."""
    lines = _CONTROL_RE.sub("", str(message or "")).strip().splitlines()
    subject = lines[0].strip() if lines else ""
    subject = subject[:MAX_SUBJECT_CHARS] or DEFAULT_MESSAGE
    body = "\n".join(lines[1:]).strip()
    text = f"{subject}\n\n{body}" if body else subject
    return text[:MAX_MESSAGE_CHARS]


def safe_git_env() -> dict[str, str]:
    """The environment every git call runs in: no user or system config, no prompts, no command transports."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": tempfile.gettempdir(),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",  # never ext:: or other command-running transports
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",  # a key or nothing: never a password prompt on a worker
    }


def _git_env(root: Path, bare_env: bool) -> dict[str, str]:
    """safe_git_env, bound to this workspace's repository unless ``bare_env`` (no parent repository found)."""
    env = safe_git_env()
    if not bare_env:
        env["GIT_DIR"] = str(root / ".git")
        env["GIT_WORK_TREE"] = str(root)
    return env
