"""Sandbox: each isolation claim is checked by trying to break it.

bwrap tests force SANDBOX_BACKEND=bwrap, so a silent fallback to the weaker
backend fails instead of passing. Where a check could pass vacuously (e.g.
the network is unreachable anyway), a subprocess-backend control shows the
same probe does detect access when isolation is absent.
"""

from __future__ import annotations

import socket
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.runtime import sandbox
from agents.runtime.sandbox import (
    SandboxError,
    SandboxLimits,
    run_pytest,
    run_sandboxed,
    sandbox_isolation,
)
from tests.sandbox_support import require_bwrap

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _default_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDBOX_BACKEND", raising=False)


@pytest.fixture
def bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    require_bwrap()
    monkeypatch.setenv("SANDBOX_BACKEND", "bwrap")


@pytest.fixture
def weak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_BACKEND", "subprocess")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on the host's loopback that accepts connections."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


def write(workdir: Path, name: str, code: str) -> None:
    (workdir / name).write_text(textwrap.dedent(code))


def run_python(workdir: Path, code: str, **kwargs: object) -> sandbox.SandboxResult:
    return run_sandboxed([sys.executable, "-c", textwrap.dedent(code)], workdir=workdir, **kwargs)


PASSING = """
    def test_one():
        assert 1 + 1 == 2

    def test_two():
        assert "a".upper() == "A"

    class TestGroup:
        def test_method(self):
            assert True
"""

CONNECT = """
    import socket, sys
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    except OSError as exc:
        print("connect failed:", exc)
        sys.exit(3)
    print("connected")
"""


# ------------------------------------------------------------------ pytest runs
def test_passing_tests_are_counted(bwrap: None, workdir: Path) -> None:
    write(workdir, "test_ok.py", PASSING)
    result = run_pytest(workdir)
    assert (result.passed, result.failed, result.errors, result.skipped) == (3, 0, 0, 0)
    assert result.isolation == "bwrap"
    assert result.returncode == 0 and not result.timed_out
    assert {(t.nodeid, t.outcome) for t in result.tests} == {
        ("test_ok.py::test_one", "passed"),
        ("test_ok.py::test_two", "passed"),
        ("test_ok.py::TestGroup::test_method", "passed"),
    }
    assert "3 passed" in result.log
    assert [p.name for p in workdir.iterdir()] == ["test_ok.py"]  # the report was written elsewhere


def test_failing_test_is_reported_with_assertion(bwrap: None, workdir: Path) -> None:
    write(
        workdir,
        "test_bad.py",
        """
        import pytest

        def test_good():
            pass

        def test_wrong_answer():
            assert 6 * 7 == 41, "the answer drifted"

        @pytest.mark.skip(reason="not today")
        def test_later():
            pass
        """,
    )
    result = run_pytest(workdir)
    assert (result.passed, result.failed, result.errors, result.skipped) == (1, 1, 0, 1)
    assert result.returncode == 1
    assert "the answer drifted" in result.log
    outcomes = {t.nodeid: t.outcome for t in result.tests}
    assert outcomes["test_bad.py::test_wrong_answer"] == "failed"
    assert outcomes["test_bad.py::test_later"] == "skipped"


def test_collection_error_counts_as_error(bwrap: None, workdir: Path) -> None:
    write(workdir, "test_broken.py", "import module_that_does_not_exist\n")
    result = run_pytest(workdir)
    assert result.errors == 1 and result.passed == 0
    assert "module_that_does_not_exist" in result.log


def test_no_tests_collected(bwrap: None, workdir: Path) -> None:
    write(workdir, "helper.py", "X = 1\n")
    result = run_pytest(workdir)
    assert result.returncode == 5
    assert (result.passed, result.failed, result.errors) == (0, 0, 0)
    assert "no tests" in result.log


def test_missing_report_is_an_error(bwrap: None, workdir: Path) -> None:
    write(workdir, "conftest.py", "import os\nos._exit(0)\n")
    write(workdir, "test_x.py", "def test_x():\n    pass\n")
    result = run_pytest(workdir)
    assert result.errors == 1 and result.passed == 0
    assert "did not write a JUnit report" in result.log


