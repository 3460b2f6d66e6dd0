"""The admin's big changelists (ledger, transcripts, events, audit): a bounded number of queries per page, filters
whose choices are not read from the table, newest first, search by an indexed value, still read-only."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from agents.models import AgentMessage, AgentSpec, LLMCall
from audit.models import AuditEntry
from audit.services import audit_record
from missions.models import Event, Mission, MissionTemplate, Plan, Step

LEDGER = reverse("admin:agents_llmcall_changelist")


def _missions(pm, count: int, start: int = 0) -> list[tuple[Mission, Step, AgentSpec]]:
    """Missions with a step and an agent of their own, so a query per row would show in the count."""
    made = []
    for n in range(start, start + count):
        mission = Mission.objects.create(requester=pm, title=f"Scale mission {n}", request="R", budget_usd=Decimal(5))
        plan = Plan.objects.create(mission=mission, version=1)
        agent = AgentSpec.objects.create(name=f"scale-agent-{n}", role="developer", title=f"Dev {n}", system_prompt="P")
        step = Step.objects.create(
            plan=plan, key="build", title="Build", role="developer", instructions="I", agent=agent
        )
        made.append((mission, step, agent))
    return made


def _ledger_rows(made, **fields) -> list[LLMCall]:
    values = {"model_name": "sim-1", "purpose": "step:codegen", "status": LLMCall.Status.OK, **fields}
    return [
        LLMCall.objects.create(mission=m, step=s, agent=a, finished_at=timezone.now(), **values) for m, s, a in made
    ]


def _messages(made) -> None:
    for mission, step, agent in made:
        AgentMessage.objects.create(mission=mission, step=step, agent=agent, source=agent.name, content="Hello")


def _events(made) -> None:
    for mission, _, agent in made:
        Event.objects.create(mission=mission, seq=1, kind=Event.Kind.STEP, message="Step", actor_agent=agent)


def _audit(made) -> None:
    template = MissionTemplate.objects.get(slug="api_endpoint")
    for mission, _, _ in made:
        audit_record(actor=mission.requester, action=AuditEntry.Action.CHANGE, obj=template, message="Changed")


BIG_LISTS = {
    "agents_llmcall": _ledger_rows,
    "agents_agentmessage": _messages,
    "missions_event": _events,
    "audit_auditentry": _audit,
}


def _queries(client, url: str, params: dict | None = None) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return len(captured), [q["sql"] for q in captured.captured_queries]


@pytest.mark.parametrize("table", BIG_LISTS)
def test_it_lists_a_big_table_in_the_same_queries_for_5_and_50_rows(
    admin_client, company, pm, table, django_assert_max_num_queries
):
    """A page of 50 rows, each with its own mission, step and agent, costs the queries of a page of 5 (no query
    per row), and at most 15."""
    url = reverse(f"admin:{table}_changelist")
    BIG_LISTS[table](_missions(pm, 5))
    five, _ = _queries(admin_client, url)
    BIG_LISTS[table](_missions(pm, 45, start=5))
    with django_assert_max_num_queries(15):
        fifty, _ = _queries(admin_client, url)
    assert fifty == five


def test_it_reads_no_filter_choices_from_the_ledger(admin_client, company, pm):
    """The ledger's filters offer fixed choices (statuses, purposes, profiles, time ranges): no query reads the
    ledger for them (a DISTINCT over 500,000 rows), nor its dates for a date hierarchy."""
    _ledger_rows(_missions(pm, 3))
    _, sql = _queries(admin_client, LEDGER)
    body = admin_client.get(LEDGER).content.decode()
    ledger_reads = [q for q in sql if 'FROM "agents_llmcall"' in q]
    assert not [q for q in ledger_reads if "DISTINCT" in q or "datetime_trunc" in q.lower() or "DATE_TRUNC" in q], (
        ledger_reads
    )
    # The count and the page: nothing else reads the ledger.
    assert len(ledger_reads) == 2, ledger_reads
    for choice in ["Plan draft", "Step: Code generation", "Cache hit", "Last 24 hours", "By model profile"]:
        assert choice in body, choice


def test_it_lists_the_newest_calls_first(admin_client, company, pm):
    """The ledger opens on its newest rows (the index agents_llmcall_recent), ties broken by the newest id."""
    # Pending rows: PostgreSQL's append-only trigger lets only those be updated (here: the same time for both).
    mission = _missions(pm, 1)[0][0]
    first, second = (LLMCall.objects.create(mission=mission, model_name="sim-1", purpose="review") for _ in range(2))
    LLMCall.objects.filter(pk=second.pk).update(created_at=first.created_at)
    rows = list(admin_client.get(LEDGER).context["cl"].result_list)
    assert [row.pk for row in rows] == [second.pk, first.pk]


def test_it_filters_and_searches_the_ledger(admin_client, company, pm):
    """Each filter and search keeps exactly the rows it names."""
    made = _missions(pm, 3)
    ok = _ledger_rows(made[:1], purpose="plan_draft", provider_request_id="req-abc", model_profile=company)[0]
    failed = _ledger_rows(made[1:2], status=LLMCall.Status.ERROR)[0]
    # Old rows are written pending (the PostgreSQL trigger allows moving only those) and dated back.
    old = LLMCall.objects.create(mission=made[2][0], model_name="sim-1", purpose="review")
    LLMCall.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    table = [
        ({"status__exact": "error"}, {failed.pk}),
        ({"purpose": "plan_draft"}, {ok.pk}),
        ({"purpose": "review"}, {old.pk}),
        ({"overrun__exact": "0"}, {ok.pk, failed.pk, old.pk}),
        ({"written": "24h"}, {ok.pk, failed.pk}),
        ({"written": "7d"}, {ok.pk, failed.pk, old.pk}),
        ({"model_profile__id__exact": str(company.pk)}, {ok.pk}),
        ({"q": str(made[1][0].code)}, {failed.pk}),
        ({"q": f"  {str(made[2][0].code).upper()} "}, {old.pk}),
        ({"q": "req-abc"}, {ok.pk}),
        ({"q": "Scale mission 1"}, set()),  # titles are not searched: an unindexed scan of every row
    ]
    for params, expected in table:
        response = admin_client.get(LEDGER, params)
        assert response.status_code == 200, params
        assert {row.pk for row in response.context["cl"].result_list} == expected, params


def test_it_keeps_the_ledger_read_only(admin_client, company, pm):
    """The faster ledger is still a record: no add link, no actions, 403 on add, change and delete."""
    call = _ledger_rows(_missions(pm, 1))[0]
    response = admin_client.get(LEDGER)
    assert response.context["has_add_permission"] is False
    assert response.context["action_form"] is None
    assert admin_client.get(reverse("admin:agents_llmcall_add")).status_code == 403
    assert admin_client.post(reverse("admin:agents_llmcall_change", args=[call.pk]), {}).status_code == 403
    assert admin_client.post(reverse("admin:agents_llmcall_delete", args=[call.pk]), {"post": "yes"}).status_code == 403
    assert LLMCall.objects.filter(pk=call.pk).exists()
