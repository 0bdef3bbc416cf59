"""Fuzzing every API operation from the project's own OpenAPI schema with Schemathesis.

Requests go to the real WSGI application (middleware, token authentication, DRF) with
``Authorization: Token <key>``, against the populated SALES project: as its owner, who gets
past the permission checks into validation and the services, and, with fewer cases, as its
reader (refused every write) and as the outsider (a member of HR only: 404 on SALES).
Each operation gets cases of three kinds: bodies and query strings that fit the schema and
ones that do not, on the fixture's real objects (path parameters pointing at them), and
schema-fitting cases with generated path parameters. Every case runs in a savepoint that is
rolled back, so each finds the project whole.

What must hold: no 5xx (``not_a_server_error``); every 4xx answers JSON that names a field
or gives a reason (``errors_name_a_field_or_reason``); and no answer shows a row of a
project the role is not a member of (``NOT_THEIRS``). Bounded and
deterministic: a fixed number of cases per operation and kind, derandomized, no example
database.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from apps.accounts.services import token_create
from tests.security.conftest import HR_MARK, SALES_MARK, World
from tests.security.routes import Route, openapi_schema
from tests.security.test_api_matrix import path_values

pytestmark = pytest.mark.timeout(300)

# Per operation and kind of case (so three times this per operation), for the owner; the
# lower roles, mostly refused at once, get fewer. Deeper runs:
# CADENZA_FUZZ_EXAMPLES=100 pytest tests/security/test_api_fuzz.py
EXAMPLES = int(os.environ.get("CADENZA_FUZZ_EXAMPLES", "5"))
ROLES = {"owner": EXAMPLES, "reader": max(1, EXAMPLES * 3 // 5),
         "outsider": max(1, EXAMPLES * 3 // 5)}  # fmt: skip
# The project whose rows each role may see (the marks of tests/security/conftest.py).
NOT_THEIRS = {"owner": HR_MARK, "reader": HR_MARK, "outsider": SALES_MARK}
SCHEMA = schemathesis.openapi.from_dict(copy.deepcopy(openapi_schema()))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


def names_a_field_or_reason(body) -> bool:
    """DRF's error shapes: {"detail": "why", …} or {"field": ["why", …], …} (nested for
    nested serializers and list items)."""
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return bool(body["detail"].strip())  # a reason (other keys may add to it: a log)
    if isinstance(body, str):
        return bool(body.strip())
    if isinstance(body, list):
        return bool(body) and all(names_a_field_or_reason(item) for item in body if item)
    if isinstance(body, dict):
        return bool(body) and all(
            isinstance(key, str) and key and names_a_field_or_reason(value)
            for key, value in body.items()
        )
    return False


@schemathesis.check
def errors_name_a_field_or_reason(ctx, response, case):
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"{response.status_code} is not JSON: {response.content[:200]!r}"
        ) from None
    if not isinstance(body, dict) or not names_a_field_or_reason(body):
        raise AssertionError(f"{response.status_code} names no field nor reason: {body!r}")
    return None


@pytest.fixture
def fuzzing(shared_world, db, no_dispatch, settings):
    """The WSGI application and no throttling (a fuzz is a runaway script by design). The
    WSGI handler would close the test's connection at each request's end, as Django's own
    test client prevents, so the same is done here."""
    from config.wsgi import application

    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {"anon": None, "user": None}
    settings.REST_FRAMEWORK = rest
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield shared_world, application
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def steered_path(world: World, operation) -> dict:
    route = Route(operation.method.upper(), operation.path)
    values = path_values(world, route)
    return {name: values[name] for name in route.params}


def call(case, world: World, application, key: str):
    world.restore_files()
    headers = {"Authorization": f"Token {key}"}
    with transaction.atomic():
        response = case.call(app=application, headers=headers)
        transaction.set_rollback(True)
    return response


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_fuzz_operation(fuzzing, operation, role):
    (world, cast), application = fuzzing
    key = world.token_key if role == "owner" else token_create(user=cast[role], name="fuzz")[1]
    examples = ROLES[role]
    steered = steered_path(world, operation)
    kinds = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=steered),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=steered),
        operation.as_strategy(GenerationMode.POSITIVE),
    )
    failures: list[str] = []
    statuses: Counter[int] = Counter()

    @hypothesis_settings(
        max_examples=3 * examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=kinds)
    def fuzz(case):
        response = call(case, world, application, key)
        statuses[response.status_code] += 1
        try:
            case.validate_response(
                response, checks=[not_a_server_error, errors_name_a_field_or_reason]
            )
            if NOT_THEIRS[role] in response.content.decode(errors="replace"):
                raise AssertionError(f"shows a row of a project {role} is not a member of")
        except Exception as error:  # collect them all: one run tells every bug
            failures.append(f"{case.as_curl_command()}\n  {str(error).strip()[:600]}")

    fuzz()
    assert sum(statuses.values()) >= examples, f"only {dict(statuses)} cases ran"
    assert not failures, "\n".join(failures)
