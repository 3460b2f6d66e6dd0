"""LOG_FORMAT=json: one JSON object per line with time, level, logger, message, mission and the traceback."""

import json
import os
import subprocess
import sys

from django.conf import settings

SCRIPT = """
import logging, django
django.setup()
from orchestrator_site.logging import mission_logging
log = logging.getLogger("missions.engine")
log.info("outside")
with mission_logging("3f2b8c1e-0000-4000-8000-000000000001"):
    log.warning("planning %s", "started")
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("it broke")
"""


def _run(log_format: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings", "LOG_FORMAT": log_format}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60
    )


def test_it_writes_json_lines_with_the_fields():
    """Every line parses as JSON; the mission code is tagged inside the block, '-' outside; exc holds the
    traceback of log.exception."""
    result = _run("json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    ours = [line for line in lines if line["logger"] == "missions.engine"]
    assert [(line["level"], line["message"], line["mission"]) for line in ours] == [
        ("INFO", "outside", "-"),
        ("WARNING", "planning started", "3f2b8c1e-0000-4000-8000-000000000001"),
        ("ERROR", "it broke", "3f2b8c1e-0000-4000-8000-000000000001"),
    ]
    assert all(set(line) >= {"time", "level", "logger", "message", "mission"} for line in lines)
    assert ours[0]["time"].endswith("+00:00") and "T" in ours[0]["time"]
    assert "exc" not in ours[1]
    assert "ZeroDivisionError: division by zero" in ours[2]["exc"]
    assert ours[2]["exc"].startswith("Traceback (most recent call last):")


def test_it_keeps_text_lines_by_default():
    """Without LOG_FORMAT=json the lines stay as before: text, with mission=<code>."""
    result = _run("text")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stderr.splitlines() if "planning started" in line)
    assert " WARNING missions.engine mission=3f2b8c1e-0000-4000-8000-000000000001 planning started" in line
    assert not line.startswith("{")
