"""The demo's scenarios with their steps, triggers, the run-log reporter and a first run."""

from __future__ import annotations

from apps.demo import definitions as demo
from apps.demo.seeder import Missing, Seeder, validated_save
from apps.reporters.models import MessagingChannel, Reporter
from apps.reporters.validation import channel_clean, reporter_errors
from apps.runs.services import run_start
from apps.scenarios.models import Scenario, Step
from apps.scenarios.services import scenario_touch
from apps.scenarios.steps import validate_params
from apps.scenarios.validation import step_condition_errors
from apps.triggers.kinds import kind_gate
from apps.triggers.models import Trigger
from apps.triggers.services import trigger_save


def seed(seeder: Seeder) -> None:
    for spec in demo.SCENARIOS:
        seeder.once(
            f"scenario:{spec['name']}",
            seeder.finder(Scenario, name=spec["name"]),
            lambda spec=spec: _create_scenario(seeder, spec),
        )
    for spec in demo.TRIGGERS:
        scenario, name = spec[:2]
        seeder.once(
            f"trigger:{scenario}/{name}",
            lambda scenario=scenario, name=name: (
                seeder.scenario(scenario).triggers.filter(name=name).first()
            ),
            lambda spec=spec: _create_trigger(seeder, *spec),
        )
    _seed_reporter(seeder)
    # A first run now, so a new user sees one without waiting for the minute to come round.
    seeder.once(
        f"run:{demo.FIRST_RUN}",
        lambda: False,
        lambda: run_start(
            scenario=seeder.scenario(demo.FIRST_RUN),
            user=seeder.owner,
            trigger_kind="manual",
            trigger_name="seed_demo",
        ),
    )


def _create_scenario(seeder: Seeder, spec: dict) -> None:
    scenario = Scenario(
        project=seeder.project(), name=spec["name"], description=spec["description"]
    )
    validated_save(scenario)
    for position, step in enumerate(spec["steps"]):
        condition = step.get("run_condition", Step.Condition.NO_PRIOR_FAILURE)
        expression = step.get("condition_expression", "")
        made = Step(
            scenario=scenario,
            position=position,
            name=step["name"],
            type=step["type"],
            params=validate_params(step["type"], step["params"]),
            run_condition=condition,
            condition_expression=expression,
        )
        validated_save(made, step_condition_errors(condition, expression, []))
    scenario_touch(scenario, user=seeder.owner)  # runs as its last editor: the owner


def _create_trigger(
    seeder: Seeder, scenario: str, name: str, kind: str, params: dict, interval: int, grace: int
) -> None:
    params = dict(params)
    upstream = str(params.get("scenario", ""))
    if upstream.startswith("after:"):
        params["scenario"] = seeder.scenario(upstream.removeprefix("after:")).pk
    gate = kind_gate(kind, seeder.owner)
    if not gate.allowed:
        # Created switched off rather than left out: the user sees it and why it is off.
        seeder.report.notes.append(f"Trigger {name!r} is off: {gate.reason}")
    trigger = Trigger(
        scenario=seeder.scenario(scenario),
        name=name,
        kind=kind,
        params=params,
        enabled=gate.allowed,
        check_interval_seconds=interval,
        grace_seconds=grace,
    )
    trigger.full_clean(exclude=["params"])  # trigger_save validates params per kind
    trigger_save(trigger, user=seeder.owner)


def _seed_reporter(seeder: Seeder) -> None:
    seeder.once(
        f"channel:{demo.CHANNEL['name']}",
        MessagingChannel.objects.filter(name=demo.CHANNEL["name"]).first,
        _create_channel,
    )
    spec = demo.REPORTER
    seeder.once(
        f"reporter:{spec['scenario']}/{spec['name']}",
        lambda: seeder.scenario(spec["scenario"]).reporters.filter(name=spec["name"]).first(),
        lambda: _create_reporter(seeder, spec),
    )


def _create_channel() -> None:
    config, secrets = channel_clean(
        kind=demo.CHANNEL["kind"],
        config={"project": demo.PROJECT["key"], "dataset": demo.REPORTER["dataset"]},
        secrets={},
    )
    channel = MessagingChannel(name=demo.CHANNEL["name"], kind=demo.CHANNEL["kind"], config=config)
    channel.secrets = secrets
    validated_save(channel)


def _create_reporter(seeder: Seeder, spec: dict) -> None:
    channel = MessagingChannel.objects.filter(name=demo.CHANNEL["name"]).first()
    if channel is None:
        raise Missing(f"messaging channel {demo.CHANNEL['name']}")
    reporter = Reporter(
        scenario=seeder.scenario(spec["scenario"]),
        name=spec["name"],
        channel=channel,
        when=Reporter.When.END,
    )
    errors = reporter_errors(
        channel=channel,
        condition=reporter.condition,
        recipients=[],
        templates={"subject": reporter.subject, "body": reporter.body},
    )
    validated_save(reporter, errors)
