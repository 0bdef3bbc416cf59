"""The permission matrix over EVERY route of the API, walked from its OpenAPI schema.

Each route is asked by every role of the cast, and by an anonymous client, against a project
holding one object of every kind. What each role should get comes from ``EXPECTED``: who may
perform each ``(resource, action)``. A route missing from it fails the test — a new route
must say who may use it.

- anonymous: 401/403, with nothing but a ``detail``;
- the outsider (a member of another project): 404 on anything of SALES, and no SALES row ever;
- a member below the route's role: 403, before validation (bodies are empty: a 400 would mean
  the request was validated first);
- a member at or above it: the success, or for an empty body the validation error, that
  ``SUCCESS`` gives for the route;
- never a 5xx, and no response ever shows a row of the other project;
- a refused write (POST, PUT, PATCH, DELETE) leaves every table of the database and every
  file under the connection's folder and ``VAR_DIR`` as it found them (``Footprint``).

Every request runs in a savepoint that is rolled back, so each role finds the project whole.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from rest_framework.test import APIClient

from apps.projects.models import Role
from tests.security.conftest import HR_MARK, SALES_MARK, World
from tests.security.routes import Route, api_routes

READER, OPERATOR, EDITOR, ADMIN = Role.READER, Role.OPERATOR, Role.EDITOR, Role.ADMIN
ANYONE = "any signed-in user"
SUPERUSER = "superusers only"
OWN = "its owner only"  # others get 404: they cannot tell it exists


def crud(resource: str, *, read=READER, write=EDITOR, **actions) -> dict:
    """The six routes of a model viewset, plus its extra actions."""
    table = {(resource, action): read for action in ("list", "retrieve")}
    for action in ("create", "update", "partial_update", "destroy"):
        table[(resource, action)] = write
    return table | {(resource, action): who for action, who in actions.items()}


EXPECTED: dict[tuple[str, str], object] = {
    ("project", "list"): ANYONE,  # each sees their projects (see the leak checks)
    ("project", "create"): ANYONE,  # any profile but reader; the cast are designers
    ("project", "retrieve"): READER,
    ("project", "update"): ADMIN,
    ("project", "partial_update"): ADMIN,
    ("project", "destroy"): ADMIN,
    **crud("membership", write=ADMIN),
    **crud("dataset", build=EDITOR, clear=EDITOR),
    **crud("recipe"),
    **crud("metric", history=READER, compute=EDITOR),
    **crud("check", results=READER, run=EDITOR),
    **crud("rule", results=READER, verify=EDITOR),
    **crud("model", train=EDITOR),
    **crud("chart", refresh=EDITOR),
    **crud("dashboard"),
    **crud("scenario", run=OPERATOR),
    **crud("step"),
    **crud("trigger", test=OPERATOR, evaluations=READER),
    **crud("reporter", preview=READER),
    ("run", "list"): READER,
    ("run", "retrieve"): READER,
    ("run", "logs"): READER,
    ("run", "abort"): OPERATOR,
    ("run-delivery", "list"): READER,
    ("run-delivery", "retrieve"): READER,
    **crud("connection", read=ANYONE, write=SUPERUSER, test=SUPERUSER),
    # Anyone may send a test message through a channel they may use (ChannelViewSet).
    **crud("channel", read=ANYONE, write=SUPERUSER, test=ANYONE),
    ("token", "list"): ANYONE,  # their own
    ("token", "create"): ANYONE,
    ("token", "destroy"): OWN,
    ("license", "get"): ANYONE,
    ("license", "post"): SUPERUSER,
    ("me", "get"): ANYONE,
    ("step-types", "get"): ANYONE,
    ("trigger-kinds", "get"): ANYONE,
}

ROLES = ["superuser", "owner", "editor", "operator", "reader", "outsider", "anonymous"]
MEMBER_ROLES = {"owner": ADMIN, "editor": EDITOR, "operator": OPERATOR, "reader": READER}

# What a permitted request gets, sent with an empty body (an empty PATCH changes nothing):
# by action, unless the fixture's state or the empty body says otherwise below.
SUCCESS_BY_ACTION = {"list": 200, "retrieve": 200, "partial_update": 200, "destroy": 204,
                     "create": 400, "update": 400, "get": 200}  # fmt: skip
SUCCESS = {
    ("scenario", "run"): 201,  # the scenario runs in parallel: the active run does not stop it
    ("run", "abort"): 202,
    ("scenario", "destroy"): 409,  # it has an active run
    ("dataset", "destroy"): 409,  # a saved model is trained on it
    ("connection", "destroy"): 409,  # datasets use it
    ("channel", "destroy"): 409,  # a reporter uses it
    ("membership", "update"): 200,  # every field has a default or keeps its value
    ("dataset", "build"): 200,  # a source dataset: nothing to run
    ("dataset", "clear"): 200,
    ("trigger", "test"): 200,
    ("connection", "test"): 200,  # the folder is there
    ("channel", "test"): 200,  # the answer is the delivery, failed: loopback is refused
    ("chart", "refresh"): 200,
    ("model", "train"): 200,
    ("metric", "compute"): 400,  # these name the dataset in the body
    ("check", "run"): 400,
    ("rule", "verify"): 400,
    ("reporter", "preview"): 400,  # and this the run
    ("license", "post"): 400,
}


def success(route: Route) -> int:
    resource, action = route.name
    if route.name in SUCCESS:
        return SUCCESS[route.name]
    if action in SUCCESS_BY_ACTION:
        return SUCCESS_BY_ACTION[action]
    if route.method == "GET":
        return 200
    pytest.fail(f"no expected success for route {route} {route.name}: add it to SUCCESS")


ROUTES = api_routes()


@pytest.fixture(autouse=True)
def source_files(shared_world):
    shared_world[0].restore_files()


def outcome(rule, role: str) -> int | str:
    """``allowed``, ``anonymous`` (401/403) or the refusal's status, for ``role``."""
    if role == "anonymous":
        return "anonymous"
    if rule == OWN:
        return "allowed" if role == "owner" else 404
    if rule == ANYONE or role == "superuser":
        return "allowed"
    if rule == SUPERUSER:
        return 403
    if role == "outsider":
        return 404
    return "allowed" if MEMBER_ROLES[role] >= rule else 403


UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


@cache
def tables_query() -> str:
    """One query: each table's row count and a sum of its rows' hashes (order-free)."""
    quote = connection.ops.quote_name
    return " UNION ALL ".join(
        f"SELECT '{table}', count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) "
        f"FROM {quote(table)} t"
        for table in sorted(connection.introspection.table_names(include_views=False))
    )


@dataclass(frozen=True)
class Footprint:
    """What a write could change: every table's rows, and the files of the connection's
    folder and of ``VAR_DIR`` (datasets, model artifacts, exports)."""

    roots: tuple[Path, ...]
    tables: dict[str, tuple[int, int]]
    files: dict[str, tuple[int, int]]  # size and hash of the content

    @classmethod
    def take(cls, root: Path) -> Footprint:
        with connection.cursor() as cursor:
            cursor.execute(tables_query())
            tables = {name: (count, digest) for name, count, digest in cursor.fetchall()}
        roots, files = (root, settings.VAR_DIR), {}
        for top in roots:
            for folder, _, names in os.walk(top):
                for name in names:
                    content = Path(folder, name).read_bytes()
                    files[os.path.join(folder, name)] = (len(content), hash(content))
        return cls(roots, tables, files)

    def changes(self) -> list[str]:
        """What differs now: the tables, then the files."""
        now = Footprint.take(self.roots[0])
        tables = [name for name in self.tables if self.tables[name] != now.tables.get(name)]
        files = {path for path, _ in set(self.files.items()) ^ set(now.files.items())}
        return [f"table {name}" for name in tables] + [f"file {path}" for path in sorted(files)]


@dataclass
class Answer:
    status: int
    text: str
    json: object = None
    changed: list[str] = field(default_factory=list)  # vs ``before``, when given


# One client for every request: a new one would load the middleware (and WhiteNoise would
# scan the static files) again.
CLIENT = APIClient()


def ask(user, method: str, url: str, *, before: Footprint | None = None) -> Answer:
    """One request, in a savepoint rolled back afterwards; an exception is a 500. Given
    ``before``, what the request changed is taken before the rollback."""
    client = CLIENT
    fresh = get_user_model().objects.get(pk=user.pk) if user is not None else None
    client.force_authenticate(fresh)  # a fresh user: no role cached by an earlier request
    body = {"data": {}, "format": "json"} if method in ("POST", "PUT", "PATCH") else {}
    changed = []
    try:
        with transaction.atomic():
            response = getattr(client, method.lower())(url, **body)
            if before is not None:
                changed = before.changes()
            transaction.set_rollback(True)
    except Exception:
        return Answer(500, traceback.format_exc())
    text = response.content.decode(errors="replace")
    is_json = response.get("Content-Type", "").startswith("application/json")
    data = response.json() if is_json and text else None
    return Answer(response.status_code, text, data, changed)


