"""The status page as a person uses it, in a real headless Chromium (Debian's `chromium`,
driven by Playwright): overview → a count → the sessions behind it → one session's timeline →
sign in → retry with a reason → the retry in its history. A screenshot of each page is written
to $LIVEDASH_SCREENSHOT_DIR (default: a temporary folder) for review.

Without Chromium or Playwright the module skips with the reason, unless
LIVEDASH_REQUIRE_BROWSER=1 (CI sets it): then it fails, as the PostgreSQL tests do."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from cli.runtime import Runtime
from cli.web.app import build_app
from processors.clock import utc_now
from processors.service.backend import Backend
from tests.web_seed import Seeded, seed

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("LIVEDASH_CHROMIUM", "/usr/bin/chromium")
TOKEN = "browser-test-token"


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set LIVEDASH_CHROMIUM)"
    return None


@dataclass
class Site:
    base: str
    seeded: Seeded
    shots: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    missing = _missing()
    if missing:
        if os.environ.get("LIVEDASH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LIVEDASH_REQUIRE_BROWSER=1 but {missing}", pytrace=False)
        pytest.skip(missing)
    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'web.db'}"
    seeded = seed(url, folder / "data")
    shots = Path(os.environ.get("LIVEDASH_SCREENSHOT_DIR") or folder / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with Runtime.open(url) as rt:
        backend = Backend(app=rt.app, engine=rt.engine, runner=rt.runner, clock=utc_now)
        config = uvicorn.Config(
            build_app(backend, TOKEN), host="127.0.0.1", port=0, log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="web-test-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield Site(f"http://127.0.0.1:{port}", seeded, shots)
        finally:
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(site: Site) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.set_default_timeout(10_000)
            errors: list[str] = []
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.console_errors = errors  # type: ignore[attr-defined]
            yield tab
        finally:
            browser.close()


def shoot(page: Any, site: Site, name: str) -> Path:
    path = site.shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000, f"{path} is empty"
    return path


def test_operator_follows_a_failure_signs_in_and_retries_it(page: Any, site: Site) -> None:
    failed_id = site.seeded.failed_external_id
    page.goto(site.base + "/")
    assert page.locator("#matrix").is_visible()
    assert page.locator("svg.chart polyline").count() >= 4
    shoot(page, site, "1-overview")

    page.locator("#matrix tr", has_text="TRANSCRIPT_FETCH").locator("a.status-FAILED").click()
    page.wait_for_url(re.compile(r"/sessions\?.*status=FAILED"))
    links = page.locator("a.session-link")
    assert links.count() >= 2
    shoot(page, site, "2-sessions-failed-fetch")

    page.locator("a.session-link", has_text=failed_id).click()
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]+$"))
    timeline = page.locator("#timeline")
    assert "StageFailed" in timeline.inner_text()
    assert "not_found" in timeline.inner_text()
    assert page.locator("#private").is_visible(), "no transcript before signing in"
    shoot(page, site, "3-session-failed")

    page.locator("#sign-in").click()
    page.wait_for_url(re.compile(r"/login\?"))
    page.fill("#name", "carol")
    page.fill("#token", TOKEN)
    shoot(page, site, "4-sign-in")
    page.locator("#login-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]+$"))
    assert page.locator("#operator").inner_text() == "carol"

    page.fill("#retry-reason", "transcript uploaded again")
    page.locator("#retry-button").click()
    page.wait_for_selector("#flash")
    assert "1 sent back to PENDING" in page.locator("#flash").inner_text()
    reset = page.locator("#timeline li.event-StageReset")
    assert reset.count() == 1
    assert "transcript uploaded again" in reset.inner_text()
    assert "web:carol" in reset.inner_text()
    shoot(page, site, "5-session-retried")


def test_the_other_pages_render_without_errors(page: Any, site: Site) -> None:
    for name, path in (
        ("6-failures", "/failures"),
        ("7-companies", "/companies"),
        ("8-costs", "/costs"),
    ):
        page.goto(site.base + path)
        assert page.locator("h1").is_visible()
        shoot(page, site, name)
    assert page.console_errors == [], "no script or CSP errors in the console"
    shots = sorted(site.shots.glob("[678]-*.png"))
    assert len(shots) == 3 and all(p.stat().st_size > 1000 for p in shots)
