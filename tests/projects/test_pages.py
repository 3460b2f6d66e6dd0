"""The Projects pages: staff list, add, edit and refresh projects; nobody else reaches them."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from projects.models import Project
from projects.services import project_add
from tests.projects.conftest import git

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def dirs(settings, tmp_path):
    settings.MIRRORS_DIR = tmp_path / "mirrors"
    settings.ENVS_DIR = tmp_path / "envs"
    settings.MIRRORS_DIR.mkdir()
    settings.ENVS_DIR.mkdir()
    settings.PROJECT_ALLOWED_ROOTS = []


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user(username="admin", password="x", is_staff=True)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def shop(product):
    return project_add(name="Shop", slug="shop", git_url=str(product))


def form(product, **fields):
    data = {"name": "Shop", "slug": "shop", "git_url": str(product), "default_branch": "main"}
    data["test_command"] = "python -m pytest -q"
    return data | fields


def test_it_lists_projects_with_head_files_languages_and_baseline(staff_client, shop):
    response = staff_client.get(reverse("projects:list"))
    assert response.status_code == 200
    page = response.content.decode()
    for expected in ("Shop", shop.git_url, shop.head_sha[:10], "Python 3", "Passed", "1 passed, 0 failed"):
        assert expected in page
    assert 'href="/projects/"' in page  # the staff nav link


def test_it_adds_a_project_from_the_form(staff_client, staff, product):
    """A valid form mirrors the repository and redirects to the project's page, which shows the baseline."""
    response = staff_client.post(reverse("projects:add"), form(product))
    project = Project.objects.get(slug="shop")
    assert response.status_code == 302 and response["Location"] == project.get_absolute_url()
    assert project.created_by == staff and project.head_sha == git("rev-parse", "HEAD", cwd=product)
    page = staff_client.get(project.get_absolute_url()).content.decode()
    assert "Passed" in page and "<pre" in page and "1 passed" in page


def test_the_add_form_shows_the_services_error(staff_client, product, tmp_path):
    """A refused repository re-renders the form with the reason; nothing is created."""
    response = staff_client.post(reverse("projects:add"), form(product, git_url="ext::sh -c touch% /tmp/x"))
    assert response.status_code == 200
    assert "uses a git transport helper (such as ext::), which is not allowed." in response.content.decode()
    response = staff_client.post(reverse("projects:add"), form(product, default_branch="develop"))
    assert "The repository has no branch &#x27;develop&#x27;." in response.content.decode()
    assert not Project.objects.exists()


def test_it_edits_a_project_and_reruns_the_baseline(staff_client, shop, staff):
    data = {
        "name": "Shop",
        "default_branch": "main",
        "test_command": "true",
        "push_url": "",
        "restricted": "on",
        "members": [staff.pk],
    }
    response = staff_client.post(reverse("projects:edit", args=["shop"]), data)
    assert response.status_code == 302
    shop.refresh_from_db()
    assert shop.test_command == "true" and shop.restricted and list(shop.members.all()) == [staff]
    assert shop.current_baseline().tests == []
    refused = staff_client.post(reverse("projects:edit", args=["shop"]), data | {"test_command": "no-such-command"})
    assert "could not run at" in refused.content.decode()
    shop.refresh_from_db()
    assert shop.test_command == "true"


def test_refresh_is_a_post_that_follows_upstream(staff_client, shop, product):
    assert staff_client.get(reverse("projects:refresh", args=["shop"])).status_code == 405
    (product / "NOTES.md").write_text("notes\n")
    git("add", "-A", cwd=product)
    git("-c", "user.name=PM", "-c", "user.email=pm@example.com", "commit", "-q", "-m", "Notes", cwd=product)
    response = staff_client.post(reverse("projects:refresh", args=["shop"]), follow=True)
    shop.refresh_from_db()
    assert shop.head_sha == git("rev-parse", "HEAD", cwd=product) and shop.languages["Markdown"] == 1
    assert f"Refreshed Shop: HEAD {shop.head_sha[:10]}." in response.content.decode()


@pytest.mark.parametrize("name", ["list", "add", "detail", "edit", "refresh"])
def test_it_refuses_non_staff_and_anonymous_users(client, pm, shop, name):
    """A product manager gets 403 on every page; someone logged out is sent to the login page."""
    url = reverse(f"projects:{name}", args=[] if name in ("list", "add") else ["shop"])
    response = client.post(url) if name == "refresh" else client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    client.force_login(pm)
    response = client.post(url) if name == "refresh" else client.get(url)
    assert response.status_code == 403
    assert "Projects</a>" not in client.get(reverse("missions:list")).content.decode()
