"""The authorization matrix: every URL, API endpoint and socket × every persona, generated from the URL configuration.

The routes are discovered by walking Django's URL resolver (the ninja API and the admin included) and the
websocket router; ``EXPECTED`` and ``SOCKETS`` must have a row for each, so a new URL or socket without a row
fails ``test_every_route_has_a_row`` with its name. The admin is one row group: staff only, checked on a few
representative pages.

Personas: ``anonymous``; ``pm``, who filed the mission (it waits at a deploy gate); ``other_pm``, another PM
(they have a mission of their own, and the pm's is a 404 to them); ``reviewer``; ``admin`` (a superuser); and
``revoked``: no session, but a revoked API token of the pm's in ``Authorization``. Pages use the session (the
pm's live token never opens a page); API operations use only the persona's bearer token.

Rules: a status code (``"200"``, ``"404"``...); ``"login"``, a redirect to ``/login/``; ``"admin-login"``, a
redirect to the admin's login; ``"any-login"``, either; ``"health"``, 200 or 503 (the health check is public and
tells the truth about Redis and the worker); ``"302+"`` / ``"302-"``, a redirect after which the route's effect
(``EFFECTS``) did or did not happen (pages answer a refused action with a message and a redirect, so the status
alone proves nothing).
"""

import re
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from api.models import ApiToken
from api.urls import DOCS
from missions.models import Mission
from projects.models import Project
from reviews.gates import gate_open
from reviews.models import ApprovalGate, GateComment
from tests.api.conftest import bearer

PERSONAS = ("anonymous", "pm", "other_pm", "reviewer", "admin", "revoked")
LOGGED_IN = ("pm", "other_pm", "reviewer", "admin")


def row(*rules: str) -> dict[str, str]:
    assert len(rules) == len(PERSONAS), rules
    return dict(zip(PERSONAS, rules, strict=True))


def everyone(rule: str) -> dict[str, str]:
    return row(*[rule] * len(PERSONAS))


# Pages: the session decides; a bearer token (even a live one) never stands in for a login.
ANY_USER = row("login", "200", "200", "200", "200", "login")
MISSION_PAGE = row("login", "200", "404", "200", "200", "login")  # the pm's mission: another PM gets a 404
STAFF_PAGE = row("login", "403", "403", "403", "200", "login")
POST_ONLY = row("login", "405", "405", "405", "405", "login")  # a GET on a form's target
STEER = row("login", "302", "404", "403", "302", "login")  # the requester or an admin; a reviewer only reads
# The API: the bearer token decides; a revoked one is a 401 like none at all.
API_ANY = row("401", "200", "200", "200", "200", "401")
API_MISSION = row("401", "200", "404", "200", "200", "401")
# The mission waits at its deploy gate: not pausable, resumable or retryable (409), once past the permission check.
API_STEER_NOW_REFUSED = row("401", "409", "404", "403", "409", "401")

