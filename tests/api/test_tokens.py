"""API tokens: shown once, stored as a hash, revocable from the profile page, refused with a 401 JSON when bad."""

import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from api.models import ApiToken
from api.services import TOKENS_PER_USER_MAX, ApiTokenError, api_token_create, api_token_revoke
from tests.api.conftest import bearer, secret_for

URL = "/api/v1/missions"


def test_it_stores_only_the_hash_of_the_secret(pm):
    """No column of the token's row holds the secret; its SHA-256 does, and the prefix shown is not enough to use."""
    token, secret = api_token_create(user=pm, name="ci")
    assert secret.startswith("mo_") and len(secret) == 46
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.prefix == secret[:11]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM api_apitoken")
        rows = cursor.fetchall()
    assert rows and not any(secret in str(value) for row in rows for value in row)


def test_it_shows_the_secret_once_on_the_profile_page(client, pm):
    """Creating a token renders the secret on that response only; the profile afterwards lists it by prefix."""
    client.force_login(pm)
    response = client.post("/profile/tokens/", {"name": "nightly"})
    assert response.status_code == 201
    token = ApiToken.objects.get(user=pm)
    body = response.content.decode()
    assert 'id="new-token-secret"' in body and "no-store" in response["Cache-Control"]
    secret = body.split('id="new-token-secret">', 1)[1].split("<", 1)[0]
    assert hashlib.sha256(secret.encode()).hexdigest() == token.secret_hash
    later = client.get("/profile/").content.decode()
    assert secret not in later and f"{token.prefix}…" in later and "nightly" in later
    assert client.get(URL, headers=bearer(secret)).status_code == 200


def test_it_caps_the_live_tokens_a_person_holds(pm):
    """The rate limit is per token: ten live ones at most, and a revoked one frees its place."""
    tokens = [api_token_create(user=pm, name=f"t{n}")[0] for n in range(TOKENS_PER_USER_MAX)]
    with pytest.raises(ApiTokenError, match="10 live tokens"):
        api_token_create(user=pm, name="one more")
    api_token_revoke(user=pm, token_id=tokens[0].pk)
    assert api_token_create(user=pm, name="one more")[0].pk


def test_it_refuses_a_nameless_token(client, pm):
    client.force_login(pm)
    response = client.post("/profile/tokens/", {"name": "  "}, follow=True)
    assert "Give the token a name" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_it_revokes_a_token_from_the_profile_page(client, pm):
    """Revoke is a POST with CSRF; the token stops working at once and stays listed as revoked."""
    secret = secret_for(pm)
    token = ApiToken.objects.get(user=pm)
    csrf_client = type(client)(enforce_csrf_checks=True)
    csrf_client.force_login(pm)
    assert csrf_client.post(f"/profile/tokens/{token.pk}/revoke/").status_code == 403  # no CSRF token
    client.force_login(pm)
    assert client.get(f"/profile/tokens/{token.pk}/revoke/").status_code == 405
    response = client.post(f"/profile/tokens/{token.pk}/revoke/", follow=True)
    assert "revoked: it no longer works" in response.content.decode()
    token.refresh_from_db()
    assert token.is_revoked
    answer = client.get(URL, headers=bearer(secret))
    assert (answer.status_code, answer.json()) == (401, {"detail": "This API token was revoked."})


