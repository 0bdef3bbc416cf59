from django.urls import path

from apps.dashboards.views import dashboard_page
from apps.flow.views import export_download, exports_page

urlpatterns = [
    path("exports/", exports_page, name="exports"),
    path("exports/<str:name>", export_download, name="export-download"),
    path("dashboards/<int:dashboard_id>/", dashboard_page, name="dashboard"),
]
