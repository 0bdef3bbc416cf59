from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.accounts.api import license_payload


@login_required
def license_page(request):
    return render(request, "accounts/license.html", {"license": license_payload()})
