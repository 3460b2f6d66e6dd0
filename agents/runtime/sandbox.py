"""Run untrusted code (model-written tests and scripts) in a sandbox.

The backend is bubblewrap: no network, private pid/ipc/uts namespaces, an
unprivileged host uid of its own per run (a root worker takes a free slot of
SANDBOX_UID_BASE + 0..SANDBOX_UID_SLOTS-1, so RLIMIT_NPROC is per run and every
process of the run can be found and killed afterwards), a minimal generated
/etc, a read-only view of /usr plus the Python install, a size-limited private
/tmp, and only the workspace writable. After each run every process of the
run's uid is killed, then the workspace is taken back through pinned directory
file descriptors (never by path, so a symlink swapped in cannot redirect it):
setuid/setgid bits are stripped, ownership returns to the worker, and growth
beyond SANDBOX_DISK_MB or SANDBOX_MAX_FILES new entries fails the run.

Without a usable bwrap nothing runs (SandboxError) unless the operator chose
SANDBOX_BACKEND=subprocess, a plain subprocess with limits, a clean
environment and a timeout but full network and host filesystem access;
``isolation`` says which one ran.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import resource
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

from telemetry.tracing import span

MB = 1024 * 1024
OUTPUT_LIMIT_BYTES = 64 * 1024
OUTPUT_HEAD_BYTES = 16 * 1024
JUNIT_MAX_BYTES = 5_000_000
SANDBOX_WORKDIR = "/workspace"
SHM_MB = 16
# The JUnit report: one pre-made host file bind-mounted here (a mount point cannot be renamed over,
# unlinked or swapped for a FIFO; its size is bounded by RLIMIT_FSIZE).
REPORT_MOUNT = "/sandbox-report.xml"
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
# A root worker runs each sandboxed run as its own host uid (= gid): SANDBOX_UID_BASE + a free slot.
UID_BASE_ENV, SLOTS_ENV, STATE_DIR_ENV = "SANDBOX_UID_BASE", "SANDBOX_UID_SLOTS", "SANDBOX_STATE_DIR"
DEFAULT_UID_BASE = 200_000  # above the usual subuid ranges (100000-165535) and nobody (65534)
DEFAULT_SLOTS = 64
SLOT_WAIT_S = 60  # how long a run waits for a free slot before giving up
KILL_WAIT_S = 5  # how long to keep killing a finished run's processes
ROOT_STATE_DIR = "/run/mission-orchestrator-sandbox"
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
    # A real project's whole suite needs room: CPU seconds and address space (RLIMIT_AS counts virtual memory).
    cpu_s: int = field(default_factory=lambda: _env_int("SANDBOX_CPU_S", 120, minimum=1))
    memory_mb: int = field(default_factory=lambda: _env_int("SANDBOX_MEMORY_MB", 2048, minimum=64))
    max_procs: int = 128
    max_file_mb: int = 50
    # The private /tmp is memory; RLIMIT_AS does not count it, so it has its own cap.
    tmp_mb: int = field(default_factory=lambda: _env_int("SANDBOX_TMP_MB", 128, minimum=1))
    # How much one run may grow the workspace on disk (checked after the run).
    disk_mb: int = field(default_factory=lambda: _env_int("SANDBOX_DISK_MB", 200, minimum=1))
    # How many new files/directories one run may leave in the workspace (empty files use no blocks).
    max_files: int = field(default_factory=lambda: _env_int("SANDBOX_MAX_FILES", 20_000, minimum=1))


@dataclass
class SandboxResult:
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    isolation: str
    limit_exceeded: str = ""  # a limit checked after the run (workspace growth); the run then counts as failed


@dataclass(frozen=True)
class Mount:
    """A host directory the sandbox sees at the same path (a project's environment), read-only unless writable."""

    path: Path
    writable: bool = False


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
    if os.geteuid() == 0:
        base, slots = _uid_range()
        who = f"a uid of its own per run ({base}-{base + slots - 1})"
    else:
        who = f"the worker's uid {os.getuid()}"
    return backend, f"Sandbox: bubblewrap, no network, as {who} in its own user namespace."


@functools.lru_cache(maxsize=1)
def _probe_bwrap() -> tuple[bool, str]:
    """Trial-run ``true`` with our real bwrap arguments; cached for the process."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False, "the bwrap executable was not found on PATH."
    try:
        if os.geteuid() == 0 and not shutil.which("setpriv"):
            return False, "setpriv (util-linux) was not found on PATH; a root worker needs it to drop privileges"
        with tempfile.TemporaryDirectory() as tmp, _run_ids("bwrap") as ids:
            _claim_tree(Path(tmp), ids)
            limits = SandboxLimits(tmp_mb=1, disk_mb=1)
            argv = _bwrap_argv(bwrap, Path(tmp), _clean_env(None), limits, ids=ids) + ["true"]
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
    *,
    mounts: tuple[Mount, ...] = (),
    network: bool = False,
) -> SandboxResult:
    """Run in the chosen backend; ``binds`` are extra writable (host file we made, sandbox path) pairs,
    ``mounts`` extra directories at their own path (an environment), ``network`` lets the run reach the net."""
    if not argv:
        raise SandboxError("Nothing to run: argv is empty.")
    if mounts and isolation == "docker":
        raise SandboxError("A project environment (setup command) needs SANDBOX_BACKEND=bwrap or subprocess.")
    clean = _clean_env(env)
    with _run_ids(isolation) as ids:
        if isolation == "bwrap":
            bwrap = shutil.which("bwrap") or "bwrap"
            full = _bwrap_argv(bwrap, workdir, clean, limits, binds, ids=ids, mounts=mounts, network=network)
            full += list(argv)
        elif isolation == "docker":
            full = docker_argv(workdir, clean, limits, binds=binds, ids=ids, network=network) + _container_argv(argv)
        else:
            full = list(argv)
        before = _claim_tree(workdir, ids)
        for host_file, _ in binds:  # made by us in a private directory: safe to chown by path
            if ids:
                os.chown(host_file, *ids, follow_symlinks=False)
        for mount in mounts:
            if mount.writable and ids:
                _claim_tree(mount.path, ids)
        try:
            with span("sandbox.run", current=False, sandbox_isolation=isolation, sandbox_program=argv[0]):
                result = _execute(full, workdir, clean, limits, isolation)
        finally:
            survivors = _kill_uid(ids[0]) if ids else []  # before the reclaim: nothing of the run may still act
            after = _reclaim_tree(workdir, restore=ids is not None)
            for mount in mounts:
                if mount.writable:
                    _reclaim_tree(mount.path, restore=ids is not None)
    if survivors:
        result.stderr += f"\n[sandbox: processes {survivors[:5]} survived SIGKILL for {KILL_WAIT_S}s]\n"
    grown, added = after[0] - before[0], after[1] - before[1]
    if grown > limits.disk_mb * MB:
        _fail_limit(
            result,
            f"the run grew the workspace by {grown / MB:.1f} MB, more than the {limits.disk_mb} MB "
            "allowed per run (SANDBOX_DISK_MB); the run counts as failed",
        )
    elif added > limits.max_files:
        _fail_limit(
            result,
            f"the run added {added} files and directories to the workspace, more than the {limits.max_files} "
            "allowed per run (SANDBOX_MAX_FILES); the run counts as failed",
        )
    return result


def _fail_limit(result: SandboxResult, reason: str) -> None:
    result.limit_exceeded = reason
    result.stderr += f"\n[sandbox: {reason}]\n"
    result.returncode = result.returncode or 1


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


def _uid_range() -> tuple[int, int]:
    """(first uid, how many) of the per-run uids a root worker hands out."""
    base = _env_int(UID_BASE_ENV, DEFAULT_UID_BASE, minimum=1)
    slots = _env_int(SLOTS_ENV, DEFAULT_SLOTS, minimum=1)
    if base + slots > 2**31 - 2:
        raise SandboxError(f"{UID_BASE_ENV} + {SLOTS_ENV} must stay below 2**31.")
    return base, slots


def _state_dir() -> Path:
    """A directory only the worker can write: per-uid slot locks and the private /etc live there."""
    raw = os.environ.get(STATE_DIR_ENV, "").strip()
    if raw:
        path = Path(raw)
    elif os.geteuid() == 0:
        path = Path(ROOT_STATE_DIR)
    else:
        path = Path(tempfile.gettempdir()) / f"mo-sandbox-{os.geteuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise SandboxError(f"{path} must be a directory owned by uid {os.geteuid()} that no one else can write.")
    return path


@contextmanager
def _run_ids(isolation: str) -> Iterator[tuple[int, int] | None]:
    """The (uid, gid) one run owns for its whole life; None when the worker is not root.

    RLIMIT_NPROC does not apply to root, not even as "another" uid inside a user namespace created by
    root, so a root worker must really switch uid. A uid of its own per run keeps one run's processes
    from eating another's RLIMIT_NPROC, and lets the end of the run find and kill all of them. The slot
    is held by a non-blocking flock on a lock file, so worker processes on one host never share a uid.
    A non-root worker cannot switch uid: its runs keep the worker's uid (shared pool, killed via bwrap).
    """
    if isolation not in ("bwrap", "docker") or os.geteuid() != 0:
        yield None
        return
    base, slots = _uid_range()
    lock_dir = _state_dir() / "slots"
    lock_dir.mkdir(mode=0o700, exist_ok=True)
    deadline = time.monotonic() + SLOT_WAIT_S
    first = os.getpid() % slots
    while True:
        for offset in range(slots):
            slot = (first + offset) % slots
            fd = os.open(lock_dir / f"{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            uid = base + slot
            try:
                _kill_uid(uid)  # a worker that died mid-run may have left its processes behind
                yield uid, uid
            finally:
                _kill_uid(uid)
                os.close(fd)  # releases the slot
            return
        if time.monotonic() > deadline:
            raise SandboxError(f"All {slots} sandbox uid slots stayed busy for {SLOT_WAIT_S}s ({SLOTS_ENV}).")
        time.sleep(0.05)


def _kill_uid(uid: int) -> list[int]:
    """SIGKILL every live process running as ``uid`` until none is left; returns survivors after KILL_WAIT_S.

    Needed because killing bwrap's process group leaves the inner session running until pdeathsig
    reaches it, and a forked-off child may have escaped the group with setsid.
    """
    deadline = time.monotonic() + KILL_WAIT_S
    while True:
        pids = _pids_of(uid)
        if not pids or time.monotonic() > deadline:
            return pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.002)


def _pids_of(uid: int) -> list[int]:
    """Live (not zombie) processes whose real, effective, saved or fs uid is ``uid``."""
    wanted = str(uid)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", encoding="ascii", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        state, uids = "", []
        for line in text.splitlines():
            if line.startswith("State:"):
                state = (line.split() + [""])[1]
            elif line.startswith("Uid:"):
                uids = line.split()[1:]
                break
        if wanted in uids and state not in ("Z", "X"):
            found.append(int(name))
    return found


def _bwrap_argv(
    bwrap: str,
    workdir: Path,
    env: Mapping[str, str],
    limits: SandboxLimits,
    binds: tuple[tuple[Path, str], ...] = (),
    *,
    ids: tuple[int, int] | None,
    mounts: tuple[Mount, ...] = (),
    network: bool = False,
) -> list[str]:
    """bwrap options: fresh namespaces, an unprivileged uid, read-only system, only workdir (and binds) writable.

    ``network`` (a setup command only) keeps the host's network namespace and a /etc that can resolve names.

    A root worker cannot let bwrap drop to the sandbox uid itself (a user namespace made by root maps to
    root), nor start bwrap as that uid (it could not reach a Python install under /root). So the outer
    bwrap builds the filesystem as root, keeping only CAP_SETUID/CAP_SETGID; setpriv then becomes the
    sandbox uid with no capabilities, and an inner bwrap adds a user namespace that forbids nested ones.
    """
    uid, gid = ids or (os.getuid(), os.getgid())
    args = [bwrap, "--unshare-ipc", "--unshare-pid", *([] if network else ["--unshare-net"])]
    args += ["--unshare-uts", "--unshare-cgroup-try"]
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
    args += ["--ro-bind", str(_private_etc(_etc_users(ids), network=network)), "/etc"]
    made: set[str] = set()
    for src, dest in _python_mounts():
        args += _open_parents(dest, made) + ["--ro-bind", src, dest]
    for mount in mounts:
        args += _open_parents(str(mount.path), made)
        args += ["--bind" if mount.writable else "--ro-bind", str(mount.path), str(mount.path)]
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


def _etc_users(ids: tuple[int, int] | None) -> tuple[tuple[int, int], ...]:
    """The uids the private /etc names: every slot of a root worker (one /etc for all runs), else the worker."""
    if ids is None:
        return ((os.getuid(), os.getgid()),)
    base, slots = _uid_range()
    return tuple((uid, uid) for uid in range(base, base + slots))


def _private_etc(users: tuple[tuple[int, int], ...], *, network: bool = False) -> Path:
    """A minimal /etc (the sandbox users, certificates, no secrets), rebuilt when missing.

    Name servers only with ``network``: then the host's resolv.conf and hosts are copied in.
    """
    resolver = _host_resolver() if network else ()
    etc = _cached_etc(users, resolver)
    if not (etc / "passwd").is_file():  # a tmp cleaner (or an operator) removed it: make it again
        _cached_etc.cache_clear()
        etc = _cached_etc(users, resolver)
    return etc


def _host_resolver() -> tuple[tuple[str, str], ...]:
    """(name, text) of the host's /etc files that name resolution and package indexes need (pip.conf: a
    company index or CA bundle the worker's own pip uses)."""
    found = []
    for name in ("resolv.conf", "hosts", "pip.conf"):
        try:
            found.append((name, Path("/etc", name).read_text(encoding="utf-8", errors="replace")))
        except OSError:
            continue
    return (*found, ("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"))


@functools.lru_cache(maxsize=8)
def _cached_etc(users: tuple[tuple[int, int], ...], resolver: tuple[tuple[str, str], ...] = ()) -> Path:
    """Build the /etc once per content in the state dir; racing workers each build one, the first rename wins."""
    files = {
        "passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        + "".join(f"sandbox{n}:x:{uid}:{gid}:sandbox:/tmp:/usr/sbin/nologin\n" for n, (uid, gid) in enumerate(users)),
        "group": "root:x:0:\n" + "".join(f"sandbox{n}:x:{gid}:\n" for n, (_, gid) in enumerate(sorted(set(users)))),
        "hosts": "127.0.0.1 localhost\n::1 localhost\n",
        "resolv.conf": "",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
        "hostname": "sandbox\n",
        **dict(resolver),
    }
    digest = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:16]
    state = _state_dir()
    final = state / f"etc-{digest}"
    if (final / "passwd").is_file():
        return final
    etc = Path(tempfile.mkdtemp(prefix="etc-new-", dir=state))
    try:
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
        if final.exists():  # left incomplete (passwd missing): replace it
            shutil.rmtree(final, ignore_errors=True)
        os.rename(etc, final)
    except OSError:
        if not (final / "passwd").is_file():
            raise
    finally:
        shutil.rmtree(etc, ignore_errors=True)
    return final