def test_it_does_not_let_anyone_revoke_another_users_token(client, pm, other_pm):
    secret_for(pm)
    token = ApiToken.objects.get(user=pm)
    client.force_login(other_pm)
    response = client.post(f"/profile/tokens/{token.pk}/revoke/", follow=True)
    assert "No such token." in response.content.decode()
    token.refresh_from_db()
    assert not token.is_revoked
    with pytest.raises(ApiTokenError, match="No such token"):
        api_token_revoke(user=other_pm, token_id=token.pk)


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "Authentication required: send Authorization: Bearer <token>."),
        ("Basic cG06cGFzcw==", "The Authorization header must be Bearer <token>."),
        ("Bearer", "The Authorization header must be Bearer <token>."),
        ("Bearer not-a-token", "The bearer token is malformed: expected mo_ and 43 characters."),
        ("Bearer mo_" + "x" * 5000, "The bearer token is malformed: expected mo_ and 43 characters."),
        ("Bearer mo_" + "A" * 43, "Unknown API token."),
    ],
)
def test_it_answers_401_json_for_a_missing_or_bad_token(client, pm, header, detail):
    """Never the login page's redirect: a JSON 401 with a WWW-Authenticate challenge."""
    headers = {"Authorization": header} if header else {}
    response = client.get(URL, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_it_refuses_the_token_of_an_inactive_user(client, pm):
    secret = secret_for(pm)
    pm.is_active = False
    pm.save()
    response = client.get(URL, headers=bearer(secret))
    assert response.status_code == 401
    assert response.json()["detail"] == "The account this token belongs to is not active."


def test_it_never_accepts_the_session_cookie(client, pm, company):
    """A logged-in browser without a token gets a 401, so another site cannot make it call the API (no CSRF hole)."""
    client.force_login(pm)
    assert client.get(URL).status_code == 401
    response = client.post(URL, {"title": "t", "request": "r"}, content_type="application/json")
    assert response.status_code == 401


def test_it_acts_as_the_tokens_user_whoever_is_logged_in(client, pm, other_pm, company):
    """A session of one user and a token of another: the token decides."""
    from missions.models import Mission

    Mission.objects.create(requester=pm, title="Mine", request="r", budget_usd=1)
    client.force_login(pm)
    response = client.get(URL, headers=bearer(secret_for(other_pm)))
    assert response.json()["count"] == 0


def test_it_records_when_a_token_was_last_used(client, pm):
    secret = secret_for(pm)
    assert ApiToken.objects.get(user=pm).last_used_at is None
    client.get(URL, headers=bearer(secret))
    assert ApiToken.objects.get(user=pm).last_used_at is not None


def test_it_creates_a_token_from_the_command_line(pm):
    """`api_token_create --user pm` prints the secret and nothing else; it works as a bearer token."""
    out = StringIO()
    call_command("api_token_create", "--user", "pm", "--name", "deploy script", stdout=out)
    secret = out.getvalue().strip()
    token = ApiToken.objects.get(user=pm)
    assert token.name == "deploy script"
    assert hashlib.sha256(secret.encode()).hexdigest() == token.secret_hash
    with pytest.raises(CommandError, match="There is no user 'nobody'"):
        call_command("api_token_create", "--user", "nobody", stdout=StringIO())


def test_it_needs_no_csrf_token_with_a_bearer_token(pm, company):
    """Scripts post JSON with the bearer token alone: CSRF protects cookies, and the API takes none."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    body = {"title": "Scripted", "request": "Filed by a script."}
    response = client.post(URL, body, content_type="application/json", headers=bearer(secret_for(pm)))
    assert response.status_code == 201, response.content


def test_it_lets_an_admin_revoke_someones_token_with_an_audit_entry(admin_client, pm):
    """A leaked token or a leaver: the admin's "Revoke" action ends it and the site audit says who did."""
    from audit.models import AuditEntry

    secret = secret_for(pm)
    token = ApiToken.objects.get(user=pm)
    response = admin_client.post(
        "/admin/api/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert "1 token(s) revoked." in response.content.decode()
    token.refresh_from_db()
    assert token.is_revoked
    entry = AuditEntry.objects.get(object_id=str(token.pk))
    assert entry.actor.username == "admin" and "revoked_at" in entry.changes
    assert secret not in str(entry.changes) and token.secret_hash not in entry.object_repr


def test_it_lists_my_tokens_on_the_profile_page_with_their_state(client, pm, other_pm):
    """Name, prefix, created, last used and a revoke button; a revoked token says so; nobody else's tokens."""
    live, _ = api_token_create(user=pm, name="live one")
    dead, _ = api_token_create(user=pm, name="dead one")
    api_token_revoke(user=pm, token_id=dead.pk)
    api_token_create(user=other_pm, name="not mine")
    client.force_login(pm)
    body = client.get("/profile/").content.decode()
    assert "live one" in body and "dead one" in body and "not mine" not in body
    assert f"/profile/tokens/{live.pk}/revoke/" in body and f"/profile/tokens/{dead.pk}/revoke/" not in body
    assert "revoked" in body.split(f'id="api-token-{dead.pk}"', 1)[1].split("</tr>", 1)[0]
    assert live.secret_hash not in body
