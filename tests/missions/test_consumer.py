"""The live mission socket: login and per-mission permission, origin check, replay after a seq, live events."""

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client

from missions.events import event_record
from missions.models import Event, Mission
from missions.selectors import REVIEWERS_GROUP
from orchestrator_site.asgi import application

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

ORIGIN = (b"origin", b"http://localhost")
HOST = (b"host", b"localhost")


def _mission(user, title="Live mission") -> Mission:
    mission = Mission.objects.create(requester=user, title=title, request="Do it", budget_usd=Decimal("1.00"))
    for n in range(1, 4):
        event_record(mission=mission, kind=Event.Kind.STATUS, message=f"event number {n}")
    return mission


def _cookie_for(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode())


async def _connect(mission: Mission, headers: list[tuple[bytes, bytes]]):
    communicator = WebsocketCommunicator(application, f"/ws/missions/{mission.code}/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    if not connected:  # a refused consumer still waits for its disconnect: end it before the test's loop closes
        await communicator.disconnect()
    return communicator, connected, code


async def test_it_replays_events_after_the_given_seq(pm):
    """A page that has seen seq 1 gets events 2 and 3, rendered, and the live panels."""
    mission = await sync_to_async(_mission)(pm)
    communicator, connected, _ = await _connect(mission, [ORIGIN, HOST, await sync_to_async(_cookie_for)(pm)])
    assert connected
    await communicator.send_json_to({"type": "resume", "after": 1})
    html = await communicator.receive_from(timeout=5)
    assert 'id="event-2"' in html and 'id="event-3"' in html
    assert 'id="event-1"' not in html
    assert 'hx-swap-oob="beforeend:#timeline"' in html
    assert 'id="mission-status"' in html and 'id="mission-steps"' in html
    await communicator.disconnect()


async def test_it_pushes_new_events_live(pm):
    """An event recorded after the page resumed arrives over the socket without asking."""
    mission = await sync_to_async(_mission)(pm)
    communicator, connected, _ = await _connect(mission, [ORIGIN, HOST, await sync_to_async(_cookie_for)(pm)])
    assert connected
    await communicator.send_json_to({"type": "resume", "after": 3})
    assert await communicator.receive_nothing(timeout=0.5)
    await sync_to_async(event_record)(mission=mission, kind=Event.Kind.STATUS, message="brand new event")
    html = await communicator.receive_from(timeout=5)
    assert "brand new event" in html and 'id="event-4"' in html
    await communicator.disconnect()


async def test_it_refuses_anonymous_sockets(pm):
    mission = await sync_to_async(_mission)(pm)
    communicator, connected, code = await _connect(mission, [ORIGIN, HOST])
    assert not connected
    assert code == 4401


async def test_it_refuses_another_users_mission(pm, other_pm):
    """Someone else's mission is refused exactly like a missing one."""
    mission = await sync_to_async(_mission)(pm)
    communicator, connected, code = await _connect(mission, [ORIGIN, HOST, await sync_to_async(_cookie_for)(other_pm)])
    assert not connected
    assert code == 4404


async def test_it_refuses_a_foreign_origin(pm):
    mission = await sync_to_async(_mission)(pm)
    communicator, connected, _ = await _connect(
        mission, [(b"origin", b"http://evil.example"), HOST, await sync_to_async(_cookie_for)(pm)]
    )
    assert not connected


async def test_it_ignores_malformed_frames_and_stays_up(pm, caplog):
    """Garbage frames are logged and ignored; the socket still answers a valid resume afterwards."""
    mission = await sync_to_async(_mission)(pm)
    communicator, connected, _ = await _connect(mission, [ORIGIN, HOST, await sync_to_async(_cookie_for)(pm)])
    assert connected
    for frame in [
        "not json",
        '{"type": "resume", "after": -1}',
        '{"type": "resume", "after": "2"}',
        "[]",
        '{"type": "other"}',
        "x" * 10000,
    ]:
        await communicator.send_to(text_data=frame)
    assert await communicator.receive_nothing(timeout=0.5)
    assert "malformed frame" in caplog.text
    await communicator.send_json_to({"type": "resume", "after": 2})
    html = await communicator.receive_from(timeout=5)
    assert 'id="event-3"' in html
    await communicator.disconnect()


async def test_it_refuses_the_same_host_on_another_port(pm):
    """A page served by another program on this host (another port) may not read mission pages."""
    mission = await sync_to_async(_mission)(pm)
    cookie = await sync_to_async(_cookie_for)(pm)
    communicator, connected, _ = await _connect(mission, [(b"origin", b"http://localhost:9999"), HOST, cookie])
    assert not connected
    communicator, connected, _ = await _connect(
        mission, [(b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000"), cookie]
    )
    assert connected
    await communicator.disconnect()


async def test_it_closes_the_socket_when_the_user_logs_out(pm):
    """Logging out ends every live page of that user."""
    mission = await sync_to_async(_mission)(pm)
    client = Client()
    await sync_to_async(client.force_login)(pm)
    cookie = (
        b"cookie",
        f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode(),
    )
    communicator, connected, _ = await _connect(mission, [ORIGIN, HOST, cookie])
    assert connected
    await sync_to_async(client.post)("/logout/")
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}


async def _resumed(mission: Mission, user) -> WebsocketCommunicator:
    """A connected socket of ``user`` that has seen every event so far."""
    communicator, connected, _ = await _connect(mission, [ORIGIN, HOST, await sync_to_async(_cookie_for)(user)])
    assert connected
    await communicator.send_json_to({"type": "resume", "after": mission.last_event_seq})
    assert await communicator.receive_nothing(timeout=0.3)
    return communicator


def _leave_reviewers(user) -> None:
    user.groups.remove(Group.objects.get(name=REVIEWERS_GROUP))


def _change_password(user) -> None:
    user.set_password("a brand new password 2")
    user.save()


def _deactivate(user) -> None:
    user.is_active = False
    user.save()


@pytest.mark.parametrize(
    ("viewer", "revoke", "code"),
    [
        ("reviewer", _leave_reviewers, 4404),
        ("pm", _change_password, 4401),
        ("pm", _deactivate, 4401),
    ],
    ids=["reviewer-role-removed", "password-changed", "account-deactivated"],
)
async def test_it_closes_the_socket_when_access_is_lost(pm, reviewer, viewer, revoke, code):
    """After losing the reviewer role, changing password or being deactivated, the next batch closes the socket."""
    mission = await sync_to_async(_mission)(pm)
    mission = await sync_to_async(Mission.objects.get)(pk=mission.pk)
    user = {"pm": pm, "reviewer": reviewer}[viewer]
    communicator = await _resumed(mission, user)
    await sync_to_async(revoke)(user)
    await sync_to_async(event_record)(mission=mission, kind=Event.Kind.STATUS, message="confidential next update")
    output = await communicator.receive_output(timeout=5)
    assert output == {"type": "websocket.close", "code": code}


async def test_it_keeps_sending_while_access_holds(pm, reviewer):
    """The per-batch check does not disturb a user who still may see the mission."""
    mission = await sync_to_async(_mission)(pm)
    mission = await sync_to_async(Mission.objects.get)(pk=mission.pk)
    communicator = await _resumed(mission, reviewer)
    for n in (1, 2):
        await sync_to_async(event_record)(mission=mission, kind=Event.Kind.STATUS, message=f"still visible {n}")
        assert f"still visible {n}" in await communicator.receive_from(timeout=5)
    await communicator.disconnect()


@pytest.mark.parametrize("path", ["/ws/nowhere/", "/", "/ws/missions/not-a-uuid/", "/ws/missions/"])
async def test_it_closes_unrouted_sockets_cleanly(pm, path):
    """A websocket path nobody serves is refused with a close code, not an exception (HTTP 500)."""
    communicator = WebsocketCommunicator(
        application, path, headers=[ORIGIN, HOST, await sync_to_async(_cookie_for)(pm)]
    )
    connected, code = await communicator.connect(timeout=5)
    assert not connected
    assert code == 4404
    await communicator.disconnect()  # the consumer ends: nothing is left running when the test's loop closes
