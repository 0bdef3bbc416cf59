"""Live run logs over WebSocket: ``ws/runs/<id>/logs/?after=<seq>`` (DESIGN §10).

The consumer joins the run's group first, then sends the stored lines after ``after``, then
live ones. Every line carries its ``seq``: lines already sent are dropped, and a jump in
``seq`` (the channel layer is at-most-once) is filled from the database — so a late or
reconnecting client ends with every line exactly once, in order.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.projects import permissions
from apps.runs.events import project_group, run_group, run_state
from apps.runs.models import LogLine, Run

CHUNK = 1000


class RunLogConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.run_id = self.scope["url_route"]["kwargs"]["run_id"]
        self.last_seq = _after(self.scope.get("query_string", b""))
        run = await database_sync_to_async(_visible_run)(self.scope.get("user"), self.run_id)
        if run is None:
            await self.close(code=4404)  # before accept: the handshake is refused
            return
        await self.channel_layer.group_add(run_group(self.run_id), self.channel_name)
        await self.accept()
        await self._catch_up()
        await self.send_json({"type": "state", "run": await database_sync_to_async(_state)(run)})

    async def disconnect(self, code):
        await self.channel_layer.group_discard(run_group(self.run_id), self.channel_name)

    async def receive_json(self, content, **kwargs):
        pass  # the log is one-way; clients reconnect with ?after= to resume

    async def log_lines(self, event):
        lines = [line for line in event["lines"] if line["seq"] > self.last_seq]
        if not lines:
            return
        if lines[0]["seq"] > self.last_seq + 1:  # a message was lost: fill the gap first
            await self._catch_up(until=lines[0]["seq"] - 1)
            lines = [line for line in lines if line["seq"] > self.last_seq]
        await self._send_lines(lines)

    async def run_state(self, event):
        if event["run"]["status"] not in ("queued", "running"):
            await self._catch_up()  # the last lines are stored before the final state
        await self.send_json({"type": "state", "run": event["run"]})

    async def _catch_up(self, until: int | None = None):
        while True:
            lines = await database_sync_to_async(_stored_lines)(self.run_id, self.last_seq, until)
            if not lines:
                return
            await self._send_lines(lines)
            if len(lines) < CHUNK:
                return

    async def _send_lines(self, lines: list[dict]):
        await self.send_json({"type": "lines", "lines": lines})
        self.last_seq = lines[-1]["seq"]


class MonitorConsumer(AsyncJsonWebsocketConsumer):
    """``ws/monitor/``: run state changes of every project the user may view, for the
    monitoring page. The projects are those visible when the socket opens; the page reloads
    its sections from the database on each change, so a missed message heals on the next one.
    """

    async def connect(self):
        self.groups_joined = []
        project_ids = await database_sync_to_async(_visible_projects)(self.scope.get("user"))
        if project_ids is None:
            await self.close(code=4403)  # anonymous: refused before the handshake completes
            return
        for project_id in project_ids:
            group = project_group(project_id)
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        await self.accept()
        await self.send_json({"type": "hello", "projects": len(project_ids)})

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        pass  # one-way

    async def run_state(self, event):
        await self.send_json({"type": "state", "run": event["run"]})


def _visible_projects(user) -> list[int] | None:
    if user is None or not user.is_authenticated:
        return None
    return list(permissions.projects_for(user, "view").values_list("pk", flat=True))


def _after(query_string: bytes) -> int:
    values = parse_qs(query_string.decode()).get("after", ["0"])
    return int(values[0]) if values[0].isdigit() else 0


def _visible_run(user, run_id: int) -> Run | None:
    if user is None:
        return None
    return permissions.for_user(Run.objects.all(), user, "view").filter(pk=run_id).first()


def _state(run: Run) -> dict:
    run.refresh_from_db()
    return run_state(run)


def _stored_lines(run_id: int, after: int, until: int | None) -> list[dict]:
    lines = LogLine.objects.filter(run_id=run_id, seq__gt=after).order_by("seq")
    if until is not None:
        lines = lines.filter(seq__lte=until)
    return [line.as_message() for line in lines[:CHUNK]]
