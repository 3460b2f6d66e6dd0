"""What every phase of the engine shares: starting a task once the transaction commits, and one policy
for a broker that cannot take it."""

import contextlib
import logging

from django.db import DatabaseError, connection, transaction
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


def enqueue_after_commit(task, *args, countdown: float | None = None) -> None:
    """Send ``task(*args)`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: enqueue(task, *args, countdown=countdown))


def enqueue(task, *args, countdown: float | None = None) -> None:
    """Send ``task(*args)`` now, under the one failure policy for broker errors: log, do not raise.

    The database already holds the state that asked for the task, so the reaper, which finds work
    with no progress for STALLED_AFTER_S, starts it again; raising here would undo nothing.
    """
    try:
        if countdown:
            task.apply_async(args, countdown=countdown)
        else:
            task.delay(*args)
    except (BrokerError, RedisError, OSError) as error:
        logger.warning("could not enqueue %s%s (%s); the reaper will start it again", task.name, args, error)


def connection_reset() -> None:
    """Drop a broken database connection; the next query opens a new one."""
    with contextlib.suppress(DatabaseError):
        connection.close()
