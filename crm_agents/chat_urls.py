from django.urls import path

from crm_agents import chat_views

app_name = "chat"

urlpatterns = [
    path("", chat_views.session_list, name="list"),
    path("new/", chat_views.session_start, name="start"),
    path("<int:session_id>/", chat_views.session_detail, name="session"),
]
