from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from api.models import ApiToken


def api_tokens_for_user(user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """The user's tokens for the profile page, newest first; revoked ones stay listed (greyed) as a record."""
    return ApiToken.objects.filter(user=user).order_by("revoked_at", "-created_at", "-id")
