"""The Django side of bench/beat.py: `python -m bench.beat_driver <command> [options]`.

Each command runs in a process of its own on the benchmark's PostgreSQL (the orchestrator
has no Django) and prints one JSON line last. Commands: seed, arm, filechange, edit,
collect, stock-arm.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import django

SPREAD = int(os.environ.get("BENCH_BEAT_SPREAD", 10_000))
BURST = int(os.environ.get("BENCH_BEAT_BURST", 10_000))
STOCK_TASK = "bench.stock_noop"  # never registered: beat sends it by name, nobody runs it
HOURLY = {"schedule": "hourly", "timezone": "UTC"}


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def sleep_until(epoch: float) -> None:
    time.sleep(max(0.0, epoch - time.time()))


def next_boundary(after: float, margin: float) -> float:
    """The first minute boundary at least ``margin`` seconds after ``after``."""
    return (int(after + margin) // 60 + 1) * 60


# -- seed -------------------------------------------------------------------------------------


def seed(options) -> dict:
    """20,000 one-step scenarios (10,000 spread + 10,000 burst), their time triggers, one
    watched file dataset with its trigger, and the stock PeriodicTask rows (disabled)."""
    from django.contrib.auth import get_user_model
    from django_celery_beat.models import CrontabSchedule

    from apps.projects.services import project_create

    user = get_user_model().objects.create_superuser("bench", password=os.urandom(12).hex())
    project = project_create(user=user, key="BENCH", name="beat")
    _install_license()
    crons = {
        minute: CrontabSchedule.objects.get_or_create(
            minute=str(minute), hour="*", day_of_week="*", day_of_month="*",
            month_of_year="*", timezone="UTC",
        )[0]
        for minute in range(60)
    }  # fmt: skip
    spread = _scenarios(project, user, "spread", SPREAD)
    burst = _scenarios(project, user, "burst", BURST)
    _time_triggers(spread, crons, lambda i: i % 60)
    _time_triggers(burst, crons, lambda i: 0)  # the minute is set by `arm`
    _stock_tasks(crons)
    watched = _watched_trigger(project, user, Path(options.root))
    return {"user": user.pk, "watched": watched}


def _install_license() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from apps.accounts import license as licensing

    raw = base64.b64decode(os.environ["BENCH_LICENSE_PRIVATE_KEY"])
    key = Ed25519PrivateKey.from_private_bytes(raw)
    document = licensing.issue(
        key, edition="team", licensee="bench", expires_at=date(2099, 1, 1), features=[]
    )
    licensing.license_install(document)


def _scenarios(project, user, prefix: str, count: int) -> list:
    from apps.scenarios.models import Scenario, Step

    # One scenario per trigger: the queue policy (skip) never refuses a slot's run.
    scenarios = Scenario.objects.bulk_create(
        [Scenario(project=project, name=f"{prefix}-{i:05d}", run_as=user) for i in range(count)],
        batch_size=2000,
    )
    Step.objects.bulk_create(
        [
            Step(scenario=s, name="set", type="set_variables", params={"variables": {"x": 1}})
            for s in scenarios
        ],
        batch_size=2000,
    )
    return scenarios


def _time_triggers(scenarios: list, crons: dict, minute_of) -> None:
    from apps.triggers.models import Trigger

    Trigger.objects.bulk_create(
        [
            Trigger(
                scenario=s,
                name="hourly",
                kind="time",
                params={**HOURLY, "minute": minute_of(i)},
                crontab=crons[minute_of(i)],
            )
            for i, s in enumerate(scenarios)
        ],
        batch_size=2000,
    )  # fmt: skip  (next_fire_at stays empty until `arm`: nothing fires before)


def _stock_tasks(crons: dict) -> None:
    from django_celery_beat.models import PeriodicTask

    rows = [
        PeriodicTask(
            name=f"stock-spread-{i:05d}", task=STOCK_TASK, crontab=crons[i % 60],
            kwargs=json.dumps({"t": i, "m": i % 60}), enabled=False,
        )
        for i in range(SPREAD)
    ] + [
        PeriodicTask(
            name=f"stock-burst-{i:05d}", task=STOCK_TASK, crontab=crons[0],
            kwargs=json.dumps({"t": i, "b": 1}), enabled=False,
        )
        for i in range(BURST)
    ]  # fmt: skip
    PeriodicTask.objects.bulk_create(rows, batch_size=2000)


def _watched_trigger(project, user, root: Path) -> int:
    """A dataset-change trigger on a folder of a filesystem connection: 1 s, no grace."""
    from apps.flow.models import Connection, Dataset
    from apps.scenarios.models import Scenario, Step
    from apps.triggers.models import Trigger
    from apps.triggers.services import trigger_save

    (root / "watched").mkdir(parents=True)
    (root / "watched" / "part-0.csv").write_text("a,b\n1,2\n")
    files = Connection.objects.create(name="files", kind="filesystem", config={"root": str(root)})
    Dataset.objects.create(project=project, name="watched", connection=files, path="watched")
    scenario = Scenario.objects.create(project=project, name="on-file", run_as=user)
    Step.objects.create(
        scenario=scenario, name="set", type="set_variables", params={"variables": {"x": 1}}
    )
    trigger = Trigger(
        scenario=scenario, name="watch", kind="dataset_change",
        params={"datasets": ["watched"]}, check_interval_seconds=1, grace_seconds=0,
    )  # fmt: skip
    return trigger_save(trigger, user=user).pk


# -- arm: the schedule of the run -------------------------------------------------------------


def arm(options) -> dict:
    """Spread: each hourly trigger's next slot from now. Burst: all 10,000 at T0 + 2 min.
    Written in bulk (setup); `next_fire` is the kind's own, as `trigger_save` computes it."""
    from django_celery_beat.models import CrontabSchedule

    from apps.triggers.kinds import get_kind
    from apps.triggers.models import Trigger

    now = time.time()
    t0 = next_boundary(now, options.lead)
    burst_slot = t0 + 120
    kind, spread = get_kind("time")(), Trigger.objects.filter(scenario__name__startswith="spread")
    for minute in range(60):
        sample = Trigger(params={**HOURLY, "minute": minute})
        spread.filter(params__minute=minute).update(next_fire_at=kind.next_fire(sample, at(now)))
    burst_minute = at(burst_slot).minute
    cron = CrontabSchedule.objects.get(minute=str(burst_minute), hour="*", timezone="UTC")
    Trigger.objects.filter(scenario__name__startswith="burst").update(
        params={**HOURLY, "minute": burst_minute}, crontab=cron, next_fire_at=at(burst_slot)
    )
    far = (burst_minute + 30) % 60  # not due in the window until the edit moves it
    next_minute = (burst_minute + 1) % 60
    return {
        "t0": t0,
        "burst_slot": burst_slot,
        "edit": spread.filter(params__minute=far).order_by("pk").values_list("pk", flat=True)[0],
        "disable": spread.filter(params__minute=next_minute).order_by("pk")[0].pk,
        "next_minute": next_minute,
    }


