"""Sandboxed code that races the host: swapped symlinks, concurrent tool calls, survivors, shared limits.

AutoGen runs the tool calls of one model message concurrently, and sandboxed code owns its workspace
while it runs, so each row here has the code change the tree under the host's feet and checks that no
host-side operation followed it out of the workspace.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from agents.runtime import sandbox
from agents.runtime.sandbox import PytestResult, SandboxLimits, run_pytest, run_sandboxed
from agents.runtime.tools import StepTools
from agents.runtime.workspace import Workspace
from tests.sandbox_support import require_bwrap


@pytest.fixture(autouse=True)
def _bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    require_bwrap()
    monkeypatch.setenv("SANDBOX_BACKEND", "bwrap")


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace(tmp_path / "ws")
    workspace.init()
    return workspace


def _tools(ws: Workspace, **limits: object) -> StepTools:
    async def on_test_run(result: PytestResult) -> None:
        return None

    return StepTools(ws, limits=SandboxLimits(**limits), on_test_run=on_test_run)


def _code(text: str, **values: object) -> str:
    return textwrap.dedent(text).format(**values)


def test_a_write_in_the_same_message_as_a_test_run_never_lands_outside(ws: Workspace, tmp_path: Path) -> None:
    """While the tests keep swapping a folder for a symlink to a host dir, write_file calls made meanwhile stay in."""
    outside = tmp_path / "outside"
    outside.mkdir()
    ws.write_file(
        "test_swap.py",
        _code(
            """
            import ctypes, os, time
            libc = ctypes.CDLL(None, use_errno=True)
            def test_swap():
                os.makedirs("d", exist_ok=True)
                os.symlink({outside!r}, "L")
                end = time.time() + 2
                while time.time() < end:
                    libc.renameat2(-100, b"d", -100, b"L", 2)  # RENAME_EXCHANGE
            """,
            outside=str(outside),
        ),
    )
    tools = _tools(ws, timeout_s=20)

    async def scenario() -> list[str]:
        run = asyncio.ensure_future(tools.run_tests())
        answers = []
        await asyncio.sleep(0.3)  # the run is live and swapping
        for n in range(400):
            answers.append(await tools.write_file(f"d/x{n}", "written by the host"))
            if run.done():
                break
            await asyncio.sleep(0.005)
        await run
        return answers

    answers = asyncio.run(scenario())
    assert answers, "no write was attempted"
    assert list(outside.iterdir()) == [], answers[:3]


def test_two_test_runs_in_one_message_take_turns(ws: Workspace) -> None:
    """A second run_tests in the same model message waits: it does not take the tree from the live first run."""
    ws.write_file(
        "test_slow.py",
        "import os, time\n\ndef test_slow():\n    if os.path.exists('started'):\n        return\n"
        "    open('started', 'w').close()\n    time.sleep(1.5)\n    open('after.txt', 'w').write('x')\n",
    )
    tools = _tools(ws, timeout_s=20)

    async def scenario() -> list[str]:
        return list(await asyncio.gather(tools.run_tests(), tools.run_tests()))

    first, second = asyncio.run(scenario())
    assert first.startswith("PASSED") and second.startswith("PASSED"), (first, second)


def test_a_run_swapping_files_for_symlinks_cannot_make_another_runs_reclaim_chmod_a_host_file(tmp_path: Path) -> None:
    """Reclaiming a tree (after any run on it) changes only inodes inside it, even while links are swapped in."""
    workdir = tmp_path / "ws"
    workdir.mkdir()
    target = tmp_path / "target"
    target.write_text("host file")
    target.chmod(0o600)
    flipper = _code(
        """
        import os, time
        def flip(i):
            d = f"D{{i}}"
            n = 0
            end = time.time() + 3
            while time.time() < end:
                n += 1
                fd = os.open(f"{{d}}/r{{n}}", os.O_CREAT | os.O_WRONLY, 0o777)
                os.fchmod(fd, 0o4777)
                os.close(fd)
                os.rename(f"{{d}}/r{{n}}", f"{{d}}/f")
                os.symlink({target!r}, f"{{d}}/s{{n}}")
                os.rename(f"{{d}}/s{{n}}", f"{{d}}/f")
            os._exit(0)
        os.chmod(".", 0o777)
        for i in range(8):
            os.mkdir(f"D{{i}}")
            os.chmod(f"D{{i}}", 0o777)
        for i in range(8):
            if os.fork() == 0:
                flip(i)
        open("started", "w").close()
        for _ in range(8):
            os.wait()
        """,
        target=str(target),
    )
    first = threading.Thread(
        target=run_sandboxed, args=([sys.executable, "-c", flipper],), kwargs={"workdir": workdir}, daemon=True
    )
    first.start()
    deadline = time.monotonic() + 10
    while not (workdir / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    reclaims = 0
    while first.is_alive() and time.monotonic() < deadline:
        run_sandboxed(["true"], workdir=workdir)  # each run claims and reclaims the tree while the flippers swap
        reclaims += 1
    first.join(10)
    assert reclaims > 0
    info = target.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, os.getuid()), oct(info.st_mode)


def _named(token: str) -> list[str]:
    """Host pids whose process name (comm) is ``token``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip() == token:
                    found.append(pid)
        except OSError:
            continue
    return found


