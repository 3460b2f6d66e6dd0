"""Run untrusted code (model-written tests and scripts) with as much isolation as we have.

Preferred backend is bubblewrap: no network, private pid/ipc/uts namespaces,
a read-only view of the system plus the Python install, and only the
workspace writable. Without bwrap we fall back to a plain subprocess, which
still gets resource limits, a clean environment and a wall-clock timeout but
can reach the network and the host filesystem; ``isolation`` says which one ran.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

OUTPUT_LIMIT_BYTES = 64 * 1024
OUTPUT_HEAD_BYTES = 16 * 1024
JUNIT_MAX_BYTES = 5_000_000
SANDBOX_WORKDIR = "/workspace"
REPORT_DIR = ".mo"
PROBE_TIMEOUT_S = 15
BACKENDS = ("bwrap", "docker", "subprocess")
# The docker backend runs each command in a throwaway container of this image (it needs python + pytest).
DOCKER_IMAGE_ENV = "SANDBOX_DOCKER_IMAGE"
DEFAULT_DOCKER_IMAGE = "python:3.11-slim"

# Top-level system dirs; on merged-/usr systems they are symlinks into /usr.
SYSTEM_LINK_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64")
SYSTEM_RO_DIRS = ("/usr", "/etc")


class SandboxError(RuntimeError):
    """The sandbox could not be set up as requested (not: the code under test failed)."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run resource limits; frozen so a shared default cannot be mutated."""

    timeout_s: float = 60
    cpu_s: int = 60
    memory_mb: int = 1024
    max_procs: int = 128
    max_file_mb: int = 50


@dataclass
class SandboxResult:
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    isolation: str


@dataclass
class TestOutcome:
    __test__ = False  # not a pytest test class despite the name

    nodeid: str
    outcome: str  # passed | failed | error | skipped


@dataclass
class PytestResult:
    __test__ = False

    passed: int
    failed: int
    errors: int
    skipped: int
    duration_s: float
    log: str
    tests: list[TestOutcome] = field(default_factory=list)
    isolation: str = "subprocess"
    timed_out: bool = False
    returncode: int = 0


# ----------------------------------------------------------------- backend choice
def sandbox_isolation() -> str:
    """ "bwrap" or "subprocess"; SANDBOX_BACKEND forces one (bwrap must then work)."""
    forced = os.environ.get("SANDBOX_BACKEND", "").strip().lower()
    if forced and forced not in BACKENDS:
        raise SandboxError(f"SANDBOX_BACKEND must be 'bwrap', 'docker' or 'subprocess', not {forced!r}.")
    if forced == "subprocess":
        return "subprocess"
    if forced == "docker":
        if not shutil.which("docker"):
            raise SandboxError("SANDBOX_BACKEND=docker, but the docker client was not found on PATH.")
        return "docker"
    usable, reason = _probe_bwrap()
    if forced == "bwrap" and not usable:
        raise SandboxError(f"SANDBOX_BACKEND=bwrap, but bubblewrap is not usable here: {reason}")
    return "bwrap" if usable else "subprocess"


@functools.lru_cache(maxsize=1)
def _probe_bwrap() -> tuple[bool, str]:
    """Trial-run ``true`` with our real bwrap arguments; cached for the process."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False, "the bwrap executable was not found on PATH."
    with tempfile.TemporaryDirectory() as tmp:
        argv = _bwrap_argv(bwrap, Path(tmp), _clean_env(None)) + ["true"]
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False, env={})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"trial run failed: {exc}"
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", errors="replace").strip()
        return False, f"trial run exited {proc.returncode}: {err}"
    return True, ""


# ----------------------------------------------------------------- running
def run_sandboxed(
    argv: list[str],
    *,
    workdir: Path,
    limits: SandboxLimits = SandboxLimits(),
    env: dict[str, str] | None = None,
) -> SandboxResult:
    """Run argv with workdir as the (only writable) working directory."""
    return _run(argv, _checked_workdir(workdir), limits, env, sandbox_isolation())


def _run(
    argv: list[str],
    workdir: Path,
    limits: SandboxLimits,
    env: Mapping[str, str] | None,
    isolation: str,
) -> SandboxResult:
    if not argv:
        raise SandboxError("Nothing to run: argv is empty.")
    clean = _clean_env(env)
    if isolation == "bwrap":
        full = _bwrap_argv(shutil.which("bwrap") or "bwrap", workdir, clean) + list(argv)
    elif isolation == "docker":
        full = docker_argv(workdir, clean, limits) + _container_argv(argv)
    else:
        full = list(argv)
    return _execute(full, workdir, clean, limits, isolation)


def _checked_workdir(workdir: Path) -> Path:
    real = Path(workdir).resolve()
    if not real.is_dir():
        raise SandboxError(f"Sandbox workdir does not exist or is not a directory: {workdir}")
    return real


def _clean_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The only environment the child sees: nothing inherited from the host."""
    env = {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin",
        "HOME": "/tmp",  # noqa: S108 - the sandbox's own private tmpfs
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }
    for key, value in (extra or {}).items():
        if not key or "=" in key or "\0" in key or "\0" in str(value):
            raise SandboxError(f"Invalid environment variable name or value: {key!r}.")
        env[key] = str(value)
    return env


