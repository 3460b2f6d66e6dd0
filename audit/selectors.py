"""The audit trail as one time-ordered list merged from the tables that record what happened.

A page or an export reads it in two steps, so the number of queries does not grow with the rows:
1. ``*_audit_keys``: one UNION query of (time, source, id) over events, ledger rows, peer reviews and
   admin changes, ordered and sliced in the database (the paginator adds one COUNT).
2. ``audit_rows(keys)``: one query per source for the rows of that slice, turned into plain dicts
   (the same dicts the page shows and the JSON and CSV exports write).
"""

from collections.abc import Iterable, Iterator
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, F, QuerySet, Value

from agents.models import LLMCall
from audit.models import AuditEntry
from missions.models import Event, Mission
from reviews.models import PeerReview

EVENT, LEDGER, REVIEW, ADMIN = "event", "ledger", "review", "admin"
COLUMNS = ["at", "source", "kind", "actor_type", "actor", "mission", "object", "summary", "data"]
EXPORT_CHUNK = 500

Key = tuple[datetime, str, int]


def user_may_see_site_audit(user: AbstractBaseUser) -> bool:
    return user.is_authenticated and (user.is_staff or user.is_superuser)


def _keys(rows: QuerySet, source: str, at: str) -> QuerySet:
    return (
        rows.order_by()
        .annotate(audit_at=F(at), audit_source=Value(source, output_field=CharField()), audit_ref=F("pk"))
        .values_list("audit_at", "audit_source", "audit_ref")
    )


def mission_audit_keys(mission: Mission) -> QuerySet:
    """Everything that happened on ``mission``, oldest first: its events, model calls, reviews, admin changes."""
    admin_changes = AuditEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Mission), object_id=str(mission.pk)
    )
    return (
        _keys(Event.objects.filter(mission=mission), EVENT, "created_at")
        .union(
            _keys(LLMCall.objects.filter(mission=mission), LEDGER, "created_at"),
            _keys(PeerReview.objects.filter(mission=mission), REVIEW, "created_at"),
            _keys(admin_changes, ADMIN, "at"),
            all=True,
        )
        .order_by("audit_at", "audit_source", "audit_ref")
    )


def site_audit_keys() -> QuerySet:
    """What people did, newest first: every admin change, and every mission event a person caused."""
    return (
        _keys(AuditEntry.objects.all(), ADMIN, "at")
        .union(_keys(Event.objects.filter(actor__isnull=False), EVENT, "created_at"), all=True)
        .order_by("-audit_at", "-audit_source", "-audit_ref")
    )


def audit_rows(keys: Iterable[Key]) -> list[dict]:
    """The rows behind ``keys``, in their order; one query per source."""
    keys = list(keys)
    wanted: dict[str, list[int]] = {}
    for _, source, ref in keys:
        wanted.setdefault(source, []).append(ref)
    found: dict[tuple[str, int], dict] = {}
    if EVENT in wanted:
        events = Event.objects.filter(pk__in=wanted[EVENT]).select_related("mission", "actor", "actor_agent")
        found.update(((EVENT, e.pk), _event_row(e)) for e in events)
    if LEDGER in wanted:
        calls = LLMCall.objects.filter(pk__in=wanted[LEDGER]).select_related("mission", "agent")
        found.update(((LEDGER, c.pk), _ledger_row(c)) for c in calls)
    if REVIEW in wanted:
        reviews = PeerReview.objects.filter(pk__in=wanted[REVIEW]).select_related("mission", "reviewer", "step")
        found.update(((REVIEW, r.pk), _review_row(r)) for r in reviews)
    if ADMIN in wanted:
        entries = AuditEntry.objects.filter(pk__in=wanted[ADMIN]).select_related("actor", "content_type")
        found.update(((ADMIN, a.pk), _admin_row(a)) for a in entries)
    return [found[(source, ref)] for _, source, ref in keys if (source, ref) in found]


def audit_rows_all(keys: QuerySet) -> Iterator[dict]:
    """Every row of ``keys`` for an export, a chunk at a time (bounded memory and queries per chunk)."""
    offset = 0
    while True:
        chunk = list(keys[offset : offset + EXPORT_CHUNK])
        yield from audit_rows(chunk)
        if len(chunk) < EXPORT_CHUNK:
            return
        offset += EXPORT_CHUNK


def _actor(user, agent) -> tuple[str, str]:
    if user is not None:
        return "user", user.get_username()
    if agent is not None:
        return "agent", agent.title or agent.name
    return "system", ""


def _event_row(event: Event) -> dict:
    actor_type, actor = _actor(event.actor, event.actor_agent)
    return {
        "at": event.created_at,
        "source": EVENT,
        "kind": event.kind,
        "actor_type": actor_type,
        "actor": actor,
        "mission": str(event.mission.code),
        "object": f"event {event.seq}",
        "summary": event.message,
        "data": event.data,
        "mission_title": event.mission.title,
    }


def _ledger_row(call: LLMCall) -> dict:
    actor_type, actor = _actor(None, call.agent)
    tokens = f"{call.prompt_tokens} in ({call.cached_tokens} cached) / {call.completion_tokens} out"
    return {
        "at": call.created_at,
        "source": LEDGER,
        "kind": f"model call: {call.purpose}",
        "actor_type": actor_type,
        "actor": actor,
        "mission": str(call.mission.code),
        "object": f"llm call {call.pk}",
        "summary": f"{call.model_name} {call.get_status_display().lower()}: {tokens} tokens, ${call.cost_usd}",
        "data": {
            "status": call.status,
            "model": call.model_name,
            "prompt_tokens": call.prompt_tokens,
            "cached_tokens": call.cached_tokens,
            "completion_tokens": call.completion_tokens,
            "cost_usd": str(call.cost_usd),
            "reserved_usd": str(call.reserved_usd),
            "attempt": call.attempt,
        },
        "mission_title": call.mission.title,
    }


def _review_row(review: PeerReview) -> dict:
    actor_type, actor = _actor(None, review.reviewer)
    on = f"step {review.step.key}" if review.step_id else "the plan"
    return {
        "at": review.created_at,
        "source": REVIEW,
        "kind": f"review: {review.verdict}",
        "actor_type": actor_type,
        "actor": actor,
        "mission": str(review.mission.code),
        "object": on,
        "summary": f"{review.get_verdict_display()} on {on} (round {review.round}, score {review.score}): "
        f"{review.summary[:300]}",
        "data": {"verdict": review.verdict, "score": review.score, "round": review.round, "comments": review.comments},
        "mission_title": review.mission.title,
    }


def _admin_row(entry: AuditEntry) -> dict:
    actor_type, actor = _actor(entry.actor, None)
    what = entry.content_type.name
    return {
        "at": entry.at,
        "source": ADMIN,
        "kind": f"admin: {entry.action}",
        "actor_type": actor_type,
        "actor": actor,
        "mission": "",
        "object": f"{what} {entry.object_id}: {entry.object_repr}",
        "summary": f"{entry.get_action_display()} {what} “{entry.object_repr}”"
        + (f": {entry.message}" if entry.message else "."),
        "data": entry.changes,
        "mission_title": "",
    }