def test_no_process_of_a_timed_out_run_outlives_it(tmp_path: Path) -> None:
    """After a timeout, every process of the run is dead before the tree is reclaimed: nothing writes afterwards."""
    workdir = tmp_path / "ws"
    workdir.mkdir()
    token = f"mo{uuid.uuid4().hex[:12]}"
    spinner = _code(
        """
        import ctypes, os
        ctypes.CDLL(None).prctl(15, {token!r}.encode(), 0, 0, 0)  # PR_SET_NAME, inherited by the forks
        os.makedirs("out", exist_ok=True)
        for k in range(3):
            if os.fork() == 0:
                os.setsid()
                i = 0
                while True:
                    i += 1
                    try:
                        fd = os.open(f"out/{{k}}-{{i}}", os.O_CREAT | os.O_WRONLY, 0o4777)
                        os.fchmod(fd, 0o4777)
                        os.close(fd)
                    except OSError:
                        pass
        while True:
            pass
        """,
        token=token,
    )
    result = run_sandboxed([sys.executable, "-c", spinner], workdir=workdir, limits=SandboxLimits(timeout_s=1))
    alive = _named(token)
    assert result.timed_out
    assert alive == [], f"{len(alive)} processes of the run still alive after it returned"
    first = {entry.name: entry.stat(follow_symlinks=False) for entry in os.scandir(workdir / "out")}
    time.sleep(0.2)
    later = {entry.name for entry in os.scandir(workdir / "out")}
    assert later == set(first), f"{len(later - set(first))} files written after the run returned"
    wrong = [name for name, info in first.items() if info.st_uid != os.getuid() or info.st_mode & stat.S_ISUID]
    assert wrong == [], f"{len(wrong)} files not reclaimed, e.g. {wrong[:3]}"


