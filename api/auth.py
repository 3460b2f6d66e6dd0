"""Bearer-token authentication for the API, and the per-token rate limit that follows it."""

from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import HttpBearer

from api.ratelimit import rate_limit_hit
from api.services import ApiTokenError, api_token_authenticate


class NotAuthenticated(HttpError):
    def __init__(self, message: str):
        super().__init__(401, message)


class RateLimited(HttpError):
    def __init__(self, retry_after_s: int):
        self.retry_after_s = retry_after_s
        super().__init__(429, f"Too many requests for this token: try again in {retry_after_s} s.")


class TokenAuth(HttpBearer):
    """``Authorization: Bearer mo_…`` and nothing else.

    No session cookie is ever accepted, so a page on another site cannot make a logged-in browser call the
    API (the API is CSRF-exempt, like every bearer-token API). The rate limit runs here, right after the
    token is known, because it is per token; ninja's throttles keep their wait time on a shared object.
    """

    def __call__(self, request: HttpRequest):
        sent = request.headers.get(self.header, "")
        if not sent:
            raise NotAuthenticated("Authentication required: send Authorization: Bearer <token>.")
        scheme, _, secret = sent.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise NotAuthenticated("The Authorization header must be Bearer <token>.")
        return self.authenticate(request, secret.strip())

    def authenticate(self, request: HttpRequest, token: str):
        try:
            api_token = api_token_authenticate(token)
        except ApiTokenError as error:
            raise NotAuthenticated(str(error)) from None
        retry_after = rate_limit_hit(api_token.secret_hash[:24])
        if retry_after is not None:
            raise RateLimited(retry_after)
        # Everything below works as this user, whoever the session cookie (if any) says is logged in.
        request.user = api_token.user
        request.api_token = api_token
        return api_token.user
