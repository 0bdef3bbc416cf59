"""What the admin's scenario form and action buttons post, for the admin tests."""

from __future__ import annotations


def scenario_form(project, *, steps=(), initial=0, reporters=(), **fields) -> dict:
    """The scenario change form as the browser posts it, with ``steps`` and ``reporters``
    inline forms (the reporters all new)."""
    form = {
        "project": project.pk, "name": "Nightly", "description": "", "tags": "[]",
        "kind": "steps", "script": "", "active": "on", "queue_policy": "skip",
        "max_parallel": 2, "variables": "{}", "run_timeout_seconds": "",
        "steps-TOTAL_FORMS": len(steps), "steps-INITIAL_FORMS": initial,
        "steps-MIN_NUM_FORMS": 0, "steps-MAX_NUM_FORMS": 1000, **fields,
    }  # fmt: skip
    for i, step in enumerate(steps):
        values = {
            "position": i, "name": f"step{i}", "type": "set_variables", "params": "{}",
            "enabled": "on", "run_condition": "no_prior_failure", "condition_outcomes": "[]",
            "condition_expression": "", "retries": 0, "retry_delay_seconds": 0,
            "retry_backoff": 1.0, "timeout_seconds": "", "warnings_as": "warning", **step,
        }  # fmt: skip
        form |= {f"steps-{i}-{key}": value for key, value in values.items()}
    form |= {"triggers-TOTAL_FORMS": 0, "triggers-INITIAL_FORMS": 0,
             "triggers-MIN_NUM_FORMS": 0, "triggers-MAX_NUM_FORMS": 1000}  # fmt: skip
    form |= {"reporters-TOTAL_FORMS": len(reporters), "reporters-INITIAL_FORMS": 0,
             "reporters-MIN_NUM_FORMS": 0, "reporters-MAX_NUM_FORMS": 1000}  # fmt: skip
    for i, reporter in enumerate(reporters):
        values = {"name": f"reporter{i}", "enabled": "on", "when": "end", "condition": "",
                  "recipients": "", "subject": "{{ outcome }}", "body": "{{ run_url }}",
                  **reporter}  # fmt: skip
        form |= {f"reporters-{i}-{key}": value for key, value in values.items()}
    return form


def action(client, url, name, *objects):
    return client.post(
        url, {"action": name, "_selected_action": [obj.pk for obj in objects]}, follow=True
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]
