"""The scenario API for Python steps and script scenarios.

from cadenza import scenario
scenario.log("starting")
vars = scenario.get_variables()
scenario.set_variables(threshold=0.75)
result = scenario.run_step("set_variables", {"variables": {"x": 1}}, name="define x")
run = scenario.run_scenario("Nightly load", wait=True)
"""

from __future__ import annotations

from cadenza._rpc import CadenzaError, call

__all__ = [
    "CadenzaError",
    "build_dataset",
    "compute_metrics",
    "run_checks",
    "train_model",
    "get_trigger_params",
    "get_variables",
    "log",
    "run_scenario",
    "run_step",
    "set_project_variables",
    "set_variables",
]


def log(message: str, level: str = "info") -> None:
    call("log", message=str(message), level=level)


def get_variables() -> dict:
    return call("get_variables")


def set_variables(**variables) -> None:
    """Set scenario variables for the rest of this run."""
    call("set_variables", variables=variables)


def set_project_variables(**variables) -> None:
    call("set_project_variables", variables=variables)


def get_trigger_params() -> dict:
    return call("get_trigger_params")


def run_step(type: str, params: dict | None = None, *, name: str | None = None) -> dict:
    """Run one step of the given type; returns {"status", "output", "message"}."""
    return call("run_step", type=type, params=params or {}, name=name)


def run_scenario(scenario: str | int, *, wait: bool = True, params: dict | None = None) -> dict:
    return call("run_scenario", scenario=scenario, wait=wait, params=params or {})


def build_dataset(name: str, *, mode: str = "required") -> dict:
    """Build a dataset of this project (modes: only, required, force, missing)."""
    return run_step("build", {"datasets": [name], "mode": mode}, name=f"build {name}")


def train_model(name: str) -> dict:
    """Train a saved model of this project; the new version becomes active."""
    return run_step("train_model", {"model": name}, name=f"train {name}")


def compute_metrics(*datasets: str) -> dict:
    return run_step("compute_metrics", {"datasets": list(datasets)}, name="compute metrics")


def run_checks(*datasets: str) -> dict:
    return run_step("run_checks", {"datasets": list(datasets)}, name="run checks")
