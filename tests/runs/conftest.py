from __future__ import annotations

import pytest

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_assign


@pytest.fixture
def coder_owner(cast):
    """The project owner with a coder profile: Python steps may run as them."""
    profile_assign(user=cast["owner"], kind=ProfileKind.CODER)
    return cast["owner"]