EXPECTED: dict[str, dict[str, dict[str, str]]] = {
    "": {"GET": ANY_USER},
    "missions/": {"GET": ANY_USER},
    "missions/new/": {
        "GET": row("login", "200", "200", "403", "200", "login"),  # only PMs (and staff) file missions
        "POST": row("login", "400", "400", "403", "400", "login"),  # an empty form: refused with its errors
    },
    "missions/<uuid:code>/": {"GET": MISSION_PAGE},
    "missions/<uuid:code>/costs/": {"GET": MISSION_PAGE},
    "missions/<uuid:code>/cancel/": {"GET": POST_ONLY, "POST": row("login", "302+", "404", "403", "302+", "login")},
    "missions/<uuid:code>/pause/": {"GET": POST_ONLY, "POST": STEER},
    "missions/<uuid:code>/resume/": {"GET": POST_ONLY, "POST": STEER},
    "missions/<uuid:code>/retry/": {"GET": POST_ONLY, "POST": STEER},
    # A reviewer may see the mission but files none; another PM cannot see it to copy it.
    "missions/<uuid:code>/clone/": {"GET": POST_ONLY, "POST": row("login", "302+", "404", "403", "302+", "login")},
    "missions/<uuid:code>/artifact/": {"GET": MISSION_PAGE},
    "missions/<uuid:code>/change.patch": {"GET": MISSION_PAGE},
    "missions/<uuid:code>/change.zip": {"GET": MISSION_PAGE},
    "missions/<uuid:code>/audit/": {"GET": MISSION_PAGE},
    "audit/": {"GET": STAFF_PAGE},
    "gates/": {"GET": row("login", "403", "403", "200", "200", "login")},
    # Separation of duties: the requester never decides (or comments on) a gate of their own mission.
    "gates/<int:pk>/decide/": {"GET": POST_ONLY, "POST": row("login", "302-", "404", "302+", "302+", "login")},
    "gates/<int:pk>/comments/": {"GET": POST_ONLY, "POST": row("login", "302-", "404", "302+", "302+", "login")},
    "projects/": {"GET": STAFF_PAGE},
    "projects/add/": {"GET": STAFF_PAGE, "POST": STAFF_PAGE},  # an empty form re-rendered with its errors
    "projects/<slug:slug>/": {"GET": STAFF_PAGE},
    "projects/<slug:slug>/edit/": {"GET": STAFF_PAGE, "POST": STAFF_PAGE},
    "projects/<slug:slug>/refresh/": {
        "GET": row("login", "403", "403", "403", "405", "login"),
        "POST": row("login", "403", "403", "403", "302", "login"),
    },
    "profile/": {"GET": ANY_USER, "POST": row("login", "302", "302", "302", "302", "login")},
    "reports/": {"GET": ANY_USER},
    "profile/tokens/": {"GET": POST_ONLY, "POST": row("login", "201", "201", "201", "201", "login")},
    # The pm's live token: only its owner revokes it here (admins do it in the admin, audited).
    "profile/tokens/<int:pk>/revoke/": {
        "GET": POST_ONLY,
        "POST": row("login", "302+", "302-", "302-", "302-", "login"),
    },
    # The schema and the docs stay behind the site login.
    "api/v1/openapi.json": {"GET": ANY_USER},
    "api/v1/docs": {"GET": ANY_USER},
    "api/v1/missions": {"GET": API_ANY, "POST": row("401", "201", "201", "403", "201", "401")},
    "api/v1/missions/<code>": {"GET": API_MISSION, "POST": everyone("405")},
    "api/v1/missions/<code>/costs": {"GET": API_MISSION},
    "api/v1/missions/<code>/cancel": {"GET": everyone("405"), "POST": row("401", "200", "404", "403", "200", "401")},
    "api/v1/missions/<code>/pause": {"POST": API_STEER_NOW_REFUSED},
    "api/v1/missions/<code>/resume": {"POST": API_STEER_NOW_REFUSED},
    "api/v1/missions/<code>/retry": {"POST": API_STEER_NOW_REFUSED},
    "api/v1/missions/<code>/clone": {"POST": row("401", "201", "404", "403", "201", "401")},
    "api/v1/gates": {"GET": row("401", "403", "403", "200", "200", "401")},
    "api/v1/gates/<gate_id>/decision": {"POST": row("401", "403", "404", "200", "200", "401")},
    "api/v1/reports/kpi": {"GET": API_ANY},
    "api/v1/": {"GET": everyone("404")},  # a JSON 404 naming the path, login or not
    "api/v1/^.*$": {"GET": everyone("404"), "POST": everyone("404")},
    "login/": {"GET": row("200", "302", "302", "302", "302", "200")},
    "logout/": {"GET": POST_ONLY, "POST": everyone("login")},  # logged out, then on to the login page
    "healthz": {"GET": everyone("health")},
    "metrics": {"GET": everyone("401")},  # its own token (set here), which no API token or session replaces
}

# The admin, as one row group: staff only; everyone else is sent to a login. Its index, a change page, and the
# list page of every model registered (generated, so a new admin page is covered as it appears).
ADMIN_SAMPLES = ("admin/", "admin/missions/mission/{mission_pk}/change/", "admin/auth/user/{admin_pk}/password/")
ADMIN_RULE = row("any-login", "admin-login", "admin-login", "admin-login", "200", "any-login")

# URLs whose pattern is not a plain path with converters.
SAMPLE_PATHS = {"api/v1/^.*$": "/api/v1/no-such-endpoint"}