def test_junit_parsing_guards(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text("<testsuites><testsuite><testcase name='a'")
    tests, problem = sandbox._read_junit(report, tmp_path)
    assert tests is None and "not valid XML" in problem
    report.unlink()
    report.symlink_to("/etc/hostname")
    tests, problem = sandbox._read_junit(report, tmp_path)
    assert tests is None and "could not be opened" in problem


# ------------------------------------------------------------------ isolation
def test_network_is_unreachable(bwrap: None, workdir: Path, listener: int) -> None:
    result = run_python(workdir, CONNECT.format(port=listener))
    assert result.returncode == 3, result.stdout + result.stderr
    resolve = run_python(
        workdir,
        """
        import socket
        try:
            socket.getaddrinfo("example.com", 80)
        except OSError as exc:
            raise SystemExit(f"resolve failed: {exc}")
        print("resolved")
        """,
    )
    assert resolve.returncode != 0 and "resolve failed" in resolve.stderr


def test_network_probe_detects_access_without_bwrap(weak: None, workdir: Path, listener: int) -> None:
    result = run_python(workdir, CONNECT.format(port=listener))
    assert result.returncode == 0 and "connected" in result.stdout
    assert result.isolation == "subprocess"


WRITE_PROBE = """
    import sys
    for target in sys.argv[1:]:
        try:
            with open(target, "w") as fh:
                fh.write("escaped")
            print("WROTE", target)
        except OSError as exc:
            print("DENIED", target, exc.__class__.__name__)
"""


def test_writes_outside_workspace_fail(bwrap: None, workdir: Path) -> None:
    tag = uuid.uuid4().hex
    outside = [PROJECT_ROOT / f"escape-{tag}.txt", workdir.parent / f"escape-{tag}.txt"]
    argv = [sys.executable, "-c", textwrap.dedent(WRITE_PROBE)]
    argv += [str(p) for p in outside] + ["/workspace/inside.txt"]
    result = run_sandboxed(argv, workdir=workdir)
    for path in outside:
        # Denied, or written into the sandbox's private /tmp (when the checkout lives under /tmp):
        # either way nothing reaches the host.
        assert f"DENIED {path}" in result.stdout or str(path).startswith("/tmp/")
        assert not path.exists()
    assert "WROTE /workspace/inside.txt" in result.stdout
    assert (workdir / "inside.txt").read_text() == "escaped"


def test_write_probe_detects_escape_without_bwrap(weak: None, workdir: Path) -> None:
    target = workdir.parent / f"escape-{uuid.uuid4().hex}.txt"
    argv = [sys.executable, "-c", textwrap.dedent(WRITE_PROBE), str(target)]
    result = run_sandboxed(argv, workdir=workdir)
    assert f"WROTE {target}" in result.stdout
    assert target.exists()


def test_host_files_and_git_metadata_are_protected(bwrap: None, workdir: Path) -> None:
    (workdir / ".git" / "hooks").mkdir(parents=True)
    result = run_python(
        workdir,
        f"""
        import os
        print("project visible:", os.path.exists({str(PROJECT_ROOT / "agents")!r}))
        try:
            open("/workspace/.git/hooks/post-commit", "w").write("#!/bin/sh\\n")
            print("hook written")
        except OSError as exc:
            print("hook denied", exc.__class__.__name__)
        """,
    )
    assert "project visible: False" in result.stdout
    assert "hook denied" in result.stdout
    assert not (workdir / ".git" / "hooks" / "post-commit").exists()


@pytest.mark.parametrize("backend", ["bwrap", "subprocess"])
def test_host_secret_env_is_absent(backend: str, monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    if backend == "bwrap":
        require_bwrap()
    monkeypatch.setenv("SANDBOX_BACKEND", backend)
    monkeypatch.setenv("FAKE_SECRET", "hunter2-do-not-leak")
    result = run_python(
        workdir,
        """
        import os
        print("secret:", os.environ.get("FAKE_SECRET", "<absent>"))
        print("extra:", os.environ.get("MISSION_ID"))
        print("keys:", sorted(os.environ))
        """,
        env={"MISSION_ID": "m-42"},
    )
    assert result.isolation == backend
    assert "secret: <absent>" in result.stdout
    assert "hunter2" not in result.stdout
    assert "extra: m-42" in result.stdout


def test_timeout_kills_the_run(bwrap: None, workdir: Path) -> None:
    started = time.monotonic()
    result = run_sandboxed(["sleep", "10"], workdir=workdir, limits=SandboxLimits(timeout_s=1))
    elapsed = time.monotonic() - started
    assert result.timed_out is True
    assert elapsed < 5
    assert result.returncode != 0
    assert "timeout" in result.stderr


def test_timeout_kills_background_children_without_bwrap(weak: None, workdir: Path) -> None:
    marker = workdir / "late.txt"
    script = f"(sleep 2; echo late > {marker}) & sleep 10"
    started = time.monotonic()
    result = run_sandboxed(["sh", "-c", script], workdir=workdir, limits=SandboxLimits(timeout_s=1))
    assert result.timed_out and time.monotonic() - started < 5
    time.sleep(2.5)
    assert not marker.exists()


def test_memory_hog_fails(bwrap: None, workdir: Path) -> None:
    result = run_python(
        workdir,
        """
        block = bytearray(2 * 1024 ** 3)
        print("allocated", len(block))
        """,
        limits=SandboxLimits(memory_mb=256),
    )
    assert result.returncode != 0
    assert "allocated" not in result.stdout
    assert "MemoryError" in result.stderr


def test_output_is_truncated_with_notice(bwrap: None, workdir: Path) -> None:
    result = run_python(workdir, "print('x' * 500_000)")
    assert result.returncode == 0
    assert len(result.stdout) < 70_000
    assert "output truncated" in result.stdout


# ------------------------------------------------------------------ backend choice
def test_subprocess_backend_still_runs_tests(weak: None, workdir: Path) -> None:
    assert sandbox_isolation() == "subprocess"
    write(workdir, "test_ok.py", PASSING)
    write(workdir, "test_fail.py", "def test_nope():\n    assert 'left' == 'right'\n")
    result = run_pytest(workdir)
    assert result.isolation == "subprocess"
    assert (result.passed, result.failed, result.errors) == (3, 1, 0)
    assert "'left' == 'right'" in result.log
    assert sorted(p.name for p in workdir.iterdir()) == ["test_fail.py", "test_ok.py"]


def test_planted_report_symlink_is_not_followed(weak: None, workdir: Path) -> None:
    """The report never goes into the workspace, so a symlink planted where it used to go leads nowhere."""
    outside = workdir.parent / "outside"
    outside.mkdir()
    (workdir / ".mo").symlink_to(outside)
    write(workdir, "test_ok.py", PASSING)
    result = run_pytest(workdir)
    assert result.passed == 3
    assert list(outside.iterdir()) == []


def test_forcing_unusable_bwrap_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "_probe_bwrap", lambda: (False, "no bwrap in this test"))
    monkeypatch.setenv("SANDBOX_BACKEND", "bwrap")
    with pytest.raises(SandboxError, match="no bwrap in this test"):
        sandbox_isolation()
    monkeypatch.delenv("SANDBOX_BACKEND")
    with pytest.raises(SandboxError, match="bubblewrap.*SANDBOX_BACKEND=subprocess"):
        sandbox_isolation()  # no silent fallback to the weaker sandbox
    monkeypatch.setenv("SANDBOX_BACKEND", "subprocess")
    assert sandbox_isolation() == "subprocess"
    monkeypatch.setenv("SANDBOX_BACKEND", "podman")
    with pytest.raises(SandboxError, match="SANDBOX_BACKEND"):
        sandbox_isolation()


def test_bwrap_is_the_default_when_it_works() -> None:
    require_bwrap()
    assert sandbox_isolation() == "bwrap"


def test_docker_backend_builds_a_locked_down_container(monkeypatch, tmp_path: Path) -> None:
    """SANDBOX_BACKEND=docker: no network, read-only root, no capabilities, limits, only the workspace mounted.

    No Docker engine runs here, so this checks the command the backend would run, not a container.
    """
    from agents.runtime import sandbox

    monkeypatch.setenv("SANDBOX_BACKEND", "docker")
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert sandbox.sandbox_isolation() == "docker"
    limits = sandbox.SandboxLimits(memory_mb=256, max_procs=32, max_file_mb=5, cpu_s=20)
    argv = sandbox.docker_argv(tmp_path, {"HOME": "/tmp", "PATH": "/usr/bin", "SECRETLESS": "1"}, limits)
    joined = " ".join(argv)
    for expected in ("--network none", "--read-only", "--cap-drop ALL", "--pids-limit 32", "--memory 256m"):
        assert expected in joined
    assert f"{tmp_path}:/workspace:rw" in argv and argv[-1] == "python:3.11-slim"
    assert "PATH=/usr/bin" not in argv and "SECRETLESS=1" in argv
    assert sandbox._container_argv([sys.executable, "-m", "pytest"]) == ["python", "-m", "pytest"]
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxError, match="docker client was not found"):
        sandbox.sandbox_isolation()
