"""Run untrusted code (model-written tests and scripts) in a sandbox.

The backend is bubblewrap: no network, private pid/ipc/uts namespaces, an
unprivileged host uid (a root worker drops to SANDBOX_UID/SANDBOX_GID, so
RLIMIT_NPROC holds), a minimal generated /etc, a read-only view of /usr plus
the Python install, a size-limited private /tmp, and only the workspace
writable. After each run the workspace is taken back: setuid/setgid bits are
stripped, ownership returns to the worker, and growth beyond SANDBOX_DISK_MB
fails the run.

Without a usable bwrap nothing runs (SandboxError) unless the operator chose
SANDBOX_BACKEND=subprocess, a plain subprocess with limits, a clean
environment and a timeout but full network and host filesystem access;
``isolation`` says which one ran.
"""

from __future__ import annotations

import atexit
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
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

MB = 1024 * 1024
OUTPUT_LIMIT_BYTES = 64 * 1024
OUTPUT_HEAD_BYTES = 16 * 1024
JUNIT_MAX_BYTES = 5_000_000
SANDBOX_WORKDIR = "/workspace"
SHM_MB = 16
REPORT_MOUNT = "/sandbox-report"  # the JUnit report's own directory, outside the workspace
PROBE_TIMEOUT_S = 15
BACKENDS = ("bwrap", "docker", "subprocess")
# The docker backend runs each command in a throwaway container of this image (it needs python + pytest).
DOCKER_IMAGE_ENV = "SANDBOX_DOCKER_IMAGE"
DEFAULT_DOCKER_IMAGE = "python:3.11-slim"

# Top-level system dirs; on merged-/usr systems they are symlinks into /usr.
SYSTEM_LINK_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64")
SYSTEM_RO_DIRS = ("/usr",)
# The sandbox's /etc is generated (see _private_etc); only these harmless host files are copied into it.
ETC_COPIED = ("ld.so.cache", "localtime", "os-release", "protocols", "services", "mime.types", "ssl/openssl.cnf")
ETC_COPIED_TREES = ("ssl/certs", "alternatives")
# Host uid/gid a root worker runs sandboxed code as ("nobody" unless configured).
UID_ENV, GID_ENV = "SANDBOX_UID", "SANDBOX_GID"
DEFAULT_SANDBOX_ID = 65534
BWRAP_INSTALL_HINT = (
    "Install bubblewrap (apt-get install bubblewrap), or set SANDBOX_BACKEND=subprocess "
    "to accept the weaker sandbox (no network or filesystem isolation)."
)


class SandboxError(RuntimeError):
    """The sandbox could not be set up as requested (not: the code under test failed)."""


