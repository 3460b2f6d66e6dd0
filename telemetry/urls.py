from django.urls import path

from telemetry import views

app_name = "telemetry"
urlpatterns = [path("metrics", views.metrics, name="metrics")]
