"""Admin for runs: read-only history with step runs, deliveries and the log tail; abort; delete
for editors."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from apps.projects import permissions
from apps.projects.admin import ProjectScopedAdmin
from apps.reporters.admin import DeliveryInline
from apps.runs.models import ACTIVE_STATUSES, Run, StepRun
from apps.runs.services import run_abort
from apps.scenarios.models import Scenario

LOG_TAIL = 200


class StepRunInline(admin.TabularInline):
    model = StepRun
    extra = 0
    can_delete = False
    fields = ["position", "name", "type", "attempt", "status", "started_at", "finished_at",
              "message", "error"]  # fmt: skip
    readonly_fields = fields

    def has_view_permission(self, request, obj=None):
        return obj is None or permissions.can(request.user, "view", obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TriggerKindFilter(admin.SimpleListFilter):
    """Only the kinds found among runs the user can see (not every project's)."""

    title = "trigger kind"
    parameter_name = "trigger_kind"

    def lookups(self, request, model_admin):
        kinds = model_admin.get_queryset(request).order_by().values_list("trigger_kind", flat=True)
        return [(kind, kind) for kind in sorted(set(kinds.distinct()))]

    def queryset(self, request, queryset):
        return queryset.filter(trigger_kind=self.value()) if self.value() else queryset


@admin.register(Run)
class RunAdmin(ProjectScopedAdmin):
    list_display = ["__str__", "status", "trigger_kind", "started_by", "queued_at", "duration"]
    list_filter = ["status", TriggerKindFilter]
    list_select_related = ["scenario__project", "started_by"]
    search_fields = ["scenario__name"]
    inlines = [StepRunInline, DeliveryInline]
    actions = ["abort_runs"]
    fieldsets = [
        (None, {"fields": ["scenario", "number", "status", "outcome_message"]}),
        (
            "Trigger",
            {
                "fields": [
                    "trigger_kind",
                    "trigger_name",
                    "trigger_params",
                    "started_by",
                    "run_as",
                    "parent_run",
                ]
            },
        ),  # fmt: skip
        (
            "Timing",
            {
                "fields": [
                    "queued_at",
                    "started_at",
                    "finished_at",
                    "abort_requested_at",
                    "abort_requested_by",
                    "worker",
                ]
            },
        ),  # fmt: skip
        ("Definition", {"classes": ["collapse"], "fields": ["definition", "variables"]}),
        ("Log", {"fields": ["log_tail"]}),
    ]
    readonly_fields = ["log_tail"]

    @admin.display(description="Duration")
    def duration(self, run) -> str:
        seconds = run.duration_seconds
        return "—" if seconds is None else f"{seconds:.1f} s"

    @admin.display(description=f"Log (last {LOG_TAIL} lines)")
    def log_tail(self, run) -> str:
        lines = list(run.log_lines.order_by("-seq")[:LOG_TAIL])[::-1]
        text = "\n".join(
            f"{line.seq:>6} {timezone.localtime(line.ts):%H:%M:%S} {line.level.upper():<7} "
            f"{line.message}"
            for line in lines
        )
        style = "max-height: 40em; overflow: auto; white-space: pre-wrap"
        return format_html('<pre style="{}">{}</pre>', style, text or "(no log lines)")

    def has_add_permission(self, request):
        return False  # runs start through a scenario (Run now), never by hand

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting history is an editor's call, and never of a run still going.
        if obj is None:
            return permissions.projects_for(request.user, "change", Scenario).exists()
        if obj.status in ACTIVE_STATUSES:
            return False
        return permissions.can(request.user, "change", obj.scenario)

    def has_run_permission(self, request) -> bool:
        return permissions.projects_for(request.user, "run", Run).exists()

    @admin.action(description="Abort selected runs", permissions=["run"])
    def abort_runs(self, request, queryset):
        aborted = refused = 0
        for run in queryset.filter(status__in=ACTIVE_STATUSES):
            if permissions.can(request.user, "run", run):
                run_abort(run, user=request.user)
                aborted += 1
            else:
                refused += 1
        self.message_user(request, f"Asked {aborted} active run(s) to abort.")
        if refused:
            message = f"{refused} refused: you may not abort them."
            self.message_user(request, message, messages.ERROR)
