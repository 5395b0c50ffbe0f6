"""The web UI in headless Chromium: the live runs list, a run's page (values,
timeline, live stream, events), cancelling, and the API token prompt.
Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import REQUIRE_BROWSER

try:
    from playwright.sync_api import expect
except ImportError:
    if REQUIRE_BROWSER:
        raise
    pytest.skip("the playwright package is not installed", allow_module_level=True)

from acceptance import web_workflows as ww  # noqa: E402

from .conftest import SCREENSHOTS, UiServer, serve  # noqa: E402

pytestmark = pytest.mark.slow
TIMEOUT_MS = 45_000


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # the page runs under the server's Content-Security-Policy (no eval): the
    # tests wait with locators and expect(), never with page-evaluated strings
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_runs_list_updates_live(ui: UiServer, page: Any) -> None:
    page.goto(ui.base_url + "/")
    page.wait_for_selector("#start-form:not(.hidden)")
    run = ui.engine.start(ww.quick, 21)  # started elsewhere: the list picks it up
    page.wait_for_selector(f'#runs-body tr[data-run="{run.id}"][data-status="completed"]')

    # start one from the page: it lands on the run's page, which shows it complete
    page.select_option("#start-workflow", ww.quick.name)
    page.fill("#start-args", "[5]")
    page.click("#start-form button[type=submit]")
    page.wait_for_url("**/#/runs/*")
    page.wait_for_selector("h1 .status.completed")
    assert page.text_content("#output").replace(" ", "").replace("\n", "") == '{"doubled":10}'
    page.go_back()

    failed = ui.engine.start(ww.failing, "kaboom")
    page.click('#status-filters [data-status="failed"]')
    page.wait_for_selector(f'#runs-body tr[data-run="{failed.id}"][data-status="failed"]')
    # the filtered list replaces the previous one: wait until it has re-rendered
    page.wait_for_function("""() => {
        const rows = [...document.querySelectorAll('#runs-body tr[data-run]')];
        return rows.length > 0 && rows.every(r => r.dataset.status === 'failed');
    }""")
    statuses = page.eval_on_selector_all("#runs-body tr[data-run]",
                                         "rows => rows.map(r => r.dataset.status)")
    assert set(statuses) == {"failed"}
    assert "status=failed" in page.url
    shot(page, "runs-list-failed")
    page.click(f'#runs-body tr[data-run="{failed.id}"] a')
    page.wait_for_selector("#run-error")
    assert "ValueError: kaboom" in page.text_content("#run-error")
    assert "Traceback" in page.text_content("#run-error")
    page.click('a[href="#/"]')
    page.click('#status-filters [data-status="all"]')
    page.wait_for_selector(f'#runs-body tr[data-run="{run.id}"]')
    shot(page, "runs-list")


def test_run_page_timeline_and_live_stream(ui: UiServer, page: Any) -> None:
    gate = f"ui-{uuid.uuid4()}"
    run = ui.engine.start(ww.showcase, gate)
    page.goto(f"{ui.base_url}/#/runs/{run.id}")
    stream = '.stream-chunks[data-stream="progress"]'
    expect(page.locator(stream)).to_contain_text("slept")
    assert page.text_content("h1 .status") == "running"
    assert page.is_visible("#cancel")
    # the timeline is drawn to scale: a retried step with its marker, the sleep
    page.wait_for_selector("#timeline-svg g.row.wait")
    assert page.locator("#timeline-svg g.row.step .marker").count() >= 1
    flaky = page.locator('#timeline-svg g.row.step:has(text:text-is("web.flaky ×2")) rect.bar')
    assert flaky.count() == 2  # one bar per attempt
    shot(page, "run-running")

    ww.gate(gate).set()  # the stream goes on, live, and ends
    expect(page.locator(stream)).to_contain_text("gate opened")
    page.wait_for_selector('.stream[data-stream="progress"] .status.completed')
    assert page.text_content(stream).split("\n")[:3] == ["starting", "slept", "gate opened"]
    page.wait_for_selector("h1 .status.completed")
    assert not page.is_visible("#cancel")
    events = run.events()
    expect(page.locator("#events-body tr")).to_have_count(len(events))
    types = page.eval_on_selector_all("#events-body tr td:nth-child(4)",
                                      "cells => cells.map(c => c.textContent)")
    assert types == [e.event_type for e in events]

    # to scale: the step that waited on the gate is the longest bar, the sleep (0.3 s)
    # is longer than the quick steps
    def widest(selector: str) -> float:
        widths = page.eval_on_selector_all(selector, "els => els.map(e => e.getBBox().width)")
        return float(max(widths))

    gate_bar = widest('#timeline-svg g.row.step:has(text:text-is("web.wait_for_gate")) rect')
    sleep_bar = widest("#timeline-svg g.row.wait rect")
    quick_bar = widest('#timeline-svg g.row.step:has(text:text-is("web.double")) rect')
    # Compare with the durations the run recorded, not with what we hoped they were.
    steps = {s.name: s for s in run.steps()}
    gate_step = steps["web.wait_for_gate"]
    assert gate_step.started_at and gate_step.completed_at
    gate_took = (gate_step.completed_at - gate_step.started_at).total_seconds()
    times = {e.event_type: e.created_at for e in events if e.event_type.startswith("wait_")}
    sleep_took = (times["wait_completed"] - times["wait_created"]).total_seconds()
    assert (gate_bar > sleep_bar) == (gate_took > sleep_took)
    assert sleep_bar > quick_bar
    shot(page, "run-completed")


def test_cancel_a_sleeping_run(ui: UiServer, page: Any) -> None:
    run = ui.engine.start(ww.sleeper, 3600)
    page.goto(f"{ui.base_url}/#/runs/{run.id}")
    page.wait_for_selector('#timeline-svg g.row.wait[data-status="waiting"]')
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    page.wait_for_selector("h1 .status.cancelled")
    assert run.status() == "cancelled"
    shot(page, "run-cancelled")


def test_token_prompt(ui: UiServer, page: Any) -> None:
    gate = f"tok-{uuid.uuid4()}"
    ww.gate(gate).set()
    run = ui.engine.start(ww.streamer, ["a", "b"], gate)
    with serve(ui.engine, api_token="ui-secret") as base:
        page.goto(base + "/")
        page.wait_for_selector("#token-panel:not(.hidden)")
        page.wait_for_selector("#error:not(.hidden)")
        page.fill("#token-input", "ui-secret")
        page.click("#token-form button[type=submit]")
        page.wait_for_selector("#runs-body tr[data-run]")
        assert page.evaluate("localStorage.getItem('perdure.token')") == "ui-secret"
        # the live stream authenticates with ?access_token= (EventSource sends no headers)
        page.goto(f"{base}/#/runs/{run.id}")
        page.wait_for_selector('.stream[data-stream="out"] .status.completed')
        assert page.text_content('.stream-chunks[data-stream="out"]').split() == \
            ["a", "b", "a", "b"]

        page.evaluate("localStorage.clear()")
        page.goto(f"{base}/?token=ui-secret#/")  # a link that carries the token, once
        page.wait_for_selector("#runs-body tr[data-run]")
        assert "token" not in page.url
        shot(page, "token")
