"""A fixed-window request counter per token, in Redis so every web process counts the same requests."""

import logging
import math
import threading
import time

import redis
from django.conf import settings

log = logging.getLogger(__name__)

_client: redis.Redis | None = None
_client_lock = threading.Lock()


def _redis() -> redis.Redis:
    """One pooled client per process (thread-safe); short timeouts, so a hung Redis cannot hold a request."""
    global _client
    with _client_lock:
        if _client is None:
            _client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, socket_keepalive=True
            )
        return _client


def _now() -> float:
    return time.time()


def rate_limit_hit(key: str) -> int | None:
    """Count one request for ``key``; the seconds until its window ends when it is over the limit, else None.

    1. The window is ``API_RATE_WINDOW_S`` long and starts at a multiple of it, so its Redis key names it.
    2. INCR counts the request atomically across processes; the key expires with its window.
    3. Redis down: the request is let through (logged). Rate limiting protects capacity, and every other part of
       the API that matters (filing starts a Celery task) needs Redis anyway.
    """
    limit, window_s = settings.API_RATE_LIMIT, settings.API_RATE_WINDOW_S
    now = _now()
    window = int(now // window_s)
    redis_key = f"{settings.CELERY_TASK_DEFAULT_QUEUE}:api-rate:{key}:{window_s}:{window}"
    try:
        pipe = _redis().pipeline()
        pipe.incr(redis_key)
        pipe.expire(redis_key, window_s + 1)
        count = pipe.execute()[0]
    except redis.RedisError as error:
        log.warning("API rate limit not checked, Redis unavailable: %s", type(error).__name__)
        return None
    if count <= limit:
        return None
    return max(1, math.ceil((window + 1) * window_s - now))