# -- file change → first step running ---------------------------------------------------------


def filechange(options) -> dict:
    """Write a new file into the watched folder; time until the run's first step runs.
    Samples avoid the seconds around minute boundaries (the time slots' own work)."""
    from apps.runs.models import FINAL_STATUSES, Run, StepRun
    from apps.triggers.models import Trigger

    trigger = Trigger.objects.get(pk=options.trigger)
    _wait(lambda: "seen" in Trigger.objects.get(pk=trigger.pk).state, 30)  # the baseline
    folder, runs = Path(options.root) / "watched", Run.objects.filter(scenario=trigger.scenario)
    samples, queued, last = [], [], runs.order_by("-pk").values_list("pk", flat=True).first() or 0
    while len(samples) < options.samples and time.time() < options.until:
        second = time.time() % 60
        if second < 12 or second > 57:  # a slot's runs are being created and executed
            sleep_until(time.time() - second + (72 if second > 57 else 12))
            continue
        time.sleep(random.uniform(0, 1))  # a random phase against the 1 s ticks
        written = time.time()
        (folder / f"part-{len(samples) + 1}.csv").write_text(f"a,b\n{written},2\n")
        started = StepRun.objects.filter(run__scenario=trigger.scenario, run__pk__gt=last)
        started = started.exclude(started_at=None).values_list(
            "run_id", "started_at", "run__queued_at"
        )
        step = _wait(started.first, 30)
        if step is None:
            break
        last = step[0]
        samples.append(step[1].timestamp() - written)
        queued.append(step[2].timestamp() - written)
        _wait(runs.filter(pk=last, status__in=FINAL_STATUSES).exists, 30)
    return {"samples": samples, "queued": queued, "interval": 1.0}


def _wait(predicate, bound: float, poll: float = 0.02):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(poll)
    return None


# -- edit during the burst --------------------------------------------------------------------


