"""The built-in viewer in headless Chromium (Debian's chromium and chromium-driver, driven by Selenium),
against gunicorn with the gevent worker, PostgreSQL and the fake cluster. No browser is ever downloaded:
the driver's path and the browser's binary are given explicitly and Selenium Manager stays offline."""

import os
import signal
import time

import pytest

from testkit import ROOT
from testkit.browser import installed, start_chrome
from testkit.gunicorn import Gunicorn, service_env

SCREENSHOTS = os.path.join(ROOT, "docs", "screenshots")


@pytest.fixture(scope="session")
def chrome():
    if not installed():
        pytest.skip("chromium and chromium-driver are not installed (.ci/run installs them)")
    driver = start_chrome()
    yield driver
    driver.quit()


@pytest.fixture
def browser(chrome):
    """The session's browser, on a blank page with a clean session storage after the test."""
    yield chrome
    chrome.get("about:blank")
    chrome.delete_all_cookies()


@pytest.fixture
def server(chrome, database_url, kubeconfig, tmp_path):
    """`server(**env)`: gunicorn with one gevent worker on the test database and the fake cluster."""
    started = []

    def start(**env):
        env.setdefault("TASKLOGS_TAIL_COALESCE", "0.02")
        gunicorn = Gunicorn(
            service_env(database_url, kubeconfig, **env), 1, str(tmp_path / f"g{len(started)}.log")
        )
        started.append(gunicorn)
        return gunicorn

    yield start
    chrome.get("about:blank")  # the page's WebSocket closes first
    for gunicorn in started:
        # quick shutdown (SIGINT): a graceful one waits for the running tasks' captures
        if gunicorn.process.poll() is None:
            gunicorn.process.send_signal(signal.SIGINT)
        gunicorn.stop()


class LogPage:
    """The log view of one task, as a test reads it."""

    def __init__(self, driver, url: str | None = None):
        """Opens `url`, or reads the page the browser shows."""
        self.driver = driver
        self.opened = time.monotonic()
        if url:
            driver.get(url)

    def state(self) -> str:
        return self.driver.execute_script(
            "const v = document.getElementById('log-view'); return v && v.dataset.state"
        )

    def wait_state(self, *states, timeout: float = 10) -> str:
        return wait_until(lambda: self.state() in states and self.state(), timeout, self.describe)

    def lines(self) -> list[dict]:
        """The line elements in the page: their number, pod and text."""
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll('#window .line[data-line]')).map(e => ({"
            " line: Number(e.dataset.line), pod: e.dataset.pod, hl: e.classList.contains('hl'),"
            " pending: e.classList.contains('pending'),"
            " text: e.querySelector('.text').textContent}))"
        )

    def visible_lines(self) -> list[dict]:
        """The line elements inside the scroller's box (what a reader sees)."""
        return self.driver.execute_script(
            "const box = document.getElementById('scroller').getBoundingClientRect();"
            "return Array.from(document.querySelectorAll('#window .line[data-line]')).filter(e => {"
            " const r = e.getBoundingClientRect(); return r.top >= box.top - 1 && r.bottom <= box.bottom + 1;"
            "}).map(e => ({line: Number(e.dataset.line), pod: e.dataset.pod,"
            " hl: e.classList.contains('hl'), text: e.querySelector('.text').textContent}))"
        )

    def status(self) -> tuple[str, str]:
        return tuple(
            self.driver.execute_script(
                "const s = document.getElementById('status'); return [s.dataset.status, s.textContent]"
            )
        )

    def match_count(self) -> str:
        return self.driver.execute_script(
            "return document.querySelector('[data-role=match-count]').textContent"
        )

    def line_elements(self) -> int:
        return self.driver.execute_script("return document.querySelectorAll('[data-line]').length")

    def scroll_by(self, pixels: int) -> None:
        self.driver.execute_script(
            "const s = document.getElementById('scroller');"
            "s.dispatchEvent(new WheelEvent('wheel', {deltaY: arguments[0], bubbles: true}));"
            "s.scrollTop += arguments[0];",
            pixels,
        )

    def press(self, key) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.ID, "scroller").send_keys(key)

    def describe(self) -> str:
        errors = page_errors(self.driver)
        return (
            f"state={self.state()} status={self.status()} lines={self.lines()[-3:]} errors={errors}"
        )

    def screenshot(self, name: str) -> None:
        screenshot(self.driver, name)


def screenshot(driver, name: str) -> None:
    os.makedirs(SCREENSHOTS, exist_ok=True)
    driver.save_screenshot(os.path.join(SCREENSHOTS, name))


def texts(driver, selector: str) -> list[str]:
    """The text of every element `selector` finds, read at once (rows are rebuilt on every frame, so a
    row element found in one call may be gone by the next)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent)",
        selector,
    )


def click(driver, selector: str, shift: bool = False) -> None:
    """Click the element `selector` finds, found again if a new frame replaced it meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    for attempt in range(5):
        try:
            element = driver.find_element(By.CSS_SELECTOR, selector)
            if shift:
                ActionChains(driver).key_down(Keys.SHIFT).click(element).key_up(
                    Keys.SHIFT
                ).perform()
            else:
                element.click()
            return
        except StaleElementReferenceException:
            if attempt == 4:
                raise


def wait_until(condition, timeout: float = 10, describe=lambda: "", interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {describe()}")
        time.sleep(interval)


def page_errors(driver) -> list[str]:
    """Severe messages of the browser console (script errors, failed loads), minus the reconnects'."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "WebSocket" not in entry["message"]
    ]
