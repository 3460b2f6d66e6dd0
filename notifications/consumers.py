"""The per-user notification socket every page opens: the gate badge, the live queue, toasts.

A page connects to /ws/notifications/; the socket joins the user's own group (toasts), the user's
session group (logging out closes it) and, for reviewers, the reviewers' group (any gate change).
A gate change makes each reviewer socket recount its own badge and, on the approval queue page,
send the difference between the gates the page shows and the user's queue now: new gates are
appended, decided or closed ones removed. The queue page says what it shows on every (re)connect
({"type": "queue", "shown": [gate ids]}), so a reconnect catches up on whatever it missed. The home
dashboard says {"type": "home"} the same way, and gets its live parts again whenever one of the user's
missions or any gate changes.

Access is checked again before every message, against the session as it is now (as missions/consumers.py).
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from home.selectors import home_dashboard
from missions.selectors import user_is_reviewer
from notifications.selectors import gate_badge_count
from notifications.services import REVIEWERS_GROUP_NAME, user_notify_group
from orchestrator_site.websocket import frame_of_type, session_user, user_group
from reviews.models import ApprovalGate
from reviews.selectors import gate_queue_for_user

CLOSE_SIGNED_OUT = 4401
MAX_FRAME_BYTES = 8192
MAX_SHOWN = 500
MAX_APPENDED = 50  # a page that fell far behind gets the first new gates now and the rest on reload


class SignedOut(Exception):
    pass


class NotificationConsumer(AsyncWebsocketConsumer):
    closed_with = None
    queue_shown: set[int] | None = None  # the gates the queue page shows; None on any other page
    queue_kind = ""  # the page's kind filter: only such gates are added
    queue_appends = True  # False on a page that is not the last: newer gates belong on a later page
    on_home = False  # the page is the home dashboard: mission and gate changes re-render its live parts

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_SIGNED_OUT)
            return
        self.is_reviewer = await database_sync_to_async(user_is_reviewer)(user)
        self.groups_joined = [user_notify_group(user.pk), user_group(user.pk)]
        if self.is_reviewer:
            self.groups_joined.append(REVIEWERS_GROUP_NAME)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        if self.is_reviewer:
            await self._send_rendered(self._render_gates)  # anything that changed since the page was rendered

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        """The queue page says which gates it shows, the home page that it is open; other frames (another socket's
        resume) are ignored."""
        if frame_of_type(text_data, "home", max_bytes=MAX_FRAME_BYTES) is not None:
            self.on_home = True
            await self._send_rendered(_render_home)
            return
        parsed = _parse_queue(text_data)
        if parsed is None or not self.is_reviewer:
            return
        self.queue_shown, self.queue_kind, self.queue_appends = parsed
        await self._send_rendered(self._render_gates)

    async def notify_gates(self, message):
        await self._send_rendered(self._render_gates)
        if self.on_home:
            await self._send_rendered(_render_home)

    async def notify_missions(self, message):
        if self.on_home:
            await self._send_rendered(_render_home)

    async def notify_toast(self, message):
        await self._send_rendered(lambda user: _render_toast(message))

    async def session_ended(self, message):
        await self._close()

    async def _send_rendered(self, render):
        if self.closed_with is not None:
            return
        try:
            html = await database_sync_to_async(self._render_for_session)(render)
        except SignedOut:
            await self._close()
            return
        if html:
            await self.send(text_data=html)

    async def _close(self):
        if self.closed_with is None:
            self.closed_with = CLOSE_SIGNED_OUT
            await self.close(code=CLOSE_SIGNED_OUT)

    def _render_for_session(self, render) -> str:
        user = session_user(self.scope)
        if user is None:
            raise SignedOut
        return render(user)

    def _render_gates(self, user) -> str:
        """The badge, and on the queue page the gates to add and remove; nothing for a non-reviewer."""
        if not user_is_reviewer(user):
            return ""
        parts = [render_to_string("notifications/live.html#gate-badge", {"gate_badge": gate_badge_count(user)})]
        if self.queue_shown is not None:
            queue = gate_queue_for_user(user)
            if self.queue_kind:
                queue = queue.filter(kind=self.queue_kind)
            still = set(queue.filter(pk__in=self.queue_shown).values_list("pk", flat=True))
            removed = sorted(self.queue_shown - still)
            gates = []
            if self.queue_appends:  # bounded: only gates newer than the newest shown, a few at a time
                newer = queue.filter(pk__gt=max(self.queue_shown, default=0)).order_by("pk")
                gates = list(newer[:MAX_APPENDED])
            added = [gate.pk for gate in gates]
            if gates:
                parts.append(render_to_string("notifications/live.html#queue-added", {"gates": gates, "user": user}))
            parts += [f'<li id="queue-gate-{pk}" hx-swap-oob="delete"></li>' for pk in removed]
            self.queue_shown = (self.queue_shown - set(removed)) | set(added)
        return "\n".join(parts)


def _render_home(user) -> str:
    context = {**home_dashboard(user=user), "user": user, "oob": True}
    return render_to_string("home/index.html#live-parts", context)


def _render_toast(message: dict) -> str:
    context = {key: message.get(key, "") for key in ("kind", "message", "url")}
    return render_to_string("notifications/live.html#toast", context)


def _parse_queue(text: str | None) -> tuple[set[int], str, bool] | None:
    """``{"type": "queue", "shown": [ids], "kind": "", "appends": true}`` from the queue page; None if not that."""
    frame = frame_of_type(text, "queue", max_bytes=MAX_FRAME_BYTES)
    if frame is None:
        return None
    shown = frame.get("shown")
    if not isinstance(shown, list) or len(shown) > MAX_SHOWN:
        return None
    if not all(isinstance(pk, int) and not isinstance(pk, bool) and pk > 0 for pk in shown):
        return None
    kind = frame.get("kind", "")
    if kind not in ("", *ApprovalGate.Kind.values):
        return None
    return set(shown), kind, frame.get("appends", True) is not False