def _env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SandboxError(f"{name} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise SandboxError(f"{name} must be at least {minimum}, not {value}.")
    return value


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run resource limits; frozen so a shared default cannot be mutated."""

    timeout_s: float = 60
    cpu_s: int = 60
    memory_mb: int = 1024
    max_procs: int = 128
    max_file_mb: int = 50
    # The private /tmp is memory; RLIMIT_AS does not count it, so it has its own cap.
    tmp_mb: int = field(default_factory=lambda: _env_int("SANDBOX_TMP_MB", 128, minimum=1))
    # How much one run may grow the workspace on disk (checked after the run).
    disk_mb: int = field(default_factory=lambda: _env_int("SANDBOX_DISK_MB", 200, minimum=1))


@dataclass
class SandboxResult:
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    isolation: str
    limit_exceeded: str = ""  # a limit checked after the run (workspace growth); the run then counts as failed


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
    """The backend that will run code: "bwrap", or what SANDBOX_BACKEND chose explicitly.

    There is no silent fallback: without a usable bubblewrap this raises, naming the fix.
    """
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
    if not usable:
        chosen = "SANDBOX_BACKEND=bwrap, but bubblewrap" if forced else "No sandbox for model-written code: bubblewrap"
        raise SandboxError(f"{chosen} is not usable here ({reason}). {BWRAP_INSTALL_HINT}")
    return "bwrap"


def sandbox_status() -> tuple[str, str]:
    """(backend or "", one line for a start-up banner): which sandbox runs generated code, or why none."""
    try:
        backend = sandbox_isolation()
    except SandboxError as error:
        return "", f"Sandbox: none, model-written code will not run. {error}"
    if backend == "subprocess":
        return backend, "Sandbox: subprocess (weaker sandbox, chosen by SANDBOX_BACKEND): no network or file isolation."
    if backend == "docker":
        return backend, "Sandbox: docker (a throwaway container per run, no network)."
    ids = _sandbox_ids()
    who = f"uid {ids[0]}" if ids else f"the worker's uid {os.getuid()}"
    return backend, f"Sandbox: bubblewrap, no network, as {who} in its own user namespace."


@functools.lru_cache(maxsize=1)
def _probe_bwrap() -> tuple[bool, str]:
    """Trial-run ``true`` with our real bwrap arguments; cached for the process."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False, "the bwrap executable was not found on PATH."
    try:
        ids = _sandbox_ids()
        if ids and not shutil.which("setpriv"):
            return False, "setpriv (util-linux) was not found on PATH; a root worker needs it to drop privileges"
        with tempfile.TemporaryDirectory() as tmp:
            _claim_tree(Path(tmp), ids)
            argv = _bwrap_argv(bwrap, Path(tmp), _clean_env(None), SandboxLimits(tmp_mb=1, disk_mb=1)) + ["true"]
            proc = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False, env={})
    except (OSError, subprocess.TimeoutExpired, SandboxError) as exc:
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
    limits: SandboxLimits | None = None,
    env: dict[str, str] | None = None,
) -> SandboxResult:
    """Run argv with workdir as the (only writable) working directory."""
    return _run(argv, _checked_workdir(workdir), limits or SandboxLimits(), env, sandbox_isolation())


def _run(
    argv: list[str],
    workdir: Path,
    limits: SandboxLimits,
    env: Mapping[str, str] | None,
    isolation: str,
    binds: tuple[tuple[Path, str], ...] = (),
) -> SandboxResult:
    """Run in the chosen backend; ``binds`` are extra writable (host dir, sandbox path) pairs."""
    if not argv:
        raise SandboxError("Nothing to run: argv is empty.")
    clean = _clean_env(env)
    ids = _sandbox_ids() if isolation in ("bwrap", "docker") else None
    if isolation == "bwrap":
        full = _bwrap_argv(shutil.which("bwrap") or "bwrap", workdir, clean, limits, binds) + list(argv)
    elif isolation == "docker":
        full = docker_argv(workdir, clean, limits, binds=binds) + _container_argv(argv)
    else:
        full = list(argv)
    before = _claim_tree(workdir, ids)
    for host_dir, _ in binds:
        _claim_tree(host_dir, ids)
    try:
        result = _execute(full, workdir, clean, limits, isolation)
    finally:
        grown = _reclaim_tree(workdir, restore=ids is not None) - before
        for host_dir, _ in binds:
            _reclaim_tree(host_dir, restore=ids is not None)
    if grown > limits.disk_mb * MB:
        result.limit_exceeded = (
            f"the run grew the workspace by {grown / MB:.1f} MB, more than the {limits.disk_mb} MB "
            "allowed per run (SANDBOX_DISK_MB); the run counts as failed"
        )
        result.stderr += f"\n[sandbox: {result.limit_exceeded}]\n"
        result.returncode = result.returncode or 1
    return result


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


def _sandbox_ids() -> tuple[int, int] | None:
    """The unprivileged host (uid, gid) a root worker runs code as; None when the worker is not root.

    RLIMIT_NPROC does not apply to root, not even as "another" uid inside a user namespace
    created by root (the kernel still sees uid 0), so a root worker must really switch uid.
    """
    if os.geteuid() != 0:
        return None
    uid = _env_int(UID_ENV, DEFAULT_SANDBOX_ID, minimum=1)
    gid = _env_int(GID_ENV, DEFAULT_SANDBOX_ID, minimum=1)
    return uid, gid


