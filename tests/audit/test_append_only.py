"""On PostgreSQL the database itself refuses to rewrite what happened: UPDATE and DELETE raise."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from agents.models import AgentSpec, LLMCall
from agents.services import llm_call_settle
from audit.models import AuditEntry
from audit.services import audit_record
from missions.events import event_record
from missions.models import DecisionCycle, Event, Mission, TestRun, Vote
from reviews.models import PeerReview

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the append-only triggers exist on PostgreSQL only (set DATABASE_URL=postgres://...); "
    "on SQLite the read-only admin is the guard (tests/test_admin.py)",
)


@pytest.fixture
def rows(pm, company):
    """One row of every append-only table, all of one mission."""
    mission = Mission.objects.create(requester=pm, title="History", request="r", budget_usd=Decimal("5"))
    cto = AgentSpec.objects.get(role="cto", is_c_suite=True)
    cycle = DecisionCycle.objects.create(mission=mission, number=1, kind=DecisionCycle.Kind.PLANNING)
    return {
        Event: event_record(mission=mission, kind=Event.Kind.SUBMITTED, message="Filed"),
        Vote: Vote.objects.create(cycle=cycle, agent=cto, stance=Vote.Stance.APPROVE, rationale="Fine"),
        PeerReview: PeerReview.objects.create(mission=mission, reviewer=cto, verdict=PeerReview.Verdict.APPROVE),
        TestRun: TestRun.objects.create(mission=mission, passed=3, isolation="bwrap"),
        LLMCall: LLMCall.objects.create(mission=mission, model_name="sim-1", purpose="p", status=LLMCall.Status.OK),
        AuditEntry: audit_record(actor=pm, action=AuditEntry.Action.CHANGE, obj=cto, message="Edited"),
    }


TABLES = [Event, Vote, PeerReview, TestRun, LLMCall, AuditEntry]
STATEMENTS = {
    "update": "UPDATE {table} SET id = id WHERE id = %s",
    "delete": "DELETE FROM {table} WHERE id = %s",
}


@pytest.mark.parametrize("statement", STATEMENTS)
@pytest.mark.parametrize("model", TABLES, ids=[m._meta.label for m in TABLES])
def test_it_refuses_raw_sql_update_and_delete(rows, model, statement):
    """Even SQL that bypasses the app and the admin cannot change or remove a row."""
    row = rows[model]
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(STATEMENTS[statement].format(table=model._meta.db_table), [row.pk])
    assert model.objects.filter(pk=row.pk).exists()


def test_it_refuses_the_orm_too_and_deleting_a_mission_that_has_a_history(rows):
    """A queryset update, a delete and a mission's cascade are refused in the database as well."""
    event = rows[Event]
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.filter(pk=event.pk).update(message="Rewritten")
    with pytest.raises(IntegrityError), transaction.atomic():
        Mission.objects.filter(pk=event.mission_id).delete()
    event.refresh_from_db()
    assert event.message == "Filed"


def test_it_lets_a_ledger_row_settle_once_and_never_again(rows, company):
    """A pending call is settled (the row written before the call is updated after it); a settled one is final."""
    mission = rows[Event].mission
    pending = LLMCall.objects.create(
        mission=mission, model_profile=company, model_name="sim-1", purpose="p", max_output_tokens=100
    )
    settled = llm_call_settle(call=pending, prompt_tokens=10, completion_tokens=5, latency_ms=3)
    assert settled.status == LLMCall.Status.OK
    with pytest.raises(IntegrityError, match="settled row"), transaction.atomic():
        LLMCall.objects.filter(pk=settled.pk).update(cost_usd=Decimal("0"))
    with pytest.raises(IntegrityError), transaction.atomic():
        LLMCall.objects.filter(pk=pending.pk).delete()
    gone = LLMCall.objects.create(mission=mission, model_name="sim-1", purpose="p")
    with pytest.raises(IntegrityError), transaction.atomic():
        LLMCall.objects.filter(pk=gone.pk).delete()  # a pending row is not deleted either
