"""Websocket guards beyond Channels' host check."""

import json
from importlib import import_module
from types import SimpleNamespace
from urllib.parse import urlsplit

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AbstractBaseUser


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


def session_user(scope) -> AbstractBaseUser | None:
    """The user the socket's session belongs to now, read afresh from the session store.

    None once the session was logged out or flushed, the password changed (the
    session's auth hash no longer matches, exactly as Django checks it on every
    HTTP request) or the account was deactivated. The scope's own session and
    user were loaded once, at connect, and would never notice.
    """
    session_key = getattr(scope.get("session"), "session_key", None)
    if not session_key:
        return None
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    user = get_user(SimpleNamespace(session=store))
    return user if user.is_authenticated else None


class UnroutedSocket(AsyncWebsocketConsumer):
    """Any websocket path nobody serves is refused with a close, not a 500 from the router."""

    # An alias with no layer behind it: a refused socket opens no Redis channel (and leaves no receive pending).
    channel_layer_alias = "none"

    async def connect(self):
        await self.close(code=4404)


def frame_of_type(text: str | None, kind: str, *, max_bytes: int) -> dict | None:
    """A client's JSON frame ``{"type": kind, ...}`` as a dict; None for anything else (too long, not JSON, other type).

    Frames come from the browser, so anything unexpected is ignored rather than answered.
    """
    if not text or len(text) > max_bytes:
        return None
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if not isinstance(frame, dict) or frame.get("type") != kind:
        return None
    return frame
