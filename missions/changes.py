"""A mission's work as a reviewable change: the files it touched with +/- counts and per-file patches, and
its commits, between the base commit and the branch head. Bounded, so it fits a gate's JSON and a page.

Everything here runs read-only git in a private clone (see missions/repository.py: mission_checkout).
The patches are text written by a model: templates render them through missions/templatetags/diffs.py,
which escapes them.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager

from agents.runtime.workspace import Workspace, WorkspaceError
from missions.models import Mission
from missions.repository import mission_checkout, mission_head

MAX_FILES = 300
MAX_FILE_PATCH_BYTES = 40_000
MAX_TOTAL_PATCH_BYTES = 400_000
MAX_BLOB_BYTES = 2_000_000  # a side larger than this is not diffed at all: its patch could not be shown anyway
MAX_COMMITS = 50
_STATUS = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed", "C": "added", "T": "modified"}
_DIFF_OPTS = ("--no-ext-diff", "--no-textconv", "--no-color", "-M")
_LOG_FORMAT = "%H%x00%an%x00%aI%x00%s%x00"
_HUNK = re.compile(r"^@@ -(?P<old>\d+)(?:,(?P<old_count>\d+))? \+(?P<new>\d+)(?:,(?P<new_count>\d+))? @@")


class ChangeError(Exception):
    """The change cannot be computed or served; the message is user-facing."""


class NoBranchError(ChangeError):
    """The mission branch does not exist (yet) in the git store."""


class NoChangeError(ChangeError):
    """The mission branch is still at its base commit."""


def change_summary(workspace: Workspace, base: str, head: str) -> dict:
    """The change from ``base`` to ``head`` (both commits in ``workspace``), JSON-serialisable and bounded.

    1. ``--numstat -z -M``: every changed path with its counts; ``-`` counts mean git saw a binary file.
    2. ``ls-tree -l`` on both sides: blob sizes, so a huge file is never diffed into memory.
    3. One ``git diff`` per shown file, capped per file and in total; past a cap, ``truncated`` says so.
    4. ``git log base..head``: the commits, newest first, capped.
    """
    base, head = _commit(workspace, base), _commit(workspace, head)
    entries = _numstat(workspace, base, head)
    shown = entries[:MAX_FILES]
    before = _sizes(workspace, base, [e["old_path"] for e in shown])
    after = _sizes(workspace, head, [e["path"] for e in shown])
    files, budget = [], MAX_TOTAL_PATCH_BYTES
    for entry in shown:
        entry["truncated"], entry["patch"] = False, ""
        too_big = max(before.get(entry["old_path"], 0), after.get(entry["path"], 0)) > MAX_BLOB_BYTES
        if entry["binary"] and not too_big:
            _recheck_binary(workspace, base, head, entry, before, after)
        if entry["binary"]:
            pass
        elif too_big or budget <= 0:
            entry["truncated"] = True
        else:
            patch = _file_patch(workspace, base, head, entry)
            if len(patch) > MAX_FILE_PATCH_BYTES:
                patch, entry["truncated"] = _cut(patch, MAX_FILE_PATCH_BYTES), True
            if len(patch) > budget:  # the total is spent: this and every later patch are left out
                patch, entry["truncated"], budget = b"", True, 0
            if b"\0" in patch:  # binary content that an attribute made git show as text
                patch, entry["binary"] = b"", True
            entry["patch"] = patch.decode("utf-8", errors="replace").replace("\0", "\ufffd")
            budget -= len(patch)
        files.append(entry)
    commits, more_commits = _commits(workspace, base, head)
    return {
        "base": base,
        "head": head,
        "files": files,
        "files_total": len(entries),
        "files_omitted": len(entries) - len(shown),
        "added": sum(e["added"] for e in entries),
        "removed": sum(e["removed"] for e in entries),
        "commits": commits,
        "commits_truncated": more_commits,
        "truncated": len(entries) > len(shown) or any(f["truncated"] for f in files),
    }


def mission_base(mission: Mission, workspace: Workspace) -> str:
    """The commit the mission's change is measured from: the project's base commit, else the branch's root
    (the "# Workspace" README commit every mission without a project starts from)."""
    if mission.base_sha:
        return mission.base_sha
    roots = workspace._git("rev-list", "--max-parents=0", "HEAD").split()
    if not roots:
        raise ChangeError("The mission branch has no root commit.")
    return roots[-1]  # rev-list lists newest first; the oldest root is where the branch began


def mission_change(mission: Mission, head: str = "") -> dict:
    """The summary of the mission branch up to ``head`` (default: its tip in the git store), or
    {"error": ...} when it cannot be computed (the deploy gate opens anyway and says why)."""
    try:
        with mission_checkout(mission, "change") as workspace:
            return change_summary(workspace, mission_base(mission, workspace), head or workspace.head())
    except (WorkspaceError, ChangeError) as error:
        return {"error": f"The change could not be computed: {error}"}


def mission_patch(mission: Mission) -> bytes:
    """``git format-patch --stdout base..head`` of the mission branch, read from the git store; it applies
    with ``git am`` onto the base commit. format-patch leaves merge commits out, so a history with merges
    (parallel steps, a merged default branch) becomes one commit of the whole change, which always applies."""
    with _change_checkout(mission) as (workspace, base, head):
        if workspace._git("rev-list", "--merges", f"{base}..{head}").strip():
            message = f"{mission.title}\n\nThe whole change of mission {mission.code}, from {base[:10]} to {head[:10]}."
            head = workspace._git("commit-tree", f"{head}^{{tree}}", "-p", base, "-m", message).strip()
            return workspace._git_bytes("format-patch", "--stdout", "--no-color", "--no-ext-diff", "-1", head)
        return workspace._git_bytes("format-patch", "--stdout", "--no-color", "--no-ext-diff", f"{base}..{head}")


def mission_archive(mission: Mission, sha: str = "") -> bytes:
    """A zip of the mission branch's tree at ``sha`` (default: its head), read from the git store."""
    with _change_checkout(mission) as (workspace, _base, head):
        return workspace._git_bytes("archive", "--format=zip", _commit(workspace, sha) if sha else head)


