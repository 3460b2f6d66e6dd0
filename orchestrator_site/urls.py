from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from home.views import home
from orchestrator_site.health import healthz

urlpatterns = [
    path("", home, name="home"),
    path("missions/", include("missions.urls")),
    path("", include("audit.urls")),
    path("gates/", include("reviews.urls")),
    path("projects/", include("projects.urls")),
    path("profile/", include("notifications.urls")),
    path("reports/", include("reports.urls")),
    path("profile/tokens/", include("api.token_urls")),
    path("api/v1/", include("api.urls")),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", healthz, name="healthz"),
    path("", include("telemetry.urls")),
    path("admin/", admin.site.urls),
]
