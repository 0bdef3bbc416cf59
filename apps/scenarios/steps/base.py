from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rest_framework import serializers


class StepError(Exception):
    """Fails the step with a message meant for the user."""


@dataclass
class StepResult:
    status: str = "success"  # success | warning | failed
    output: Any = None
    message: str = ""


class StepType:
    """One kind of step: a key, a label, a params schema and ``run``.

    Steps act through ``ctx`` (log, variables, the sandbox, permission checks for the
    run-as user) and never write run bookkeeping: the runner records what they return.
    """

    key: ClassVar[str]
    label: ClassVar[str]
    needs_code: ClassVar[bool] = False  # writing such a step needs the coder profile

    class Params(serializers.Serializer):
        pass

    def run(self, ctx, params: dict) -> StepResult:
        raise NotImplementedError
