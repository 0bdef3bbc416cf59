"""404 for the whole site: JSON under /api/ (as every other API error), the page elsewhere.

DRF answers JSON for what reaches a view; a URL that matches no route (an id that is not a
number, say) is answered by Django, with this handler.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)
