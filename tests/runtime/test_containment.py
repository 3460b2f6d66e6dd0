"""Containment: one row per escape seen against the old sandbox, each tried for real in bwrap.

Each probe prints ESCAPED (with what it got) when it breaks out and CONTAINED when it is stopped;
some rows also check the host side (files that must not exist, bits that must be gone).
"""

from __future__ import annotations

import os
import socket
import stat
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agents.runtime.sandbox import SandboxLimits, SandboxResult, run_pytest, run_sandboxed
from tests.sandbox_support import require_bwrap

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def _bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    require_bwrap()
    monkeypatch.setenv("SANDBOX_BACKEND", "bwrap")
    monkeypatch.setenv("FAKE_SECRET", "hunter2-do-not-leak")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


@dataclass(frozen=True)
class Escape:
    """An escape attempt: probe code (formatted with ``port`` and ``outside``), limits, and a host-side check."""

    code: str
    limits: dict = field(default_factory=dict)
    host_check: Callable[[SandboxResult, Path, Path], str] = lambda result, workdir, outside: ""


def _no_file_outside(result: SandboxResult, workdir: Path, outside: Path) -> str:
    leaked = [p for p in (outside, PROJECT_ROOT / outside.name) if p.exists()]
    return f"written on the host: {leaked}" if leaked else ""


def _growth_flagged(result: SandboxResult, workdir: Path, outside: Path) -> str:
    if "more than the 5 MB allowed" not in result.limit_exceeded or result.returncode == 0:
        return f"growth not flagged: returncode {result.returncode}, {result.limit_exceeded!r}"
    return ""


def _setuid_stripped(result: SandboxResult, workdir: Path, outside: Path) -> str:
    made = workdir / "sh"
    if not made.exists():
        return "the probe did not leave its copy behind"
    mode = made.stat().st_mode
    if mode & (stat.S_ISUID | stat.S_ISGID):
        return f"setuid copy left on the host disk: {oct(mode)} owned by uid {made.stat().st_uid}"
    return "" if made.stat().st_uid == os.getuid() else f"file left owned by uid {made.stat().st_uid}"


