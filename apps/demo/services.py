"""Seeding the demo project that `make run` sets up (issue #7): what it holds is in
apps/demo/definitions.py, how re-seeding respects the user's changes in apps/demo/seeder.py."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.demo import seed_analysis, seed_flow, seed_scenarios
from apps.demo.seeder import Seeder, SeedReport


@transaction.atomic
def demo_seed(*, owner) -> SeedReport:
    """Create what was never seeded of the demo project, owned by ``owner`` (a superuser)."""
    if not owner.is_superuser:
        raise ValidationError({"owner": f"{owner} is not a superuser (see ensure_admin)."})
    seeder = Seeder(owner)
    seed_flow.seed(seeder)
    seed_analysis.seed(seeder)
    seed_scenarios.seed(seeder)
    return seeder.report
