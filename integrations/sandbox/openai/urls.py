from django.urls import path

from integrations.sandbox.openai import views

urlpatterns = [
    path("sandbox/openai/v1/chat/completions", views.chat_completions),
    path("sandbox/openai/v1/models", views.models),
]
