"""Errors the engine handles. Plain classes, so callers need no AutoGen import."""

import re

from django.db import InterfaceError, OperationalError


class AgentRunError(Exception):
    """A model call or agent run could not produce a usable result; the message is shown on the mission page."""


class BudgetExceeded(AgentRunError):
    """The next model call's upper-bound cost does not fit the mission's remaining budget."""


class MissionStopped(AgentRunError):
    """The mission was cancelled or finished while an agent was working."""


class ModelOutputError(AgentRunError):
    """The model answered, but not in the shape asked for, even after a repair request."""


class ModelUnavailable(AgentRunError):
    """The model server could not be reached or kept failing."""


# SQLSTATE classes of PostgreSQL errors that say nothing about the work: connection exceptions (08),
# operator intervention such as pg_terminate_backend or a restart (57), insufficient resources (53),
# serialization failures and deadlocks (40). psycopg leaves sqlstate empty when the connection itself broke.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "57", "53", "40")
_TRANSIENT_SQLITE_ERRORS = ("SQLITE_BUSY", "SQLITE_LOCKED")
_CONNECTION_LOST = re.compile(r"connection|terminat|could not connect|server closed|shutting down", re.IGNORECASE)


def database_error_is_transient(error: BaseException) -> bool:
    """A dropped, refused or busy database connection: not the mission's fault, so worth a retry.

    Anything else (a query the database refuses, such as a pattern too complex) is the work's own problem.
    """
    if isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    driver_error = error.__cause__
    if hasattr(driver_error, "sqlstate"):  # psycopg
        return not driver_error.sqlstate or driver_error.sqlstate.startswith(_TRANSIENT_SQLSTATE_CLASSES)
    if hasattr(driver_error, "sqlite_errorname"):
        return driver_error.sqlite_errorname in _TRANSIENT_SQLITE_ERRORS
    # Rebuilt from an agent team's message, which keeps only the text.
    return bool(_CONNECTION_LOST.search(str(error)))