def _claim_tree(root: Path, ids: tuple[int, int] | None) -> tuple[int, int]:
    """Hand the tree (not .git) to the run's uid so it can write there; returns (bytes on disk, entries)."""
    return _settle_tree(root, owner=ids, strip=False)


def _reclaim_tree(root: Path, *, restore: bool) -> tuple[int, int]:
    """After a run: strip setuid/setgid bits, give files back to the worker; returns (bytes on disk, entries)."""
    return _settle_tree(root, owner=(os.getuid(), os.getgid()) if restore else None, strip=True)


def _settle_tree(root: Path, *, owner: tuple[int, int] | None, strip: bool) -> tuple[int, int]:
    """Walk the tree (root included, .git excluded) through pinned directory fds, fixing owner and mode bits.

    Sandboxed code owns the tree and could swap any directory for a symlink to a host path between a
    look-up and a chown/chmod by path. So nothing is done by path: each entry is opened with O_PATH |
    O_NOFOLLOW relative to its parent's fd, checked with fstat, and changed through that fd
    (/proc/self/fd/N names exactly the opened inode); a symlink itself is lchowned by name relative to
    its pinned parent, which cannot lead outside either. Directories are descended into by their fd.
    """
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    top = os.open(root, flags | os.O_DIRECTORY)
    total = count = 0
    stack: list[tuple[int, bool]] = []
    try:
        info = os.fstat(top)
        total += info.st_blocks * 512
        _settle_fd(top, info, owner, strip)
        stack.append((_open_dir(top), True))
    finally:
        os.close(top)
    while stack:
        dir_fd, is_root = stack.pop()
        try:
            names = os.listdir(dir_fd)
            for name in names:
                if is_root and name == ".git":
                    continue
                try:
                    fd = os.open(name, flags, dir_fd=dir_fd)
                except FileNotFoundError:
                    continue
                try:
                    info = os.fstat(fd)
                    total += info.st_blocks * 512
                    count += 1
                    if stat.S_ISLNK(info.st_mode):
                        if owner and (info.st_uid, info.st_gid) != owner:
                            os.chown(name, *owner, dir_fd=dir_fd, follow_symlinks=False)
                        continue
                    _settle_fd(fd, info, owner, strip)
                    if stat.S_ISDIR(info.st_mode):
                        stack.append((_open_dir(fd), False))
                except FileNotFoundError:  # removed or renamed meanwhile (only while something still runs)
                    continue
                finally:
                    os.close(fd)
        finally:
            os.close(dir_fd)
    return total, count


