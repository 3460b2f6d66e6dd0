"""The REST API's one NinjaAPI: bearer-token auth on every operation, JSON errors, the routers per resource."""

from ninja import NinjaAPI
from ninja.openapi.docs import Swagger

from api import gates, missions, reports
from api.auth import TokenAuth
from api.errors import install_error_handlers

api = NinjaAPI(
    title="Mission Orchestrator API",
    version="1",
    description=(
        "File and follow missions and decide approval gates with the rules of the web pages. "
        "Authenticate with `Authorization: Bearer <token>` (create tokens on your profile page). "
        'Errors are JSON: `{"detail": "..."}`.'
    ),
    urls_namespace="api",
    auth=TokenAuth(),
    docs=Swagger(settings={"persistAuthorization": False}),
)
install_error_handlers(api)
api.add_router("/missions", missions.router)
api.add_router("/gates", gates.router)
api.add_router("/reports", reports.router)
