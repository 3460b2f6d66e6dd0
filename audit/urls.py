from django.urls import path

from audit import views

app_name = "audit"
urlpatterns = [
    path("missions/<uuid:code>/audit/", views.mission_audit, name="mission"),
    path("audit/", views.site_audit, name="site"),
]
