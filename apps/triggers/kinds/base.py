from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from rest_framework import serializers


@dataclass
class Evaluation:
    result: str  # fired | unchanged | waiting | error
    message: str = ""
    params: dict = field(default_factory=dict)  # trigger params handed to the run
    state: dict | None = None  # the state to persist (None: keep)


class TriggerKind:
    """One kind of trigger: key, label, what it needs (license feature, profile), params."""

    key: ClassVar[str]
    label: ClassVar[str]
    feature: ClassVar[str]
    profile: ClassVar[str] = "designer"
    polled: ClassVar[bool] = True  # evaluated by the periodic check (else: time or event)

    class Params(serializers.Serializer):
        pass

    def refusal(self, params: dict, user, project_id: int | None) -> str | None:
        """Why ``user`` may not save a trigger with these (valid) params in the project, e.g.
        a connection they may not use, as ``"<param>: <reason>"``; None when they may."""
        return None

    def prefetch(self, triggers: list) -> None:
        """Load what a batch of these triggers will read, in a few queries (optional).

        One instance serves a whole tick, so it may also memoize reads shared by triggers."""

    def evaluate(self, trigger, now: datetime) -> Evaluation:
        raise NotImplementedError


def fingerprint(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def changed_with_grace(state: dict, current: str, now: datetime, grace: int) -> tuple[str, dict]:
    """Fire once per change, after the source has been stable for ``grace`` seconds.

    The first look only records a baseline. ``seen`` is the last fingerprint observed,
    ``fired`` the one that last fired; a source still changing keeps pushing the wait back.
    """
    state = dict(state)
    if "seen" not in state:
        return "unchanged", {**state, "seen": current, "fired": current, "changed_at": None}
    if current != state["seen"]:
        state["seen"], state["changed_at"] = current, now.isoformat()
    if current == state.get("fired"):
        return "unchanged", state
    changed_at = datetime.fromisoformat(state["changed_at"]) if state.get("changed_at") else now
    if grace and (now - changed_at).total_seconds() < grace:
        return "waiting", state
    state["fired"] = current
    return "fired", state
