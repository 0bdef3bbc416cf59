"""What a step sees of its run: logging, variables, the sandbox, and permission checks
made for the run-as user at the moment the step acts."""

from __future__ import annotations

import threading

from django.db.models import Q

from apps.projects import permissions
from apps.scenarios.models import Scenario
from apps.scenarios.sandbox import Limits, Sandbox, SandboxResult
from apps.scenarios.steps import StepError


class StepContext:
    def __init__(self, runner, step: dict, step_run):
        self.runner, self.step, self.step_run = runner, step, step_run
        self.run, self.project, self.scenario = runner.run, runner.project, runner.scenario
        self.user = runner.user
        self.cancel = threading.Event()
        self.timeout = step.get("timeout_seconds")

    @property
    def outcome(self) -> str:
        return self.runner.outcome

    @property
    def variables(self) -> dict:
        return self.runner.names()

    def log(self, message: str, level: str = "info") -> None:
        self.runner.log(message, level=level, step_run=self.step_run)

    def set_scenario_variables(self, values: dict) -> None:
        self.runner.scenario_variables.update(values)

    def set_project_variables(self, values: dict) -> None:
        self.runner.project_variables.update(values)

    def require(self, action: str, obj) -> None:
        if self.user is None or not permissions.can(self.user, action, obj):
            who = self.user.get_username() if self.user else "nobody"
            raise StepError(f"The run-as user {who} may not {action} {obj}.")

    def find_scenario(self, reference: str | int) -> Scenario:
        reference = str(reference)
        scenarios = Scenario.objects.select_related("project")
        project_key, _, name = reference.rpartition("/")
        if reference.isdigit():
            match = Q(pk=int(reference))
        elif project_key:
            match = Q(project__key=project_key, name=name)
        else:
            match = Q(project=self.project, name=name)
        visible = permissions.for_user(scenarios, self.user, "view") if self.user else None
        found = visible.filter(match).first() if visible is not None else None
        if found is None:
            raise StepError(f"No scenario {reference!r} visible to the run-as user.")
        return found

    # -- child processes ---------------------------------------------------------------------

    def _sandbox(self, with_api: bool) -> Sandbox:
        return Sandbox(
            on_stdout=lambda line: self.log(line),
            on_stderr=lambda line: self.log(line, level="error"),
            handle_call=self.api_call if with_api else None,
            cancel=self.cancel,
            limits=Limits.from_settings(self.timeout),
        )

    def run_python(self, code: str) -> SandboxResult:
        return self._sandbox(with_api=True).run_python(code)

    def run_shell(self, command: str, env: dict[str, str]) -> SandboxResult:
        return self._sandbox(with_api=False).run_shell(command, env)

    def api_call(self, method: str, params: dict):
        """Calls from ``cadenza.scenario`` in the child, checked against the run-as user."""
        from apps.scenarios.steps.scenarios import RunScenario

        if method == "log":
            level = params.get("level", "info")
            self.log(
                str(params.get("message", "")),
                level=level if level in ("debug", "info", "warning", "error") else "info",
            )
        elif method == "get_variables":
            return self.variables
        elif method == "get_trigger_params":
            return self.run.trigger_params
        elif method == "set_variables":
            self.set_scenario_variables(dict(params.get("variables") or {}))
        elif method == "set_project_variables":
            return self.runner.run_nested_step(
                "set_project_variables", {"variables": params.get("variables") or {}}, None
            )
        elif method == "run_step":
            return self.runner.run_nested_step(
                params.get("type", ""), params.get("params") or {}, params.get("name")
            )
        elif method == "run_scenario":
            return self.runner.run_nested_step(
                RunScenario.key,
                {
                    "scenario": params.get("scenario"),
                    "wait": params.get("wait", True),
                    "params": params.get("params") or {},
                },
                None,
            )
        else:
            raise ValueError(f"unknown method {method!r}")
        return None