def _bwrap_argv(
    bwrap: str,
    workdir: Path,
    env: Mapping[str, str],
    limits: SandboxLimits,
    binds: tuple[tuple[Path, str], ...] = (),
) -> list[str]:
    """bwrap options: fresh namespaces, an unprivileged uid, read-only system, only workdir (and binds) writable.

    A root worker cannot let bwrap drop to the sandbox uid itself (a user namespace made by root maps to
    root), nor start bwrap as that uid (it could not reach a Python install under /root). So the outer
    bwrap builds the filesystem as root, keeping only CAP_SETUID/CAP_SETGID; setpriv then becomes the
    sandbox uid with no capabilities, and an inner bwrap adds a user namespace that forbids nested ones.
    """
    ids = _sandbox_ids()
    uid, gid = ids or (os.getuid(), os.getgid())
    args = [bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--die-with-parent", "--new-session"]
    if ids:
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--disable-userns", "--uid", str(uid), "--gid", str(gid), "--cap-drop", "ALL"]
    args.append("--clearenv")
    for key, value in env.items():
        args += ["--setenv", key, value]
    # The private /tmp comes first: mounts below may live under /tmp (a checkout there) and must stay visible.
    args += ["--size", str(limits.tmp_mb * MB), "--perms", "1777", "--tmpfs", "/tmp"]  # noqa: S108 - private tmpfs
    args += ["--proc", "/proc", "--dev", "/dev"]
    # /dev itself stays read-only; POSIX semaphores and shared memory get a small capped tmpfs.
    args += ["--size", str(SHM_MB * MB), "--perms", "1777", "--tmpfs", "/dev/shm"]  # noqa: S108 - private
    for path in SYSTEM_RO_DIRS:
        args += ["--ro-bind", path, path]
    for path in SYSTEM_LINK_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--ro-bind", str(_private_etc(uid, gid)), "/etc"]
    made: set[str] = set()
    for src, dest in _python_mounts():
        args += _open_parents(dest, made) + ["--ro-bind", src, dest]
    args += ["--bind", str(workdir), SANDBOX_WORKDIR]
    git_dir = workdir / ".git"
    if git_dir.is_dir() and not git_dir.is_symlink():
        # Sandboxed code must not plant hooks/config that host-side git would run.
        args += ["--ro-bind", str(git_dir), f"{SANDBOX_WORKDIR}/.git"]
    for host_dir, dest in binds:
        args += ["--bind", str(host_dir), dest]
    args += ["--remount-ro", "/"]
    if not ids:
        return args + ["--chdir", SANDBOX_WORKDIR]
    if ids:  # the outer bwrap has no CAP_DAC_OVERRIDE left: only the inner one enters the workspace
        setpriv = shutil.which("setpriv") or "setpriv"
        args += [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all"]
        args += ["--bounding-set=-all", "--no-new-privs"]
        args += [bwrap, "--unshare-user", "--disable-userns", "--uid", str(uid), "--gid", str(gid)]
        args += ["--bind", "/", "/", "--dev-bind", "/dev", "/dev", "--die-with-parent", "--chdir", SANDBOX_WORKDIR]
    return args


def _open_parents(dest: str, made: set[str]) -> list[str]:
    """--dir 0755 for each parent bwrap would otherwise create with the host's mode (e.g. /root is 0700)."""
    args: list[str] = []
    parts = Path(dest).parts[1:-1]
    for index in range(1, len(parts) + 1):
        parent = "/" + "/".join(parts[:index])
        if parent not in made and not any(_is_within(parent, d) for d in SYSTEM_RO_DIRS):
            made.add(parent)
            args += ["--perms", "0755", "--dir", parent]
    return args


@functools.lru_cache(maxsize=4)
def _private_etc(uid: int, gid: int) -> Path:
    """A minimal /etc, made once per process: the sandbox user, no name servers, certificates, no secrets."""
    etc = Path(tempfile.mkdtemp(prefix="mo-sandbox-etc-"))
    atexit.register(shutil.rmtree, etc, True)
    etc.chmod(0o755)
    files = {
        "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:{uid}:{gid}:sandbox:/tmp:/usr/sbin/nologin\n",
        "group": f"root:x:0:\nsandbox:x:{gid}:\n",
        "hosts": "127.0.0.1 localhost\n::1 localhost\n",
        "resolv.conf": "",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
        "hostname": "sandbox\n",
    }
    for name, text in files.items():
        (etc / name).write_text(text, encoding="utf-8")
    host = Path("/etc")
    for name in ETC_COPIED:
        src = host / name
        if src.is_file():
            (etc / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, etc / name)
    for name in ETC_COPIED_TREES:
        if (host / name).is_dir():
            shutil.copytree(host / name, etc / name, symlinks=True, dirs_exist_ok=True)
    for path in [etc, *etc.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return etc


def _claim_tree(root: Path, ids: tuple[int, int] | None) -> int:
    """Hand the tree (not .git) to the sandbox uid so it can write there; returns its size on disk."""
    total = 0
    for path, info in _walk(root):
        total += info.st_blocks * 512
        if ids:
            os.lchown(path, *ids)
    return total


def _reclaim_tree(root: Path, *, restore: bool) -> int:
    """After a run: strip setuid/setgid bits, give files back to the worker; returns the size on disk.

    Nothing sandboxed is still running (the pid namespace died with bwrap), so this walk cannot be raced.
    """
    total = 0
    for path, info in _walk(root):
        total += info.st_blocks * 512
        if restore:
            os.lchown(path, os.getuid(), os.getgid())  # as root, chown also clears setuid bits
        if not stat.S_ISLNK(info.st_mode) and info.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(path, stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
    return total


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry below root (root included, .git excluded), never following a symlink."""
    stack = [str(root)]
    yield str(root), os.lstat(root)
    while stack:
        current = stack.pop()
        try:
            entries = _scandir(current)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if current == str(root) and entry.name == ".git":
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield entry.path, info
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)


def _scandir(path: str) -> list[os.DirEntry]:
    """List a directory, first opening it up if sandboxed code made it unreadable (so nothing hides there)."""
    try:
        return list(os.scandir(path))
    except PermissionError:
        os.chmod(path, 0o700)
        return list(os.scandir(path))


def docker_argv(
    workdir: Path,
    env: Mapping[str, str],
    limits: SandboxLimits,
    *,
    binds: tuple[tuple[Path, str], ...] = (),
) -> list[str]:
    """A throwaway container: no network, read-only root, no capabilities, only the workspace writable.

    Used where a Docker engine exists and bubblewrap does not (SANDBOX_BACKEND=docker).
    """
    uid, gid = _sandbox_ids() or (os.getuid(), os.getgid())
    argv = ["docker", "run", "--rm", "-i", "--network", "none", "--read-only"]
    argv += ["--tmpfs", f"/tmp:size={limits.tmp_mb}m"]  # noqa: S108
    argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", f"{uid}:{gid}"]
    argv += ["--pids-limit", str(limits.max_procs), "--memory", f"{limits.memory_mb}m", "--cpus", "1"]
    argv += ["--ulimit", f"fsize={limits.max_file_mb * MB}", "--ulimit", f"cpu={limits.cpu_s}"]
    argv += ["-v", f"{workdir}:{SANDBOX_WORKDIR}:rw", "-w", SANDBOX_WORKDIR]
    for host_dir, dest in binds:
        argv += ["-v", f"{host_dir}:{dest}:rw"]
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
def run_pytest(workdir: Path, *, limits: SandboxLimits | None = None) -> PytestResult:
    """Run the workspace's tests in the sandbox and summarise them from JUnit XML.

    The report goes to a private directory outside the workspace, so nothing the code under test left
    in the workspace can stand in for it. The product's own pytest plugins stay out of the run
    (no entry-point autoloading); a workspace that brings its own configuration is flagged at commit.
    """
    workdir = _checked_workdir(workdir)
    isolation = sandbox_isolation()
    report_dir = Path(tempfile.mkdtemp(prefix="mo-report-"))
    xml_host = report_dir / "junit.xml"
    sandboxed = isolation in ("bwrap", "docker")
    xml_arg = f"{REPORT_MOUNT}/junit.xml" if sandboxed else str(xml_host)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml_arg}"]
    env = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    try:
        binds = ((report_dir, REPORT_MOUNT),) if sandboxed else ()
        run = _run(argv, workdir, limits or SandboxLimits(), env, isolation, binds)
        tests, problem = _read_junit(xml_host, workdir)
    finally:
        shutil.rmtree(report_dir, ignore_errors=True)
    return _summarise(run, tests, problem)


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
    if run.limit_exceeded:
        counts["error"] = max(counts["error"], 1)
        notes.append(f"The run failed a sandbox limit: {run.limit_exceeded}.")
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
