"""The bookkeeping of seeding: each demo object is created at most once per installation.

Every demo object has a stable key (``dataset:orders``), recorded in DemoSeed when it is
created, so re-seeding creates only objects never seeded before: what the user edited is
never overwritten, and what they deleted is not brought back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from apps.demo import definitions as demo
from apps.demo.models import DemoSeed
from apps.flow.models import Connection, Dataset
from apps.projects.models import Project
from apps.scenarios.models import Scenario


@dataclass
class SeedReport:
    created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # needs an object the user deleted
    notes: list[str] = field(default_factory=list)


class Missing(Exception):
    """A demo object this one needs is gone (the user deleted it): leave this one out."""


def validated_save(instance, errors: dict[str, str] | None = None):
    """Save after the checks the API and admin make (``errors``) and the model's own."""
    if errors:
        raise ValidationError(errors)
    instance.full_clean()
    instance.save()
    return instance


class Seeder:
    def __init__(self, owner):
        self.owner = owner
        self.done = set(DemoSeed.objects.values_list("key", flat=True))
        self.report = SeedReport()

    def once(self, key: str, find: Callable[[], object], create: Callable[[], object]) -> None:
        """Create unless seeded before; an object found already there is adopted as is."""
        if key in self.done:
            return
        try:
            if not find():
                create()
                self.report.created.append(key)
        except Missing as missing:
            self.report.skipped.append(f"{key} (needs {missing})")
            return  # not recorded: created on a later seeding if what it needs is back
        DemoSeed.objects.create(key=key)
        self.done.add(key)

    # -- what demo objects need, or Missing ------------------------------------------------

    def project(self) -> Project:
        key = demo.PROJECT["key"]
        return _require(Project.objects.filter(key=key), f"project {key}")

    def connection(self) -> Connection:
        return _require(
            Connection.objects.filter(name=demo.CONNECTION, kind=Connection.Kind.FILESYSTEM),
            f"a filesystem connection named {demo.CONNECTION}",
        )

    def dataset(self, name: str) -> Dataset:
        return _require(Dataset.objects.filter(project=self.project(), name=name), name)

    def scenario(self, name: str) -> Scenario:
        return _require(Scenario.objects.filter(project=self.project(), name=name), name)

    def finder(self, model, **lookup) -> Callable[[], object]:
        """Find an object of the demo project (Missing when the project itself is gone)."""
        return lambda: model.objects.filter(project=self.project(), **lookup).first()


def _require(queryset, what: str):
    found = queryset.first()
    if found is None:
        raise Missing(what)
    return found
