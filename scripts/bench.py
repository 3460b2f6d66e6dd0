"""`make bench`: the benchmarks (bench/harness.py) with their own data dir, queue and channel prefix.

Redis as for `make test` (REDIS_URL, else 127.0.0.1:6379, else a private redis-server). The database is
DATABASE_URL when set (issue 11's figures are on PostgreSQL), else SQLite in data/bench. Arguments go to
the harness: `make bench BENCH_ARGS="overhead --smoke"`.
"""

import os
import subprocess
import sys

from run import ROOT, ensure_redis, stop_all


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DATA_DIR", str(ROOT / "data" / "bench"))
    env.setdefault("CELERY_QUEUE", "mo-bench")
    env.setdefault("CHANNELS_PREFIX", "mo-bench")
    ensure_redis(env)
    try:
        return subprocess.call([sys.executable, str(ROOT / "bench" / "harness.py"), *sys.argv[1:]], cwd=ROOT, env=env)
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
