"""The profile page: each person turns notification mail on or off; login and CSRF required."""

import pytest
from django.test import Client

from notifications.models import NotificationPreference

pytestmark = pytest.mark.django_db

URL = "/profile/"


def test_it_needs_a_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response.url.startswith("/login/")
    assert client.post(URL, {"email": "on"}).status_code == 302
    assert not NotificationPreference.objects.exists()


def test_it_shows_mail_on_by_default(client, reviewer, settings):
    """With mail configured and no choice made, the box is ticked and says where mail goes."""
    settings.EMAIL_NOTIFICATIONS = True
    client.force_login(reviewer)
    body = client.get(URL).content.decode()
    assert '<input type="checkbox" name="email" id="id_email" checked>' in body
    assert "Mail goes to reviewer@example.com." in body
    assert "Profile" in body  # linked from the navigation


def test_it_says_when_the_server_sends_no_mail(client, reviewer):
    client.force_login(reviewer)
    body = client.get(URL).content.decode()
    assert 'id="email-off"' in body and "This server sends no mail" in body


def test_it_turns_mail_off_and_on_again(client, pm):
    """Unticking and saving turns mail off; ticking turns it back on; each says so."""
    client.force_login(pm)
    response = client.post(URL, {}, follow=True)
    assert NotificationPreference.objects.get(user=pm).email is False
    assert "Email notifications are off." in response.content.decode()
    assert '<input type="checkbox" name="email" id="id_email">' in response.content.decode()
    client.post(URL, {"email": "on"})
    assert NotificationPreference.objects.get(user=pm).email is True
    assert NotificationPreference.objects.count() == 1


def test_it_refuses_a_post_without_the_csrf_token(pm):
    """Another site cannot turn someone's mail off with a forged form."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(pm)
    assert client.post(URL, {}).status_code == 403
    assert not NotificationPreference.objects.exists()
    page = client.get(URL)
    token = page.context["csrf_token"]
    assert client.post(URL, {"csrfmiddlewaretoken": str(token)}).status_code == 302
    assert NotificationPreference.objects.get(user=pm).email is False


def test_it_changes_only_my_own_preference(client, pm, reviewer):
    """There is no user in the form: a post changes the logged-in user's setting, nobody else's."""
    client.force_login(pm)
    client.post(URL, {"user": reviewer.pk, "email": ""})
    assert list(NotificationPreference.objects.values_list("user__username", "email")) == [("pm", False)]
