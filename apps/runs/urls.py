"""Pages of the live dashboard (DESIGN §11); configuration stays in the admin."""

from django.urls import path

from apps.projects.views import project_dashboard
from apps.runs.views import monitor_page, run_abort_view, run_page, run_panels
from apps.scenarios.views import scenario_active, scenario_page, scenario_run, trigger_enabled

scenario = "projects/<str:key>/scenarios/<int:scenario_id>/"
run = "projects/<str:key>/runs/<int:run_id>/"

urlpatterns = [
    path("projects/<str:key>/", project_dashboard, name="project-dashboard"),
    path(scenario, scenario_page, name="scenario"),
    path(f"{scenario}run/", scenario_run, name="scenario-run"),
    path(f"{scenario}active/", scenario_active, name="scenario-active"),
    path(f"{scenario}triggers/<int:trigger_id>/enabled/", trigger_enabled, name="trigger-enabled"),
    path(run, run_page, name="run"),
    path(f"{run}panels/", run_panels, name="run-panels"),
    path(f"{run}abort/", run_abort_view, name="run-abort"),
    path("runs/", monitor_page, name="monitor"),
]
