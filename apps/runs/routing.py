from django.urls import path

from apps.runs.consumers import MonitorConsumer, RunLogConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/logs/", RunLogConsumer.as_asgi()),
    path("ws/monitor/", MonitorConsumer.as_asgi()),
]