def _bwrap_argv(bwrap: str, workdir: Path, env: Mapping[str, str]) -> list[str]:
    """bwrap options: fresh namespaces, read-only system, only workdir writable."""
    args = [
        bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]
    args.append("--clearenv")
    for key, value in env.items():
        args += ["--setenv", key, value]
    # The private /tmp comes first: mounts below may live under /tmp (a checkout there) and must stay visible.
    args += ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]  # noqa: S108 - private tmpfs
    for path in SYSTEM_RO_DIRS:
        args += ["--ro-bind", path, path]
    for path in SYSTEM_LINK_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for src, dest in _python_mounts():
        args += ["--ro-bind", src, dest]
    args += ["--bind", str(workdir), SANDBOX_WORKDIR]
    git_dir = workdir / ".git"
    if git_dir.is_dir() and not git_dir.is_symlink():
        # Sandboxed code must not plant hooks/config that host-side git would run.
        args += ["--ro-bind", str(git_dir), f"{SANDBOX_WORKDIR}/.git"]
    args += ["--remount-ro", "/", "--chdir", SANDBOX_WORKDIR]
    return args


def docker_argv(workdir: Path, env: Mapping[str, str], limits: SandboxLimits) -> list[str]:
    """A throwaway container: no network, read-only root, no capabilities, only the workspace writable.

    Used where a Docker engine exists and bubblewrap does not (SANDBOX_BACKEND=docker).
    """
    argv = ["docker", "run", "--rm", "-i", "--network", "none", "--read-only", "--tmpfs", "/tmp"]  # noqa: S108
    argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", f"{os.getuid()}:{os.getgid()}"]
    argv += ["--pids-limit", str(limits.max_procs), "--memory", f"{limits.memory_mb}m", "--cpus", "1"]
    argv += ["--ulimit", f"fsize={limits.max_file_mb * 1024 * 1024}", "--ulimit", f"cpu={limits.cpu_s}"]
    argv += ["-v", f"{workdir}:{SANDBOX_WORKDIR}:rw", "-w", SANDBOX_WORKDIR]
    for key, value in env.items():
        if key != "PATH":  # the image's own PATH finds its python
            argv += ["-e", f"{key}={value}"]
    return argv + [os.environ.get(DOCKER_IMAGE_ENV, DEFAULT_DOCKER_IMAGE)]


def _container_argv(argv: list[str]) -> list[str]:
    """Inside the image, the interpreter is the image's ``python``, not this host's."""
    return ["python", *argv[1:]] if argv and argv[0] == sys.executable else list(argv)


def _python_mounts() -> list[tuple[str, str]]:
    """(source, destination) pairs exposing just the interpreter and its packages."""
    wanted: dict[str, str] = {}
    exe_dir = os.path.dirname(os.path.realpath(sys.executable))
    for path in (sys.prefix, sys.base_prefix, os.path.dirname(sys.executable), exe_dir):
        real = os.path.realpath(path)
        wanted.setdefault(os.path.abspath(path), real)
        wanted.setdefault(real, real)
    covered = list(SYSTEM_RO_DIRS)
    mounts: list[tuple[str, str]] = []
    for dest in sorted(wanted, key=len):
        if not any(_is_within(dest, c) for c in covered):
            mounts.append((wanted[dest], dest))
            covered.append(dest)
    return mounts


def _is_within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _execute(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    limits: SandboxLimits,
    isolation: str,
) -> SandboxResult:
    """Spawn in a new session with rlimits; kill the whole group on timeout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_limiter(limits),  # noqa: PLW1509 - limits must apply pre-exec
            )
        except OSError as exc:
            return SandboxResult(127, "", f"Could not start {argv[0]!r}: {exc}", 0.0, False, isolation)
        timed_out = not _wait_unreaped(proc.pid, limits.timeout_s)
        _kill_group(proc.pid)  # also reaps background children left behind
        returncode = proc.wait()
        duration = time.monotonic() - start
        stdout, stderr = _read_capped(out), _read_capped(err)
    if timed_out:
        stderr += f"\n[sandbox: killed after the {limits.timeout_s:g}s wall-clock timeout]\n"
    return SandboxResult(returncode, stdout, stderr, duration, timed_out, isolation)


def _wait_unreaped(pid: int, timeout_s: float) -> bool:
    """Wait for exit without reaping, so the pid (= process group id) stays ours to kill."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _limiter(limits: SandboxLimits) -> Callable[[], None]:
    """preexec_fn setting rlimits in the child; inherited by bwrap and its payload."""
    mb = 1024 * 1024
    wanted = (
        (resource.RLIMIT_CPU, limits.cpu_s, limits.cpu_s + 1),
        (resource.RLIMIT_AS, limits.memory_mb * mb, limits.memory_mb * mb),
        (resource.RLIMIT_NPROC, limits.max_procs, limits.max_procs),
        (resource.RLIMIT_FSIZE, limits.max_file_mb * mb, limits.max_file_mb * mb),
        (resource.RLIMIT_CORE, 0, 0),
    )

    def apply() -> None:
        for kind, soft, hard in wanted:
            _, current_hard = resource.getrlimit(kind)
            if current_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, current_hard), min(hard, current_hard)
            resource.setrlimit(kind, (soft, hard))

    return apply


