"""The trigger-kind registry: key → class; gates (license feature, profile) in one place."""

from __future__ import annotations

from functools import cache

from django.utils.module_loading import import_string

from apps.triggers.kinds.base import Evaluation, TriggerKind

TRIGGER_KINDS = {
    "time": "apps.triggers.kinds.time.TimeTrigger",
    "dataset_change": "apps.triggers.kinds.dataset_change.DatasetChange",
    "sql_change": "apps.triggers.kinds.sql_change.SqlChange",
    "after_scenario": "apps.triggers.kinds.after_scenario.AfterScenario",
    "custom_python": "apps.triggers.kinds.custom_python.CustomPython",
}

__all__ = ["TRIGGER_KINDS", "Evaluation", "TriggerKind", "get_kind", "kind_gate"]


@cache
def get_kind(key: str) -> type[TriggerKind]:
    if key not in TRIGGER_KINDS:
        raise KeyError(key)
    return import_string(TRIGGER_KINDS[key])


def kind_gate(key: str, user=None):
    """May this installation (and ``user``, when given) use this kind? A license Gate."""
    from apps.accounts.license import gate

    kind = get_kind(key)
    return gate(kind.feature, profile=kind.profile if user is not None else None, user=user)
