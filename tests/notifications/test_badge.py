"""The gate badge in the navigation: the gates I may decide, counted with one query on every page."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from missions.models import Mission
from reviews.models import ApprovalGate

pytestmark = pytest.mark.django_db


def _gate(requester, *, status=Mission.Status.AWAITING_DEPLOY_APPROVAL, gate_status=ApprovalGate.Status.PENDING):
    mission = Mission.objects.create(
        requester=requester, title="Gated work", request="r", budget_usd=Decimal("1.00"), status=status
    )
    return ApprovalGate.objects.create(
        mission=mission, kind=ApprovalGate.Kind.DEPLOY, question="Ship?", status=gate_status
    )


def _badge(client) -> str:
    body = client.get("/missions/").content.decode()
    start = body.index('id="gate-badge"')
    return body[start : body.index("</a>", start)]


def test_it_counts_the_gates_i_may_decide(client, pm, reviewer):
    """Pending gates on others' unfinished missions count; my own missions, decided gates and finished
    missions do not."""
    _gate(pm)
    _gate(pm)
    _gate(reviewer)  # my own mission: another reviewer decides it
    _gate(pm, gate_status=ApprovalGate.Status.APPROVED)
    _gate(pm, status=Mission.Status.CANCELLED)
    client.force_login(reviewer)
    response = client.get("/missions/")
    assert response.context["gate_badge"] == 2
    assert _badge(client).startswith('id="gate-badge" class="count-badge" hx-swap-oob="true">2<span')
    assert "waiting for you" in _badge(client)


def test_it_hides_the_badge_when_nothing_waits(client, pm, reviewer):
    """With no gate waiting the badge is in the page (for live updates) but hidden and empty."""
    client.force_login(reviewer)
    assert _badge(client) == 'id="gate-badge" class="count-badge" hx-swap-oob="true" hidden></span>'


def test_it_shows_no_badge_to_people_who_cannot_decide(client, pm):
    """A product manager has no approval queue, so no badge and no count query."""
    _gate(pm)
    client.force_login(pm)
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/missions/").content.decode()
    assert 'id="gate-badge"' not in body
    assert not [q for q in queries if "reviews_approvalgate" in q["sql"]]


def test_it_counts_with_one_query_however_many_gates_wait(client, pm, other_pm, reviewer):
    """The badge costs one COUNT query per page, whether 1 or 40 gates wait."""
    client.force_login(reviewer)

    def gate_queries():
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/missions/").status_code == 200
        return [q["sql"] for q in queries if "reviews_approvalgate" in q["sql"]]

    _gate(pm)
    few = gate_queries()
    for n in range(40):
        _gate(other_pm if n % 2 else pm)
    many = gate_queries()
    assert len(few) == len(many) == 1
    assert many[0].startswith("SELECT COUNT(*)")
    assert _badge(client).startswith('id="gate-badge" class="count-badge" hx-swap-oob="true">41<span')
