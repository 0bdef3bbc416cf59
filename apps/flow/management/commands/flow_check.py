from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.flow.models import Dataset
from apps.flow.validation import dataset_errors


class Command(BaseCommand):
    help = (
        "Check every saved dataset against today's rules, e.g. datasets saved before a rule "
        "existed that point at another project's file or table. Exits 1 if any fails."
    )

    def handle(self, *args, **options):
        failing = 0
        datasets = Dataset.objects.select_related("project", "connection").order_by("pk")
        for dataset in datasets.iterator():
            for field, message in dataset_errors(dataset).items():
                failing += 1
                self.stdout.write(f"{dataset.project.key}/{dataset.name}: {field}: {message}")
        if failing:
            raise CommandError(f"{failing} problem(s): fix (or delete) these datasets.")
        self.stdout.write("Every dataset passes.")
