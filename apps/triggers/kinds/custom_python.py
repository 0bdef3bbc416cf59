from __future__ import annotations

from rest_framework import serializers

from apps.triggers.kinds.base import Evaluation, TriggerKind


class CustomPython(TriggerKind):
    """Code in the sandbox decides: ``from cadenza import trigger``; ``trigger.fire(params)``,
    ``trigger.get_state()``, ``trigger.set_state(value)``."""

    key = "custom_python"
    label = "Custom Python"
    feature = "trigger.custom_python"
    profile = "coder"

    class Params(serializers.Serializer):
        code = serializers.CharField()
        timeout = serializers.IntegerField(default=30, min_value=1, max_value=600)

    def evaluate(self, trigger, now):
        from apps.scenarios.sandbox import Limits, Sandbox

        box = {"state": trigger.state.get("user"), "fire": None}
        output: list[str] = []

        def handle(method, params):
            if method == "get_state":
                return box["state"]
            if method == "set_state":
                box["state"] = params.get("value")
                return None
            if method == "fire":
                box["fire"] = params.get("params") or {}
                return None
            raise ValueError(f"{method!r} is not available in a trigger")

        sandbox = Sandbox(
            on_stdout=output.append,
            on_stderr=output.append,
            handle_call=handle,
            limits=Limits.from_settings(trigger.params.get("timeout", 30)),
        )
        result = sandbox.run_python(trigger.params["code"])
        state = {**trigger.state, "user": box["state"]}
        if not result.ok:
            tail = " | ".join(output[-3:])
            return Evaluation(
                "error", f"The code failed ({result.describe()}): {tail}"[:500], state=state
            )
        if box["fire"] is None:
            return Evaluation("unchanged", "the code did not fire", state=state)
        return Evaluation("fired", "the code fired", box["fire"], state)
