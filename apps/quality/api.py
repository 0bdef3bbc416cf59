"""REST API for metrics, checks and data-quality rules of a project's datasets, their history,
and computing them now.

Each is a flat resource of the project (``?dataset=`` filters a list; datasets are named by
name or id). Computing is a POST on the list, for one dataset, and runs in the request:
``metrics/compute/``, ``checks/run/`` and ``rules/verify/`` (editors; the answer holds the
values or outcomes; 400 with the reason when the data cannot be read). Python checks run
only in scenarios: a dataset that has one is refused by ``checks/run/``.
"""

from __future__ import annotations

from django.core.exceptions import NON_FIELD_ERRORS
from django.db import transaction
from django.db.models import Prefetch
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import exceptions, serializers
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.flow.access import require_usable
from apps.flow.api.datasets import FlowRequestError
from apps.flow.api.references import ProjectDatasetField, merged
from apps.flow.models import Dataset
from apps.flow.storage import FlowError
from apps.projects import permissions
from apps.projects.api import ProjectChildViewSet
from apps.quality.models import Check, Metric, MetricValue, Outcome, QualityResult, Rule
from apps.quality.services import checks_run, metrics_compute, rules_verify, worst
from apps.quality.validation import (
    BOUNDS,
    check_errors,
    check_writes_code,
    metric_errors,
    rule_errors,
)
from apps.system.parsers import JSONField

CODE_REFUSED = "Writing a Python check needs the coder profile and the editor role."


def raise_field_errors(errors: dict[str, str]) -> None:
    """400 naming each field (errors on the whole object under ``non_field_errors``)."""
    if errors:
        key = api_settings.NON_FIELD_ERRORS_KEY
        raise serializers.ValidationError(
            {
                key if field == NON_FIELD_ERRORS else field: [message]
                for field, message in errors.items()
            }
        )


def name_clash(model, dataset: Dataset, name: str, instance) -> dict[str, str]:
    clash = model.objects.filter(dataset=dataset, name=name)
    if instance is not None:
        clash = clash.exclude(pk=instance.pk)
    if clash.exists():
        return {"name": f"{dataset.name} already has a {model._meta.verbose_name} named {name!r}."}
    return {}


def moved(serializer: serializers.ModelSerializer, data: dict) -> dict[str, str]:
    """A metric or rule stays on its dataset: its history (and checks) are about it."""
    before = serializer.instance
    if before is not None and data.get("dataset", before.dataset) != before.dataset:
        return {"dataset": "It stays on its dataset (its history is about it): add a new one."}
    return {}


# --- history and outcomes ----------------------------------------------------------------------


class MetricValueSerializer(serializers.ModelSerializer):
    class Meta:
        model = MetricValue
        fields = ["value", "computed_at", "run"]
        read_only_fields = fields


class QualityResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = QualityResult
        fields = ["outcome", "value", "message", "at", "run"]
        read_only_fields = fields


class DatasetRequestSerializer(serializers.Serializer):
    dataset = ProjectDatasetField(help_text="The dataset, by name or id.")


class ComputedSerializer(serializers.Serializer):
    dataset = serializers.CharField()
    values = serializers.DictField(
        child=serializers.FloatField(allow_null=True), help_text="Metric name → value."
    )


class OutcomeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    outcome = serializers.ChoiceField(choices=Outcome.choices)
    value = serializers.FloatField(allow_null=True)
    message = serializers.CharField()


class OutcomesSerializer(serializers.Serializer):
    dataset = serializers.CharField()
    outcome = serializers.ChoiceField(choices=Outcome.choices, help_text="The worst outcome.")
    results = OutcomeSerializer(many=True)


def outcomes(dataset: Dataset, results: list[QualityResult], subject: str) -> dict:
    rows = []
    for result in results:
        target = getattr(result, subject)
        rows.append({"id": target.pk, "name": target.name, "outcome": result.outcome,
                     "value": result.value, "message": result.message})  # fmt: skip
    return {
        "dataset": dataset.name,
        "outcome": worst(r.outcome for r in results),
        "results": rows,
    }


def latest(related: str, model, order: str) -> Prefetch:
    return Prefetch(related, queryset=model.objects.order_by(order)[:1], to_attr="latest_rows")


def latest_of(obj, related: str, order: str):
    if hasattr(obj, "latest_rows"):
        return obj.latest_rows[0] if obj.latest_rows else None
    return getattr(obj, related).order_by(order).first()


# --- the shared base ---------------------------------------------------------------------------


DATASET_FILTER = OpenApiParameter("dataset", str, description="Only this dataset's (name or id).")


