"""The API's routes as its OpenAPI schema lists them, named the way DRF names them.

A route is named ``(resource, action)``: the router's basename and the viewset action
(``("scenario", "run")``, ``("dataset", "destroy")``), or for a function view its URL name
and the HTTP method (``("license", "post")``). The name comes from resolving the path, not
from parsing it, so it is the name the code itself uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator

METHODS = ("get", "post", "put", "patch", "delete")
PARAM = re.compile(r"\{(\w+)\}")
# Values that match every path converter and regex, only to resolve a route's view.
PLACEHOLDERS = {"key": "SALES", "project_key": "SALES"}


@cache
def openapi_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


@dataclass(frozen=True)
class Route:
    method: str  # upper case
    path: str  # the schema's template, e.g. /api/v1/projects/{project_key}/runs/{id}/

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)

    @property
    def project_scoped(self) -> bool:
        return "project_key" in self.params

    @property
    def detail(self) -> bool:
        return "id" in self.params or "key" in self.params

    def url(self, values: dict[str, object]) -> str:
        return PARAM.sub(lambda match: str(values[match.group(1)]), self.path)

    @property
    def name(self) -> tuple[str, str]:
        values = {param: PLACEHOLDERS.get(param, 1) for param in self.params}
        view = resolve(self.url(values)).func
        actions = getattr(view, "actions", None)
        if actions:
            return view.initkwargs["basename"], actions[self.method.lower()]
        return resolve(self.url(values)).url_name, self.method.lower()


def api_routes() -> list[Route]:
    paths = openapi_schema()["paths"]
    return [
        Route(method.upper(), path)
        for path, operations in paths.items()
        for method in METHODS
        if method in operations
    ]
