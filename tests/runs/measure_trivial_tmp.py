"""Temporary: CPU per trivial run in process (not collected)."""
from __future__ import annotations

import os
import threading
import time

import pytest
from django.db.backends import utils as db_utils

from apps.runs.events import publisher
from apps.runs.runner import run_execute
from apps.runs.services import run_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]
N = 150


def cpu():
    t = os.times()
    return t.user + t.system


def test_measure(make_scenario, no_dispatch, monkeypatch):
    scenarios = [
        make_scenario(name=f"T{n}", steps=[{"name": "set", "type": "set_variables",
                                            "params": {"variables": {"x": 1}}}])
        for n in range(N)
    ]
    for s in scenarios[:10]:
        run_execute(run_start(scenario=s).run.pk)
    publisher.flush()
    counts = {}
    orig_exec, orig_many = db_utils.CursorWrapper._execute, db_utils.CursorWrapper._executemany

    def _execute(self, sql, params, *ignored):
        counts[threading.current_thread().name[:4]] = counts.get(threading.current_thread().name[:4], 0) + 1
        return orig_exec(self, sql, params, *ignored)

    monkeypatch.setattr(db_utils.CursorWrapper, "_execute", _execute)
    for label in ("with layer", "no layer"):
        if label == "no layer":
            monkeypatch.setattr("apps.runs.events._send", lambda g, m: None)
        ids = [run_start(scenario=s).run.pk for s in scenarios[10:]]
        counts.clear()
        c0, t0 = cpu(), time.perf_counter()
        for pk in ids:
            run_execute(pk)
        publisher.flush()
        c1, t1 = cpu(), time.perf_counter()
        print(f"\n{label}: cpu ms/run {(c1 - c0) * 1000 / len(ids):.2f} "
              f"wall ms/run {(t1 - t0) * 1000 / len(ids):.2f} statements/run by thread "
              f"{ {k: round(v / len(ids), 2) for k, v in counts.items()} }")
        from apps.runs.models import Run
        Run.objects.filter(pk__in=ids).delete()
