from django.urls import path

from missions.consumers import MissionConsumer

websocket_urlpatterns = [path("ws/missions/<uuid:code>/", MissionConsumer.as_asgi())]
