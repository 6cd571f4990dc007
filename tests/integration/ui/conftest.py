"""Browser fixtures for the web console: the real daemon (real model, real Redis) and a
headless Chromium from Debian's packages driven by selenium.

Chromium and chromedriver come from ``ops/browser.sh`` (apt); where they are missing the
tests skip with the reason (shown by ``pytest -ra``), never silently.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.server.conftest import TOKEN, Daemon, guard_pack, start_daemon

__all__ = ["guard_pack"]  # the server tests' pack fixture, used here too

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
COMMITTED_SCREENSHOTS = Path(__file__).resolve().parents[3] / "ops" / "bench" / "results" / "ui"


def screenshot_dir() -> Path:
    """Where the browser tests save their screenshots: the committed README images only
    when asked (``SAEGUARD_UI_SCREENSHOTS=1``, to refresh them), else a temporary folder,
    so a test run never rewrites tracked files."""
    if os.environ.get("SAEGUARD_UI_SCREENSHOTS") == "1":
        return COMMITTED_SCREENSHOTS
    return Path(tempfile.gettempdir()) / "saeguard-ui-screenshots"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1500,1000")
WAIT_S = 90.0


@pytest.fixture(scope="module")
def console_daemon(loaded_model, guard_pack, _redis_session, tmp_path_factory) -> Iterator[Daemon]:
    with start_daemon(loaded_model, guard_pack, _redis_session.url, tmp_path_factory.mktemp("ui")) as d:
        yield d


@pytest.fixture(scope="module")
def chromium() -> None:
    """Skip (with the reason) where the browser or its driver is missing."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); "
                    "install them with ops/browser.sh")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("needs selenium (pinned in ops/requirements.txt; pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def browser(chromium, console_daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium; closed before the daemon stops (its alert feed is a long-lived request)."""
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = WAIT_S, what: str = "") -> Any:
    """Poll ``condition`` until it holds. An element the page re-rendered between finding it
    and reading it (a list refreshed by the search) counts as "not yet", not as a failure."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition, message=what)


@pytest.fixture
def console(browser, console_daemon) -> Any:
    """The console page, freshly loaded and logged in (the token lives in sessionStorage)."""
    from selenium.webdriver.common.by import By

    browser.get(f"{console_daemon.base}/ui/")
    wait_for(browser, lambda d: d.find_element(By.ID, "login").is_displayed() or d.find_element(By.ID, "app").is_displayed(),
             what="the page did not show the login form or the app")
    if browser.find_element(By.ID, "login").is_displayed():
        browser.find_element(By.ID, "login-token").send_keys(TOKEN)
        browser.find_element(By.ID, "login-submit").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "app").is_displayed(), what="login did not open the app")
    return browser


def screenshot(driver: Any, name: str) -> Path:
    folder = screenshot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
