# WebSocket routes; the runs app adds the live-log consumer here.
websocket_urlpatterns: list = []
