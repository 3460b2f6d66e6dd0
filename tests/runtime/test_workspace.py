"""Workspace: git bookkeeping and, above all, path confinement."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from agents.runtime.workspace import (
    DIFF_LIMIT_BYTES,
    MAX_SUBJECT_CHARS,
    Workspace,
    WorkspaceError,
    sanitize_message,
)


def git(root: Path, *args: str) -> str:
    """Independent git call, so assertions do not trust the code under test."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace(tmp_path / "missions" / "m1" / "ws")
    workspace.init()
    return workspace


def test_init_is_idempotent_and_makes_one_commit(ws: Workspace) -> None:
    first = ws.head()
    ws.init()
    assert ws.head() == first
    assert git(ws.root, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(ws.root, "branch", "--show-current").strip() == "main"
    assert (ws.root / "README.md").read_text() == "# Workspace\n"
    assert git(ws.root, "config", "user.name").strip() == "Mission Orchestrator"
    exclude = (ws.root / ".git" / "info" / "exclude").read_text().splitlines()
    assert {".mo/", "__pycache__/", ".pytest_cache/"} <= set(exclude)
    assert exclude.count(".mo/") == 1


def test_write_read_round_trip(ws: Workspace) -> None:
    text = "print('héllo')\n"
    assert ws.write_file("pkg/sub/mod.py", text) == len(text.encode("utf-8"))
    assert ws.read_file("pkg/sub/mod.py") == text
    assert (ws.root / "pkg" / "sub" / "mod.py").read_text(encoding="utf-8") == text


def test_list_files_excludes_git_and_caches(ws: Workspace) -> None:
    ws.write_file("b.py", "b\n")
    ws.write_file("src/a.py", "a\n")
    for noise in (".mo/junit.xml", "__pycache__/x.pyc", ".pytest_cache/v"):
        (ws.root / noise).parent.mkdir(parents=True, exist_ok=True)
        (ws.root / noise).write_text("x")
    assert ws.list_files() == ["README.md", "b.py", "src/a.py"]
    assert ws.list_files("src") == ["src/a.py"]


def test_list_files_is_capped(ws: Workspace) -> None:
    for i in range(510):
        (ws.root / f"f{i:03}.txt").write_text("x")
    assert len(ws.list_files()) == 500


@pytest.mark.parametrize("bad", ["", "   ", "a\0b", "/etc/passwd", ".git/config", "src/../../x"])
def test_resolve_refuses_bad_paths(ws: Workspace, bad: str) -> None:
    with pytest.raises(WorkspaceError):
        ws.resolve(bad)


def test_relative_escape_is_refused_and_nothing_written(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match=r"'\.\.' is not allowed"):
        ws.write_file("../../etc/x", "pwned")
    assert not (ws.root.parent.parent / "etc" / "x").exists()
    assert not Path("/etc/x").exists()


def test_absolute_path_is_refused(ws: Workspace, tmp_path: Path) -> None:
    target = tmp_path / "absolute.txt"
    with pytest.raises(WorkspaceError, match="relative"):
        ws.write_file(str(target), "pwned")
    assert not target.exists()


def test_git_dir_is_off_limits(ws: Workspace) -> None:
    before = (ws.root / ".git" / "config").read_text()
    with pytest.raises(WorkspaceError, match=r"\.git"):
        ws.write_file(".git/config", "[core]\n\tfsmonitor = touch /tmp/pwned\n")
    with pytest.raises(WorkspaceError):
        ws.read_file(".git/config")
    with pytest.raises(WorkspaceError):
        ws.write_file("sub/.GIT/hooks/pre-commit", "x")
    assert (ws.root / ".git" / "config").read_text() == before


def test_nul_byte_is_refused(ws: Workspace) -> None:
    with pytest.raises(WorkspaceError, match="NUL"):
        ws.write_file("a\0b.txt", "x")
    assert ws.list_files() == ["README.md"]


def test_symlink_escape_is_refused(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("top secret")
    (ws.root / "out").symlink_to(outside)
    (ws.root / "leak.txt").symlink_to(secret)

    with pytest.raises(WorkspaceError):
        ws.write_file("out/new.txt", "pwned")
    with pytest.raises(WorkspaceError):
        ws.write_file("leak.txt", "pwned")
    with pytest.raises(WorkspaceError, match="outside"):
        ws.read_file("leak.txt")
    with pytest.raises(WorkspaceError):
        ws.list_files("out")
    assert not (outside / "new.txt").exists()
    assert secret.read_text() == "top secret"


def test_write_through_internal_symlink_is_refused(ws: Workspace) -> None:
    ws.write_file("real/target.txt", "original")
    (ws.root / "alias").symlink_to(ws.root / "real")
    with pytest.raises(WorkspaceError, match="symlink"):
        ws.write_file("alias/target.txt", "changed")
    assert ws.read_file("real/target.txt") == "original"


def test_commit_returns_sha_then_none_without_changes(ws: Workspace) -> None:
    ws.write_file("app.py", "x = 1\n")
    sha = ws.commit("Add app")
    assert sha is not None and len(sha) == 40
    assert sha == ws.head() == git(ws.root, "rev-parse", "HEAD").strip()
    assert git(ws.root, "log", "-1", "--format=%s").strip() == "Add app"
    assert git(ws.root, "status", "--porcelain").strip() == ""
    assert ws.commit("Nothing new") is None
    assert ws.head() == sha


def test_commit_ignores_excluded_dirs(ws: Workspace) -> None:
    (ws.root / ".mo").mkdir()
    (ws.root / ".mo" / "junit.xml").write_text("<x/>")
    assert ws.commit("only orchestrator files") is None


def test_diff_and_changed_files(ws: Workspace) -> None:
    ws.write_file("notes.txt", "first line\n")
    ws.commit("one")
    ws.write_file("notes.txt", "first line\nadded line\n")
    ws.write_file("other.py", "pass\n")
    sha = ws.commit("two")
    assert sha is not None
    patch = ws.diff(sha)
    assert "+added line" in patch
    assert "+first line" not in patch
    assert ws.changed_files(sha) == ["notes.txt", "other.py"]


def test_diff_is_capped(ws: Workspace) -> None:
    (ws.root / "big.txt").write_text("line of text\n" * 30_000)
    sha = ws.commit("big")
    assert sha is not None
    patch = ws.diff(sha)
    assert "[diff truncated" in patch
    assert len(patch.encode()) < DIFF_LIMIT_BYTES + 200


def test_diff_refuses_non_sha(ws: Workspace, tmp_path: Path) -> None:
    target = tmp_path / "leak.patch"
    with pytest.raises(WorkspaceError, match="sha"):
        ws.diff(f"--output={target}")
    assert not target.exists()


def test_oversize_write_is_refused(ws: Workspace) -> None:
    with pytest.raises(WorkspaceError, match="limit"):
        ws.write_file("big.txt", "x" * 11, max_bytes=10)
    assert not (ws.root / "big.txt").exists()
    assert ws.write_file("ok.txt", "x" * 10, max_bytes=10) == 10


def test_read_errors_are_clear(ws: Workspace) -> None:
    with pytest.raises(WorkspaceError, match="not found"):
        ws.read_file("missing.py")
    ws.write_file("big.txt", "x" * 100)
    with pytest.raises(WorkspaceError, match="larger"):
        ws.read_file("big.txt", max_bytes=50)


def test_message_is_sanitized() -> None:
    assert sanitize_message("") == "Update workspace"
    assert sanitize_message("  \n\n ") == "Update workspace"
    long = sanitize_message("x" * 500 + "\nbody")
    assert len(long.splitlines()[0]) == MAX_SUBJECT_CHARS
    assert long.endswith("body")
    assert "\x1b" not in sanitize_message("\x1b[31mred\x1b[0m")


def test_uninitialised_workspace_never_uses_a_parent_repo(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    ws = Workspace(tmp_path / "child")
    (tmp_path / "child").mkdir()
    (tmp_path / "child" / "f.txt").write_text("x")
    with pytest.raises(WorkspaceError, match="not initialised"):
        ws.commit("should not land in the parent repo")


def _diverge(ws: Workspace, ours: str, theirs: str) -> str:
    """Two branches from one commit changing app.py; returns 'theirs' commit, HEAD stays on ours."""
    ws.write_file("app.py", "x = 0\n")
    base = ws.commit("base")
    ws.write_file("app.py", theirs)
    theirs_sha = ws.commit("theirs")
    git(ws.root, "reset", "-q", "--hard", base)
    ws.write_file("app.py", ours)
    ws.commit("ours")
    return theirs_sha


def test_merge_in_merges_a_moved_base_and_reports_no_conflicts(ws: Workspace) -> None:
    ws.write_file("app.py", "x = 0\n")
    base = ws.commit("base")
    ws.write_file("lib.py", "y = 1\n")
    upstream = ws.commit("upstream adds lib")
    git(ws.root, "reset", "-q", "--hard", base)
    ws.write_file("feature.py", "z = 2\n")
    ws.commit("feature")
    assert not ws.is_ancestor(upstream, ws.head())
    assert ws.merge_in(upstream, "Merge upstream") == []
    assert ws.is_ancestor(upstream, ws.head())
    assert ws.read_file("lib.py") == "y = 1\n" and ws.read_file("feature.py") == "z = 2\n"


def test_merge_in_undoes_a_conflicting_merge_and_names_the_files(ws: Workspace) -> None:
    upstream = _diverge(ws, "x = 1\n", "x = 2\n")
    head = ws.head()
    assert ws.merge_in(upstream, "Merge upstream") == ["app.py"]
    assert ws.head() == head and ws.read_file("app.py") == "x = 1\n"
    assert not (ws.root / ".git" / "MERGE_HEAD").exists()


def test_a_kept_conflict_is_committed_only_once_the_markers_are_gone(ws: Workspace) -> None:
    upstream = _diverge(ws, "x = 1\n", "x = 2\n")
    assert ws.merge_in(upstream, "Merge upstream", keep_conflicts=True) == ["app.py"]
    assert "<<<<<<< " in ws.read_file("app.py")
    with pytest.raises(WorkspaceError, match="Conflict markers .* remain in app.py"):
        ws.commit("resolve")
    ws.write_file("app.py", "x = 3  # both\n")
    merged = ws.commit("Resolve the conflict with upstream")
    assert merged is not None
    parents = git(ws.root, "rev-list", "--parents", "-n", "1", merged).split()
    assert len(parents) == 3 and upstream in parents  # a real merge commit: upstream is in the history
    assert not (ws.root / ".git" / "mo-conflicts").exists()


def test_a_git_server_that_never_answers_times_out_with_a_clear_error(ws: Workspace, monkeypatch) -> None:
    """A fetch from a remote that accepts and then says nothing is stopped at GIT_TIMEOUT_S, helpers and all."""
    import socket
    import time

    from agents.runtime import workspace as workspace_module

    monkeypatch.setattr(workspace_module, "GIT_TIMEOUT_S", 1)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        started = time.monotonic()
        with pytest.raises(WorkspaceError, match=r"git fetch timed out after 1s \(GIT_TIMEOUT_S\)"):
            ws.fetch_branch("main", remote=f"git://127.0.0.1:{server.getsockname()[1]}/repo")
        assert time.monotonic() - started < 10


def test_a_command_running_transport_is_refused_even_where_no_check_ran_before(ws: Workspace, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(WorkspaceError):
        ws.fetch_branch("main", remote=f"ext::sh -c touch% {marker}")
    assert not marker.exists()


def test_push_head_reports_a_ref_another_push_holds_as_moved(ws: Workspace, tmp_path: Path) -> None:
    """Two steps pushing the mission branch at once: the loser sees "cannot lock ref" and must fetch, merge and
    retry (False), not fail the step and pay for its model calls again."""
    remote = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(ws.root, "remote", "add", "origin", str(remote))
    ws.write_file("a.py", "a = 1\n")
    ws.commit("a")
    assert ws.push_head("missions/m1") is True
    lock = remote / "refs" / "heads" / "missions" / "m1.lock"
    lock.write_text("")  # what git leaves while another push updates the ref
    ws.write_file("b.py", "b = 2\n")
    ws.commit("b")
    assert ws.push_head("missions/m1") is False
    lock.unlink()
    assert ws.push_head("missions/m1") is True
    assert git(remote, "rev-parse", "refs/heads/missions/m1").strip() == ws.head()
