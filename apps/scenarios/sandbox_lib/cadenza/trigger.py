"""For custom Python triggers:

from cadenza import trigger
seen = trigger.get_state() or 0
count = len(os.listdir("/data/inbox"))
if count > seen:
    trigger.fire({"new_files": count - seen})
trigger.set_state(count)
"""

from __future__ import annotations

from cadenza._rpc import call


def get_state():
    return call("get_state")


def set_state(value) -> None:
    call("set_state", value=value)


def fire(params: dict | None = None) -> None:
    call("fire", params=params or {})
