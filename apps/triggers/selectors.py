"""Reads about triggers for the admin and the API: the kinds catalogue with each kind's gate
for a user, the params schemas under distinct names, and a time trigger's beat schedule."""

from __future__ import annotations

from functools import cache

from django.db.models import CharField, Exists, OuterRef
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from rest_framework import serializers

from apps.scenarios.steps.catalogue import describe_params
from apps.triggers.kinds import TRIGGER_KINDS, get_kind, kind_gate
from apps.triggers.models import Trigger, TriggerEvaluation

CRON_ORDER = ["minute", "hour", "day_of_month", "month_of_year", "day_of_week"]


def kind_choices() -> list[tuple[str, str]]:
    return [(key, get_kind(key).label) for key in TRIGGER_KINDS]


def writes_code(*kinds: str | None) -> bool:
    """Does writing a trigger of one of these kinds (before or after an edit) mean code?"""
    return any(key in TRIGGER_KINDS and get_kind(key).profile == "coder" for key in kinds)


def kind_catalogue(user) -> list[dict]:
    """Every kind, with whether ``user`` may use it here and, if not, why (license, profile)."""
    catalogue = []
    for key in TRIGGER_KINDS:
        kind, gate = get_kind(key), kind_gate(key, user)
        catalogue.append(
            {
                "key": key,
                "label": kind.label,
                "feature": kind.feature,
                "profile": kind.profile,
                "polled": kind.polled,
                "params": describe_params(kind.Params),
                "available": gate.allowed,
                "reason": gate.reason,
            }
        )
    return catalogue


@cache
def params_serializers() -> dict[str, type[serializers.Serializer]]:
    """Each kind's Params under a unique name (``SqlChangeTriggerParams``…), for OpenAPI."""
    named = {}
    for key in TRIGGER_KINDS:
        kind = get_kind(key)
        name = "".join(part.capitalize() for part in key.split("_")) + "TriggerParams"
        doc = f"Params of a `{key}` trigger ({kind.label})."
        named[key] = type(name, (kind.Params,), {"__module__": __name__, "__doc__": doc})
    return named


def params_summary() -> str:
    """One line per kind naming its params, for form help texts."""
    lines = []
    for key in TRIGGER_KINDS:
        names = ", ".join(field["name"] for field in describe_params(get_kind(key).Params))
        lines.append(f"{key}: {names}")
    return "; ".join(lines)


def trigger_schedule(trigger: Trigger) -> dict | None:
    """The beat schedule row of a time trigger: a crontab line and its zone, or an interval."""
    if trigger.crontab_id:
        crontab = trigger.crontab
        line = " ".join(str(getattr(crontab, name)) for name in CRON_ORDER)
        return {"crontab": line, "timezone": str(crontab.timezone), "every_minutes": None}
    if trigger.interval_id:
        return {"crontab": None, "timezone": None, "every_minutes": trigger.interval.every}
    return None


def trigger_evaluations(trigger: Trigger):
    """Why it did or did not fire, newest first."""
    return TriggerEvaluation.objects.filter(trigger=trigger).select_related("run")


def after_scenario_watchers() -> Exists:
    """Whether an enabled after-scenario trigger watches the outer run's scenario, as an
    annotation: a run's end reads it with the run, and calls ``triggers_after_run`` (which
    applies every other condition) only when there is one. ``params.scenario`` is compared
    as text, the one form PostgreSQL and SQLite agree on."""
    watched = Cast(KT("params__scenario"), CharField())
    return Exists(
        Trigger.objects.filter(kind="after_scenario", enabled=True)
        .alias(watched=watched)
        .filter(watched=Cast(OuterRef("scenario_id"), CharField()))
    )