@pytest.mark.skipif(os.geteuid() != 0, reason="a non-root worker runs every run as its own uid (one shared pool)")
def test_one_runs_processes_do_not_eat_another_runs_process_limit(tmp_path: Path) -> None:
    """Each run has a uid of its own, so RLIMIT_NPROC counts its processes only."""
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    holder = """
        import os, time
        for _ in range(14):
            if os.fork() == 0:
                time.sleep(3)
                os._exit(0)
        open("ready", "w").close()
        time.sleep(3)
        """
    limits = SandboxLimits(max_procs=24, timeout_s=20)
    first = threading.Thread(
        target=run_sandboxed,
        args=([sys.executable, "-c", textwrap.dedent(holder)],),
        kwargs={"workdir": first_dir, "limits": limits},
        daemon=True,
    )
    first.start()
    deadline = time.monotonic() + 10
    while not (first_dir / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    counter = """
        import os
        read_end, write_end = os.pipe()
        children = 0
        for _ in range(20):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                os.close(write_end)
                os.read(read_end, 1)
                os._exit(0)
            children += 1
        os.close(write_end)
        print("children", children)
        """
    result = run_sandboxed([sys.executable, "-c", textwrap.dedent(counter)], workdir=second_dir, limits=limits)
    first.join(10)
    assert "children 20" in result.stdout, result.stdout + result.stderr


def test_a_run_that_leaves_too_many_files_fails_with_a_clear_message(tmp_path: Path) -> None:
    """Empty files take no disk blocks, so the entry count is capped too (SANDBOX_MAX_FILES)."""
    workdir = tmp_path / "ws"
    workdir.mkdir()
    code = (
        "import os\nos.mkdir('j')\nfor i in range(2500):\n    os.close(os.open(f'j/{i}', os.O_CREAT | os.O_WRONLY))\n"
    )
    result = run_sandboxed([sys.executable, "-c", code], workdir=workdir, limits=SandboxLimits(max_files=2000))
    assert result.returncode != 0
    assert "added 2501 files and directories" in result.limit_exceeded
    assert "more than the 2000 allowed per run (SANDBOX_MAX_FILES)" in result.stderr


def test_the_report_cannot_be_used_as_extra_disk_or_swapped_for_a_fifo(tmp_path: Path) -> None:
    """Only the report file itself is writable outside the workspace, bounded by the file-size limit."""
    workdir = tmp_path / "ws"
    workdir.mkdir()
    (workdir / "test_report.py").write_text(
        textwrap.dedent(
            """
            import os
            def test_report_mount():
                report = "/sandbox-report.xml"
                for path in ("/sandbox-report/blob", "/blob", "/sandbox-report.xml.new"):
                    try:
                        open(path, "wb").close()
                    except OSError:
                        continue
                    raise AssertionError(f"wrote {path}")
                for swap in (lambda: os.unlink(report), lambda: os.rename("/workspace/test_report.py", report)):
                    try:
                        swap()
                    except OSError:
                        continue
                    raise AssertionError("replaced the report")
                try:
                    with open("/workspace/big", "wb") as fh:
                        fh.write(b"x" * (5 * 1024 * 1024))
                except OSError:
                    pass
                else:
                    raise AssertionError("the file-size limit did not hold")
            """
        )
    )
    result = run_pytest(workdir, limits=SandboxLimits(max_file_mb=4))
    assert (result.passed, result.failed, result.errors) == (1, 0, 0), result.log


def test_a_fifo_in_place_of_the_report_does_not_hang_the_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the weaker backend the code can reach the report's path: a FIFO there is refused, not waited on."""
    monkeypatch.setenv("SANDBOX_BACKEND", "subprocess")
    workdir = tmp_path / "ws"
    workdir.mkdir()
    (workdir / "test_fifo.py").write_text(
        "import atexit, os, sys\n\n"
        "def _swap():\n"
        "    path = [a for a in sys.argv if a.startswith('--junitxml=')][0].split('=', 1)[1]\n"
        "    os.unlink(path)\n    os.mkfifo(path)\n    os._exit(0)\n\n"
        "atexit.register(_swap)\n\ndef test_a():\n    pass\n"
    )
    results: list[PytestResult] = []
    runner = threading.Thread(target=lambda: results.append(run_pytest(workdir)), daemon=True)
    runner.start()
    runner.join(30)
    assert not runner.is_alive(), "run_pytest hung on a FIFO"
    assert results[0].errors == 1 and "not a regular file" in results[0].log


def test_a_workspace_module_cannot_shadow_one_of_pytests_own(tmp_path: Path) -> None:
    """iniconfig.py (or pluggy.py, ...) in the workspace is not what pytest imports at start-up."""
    workdir = tmp_path / "ws"
    workdir.mkdir()
    (workdir / "iniconfig.py").write_text("open('/workspace/SHADOW_IMPORTED', 'w').write('yes')\nraise ImportError\n")
    (workdir / "app.py").write_text("def answer():\n    return 42\n")
    (workdir / "test_app.py").write_text("from app import answer\n\ndef test_answer():\n    assert answer() == 42\n")
    result = run_pytest(workdir)
    assert not (workdir / "SHADOW_IMPORTED").exists()
    assert (result.passed, result.failed, result.errors) == (1, 0, 0), result.log


def test_the_private_etc_is_made_again_when_a_tmp_cleaner_removed_it(tmp_path: Path) -> None:
    """Runs keep working after the generated /etc disappears from disk."""
    workdir = tmp_path / "ws"
    workdir.mkdir()
    assert run_sandboxed(["true"], workdir=workdir).returncode == 0
    made = sorted(sandbox._state_dir().glob("etc-*"))
    assert made
    for etc in made:
        shutil.rmtree(etc)
    result = run_sandboxed(["cat", "/etc/passwd"], workdir=workdir)
    assert result.returncode == 0 and "sandbox" in result.stdout, result.stderr
