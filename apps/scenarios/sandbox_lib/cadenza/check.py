"""For custom Python checks:

from cadenza import check
if check.value() > 2 * sum(check.history()) / len(check.history()):
    check.result("WARNING", "twice the usual")
else:
    check.result("OK")
"""

from __future__ import annotations

from cadenza._rpc import call


def value():
    return call("check_value")


def history() -> list:
    """Earlier values of the metric, newest first (up to 50)."""
    return call("check_history")


def result(outcome: str, message: str = "") -> None:
    call("check_result", outcome=outcome, message=message)
