"""What a stranger or a user in the wrong role sees: styled error pages, no debug pages, no links they cannot use."""

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

from missions.models import Mission
from reviews.models import ApprovalGate
from tests.live import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own local server
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.integration
def test_it_runs_make_run_without_debug_pages_and_still_serves_static_files(tmp_path, sim_server):
    """`make run` (scripts/run.py) with no DEBUG in the environment: an unknown URL gets the styled 404, not
    Django's technical page listing the URL patterns, and the CSS is still served."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DATABASE_URL")}  # SQLite in tmp_path
    env.update(
        DATA_DIR=str(tmp_path),
        PORT=str(port),
        REDIS_URL=settings.REDIS_URL,
        LLM_BASE_URL=sim_server.base_url,
        CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        CHANNELS_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        DEMO_PASSWORD="demo-password-for-the-test",
    )
    run = subprocess.Popen(
        [sys.executable, "scripts/run.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for_port(port, run, timeout=90)
        status, body = _fetch(f"http://127.0.0.1:{port}/no-such-page/")
        assert status == 404
        assert "Page not found" in body and "/static/css/app.css" in body
        assert "URLconf" not in body and "DEBUG = True" not in body
        status, css = _fetch(f"http://127.0.0.1:{port}/static/css/app.css")
        assert status == 200 and ".status-completed" in css
    finally:
        run.send_signal(signal.SIGINT)
        try:
            run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


def test_it_shows_a_styled_404_for_a_missing_mission(client, pm):
    """An unknown mission is the product's own 404 page, with the navigation and a way back."""
    client.force_login(pm)
    response = client.get(reverse("missions:detail", kwargs={"code": uuid.uuid4()}))
    assert response.status_code == 404
    body = response.content.decode()
    assert "Page not found" in body
    assert 'class="topbar"' in body and "Back to the missions" in body


def test_it_shows_a_styled_403_with_the_reason(client, pm):
    """A PM who opens the approval queue gets the styled 403 saying who may."""
    client.force_login(pm)
    response = client.get(reverse("reviews:queue"))
    assert response.status_code == 403
    body = response.content.decode()
    assert "Not allowed" in body and "Only reviewers can see the approval queue." in body


@pytest.mark.parametrize("path", ["/gates/1/decide/", "/logout/", f"/missions/{uuid.UUID(int=7)}/cancel/"])
def test_it_shows_a_styled_405_for_a_get_on_a_post_only_address(client, reviewer, path):
    """Opening a button's address (require_POST views and Django's LogoutView) is a styled 405 page that keeps
    the Allow header."""
    client.force_login(reviewer)
    response = client.get(path)
    assert response.status_code == 405
    assert "POST" in response["Allow"]
    body = response.content.decode()
    assert "Not available this way" in body and "<code>GET</code>" in body


def test_it_renders_the_500_page_without_a_request_context(rf: RequestFactory):
    """The 500 page renders with no user, session or database (Django gives it an empty context)."""
    response = server_error(rf.get("/"))
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body and "/static/css/app.css" in body


def test_it_shows_a_styled_page_when_the_csrf_check_fails(pm):
    """A form posted without its CSRF token (an old tab) gets a page that says nothing was saved and what to do."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(pm)
    response = client.post(reverse("missions:new"), {"title": "T", "request": "R", "budget_usd": "1"})
    assert response.status_code == 403
    body = response.content.decode()
    assert "This form has expired" in body and "Nothing was saved" in body
    assert Mission.objects.count() == 0


@pytest.mark.parametrize(
    ("persona", "new_mission", "approvals"),
    [("pm", True, False), ("reviewer", False, True), ("outsider", False, False)],
)
def test_it_shows_only_the_links_a_role_can_use(client, request, persona, new_mission, approvals):
    """ "New mission" is there for product managers only, "Approvals" for reviewers only."""
    user = request.getfixturevalue(persona)
    client.force_login(user)
    body = client.get(reverse("missions:list")).content.decode()
    assert (f'href="{reverse("missions:new")}"' in body) is new_mission
    assert (f'href="{reverse("reviews:queue")}"' in body) is approvals


def test_it_hides_cancel_and_decisions_from_those_who_cannot_use_them(client, pm, reviewer, other_pm):
    """The requester sees Cancel but no decision buttons on their own gate; a reviewer sees the buttons and no
    Cancel."""
    mission = Mission.objects.create(
        requester=pm, title="T", request="R", budget_usd=Decimal("1"), status=Mission.Status.AWAITING_DEPLOY_APPROVAL
    )
    gate = ApprovalGate.objects.create(mission=mission, kind=ApprovalGate.Kind.DEPLOY, question="Ship it?")
    cancel = reverse("missions:cancel", kwargs={"code": mission.code})
    decide = reverse("reviews:decide", kwargs={"pk": gate.pk})
    client.force_login(pm)
    body = client.get(mission.get_absolute_url()).content.decode()
    assert cancel in body and decide not in body
    client.force_login(reviewer)
    body = client.get(mission.get_absolute_url()).content.decode()
    assert cancel not in body and decide in body
