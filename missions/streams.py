"""Model output streamed to live mission pages while a call runs: ephemeral, throttled, best effort.

The worker side of the ``mission.stream`` channel message (``MissionConsumer.mission_stream`` is the other).
Nothing here is stored: the answer reaches the transcript as before, as an AgentMessage, once the call ends.
Each message carries the text so far (its last ``STREAM_TEXT_MAX_CHARS``), not a delta, so a message the
channel layer drops costs nothing but a moment's staleness, and a page that joins mid-call catches up at once.
"""

import asyncio
import logging
import re
import time
from dataclasses import dataclass

from channels.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "mission.stream"
STREAM_TEXT_MAX_CHARS = 8000
# A publish slower than this means the layer is in trouble: give up on this call's stream, never on the call.
PUBLISH_TIMEOUT_S = 1.0
CLOSE_WAIT_S = 0.25


# A JSON answer is read this far at most for its shown field.
JSON_MAX_CHARS = 64_000
_JSON_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


@dataclass(frozen=True)
class StreamTarget:
    """Where a call's text goes and how the page labels it.

    ``field`` names the string field of a JSON answer (a vote's rationale) to show as it is written; without
    it a JSON answer is not streamed, only prose is.
    """

    group: str
    agent: str
    step: str = ""
    field: str = ""


def stream_target_for(mission, *, agent: str, step: str = "", field: str = "") -> StreamTarget | None:
    """The target for a call made for ``mission``; None when streaming is off (MODEL_STREAM=0)."""
    if not settings.MODEL_STREAM:
        return None
    return StreamTarget(group=mission.group_name, agent=agent, step=step, field=field)


def partial_json_string(raw: str, field: str) -> str:
    """The value of string ``field`` in a JSON object still being written, as far as it has arrived.

    A lenient scan, not a parser: the first ``"field": "`` starts it, the closing quote or the end of ``raw``
    ends it; an escape cut by the end of ``raw`` waits for the next piece.
    """
    start = re.search(rf'"{re.escape(field)}"\s*:\s*"', raw)
    if start is None:
        return ""
    out, i = [], start.end()
    while i < len(raw) and raw[i] != '"':
        if raw[i] != "\\":
            out.append(raw[i])
            i += 1
            continue
        escape = raw[i + 1 : i + 2]
        if escape == "u":
            digits = raw[i + 2 : i + 6]
            if len(digits) < 4:
                break
            code = int(digits, 16) if re.fullmatch(r"[0-9a-fA-F]{4}", digits) else 0xFFFD
            out.append(chr(0xFFFD if 0xD800 <= code <= 0xDFFF else code))  # no lone surrogates on the wire
            i += 6
        elif escape:
            out.append(_JSON_ESCAPES.get(escape, escape))
            i += 2
        else:
            break
    return "".join(out)


class ModelStream:
    """Publishes one model call's text to its mission's group as it grows, at most once per interval.

    ``feed`` never waits: a background task sends the latest text, then sleeps the interval, so a slow or
    failing channel layer cannot slow the model call down. The first failure ends this call's stream (logged);
    the page still gets the answer when it is stored. ``close`` (always called, also when the call failed)
    sends a last message with ``done`` so pages can drop the stream.
    """

    def __init__(self, target: StreamTarget, *, call_id: int, interval_s: float | None = None, layer=None):
        self._target = target
        self._call_id = call_id
        self._interval_s = settings.MODEL_STREAM_INTERVAL_MS / 1000 if interval_s is None else interval_s
        self._layer = layer if layer is not None else get_channel_layer()
        self._text = ""  # prose: its last 2 × STREAM_TEXT_MAX_CHARS at most; JSON: its start
        self._truncated = False
        self._shown = ""  # the text of the last message sent
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._publishing = self._closing = False
        self._started = 0.0  # when the last publish began
        self._broken = self._layer is None
        self.sent = 0

    def feed(self, text: str) -> None:
        if self._broken or not text:
            return
        if self._target.field:
            self._text = (self._text + text)[:JSON_MAX_CHARS]
        else:
            self._text += text
            if len(self._text) > 2 * STREAM_TEXT_MAX_CHARS:  # trim now and then, not on every chunk
                self._text, self._truncated = self._text[-STREAM_TEXT_MAX_CHARS:], True
        self._dirty.set()
        if self._task is None:
            self._task = asyncio.ensure_future(self._pump())

    async def close(self) -> None:
        """Stop publishing and send the final ``done`` message; never raises, waits at most about a second."""
        if self._task is None:
            return  # no text came (a tool call): nothing was shown, nothing to take back
        self._closing = True
        try:
            if self._publishing:  # let a publish under way finish (the pump returns after it) rather than cut it
                await asyncio.wait([self._task], timeout=CLOSE_WAIT_S)
        finally:  # also when the call itself is being cancelled: no task outlives its call
            slow = self._publishing  # still under way: the layer is in trouble, do not wait on it again
            self._task.cancel()
        await asyncio.wait([self._task])
        if slow:
            self._give_up()
        if self.sent and not self._broken and not slow:
            await self._publish(done=True)

    async def _pump(self) -> None:
        while not self._broken:
            await self._dirty.wait()
            self._dirty.clear()
            await self._publish(done=False)
            if self._closing:
                return
            await asyncio.sleep(self._interval_s)

    def _text_shown(self) -> tuple[str, bool]:
        """What the page shows (the field's value for JSON), cut to its tail; and whether it was cut."""
        full = partial_json_string(self._text, self._target.field) if self._target.field else self._text
        text = full[-STREAM_TEXT_MAX_CHARS:]
        return text, self._truncated or len(text) < len(full)

    async def _publish(self, *, done: bool) -> None:
        text, truncated = self._text_shown()
        if not text or (text == self._shown and not done):
            return  # nothing new to show (a JSON answer writing other fields)
        message = {
            "type": MESSAGE_TYPE,
            "call": self._call_id,
            "agent": self._target.agent,
            "step": self._target.step,
            "text": text,
            "truncated": truncated,
            "done": done,
        }
        self._publishing, self._started = True, time.monotonic()
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await self._layer.group_send(self._target.group, message)
            self.sent += 1
            self._shown = text
        except Exception:
            self._give_up(exc_info=True)
        finally:
            self._publishing = False

    def _give_up(self, *, exc_info: bool = False) -> None:
        self._broken = True
        logger.warning(
            "could not stream model call %s to %s after %.2fs; the page gets the answer once it is stored",
            self._call_id,
            self._target.group,
            time.monotonic() - self._started,
            exc_info=exc_info,
        )
