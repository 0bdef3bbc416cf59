from __future__ import annotations

from rest_framework import serializers

from apps.triggers.kinds.base import Evaluation, TriggerKind


class AfterScenario(TriggerKind):
    """Fires when another scenario's run ends with one of the chosen outcomes (an event: the
    run's end calls triggers_after_run, nothing polls)."""

    key = "after_scenario"
    label = "After another scenario"
    feature = "trigger.after_scenario"
    polled = False

    class Params(serializers.Serializer):
        scenario = serializers.IntegerField(help_text="The upstream scenario's id.")
        outcomes = serializers.ListField(
            child=serializers.ChoiceField(["success", "warning", "failed", "aborted"]),
            default=["success", "warning"],
        )

    def evaluate(self, trigger, now):
        # Only "Test now" gets here: the upstream run's end fires it, never a check.
        outcomes = " or ".join(trigger.params.get("outcomes", []))
        return Evaluation(
            "unchanged", f"Fires when scenario #{trigger.params['scenario']} ends {outcomes}."
        )
