"""Structured logging: every line names the mission it is about (or '-')."""

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

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
    try:
        yield
    finally:
        _current_mission.reset(token)