ESCAPES = {
    "network": Escape(
        """
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
            print("ESCAPED: connected to the host")
        except OSError:
            print("CONTAINED")
        """
    ),
    "etc_shadow": Escape(
        """
        import os
        try:
            print("ESCAPED:", open("/etc/shadow").read()[:40])
        except OSError:
            if os.getuid() == 0 or os.geteuid() == 0:
                print("ESCAPED: running as root")
            elif "shadow" in os.listdir("/etc") or "root:x:0:0" not in open("/etc/passwd").read():
                print("ESCAPED: the host's /etc is visible")
            else:
                print("CONTAINED")
        """
    ),
    "writes_outside": Escape(
        """
        import sys
        escaped = []
        for target in ({outside!r}, {project!r}, "/usr/escape.txt", "/etc/escape.txt", "/escape.txt"):
            try:
                with open(target, "w") as fh:
                    fh.write("escaped")
                escaped.append(target)
            except OSError:
                pass
        # Under a checkout in /tmp, the first write lands in the private /tmp: the host check decides.
        print("ESCAPED:" if [t for t in escaped if not t.startswith("/tmp/")] else "CONTAINED", escaped)
        """,
        host_check=_no_file_outside,
    ),
    "env_secret": Escape(
        """
        import os
        leaked = [k for k, v in os.environ.items() if "hunter2" in v]
        print(f"ESCAPED: {{leaked}}" if leaked else "CONTAINED")
        """
    ),
    "fork_bomb": Escape(
        """
        import os
        read_end, write_end = os.pipe()
        children = 0
        for _ in range(400):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:  # each child waits for the pipe to close, so it never outlives this probe
                os.close(write_end)
                os.read(read_end, 1)
                os._exit(0)
            children += 1
        os.close(write_end)
        for _ in range(children):
            os.wait()
        print("CONTAINED" if children < 64 else "ESCAPED:", children, "children")
        """,
        limits={"max_procs": 64, "timeout_s": 30},
    ),
    "memory_via_tmp": Escape(
        """
        written = 0
        try:
            with open("/tmp/fill", "wb") as fh:
                for _ in range(100):
                    fh.write(b"x" * (1024 * 1024))
                    fh.flush()
                    written += 1
        except OSError:
            pass
        print("CONTAINED" if written < 100 else "ESCAPED:", written, "MB in /tmp")
        """,
        limits={"tmp_mb": 64, "max_file_mb": 200},
    ),
    "memory_via_dev": Escape(
        """
        try:
            open("/dev/fill", "wb").write(b"x" * 1024)
            print("ESCAPED: /dev is writable")
        except OSError:
            pass
        written = 0
        try:
            with open("/dev/shm/fill", "wb") as fh:
                for _ in range(100):
                    fh.write(b"x" * (1024 * 1024))
                    fh.flush()
                    written += 1
        except OSError:
            pass
        print("CONTAINED" if written < 100 else "ESCAPED:", written, "MB in /dev/shm")
        """,
        limits={"max_file_mb": 200},
    ),
    "big_file": Escape(
        """
        try:
            with open("big.bin", "wb") as fh:
                fh.write(b"x" * (10 * 1024 * 1024))
            print("ESCAPED: wrote 10 MB")
        except OSError:
            print("CONTAINED")
        """,
        limits={"max_file_mb": 4},
    ),
    "disk_fill_workspace": Escape(
        """
        for n in range(3):
            with open(f"fill-{{n}}.bin", "wb") as fh:
                fh.write(b"x" * (3 * 1024 * 1024))
        print("CONTAINED")  # each file is allowed; the growth check after the run decides
        """,
        limits={"max_file_mb": 4, "disk_mb": 5},
        host_check=_growth_flagged,
    ),
    "setuid_left_behind": Escape(
        """
        import os, shutil, stat
        shutil.copy("/usr/bin/dash", "sh")
        os.chmod("sh", 0o6755)
        print("CONTAINED")  # whatever happened inside, the host check looks at the copy on disk
        """,
        host_check=_setuid_stripped,
    ),
    "nested_user_namespace": Escape(
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        CLONE_NEWUSER = 0x10000000
        print("ESCAPED: made a user namespace" if libc.unshare(CLONE_NEWUSER) == 0 else "CONTAINED")
        """
    ),
}


@pytest.mark.parametrize("name", list(ESCAPES))
def test_it_contains_each_escape(name: str, workdir: Path, listener: int) -> None:
    """Every escape row is stopped inside the sandbox, and nothing of it reaches the host."""
    escape = ESCAPES[name]
    outside = workdir.parent / f"escape-{uuid.uuid4().hex}.txt"
    project = PROJECT_ROOT / outside.name
    code = textwrap.dedent(escape.code).format(port=listener, outside=str(outside), project=str(project))
    result = run_sandboxed([sys.executable, "-c", code], workdir=workdir, limits=SandboxLimits(**escape.limits))
    assert result.isolation == "bwrap"
    out = result.stdout + result.stderr
    assert "CONTAINED" in result.stdout and "ESCAPED" not in result.stdout, out
    assert escape.host_check(result, workdir, outside) == "", out


def test_the_shadow_row_is_meaningful() -> None:
    """The host really has an /etc/shadow, so the etc_shadow row tests something."""
    assert Path("/etc/shadow").exists()


def test_a_growing_test_run_fails_with_a_clear_message(workdir: Path) -> None:
    """Tests that fill the workspace past SANDBOX_DISK_MB count as an error, whatever pytest reported."""
    (workdir / "test_fill.py").write_text(
        "def test_fill():\n    for n in range(3):\n        open(f'fill-{n}.bin', 'wb').write(b'x' * 3 * 1024 * 1024)\n"
    )
    result = run_pytest(workdir, limits=SandboxLimits(max_file_mb=4, disk_mb=5))
    assert result.passed == 1 and result.errors == 1
    assert "more than the 5 MB allowed per run (SANDBOX_DISK_MB)" in result.log


def test_the_products_pytest_plugins_stay_out_of_generated_test_runs(workdir: Path) -> None:
    """The product's own plugins (pytest-asyncio, pytest-django, ...) are not loaded into the workspace's run."""
    (workdir / "test_plugins.py").write_text(
        "import sys\n\ndef test_no_product_plugins():\n"
        "    loaded = [m for m in ('pytest_asyncio', 'pytest_django', 'pytest_playwright') if m in sys.modules]\n"
        "    assert loaded == []\n"
    )
    result = run_pytest(workdir)
    assert (result.passed, result.failed, result.errors) == (1, 0, 0), result.log
    assert "PytestDeprecationWarning" not in result.log
