"""HTTP and websockets. Sockets need a same-origin browser and a logged-in user."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

if settings.SERVE_STATIC:
    # One process serves everything on a bare machine; behind a proxy, set SERVE_STATIC=0.
    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from missions.routing import websocket_urlpatterns  # noqa: E402
from notifications.routing import websocket_urlpatterns as notification_urlpatterns  # noqa: E402
from orchestrator_site.websocket import SameOriginValidator, UnroutedSocket  # noqa: E402

sockets = [*websocket_urlpatterns, *notification_urlpatterns, re_path(r"", UnroutedSocket.as_asgi())]
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(SameOriginValidator(AuthMiddlewareStack(URLRouter(sockets)))),
    }
)
