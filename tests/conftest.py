"""The fixed cast, as in Healthchecks' tests: one project, one user per role, an outsider;
and real Celery workers on demand."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.accounts.models import Profile, ProfileKind
from apps.projects.models import Membership, Project, Role
from apps.scenarios.models import Scenario, Step
from tests.processes import WorkerProcess, adopting_orphans, end_session

PASSWORD = "correct horse battery staple"


def make_user(username: str, *, profile: str = ProfileKind.DESIGNER, **extra):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)
    Profile.objects.create(user=user, kind=profile)
    return user


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def project(db):
    return Project.objects.create(key="SALES", name="Sales", description="Sales data")


@pytest.fixture
def other_project(db):
    return Project.objects.create(key="HR", name="Human resources")


@pytest.fixture
def cast(db, project, other_project):
    """superuser, owner (admin), editor, operator, reader, outsider — all staff, so that the
    admin itself is what keeps them apart."""
    people = {
        "superuser": get_user_model().objects.create_superuser("root", password=PASSWORD),
        "owner": make_user("alice", is_staff=True),
        "editor": make_user("bob", is_staff=True),
        "operator": make_user("olga", is_staff=True),
        "reader": make_user("rita", is_staff=True),
        "outsider": make_user("charlie", is_staff=True),
    }
    for name, role in [
        ("owner", Role.ADMIN),
        ("editor", Role.EDITOR),
        ("operator", Role.OPERATOR),
        ("reader", Role.READER),
    ]:
        Membership.objects.create(project=project, user=people[name], role=role)
    Membership.objects.create(project=other_project, user=people["outsider"], role=Role.ADMIN)
    return people


@pytest.fixture
def api():
    def client_for(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path):
    """Start real `celery worker` processes on the test database: ``start(**env)``.

    Each call starts one more (e.g. after killing the first); all are stopped at teardown,
    before the database is flushed.
    """
    started: list[WorkerProcess] = []

    def start(**env) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started) + 1}.log"
        worker = WorkerProcess(log, {key: str(value) for key, value in env.items()})
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def sandbox_sessions():
    """Sandbox children a test watches (append their pid: each leads its own session).

    While the test runs, this process adopts orphans, so a child outliving its worker can be
    inspected and reaped; at teardown whatever is left of each session is killed and reaped.
    """
    sessions: list[int] = []
    with adopting_orphans():
        yield sessions
        for sid in sessions:
            end_session(sid)


@pytest.fixture
def make_scenario(project, cast):
    """A scenario of the SALES project, run as the project owner, with the given steps."""

    def make(name="Nightly", steps=(), **fields):
        fields.setdefault("run_as", cast["owner"])
        scenario = Scenario.objects.create(project=project, name=name, **fields)
        for position, step in enumerate(steps):
            Step.objects.create(scenario=scenario, position=position, **step)
        return scenario

    return make


@pytest.fixture
def no_dispatch(monkeypatch):
    """Runs stay queued until the test executes them in-process."""
    sent = []
    monkeypatch.setattr("apps.runs.services.run_dispatch", lambda run_id, **_: sent.append(run_id))
    monkeypatch.setattr(
        "apps.runs.services.runs_dispatch_many", lambda runs: sent.extend(r.pk for r in runs)
    )
    return sent


def pytest_collection_modifyitems(config, items):
    """Browser tests last: Playwright keeps an event loop in the main thread for the rest of
    the session, and async_to_sync refuses to run beside it."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
