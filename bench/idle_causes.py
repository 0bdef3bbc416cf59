"""`python -m bench.idle_causes`: where the embedded process's CPU at rest goes (a diagnosis,
not part of `make bench`, ~1.5 min).

Starts `manage.py serve` several times side by side, each with one thing changed through a
settings module that imports config.settings and overrides one value, and measures them
over the same quiet window as bench.idle. The differences attribute the CPU at rest.
"""

from __future__ import annotations

import time

from bench.idle import SETTLE, WINDOW, rates, sample
from bench.stack import Stack, embedded_env, manage, serve, wait_healthy

# name → lines appended to a settings module that starts with `from config.settings import *`
VARIANTS = {
    "as configured": "",
    "no triggers tick": 'del CELERY_BEAT_SCHEDULE["triggers-tick"]',
    "tick sent by beat, never consumed": (
        'CELERY_BEAT_SCHEDULE["triggers-tick"]["options"] = {"queue": "nowhere"}'
    ),
    # Before apps.system.memory_broker: kombu's own memory transport, polling 100 times a second.
    "kombu memory transport, polling 0.01 s": (
        'CELERY_BROKER_TRANSPORT = "kombu.transport.memory:Transport"\n'
        'CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.01}'
    ),
}


def main() -> None:
    with Stack("idle-causes") as stack:
        servers = {}
        for number, (name, override) in enumerate(VARIANTS.items()):
            module = f"bench_settings_{number}"
            (stack.workdir / f"{module}.py").write_text(
                f"from config.settings import *  # noqa: F403\n{override}\n"
            )
            env = embedded_env(stack.workdir / f"var-{number}")
            env.update(DJANGO_SETTINGS_MODULE=module, PYTHONPATH=str(stack.workdir))
            manage(env, "migrate", "--noinput", "-v0")
            servers[name] = serve(stack, env, name=f"serve-{number}")
        for process, url in servers.values():
            wait_healthy(url, process)
        time.sleep(SETTLE)
        before = {name: sample(process.pid) for name, (process, _) in servers.items()}
        time.sleep(WINDOW)
        after = {name: sample(process.pid) for name, (process, _) in servers.items()}
    print(f"{'variant':36}  CPU %   wake-ups/s  RSS MB   ({WINDOW} s, side by side)")
    for name in VARIANTS:
        rate = rates(before[name], after[name])
        print(
            f"{name:36}  {rate['cpu_percent']:5.2f}  {rate['wakeups_per_s']:10.0f}"
            f"  {rate['rss_mb']:6.0f}"
        )


if __name__ == "__main__":
    main()