# Websocket routes (orchestrator_site.asgi.sockets): "accept", or the close code of a refusal.
SOCKETS = {
    "ws/missions/<uuid:code>/": row("4401", "accept", "4404", "accept", "accept", "4401"),
    "ws/notifications/": row("4401", "accept", "accept", "accept", "accept", "4401"),
    "": everyone("4404"),  # any other path: refused, not a router error
}
SOCKET_SAMPLE_PATHS = {"": "/ws/no-such-socket/"}

CHANGE = {"files": [{"path": "app.py", "patch": "@@ -0,0 +1,2 @@\n+def total():\n+    return 1\n"}]}


def _route(pattern) -> str:
    return str(pattern.pattern)


def discovered_routes(resolver=None, prefix: str = "") -> dict[str, set[str]]:
    """Every URL pattern of the site as its full route string, with the names it carries."""
    routes: dict[str, set[str]] = {}
    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + _route(entry)
        if isinstance(entry, URLResolver):
            for name, names in discovered_routes(entry, route).items():
                routes.setdefault(name, set()).update(names)
        else:
            assert isinstance(entry, URLPattern), entry
            routes.setdefault(route, set()).add(entry.name or "")
    return routes


def discovered_sockets() -> list[str]:
    """The socket routes the ASGI app serves, checked against every app's ``routing.websocket_urlpatterns``."""
    from importlib import import_module
    from importlib.util import find_spec

    from django.apps import apps

    from orchestrator_site.asgi import sockets

    served = [_route(entry) for entry in sockets]
    for app in apps.get_app_configs():
        if find_spec(f"{app.name}.routing") is None:
            continue
        for entry in getattr(import_module(f"{app.name}.routing"), "websocket_urlpatterns", []):
            assert _route(entry) in served, f"{app.name}.routing's {_route(entry)!r} is not in orchestrator_site.asgi"
    return served


def _non_admin(routes) -> set[str]:
    return {route for route in routes if not route.startswith("admin/")}


def test_every_route_has_a_row():
    """A URL without a row here (or a row for a URL that is gone) fails, naming it."""
    routes = _non_admin(discovered_routes())
    missing, stale = sorted(routes - set(EXPECTED)), sorted(set(EXPECTED) - routes)
    assert not missing, f"URLs with no row in EXPECTED (add one per persona): {missing}"
    assert not stale, f"Rows in EXPECTED for URLs that no longer exist: {stale}"
    admin_routes = [route for route in discovered_routes() if route.startswith("admin/")]
    assert len(admin_routes) > 20, admin_routes  # the admin is mounted, and covered by ADMIN_SAMPLES below


def test_every_socket_has_a_row():
    sockets = discovered_sockets()
    assert len(sockets) == len(set(sockets))
    missing, stale = sorted(set(sockets) - set(SOCKETS)), sorted(set(SOCKETS) - set(sockets))
    assert not missing, f"Socket routes with no row in SOCKETS: {missing}"
    assert not stale, f"Rows in SOCKETS for socket routes that no longer exist: {stale}"


@pytest.fixture
def world(db, pm, other_pm, reviewer, admin, tokens, tmp_path, monkeypatch, settings):
    """The pm's mission at a pending deploy gate (with a change to comment on), another PM's, a project."""
    mission = Mission.objects.create(
        requester=pm,
        title="Quokka payroll export",
        request="Do the thing.",
        budget_usd=Decimal("2.00"),
        status=Mission.Status.AWAITING_DEPLOY_APPROVAL,
        deployed_sha="0" * 40,
        artifact_path=str(_artifact(tmp_path)),
    )
    gate = gate_open(mission=mission, kind=ApprovalGate.Kind.DEPLOY, question="Go?", data={"change": CHANGE})
    Mission.objects.create(requester=other_pm, title="Theirs", request="Other.", budget_usd=Decimal("1.00"))
    project = Project.objects.create(name="Shop", slug="shop", git_url="https://example.invalid/shop.git")
    # The downloads and a project refresh read git stores and the network: answered here, the checks stay real.
    monkeypatch.setattr("missions.views.mission_patch", lambda mission, *args: b"patch")
    monkeypatch.setattr("missions.views.mission_archive", lambda mission, *args: b"zip")
    monkeypatch.setattr("projects.views.project_refresh", lambda project: project)
    settings.METRICS_TOKEN = "metrics-secret-of-the-scraper"
    settings.METRICS_ALLOWED_IPS = []
    live_token = ApiToken.objects.filter(user=pm, revoked_at__isnull=True).get()
    return {
        "users": {"pm": pm, "other_pm": other_pm, "reviewer": reviewer, "admin": admin},
        "tokens": tokens,
        "mission": mission,
        "gate": gate,
        "project": project,
        "live_token": live_token,
        "missions_before": Mission.objects.count(),
    }


