from __future__ import annotations

import sqlite3

import psycopg
from rest_framework import serializers

from apps.triggers.kinds.base import Evaluation, TriggerKind, changed_with_grace, fingerprint


def dataset_fingerprint(dataset) -> object:
    """Files: names, sizes and mtimes. PostgreSQL: the table's write counters. SQLite: a count."""
    from apps.flow import storage

    if not dataset.connection.is_sql:
        return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in storage.files_of(dataset)]
    with storage.sql_connect(dataset.connection) as db:
        cursor = db.cursor()
        if dataset.connection.kind == "postgresql":
            cursor.execute(
                "SELECT n_tup_ins, n_tup_upd, n_tup_del, n_live_tup FROM "
                "pg_stat_user_tables WHERE relname = %s",
                [dataset.table_name],
            )
        else:
            cursor.execute(f"SELECT count(*) FROM {storage.quote(dataset.table_name)}")
        return cursor.fetchall()


class DatasetChange(TriggerKind):
    key = "dataset_change"
    label = "Dataset change"
    feature = "trigger.dataset_change"

    class Params(serializers.Serializer):
        datasets = serializers.ListField(child=serializers.CharField(), min_length=1)
        all_changed = serializers.BooleanField(
            default=False, help_text="Fire only when every one changed."
        )

    def __init__(self):
        self._prints: dict[int, str] = {}  # dataset id → fingerprint, read once per tick
        self._wholes: dict[tuple, str] = {}
        self._datasets: dict[tuple, object] = {}  # (project id, name) → dataset
        self._usable: dict[tuple, bool] = {}  # (connection id, run-as user id) → may read it

    def refusal(self, params: dict, user, project_id: int | None) -> str | None:
        from apps.flow.models import Dataset

        watched = Dataset.objects.filter(project_id=project_id, name__in=params["datasets"])
        for dataset in watched.select_related("connection").order_by("name"):
            if not dataset.connection.usable_by(user):
                return (
                    f"datasets: You may not use the connection {dataset.connection.name} "
                    f"(of {dataset.name})."
                )
        return None  # a dataset not made yet is an error when evaluated, as ever

    def prefetch(self, triggers):
        from apps.flow.models import Connection, Dataset
        from apps.scenarios.models import Scenario
        from apps.system.shared_resources import usable_pairs

        names = {name for trigger in triggers for name in trigger.params["datasets"]}
        # A tick's claim brings each trigger's project and run-as user; others are looked up.
        project_of, run_as_of = {}, {}
        for t in triggers:
            if hasattr(t, "scenario_project_id"):
                project_of[t.scenario_id] = t.scenario_project_id
                run_as_of[t.scenario_id] = t.scenario_run_as_id
        unknown = {t.scenario_id for t in triggers} - project_of.keys()
        for pk, project, run_as, updated_by in Scenario.objects.filter(pk__in=unknown).values_list(
            "pk", "project_id", "run_as_id", "updated_by_id"
        ):
            project_of[pk], run_as_of[pk] = project, run_as or updated_by
        wanted = {
            (project_of.get(t.scenario_id), name) for t in triggers for name in t.params["datasets"]
        }
        if wanted - self._datasets.keys():  # loaded once per tick, for all its batches
            self._datasets.update(
                ((d.project_id, d.name), d)
                for d in Dataset.objects.select_related("connection").filter(
                    project_id__in={project for project, _ in wanted}, name__in=names
                )
            )
        found = self._datasets
        for trigger in triggers:
            project = project_of.get(trigger.scenario_id)
            keys = [(project, name) for name in trigger.params["datasets"]]
            trigger.watched = [found[key] for key in keys if key in found]
            trigger.run_as_id = run_as_of.get(trigger.scenario_id)
        # Watching reads the data (row counts, change times): only as someone who may use it.
        pairs = {(d.connection_id, t.run_as_id) for t in triggers for d in t.watched}
        if pairs - self._usable.keys():
            new = pairs - self._usable.keys()
            usable = usable_pairs(Connection, new)
            self._usable.update((pair, pair in usable) for pair in new)

    def _print(self, dataset) -> str:
        if dataset.pk not in self._prints:
            self._prints[dataset.pk] = fingerprint(dataset_fingerprint(dataset))
        return self._prints[dataset.pk]

    def evaluate(self, trigger, now):
        if not hasattr(trigger, "watched"):
            self.prefetch([trigger])
        datasets = trigger.watched
        if len(datasets) != len(trigger.params["datasets"]):
            return Evaluation("error", "A watched dataset no longer exists.")
        for dataset in datasets:
            if not self._usable[dataset.connection_id, trigger.run_as_id]:
                return Evaluation(
                    "error",
                    f"The scenario's run-as user may not use the connection "
                    f"{dataset.connection.name} of {dataset.name}.",
                )
        try:
            prints = {d.name: self._print(d) for d in datasets}
        except (OSError, psycopg.Error, sqlite3.Error) as error:
            return Evaluation("error", f"Cannot read a watched dataset: {error}")
        fired_before = trigger.state.get(
            "fired_each", prints if "seen" not in trigger.state else {}
        )
        changed = sorted(name for name, value in prints.items() if fired_before.get(name) != value)
        if trigger.params["all_changed"] and len(changed) < len(prints):
            return Evaluation(
                "unchanged",
                f"changed so far: {', '.join(changed) or 'none'}",
                state={**trigger.state, "fired_each": fired_before},
            )
        key = tuple(prints.items())  # many triggers watch the same datasets: hash once
        if key not in self._wholes:
            self._wholes[key] = fingerprint(prints)
        result, state = changed_with_grace(
            trigger.state, self._wholes[key], now, trigger.grace_seconds
        )
        if result == "fired":
            state["fired_each"] = prints
            return Evaluation(
                "fired", f"changed: {', '.join(changed)}", {"changed_datasets": changed}, state
            )
        state.setdefault("fired_each", fired_before)
        return Evaluation(result, "", state=state)
