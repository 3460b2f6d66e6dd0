"""The knowledge base: a finished mission's lessons and decisions reach later missions' briefs."""

from decimal import Decimal

import pytest

from missions.knowledge import knowledge_brief, knowledge_search
from missions.models import KnowledgeEntry, Mission, Step
from missions.services import mission_submit
from tests.conftest import wait_for


def _entry(title: str, body: str) -> KnowledgeEntry:
    return KnowledgeEntry.objects.create(kind="lesson", title=title, body=body)


def test_it_finds_entries_by_the_words_they_share(db):
    """The most relevant entries come first; unrelated ones are left out."""
    auth = _entry("Tokens for user authentication", "Rotate signing keys; test expiry.")
    _entry("CSV export", "Quote fields that hold commas.")
    also = _entry("Password reset", "Expire reset tokens after one use.")
    found = knowledge_search("Build an API for user authentication tokens")
    assert found[0] == auth
    assert also in found
    assert all("CSV" not in e.title for e in found)
    assert knowledge_search("") == [] and knowledge_search("a an the") == []


def test_it_writes_nothing_into_a_brief_when_nothing_applies(db, pm):
    mission = Mission.objects.create(requester=pm, title="Unrelated", request="Paint the shed", budget_usd=Decimal(1))
    assert knowledge_brief(mission) == ""


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_keeps_lessons_and_feeds_them_to_the_next_mission(company, pm, sim, celery_worker):
    """A mission's validation findings become a lesson; a later similar mission's step brief carries it."""
    sim.script(
        {
            "role": "plan_review",
            "times": 1,
            "reply": {"json": {"verdict": "reject", "findings": ["Rate-limit the login endpoint."]}},
        }
    )

    def run(title: str) -> Mission:
        mission = mission_submit(
            requester=pm, title=title, request="Login API", budget_usd=Decimal("3.00"), require_deploy_approval=False
        )

        def finished():
            mission.refresh_from_db()
            return mission.is_finished

        wait_for(finished, timeout=90, message=title)
        assert mission.status == Mission.Status.COMPLETED, mission.failure_reason
        return mission

    first = run("Login API for the shop")
    kinds = set(first.knowledge.values_list("kind", flat=True))
    assert kinds == {"decision", "lesson"}
    assert first.knowledge.filter(body__contains="Rate-limit the login endpoint.").exists()

    second = run("Login API for the blog")
    brief = Step.objects.get(plan__mission=second, key="core").messages.get(source="Brief").content
    assert "Relevant knowledge from earlier missions" in brief
    assert "Rate-limit the login endpoint." in brief


def test_it_keeps_one_requesters_knowledge_out_of_anothers_briefs(db, pm, other_pm):
    """Briefs are shown in the transcript, so they only carry knowledge from the requester's own missions."""
    theirs = Mission.objects.create(requester=other_pm, title="Secret payroll API", request="r", budget_usd=Decimal(1))
    KnowledgeEntry.objects.create(
        mission=theirs, kind="lesson", title="Payroll API lesson", body="Salaries table layout."
    )
    mine = Mission.objects.create(requester=pm, title="Payroll API", request="Build it", budget_usd=Decimal(1))
    assert knowledge_brief(mine) == ""
    own = Mission.objects.create(requester=pm, title="Old payroll API", request="r", budget_usd=Decimal(1))
    KnowledgeEntry.objects.create(mission=own, kind="lesson", title="Payroll API pagination", body="Page by id.")
    assert "Payroll API pagination" in knowledge_brief(mine) and "Salaries" not in knowledge_brief(mine)
