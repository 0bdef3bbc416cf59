"""Cadenza's ASGI application plus one benchmark-only WebSocket route, the live-log floor:
``ws/bench/echo/?group=<name>`` forwards what is group_sent to ``bench.<name>`` straight to
the client — the channel layer and a consumer, with no database and no batching.

Served with uvicorn exactly as `manage.py serve` serves config.asgi in distributed mode.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from config.asgi import http_application
from config.routing import websocket_urlpatterns


class EchoConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.group = f"bench.{query.get('group', ['echo'])[0]}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def log_lines(self, event):  # the message type the run log uses
        await self.send_json({"type": "lines", "lines": event["lines"]})


application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                URLRouter([*websocket_urlpatterns, path("ws/bench/echo/", EchoConsumer.as_asgi())])
            )
        ),
    }
)
