from __future__ import annotations

from rest_framework import serializers

from apps.reporters.transports.base import Message, Transport, TransportError
from apps.system.lazy import LazyModule

pd = LazyModule("pandas")
COLUMNS = [
    "delivered_at",
    "event",
    "project",
    "scenario",
    "run_id",
    "run_number",
    "outcome",
    "trigger",
    "duration",
    "subject",
    "run_url",
]


class AppendToDataset(Transport):
    """Append one row of run facts to a dataset (a run history anyone can chart or query)."""

    kind = "dataset"
    label = "Append to a dataset"

    class Config(serializers.Serializer):
        project = serializers.CharField(help_text="The project key of the dataset.")
        dataset = serializers.CharField()

    def send(self, message: Message) -> None:
        from django.utils import timezone

        from apps.flow import storage
        from apps.flow.models import Dataset

        dataset = (
            Dataset.objects.select_related("connection")
            .filter(project__key=self.config["project"], name=self.config["dataset"])
            .first()
        )
        if dataset is None:
            raise TransportError(
                f"No dataset {self.config['project']}.{self.config['dataset']}.", permanent=True
            )
        facts = {
            **message.facts,
            "subject": message.subject,
            "delivered_at": timezone.now().isoformat(),
        }
        row = pd.DataFrame(
            [[None if facts.get(c) is None else str(facts.get(c)) for c in COLUMNS]],
            columns=COLUMNS,
        )
        schema = [{"name": c, "type": "VARCHAR"} for c in COLUMNS]
        try:
            existing = storage.files_of(dataset) if not dataset.connection.is_sql else True
            frames = [*(_existing(dataset) if existing else []), row]
            storage.write_frames(dataset, schema, iter(frames))
        except storage.FlowError as error:
            raise TransportError(str(error), permanent=True) from None
        return None


def _existing(dataset) -> list[pd.DataFrame]:
    """The rows already there, as text (a missing SQL table simply means no rows yet)."""
    from apps.flow import storage

    try:
        _, frames = storage.read_frames(dataset)
        return [frame.astype("string").reindex(columns=COLUMNS) for frame in frames]
    except storage.FlowError:
        return []
