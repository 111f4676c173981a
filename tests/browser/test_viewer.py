"""The built-in viewer in a real browser: live lines, follow, line links, search, reconnect after a
SIGKILL, ANSI, log text that looks like HTML, a million stored lines, and the list page."""

import os
import signal
import subprocess
import time

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from testkit import scenarios
from testkit.storedlogs import store_finished_log

from .conftest import LogPage, page_errors, wait_until

pytestmark = pytest.mark.browser


def log_url(server, task_id: str, tail: str = "") -> str:
    return server.url(f"/ui/namespaces/argo/tasks/{task_id}{tail}")


def test_a_running_tasks_new_lines_appear_within_a_second(browser, server, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "".join(f"before {n}\n" for n in range(1, 6)))
    page = LogPage(browser, log_url(server(), task_id))
    page.wait_state("live")
    wait_until(lambda: len(page.lines()) == 5, describe=page.describe)
    assert page.status()[0] == "running"
    for n in range(1, 4):
        written = time.monotonic()
        kube.write_log(wf.pod(), "main", f"new line {n}\n")
        wait_until(lambda n=n: page.lines()[-1]["text"] == f"new line {n}", 5, page.describe)
        assert time.monotonic() - written < 1.0, "shown within one second of being written"
    assert [line["line"] for line in page.lines()] == list(range(1, 9))
    assert {line["pod"] for line in page.lines()} == {wf.pod()}
    page.screenshot("log-view.png")
    scenarios.finish(kube, wf)
    page.wait_state("complete")
    assert page.status()[0] == "complete"
    assert not page_errors(browser)