def _settle_fd(fd: int, info: os.stat_result, owner: tuple[int, int] | None, strip: bool) -> None:
    """chown / strip setuid+setgid on exactly the inode behind an O_PATH fd."""
    here = f"/proc/self/fd/{fd}"
    if owner and (info.st_uid, info.st_gid) != owner:
        os.chown(here, *owner)  # as root, chown also clears setuid bits
    if strip and info.st_mode & (stat.S_ISUID | stat.S_ISGID):
        os.chmod(here, stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))


def _open_dir(path_fd: int) -> int:
    """A readable fd of the directory behind an O_PATH fd; opens it up first if sandboxed code locked it."""
    here = f"/proc/self/fd/{path_fd}"
    try:
        return os.open(here, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except PermissionError:  # only a non-root worker gets here
        os.chmod(here, 0o700)
        return os.open(here, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def docker_argv(
    workdir: Path,
    env: Mapping[str, str],
    limits: SandboxLimits,
    *,
    binds: tuple[tuple[Path, str], ...] = (),
    ids: tuple[int, int] | None = None,
    network: bool = False,
) -> list[str]:
    """A throwaway container: no network, read-only root, no capabilities, only the workspace writable.

    Used where a Docker engine exists and bubblewrap does not (SANDBOX_BACKEND=docker). As with bwrap,
    .git is mounted read-only so the code cannot plant hooks or config that host-side git would run.
    """
    uid, gid = ids or (os.getuid(), os.getgid())
    argv = ["docker", "run", "--rm", "-i", *([] if network else ["--network", "none"]), "--read-only"]
    argv += ["--tmpfs", f"/tmp:size={limits.tmp_mb}m"]  # noqa: S108
    argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", f"{uid}:{gid}"]
    argv += ["--pids-limit", str(limits.max_procs), "--memory", f"{limits.memory_mb}m", "--cpus", "1"]
    argv += ["--ulimit", f"fsize={limits.max_file_mb * MB}", "--ulimit", f"cpu={limits.cpu_s}"]
    argv += ["-v", f"{workdir}:{SANDBOX_WORKDIR}:rw", "-w", SANDBOX_WORKDIR]
    git_dir = Path(workdir) / ".git"
    if git_dir.is_dir() and not git_dir.is_symlink():
        argv += ["-v", f"{git_dir}:{SANDBOX_WORKDIR}/.git:ro"]
    for host_file, dest in binds:
        argv += ["-v", f"{host_file}:{dest}:rw"]
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


# ----------------------------------------------------------------- pytest and a project's test command
DEFAULT_TEST_COMMAND = "python -m pytest -q"
# How a command names pytest; the rest of the command are pytest's arguments.
PYTEST_PREFIXES = (("pytest",), ("python", "-m", "pytest"), ("python3", "-m", "pytest"))
SETUP_OUTPUT_TAIL_CHARS = 2_000
# What a setup run (with network) gets from the worker's environment: where packages come from and how
# TLS and proxies are set up there. Nothing else of the worker's environment reaches a sandbox.
SETUP_ENV_PASSTHROUGH = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_CERT",
    "PIP_DEFAULT_TIMEOUT",
    "UV_INDEX_URL",
    "NPM_CONFIG_REGISTRY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
# The checkout, and its src/ folder for a src-layout package (what `pip install -e .` would make importable),
# join the end of sys.path once pytest is imported.
PYTEST_BOOT = (
    "import os, sys, pytest; sys.path.append(os.getcwd()); "
    "os.path.isdir('src') and sys.path.append(os.path.abspath('src')); sys.exit(pytest.main())"
)
VENV_TIMEOUT_S = 120  # making the virtualenv itself (trusted, offline); the setup command has its own limit


def run_pytest(workdir: Path, *, limits: SandboxLimits | None = None) -> PytestResult:
    """Run the workspace's tests (``python -m pytest -q``) in the sandbox; see run_test_command."""
    return run_test_command(workdir, DEFAULT_TEST_COMMAND, limits=limits)


def run_test_command(
    workdir: Path,
    command: str,
    *,
    limits: SandboxLimits | None = None,
    env_dir: Path | None = None,
) -> PytestResult:
    """Run a project's test command in the sandbox, never with network.

    A pytest command (``pytest ...``, ``python -m pytest ...``, ``python3 -m pytest ...``) runs with the
    right interpreter (env_dir's, else this one) and a JUnit report, so the result lists each test. Any
    other command (``make test``) runs as given: it has no per-test list and counts as one test that
    passed (exit 0) or failed, or as one error when it could not start or was stopped.
    ``env_dir`` (a project environment made by run_setup_command) is mounted read-only at its own path,
    first on PATH and as VIRTUAL_ENV.
    """
    argv = parse_command(command)
    workdir = _checked_workdir(workdir)
    mounts, env = _environment(env_dir, writable=False)
    pytest_args = _pytest_args(argv)
    if pytest_args is None:
        run = _run(argv, workdir, limits or SandboxLimits(), env, sandbox_isolation(), mounts=mounts)
        return _summarise_command(run)
    python = str(env_dir / "bin" / "python") if env_dir else sys.executable
    return _run_pytest(workdir, python, pytest_args, limits or SandboxLimits(), env, mounts)


def parse_command(command: str) -> list[str]:
    """The argv of a command line (shell quoting, no shell); SandboxError when empty or unparsable."""
    if "\0" in command:
        raise SandboxError("The command contains a NUL character.")
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise SandboxError(f"The command {command!r} cannot be parsed: {error}.") from None
    if not argv:
        raise SandboxError("The command is empty.")
    return argv


def _pytest_args(argv: list[str]) -> list[str] | None:
    """pytest's own arguments when argv runs pytest, else None."""
    for prefix in PYTEST_PREFIXES:
        if tuple(argv[: len(prefix)]) == prefix:
            return argv[len(prefix) :]
    return None


def _environment(env_dir: Path | None, *, writable: bool) -> tuple[tuple[Mount, ...], dict[str, str]]:
    """The mount and variables that put a project environment first."""
    if env_dir is None:
        return (), {}
    env_dir = Path(env_dir)
    if not env_dir.is_absolute() or not (env_dir / "bin").is_dir():
        raise SandboxError(f"The project environment {env_dir} does not exist (run the setup command first).")
    path = f"{env_dir}/bin:{os.path.dirname(sys.executable)}:/usr/bin:/bin"
    return (Mount(env_dir, writable=writable),), {"PATH": path, "VIRTUAL_ENV": str(env_dir)}


def _run_pytest(
    workdir: Path,
    python: str,
    pytest_args: list[str],
    limits: SandboxLimits,
    extra_env: dict[str, str],
    mounts: tuple[Mount, ...],
) -> PytestResult:
    """Run pytest and summarise it from JUnit XML.

    The report goes to a private directory outside the workspace, so nothing the code under test left
    in the workspace can stand in for it. The product's own pytest plugins stay out of the run
    (no entry-point autoloading); a workspace that brings its own configuration is flagged at commit.
    """
    isolation = sandbox_isolation()
    report_dir = Path(tempfile.mkdtemp(prefix="mo-report-"))  # 0700: the sandbox sees only the file's mount
    xml_host = report_dir / "junit.xml"
    os.close(os.open(xml_host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    sandboxed = isolation in ("bwrap", "docker")
    xml_arg = REPORT_MOUNT if sandboxed else str(xml_host)
    # Ours come last, so a --junitxml in the project's command cannot redirect the report.
    argv = [python, "-c", PYTEST_BOOT, *pytest_args, "-p", "no:cacheprovider", f"--junitxml={xml_arg}"]
    # PYTHONSAFEPATH: the workspace is not on sys.path while pytest starts, so a top-level module there
    # (iniconfig.py, pluggy.py, ...) cannot stand in for one of pytest's own. PYTEST_BOOT then appends
    # it, as ``python -m pytest`` would have put it first: the project's own packages import, but
    # nothing there can shadow an installed module.
    env = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONSAFEPATH": "1", **extra_env}
    try:
        binds = ((xml_host, REPORT_MOUNT),) if sandboxed else ()
        run = _run(argv, workdir, limits, env, isolation, binds, mounts=mounts)
        tests, problem = _read_junit(xml_host, workdir)
    finally:
        shutil.rmtree(report_dir, ignore_errors=True)
    return _summarise(run, tests, problem)


def _summarise_command(run: SandboxResult) -> PytestResult:
    """A command without a per-test report: one passed test on exit 0, else one failure or error."""
    notes = []
    could_not_run = run.timed_out or run.returncode in (126, 127) or _did_not_start(run)
    if run.timed_out:
        notes.append(f"The test command was stopped: wall-clock timeout after {run.duration_s:.1f}s.")
    elif run.limit_exceeded:
        notes.append(f"The run failed a sandbox limit: {run.limit_exceeded}.")
    elif could_not_run:
        notes.append(f"The test command could not be started (exit code {run.returncode}).")
    elif run.returncode != 0:
        notes.append(f"The test command exited with code {run.returncode}.")
    counts = {"passed": 0, "failed": 0, "errors": 0}
    if could_not_run or run.limit_exceeded:
        counts["errors"] = 1
    else:
        counts["passed" if run.returncode == 0 else "failed"] = 1
    header = "".join(f"[sandbox] {note}\n" for note in notes)
    return PytestResult(
        **counts,
        skipped=0,
        duration_s=run.duration_s,
        log=header + run.stdout + run.stderr,
        isolation=run.isolation,
        timed_out=run.timed_out,
        returncode=run.returncode,
    )


def _did_not_start(run: SandboxResult) -> bool:
    """bwrap reports a program it cannot execute on stderr with its own exit code 1."""
    return run.isolation == "bwrap" and run.returncode == 1 and run.stderr.lstrip().startswith("bwrap: execvp")


def run_setup_command(workdir: Path, command: str, *, env_dir: Path, limits: SandboxLimits) -> SandboxResult:
    """Make a virtualenv at env_dir and run a project's setup command (``sh -c``) in it, with network.

    The environment sees this interpreter's packages (pytest among them) behind its own, so a setup
    command only adds what the project needs. env_dir is the one writable place besides the checkout
    (workdir); ``limits.timeout_s`` bounds the run. SandboxError, with the output's tail, when the
    command fails or is stopped. Afterwards env_dir has no setuid/setgid bits (the run's reclaim strips
    them), and one holding device files, FIFOs or sockets is refused: test runs mount it for later code.
    """
    if not command.strip() or "\0" in command:
        raise SandboxError("The setup command is empty.")
    workdir = _checked_workdir(workdir)
    env_dir = Path(env_dir)
    if not env_dir.is_absolute():
        raise SandboxError(f"The environment directory must be an absolute path, not {env_dir}.")
    _make_venv(env_dir)
    mounts, env = _environment(env_dir, writable=True)
    # The worker's package-index, CA and proxy settings, so `pip install` works where the worker's pip does.
    env.update({name: os.environ[name] for name in SETUP_ENV_PASSTHROUGH if os.environ.get(name)})
    env["PIP_NO_CACHE_DIR"] = "1"  # the sandbox's /tmp is small, and a cache there dies with the run anyway
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    try:
        run = _run(["sh", "-c", command], workdir, limits, env, sandbox_isolation(), mounts=mounts, network=True)
    finally:
        env_dir.chmod(0o755)  # test runs enter it as the sandbox uid
    output = (run.stdout + run.stderr).strip()[-SETUP_OUTPUT_TAIL_CHARS:]
    if run.timed_out:
        raise SandboxError(f"The setup command was stopped after its {limits.timeout_s:g}s time limit.\n{output}")
    if run.returncode != 0:
        raise SandboxError(f"The setup command failed (exit code {run.returncode}).\n{output}")
    special = _special_files(env_dir)
    if special:
        raise SandboxError(
            f"The setup command left {len(special)} device file(s), FIFO(s) or socket(s) in the environment, "
            f"which is not allowed: {', '.join(special[:5])}."
        )
    return run


def _special_files(root: Path) -> list[str]:
    """Paths (relative to root) of entries that are neither regular files, directories nor symlinks.

    Called after the run's processes are gone, so the tree no longer changes; symlinks are not followed.
    """
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            mode = os.lstat(os.path.join(folder, name)).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found)


def _make_venv(env_dir: Path) -> None:
    """``python -m venv --system-site-packages`` plus a .pth naming this interpreter's site-packages."""
    argv = [sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=VENV_TIMEOUT_S, check=False, env=_clean_env(None)
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SandboxError(f"Could not create the project environment: {error}") from None
    if proc.returncode != 0:
        raise SandboxError(f"Could not create the project environment: {(proc.stderr or proc.stdout).strip()}")
    # A venv's --system-site-packages reaches the base interpreter's packages, not those of the venv the
    # product runs in; pytest lives there. Appended after the env's own, so the project's versions win.
    parents = [p for p in dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")) if p]
    lib = env_dir / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (lib / "_mission_orchestrator_parent.pth").write_text("".join(f"{p}\n" for p in parents), encoding="utf-8")
    env_dir.chmod(0o755)


def _read_junit(path: Path, workdir: Path) -> tuple[list[TestOutcome] | None, str]:
    """Parsed outcomes, or None plus a reason; refuses symlinks, FIFOs (without blocking) and oversized files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, "pytest did not write a JUnit report"
    except OSError as exc:
        return None, f"the JUnit report could not be opened ({exc.strerror})"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None, "the JUnit report is not a regular file"
        if info.st_size == 0:
            return None, "pytest did not write a JUnit report"
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