def edit(options) -> dict:
    """At ``--at``: move one trigger to the next minute and disable another, through the
    one service that saves triggers (as the admin and the API do)."""
    from apps.triggers.models import Trigger
    from apps.triggers.services import trigger_save

    moved = Trigger.objects.select_related("scenario").get(pk=options.trigger)
    disabled = Trigger.objects.select_related("scenario").get(pk=options.disable)
    sleep_until(options.at)
    edited_at = time.time()
    moved.params = {**moved.params, "minute": options.minute}
    trigger_save(moved, user=moved.scenario.run_as)
    saved_at = time.time()
    disabled.enabled = False
    trigger_save(disabled, user=disabled.scenario.run_as)
    return {
        "edited_at": edited_at,
        "save_s": saved_at - edited_at,
        "disable_s": time.time() - saved_at,
        "next_fire_at": moved.next_fire_at.timestamp(),
    }


# -- collect ----------------------------------------------------------------------------------


def collect(options) -> dict:
    """Every time-triggered run of the window: its slot, its lag, its trigger's set."""
    from django.db.models import Count

    from apps.runs.models import Run
    from apps.triggers.models import Trigger, TriggerEvaluation

    rows = Run.objects.filter(trigger_kind="time").values_list(
        "scenario__name", "scenario_id", "trigger_params__slot", "queued_at"
    )
    runs = [
        (name.split("-")[0], scenario, datetime.fromisoformat(slot).timestamp(), queued.timestamp())
        for name, scenario, slot, queued in rows
    ]
    duplicates = (
        Run.objects.filter(trigger_kind="time")
        .values("scenario_id", "trigger_params__slot")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    missed = TriggerEvaluation.objects.filter(result="skipped", message__startswith="Missed")
    expected = dict(
        Trigger.objects.filter(scenario__name__startswith="spread", enabled=True)
        .values_list("params__minute")
        .annotate(n=Count("pk"))
    )
    moved = Trigger.objects.get(pk=options.edit).scenario_id
    return {
        "runs": runs,
        "duplicates": duplicates,
        "missed": missed.count(),
        "expected_per_minute": expected,
        "edited_scenario": moved,
        "disabled_runs": Run.objects.filter(scenario__triggers__pk=options.disable).count(),
        "fire_floor_s": _fire_floor(),
    }


def _fire_floor() -> float:
    """One bulk_create of 10,000 TriggerFire rows (a slot far in the past), then removed."""
    from apps.triggers.models import Trigger, TriggerFire

    triggers = list(Trigger.objects.filter(scenario__name__startswith="burst").only("pk"))
    slot = datetime(2000, 1, 1, tzinfo=UTC)
    start = time.perf_counter()
    TriggerFire.objects.bulk_create([TriggerFire(trigger=t, slot=slot) for t in triggers])
    elapsed = time.perf_counter() - start
    TriggerFire.objects.filter(slot=slot).delete()
    return elapsed


# -- stock django-celery-beat -----------------------------------------------------------------


def stock_arm(options) -> dict:
    """Enable one set of PeriodicTask rows (and nothing else), as if just saved: stock beat
    then fires each at its first slot after now, like a freshly edited entry."""
    from django.utils import timezone
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    now = timezone.now()
    PeriodicTask.objects.update(enabled=False)  # Cadenza's own system tasks too
    chosen = PeriodicTask.objects.filter(name__startswith=f"stock-{options.set}-")
    changes = {"enabled": True, "last_run_at": None, "total_run_count": 0, "date_changed": now}
    if options.minute is not None:
        changes["crontab"] = CrontabSchedule.objects.get(
            minute=str(options.minute), hour="*", timezone="UTC"
        )
    return {"enabled": chosen.update(**changes)}


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("seed").add_argument("--root", required=True)
    commands.add_parser("arm").add_argument("--lead", type=float, default=25)
    sub = commands.add_parser("filechange")
    sub.add_argument("--trigger", type=int, required=True)
    sub.add_argument("--root", required=True)
    sub.add_argument("--samples", type=int, default=20)
    sub.add_argument("--until", type=float, required=True)
    sub = commands.add_parser("edit")
    for name, kind in (("at", float), ("trigger", int), ("minute", int), ("disable", int)):
        sub.add_argument(f"--{name}", type=kind, required=True)
    sub = commands.add_parser("collect")
    sub.add_argument("--edit", type=int, required=True)
    sub.add_argument("--disable", type=int, required=True)
    sub = commands.add_parser("stock-arm")
    sub.add_argument("--set", choices=("spread", "burst"), required=True)
    sub.add_argument("--minute", type=int)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    handler = {"seed": seed, "arm": arm, "filechange": filechange, "edit": edit,
               "collect": collect, "stock-arm": stock_arm}[options.command]  # fmt: skip
    print(json.dumps(handler(options), default=str), flush=True)


if __name__ == "__main__":
    sys.exit(main())