def _artifact(tmp_path):
    path = tmp_path / "artifact.zip"
    path.write_bytes(b"PK")
    return path


def _kwargs(route: str, world: dict) -> dict:
    pk = world["gate"].pk if route.startswith("gates/") else world["live_token"].pk
    return {
        "code": world["mission"].code,
        "gate_id": world["gate"].pk,
        "slug": world["project"].slug,
        "pk": pk,
        "mission_pk": world["mission"].pk,
    }


def _path(route: str, world: dict) -> str:
    if route in SAMPLE_PATHS:
        return SAMPLE_PATHS[route]
    kwargs = _kwargs(route, world)

    def fill(match):
        name = match.group(1)
        assert name in kwargs, f"No value for <{name}> in {route!r}: add one to _kwargs"
        return str(kwargs[name])

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", fill, route)


def _is_api_operation(route: str) -> bool:
    names = discovered_routes().get(route, set())
    return route.startswith("api/v1/") and not names & DOCS


# What a POST sends, by route; the API gets JSON.
BODIES = {
    "api/v1/missions": {"title": "From the API", "request": "Add a health endpoint.", "budget_usd": "1.50"},
    "api/v1/gates/<gate_id>/decision": {"decision": "approved", "comment": "Ship it"},
    "gates/<int:pk>/decide/": {"decision": "approved", "comment": "Ship it"},
    "gates/<int:pk>/comments/": {"path": "app.py", "line": "", "body": "Name it better."},
    "profile/": {"email": "on"},
    "profile/tokens/": {"name": "script"},
}
# Routes whose POST files a mission: they need the seeded company (templates, agents, a model profile).
FILES_A_MISSION = {"api/v1/missions", "api/v1/missions/<code>/clone", "missions/<uuid:code>/clone/"}

# Whether the route's action happened, for the "302+" / "302-" rules.
EFFECTS = {
    "missions/<uuid:code>/cancel/": lambda w: _fresh(w["mission"]).status == Mission.Status.CANCELLED,
    "missions/<uuid:code>/clone/": lambda w: Mission.objects.count() > w["missions_before"],
    "gates/<int:pk>/decide/": lambda w: _fresh(w["gate"]).status == ApprovalGate.Status.APPROVED,
    "gates/<int:pk>/comments/": lambda w: GateComment.objects.filter(gate=w["gate"]).exists(),
    "profile/tokens/<int:pk>/revoke/": lambda w: _fresh(w["live_token"]).revoked_at is not None,
}


def _fresh(obj):
    obj.refresh_from_db()
    return obj


def _request(route: str, method: str, persona: str, world: dict):
    client = Client()
    headers = {}
    if _is_api_operation(route):
        headers = bearer(world["tokens"][persona])  # the token only, never a session
    elif persona in LOGGED_IN:
        client.force_login(world["users"][persona])
    elif persona == "revoked":
        headers = bearer(world["tokens"]["revoked"])
    path = _path(route, world)
    if method == "GET":
        return client.get(path, headers=headers)
    body = BODIES.get(route, {})
    if route.startswith("api/v1/"):
        return client.post(path, body, content_type="application/json", headers=headers)
    return client.post(path, body, headers=headers)


def _check(response, rule: str, *, effect=None) -> None:
    status, location = response.status_code, response.get("Location", "")
    body = b"<streamed>" if response.streaming else response.content[:300]
    where = f"{status} {location} {body!r}"
    if rule == "login":
        assert status == 302 and location.startswith("/login/"), where
    elif rule == "any-login":  # the site's or the admin's (its index is open to anonymous visitors)
        assert status == 302 and location.startswith(("/login/", "/admin/login/")), where
    elif rule == "admin-login":
        assert status == 302 and location.startswith("/admin/login/"), where
    elif rule == "health":
        assert status in (200, 503), where
    elif rule.startswith("302"):
        assert status == 302 and not location.startswith("/login/"), where
        if rule != "302":
            assert effect is not None, "a 302+/302- rule needs an entry in EFFECTS"
            assert effect() == (rule == "302+"), f"the action {'did not happen' if rule == '302+' else 'happened'}"
    else:
        assert status == int(rule), where


