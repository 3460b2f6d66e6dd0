"""Each pytest-xdist worker gets its own Celery queue, channel prefix and data dir.

Loaded with ``-p tests.worker_env`` (pyproject), so it runs before Django reads
its settings: workers then never take each other's tasks, live updates or
SQLite files.
"""

import os

worker = os.environ.get("PYTEST_XDIST_WORKER")
if worker:
    for name in ("CELERY_QUEUE", "CHANNELS_PREFIX"):
        os.environ[name] = f"{os.environ.get(name, 'mo-test')}-{worker}"
    if os.environ.get("DATA_DIR"):
        os.environ["DATA_DIR"] = os.path.join(os.environ["DATA_DIR"], worker)
