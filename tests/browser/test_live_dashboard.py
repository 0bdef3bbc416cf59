"""The live dashboard in headless Chromium, against the real web process (uvicorn on
config.asgi), the Redis channel layer and a real Celery worker (DESIGN §10, §11).

Runs print lines from a Python step that waits on *gate files* between batches: the test
opens a gate when it has seen what it needs, so "the run is still going" is a fact, not a
guess about timing. The child runs as an unprivileged account; it only checks whether the
file exists in /tmp.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.utils import timezone
from playwright.sync_api import Page, expect

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_assign
from apps.reporters.models import MessagingChannel, Reporter
from apps.runs.models import LogLine, Run, RunStatus
from apps.runs.services import run_start
from apps.scenarios.models import Scenario
from apps.triggers.models import Trigger, TriggerEvaluation
from apps.triggers.services import trigger_save
from tests.browser.asgi import AsgiServer
from tests.conftest import PASSWORD
from tests.pages.conftest import finished_run
from tests.processes import wait_until

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
BOUND = 30_000  # ms for the page to show what the run did
LEVELS = ["info", "info", "info", "debug", "warning", "info", "info", "error"]  # by seq % 8
RANK = {"debug": 0, "info": 1, "warning": 2, "error": 3}
pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(150),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def server(transactional_db, tmp_path):
    web = AsgiServer(tmp_path / "web.log").start()
    yield web
    web.stop()


@pytest.fixture
def gates():
    """``gates.path(name)`` for the script; ``gates.open(name)`` lets it go on."""
    prefix = f"/tmp/cadenza-gate-{uuid.uuid4().hex}"

    class Gates:
        def path(self, name: str) -> str:
            return f"{prefix}-{name}"

        def open(self, name: str) -> None:
            Path(self.path(name)).touch(mode=0o644)

    yield Gates()
    for leftover in Path("/tmp").glob(f"{Path(prefix).name}-*"):
        leftover.unlink()


def script(batches: list[tuple[str, int]], gates) -> str:
    """Print each batch of lines (with small pauses), waiting for its gate first if named."""
    code = ["import os, time", "def wait(path):", "    for _ in range(1200):",
            "        if os.path.exists(path): return", "        time.sleep(0.05)",
            "    raise SystemExit('gate never opened: ' + path)"]  # fmt: skip
    first = 0
    for gate, count in batches:
        if gate:
            code.append(f"wait({gates.path(gate)!r})")
        code.append(f"for i in range({first}, {first + count}):")
        code.append("    print(f'tick {i}', flush=True); time.sleep(0.02)")
        first += count
    return "\n".join(code) + "\n"


@pytest.fixture
def scenario_with(make_scenario, cast, gates):
    profile_assign(user=cast["owner"], kind=ProfileKind.CODER)  # it runs as the owner

    def make(batches, name="Nightly load"):
        steps = [
            {"name": "prepare", "type": "set_variables", "params": {"variables": {"day": 1}}},
            {"name": "load", "type": "python", "params": {"code": script(batches, gates)}},
        ]
        return make_scenario(name, steps=steps, description="Loads yesterday's sales")

    return make


def with_history(scenario, owner) -> None:
    """A trigger, a reporter and past runs, so that the screenshots show a lived-in page."""
    trigger = trigger_save(
        Trigger(scenario=scenario, name="daily", kind="time",
                params={"schedule": "daily", "time": "03:00"}),
        user=owner,
    )  # fmt: skip
    TriggerEvaluation.objects.create(trigger=trigger, result="fired", message="03:00 slot")
    channel = MessagingChannel.objects.create(
        name="ops hook", kind="webhook", config={"url": "http://127.0.0.1:9/"}
    )
    Reporter.objects.create(scenario=scenario, name="on failure", channel=channel,
                            condition="outcome == 'failed'")  # fmt: skip
    outcomes = ["success", "success", "failed", "success", "warning", "success", "success"]
    for index, outcome in enumerate(outcomes):  # oldest first, so #1 is the oldest
        days_ago = (len(outcomes) - index) * 2 - 1
        finished_run(scenario, owner, outcome, days_ago=days_ago, seconds=20 + index)
    Scenario.objects.filter(pk=scenario.pk).update(run_counter=len(outcomes))
    other = Scenario.objects.create(project=scenario.project, name="Weekly report", run_as=owner)
    for days_ago in (23, 16, 9, 2):
        finished_run(other, owner, "success", days_ago=days_ago, seconds=4)


def log_in(page: Page, server: AsgiServer, user, then: str = "/") -> None:
    # The server runs with the real hashers (the test settings use MD5); a cheap PBKDF2
    # hash logs in there (and is upgraded on the first login).
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(PASSWORD, hasher.salt(), iterations=1000)
    user.save(update_fields=["password"])
    page.goto(f"{server.url}/accounts/login/?next={then}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{server.url}{then}")


def log_seqs(page: Page) -> list[int]:
    script = "rows => rows.map(row => +row.dataset.seq)"
    return page.eval_on_selector_all("#log .line[data-seq]", script)


def stored(run: Run) -> list[tuple[int, str]]:
    return list(LogLine.objects.filter(run=run).order_by("seq").values_list("seq", "message"))


def shown(page: Page) -> list[tuple[int, str]]:
    return [
        (int(seq), message)
        for seq, message in page.eval_on_selector_all(
            "#log .line[data-seq]",
            "rows => rows.map(r => [r.dataset.seq, r.querySelector('.msg').textContent])",
        )
    ]


def test_run_from_the_scenario_page_and_watch_it_live(
    page: Page, server, celery_worker_process, scenario_with, cast, gates
):
    celery_worker_process()
    scenario = scenario_with([("", 5), ("more", 5)])
    with_history(scenario, cast["owner"])
    log_in(page, server, cast["operator"], then="/projects/SALES/")
    page.screenshot(path=str(SHOTS / "project-dashboard.png"), full_page=True)

    page.get_by_role("link", name="Nightly load").click()
    expect(page.get_by_role("heading", name="Nightly load")).to_be_visible()
    page.screenshot(path=str(SHOTS / "scenario.png"), full_page=True)
    page.click("#run-button")
    page.wait_for_url(re.compile(r"/projects/SALES/runs/\d+/$"))
    run = Run.objects.filter(scenario=scenario).latest("id")
    assert page.url.endswith(f"/runs/{run.pk}/") and run.trigger_kind == "manual"
    page.evaluate("window.sameDocument = true")  # gone if the page reloads

    tick = page.locator("#log .line", has_text="tick 4")
    expect(tick).to_be_visible(timeout=BOUND)  # live, while the run waits at the gate
    expect(page.locator("#run-status .status")).to_have_attribute("data-status", "running")
    expect(page.locator("#log-conn")).to_have_attribute("data-state", "live")
    expect(page.locator("#timeline li")).to_have_count(2, timeout=BOUND)  # prepare, load
    gates.open("more")

    expect(page.locator("#run-status .status")).to_have_attribute(
        "data-status", "success", timeout=BOUND
    )
    expect(page.locator("#log-conn")).to_have_attribute("data-state", "ended")
    expect(page.locator("#timeline li[data-step-status=success]")).to_have_count(2)
    assert page.evaluate("window.sameDocument") is True
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESS
    assert shown(page)[-1][0] == stored(run)[-1][0]
    expect(page.locator("#log .line.marker")).to_have_count(2)  # one marker per step
    page.screenshot(path=str(SHOTS / "run.png"), full_page=True)


def test_the_log_resumes_once_in_order_after_the_web_server_restarts(
    page: Page, server, celery_worker_process, scenario_with, cast, gates
):
    """Stopping the web process (SIGTERM, as a deploy does) closes every socket from the
    server side; the lines printed meanwhile are only in the database. The page reconnects
    with ?after=<last seq> once the server is back and ends with every line once, in order."""
    celery_worker_process()
    scenario = scenario_with([("", 10), ("outage", 10), ("after", 10)])
    run = run_start(scenario=scenario, user=cast["operator"]).run
    log_in(page, server, cast["reader"], then=f"/projects/SALES/runs/{run.pk}/")
    expect(page.locator("#log .line", has_text="tick 9")).to_be_visible(timeout=BOUND)
    seen_before = log_seqs(page)[-1]

    server.stop()
    expect(page.locator("#log-conn")).to_have_attribute("data-state", "reconnecting")
    gates.open("outage")  # printed while nobody listens
    wait_until(
        lambda: LogLine.objects.filter(run=run, message="tick 19").exists(),
        timeout=30,
        what="lines written during the outage",
    )
    server.start()  # same port
    expect(page.locator("#live-log")).to_have_attribute("data-connections", "2", timeout=BOUND)
    expect(page.locator("#log .line", has_text="tick 19")).to_be_visible(timeout=BOUND)
    gates.open("after")  # live again

    expect(page.locator("#log-conn")).to_have_attribute("data-state", "ended", timeout=BOUND)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESS
    lines = stored(run)
    assert [seq for seq, _ in lines] == list(range(1, len(lines) + 1))
    assert shown(page) == lines  # every line once, in order
    assert seen_before < [seq for seq, text in lines if text == "tick 19"][0]


def test_the_monitoring_page_follows_a_run_without_reloading(
    page: Page, server, celery_worker_process, scenario_with, cast, gates
):
    celery_worker_process()
    scenario = scenario_with([("", 3), ("finish", 3)])
    log_in(page, server, cast["reader"], then="/runs/")
    expect(page.locator("#monitor-conn")).to_have_attribute("data-state", "live", timeout=BOUND)
    expect(page.locator("#running-empty")).to_be_visible()
    page.evaluate("window.sameDocument = true")

    run = run_start(scenario=scenario, user=cast["operator"]).run
    row = page.locator(f'#running tr[data-run="{run.pk}"]')
    expect(row).to_be_visible(timeout=BOUND)
    expect(row.locator(".status")).to_have_attribute("data-status", "running")
    page.screenshot(path=str(SHOTS / "monitoring.png"), full_page=True)

    gates.open("finish")
    recent = page.locator(f'#recent tr[data-run="{run.pk}"] .status')
    expect(recent).to_have_attribute("data-status", "success", timeout=BOUND)
    expect(page.locator("#running-empty")).to_be_visible()
    assert page.evaluate("window.sameDocument") is True


def finished_run_with_lines(scenario, user, count: int) -> Run:
    run = Run.objects.create(
        scenario=scenario,
        project=scenario.project,
        number=1,
        status=RunStatus.SUCCESS,
        started_by=user,
        run_as=user,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    now = timezone.now()
    LogLine.objects.bulk_create(
        LogLine(run=run, seq=seq, ts=now, level=LEVELS[seq % 8], message=f"line {seq}")
        for seq in range(1, count + 1)
    )
    return run


def test_reader_watches_but_cannot_run_and_outsiders_see_nothing(
    page: Page, server, scenario_with, cast
):
    scenario = scenario_with([("", 1)])
    run = finished_run_with_lines(scenario, cast["owner"], 40)
    log_in(page, server, cast["reader"], then=f"/projects/SALES/scenarios/{scenario.pk}/")
    expect(page.locator("#history tr[data-run]")).to_have_count(1)
    expect(page.locator("#run-button")).to_have_count(0)
    expect(page.get_by_role("button", name="Abort")).to_have_count(0)

    page.goto(f"{server.url}/projects/SALES/runs/{run.pk}/")
    expect(page.locator("#log-conn")).to_have_attribute("data-state", "ended", timeout=BOUND)
    page.select_option("#log-level", "debug")
    expect(page.locator("#log .line[data-seq]")).to_have_count(40)
    expect(page.locator("#abort-form")).to_have_count(0)

    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    headers = {"X-CSRFToken": csrf, "Referer": server.url + "/"}
    api = page.request.post(
        f"{server.url}/api/v1/projects/SALES/scenarios/{scenario.pk}/run/",
        data={"params": {}},
        headers=headers,
    )
    assert api.status == 403 and "permission" in api.json()["detail"].lower()
    form = page.request.post(
        f"{server.url}/projects/SALES/scenarios/{scenario.pk}/run/", headers=headers
    )
    assert form.status == 403
    assert Run.objects.filter(scenario=scenario).count() == 1

    for path in [f"/projects/SALES/scenarios/{scenario.pk}/", f"/projects/SALES/runs/{run.pk}/"]:
        page.set_viewport_size({"width": 390, "height": 800})  # phone: nothing overflows
        page.goto(server.url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path

    # Leave the page first: a request its scripts still had in flight (a panel refresh
    # renders a form) could otherwise come back after the cookies are cleared and set a new
    # CSRF cookie over the one the login form below was rendered for.
    page.goto("about:blank")
    page.context.clear_cookies()
    log_in(page, server, cast["outsider"])
    assert page.goto(f"{server.url}/projects/SALES/runs/{run.pk}/").status == 404
    refused = page.evaluate(
        """path => new Promise(resolve => {
             const socket = new WebSocket(`ws://${location.host}${path}`);
             let opened = false;
             socket.onopen = () => { opened = true; };
             socket.onmessage = () => resolve({opened, message: true});
             socket.onclose = event => resolve({opened, code: event.code});
           })""",
        f"/ws/runs/{run.pk}/logs/?after=0",
    )
    assert refused["opened"] is False, refused


def test_a_long_log_renders_without_freezing(page: Page, server, scenario_with, cast):
    scenario = scenario_with([("", 1)])
    run = finished_run_with_lines(scenario, cast["owner"], 12_000)
    # The longest main-thread task while the log loads and renders, for the report.
    page.add_init_script(
        "window.longest = 0; new PerformanceObserver(list => list.getEntries().forEach("
        "e => { window.longest = Math.max(window.longest, e.duration); }))"
        ".observe({type: 'longtask', buffered: true});"
    )
    log_in(page, server, cast["reader"], then=f"/projects/SALES/runs/{run.pk}/")
    expect(page.locator("#log-conn")).to_have_attribute("data-state", "ended", timeout=BOUND)
    expect(page.locator("#log-count")).to_contain_text("12000 lines", timeout=BOUND)
    expect(page.locator("#log .line", has_text="line 11999")).to_be_visible(timeout=BOUND)
    rows = page.locator("#log .line[data-seq]").count()
    assert rows <= 5000  # the DOM is capped; the rest stay searchable
    expect(page.locator("#log .line.trimmed")).to_be_visible()

    for level, text in [("info", "line 1199"), ("error", "line 1199"), ("debug", "line 117")]:
        page.select_option("#log-level", level)
        page.fill("#log-search", text)
        expected = [
            seq
            for seq in range(1, 12_001)
            if text in f"line {seq}" and RANK[LEVELS[seq % 8]] >= RANK[level]
        ]
        expect(page.locator("#log .line[data-seq]")).to_have_count(len(expected))
        assert log_seqs(page) == expected, (level, text)
    print(f"12,000 lines: longest main-thread task {page.evaluate('window.longest'):.0f} ms")
