"""Structured logging: every line names the mission it is about (or '-'); JSON lines with LOG_FORMAT=json."""

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_current_mission: contextvars.ContextVar[str] = contextvars.ContextVar("mission", default="-")


class MissionContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "mission"):
            record.mission = _current_mission.get()
        return True


@contextmanager
def mission_logging(code: object) -> Iterator[None]:
    """Tag every log line written inside the block with the mission code."""
    token = _current_mission.set(str(code))
    from telemetry.tracing import tag_current_span

    tag_current_span(str(code))  # the trace span of this work (a Celery task) names the mission too
    try:
        yield
    finally:
        _current_mission.reset(token)


def current_mission() -> str:
    """The code of the mission the current work is about, or '-'."""
    return _current_mission.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, mission, and exc when there is a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "mission": getattr(record, "mission", "-"),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)
