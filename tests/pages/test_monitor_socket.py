"""ws/monitor/ forwards the run states of the projects the user may view, and only those."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from apps.runs.events import publish_run_state
from apps.runs.models import Run
from apps.runs.routing import websocket_urlpatterns
from apps.scenarios.models import Scenario

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]
application = URLRouter(websocket_urlpatterns)


def test_members_get_their_projects_runs_only(cast, project, other_project):
    mine = Run.objects.create(
        scenario=Scenario.objects.create(project=project, name="Nightly"), project=project, number=1
    )
    theirs = Run.objects.create(
        scenario=Scenario.objects.create(project=other_project, name="Payroll"),
        project=other_project,
        number=1,
    )

    async def watch(user) -> list[int]:
        client = WebsocketCommunicator(application, "/ws/monitor/")
        client.scope["user"] = user
        connected, _ = await client.connect()
        assert connected
        assert (await client.receive_json_from(timeout=10))["type"] == "hello"
        from channels.db import database_sync_to_async

        await database_sync_to_async(publish_run_state)(theirs)
        await database_sync_to_async(publish_run_state)(mine)
        seen = [(await client.receive_json_from(timeout=10))["run"]["id"]]
        assert await client.receive_nothing(timeout=0.3)
        await client.disconnect()
        return seen

    assert async_to_sync(watch)(cast["reader"]) == [mine.pk]
    assert async_to_sync(watch)(cast["outsider"]) == [theirs.pk]


def test_anonymous_is_refused(db):
    async def knock():
        client = WebsocketCommunicator(application, "/ws/monitor/")
        client.scope["user"] = AnonymousUser()
        connected, code = await client.connect()
        return connected, code

    assert async_to_sync(knock)() == (False, 4403)
