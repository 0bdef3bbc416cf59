"""REST API for the flow: connections (superusers write them; passwords are write-only),
and the datasets and recipes of a project, with Build and Clear.

Datasets and recipes are named by name or id, in URLs and in fields (``inputs``,
``outputs``, ``connection``); responses name them. Builds run in the request for now.
"""

from __future__ import annotations

from apps.flow.api.connections import ConnectionViewSet
from apps.flow.api.datasets import DatasetViewSet
from apps.flow.api.recipes import RecipeViewSet

__all__ = ["ConnectionViewSet", "DatasetViewSet", "RecipeViewSet"]
