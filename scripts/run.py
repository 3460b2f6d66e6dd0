"""`make run`: everything the product needs on one machine, stopped together by Ctrl-C.

1. Redis: REDIS_URL if set; else 127.0.0.1:6379 if it answers; else a private
   redis-server on a free port (or instructions to install one).
2. Model: LLM_BASE_URL if set; else the bundled simulated server on a free port.
3. migrate and seed_demo (demo password kept in DATA_DIR so logins stay the same).
4. daphne (HTTP + websockets), a Celery worker (WORKER_CONCURRENCY processes) and Celery beat.
5. Watch them: a worker or beat that exits is started again after a backoff (at most
   RESTART_LIMIT times in RESTART_WINDOW_S); daphne, Redis or the model server exiting stops everything.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
RESTARTABLE = ("worker", "beat")
RESTART_LIMIT = 5
RESTART_WINDOW_S = 600
RESTART_BACKOFF_MAX_S = 30


@dataclass
class Child:
    name: str
    argv: list[str]
    kwargs: dict
    proc: subprocess.Popen
    restarts: deque = field(default_factory=deque)  # monotonic times of recent restarts
    restart_at: float | None = None


children: list[Child] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start(name: str, argv: list[str], **kwargs) -> subprocess.Popen:
    print(f"[run] starting {name}: {' '.join(argv)}", flush=True)
    proc = subprocess.Popen(argv, cwd=ROOT, **kwargs)
    children.append(Child(name, argv, kwargs, proc))
    return proc


def supervise(*, poll_s: float = 0.5, backoff_base_s: float = 1.0) -> None:
    """Return when a child that cannot be restarted exits, or a restartable one keeps exiting.

    A worker or beat dies with its broker connection, a crash or an OOM kill; the web server
    and the rest must not go down with it. Restarts back off (1 s, 2 s, 4 s ... up to
    RESTART_BACKOFF_MAX_S) and stop after RESTART_LIMIT within RESTART_WINDOW_S: then it is
    not a blip, and everything stops so the operator sees it.
    """
    while True:
        now = time.monotonic()
        for child in children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    print(f"[run] starting {child.name} again", flush=True)
                    child.restart_at = None
                    child.proc = subprocess.Popen(child.argv, cwd=ROOT, **child.kwargs)
                continue
            code = child.proc.poll()
            if code is None:
                continue
            if child.name not in RESTARTABLE:
                print(f"[run] {child.name} exited with {code}; stopping.", flush=True)
                return
            while child.restarts and now - child.restarts[0] > RESTART_WINDOW_S:
                child.restarts.popleft()
            if len(child.restarts) >= RESTART_LIMIT:
                print(
                    f"[run] {child.name} exited with {code}, the {len(child.restarts) + 1}th time within "
                    f"{RESTART_WINDOW_S}s; stopping.",
                    flush=True,
                )
                return
            delay = min(RESTART_BACKOFF_MAX_S, backoff_base_s * 2 ** len(child.restarts))
            child.restarts.append(now)
            child.restart_at = now + delay
            print(
                f"[run] {child.name} exited with {code}; restarting it in {delay:g}s "
                f"(restart {len(child.restarts)} of {RESTART_LIMIT} within {RESTART_WINDOW_S}s).",
                flush=True,
            )
        time.sleep(poll_s)


def ensure_redis(env: dict) -> None:
    if env.get("REDIS_URL"):
        return
    if redis_answers("127.0.0.1", 6379):
        env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
        return
    binary = shutil.which("redis-server")
    if not binary:
        sys.exit(
            "[run] No Redis: set REDIS_URL, or install Redis (Debian/Ubuntu: sudo apt-get install redis-server; "
            "macOS: brew install redis) and run make run again."
        )
    port = free_port()
    start(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(50):
        if redis_answers("127.0.0.1", port):
            break
        time.sleep(0.1)
    env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"


def ensure_model(env: dict) -> None:
    if env.get("LLM_BASE_URL"):
        return
    command = [PY, "-m", "agents.sim", "--port", "0"]
    # A slower simulated model, to watch answers stream in (agents/sim/server.py, "Latency").
    for variable, option in (("SIM_LATENCY_MS", "--latency-ms"), ("SIM_CHUNK_DELAY_MS", "--chunk-delay-ms")):
        if env.get(variable):
            command += [option, env[variable]]
    sim = start("simulated model server", command, stdout=subprocess.PIPE, text=True, env=env)
    line = sim.stdout.readline().strip()
    if "http://" not in line:
        sys.exit(f"[run] The simulated model server did not start: {line!r}")
    env["LLM_BASE_URL"] = line.split()[-1]
    env["LLM_SIMULATED"] = "1"


def worker_concurrency(env: dict) -> int:
    """WORKER_CONCURRENCY from ``env`` (1-64, default from the CPUs: orchestrator_site/env.py); exit if bad."""
    from django.core.exceptions import ImproperlyConfigured

    from orchestrator_site.env import env_worker_concurrency

    try:
        return env_worker_concurrency(env)
    except ImproperlyConfigured as error:
        sys.exit(f"[run] {error}")


def worker_argv(env: dict, *, concurrency: int) -> list[str]:
    """The Celery worker's command line: ``concurrency`` processes on this instance's queue."""
    queue = env.get("CELERY_QUEUE", "orchestrator")
    return [PY, "-m", "celery", "-A", "orchestrator_site", "worker", "-l", "info", "-c", str(concurrency), "-Q", queue]


def demo_password(data_dir: Path) -> str:
    path = data_dir / "demo_password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(9))
        path.chmod(0o600)
    return path.read_text().strip()


def main() -> None:
    env = dict(os.environ)
    concurrency = worker_concurrency(env)  # before anything starts: a bad value stops us with its name
    data_dir = Path(env.setdefault("DATA_DIR", str(ROOT / "data"))).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env.setdefault("DEMO_PASSWORD", demo_password(data_dir))
    port = env.setdefault("PORT", "8000")
    ensure_redis(env)
    ensure_model(env)
    manage = [PY, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run([*manage, "seed_demo"], cwd=ROOT, env=env, check=True)
    start("web", [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", port, "orchestrator_site.asgi:application"], env=env)
    start("worker", worker_argv(env, concurrency=concurrency), env=env)
    start(
        "beat",
        [
            PY,
            "-m",
            "celery",
            "-A",
            "orchestrator_site",
            "beat",
            "-l",
            "info",
            "-s",
            str(data_dir / "celerybeat-schedule"),
        ],
        env=env,
    )
    model = "simulated model server" if env.get("LLM_SIMULATED") == "1" else env.get("LLM_MODEL", "?")
    from agents.runtime.sandbox import sandbox_status

    _, sandbox_line = sandbox_status()
    print(
        f"\n[run] Mission Orchestrator: http://127.0.0.1:{port}/\n"
        f"[run] Logins: pm / reviewer / admin, password {env['DEMO_PASSWORD']}\n"
        f"[run] Model: {model} at {env['LLM_BASE_URL']}; Redis: {env['REDIS_URL']}\n"
        f"[run] {sandbox_line}\n"
        "[run] Ctrl-C stops everything.\n",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Explicitly: a shell that starts us in the background passes SIGINT on as ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        supervise()
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()


def stop_all() -> None:
    for child in reversed(children):
        if child.proc.poll() is None:
            child.proc.terminate()
    deadline = time.monotonic() + 10
    for child in children:
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()


if __name__ == "__main__":
    main()
