"""Every WebSocket route (config.routing) × every role, through the real ASGI application:
origin check, session cookie, AuthMiddlewareStack, URL router, consumer.

Routes of one object (a run's log) admit readers of its project and up, and refuse the
outsider and anonymous clients before the handshake completes. The monitor admits any
signed-in user but only ever tells them about projects they may view.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from apps.runs.events import publish_run_state
from config.routing import websocket_urlpatterns
from tests.security.conftest import World

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

ROLES = ["superuser", "owner", "editor", "operator", "reader", "outsider", "anonymous"]
READERS_UP = {"superuser", "owner", "editor", "operator", "reader"}
OBJECT = "readers of the object's project and up"
SCOPED = "any signed-in user, told only about projects they may view"

EXPECTED = {
    "ws/runs/<int:run_id>/logs/": OBJECT,
    "ws/monitor/": SCOPED,
}


def route_of(pattern) -> str:
    return str(pattern.pattern)


def origin() -> bytes:
    host = settings.ALLOWED_HOSTS[0].lstrip(".")
    return f"http://{'localhost' if host == '*' else host}".encode()


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


def cookies_of(cast: dict) -> dict[str, bytes | None]:
    """Each role's session cookie (made here, in sync code); None for anonymous."""
    return {role: session_cookie(cast[role]) if role in cast else None for role in ROLES}


def communicator(path: str, cookie: bytes | None) -> WebsocketCommunicator:
    from config.asgi import application  # after the test settings are in place

    headers = [(b"origin", origin())]
    if cookie is not None:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers)


def url_for(route: str, world: World, project) -> str:
    if route == "ws/runs/<int:run_id>/logs/":
        return f"/ws/runs/{project['run'].pk}/logs/"
    return "/" + route


def test_every_websocket_route_has_an_expectation():
    routes = {route_of(pattern) for pattern in websocket_urlpatterns}
    missing = routes - set(EXPECTED)
    assert not missing, f"no expected permission for WebSocket route(s) {sorted(missing)}"
    assert set(EXPECTED) <= routes, "stale entries: " + str(set(EXPECTED) - routes)


async def opens(path: str, cookie) -> tuple[bool, object, WebsocketCommunicator]:
    client = communicator(path, cookie)
    connected, code = await client.connect(timeout=10)
    return connected, code, client


@pytest.mark.parametrize("route", [r for r, rule in EXPECTED.items() if rule == OBJECT])
def test_object_routes_admit_readers_and_up(world, cast, route):
    cookies = cookies_of(cast)

    async def walk():
        seen = {}
        for role in ROLES:
            connected, code, client = await opens(url_for(route, world, world.sales), cookies[role])
            if connected:
                first = await client.receive_json_from(timeout=10)
                seen[role] = ("accepted", first["type"])
                await client.disconnect()
            else:
                seen[role] = ("refused", code)
        # The owner of SALES is an outsider to HR's run.
        connected, code, _ = await opens(url_for(route, world, world.hr), cookies["owner"])
        seen["owner on HR"] = ("accepted", None) if connected else ("refused", code)
        return seen

    seen = async_to_sync(walk)()
    for role in ROLES:
        if role in READERS_UP:
            assert seen[role][0] == "accepted", (role, seen[role])
        else:
            assert seen[role] == ("refused", 4404), (role, seen[role])
    assert seen["owner on HR"] == ("refused", 4404)


def test_monitor_tells_each_user_only_about_projects_they_may_view(world, cast):
    run = world.sales["run"]
    cookies = cookies_of(cast)

    async def walk():
        connected, code, _ = await opens("/ws/monitor/", None)
        assert not connected and code == 4403, ("anonymous", connected, code)
        clients = {}
        for role in ROLES[:-1]:
            connected, _, client = await opens("/ws/monitor/", cookies[role])
            assert connected, role
            hello = await client.receive_json_from(timeout=10)
            assert hello["type"] == "hello", hello
            clients[role] = client
        await database_sync_to_async(publish_run_state)(run)
        heard = {}
        for role, client in clients.items():
            if role == "outsider":
                heard[role] = not await client.receive_nothing(timeout=0.5)
            else:
                message = await client.receive_json_from(timeout=10)
                heard[role] = message["run"]["id"] == run.pk
            await client.disconnect()
        return heard

    heard = async_to_sync(walk)()
    assert heard == {role: role != "outsider" for role in ROLES[:-1]}
