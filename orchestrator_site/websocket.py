"""Websocket guards beyond Channels' host check."""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier


class SameOriginValidator:
    """Accept a socket only when its Origin names exactly the host and port it connected to.

    AllowedHostsOriginValidator ignores the port, so a page served by another
    program on the same host (which the browser sends our cookies to) could
    otherwise read mission pages over a socket.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        origin = headers.get(b"origin", b"")
        expected = _origin_key(origin)
        if expected is None or expected != _host_key(headers.get(b"host", b""), origin):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_key(origin: bytes) -> tuple[str, int] | None:
    try:
        parts = urlsplit(origin.decode("latin1"))
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname and port else None


def _host_key(host: bytes, origin: bytes) -> tuple[str, int] | None:
    """The Host header as (name, port); a missing port is the default of the page's scheme."""
    try:
        parts = urlsplit("//" + host.decode("latin1"))
        scheme = urlsplit(origin.decode("latin1")).scheme
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname and port else None


def user_group(user_id: int) -> str:
    """Every socket of a user joins this group, so logging out closes them all."""
    return f"user_{user_id}"
