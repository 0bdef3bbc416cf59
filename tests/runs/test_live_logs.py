"""The live-log WebSocket: late and reconnecting clients get every line once, in order."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from apps.runs.events import publish_log_lines
from apps.runs.logs import LogWriter
from apps.runs.models import LogLine
from apps.runs.routing import websocket_urlpatterns
from apps.runs.services import run_finish, run_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]
application = URLRouter(websocket_urlpatterns)


@pytest.fixture
def run(make_scenario, no_dispatch, cast):
    return run_start(scenario=make_scenario(), user=cast["owner"]).run


def connect(user, run_id, after=0) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run_id}/logs/?after={after}")
    communicator.scope["user"] = user
    return communicator


async def receive_lines(communicator, until_seq: int) -> list[dict]:
    """Collect line messages until ``until_seq`` arrived (bounded by the receive timeout)."""
    lines = []
    while not lines or lines[-1]["seq"] < until_seq:
        message = await communicator.receive_json_from(timeout=10)
        if message["type"] == "lines":
            lines.extend(message["lines"])
    return lines


def write(run_id: int, texts: list[str]) -> None:
    writer = LogWriter(run_id)
    for text in texts:
        writer.write(text)
    writer.close()


def test_late_client_gets_stored_then_live_lines_once_in_order(run, cast):
    write(run.pk, [f"early {i}" for i in range(150)])

    async def scenario():
        client = connect(cast["reader"], run.pk)
        connected, _ = await client.connect()
        assert connected
        lines = await receive_lines(client, 150)
        await database_write([f"late {i}" for i in range(100)])
        lines += await receive_lines(client, 250)
        await client.disconnect()
        return lines

    async def database_write(texts):
        from channels.db import database_sync_to_async

        await database_sync_to_async(write)(run.pk, texts)

    lines = async_to_sync(scenario)()
    assert [line["seq"] for line in lines] == list(range(1, 251))
    assert lines[0]["message"] == "early 0" and lines[-1]["message"] == "late 99"


def test_reconnect_resumes_after_the_last_seq(run, cast):
    write(run.pk, [f"line {i}" for i in range(60)])

    async def first_visit():
        client = connect(cast["reader"], run.pk)
        await client.connect()
        lines = await receive_lines(client, 60)
        await client.disconnect()
        return lines

    first = async_to_sync(first_visit)()
    write(run.pk, [f"line {i}" for i in range(60, 90)])  # written while disconnected

    async def second_visit():
        client = connect(cast["reader"], run.pk, after=first[-1]["seq"])
        await client.connect()
        lines = await receive_lines(client, 90)
        await client.disconnect()
        return lines

    second = async_to_sync(second_visit)()
    seqs = [line["seq"] for line in first + second]
    assert seqs == list(range(1, 91))


def test_a_lost_live_message_is_filled_from_the_database(run, cast):
    write(run.pk, ["one", "two"])

    async def scenario():
        from channels.db import database_sync_to_async

        client = connect(cast["reader"], run.pk)
        await client.connect()
        lines = await receive_lines(client, 2)
        # Lines 3–5 are stored but their message is "lost"; line 6 arrives live.
        await database_sync_to_async(store_silently)(run.pk, [3, 4, 5, 6])
        stored = await database_sync_to_async(stored_message)(run.pk, 6)
        await database_sync_to_async(publish_log_lines)(run.pk, [stored])
        lines += await receive_lines(client, 6)
        # A duplicate delivery of old lines changes nothing.
        await database_sync_to_async(publish_log_lines)(run.pk, [stored])
        assert await client.receive_nothing(timeout=0.3)
        await client.disconnect()
        return lines

    lines = async_to_sync(scenario)()
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5, 6]


def store_silently(run_id: int, seqs: list[int]) -> None:
    from django.utils import timezone

    LogLine.objects.bulk_create(
        LogLine(run_id=run_id, seq=seq, ts=timezone.now(), message=f"quiet {seq}") for seq in seqs
    )


def stored_message(run_id: int, seq: int) -> dict:
    return LogLine.objects.get(run_id=run_id, seq=seq).as_message()


def test_final_state_arrives_after_the_last_lines(run, cast):
    async def scenario():
        from channels.db import database_sync_to_async

        client = connect(cast["reader"], run.pk)
        await client.connect()
        state = await client.receive_json_from(timeout=10)
        assert state["type"] == "state" and state["run"]["status"] == "queued"
        await database_sync_to_async(write)(run.pk, ["last words"])
        await database_sync_to_async(run_finish)(run.pk, "success", "")
        received = []
        while not (received and received[-1]["type"] == "state"):
            received.append(await client.receive_json_from(timeout=10))
        await client.disconnect()
        return received

    received = async_to_sync(scenario)()
    assert received[0]["type"] == "lines"
    assert received[0]["lines"][0]["message"] == "last words"
    assert received[-1]["run"]["status"] == "success"


@pytest.mark.parametrize("role", ["outsider", None])
def test_non_members_and_anonymous_are_refused(run, cast, role):
    from django.contrib.auth.models import AnonymousUser

    user = cast[role] if role else AnonymousUser()

    async def scenario():
        client = connect(user, run.pk)
        connected, _ = await client.connect()
        return connected

    assert async_to_sync(scenario)() is False
