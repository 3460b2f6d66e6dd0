"""The approval queue: pending gates for reviewers, never their own missions; recent decisions below."""

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from missions.models import Mission
from reviews.models import ApprovalGate

QUEUE_URL = reverse("reviews:queue")


def _mission(requester, title) -> Mission:
    return Mission.objects.create(
        requester=requester,
        title=title,
        request="Anything.",
        budget_usd=Decimal("5.00"),
        status=Mission.Status.AWAITING_DEPLOY_APPROVAL,
    )


def _gate(mission, kind=ApprovalGate.Kind.DEPLOY, **fields) -> ApprovalGate:
    fields.setdefault("question", f"Deploy {mission.title}?")
    return ApprovalGate.objects.create(mission=mission, kind=kind, **fields)


def test_it_shows_pending_gates_on_others_missions(client, pm, reviewer):
    """A reviewer sees the pending gates of missions filed by others, with the question and the requester."""
    gate = _gate(_mission(pm, "Payments API"), question="Ship the payments API to production?")
    client.force_login(reviewer)
    response = client.get(QUEUE_URL)
    assert response.status_code == 200
    assert list(response.context["gates"]) == [gate]
    body = response.content.decode()
    assert "Ship the payments API to production?" in body
    assert f'<a href="{gate.mission.get_absolute_url()}">Payments API</a>' in body
    assert "<small>by pm · asked" in body
    assert "Deploy approval" in body


def test_it_hides_gates_on_the_reviewers_own_missions(client, pm, reviewer):
    """Nobody approves their own mission: gates on missions the reviewer filed are not in their queue."""
    _gate(_mission(reviewer, "My own mission"), question="Approve my own work?")
    others = _gate(_mission(pm, "Someone else's"), question="Approve theirs?")
    client.force_login(reviewer)
    response = client.get(QUEUE_URL)
    assert list(response.context["gates"]) == [others]
    assert b"Approve my own work?" not in response.content
    assert b"Approve theirs?" in response.content


def test_it_says_when_nothing_is_waiting(client, reviewer):
    """An empty queue says so and explains where gates on one's own missions go."""
    _gate(_mission(reviewer, "Mine"))
    client.force_login(reviewer)
    response = client.get(QUEUE_URL)
    assert b"Nothing is waiting for you." in response.content
    assert b"No decisions yet." in response.content


def test_it_lists_pending_gates_oldest_first(client, pm, other_pm, reviewer):
    """The gate waiting longest comes first."""
    first = _gate(_mission(pm, "First"))
    second = _gate(_mission(other_pm, "Second"), kind=ApprovalGate.Kind.PLAN)
    ApprovalGate.objects.filter(pk=first.pk).update(requested_at=timezone.now() - timezone.timedelta(hours=1))
    client.force_login(reviewer)
    assert list(client.get(QUEUE_URL).context["gates"]) == [first, second]


def test_it_lists_decided_gates_under_recent_decisions(client, pm, reviewer, other_pm):
    """Decided gates leave the queue and show under recent decisions with who decided and their comment."""
    mission = _mission(pm, "Search feature")
    _gate(
        mission,
        status=ApprovalGate.Status.APPROVED,
        decided_by=other_pm,
        decided_at=timezone.now(),
        comment="Looks good",
    )
    _gate(
        _mission(pm, "Rejected feature"),
        kind=ApprovalGate.Kind.PLAN,
        status=ApprovalGate.Status.REJECTED,
        decided_by=reviewer,
        decided_at=timezone.now() - timezone.timedelta(minutes=5),
    )
    client.force_login(reviewer)
    response = client.get(QUEUE_URL)
    assert list(response.context["gates"]) == []
    decided = list(response.context["decided"])
    assert [g.mission.title for g in decided] == ["Search feature", "Rejected feature"]  # newest first
    body = response.content.decode()
    link = f'<a href="{mission.get_absolute_url()}">Search feature</a>'
    assert f"Deploy approval on {link}: Approved by other_pm — “Looks good”" in body
    assert "Plan approval on" in body
    assert ": Rejected by reviewer" in body


def test_it_shows_decisions_on_the_reviewers_own_missions(client, reviewer, pm):
    """Recent decisions are an audit list: they include the reviewer's own missions."""
    _gate(
        _mission(reviewer, "Reviewer's own"),
        status=ApprovalGate.Status.APPROVED,
        decided_by=pm,
        decided_at=timezone.now(),
    )
    client.force_login(reviewer)
    assert b"Reviewer&#x27;s own</a>: Approved by pm" in client.get(QUEUE_URL).content