def path_values(world: World, route: Route, project=None) -> dict:
    project = project or world.sales
    resource, _ = route.name
    values = {"project_key": "SALES", "key": "SALES", "run_pk": world.sales["run"].pk}
    if "id" in route.params:
        globals_ = {"connection": world.connection, "channel": world.channel,
                    "token": world.token}  # fmt: skip
        values["id"] = (globals_.get(resource) or project[resource]).pk
    return values


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def problems_of(route: Route, role: str, expected, answer: Answer) -> list[str]:
    where = f"{route} as {role}"
    if answer.status >= 500:
        return [f"{where}: {answer.status} {last_line(answer.text)}"]
    found = []
    if expected == "anonymous":
        if answer.status not in (401, 403) or set(answer.json or {}) != {"detail"}:
            found.append(f"{where}: expected 401/403 with a detail, got {answer.status}")
    elif expected == "allowed":
        if answer.status != success(route):
            found.append(f"{where}: allowed, expected {success(route)}, got "
                         f"{answer.status}: {answer.text[:300]}")  # fmt: skip
        elif answer.status == 400 and not answer.json:
            found.append(f"{where}: a 400 without a JSON body naming the field")
    elif answer.status != expected or set(answer.json or {}) != {"detail"}:
        found.append(f"{where}: expected {expected} with a detail, got {answer.status}: "
                     f"{answer.text[:300]}")  # fmt: skip
    if expected != "allowed" and answer.changed:
        found.append(f"{where}: refused ({answer.status}), yet changed "
                     f"{', '.join(answer.changed)}")  # fmt: skip
    if HR_MARK in answer.text:
        found.append(f"{where}: shows a row of another project (HR)")
    if role in ("outsider", "anonymous") and SALES_MARK in answer.text:
        found.append(f"{where}: shows a row of SALES")
    return found


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_route_permissions(shared_world, db, no_dispatch, route):
    world, cast = shared_world
    if route.name not in EXPECTED:
        pytest.fail(f"no expected permission for route {route} {route.name}: add it to EXPECTED")
    rule = EXPECTED[route.name]
    url = route.url(path_values(world, route))
    found = []
    for role in ROLES:
        user = None if role == "anonymous" else cast[role]
        expected = outcome(rule, role)
        watch = None
        if route.method in UNSAFE:
            world.restore_files()  # an allowed Clear deleted them; no rollback brings them back
            if expected != "allowed":  # files an allowed write left (a model's artifact) stay
                watch = Footprint.take(world.root)
        answer = ask(user, route.method, url, before=watch)
        found += problems_of(route, role, expected, answer)
    assert not found, "\n".join(found)


DETAIL_ROUTES = [route for route in ROUTES if route.project_scoped and route.detail]


@pytest.mark.parametrize("route", DETAIL_ROUTES, ids=str)
def test_another_projects_object_is_not_found_through_this_project(shared_world, db, route):
    """The id of an HR object under /projects/SALES/ is a 404, even for a superuser (who
    may see both): objects are found through the project of the URL."""
    world, cast = shared_world
    url = route.url(path_values(world, route, project=world.hr))
    answer = ask(cast["superuser"], route.method, url)
    assert answer.status == 404, f"{route} with HR's id: {answer.status} {answer.text[:300]}"


def test_another_projects_run_has_no_deliveries_here(shared_world, db):
    world, cast = shared_world
    hr_run = world.hr["run"].pk
    answer = ask(cast["owner"], "GET", f"/api/v1/projects/SALES/runs/{hr_run}/deliveries/")
    assert answer.status == 404


LIST_ROUTES = [r for r in ROUTES if r.project_scoped and not r.detail and r.method == "GET"]


@pytest.mark.parametrize("route", LIST_ROUTES, ids=str)
def test_lists_of_the_outsiders_project_hold_only_its_rows(shared_world, db, route):
    world, cast = shared_world
    values = {"project_key": "HR", "run_pk": world.hr["run"].pk}
    answer = ask(cast["outsider"], "GET", route.url(values))
    assert answer.status == 200, answer.text
    rows = answer.json["results"] if isinstance(answer.json, dict) else answer.json
    assert len(rows) >= 1, f"{route}: the fixture should give HR a row here"
    assert HR_MARK in answer.text or route.name[0] == "membership"
    assert SALES_MARK not in answer.text


def test_every_expected_entry_is_a_route():
    """A stale entry hides a renamed route: the table lists exactly what exists."""
    names = {route.name for route in ROUTES}
    assert set(EXPECTED) - names == set()


def test_a_refused_write_that_wrote_anyway_is_caught(shared_world, db, monkeypatch):
    """The footprint itself: a view that writes (a row's field, a file) before refusing."""
    from apps.projects.api import ProjectScoped
    from apps.scenarios.models import Scenario

    world, cast = shared_world
    refuse = ProjectScoped.check_object_permissions

    def write_then_refuse(self, request, obj):
        Scenario.objects.filter(pk=obj.pk).update(description="written anyway")
        (world.root / "written.txt").write_text("anyway")
        refuse(self, request, obj)

    monkeypatch.setattr(ProjectScoped, "check_object_permissions", write_then_refuse)
    route = Route("PATCH", "/api/v1/projects/{project_key}/scenarios/{id}/")
    before = Footprint.take(world.root)
    answer = ask(cast["reader"], "PATCH", route.url(path_values(world, route)), before=before)
    (world.root / "written.txt").unlink()
    assert problems_of(route, "reader", 403, answer) == [
        f"{route} as reader: refused (403), yet changed table scenarios_scenario, "
        f"file {world.root / 'written.txt'}"
    ]
