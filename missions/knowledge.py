"""The knowledge base across missions: a retrospective writes lessons and decisions; briefs read the relevant ones."""

import re

from django.db import connection
from django.db.models import Q

from missions.models import DecisionCycle, Event, KnowledgeEntry, Mission, Step

# Search words: letters and digits only (nothing a LIKE or tsquery would read as syntax), 4 to 30 long,
# at most 12 distinct ones, taken from the start of the text. A longer "word" is noise, not a topic,
# and an unbounded one once made SQLite refuse the query ("LIKE or GLOB pattern too complex").
WORD_RE = re.compile(r"(?<![a-z0-9])[a-z0-9]{4,30}(?![a-z0-9])")
MAX_WORDS = 12
SCAN_CHARS = 20_000
STOP_WORDS = {"with", "that", "this", "from", "into", "have", "their", "tests", "build", "write", "should"}


def knowledge_record_retrospective(mission: Mission) -> list[KnowledgeEntry]:
    """Keep what this mission decided and learned, from its own record (no model call, nothing invented).

    1. The adopted plan and how the C-suite reached it.
    2. Validation findings that sent a plan back.
    3. Steps that needed more than one attempt, and why.
    4. Specialists created for roles nobody covered.
    """
    if mission.knowledge.exists():
        return []  # once per mission, however often the last task is delivered
    entries: list[KnowledgeEntry] = []
    plan = mission.plans.order_by("-version").first()
    planning = mission.cycles.filter(kind=DecisionCycle.Kind.PLANNING).order_by("-number").first()
    if plan is not None:
        steps = ", ".join(f"{s.key} ({s.role})" for s in plan.steps.all())
        how = f" {planning.summary}" if planning else ""
        entries.append(
            _entry(mission, "decision", f"Plan for “{mission.title}”", f"{plan.summary} Steps: {steps}.{how}")
        )
    for cycle in mission.cycles.filter(kind=DecisionCycle.Kind.VALIDATION, outcome=DecisionCycle.Outcome.REJECTED):
        entries.append(_entry(mission, "lesson", f"Validation findings on “{mission.title}”", cycle.summary))
    for step in Step.objects.filter(plan=plan, attempt__gt=1) if plan else []:
        failures = mission.events.filter(kind=Event.Kind.STEP, data__step=step.key, message__contains="failed (attempt")
        why = " ".join(failures.values_list("message", flat=True)[:3])
        entries.append(
            _entry(mission, "lesson", f"Step {step.key} of “{mission.title}” took {step.attempt} attempts", why)
        )
    for agent in mission.created_agents.all():
        body = f"Created {agent.title} ({agent.name}) for role {agent.role}; reused by this requester's later missions."
        entries.append(_entry(mission, "decision", f"Specialist for role {agent.role}", body))
    return KnowledgeEntry.objects.bulk_create(entries)


def _entry(mission: Mission, kind: str, title: str, body: str) -> KnowledgeEntry:
    return KnowledgeEntry(mission=mission, kind=kind, title=title[:200], body=body[:4000])


def knowledge_search(
    text: str, *, exclude_mission: Mission | None = None, requester_id: int | None = None, limit: int = 3
) -> list[KnowledgeEntry]:
    """Entries relevant to ``text``: PostgreSQL full-text search, or word matching on SQLite."""
    words = search_words(text)
    if not words:
        return []
    entries = KnowledgeEntry.objects.all()
    if exclude_mission is not None:
        entries = entries.exclude(mission=exclude_mission)
    if requester_id is not None:
        entries = entries.filter(mission__requester_id=requester_id)
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

        vector = SearchVector("title", weight="A") + SearchVector("body", weight="B")
        query = SearchQuery(" | ".join(words), search_type="raw")
        return list(entries.annotate(rank=SearchRank(vector, query)).filter(rank__gt=0).order_by("-rank")[:limit])
    match = Q()
    for word in words:
        match |= Q(title__icontains=word) | Q(body__icontains=word)
    candidates = list(entries.filter(match)[:200])
    score = {e.pk: sum(w in (e.title + " " + e.body).lower() for w in words) for e in candidates}
    return sorted(candidates, key=lambda e: (-score[e.pk], -e.pk))[:limit]


def search_words(text: str) -> list[str]:
    """The bounded, distinct, plain words of ``text`` that the knowledge search matches on."""
    found = dict.fromkeys(WORD_RE.findall(text[:SCAN_CHARS].lower()))
    return [word for word in found if word not in STOP_WORDS][:MAX_WORDS]


def knowledge_brief(mission: Mission) -> str:
    """A few lines of earlier lessons and decisions for this mission's briefs ('' when none apply)."""
    # Only the requester's own missions: briefs are shown in the transcript, and others' missions are private.
    found = knowledge_search(
        f"{mission.title} {mission.request}", exclude_mission=mission, requester_id=mission.requester_id
    )
    if not found:
        return ""
    lines = [f"- [{e.get_kind_display()}] {e.title}: {e.body[:400]}" for e in found]
    return "Relevant knowledge from earlier missions:\n" + "\n".join(lines)
