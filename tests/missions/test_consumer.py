"""The live mission socket: login and per-mission permission, origin check, replay after a seq, live events."""

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client

from agents.models import LLMCall
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


def _llm_call(mission: Mission, status: str) -> int:
    return LLMCall.objects.create(mission=mission, model_name="sim-1", purpose="step:codegen", status=status).pk


async def _stream(mission: Mission, call: int, text: str, done: bool = False) -> None:
    message = {"call": call, "agent": "Developer", "step": "core", "text": text, "truncated": False, "done": done}
    await get_channel_layer().group_send(mission.group_name, {"type": "mission.stream", **message})


async def test_it_shows_streamed_text_escaped_on_a_resumed_socket(pm):
    """A new stream redraws the stream area with it; model text is escaped plain text (never markup); a later
    message of the same call replaces only that call's text."""
    mission = await sync_to_async(_mission)(pm)
    call = await sync_to_async(_llm_call)(mission, LLMCall.Status.PENDING)
    communicator = await _resumed(mission, pm)
    await _stream(mission, call, "<script>alert(1)</script>\nline <b>two</b>")
    html = await communicator.receive_from(timeout=5)
    assert html.startswith('<div id="transcript-live"') and f'id="stream-{call}"' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\nline &lt;b&gt;two&lt;/b&gt;" in html
    assert "<script" not in html and "<b>" not in html
    assert "Developer · core" in html
    await _stream(mission, call, "<script>alert(1)</script>\nline <b>two</b> and three")
    html = await communicator.receive_from(timeout=5)
    assert html.startswith(f'<div id="stream-{call}"') and "transcript-live" not in html
    assert "and three" in html
    await communicator.disconnect()


async def test_it_streams_only_to_resumed_sockets_of_the_mission(pm, other_pm):
    """A socket whose page has not said where it is gets nothing (its resume starts it afresh), and the stream
    of one mission never reaches a socket of another."""
    mission = await sync_to_async(_mission)(pm)
    other = await sync_to_async(_mission)(other_pm, title="Someone else's")
    call = await sync_to_async(_llm_call)(mission, LLMCall.Status.PENDING)
    waiting, connected, _ = await _connect(mission, [ORIGIN, HOST, await sync_to_async(_cookie_for)(pm)])
    assert connected
    elsewhere = await _resumed(other, other_pm)
    await _stream(mission, call, "secret plans")
    assert await waiting.receive_nothing(timeout=0.5)
    assert await elsewhere.receive_nothing(timeout=0.1)
    await waiting.disconnect()
    await elsewhere.disconnect()


async def test_it_takes_finished_streams_away_with_the_next_event(pm):
    """The next event's batch redraws the stream area with only the calls still running: one whose done came,
    and one whose done the layer dropped but whose ledger row is settled, go (their stored message is in the
    transcript of the same batch), for good; a done for a call never shown is ignored."""
    mission = await sync_to_async(_mission)(pm)
    running, finished, dropped, unseen = [
        await sync_to_async(_llm_call)(mission, status)
        for status in (LLMCall.Status.PENDING, LLMCall.Status.OK, LLMCall.Status.OK, LLMCall.Status.OK)
    ]
    communicator = await _resumed(mission, pm)
    for call in (running, finished, dropped):
        await _stream(mission, call, f"text of {call}")
        await communicator.receive_from(timeout=5)
    await _stream(mission, finished, f"all the text of {finished}", done=True)
    assert "stream-done" in await communicator.receive_from(timeout=5)
    await _stream(mission, unseen, "never shown", done=True)
    assert await communicator.receive_nothing(timeout=0.3)

    await sync_to_async(event_record)(mission=mission, kind=Event.Kind.STATUS, message="step done")
    html = await communicator.receive_from(timeout=5)
    assert 'id="transcript"' in html
    live = html[html.index('<div id="transcript-live"') :]
    assert f'id="stream-{running}"' in live
    assert f'id="stream-{finished}"' not in live and f'id="stream-{dropped}"' not in live
    await _stream(mission, dropped, f"a late message of {dropped}")
    assert await communicator.receive_nothing(timeout=0.3), "a call taken away came back"
    await communicator.disconnect()
