"""Scenario writes that every interface (API, admin) shares: who a scenario runs as."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from apps.scenarios.models import Scenario

UNCHANGED = object()  # the editor did not touch run_as


def scenario_run_as(*, user, current, requested=UNCHANGED):
    """Whom a scenario runs as after ``user`` edits it.

    Only a superuser may name someone else. Anyone else's edit makes the scenario run as
    them (``None``: the last editor), so nobody borrows the rights of whoever set it up.
    """
    if user.is_superuser:
        return current if requested is UNCHANGED else requested
    if requested not in (UNCHANGED, None, user):
        raise ValidationError(
            {"run_as": "Only a superuser may make a scenario run as someone else."}
        )
    chosen = current if requested is UNCHANGED else requested
    return user if chosen == user else None


def scenario_touch(scenario: Scenario, *, user) -> None:
    """Record an edit of the scenario or of its steps by ``user`` (see scenario_run_as)."""
    scenario.updated_by = user
    scenario.run_as = scenario_run_as(user=user, current=scenario.run_as)
    scenario.save(update_fields=["updated_by", "run_as", "updated_at"])


def scenario_set_active(scenario: Scenario, *, active: bool) -> Scenario:
    """Turn the scenario's automatic triggers on or off (the admin's activate action, the
    scenario page's switch). Not an edit of its definition: who it runs as does not change."""
    Scenario.objects.filter(pk=scenario.pk).update(active=active)
    scenario.active = active
    return scenario
