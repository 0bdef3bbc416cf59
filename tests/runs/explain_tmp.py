from __future__ import annotations
import pytest
from apps.runs.services import run_start, _ended_run
from apps.triggers.models import Trigger
pytestmark = [pytest.mark.django_db(transaction=True)]

def test_flags(make_scenario, no_dispatch):
    a = make_scenario(name="A")
    b = make_scenario(name="B")
    c = make_scenario(name="C")
    Trigger.objects.create(scenario=c, name="after a", kind="after_scenario", params={"scenario": a.pk, "outcomes": ["success"]})
    ra = run_start(scenario=a).run
    rb = run_start(scenario=b).run
    print(_ended_run(ra.pk).followers, _ended_run(rb.pk).followers)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    with CaptureQueriesContext(connection) as q:
        _ended_run(ra.pk)
    print(q.captured_queries[0]["sql"])
