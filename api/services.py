"""Writes about API tokens: create (the secret is returned once), revoke, and the bearer lookup."""

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from api.models import ApiToken

TOKEN_PREFIX = "mo_"  # noqa: S105 -- the marker every secret starts with, not a secret
# mo_ + 43 URL-safe characters (32 random bytes). Anything else is refused before the database is asked.
TOKEN_PATTERN = re.compile(r"mo_[A-Za-z0-9_-]{43}")
DISPLAY_CHARS = 11  # "mo_" and 8 random characters: enough to recognise a token, far too few to use it
NAME_MAX = 100
# Live tokens a person may hold: the rate limit is per token, so an unbounded number would lift it.
TOKENS_PER_USER_MAX = 10
# last_used_at is written at most this often per token, so a busy script does not write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenError(ValueError):
    """A token request that cannot be carried out; the message is shown to the user."""


def _now():
    return timezone.now()


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_create(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns it and its secret, which is never stored or shown again."""
    name = (name or "").strip()
    if not name:
        raise ApiTokenError("Give the token a name, e.g. the script that will use it.")
    if len(name) > NAME_MAX:
        raise ApiTokenError(f"The name is {len(name):,} characters long; the limit is {NAME_MAX}.")
    if not user.is_active:
        raise ApiTokenError(f"{user} is not active.")
    if ApiToken.objects.filter(user=user, revoked_at__isnull=True).count() >= TOKENS_PER_USER_MAX:
        raise ApiTokenError(f"You have {TOKENS_PER_USER_MAX} live tokens, the most allowed: revoke one first.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=secret[:DISPLAY_CHARS], secret_hash=secret_hash(secret)
    )
    return token, secret


def api_token_revoke(*, user: AbstractBaseUser, token_id: int) -> ApiToken:
    """Revoke one of ``user``'s own tokens (someone else's is "no such token"); revoking twice is harmless."""
    token = ApiToken.objects.filter(pk=token_id, user=user).first()
    if token is None:
        raise ApiTokenError("No such token.")
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=_now())
    token.refresh_from_db()
    return token


def api_token_authenticate(secret: str) -> ApiToken:
    """The live token whose secret this is, its user loaded; raises ApiTokenError saying why not.

    The lookup is by the secret's hash: the database compares hashes, so the time it takes tells an attacker
    nothing about the secret; the final compare_digest keeps that true whatever the index does.
    """
    if not TOKEN_PATTERN.fullmatch(secret):
        raise ApiTokenError("The bearer token is malformed: expected mo_ and 43 characters.")
    digest = secret_hash(secret)
    token = ApiToken.objects.select_related("user").filter(secret_hash=digest).first()
    if token is None or not hmac.compare_digest(token.secret_hash, digest):
        raise ApiTokenError("Unknown API token.")
    if token.is_revoked:
        raise ApiTokenError("This API token was revoked.")
    if not token.user.is_active:
        raise ApiTokenError("The account this token belongs to is not active.")
    now = _now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