class DatasetChildViewSet(ProjectChildViewSet):
    """Metrics, checks and rules: scoped through their dataset; editors write them."""

    def creation_probe(self):
        return self.queryset.model(dataset=Dataset(project=self.get_project()))

    def get_queryset(self):
        rows = super().get_queryset()
        dataset = self.request.query_params.get("dataset")
        if self.action == "list" and dataset:
            if "\x00" in dataset:  # PostgreSQL refuses it in a query
                raise exceptions.ValidationError({"dataset": "Null characters are not allowed."})
            field = "dataset_id" if dataset.isdigit() else "dataset__name"
            rows = rows.filter(**{field: dataset})
        return rows

    def perform_create(self, serializer):
        with transaction.atomic():
            instance = serializer.save()
            if not permissions.can(self.request.user, "change", instance):
                raise exceptions.PermissionDenied()

    def dataset_to_process(self, request) -> Dataset:
        """The dataset named in the body, which the user may edit and read."""
        if not permissions.can(request.user, "change", self.creation_probe()):
            raise exceptions.PermissionDenied()  # before validation: a reader learns nothing
        body = DatasetRequestSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        dataset = body.validated_data["dataset"]
        try:
            require_usable(dataset, request.user)
        except FlowError as error:
            raise FlowRequestError(str(error)) from None
        return dataset

    def history_page(self, rows, serializer_class):
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(serializer_class(page, many=True).data)


# --- metrics -----------------------------------------------------------------------------------


class MetricSerializer(serializers.ModelSerializer):
    dataset = ProjectDatasetField()
    latest = serializers.SerializerMethodField(help_text="The last value computed, if any.")

    class Meta:
        model = Metric
        fields = ["id", "dataset", "name", "kind", "column", "sql", "latest"]
        extra_kwargs = {"column": {"help_text": "For min, max, mean, nulls and distinct."}}
        validators = []  # the unique name is checked in validate(), naming the field

    @extend_schema_field(MetricValueSerializer(allow_null=True))
    def get_latest(self, metric) -> dict | None:
        value = latest_of(metric, "values", "-computed_at")
        return MetricValueSerializer(value).data if value else None

    def validate(self, data):
        fields = ("dataset", "name", "kind", "column", "sql")
        metric = Metric(**{name: merged(self, data, name) for name in fields})
        errors = metric_errors(metric, user=self.context["request"].user)
        errors |= name_clash(Metric, metric.dataset, metric.name, self.instance)
        errors |= moved(self, data)
        raise_field_errors(errors)
        return data


@extend_schema_view(list=extend_schema(parameters=[DATASET_FILTER]))
class MetricViewSet(DatasetChildViewSet):
    """Metrics of the project's datasets, with their last value. Editors write and compute
    them."""

    queryset = Metric.objects.select_related("dataset__project", "dataset__connection")
    serializer_class = MetricSerializer

    def get_queryset(self):
        values = latest("values", MetricValue, "-computed_at")
        return super().get_queryset().prefetch_related(values)

    @extend_schema(responses=MetricValueSerializer(many=True), summary="A metric's history")
    @action(detail=True, methods=["get"])
    def history(self, request, project_key=None, pk=None):
        """The metric's values, newest first (paginated)."""
        metric = self.get_object()
        return self.history_page(metric.values.order_by("-computed_at"), MetricValueSerializer)

    @extend_schema(
        request=DatasetRequestSerializer,
        responses=ComputedSerializer,
        summary="Compute a dataset's metrics now",
    )
    @action(detail=False, methods=["post"], required_action="change")
    def compute(self, request, project_key=None):
        """Compute every metric of the dataset now, where its data lives, and record the
        values (editors)."""
        dataset = self.dataset_to_process(request)
        try:
            values = metrics_compute(dataset)
        except FlowError as error:
            raise FlowRequestError(str(error)) from None
        return Response({"dataset": dataset.name, "values": values})


# --- checks ------------------------------------------------------------------------------------


class ProjectMetricField(serializers.PrimaryKeyRelatedField):
    """A metric of the URL's project, by id."""

    def get_queryset(self):
        project = self.context["view"].get_project()
        return Metric.objects.filter(dataset__project=project).select_related("dataset")


class CheckSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(
        slug_field="name", read_only=True, help_text="The metric's dataset."
    )
    metric = ProjectMetricField()
    latest = serializers.SerializerMethodField(help_text="The last outcome, if any.")

    class Meta:
        model = Check
        fields = ["id", "dataset", "name", "metric", *BOUNDS, "code", "latest"]
        extra_kwargs = {"code": {"help_text": "Python (coders); runs in scenarios only."}}
        validators = []  # the unique name is checked in validate(), naming the field

    @extend_schema_field(QualityResultSerializer(allow_null=True))
    def get_latest(self, check) -> dict | None:
        result = latest_of(check, "results", "-at")
        return QualityResultSerializer(result).data if result else None

    def validate(self, data):
        metric = merged(self, data, "metric")
        data["dataset"] = metric.dataset  # a check watches its metric's dataset
        fields = ("name", "code", *BOUNDS)
        check = Check(metric=metric, dataset=metric.dataset,
                      **{name: merged(self, data, name) for name in fields})  # fmt: skip
        errors = check_errors(check) | name_clash(Check, check.dataset, check.name, self.instance)
        raise_field_errors(errors)
        return data