def _read_capped(handle: BinaryIO) -> str:
    """Whole output if small, else head + tail with a visible truncation marker."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(0)
    if size <= OUTPUT_LIMIT_BYTES:
        return handle.read().decode("utf-8", errors="replace")
    head = handle.read(OUTPUT_HEAD_BYTES)
    tail_len = OUTPUT_LIMIT_BYTES - OUTPUT_HEAD_BYTES
    handle.seek(size - tail_len)
    tail = handle.read(tail_len)
    marker = f"\n[... output truncated: {size - len(head) - len(tail)} of {size} bytes omitted ...]\n"
    return head.decode("utf-8", errors="replace") + marker + tail.decode("utf-8", errors="replace")


# ----------------------------------------------------------------- pytest
def run_pytest(workdir: Path, *, limits: SandboxLimits = SandboxLimits()) -> PytestResult:
    """Run the workspace's tests in the sandbox and summarise them from JUnit XML."""
    workdir = _checked_workdir(workdir)
    isolation = sandbox_isolation()
    # A unique name per run: parallel steps may test the same workspace at once.
    report_rel = f"{REPORT_DIR}/junit-{uuid.uuid4().hex}.xml"
    _prepare_report_dir(workdir)
    xml_host = workdir / report_rel
    xml_arg = f"{SANDBOX_WORKDIR}/{report_rel}" if isolation in ("bwrap", "docker") else str(xml_host)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={xml_arg}",
    ]
    try:
        run = _run(argv, workdir, limits, None, isolation)
        tests, problem = _read_junit(xml_host, workdir)
    finally:
        _unlink_quietly(xml_host)
    return _summarise(run, tests, problem)


def _prepare_report_dir(workdir: Path) -> None:
    """Ensure .mo is a real directory, not a symlink planted by earlier sandboxed code."""
    mo_dir = workdir / REPORT_DIR
    if mo_dir.is_symlink() or (mo_dir.exists() and not mo_dir.is_dir()):
        mo_dir.unlink()
    mo_dir.mkdir(exist_ok=True)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(path, ignore_errors=True)


def _read_junit(path: Path, workdir: Path) -> tuple[list[TestOutcome] | None, str]:
    """Parsed outcomes, or None plus a reason; refuses symlinks and oversized files."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None, "pytest did not write a JUnit report"
    except OSError as exc:
        return None, f"the JUnit report could not be opened ({exc.strerror})"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None, "the JUnit report is not a regular file"
        if info.st_size > JUNIT_MAX_BYTES:
            return None, f"the JUnit report is too large ({info.st_size} bytes)"
        data = handle.read(JUNIT_MAX_BYTES + 1)
    try:
        root = DefusedET.fromstring(data)  # written by untrusted code: no entities, no expansion
    except (ET.ParseError, DefusedXmlException) as exc:
        return None, f"the JUnit report is not valid XML ({exc})"
    return [_outcome(case, workdir) for case in root.iter("testcase")], ""


def _outcome(case: ET.Element, workdir: Path) -> TestOutcome:
    kinds = {"failure": "failed", "error": "error", "skipped": "skipped"}
    outcome = next((kinds[c.tag] for c in case if c.tag in kinds), "passed")
    return TestOutcome(_nodeid(case.get("classname", ""), case.get("name", ""), workdir), outcome)


def _nodeid(classname: str, name: str, workdir: Path) -> str:
    """Turn JUnit's dotted classname back into a pytest-style ``path.py::Class::name``."""
    parts = [p for p in classname.split(".") if p]
    for cut in range(len(parts), 0, -1):
        module = "/".join(parts[:cut]) + ".py"
        if (workdir / module).is_file():
            return "::".join([module, *parts[cut:], name])
    return "::".join([*([classname] if classname else []), name])


def _summarise(run: SandboxResult, tests: list[TestOutcome] | None, problem: str) -> PytestResult:
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for test in tests or []:
        counts[test.outcome] += 1
    notes = []
    if run.timed_out:
        notes.append(f"Tests were stopped: wall-clock timeout after {run.duration_s:.1f}s.")
    if run.returncode == 5:
        notes.append("pytest collected no tests (exit code 5).")
    elif tests is None:
        counts["error"] = max(counts["error"], 1)
        notes.append(f"Could not read test results: {problem}.")
    elif run.returncode != 0 and counts["failed"] + counts["error"] == 0:
        counts["error"] = 1
        notes.append(f"pytest exited with code {run.returncode} without reporting a failure.")
    header = "".join(f"[sandbox] {note}\n" for note in notes)
    return PytestResult(
        passed=counts["passed"],
        failed=counts["failed"],
        errors=counts["error"],
        skipped=counts["skipped"],
        duration_s=run.duration_s,
        log=header + run.stdout + run.stderr,
        tests=tests or [],
        isolation=run.isolation,
        timed_out=run.timed_out,
        returncode=run.returncode,
    )
