from django.urls import path

from missions import views

app_name = "missions"
urlpatterns = [
    path("", views.mission_list, name="list"),
    path("new/", views.mission_new, name="new"),
    path("<uuid:code>/", views.mission_detail, name="detail"),
    path("<uuid:code>/costs/", views.mission_costs, name="costs"),
    path("<uuid:code>/cancel/", views.mission_cancel_view, name="cancel"),
    path("<uuid:code>/pause/", views.mission_pause_view, name="pause"),
    path("<uuid:code>/resume/", views.mission_resume_view, name="resume"),
    path("<uuid:code>/retry/", views.mission_retry_view, name="retry"),
    path("<uuid:code>/clone/", views.mission_clone_view, name="clone"),
    path("<uuid:code>/artifact/", views.mission_artifact, name="artifact"),
    path("<uuid:code>/change.patch", views.mission_change_patch, name="change_patch"),
    path("<uuid:code>/change.zip", views.mission_change_zip, name="change_zip"),
]