@extend_schema_view(list=extend_schema(parameters=[DATASET_FILTER]))
class CheckViewSet(DatasetChildViewSet):
    """Checks on the last value of a metric: outside soft bounds warns, outside hard bounds
    fails. Editors write and run them; Python checks need the coder profile."""

    queryset = Check.objects.select_related("dataset__project", "dataset__connection", "metric")
    serializer_class = CheckSerializer

    def get_queryset(self):
        return super().get_queryset().prefetch_related(latest("results", QualityResult, "-at"))

    def _require_code(self, serializer) -> None:
        before = serializer.instance
        code = serializer.validated_data.get("code", getattr(before, "code", ""))
        probe = before or self.creation_probe()
        if check_writes_code(before, code) and not permissions.can(
            self.request.user, "code", probe
        ):
            raise exceptions.PermissionDenied(CODE_REFUSED)

    def perform_create(self, serializer):
        self._require_code(serializer)
        super().perform_create(serializer)

    def perform_update(self, serializer):
        self._require_code(serializer)
        super().perform_update(serializer)

    @extend_schema(responses=QualityResultSerializer(many=True), summary="A check's results")
    @action(detail=True, methods=["get"])
    def results(self, request, project_key=None, pk=None):
        """The check's outcomes, newest first (paginated)."""
        check = self.get_object()
        return self.history_page(check.results.order_by("-at"), QualityResultSerializer)

    @extend_schema(
        request=DatasetRequestSerializer,
        responses=OutcomesSerializer,
        summary="Run a dataset's checks now",
    )
    @action(detail=False, methods=["post"], required_action="change")
    def run(self, request, project_key=None):
        """Run every check of the dataset now on its metric's last value, and record the
        outcomes (editors). Python checks run in scenarios only: 400 if the dataset has one."""
        dataset = self.dataset_to_process(request)
        try:
            results = checks_run(dataset)
        except FlowError as error:
            raise FlowRequestError(str(error)) from None
        return Response(outcomes(dataset, results, "check_ref"))


# --- rules -------------------------------------------------------------------------------------


class RuleSerializer(serializers.ModelSerializer):
    dataset = ProjectDatasetField()
    params = JSONField(
        required=False,
        help_text='in_range: {"min": 0, "max": 100} · row_count: {"min": 1} (max optional) · '
        'in_set: {"values": ["a", "b"]} · regex: {"pattern": "[A-Z]+"} · others: {}',
    )
    latest = serializers.SerializerMethodField(help_text="The last outcome, if any.")

    class Meta:
        model = Rule
        fields = ["id", "dataset", "name", "kind", "column", "params", "severity", "latest"]
        extra_kwargs = {"column": {"help_text": "For every kind but not_empty and row_count."}}
        validators = []  # the unique name is checked in validate(), naming the field

    @extend_schema_field(QualityResultSerializer(allow_null=True))
    def get_latest(self, rule) -> dict | None:
        result = latest_of(rule, "results", "-at")
        return QualityResultSerializer(result).data if result else None

    def validate(self, data):
        fields = ("dataset", "name", "kind", "column", "params")
        rule = Rule(**{name: merged(self, data, name) for name in fields})
        errors = rule_errors(rule, user=self.context["request"].user)
        errors |= name_clash(Rule, rule.dataset, rule.name, self.instance)
        errors |= moved(self, data)
        raise_field_errors(errors)
        return data


@extend_schema_view(list=extend_schema(parameters=[DATASET_FILTER]))
class RuleViewSet(DatasetChildViewSet):
    """Data-quality rules on a dataset's rows; a broken rule gives its severity. Editors write
    and verify them."""

    queryset = Rule.objects.select_related("dataset__project", "dataset__connection")
    serializer_class = RuleSerializer

    def get_queryset(self):
        return super().get_queryset().prefetch_related(latest("results", QualityResult, "-at"))

    @extend_schema(responses=QualityResultSerializer(many=True), summary="A rule's results")
    @action(detail=True, methods=["get"])
    def results(self, request, project_key=None, pk=None):
        """The rule's outcomes, newest first (paginated)."""
        rule = self.get_object()
        return self.history_page(rule.results.order_by("-at"), QualityResultSerializer)

    @extend_schema(
        request=DatasetRequestSerializer,
        responses=OutcomesSerializer,
        summary="Verify a dataset's rules now",
    )
    @action(detail=False, methods=["post"], required_action="change")
    def verify(self, request, project_key=None):
        """Verify every rule of the dataset now, where its data lives, and record the
        outcomes (editors)."""
        dataset = self.dataset_to_process(request)
        try:
            results = rules_verify(dataset)
        except FlowError as error:
            raise FlowRequestError(str(error)) from None
        return Response(outcomes(dataset, results, "rule"))
