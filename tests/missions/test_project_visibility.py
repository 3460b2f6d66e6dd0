"""A PM sees the missions of the projects they are a member of, everywhere they see their own; steering stays
with the requester."""

from decimal import Decimal

import pytest
from django.urls import reverse

from api.services import api_token_create
from missions.models import Mission
from projects.models import Project


@pytest.fixture
def shop(pm):
    project = Project.objects.create(name="Shop", slug="shop", git_url="/srv/shop.git", restricted=True)
    project.members.add(pm)
    return project


def _mission(requester, title, project=None) -> Mission:
    return Mission.objects.create(
        requester=requester, title=title, request="r", budget_usd=Decimal("2.00"), project=project,
        status=Mission.Status.EXECUTING,
    )  # fmt: skip


def test_a_member_sees_a_colleagues_mission_on_their_project_but_not_elsewhere(client, pm, other_pm, shop):
    colleagues = _mission(other_pm, "Colleague's checkout", shop)
    elsewhere = _mission(other_pm, "Unrelated secret")
    client.force_login(pm)
    listed = [m.title for m in client.get(reverse("missions:list")).context["page"].object_list]
    assert listed == ["Colleague's checkout"]
    assert client.get(colleagues.get_absolute_url()).status_code == 200
    assert client.get(elsewhere.get_absolute_url()).status_code == 404
    assert client.get(reverse("missions:costs", kwargs={"code": colleagues.code})).status_code == 200
    secret = api_token_create(user=pm, name="t")[1]
    api = client.get(f"/api/v1/missions/{colleagues.code}", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200 and api.json()["title"] == "Colleague's checkout"
    report = client.get(reverse("reports:kpi"), {"format": "csv", "table": "missions"}).content.decode()
    assert "Colleague's checkout" in report and "Unrelated secret" not in report


def test_a_member_may_not_steer_a_colleagues_mission(client, pm, other_pm, shop):
    mission = _mission(other_pm, "Colleague's checkout", shop)
    client.force_login(pm)
    page = client.get(mission.get_absolute_url()).content.decode()
    assert "Cancel mission" not in page and ">Pause<" not in page
    assert client.post(reverse("missions:cancel", kwargs={"code": mission.code})).status_code == 403
    client.post(reverse("missions:pause", kwargs={"code": mission.code}))
    mission.refresh_from_db()
    assert mission.status == Mission.Status.EXECUTING


def test_leaving_the_project_hides_its_missions_again(client, pm, other_pm, shop):
    mission = _mission(other_pm, "Colleague's checkout", shop)
    shop.members.remove(pm)
    client.force_login(pm)
    assert client.get(mission.get_absolute_url()).status_code == 404


def test_membership_of_several_projects_lists_each_mission_once(client, pm, other_pm, shop):
    other = Project.objects.create(name="Blog", slug="blog", git_url="/srv/blog.git", restricted=True)
    other.members.add(pm, other_pm)
    shop.members.add(other_pm)
    _mission(other_pm, "On shop", shop)
    _mission(other_pm, "On blog", other)
    _mission(pm, "Mine on shop", shop)
    client.force_login(pm)
    listed = sorted(m.title for m in client.get(reverse("missions:list")).context["page"].object_list)
    assert listed == ["Mine on shop", "On blog", "On shop"]
