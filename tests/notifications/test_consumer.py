"""The per-user notification socket: login and origin checks, badge and toasts when gates open, the live queue."""

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from missions.models import Mission
from missions.services import mission_transition
from orchestrator_site.asgi import application
from reviews.gates import gate_decide, gate_open
from reviews.models import ApprovalGate

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

ORIGIN = (b"origin", b"http://localhost")
HOST = (b"host", b"localhost")
URL = "/ws/notifications/"


def _cookie_for(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode())


def _mission(requester, title="Payments API", status=Mission.Status.AWAITING_DEPLOY_APPROVAL) -> Mission:
    return Mission.objects.create(
        requester=requester, title=title, request="r", budget_usd=Decimal("1.00"), status=status
    )


def _open_gate(mission: Mission) -> ApprovalGate:
    return gate_open(mission=mission, kind=ApprovalGate.Kind.DEPLOY, question=f"Ship {mission.title}?")


async def _connect(user=None, headers=None):
    if headers is None:
        headers = [ORIGIN, HOST, await sync_to_async(_cookie_for)(user)]
    communicator = WebsocketCommunicator(application, URL, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    if not connected:  # a refused consumer still waits for its disconnect: end it before the test's loop closes
        await communicator.disconnect()
    return communicator, connected, code


async def _reviewer_socket(reviewer) -> WebsocketCommunicator:
    """A reviewer's socket that has received its greeting (the badge as it is now)."""
    communicator, connected, _ = await _connect(reviewer)
    assert connected
    assert 'id="gate-badge"' in await communicator.receive_from(timeout=5)
    return communicator


async def _receive_until(communicator, text: str) -> str:
    """Frames until one contains ``text`` (a badge update and a toast are separate frames)."""
    for _ in range(5):
        html = await communicator.receive_from(timeout=5)
        if text in html:
            return html
    raise AssertionError(f"no frame with {text!r}")


async def test_it_refuses_anonymous_sockets():
    communicator, connected, code = await _connect(headers=[ORIGIN, HOST])
    assert not connected
    assert code == 4401


async def test_it_refuses_a_foreign_origin(reviewer):
    """A page on another site (or another port of this host) cannot listen to a reviewer's notifications."""
    cookie = await sync_to_async(_cookie_for)(reviewer)
    for origin in (b"http://evil.example", b"http://localhost:9999"):
        communicator, connected, _ = await _connect(headers=[(b"origin", origin), HOST, cookie])
        assert not connected, origin


async def test_it_sends_the_badge_and_a_toast_when_a_gate_opens(pm, reviewer):
    """A gate on the PM's mission raises the reviewer's badge to 1 and pops a toast naming the mission."""
    communicator = await _reviewer_socket(reviewer)
    mission = await sync_to_async(_mission)(pm)
    await sync_to_async(_open_gate)(mission)
    toast = await _receive_until(communicator, "toast")
    assert 'hx-swap-oob="beforeend:#toasts"' in toast
    assert "Deploy approval needs your decision: Payments API" in toast
    assert f'href="{mission.get_absolute_url()}"' in toast
    assert 'aria-label="Dismiss this notification"' in toast
    badge = await _receive_until(communicator, 'id="gate-badge"')
    assert 'hx-swap-oob="true">1<span' in badge
    await communicator.disconnect()


async def test_it_tells_the_requester_nothing_about_their_own_gate(reviewer):
    """A reviewer who filed the mission gets no toast and no count for its gate: someone else decides."""
    communicator = await _reviewer_socket(reviewer)
    mission = await sync_to_async(_mission)(reviewer)
    await sync_to_async(_open_gate)(mission)
    badge = await communicator.receive_from(timeout=5)  # every reviewer recounts
    assert 'id="gate-badge"' in badge and " hidden>" in badge
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


async def test_it_escapes_mission_titles_in_toasts(pm, reviewer):
    """A title is the PM's text: it arrives as text, never as markup."""
    communicator = await _reviewer_socket(reviewer)
    mission = await sync_to_async(_mission)(pm, title='<img src=x onerror="alert(1)">')
    await sync_to_async(_open_gate)(mission)
    toast = await _receive_until(communicator, "toast")
    assert "<img" not in toast and "&lt;img src=x" in toast
    await communicator.disconnect()


async def test_it_tells_the_requester_when_their_mission_finishes(pm):
    """The PM's open page gets a toast when their mission completes."""
    mission = await sync_to_async(_mission)(pm, status=Mission.Status.DEPLOYING)
    communicator, connected, _ = await _connect(pm)
    assert connected
    assert await communicator.receive_nothing(timeout=0.3)  # no badge for someone who decides no gates
    await sync_to_async(mission_transition)(mission=mission, to=Mission.Status.COMPLETED)
    toast = await communicator.receive_from(timeout=5)
    assert "Your mission Payments API completed." in toast and "toast-finished" in toast
    await communicator.disconnect()


async def test_it_keeps_the_queue_page_live(pm, other_pm, reviewer):
    """On the queue page a new gate is appended and a decided one removed, by difference with what it shows."""
    shown = await sync_to_async(_open_gate)(await sync_to_async(_mission)(pm, title="Shown already"))
    communicator = await _reviewer_socket(reviewer)
    await communicator.send_json_to({"type": "queue", "shown": [shown.pk]})
    assert 'hx-swap-oob="true">1<span' in await communicator.receive_from(timeout=5)

    new = await sync_to_async(_open_gate)(await sync_to_async(_mission)(other_pm, title="Brand new"))
    added = await _receive_until(communicator, "beforeend:#gate-queue")
    assert f'id="queue-gate-{new.pk}"' in added and "Brand new" in added
    assert f'id="queue-gate-{shown.pk}"' not in added
    assert 'hx-post="/gates/' in added  # the reviewer can decide it right there

    await sync_to_async(gate_decide)(gate=shown, by=reviewer, decision="approved")
    removed = await _receive_until(communicator, "delete")
    assert f'<li id="queue-gate-{shown.pk}" hx-swap-oob="delete"></li>' in removed
    assert 'hx-swap-oob="true">1<span' in removed
    await communicator.disconnect()


async def test_it_catches_up_on_reconnect(pm, reviewer):
    """A queue page that reconnects says what it shows and gets what it missed, including closed gates."""
    gone = await sync_to_async(_open_gate)(await sync_to_async(_mission)(pm, title="Cancelled meanwhile"))
    await sync_to_async(mission_transition)(mission=gone.mission, to=Mission.Status.CANCELLED, reason="Stop.")
    missed = await sync_to_async(_open_gate)(await sync_to_async(_mission)(pm, title="Missed"))
    communicator = await _reviewer_socket(reviewer)
    await communicator.send_json_to({"type": "queue", "shown": [gone.pk]})
    html = await communicator.receive_from(timeout=5)
    assert f'<li id="queue-gate-{gone.pk}" hx-swap-oob="delete"></li>' in html
    assert f'id="queue-gate-{missed.pk}"' in html
    await communicator.disconnect()


async def test_it_ignores_other_frames(reviewer):
    """A mission page's resume frame or garbage changes nothing and keeps the socket up."""
    communicator = await _reviewer_socket(reviewer)
    for frame in ['{"type": "resume", "after": 3}', "not json", '{"type": "queue", "shown": ["1"]}', "x" * 10000]:
        await communicator.send_to(text_data=frame)
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.send_json_to({"type": "queue", "shown": []})
    assert 'id="gate-badge"' in await communicator.receive_from(timeout=5)
    await communicator.disconnect()


async def test_it_closes_when_the_user_logs_out(reviewer):
    client = Client()
    await sync_to_async(client.force_login)(reviewer)
    cookie = (
        b"cookie",
        f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode(),
    )
    communicator, connected, _ = await _connect(headers=[ORIGIN, HOST, cookie])
    assert connected
    await communicator.receive_from(timeout=5)
    await sync_to_async(client.post)("/logout/")
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}


