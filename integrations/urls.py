from django.urls import path

from integrations import views

app_name = "connections"

urlpatterns = [
    path("", views.connection_list, name="list"),
    path("connect/", views.connect_start, name="start"),
    path("connect/token/", views.connect_with_token, name="token"),
    path("<str:provider>/callback/", views.connect_callback, name="callback"),
    path("<int:connection_id>/disconnect/", views.disconnect, name="disconnect"),
]
