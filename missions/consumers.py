"""Live mission pages: events become HTML fragments that htmx swaps in by id.

A page connects with the last ``seq`` it has rendered ({"type": "resume",
"after": N}); the consumer replays every later event from the database, then
forwards new ones as they are announced on the group. Anything lost on the
channel layer is recovered on the next resume, so nothing is missed.

Access is checked again before every batch it sends, against the session and
the user as they are now: a socket whose user logged out, changed password or
lost the role that let them see the mission is closed instead of updated.

While a model call streams, its text so far arrives as ``mission.stream`` messages (missions/streams.py) and is
shown in ``#transcript-live``. That is not checked per message (it comes a few times a second; the next
event's batch re-checks access) and not stored: after a reload a half-written answer is gone until its
stored message arrives with an event. Each socket remembers the streams it has shown; the next event batch
takes away those that ended (their ``done`` came, or the ledger says the call is over, for a ``done`` the
layer dropped), in the same frame as the transcript that now holds the stored answer.
"""

import logging
from dataclasses import dataclass

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
MAX_LIVE_STREAMS = 8  # per socket; parallel steps stream one call each


@dataclass(frozen=True)
class LiveStream:
    """One model call's text so far, as a ``mission.stream`` message carried it."""

    call: int
    agent: str
    step: str
    text: str
    truncated: bool
    done: bool


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
        self.streams: dict[int, LiveStream] = {}  # shown on this socket's page, oldest first
        self.ended_calls: dict[int, None] = {}  # taken away: a late message of theirs must not bring them back
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

    async def mission_stream(self, message):
        """A streaming call's text so far: a new call redraws ``#transcript-live``, a known one only its own text."""
        if self.sent_seq is None or self.closed_with is not None:
            return  # the page has not resumed (its socket opened with an empty stream area), or it is closed
        stream = _live_stream(message)
        if stream is None:
            return
        if stream.call in self.ended_calls:
            return
        known = stream.call in self.streams
        if stream.done and not known:
            return  # never shown here: nothing to finish
        self.streams[stream.call] = stream
        while len(self.streams) > MAX_LIVE_STREAMS:
            del self.streams[next(iter(self.streams))]
        if known:
            html = render_to_string("missions/detail.html#stream", {"stream": stream})
        else:
            html = _render_live(self.streams)
        await self.send(text_data=html)

    async def _send_new_events(self):
        if self.closed_with is not None:
            return  # announcements still queued for a socket already closed
        try:
            html, last, streams = await database_sync_to_async(self._render_since)(self.sent_seq, self.streams)
        except AccessRevoked as revoked:
            await self._close_for(revoked.code)
            return
        if html:
            self.sent_seq = last
            self.ended_calls.update(dict.fromkeys(call for call in self.streams if call not in streams))
            while len(self.ended_calls) > 4 * MAX_LIVE_STREAMS:
                del self.ended_calls[next(iter(self.ended_calls))]
            self.streams = streams
            await self.send(text_data=html)

    async def _close_for(self, code: int):
        if self.closed_with is None:
            self.closed_with = code
            await self.close(code=code)

    def _render_since(self, after: int, streams: dict[int, LiveStream]) -> tuple[str, int, dict[int, LiveStream]]:
        """The batch of events after ``after``, rendered for the user as they are now (access re-checked).

        With streams on the page, the batch also redraws ``#transcript-live`` with only those still running;
        returns them as the third item.
        """
        user = session_user(self.scope)
        if user is None:
            raise AccessRevoked(CLOSE_SIGNED_OUT)
        try:
            mission = selectors.mission_for_user(user, self.mission.code)  # fresh status, budget and spend
        except Http404:
            raise AccessRevoked(CLOSE_NOT_VISIBLE) from None
        events = selectors.mission_events(mission, after=after)
        if not events:
            return "", after, streams
        context = {
            **selectors.mission_detail(mission),
            "new_events": events,
            "user": user,
            "can_cancel": selectors.user_can_cancel(user, mission),
        }
        parts = [render_to_string("missions/detail.html#event-batch", context)]
        parts += [render_to_string(f"missions/detail.html#{name}", context) for name in LIVE_PARTIALS]
        if streams:
            running = [call for call, stream in streams.items() if not stream.done]
            ended = selectors.llm_calls_ended(mission, running) if running else set()
            streams = {call: s for call, s in streams.items() if not s.done and call not in ended}
            parts.append(_render_live(streams))
        return "\n".join(parts), events[-1].seq, streams


def _render_live(streams: dict[int, LiveStream]) -> str:
    return render_to_string("missions/detail.html#transcript-live", {"live_streams": list(streams.values())}).strip()


def _live_stream(message: dict) -> LiveStream | None:
    """The stream a ``mission.stream`` message describes; None (logged) for one that is malformed."""
    call, text = message.get("call"), message.get("text")
    if isinstance(call, bool) or not isinstance(call, int) or not isinstance(text, str):
        logger.warning("ignored malformed mission.stream message for call %r", call)
        return None
    return LiveStream(
        call=call,
        agent=str(message.get("agent") or ""),
        step=str(message.get("step") or ""),
        text=text,
        truncated=bool(message.get("truncated")),
        done=bool(message.get("done")),
    )


def _parse_resume(text: str | None) -> int | None:
    frame = frame_of_type(text, "resume", max_bytes=MAX_FRAME_BYTES)
    if frame is None:
        return None
    after = frame.get("after")
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        return None
    return after
