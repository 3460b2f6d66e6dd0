from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from orchestrator_site.health import healthz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="missions:list"), name="home"),
    path("missions/", include("missions.urls")),
    path("", include("audit.urls")),
    path("gates/", include("reviews.urls")),
    path("projects/", include("projects.urls")),
    path("profile/", include("notifications.urls")),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", healthz, name="healthz"),
    path("", include("telemetry.urls")),
    path("admin/", admin.site.urls),
]
