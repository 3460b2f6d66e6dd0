"""Live mission pages: events become HTML fragments that htmx swaps in by id.

A page connects with the last ``seq`` it has rendered ({"type": "resume",
"after": N}); the consumer replays every later event from the database, then
forwards new ones as they are announced on the group. Anything lost on the
channel layer is recovered on the next resume, so nothing is missed.

Access is checked again before every batch it sends, against the session and
the user as they are now: a socket whose user logged out, changed password or
lost the role that let them see the mission is closed instead of updated.
"""

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import Http404
from django.template.loader import render_to_string

from missions import selectors
from orchestrator_site.websocket import frame_of_type, session_user, user_group

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 4096
CLOSE_SIGNED_OUT = 4401
CLOSE_NOT_VISIBLE = 4404
LIVE_PARTIALS = ("mission-status", "mission-gates", "mission-steps", "mission-tests", "mission-votes", "transcript")


class AccessRevoked(Exception):
    """The socket's user may no longer see the mission; ``code`` is the close code to send."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class MissionConsumer(AsyncWebsocketConsumer):
    closed_with = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_SIGNED_OUT)
            return
        try:
            self.mission = await database_sync_to_async(selectors.mission_for_user)(
                user, self.scope["url_route"]["kwargs"]["code"]
            )
        except Http404:
            await self.close(code=CLOSE_NOT_VISIBLE)
            return
        self.groups_joined = [self.mission.group_name, user_group(user.pk)]
        self.sent_seq = None  # unknown until the page says where it is
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def session_ended(self, message):
        """The user logged out somewhere: this socket must stop showing the mission."""
        await self._close_for(CLOSE_SIGNED_OUT)

    async def receive(self, text_data=None, bytes_data=None):
        """The only frame a page sends is a resume; anything else is logged and ignored."""
        after = _parse_resume(text_data)
        if after is None:
            logger.warning(
                "mission socket %s: ignored malformed frame %r",
                self.mission.code,
                (text_data or bytes_data or b"")[:200],
            )
            return
        self.sent_seq = after
        await self._send_new_events()

    async def mission_event(self, message):
        if self.sent_seq is None:
            return  # the page has not said where it is yet; its resume will fetch this
        if message.get("seq", 0) > self.sent_seq:
            await self._send_new_events()

    async def _send_new_events(self):
        if self.closed_with is not None:
            return  # announcements still queued for a socket already closed
        try:
            html, last = await database_sync_to_async(self._render_since)(self.sent_seq)
        except AccessRevoked as revoked:
            await self._close_for(revoked.code)
            return
        if html:
            self.sent_seq = last
            await self.send(text_data=html)

    async def _close_for(self, code: int):
        if self.closed_with is None:
            self.closed_with = code
            await self.close(code=code)

    def _render_since(self, after: int) -> tuple[str, int]:
        """The batch of events after ``after``, rendered for the user as they are now (access re-checked)."""
        user = session_user(self.scope)
        if user is None:
            raise AccessRevoked(CLOSE_SIGNED_OUT)
        try:
            mission = selectors.mission_for_user(user, self.mission.code)  # fresh status, budget and spend
        except Http404:
            raise AccessRevoked(CLOSE_NOT_VISIBLE) from None
        events = selectors.mission_events(mission, after=after)
        if not events:
            return "", after
        context = {
            **selectors.mission_detail(mission),
            "new_events": events,
            "user": user,
            "can_cancel": selectors.user_can_cancel(user, mission),
        }
        parts = [render_to_string("missions/detail.html#event-batch", context)]
        parts += [render_to_string(f"missions/detail.html#{name}", context) for name in LIVE_PARTIALS]
        return "\n".join(parts), events[-1].seq


def _parse_resume(text: str | None) -> int | None:
    frame = frame_of_type(text, "resume", max_bytes=MAX_FRAME_BYTES)
    if frame is None:
        return None
    after = frame.get("after")
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        return None
    return after
