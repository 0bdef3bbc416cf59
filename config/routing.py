from apps.runs.routing import websocket_urlpatterns as run_patterns

websocket_urlpatterns = [*run_patterns]
