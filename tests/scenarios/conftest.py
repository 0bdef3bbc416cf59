from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_assign
from apps.scenarios.models import Scenario, Step


@pytest.fixture
def scenario(project, cast):
    """A step scenario of SALES that a superuser set to run as the project owner."""
    nightly = Scenario.objects.create(project=project, name="Nightly", run_as=cast["owner"])
    Step.objects.create(
        scenario=nightly, position=0, name="define", type="set_variables",
        params={"variables": {"a": 1}, "evaluate": False},
    )  # fmt: skip
    return nightly


@pytest.fixture
def coder_editor(cast):
    """The editor with the coder profile: may write Python steps and scripts."""
    profile_assign(user=cast["editor"], kind=ProfileKind.CODER)
    cast["editor"] = get_user_model().objects.get(pk=cast["editor"].pk)  # drop the cached profile
    return cast["editor"]
