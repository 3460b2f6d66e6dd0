"""The API's personas (an admin, a token each and a revoked one) for the security suite."""

from tests.api.conftest import admin, tokens  # noqa: F401
