"""Which database errors are transient (retry the task) and which are the work's own (fail it)."""

import sqlite3

import psycopg
import pytest
from django.db import InterfaceError, OperationalError

from agents.errors import database_error_is_transient


def _wrapped(driver_error: Exception) -> OperationalError:
    """Django's OperationalError raised from a driver error, as Django's error wrapper does."""
    try:
        raise OperationalError(str(driver_error)) from driver_error
    except OperationalError as error:
        return error


def _sqlite_error(sql: str, *params) -> OperationalError:
    """A real sqlite3 error, wrapped the way Django wraps driver errors."""
    try:
        sqlite3.connect(":memory:").execute(sql, params)
    except sqlite3.OperationalError as driver_error:
        return _wrapped(driver_error)
    raise AssertionError("the statement did not fail")


def _sqlite_locked() -> OperationalError:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".sqlite3") as file:
        holder = sqlite3.connect(file.name, isolation_level=None)
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN IMMEDIATE")
        try:
            sqlite3.connect(file.name, timeout=0).execute("INSERT INTO t VALUES (1)")
        except sqlite3.OperationalError as driver_error:
            return _wrapped(driver_error)
    raise AssertionError("the write was not refused")


@pytest.mark.parametrize(
    "make_error, transient",
    [
        (lambda: InterfaceError("connection already closed"), True),
        (lambda: _wrapped(psycopg.errors.AdminShutdown("terminating connection due to administrator command")), True),
        (lambda: _wrapped(psycopg.OperationalError("the connection is lost")), True),
        (lambda: _wrapped(psycopg.errors.SerializationFailure("could not serialize access")), True),
        (lambda: _wrapped(psycopg.errors.ProgramLimitExceeded("statement is too complex")), False),
        (_sqlite_locked, True),
        (lambda: _sqlite_error("SELECT 'a' LIKE ?", "%" * 60000), False),  # LIKE or GLOB pattern too complex
        (lambda: _sqlite_error("SELECT * FROM missing_table"), False),
        # Rebuilt from an agent team's message (only the text survives)
        (lambda: OperationalError("terminating connection due to administrator command"), True),
        (lambda: OperationalError("LIKE or GLOB pattern too complex"), False),
        (lambda: ValueError("connection"), False),
    ],
)
def test_it_tells_a_dropped_connection_from_a_bad_query(make_error, transient):
    """Connection, lock and shutdown errors are transient; a query the database refuses is not."""
    assert database_error_is_transient(make_error()) is transient