def test_it_lets_staff_see_the_queue(client, django_user_model, pm):
    """Staff count as reviewers."""
    staff = django_user_model.objects.create_user(username="staffer", password="x", is_staff=True)
    _gate(_mission(pm, "For staff"))
    client.force_login(staff)
    response = client.get(QUEUE_URL)
    assert response.status_code == 200
    assert b"For staff" in response.content


@pytest.mark.parametrize("persona", ["pm", "outsider"])
def test_it_forbids_non_reviewers(client, request, persona):
    """A product manager or a user without a group gets 403."""
    user = request.getfixturevalue(persona)
    client.force_login(user)
    response = client.get(QUEUE_URL)
    assert response.status_code == 403


def test_it_escapes_gate_text(client, pm, reviewer):
    """Questions and comments are escaped."""
    _gate(_mission(pm, "<b>bold</b>"), question="<script>alert(1)</script>")
    client.force_login(reviewer)
    body = client.get(QUEUE_URL).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;b&gt;bold&lt;/b&gt;" in body


def test_it_allows_one_pending_gate_per_kind(pm):
    """The database refuses a second pending gate of the same kind on a mission."""
    from django.db import IntegrityError, transaction

    mission = _mission(pm, "Once")
    _gate(mission)
    with pytest.raises(IntegrityError), transaction.atomic():
        _gate(mission)
    _gate(mission, kind=ApprovalGate.Kind.PLAN)  # another kind is fine
    _gate(mission, status=ApprovalGate.Status.APPROVED)  # so is a decided one
    assert mission.gates.count() == 3


def _many_gates(requester, count: int) -> list[ApprovalGate]:
    missions = Mission.objects.bulk_create(
        Mission(
            requester=requester,
            title=f"Mission {n}",
            request="Anything.",
            budget_usd=Decimal("5.00"),
            status=Mission.Status.AWAITING_DEPLOY_APPROVAL,
        )
        for n in range(count)
    )
    return ApprovalGate.objects.bulk_create(
        ApprovalGate(mission=mission, kind=ApprovalGate.Kind.DEPLOY, question=f"Deploy {mission.title}?")
        for mission in missions
    )


def test_it_runs_the_same_few_queries_for_a_long_queue(client, pm, reviewer, django_assert_max_num_queries):
    """Rendering a page of 25 gates takes a fixed handful of queries: no permission query per row."""
    _many_gates(pm, 3)
    client.force_login(reviewer)
    client.get(QUEUE_URL)  # warm the session
    with django_assert_max_num_queries(9) as few:
        client.get(QUEUE_URL)
    _many_gates(pm, 80)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(QUEUE_URL)
    assert len(response.context["gates"]) == 25
    assert response.content.count(b'class="decision"') == 25


def test_it_pages_the_queue_oldest_first(client, pm, reviewer):
    """Page 2 continues where page 1 ended; a page number out of range shows the last page; links keep the filter."""
    gates = _many_gates(pm, 30)
    client.force_login(reviewer)
    first = client.get(QUEUE_URL)
    assert [g.pk for g in first.context["gates"]] == [g.pk for g in gates[:25]]
    assert b"Page 1 of 2" in first.content
    assert b'href="?page=2" rel="next"' in first.content and b"Page 1 of 2 \xc2\xb7 30 gates" in first.content
    second = client.get(QUEUE_URL, {"page": "2"})
    assert [g.pk for g in second.context["gates"]] == [g.pk for g in gates[25:]]
    assert [g.pk for g in client.get(QUEUE_URL, {"page": "99"}).context["gates"]] == [g.pk for g in gates[25:]]
    for bad in ("x", "-1", "1e9"):
        assert client.get(QUEUE_URL, {"page": bad}).status_code == 200


def test_it_filters_the_queue_by_kind(client, pm, reviewer):
    """?kind=budget shows only budget gates; an unknown kind shows everything rather than an error."""
    deploy = _gate(_mission(pm, "A"))
    budget = _gate(_mission(pm, "B"), kind=ApprovalGate.Kind.BUDGET, question="More money?")
    client.force_login(reviewer)
    assert list(client.get(QUEUE_URL, {"kind": "budget"}).context["gates"]) == [budget]
    assert list(client.get(QUEUE_URL, {"kind": "<script>"}).context["gates"]) == [deploy, budget]