@contextmanager
def _change_checkout(mission: Mission) -> Iterator[tuple[Workspace, str, str]]:
    """A private clone of the mission branch with its base and head, refused when there is nothing to serve."""
    try:
        exists = bool(mission_head(mission))
    except WorkspaceError:
        exists = False  # the store has no repository for it yet
    if not exists:
        raise NoBranchError("This mission has no branch yet: its work starts once the plan is approved.")
    try:
        with mission_checkout(mission, "download") as workspace:
            base, head = _commit(workspace, mission_base(mission, workspace)), workspace.head()
            if base == head:
                raise NoChangeError("The mission has no change yet: its branch is still at the base commit.")
            yield workspace, base, head
    except WorkspaceError as error:
        raise ChangeError(f"The change could not be read from the git store: {error}") from error


# ---------------------------------------------------------------------------------------------- git reads
def _commit(workspace: Workspace, rev: str) -> str:
    """The full sha of ``rev``; never read as an option, whatever it holds."""
    if not isinstance(rev, str) or not rev or rev.startswith("-"):
        raise ChangeError(f"Not a commit: {rev!r}.")
    try:
        return workspace._git("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}").strip()
    except WorkspaceError:
        raise ChangeError(f"Not a commit in this repository: {rev!r}.") from None


def _numstat(workspace: Workspace, base: str, head: str) -> list[dict]:
    """Changed files in git's order. With -z a rename is "a\\tr\\t\\0old\\0new\\0", others "a\\tr\\tpath\\0"."""
    counts = workspace._git("diff", *_DIFF_OPTS, "--numstat", "-z", base, head, "--").split("\0")
    names = workspace._git("diff", *_DIFF_OPTS, "--name-status", "-z", base, head, "--").split("\0")
    statuses, i = {}, 0
    while i < len(names) and names[i]:
        code = names[i][0]
        if code in "RC":
            statuses[names[i + 2]] = (code, names[i + 1])
            i += 3
        else:
            statuses[names[i + 1]] = (code, names[i + 1])
            i += 2
    entries, i = [], 0
    while i < len(counts) and counts[i]:
        added, removed, path = counts[i].split("\t", 2)
        old = path
        if not path:  # a rename or copy: the two paths follow
            old, path = counts[i + 1], counts[i + 2]
            i += 3
        else:
            i += 1
        code, old_path = statuses.get(path, ("M", old))
        binary = added == "-"
        entries.append(
            {
                "path": path,
                "old_path": old_path if code == "R" else path,
                "status": _STATUS.get(code, "modified"),
                "added": 0 if binary else int(added),
                "removed": 0 if binary else int(removed),
                "binary": binary,
            }
        )
    return entries


def _sizes(workspace: Workspace, rev: str, paths: list[str]) -> dict[str, int]:
    """Blob sizes at ``rev`` of those of ``paths`` that exist there."""
    if not paths:
        return {}
    out = workspace._git("ls-tree", "-r", "-l", "-z", "--full-tree", rev, "--", *[f":(literal){p}" for p in paths])
    sizes = {}
    for row in filter(None, out.split("\0")):
        meta, _, path = row.partition("\t")
        size = meta.split()[-1]
        sizes[path] = int(size) if size.isdigit() else 0
    return sizes


