"""Record mission events and tell live pages about them after commit.

The event row is written in the caller's transaction; the channel-layer
message goes out only once that transaction commits (as Zulip's
send_event_on_commit), so a page never hears of a change it cannot read.
"""

import logging
from typing import TYPE_CHECKING

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from missions.models import Event, Mission

if TYPE_CHECKING:
    from agents.models import AgentSpec

logger = logging.getLogger(__name__)


def event_record(
    *,
    mission: Mission,
    kind: str,
    message: str,
    data: dict | None = None,
    actor: AbstractBaseUser | None = None,
    actor_agent: "AgentSpec | None" = None,
) -> Event:
    """Append an event with the mission's next ``seq`` and notify after commit.

    ``actor`` is the person who acted, ``actor_agent`` the agent; neither means the engine did it.
    """
    with transaction.atomic():
        # The row lock on the mission serialises seq numbers across workers.
        Mission.objects.select_for_update().filter(pk=mission.pk).update(last_event_seq=F("last_event_seq") + 1)
        seq = Mission.objects.values_list("last_event_seq", flat=True).get(pk=mission.pk)
        mission.last_event_seq = seq
        event = Event.objects.create(
            mission=mission,
            seq=seq,
            kind=kind,
            message=message,
            data=data or {},
            actor=actor if actor is not None and actor.is_authenticated else None,
            actor_agent=actor_agent,
        )
        group = mission.group_name
        transaction.on_commit(lambda: _notify(group, seq))
    return event


def _notify(group: str, seq: int) -> None:
    """Best effort: a dropped message is replayed from the database on reconnect."""
    try:
        async_to_sync(get_channel_layer().group_send)(group, {"type": "mission.event", "seq": seq})
    except Exception:
        logger.warning("could not publish event %s to %s", seq, group, exc_info=True)
