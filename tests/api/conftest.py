"""API personas: a token for each of pm, other_pm, reviewer and admin, and a revoked one."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from api.services import api_token_create, api_token_revoke
from missions.models import Mission
from reviews.gates import gate_open
from reviews.models import ApprovalGate
from tests.conftest import PASSWORD


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_superuser(username="admin", password=PASSWORD, email="admin@example.com")


def secret_for(user, name="tests") -> str:
    return api_token_create(user=user, name=name)[1]


def bearer(secret: str | None) -> dict:
    return {"Authorization": f"Bearer {secret}"} if secret else {}


@pytest.fixture
def tokens(pm, other_pm, reviewer, admin):
    """Secrets by persona; "revoked" was the pm's."""
    revoked, secret = api_token_create(user=pm, name="old")
    api_token_revoke(user=pm, token_id=revoked.pk)
    return {
        "anonymous": None,
        "pm": secret_for(pm),
        "other_pm": secret_for(other_pm),
        "reviewer": secret_for(reviewer),
        "admin": secret_for(admin),
        "revoked": secret,
    }


def waiting_mission(requester, *, title="Gated", kind=ApprovalGate.Kind.DEPLOY) -> tuple[Mission, ApprovalGate]:
    status = {
        ApprovalGate.Kind.DEPLOY: Mission.Status.AWAITING_DEPLOY_APPROVAL,
        ApprovalGate.Kind.PLAN: Mission.Status.AWAITING_PLAN_APPROVAL,
    }[kind]
    mission = Mission.objects.create(
        requester=requester, title=title, request="Do the thing.", budget_usd=Decimal("2.00"), status=status
    )
    return mission, gate_open(mission=mission, kind=kind, question="Go?")
