"""`make test`: pytest with its own data dir, queue and channel prefix, against a Redis that answers.

Redis is REDIS_URL if set, else 127.0.0.1:6379 if it answers, else a private
redis-server on a free port that stops with the run (as for `make run`).
"""

import os
import subprocess
import sys

from run import ROOT, ensure_redis, stop_all


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DATA_DIR", str(ROOT / "data" / "test"))
    env.setdefault("CELERY_QUEUE", "mo-test")
    env.setdefault("CHANNELS_PREFIX", "mo-test")
    env.setdefault("FAST_PASSWORD_HASHER", "1")
    ensure_redis(env)
    args = sys.argv[1:]
    if not any(arg == "-n" or arg.startswith(("-n", "--numprocesses")) for arg in args):
        # Most of the suite waits on workers, servers and sandboxes, so a few processes share 2 cores well.
        args = ["-n", env.get("TEST_PROCESSES", "4"), *args]
    try:
        return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env)
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
