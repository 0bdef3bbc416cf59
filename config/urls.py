from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from apps.accounts.api import ApiTokenViewSet, license_view, me_view
from apps.flow.api import ConnectionViewSet, DatasetViewSet, RecipeViewSet
from apps.projects.api import MembershipViewSet, ProjectViewSet
from apps.reporters.api import ChannelViewSet, ReporterViewSet, RunDeliveryViewSet
from apps.runs.api import RunViewSet
from apps.scenarios.api import ScenarioViewSet, StepViewSet, step_types_view
from apps.system.views import health

router = SimpleRouter()
router.register("projects", ProjectViewSet, basename="project")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("connections", ConnectionViewSet, basename="connection")
router.register("channels", ChannelViewSet, basename="channel")

project_router = SimpleRouter()
project_router.register("memberships", MembershipViewSet, basename="membership")
project_router.register("datasets", DatasetViewSet, basename="dataset")
project_router.register("recipes", RecipeViewSet, basename="recipe")
project_router.register("scenarios", ScenarioViewSet, basename="scenario")
project_router.register("steps", StepViewSet, basename="step")
project_router.register("runs", RunViewSet, basename="run")
project_router.register("reporters", ReporterViewSet, basename="reporter")
project_router.register(
    r"runs/(?P<run_pk>[0-9]+)/deliveries", RunDeliveryViewSet, basename="run-delivery"
)

api_v1 = [
    path("", include(router.urls)),
    path("projects/<str:project_key>/", include(project_router.urls)),
    path("step-types/", step_types_view, name="step-types"),
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
    path("projects/<str:key>/", include("apps.flow.urls")),
    path("", include("apps.accounts.urls")),
]