async def test_it_adds_new_gates_only_where_they_belong_in_a_paged_filtered_queue(pm, reviewer):
    """A page that is not the last gets no new gates (they belong on a later page); a kind filter keeps its kind."""
    shown = await sync_to_async(_open_gate)(await sync_to_async(_mission)(pm, title="Shown"))
    earlier_page = await _reviewer_socket(reviewer)
    await earlier_page.send_json_to({"type": "queue", "shown": [shown.pk], "appends": False})
    await earlier_page.receive_from(timeout=5)
    budget_only = await _reviewer_socket(reviewer)
    await budget_only.send_json_to({"type": "queue", "shown": [], "kind": "budget"})
    await budget_only.receive_from(timeout=5)

    new = await sync_to_async(_open_gate)(await sync_to_async(_mission)(pm, title="Newer deploy"))
    for communicator in (earlier_page, budget_only):
        html = await _receive_until(communicator, 'id="gate-badge"')
        assert f"queue-gate-{new.pk}" not in html and "beforeend:#gate-queue" not in html
    await budget_only.send_json_to({"type": "queue", "shown": [], "kind": "<script>"})  # not a kind: ignored
    assert await budget_only.receive_nothing(timeout=0.5)
    for communicator in (earlier_page, budget_only):
        await communicator.disconnect()


async def test_it_keeps_the_home_dashboard_live(pm, reviewer):
    """The home page says it is open and gets its live parts; when the PM's mission moves, the PM's dashboard
    gets them again with the new status, and a reviewer's dashboard follows the gates."""
    mission = await sync_to_async(_mission)(pm, status=Mission.Status.EXECUTING)
    communicator, connected, _ = await _connect(pm)
    assert connected
    await communicator.send_to(text_data='{"type": "home"}')
    parts = await communicator.receive_from(timeout=5)
    assert 'id="home-missions" hx-swap-oob="true"' in parts and "Executing" in parts
    assert 'id="home-spend" hx-swap-oob="true"' in parts and 'id="home-failures" hx-swap-oob="true"' in parts
    await sync_to_async(mission_transition)(mission=mission, to=Mission.Status.AWAITING_DEPLOY_APPROVAL)
    moved = await _receive_until(communicator, 'id="home-missions"')
    assert "Awaiting deploy approval" in moved and "Executing" not in moved

    watcher = await _reviewer_socket(reviewer)
    await watcher.send_to(text_data='{"type": "home"}')
    assert "Nothing is waiting for your decision." in await _receive_until(watcher, 'id="home-gates"')
    await sync_to_async(_open_gate)(mission)
    gates = await _receive_until(watcher, "Gates waiting for me")
    assert "Payments API" in gates and "Deploy approval" in gates
    await communicator.disconnect()
    await watcher.disconnect()


async def test_it_sends_no_home_parts_to_a_page_that_is_not_the_home_page(pm):
    """Without the home frame, a mission's move is no reason to send anything (but its toast, when it ends)."""
    mission = await sync_to_async(_mission)(pm, status=Mission.Status.EXECUTING)
    communicator, connected, _ = await _connect(pm)
    assert connected
    await communicator.send_to(text_data='{"type": "home", "x": "' + "y" * 9000 + '"}')  # too big: ignored
    await sync_to_async(mission_transition)(mission=mission, to=Mission.Status.AWAITING_DEPLOY_APPROVAL)
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()