def _each_persona(rules: dict[str, str], attempt) -> None:
    """``attempt(persona, rule)`` for every persona, each in a savepoint rolled back afterwards (so each meets
    the same world: the pm's cancel does not change what the admin's meets); every mismatch reported at once."""
    failures = []
    for persona, rule in rules.items():
        with transaction.atomic():
            try:
                attempt(persona, rule)
            except AssertionError as error:
                failures.append(f"{persona}: expected {rule}: {error}")
            transaction.set_rollback(True)
    assert not failures, "\n".join(failures)


CASES = [
    pytest.param(route, method, rules, id=f"{method} /{route}")
    for route, methods in EXPECTED.items()
    for method, rules in methods.items()
]


@pytest.mark.parametrize(("route", "method", "rules"), CASES)
def test_url_authorization(request, world, route, method, rules):
    if method == "POST" and route in FILES_A_MISSION:
        request.getfixturevalue("company")
    effect = EFFECTS.get(route)

    def attempt(persona, rule):
        response = _request(route, method, persona, world)
        _check(response, rule, effect=effect and (lambda: effect(world)))
        if _is_api_operation(route) and response.status_code >= 400:
            assert response["Content-Type"].startswith("application/json"), response.content[:200]
            assert response.json()["detail"]

    _each_persona(rules, attempt)


def test_another_pm_sees_nothing_of_the_mission(world):
    """Every page and API answer another PM may read (a 200 in EXPECTED) leaves out the pm's mission."""
    mission = world["mission"]
    for route, methods in EXPECTED.items():
        if methods.get("GET", {}).get("other_pm") != "200" or route in ("api/v1/openapi.json", "api/v1/docs"):
            continue
        response = _request(route, "GET", "other_pm", world)
        assert response.status_code == 200
        text = response.content.decode()
        assert mission.title not in text and str(mission.code) not in text, route


def _admin_paths(world) -> list[str]:
    from django.contrib import admin

    lists = [f"/admin/{model._meta.app_label}/{model._meta.model_name}/" for model in admin.site._registry]
    filled = [
        "/" + sample.format(mission_pk=world["mission"].pk, admin_pk=world["users"]["admin"].pk)
        for sample in ADMIN_SAMPLES
    ]
    return filled + lists


def test_admin_is_staff_only(world):
    """admin/*: everyone but staff goes to a login; the admin (a superuser) gets each page."""
    paths = _admin_paths(world)
    assert len(paths) > 20, paths
    for path in paths:
        assert get_resolver().resolve(path).url_name, path

        def attempt(persona, rule, path=path):
            client = Client()
            headers = {}
            if persona in LOGGED_IN:
                client.force_login(world["users"][persona])
            elif persona == "revoked":
                headers = bearer(world["tokens"]["revoked"])
            _check(client.get(path, headers=headers), rule)

        try:
            _each_persona(ADMIN_RULE, attempt)
        except AssertionError as error:
            raise AssertionError(f"{path}: {error}") from None


def test_a_session_never_opens_the_api(world):
    """A logged-in browser without a token gets a 401 from every API operation (so no CSRF can ride on it)."""
    client = Client()
    client.force_login(world["users"]["admin"])
    for route, methods in EXPECTED.items():
        if not _is_api_operation(route) or route in ("api/v1/", *SAMPLE_PATHS):
            continue
        for method, rules in methods.items():
            if rules["pm"] == "405":
                continue
            path = _path(route, world)
            if method == "GET":
                response = client.get(path)
            else:
                response = client.post(path, BODIES.get(route, {}), content_type="application/json")
            assert response.status_code == 401, (method, path, response.content[:200])


# --- websockets ------------------------------------------------------------------------------------------------

ORIGIN = (b"origin", b"http://localhost")
HOST = (b"host", b"localhost")


def _socket_world(pm, other_pm, reviewer, admin, tokens):
    mission = Mission.objects.create(
        requester=pm,
        title="Live",
        request="Do it.",
        budget_usd=Decimal("1.00"),
        status=Mission.Status.AWAITING_DEPLOY_APPROVAL,
    )
    gate_open(mission=mission, kind=ApprovalGate.Kind.DEPLOY, question="Go?")
    users = {"pm": pm, "other_pm": other_pm, "reviewer": reviewer, "admin": admin}
    cookies = {}
    for persona, user in users.items():
        client = Client()
        client.force_login(user)
        cookies[persona] = (
            b"cookie",
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode(),
        )
    cookies["revoked"] = (b"authorization", f"Bearer {tokens['revoked']}".encode())
    return mission, cookies


