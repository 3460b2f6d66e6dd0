"""Mail through Django's email backend, from a Celery task after commit: reviewers for a gate, the requester
for a finished mission, never the requester for their own gate or anyone who turned mail off."""

import time
from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction

from missions.models import Mission
from missions.selectors import REVIEWERS_GROUP
from missions.services import mission_transition
from notifications.models import NotificationPreference
from notifications.services import Kind, notify
from reviews.gates import gate_open
from reviews.models import ApprovalGate
from tests.conftest import _user, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def email_on(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.EMAIL_NOTIFICATIONS = True
    settings.SITE_URL = "https://orchestrator.example.com"
    return settings


def _mission(requester, title="Payments API", status=Mission.Status.AWAITING_DEPLOY_APPROVAL) -> Mission:
    return Mission.objects.create(
        requester=requester, title=title, request="r", budget_usd=Decimal("1.00"), status=status
    )


def _open_gate(mission) -> ApprovalGate:
    return gate_open(mission=mission, kind=ApprovalGate.Kind.DEPLOY, question="Ship it?")


def _sent_to() -> list[str]:
    """Everyone mailed, once the outbox has stopped growing (mails are sent by parallel worker threads)."""
    wait_for(lambda: mail.outbox, timeout=20, message="a mail")
    count = -1
    while count != len(mail.outbox):
        count = len(mail.outbox)
        time.sleep(0.5)
    return sorted(address for message in mail.outbox for address in message.to)


def test_it_mails_every_reviewer_who_may_decide_a_gate(email_on, celery_worker, pm, reviewer):
    """Each reviewer (and staff member) gets one mail with the mission's title and an absolute link."""
    _user("second_reviewer", REVIEWERS_GROUP)
    admin = _user("admin")
    admin.is_staff = True
    admin.save()
    mission = _mission(pm)
    _open_gate(mission)
    assert _sent_to() == ["admin@example.com", "reviewer@example.com", "second_reviewer@example.com"]
    message = mail.outbox[0]
    assert message.subject == "[Mission Orchestrator] Deploy approval needs your decision: Payments API"
    assert "Mission: Payments API" in message.body
    assert f"Open it: https://orchestrator.example.com{mission.get_absolute_url()}" in message.body
    assert "https://orchestrator.example.com/profile/" in message.body


def test_it_never_mails_the_requester_about_their_own_gate(email_on, celery_worker, pm, reviewer):
    """A reviewer who filed the mission is not asked to decide it; the other reviewer is."""
    other = _user("other_reviewer", REVIEWERS_GROUP)
    _open_gate(_mission(reviewer, title="My own"))
    assert _sent_to() == [other.email]


def test_it_mails_nobody_who_turned_mail_off(email_on, celery_worker, pm, reviewer):
    """A reviewer who turned email off on their profile still gets the toast, but no mail."""
    NotificationPreference.objects.create(user=reviewer, email=False)
    listening = _user("listening", REVIEWERS_GROUP)
    _open_gate(_mission(pm))
    assert _sent_to() == [listening.email]


def test_it_mails_the_requester_when_their_mission_finishes(email_on, celery_worker, pm, reviewer):
    """Completed, failed, rejected or cancelled: the PM who filed it hears, nobody else does."""
    words = {
        Mission.Status.COMPLETED: "completed",
        Mission.Status.FAILED: "failed",
        Mission.Status.REJECTED: "was rejected",
        Mission.Status.CANCELLED: "was cancelled",
    }
    for status, word in words.items():
        mail.outbox.clear()
        mission = _mission(pm, title=f"Work that {word}", status=Mission.Status.EXECUTING)
        assert mission_transition(mission=mission, to=status, reason="Because.")
        assert _sent_to() == ["pm@example.com"], status
        assert mail.outbox[0].subject == f"[Mission Orchestrator] Your mission Work that {word} {word}."
        assert "Because." not in mail.outbox[0].body  # failure reasons can hold anything: they stay on the page


def test_it_sends_nothing_before_commit_or_after_a_rollback(email_on, celery_worker, pm, reviewer):
    """A gate opened in a transaction that rolls back is never mailed."""
    mission = _mission(pm)
    with pytest.raises(RuntimeError), transaction.atomic():
        _open_gate(mission)
        raise RuntimeError("rolled back")
    _open_gate(_mission(pm, title="Committed"))
    assert _sent_to() == ["reviewer@example.com"]
    assert [m.subject for m in mail.outbox] == ["[Mission Orchestrator] Deploy approval needs your decision: Committed"]


def test_it_sends_general_notifications(email_on, celery_worker, pm):
    """notify() is for any code that must tell someone something: toast and mail, after commit."""
    mission = _mission(pm, status=Mission.Status.EXECUTING)
    notify(
        user=pm,
        kind=Kind.WARNING,
        message="80 % of the budget is spent.",
        url=mission.get_absolute_url(),
        mission=mission,
    )
    assert _sent_to() == ["pm@example.com"]
    assert mail.outbox[0].subject == "[Mission Orchestrator] 80 % of the budget is spent."


def test_it_refuses_links_off_the_site(pm):
    """A notification links to a path here; anything else is a programming error, not a toast."""
    for url in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        with pytest.raises(ValueError, match="links to a path on this site"):
            notify(user=pm, kind=Kind.WARNING, message="m", url=url)
    with pytest.raises(ValueError, match="short lowercase word"):
        notify(user=pm, kind="Bad Kind", message="m", url="/")


def test_it_sends_no_mail_when_no_mail_server_is_configured(settings, celery_worker, pm, reviewer):
    """Without EMAIL_URL (or EMAIL_HOST) nothing is mailed and no mail task is queued; nor for email=False."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert settings.EMAIL_NOTIFICATIONS is False
    mission = _mission(pm, status=Mission.Status.EXECUTING)
    _open_gate(mission)
    mission_transition(mission=mission, to=Mission.Status.COMPLETED)
    notify(user=pm, kind=Kind.WARNING, message="m", url="/")
    settings.EMAIL_NOTIFICATIONS = True
    notify(user=pm, kind=Kind.WARNING, message="toast only", url="/", email=False)  # the caller wants no mail
    # A sentinel mail task queued last: once it has run, any earlier one would have too.
    notify(user=pm, kind=Kind.WARNING, message="sentinel", url="/")
    assert _sent_to() == ["pm@example.com"]
    assert [m.subject for m in mail.outbox] == ["[Mission Orchestrator] sentinel"]


def test_it_skips_users_without_an_address(email_on, celery_worker, pm, reviewer):
    """A reviewer with no email address gets toasts only."""
    reviewer.email = ""
    reviewer.save()
    other = _user("other_reviewer", REVIEWERS_GROUP)
    _open_gate(_mission(pm))
    assert _sent_to() == [other.email]


def test_it_mails_the_requester_once_when_the_budget_is_80_percent_spent(email_on, celery_worker, company, pm):
    """The settle that takes spend past 80 % tells the requester (toast and mail), once for that budget."""
    from agents.services import llm_call_reserve, llm_call_settle

    mission = _mission(pm, title="Nearly broke", status=Mission.Status.EXECUTING)
    Mission.objects.filter(pk=mission.pk).update(spent_usd=Decimal("0.78"))
    company.price_input_per_mtok = company.price_output_per_mtok = Decimal("1000")  # $0.01 for 10 tokens
    company.save()
    for _ in range(3):
        call = llm_call_reserve(
            mission_id=mission.pk,
            profile=company,
            model_name="sim",
            purpose="t",
            prompt_token_bound=5,
            max_output_tokens=5,
        )
        llm_call_settle(call=call, prompt_tokens=5, completion_tokens=5, latency_ms=1)
    assert _sent_to() == ["pm@example.com"]
    message = mail.outbox[0]
    assert "Nearly broke" in message.subject + message.body
    assert "80 % of the $1.00 budget is spent" in message.body
