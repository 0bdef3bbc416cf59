from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from apps.accounts.api import ApiTokenViewSet, license_view, me_view
from apps.dashboards.api import ChartViewSet, DashboardViewSet
from apps.flow.api import ConnectionViewSet, DatasetViewSet, RecipeViewSet
from apps.ml.api import SavedModelViewSet
from apps.projects.api import MembershipViewSet, ProjectViewSet
from apps.quality.api import CheckViewSet, MetricViewSet, RuleViewSet
from apps.reporters.api import ChannelViewSet, ReporterViewSet, RunDeliveryViewSet
from apps.runs.api import RunViewSet
from apps.scenarios.api import ScenarioViewSet, StepViewSet, step_types_view
from apps.system.views import health, metrics
from apps.triggers.api import TriggerViewSet, trigger_kinds_view

router = SimpleRouter()
router.register("projects", ProjectViewSet, basename="project")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("connections", ConnectionViewSet, basename="connection")
router.register("channels", ChannelViewSet, basename="channel")

project_router = SimpleRouter()
project_router.register("memberships", MembershipViewSet, basename="membership")
project_router.register("datasets", DatasetViewSet, basename="dataset")
project_router.register("recipes", RecipeViewSet, basename="recipe")
project_router.register("metrics", MetricViewSet, basename="metric")
project_router.register("checks", CheckViewSet, basename="check")
project_router.register("rules", RuleViewSet, basename="rule")
project_router.register("models", SavedModelViewSet, basename="model")
project_router.register("charts", ChartViewSet, basename="chart")
project_router.register("dashboards", DashboardViewSet, basename="dashboard")
project_router.register("scenarios", ScenarioViewSet, basename="scenario")
project_router.register("steps", StepViewSet, basename="step")
project_router.register("runs", RunViewSet, basename="run")
project_router.register("reporters", ReporterViewSet, basename="reporter")
project_router.register("triggers", TriggerViewSet, basename="trigger")
project_router.register(
    r"runs/(?P<run_pk>[0-9]+)/deliveries", RunDeliveryViewSet, basename="run-delivery"
)

api_v1 = [
    path("", include(router.urls)),
    path("projects/<str:project_key>/", include(project_router.urls)),
    path("step-types/", step_types_view, name="step-types"),
    path("trigger-kinds/", trigger_kinds_view, name="trigger-kinds"),
    path("license/", license_view, name="license"),
    path("me/", me_view, name="me"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("health/", health, name="health"),
    path("healthz", health, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("projects/<str:key>/", include("apps.flow.urls")),
    path("", include("apps.runs.urls")),  # the live dashboard pages
    path("", include("apps.accounts.urls")),
]

# JSON under /api/ for a URL that matches no route, like every other API error.
handler404 = "apps.system.not_found.not_found"
