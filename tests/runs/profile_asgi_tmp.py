"""Temporary: CPU per run list request, sync test client vs the ASGI path."""
import os
import time

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from apps.accounts.services import token_create
from apps.runs.models import Run


@pytest.mark.django_db(transaction=True)
def test_profile(make_scenario, cast, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": None, "user": None}}
    scenario = make_scenario()
    Run.objects.bulk_create(
        Run(scenario=scenario, project=scenario.project, number=n, status="success",
            started_by=cast["operator"] if n % 4 == 0 else None, run_as=cast["owner"])
        for n in range(1, 301)
    )
    _, key = token_create(user=cast["reader"], name="p")
    url = f"/api/v1/projects/{scenario.project.key}/runs/"
    n = int(os.environ.get("N", 300))
    client = Client(HTTP_AUTHORIZATION=f"Token {key}", HTTP_HOST="127.0.0.1")
    aclient = AsyncClient()
    hdrs = {"Authorization": f"Token {key}"}

    async def many(k):
        for i in range(k):
            r = await aclient.get(url, {"status": "success"} if i % 2 else None, headers=hdrs, SERVER_NAME="127.0.0.1")
            assert r.status_code == 200, r.content[:300]

    for label, fn in [("sync", lambda k: [client.get(url, {"status": "success"} if i % 2 else None) for i in range(k)]),
                      ("asgi", async_to_sync(many))] * 2:
        fn(30)
        c0, t0 = time.process_time(), time.perf_counter()
        fn(n)
        c1, t1 = time.process_time(), time.perf_counter()
        print(f"\n{label}: CPU {1000*(c1-c0)/n:.2f} ms/req, wall {1000*(t1-t0)/n:.2f} ms/req")