async def _connect(path: str, headers):
    from orchestrator_site.asgi import application

    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    await communicator.disconnect()  # accepted or refused: end it before the test's loop closes
    return "accept" if connected else str(code)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("route", list(SOCKETS))
async def test_socket_authorization(route, pm, other_pm, reviewer, admin, tokens):
    """Each socket route × persona, and a foreign origin refused even with the pm's session."""
    mission, cookies = await sync_to_async(_socket_world)(pm, other_pm, reviewer, admin, tokens)
    if route in SOCKET_SAMPLE_PATHS:
        path = SOCKET_SAMPLE_PATHS[route]
    else:
        path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str({"code": mission.code}[m.group(1)]), route)
    seen = {}
    for persona in PERSONAS:
        headers = [ORIGIN, HOST] + ([cookies[persona]] if persona in cookies else [])
        seen[persona] = await _connect(path, headers)
    assert seen == SOCKETS[route]
    foreign = await _connect(path, [(b"origin", b"http://evil.example"), HOST, cookies["pm"]])
    assert foreign != "accept"


def test_a_project_member_reads_but_does_not_steer(world):
    """Another PM who is a member of the mission's project sees it (pages, API, socket rules) but steers nothing."""
    mission, other_pm = world["mission"], world["users"]["other_pm"]
    world["project"].members.add(other_pm)
    Mission.objects.filter(pk=mission.pk).update(project=world["project"])
    client = Client()
    client.force_login(other_pm)
    code = mission.code
    for path in (f"/missions/{code}/", f"/missions/{code}/costs/", f"/missions/{code}/audit/", "/reports/"):
        assert client.get(path).status_code == 200, path
    for action in ("cancel", "pause", "resume", "retry"):
        assert client.post(f"/missions/{code}/{action}/").status_code == 403, action
    response = client.post(f"/gates/{world['gate'].pk}/decide/", {"decision": "approved", "comment": "ok"})
    assert response.status_code == 302 and _fresh(world["gate"]).status == ApprovalGate.Status.PENDING
    api = Client(headers=bearer(world["tokens"]["other_pm"]))
    assert api.get(f"/api/v1/missions/{code}").status_code == 200
    for action in ("cancel", "pause", "resume", "retry"):
        assert api.post(f"/api/v1/missions/{code}/{action}").status_code == 403, action
    body = {"decision": "approved", "comment": "ok"}
    response = api.post(f"/api/v1/gates/{world['gate'].pk}/decision", body, content_type="application/json")
    assert response.status_code == 403
    assert _fresh(mission).status == Mission.Status.AWAITING_DEPLOY_APPROVAL


def test_an_inactive_account_is_refused_everywhere(world):
    """A deactivated pm: the old session is a login redirect, the old token a 401."""
    pm = world["users"]["pm"]
    client = Client()
    client.force_login(pm)
    type(pm).objects.filter(pk=pm.pk).update(is_active=False)
    response = client.get(f"/missions/{world['mission'].code}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    api = Client(headers=bearer(world["tokens"]["pm"]))
    assert api.get("/api/v1/missions").status_code == 401


def test_the_login_page_never_sends_a_user_off_site(world):
    client = Client()
    client.force_login(world["users"]["pm"])
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example/"):
        response = client.get("/login/", {"next": target})
        assert response.status_code == 302 and "evil.example" not in response["Location"], target


def test_every_page_form_needs_its_csrf_token(world):
    """Each page a POST reaches refuses one without the CSRF token (403), even from a logged-in admin.

    (``logout/`` too: a page elsewhere cannot sign people out. The API takes no session, so it needs none.)
    """
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["users"]["admin"])
    for route, methods in EXPECTED.items():
        if "POST" not in methods or route.startswith("api/v1/"):
            continue
        with transaction.atomic():
            response = client.post(_path(route, world), BODIES.get(route, {}))
            transaction.set_rollback(True)
        assert response.status_code == 403, (route, response.status_code)
