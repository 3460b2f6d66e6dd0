from django.urls import path

from reviews import views

app_name = "reviews"
urlpatterns = [
    path("", views.gate_queue, name="queue"),
    path("<int:pk>/decide/", views.gate_decide_view, name="decide"),
    path("<int:pk>/comments/", views.gate_comment_view, name="comment"),
]
