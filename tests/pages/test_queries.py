"""The dashboard, scenario and monitoring pages cost a fixed number of queries: five times
the scenarios, triggers and runs cost no more than one (no N+1)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.triggers.models import Trigger
from apps.triggers.services import trigger_save

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]
# Session, user, profile, the project, the memberships behind the permission checks, and
# the page's own reads; measured, with a little room.
MAX_QUERIES = 14


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("page", ["dashboard", "monitor", "scenario"])
def test_page_queries_do_not_grow_with_the_data(
    page, stage, cast, client_for, django_assert_max_num_queries
):
    first = stage("A")
    client = client_for(cast["reader"])
    url = {
        "dashboard": reverse("project-dashboard", args=["SALES"]),
        "monitor": reverse("monitor"),
        "scenario": reverse("scenario", args=["SALES", first.pk]),
    }[page]
    few = queries(client, url)
    assert few <= MAX_QUERIES, few
    for name in "BCDE":
        scenario = stage(name)
        hourly = {"schedule": "hourly", "minute": 5}
        trigger_save(
            Trigger(scenario=first, name=f"every {name}", kind="time", params=hourly),
            user=cast["owner"],
        )
    with django_assert_max_num_queries(few):
        client.get(url)
    assert scenario.finished  # five scenarios, 20 runs, six triggers on the first