def _recheck_binary(workspace: Workspace, base: str, head: str, entry: dict, before: dict, after: dict) -> None:
    """Trust git's "binary" only when a side really has a NUL byte (git's own test): a ``.gitattributes``
    line such as ``*.py -diff`` in the mission's tree must not hide a source file from the reviewer."""
    sides = [(base, entry["old_path"], before), (head, entry["path"], after)]
    if any(path in sizes and b"\0" in _blob_head(workspace, rev, path) for rev, path, sizes in sides):
        return
    # numstat keeps saying "-" for such a file, so count the lines of its patch (both sides are small).
    lines = _file_patch(workspace, base, head, entry).split(b"\n")
    hunks = next((i for i, line in enumerate(lines) if line.startswith(b"@@")), len(lines))
    added = sum(1 for line in lines[hunks:] if line.startswith(b"+"))
    removed = sum(1 for line in lines[hunks:] if line.startswith(b"-"))
    entry.update(binary=False, added=added, removed=removed)


def _blob_head(workspace: Workspace, rev: str, path: str) -> bytes:
    return workspace._git_bytes("cat-file", "blob", f"{rev}:{path}")[:8000]


def _file_patch(workspace: Workspace, base: str, head: str, entry: dict) -> bytes:
    """The file's patch; --text because only a NUL byte makes a file binary here (see _recheck_binary)."""
    return workspace._git_bytes("diff", *_DIFF_OPTS, "--text", "--patch", base, head, "--", *_specs(entry))


def _specs(entry: dict) -> list[str]:
    """Literal pathspecs for both sides of a rename, so git pairs them again."""
    return [f":(literal){p}" for p in sorted({entry["old_path"], entry["path"]})]


def _cut(patch: bytes, cap: int) -> bytes:
    """The first ``cap`` bytes, ended at a line break so no line is shown half."""
    head = patch[:cap]
    return head[: head.rfind(b"\n") + 1] or head


def _commits(workspace: Workspace, base: str, head: str) -> tuple[list[dict], bool]:
    out = workspace._git("log", f"--max-count={MAX_COMMITS + 1}", f"--format={_LOG_FORMAT}", f"{base}..{head}", "--")
    fields = out.replace("\n", "").split("\0")
    commits = [
        {"sha": fields[i], "author": fields[i + 1], "date": fields[i + 2], "subject": fields[i + 3]}
        for i in range(0, len(fields) - 3, 4)
    ]
    return commits[:MAX_COMMITS], len(commits) > MAX_COMMITS


def diff_rows(diff: str) -> list[dict]:
    """A unified diff (one file or several) as rows: ``{"kind", "path", "old", "new", "text"}``.

    ``kind`` is ``file`` (``diff --git``, ``---``, ``+++``), ``hunk`` (``@@``), ``add``, ``del``, ``ctx`` or
    ``meta``. ``new`` is the line's number in the changed file (None for a removed line): what a review
    comment anchors to; ``path`` is that file. The hunk headers' counts say where a hunk ends, so a content
    line that looks like a header ("+++ x", "--- y") is read as content.
    """
    rows, path, old, new, old_left, new_left = [], None, 0, 0, 0, 0
    for text in str(diff or "").splitlines():
        row = {"kind": "meta", "path": path, "old": None, "new": None, "text": text}
        if old_left > 0 or new_left > 0:
            if text.startswith("\\"):  # "\ No newline at end of file"
                pass
            elif text.startswith("-"):
                row.update(kind="del", old=old)
                old, old_left = old + 1, old_left - 1
            else:
                added = text.startswith("+")
                row.update(kind="add" if added else "ctx", new=new, old=None if added else old)
                new, new_left = new + 1, new_left - 1
                if not added:
                    old, old_left = old + 1, old_left - 1
        elif text.startswith("+++ "):
            target = text[4:].strip().strip('"')
            path = None if target == "/dev/null" else target.removeprefix("b/")
            row.update(kind="file", path=path)
        elif match := _HUNK.match(text):
            old, new = int(match["old"]), int(match["new"])
            old_left = int(match["old_count"]) if match["old_count"] is not None else 1
            new_left = int(match["new_count"]) if match["new_count"] is not None else 1
            row["kind"] = "hunk"
        elif text.startswith(("diff --git", "--- ")):
            row["kind"] = "file"
        rows.append(row)
    return rows


def diff_line_numbers(diff: str) -> dict[str, set[int]]:
    """For each file of a unified diff, the line numbers of its new version that the diff shows."""
    lines: dict[str, set[int]] = {}
    for row in diff_rows(diff):
        if row["kind"] == "file" and row["path"]:
            lines.setdefault(row["path"], set())
        elif row["new"] is not None and row["path"]:
            lines.setdefault(row["path"], set()).add(row["new"])
    return lines


def change_line_numbers(change: dict) -> dict[str, set[int]]:
    """For each file of a change summary, the line numbers (in the changed file) its diff shows."""
    return {
        f["path"]: {row["new"] for row in diff_rows(f.get("patch", "")) if row["new"] is not None}
        for f in (change or {}).get("files", [])
        if isinstance(f, dict) and f.get("path")
    }
