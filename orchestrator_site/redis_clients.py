"""Short-lived Redis clients for small commands (the worker heartbeat, /healthz)."""

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry


def redis_command_client(*, timeout_s: float = 3) -> redis.Redis:
    """A client whose commands fail within about twice ``timeout_s`` when Redis is gone or hangs.

    Without a timeout a command on a dead connection waits forever, holding a worker or a page.
    One immediate retry covers a connection that Redis closed while it sat in the pool.
    Use it as a context manager, so its connection is closed when done.
    """
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), 1),
    )
