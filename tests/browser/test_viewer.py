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

from .conftest import LogPage, click, page_errors, screenshot, texts, wait_until

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


def test_scrolling_up_pauses_follow_and_the_end_key_shows_what_came_meanwhile(
    browser, server, kube, task_id
):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "".join(f"line {n}\n" for n in range(1, 201)))
    page = LogPage(browser, log_url(server(), task_id))
    wait_until(lambda: page.lines() and page.lines()[-1]["line"] == 200, describe=page.describe)
    page.scroll_by(-1500)
    wait_until(lambda: page.status()[0] == "running" and "paused" in page.status()[1])
    shown = [line["line"] for line in page.visible_lines()]
    assert shown and shown[-1] < 200
    kube.write_log(wf.pod(), "main", "".join(f"line {n}\n" for n in range(201, 231)))
    wait_until(lambda: "30 new" in page.status()[1], describe=page.describe)
    assert [line["line"] for line in page.visible_lines()] == shown, "paused: the view stays put"
    assert browser.find_element(By.ID, "follow").is_displayed()
    page.press(Keys.END)
    wait_until(lambda: page.visible_lines()[-1]["line"] == 230, describe=page.describe)
    assert [line["text"] for line in page.visible_lines()][-3:] == [
        "line 228",
        "line 229",
        "line 230",
    ]
    assert "following" in page.status()[1]
    kube.write_log(wf.pod(), "main", "line 231\n")
    wait_until(lambda: page.visible_lines()[-1]["line"] == 231, describe=page.describe)
    page.scroll_by(-600)  # once more, resumed by the button this time
    wait_until(lambda: browser.find_element(By.ID, "follow").is_displayed())
    kube.write_log(wf.pod(), "main", "line 232\n")
    wait_until(lambda: "1 new" in page.status()[1], describe=page.describe)
    browser.find_element(By.ID, "follow").click()
    wait_until(lambda: page.visible_lines()[-1]["line"] == 232, describe=page.describe)


def test_a_line_link_opens_with_the_line_on_screen_and_highlighted(browser, server, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "".join(f"row {n}\n" for n in range(1, 3001)))
    scenarios.finish(kube, wf)
    url = log_url(server(), task_id)
    page = LogPage(browser, url + "#L500")
    page.wait_state("complete")
    wait_until(lambda: any(line["line"] == 500 for line in page.visible_lines()), 5, page.describe)
    [line] = [line for line in page.visible_lines() if line["line"] == 500]
    assert line["hl"] and line["text"] == "row 500"
    assert [n["line"] for n in page.visible_lines() if n["hl"]] == [500]

    page.press(Keys.PAGE_DOWN)  # the keyboard moves the view a screen at a time
    wait_until(lambda: page.visible_lines()[0]["line"] > 520, describe=page.describe)
    page.press(Keys.PAGE_UP)
    wait_until(lambda: page.visible_lines()[0]["line"] < 500, describe=page.describe)

    page = LogPage(browser, url + "#L1200-L1210")
    wait_until(
        lambda: [n["line"] for n in page.visible_lines() if n["hl"]] == list(range(1200, 1211))
    )
    click(browser, '[data-line="1195"] a.ln')
    assert browser.current_url.endswith("#L1195")
    click(browser, '[data-line="1198"] a.ln', shift=True)
    assert browser.current_url.endswith("#L1195-L1198")
    assert [n["line"] for n in page.visible_lines() if n["hl"]] == [1195, 1196, 1197, 1198]
    assert "pod=" not in browser.current_url or wf.pod() in browser.current_url


def test_search_counts_what_grep_counts_and_steps_through_matches(
    browser, server, kube, task_id, tmp_path
):
    wf = scenarios.workflow(kube, task_id)
    text = "".join(
        f"{n} {'ERROR disk full' if n % 7 == 0 else 'ok'}{' error lower' if n % 11 == 0 else ''}\n"
        for n in range(1, 2001)
    )
    kube.write_log(wf.pod(), "main", text)
    scenarios.finish(kube, wf)
    log_file = tmp_path / "pod.log"
    log_file.write_bytes(kube.log_bytes(wf.pod(), "main"))

    def grep_count(*flags):
        result = subprocess.run(["grep", "-c", *flags, str(log_file)], capture_output=True)
        return int(result.stdout)

    page = LogPage(browser, log_url(server(), task_id))
    page.wait_state("complete")
    box = browser.find_element(By.ID, "grep-q")
    box.send_keys("ERROR", Keys.ENTER)
    wait_until(lambda: page.match_count() == f"{grep_count('ERROR')} matches", 5, page.match_count)
    assert "q=ERROR" in browser.current_url
    browser.find_element(By.ID, "grep-next").click()
    wait_until(lambda: page.match_count().startswith("1 of "))
    wait_until(lambda: any(n["line"] == 7 for n in page.visible_lines()), describe=page.describe)
    assert texts(browser, '[data-line="7"] .match') == ["ERROR"]
    browser.find_element(By.ID, "grep-next").click()
    wait_until(lambda: page.match_count().startswith("2 of "))
    browser.find_element(By.ID, "grep-prev").click()
    browser.find_element(By.ID, "grep-prev").click()
    wait_until(lambda: page.match_count().startswith(f"{grep_count('ERROR')} of "))
    wait_until(lambda: any(n["line"] == 1995 for n in page.visible_lines()), describe=page.describe)

    browser.find_element(By.ID, "grep-ic").click()
    wait_until(lambda: page.match_count() == f"{grep_count('-i', 'ERROR')} matches", 5)
    assert "ic=1" in browser.current_url
    # only the matches, with two lines of context each side
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "grep-context")).select_by_value("2")
    wait_until(lambda: page.lines() and page.lines()[0]["line"] == 5, describe=page.describe)
    assert [n["line"] for n in page.lines()[:5]] == [5, 6, 7, 8, 9]

    # a bad regular expression: the API's message, nothing else changes
    Select(browser.find_element(By.ID, "grep-context")).select_by_value("")
    browser.find_element(By.ID, "grep-regex").click()
    box.clear()
    box.send_keys("(unclosed", Keys.ENTER)
    wait_until(lambda: "grep" in page.match_count(), 5, page.match_count)
    assert page.state() == "complete"


def worker_pids(master: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == master:
                        pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def test_the_worker_sigkilled_mid_tail_the_page_reconnects_without_gap_or_duplicate(
    browser, server, kube, task_id
):
    gunicorn = server()
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "".join(f"first {n}\n" for n in range(1, 11)))
    page = LogPage(browser, log_url(gunicorn, task_id))
    wait_until(lambda: len(page.lines()) == 10, describe=page.describe)
    [worker] = worker_pids(gunicorn.process.pid)
    os.kill(worker, signal.SIGKILL)
    for n in range(1, 11):  # written while no worker serves the page
        kube.write_log(wf.pod(), "main", f"meanwhile {n}\n")
    wait_until(lambda: page.state() == "reconnecting", 5, page.describe)
    assert page.status()[0] == "reconnecting"
    wait_until(lambda: page.state() == "live", 20, page.describe)
    assert worker_pids(gunicorn.process.pid) != [worker], "a new worker serves the page"
    for n in range(1, 11):
        kube.write_log(wf.pod(), "main", f"after {n}\n")
    scenarios.finish(kube, wf)
    page.wait_state("complete", timeout=15)
    expected = kube.log_bytes(wf.pod(), "main").decode()
    lines = page.lines()
    assert [line["line"] for line in lines] == list(range(1, 31)), "no gap, no duplicate"
    assert "".join(line["text"] + "\n" for line in lines) == expected


def test_ansi_colours_become_styles_and_other_escapes_are_dropped(browser, server, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(
        wf.pod(),
        "main",
        "plain \x1b[31mred\x1b[0m and \x1b[1;32mbold green\x1b[0m\n"
        "\x1b[38;5;208morange256\x1b[0m \x1b[38;2;10;20;30mtruecolor\x1b[39m\n"
        "\x1b]0;window title\x07cursor\x1b[2Aup\x1b[?25l hidden\n"
        "progress 10%\rprogress 50%\rprogress 100%\n"
        "downloading \x1b[33m[####      ]\x1b[0m\r\x1b[Kdone\n",
    )
    scenarios.finish(kube, wf)
    page = LogPage(browser, log_url(server(), task_id))
    page.wait_state("complete")
    wait_until(lambda: len(page.lines()) == 5, describe=page.describe)
    texts = [line["text"] for line in page.lines()]
    assert texts == [
        "plain red and bold green",
        "orange256 truecolor",
        "cursorup hidden",
        "progress 100%",
        "done",
    ]
    spans = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-line] .text span')).map(s => ({"
        " text: s.textContent, cls: s.className, color: getComputedStyle(s).color,"
        " weight: getComputedStyle(s).fontWeight}))"
    )
    styled = {span["text"]: span for span in spans}
    assert (
        styled["red"]["cls"] == "ansi-fg-1"
        and styled["red"]["color"] != styled["bold green"]["color"]
    )
    assert "ansi-bold" in styled["bold green"]["cls"] and int(styled["bold green"]["weight"]) >= 700
    assert styled["orange256"]["color"] == "rgb(255, 135, 0)"
    assert styled["truecolor"]["color"] == "rgb(10, 20, 30)"
    assert "plain " not in styled and "\x1b" not in "".join(texts)


def test_log_text_that_looks_like_html_is_shown_as_text_and_runs_nothing(
    browser, server, kube, task_id
):
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    attack = "<img src=x onerror=alert(1)>"
    kube.write_log(wf.pod("a"), "main", f"{attack}\n<script>alert(2)</script>\n")
    kube.write_log(wf.pod("b"), "main", '"><svg onload=alert(3)>\n')
    scenarios.finish(kube, wf)
    gunicorn = server()
    page = LogPage(browser, log_url(gunicorn, task_id) + f"?q={attack}")
    page.wait_state("complete")
    wait_until(lambda: len(page.lines()) == 3, describe=page.describe)
    assert sorted(line["text"] for line in page.lines()) == sorted(
        [attack, "<script>alert(2)</script>", '"><svg onload=alert(3)>']
    )
    time.sleep(0.5)
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - raises when no alert ran
    assert (
        browser.execute_script(
            "return document.querySelectorAll('#window img, #window script, #window svg').length"
        )
        == 0
    )
    wait_until(lambda: page.match_count() == "1 match", 5, page.match_count)
    policy = gunicorn.url(f"/ui/namespaces/argo/tasks/{task_id}")
    import urllib.request

    with urllib.request.urlopen(policy) as response:
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_a_million_stored_lines_open_at_the_end_quickly_with_few_elements(
    browser, server, database_url, task_id
):
    store_finished_log(database_url, task_id, 1_000_000)
    gunicorn = server()
    LogPage(browser, log_url(gunicorn, task_id)).wait_state("complete")  # a warm worker
    browser.get("about:blank")
    page = LogPage(browser, log_url(gunicorn, task_id))
    wait_until(lambda: any(n["line"] == 1_000_000 for n in page.visible_lines()), 5, page.describe)
    opened = time.monotonic() - page.opened
    assert opened < 2.0, f"the end of a 1,000,000-line log took {opened:.2f} s"
    assert (
        page.visible_lines()[-1]["text"]
        == "line 1000000 the quick brown fox jumps over the lazy dog"
    )
    assert page.line_elements() < 2000
    page.screenshot("log-view-million.png")

    # far from the end: fetched by range (from_line/limit), still few elements
    page.press(Keys.HOME)
    wait_until(
        lambda: page.visible_lines() and page.visible_lines()[0]["line"] == 1, 5, page.describe
    )
    wait_until(
        lambda: page.visible_lines()[0]["text"].startswith("line 0000001 "), 5, page.describe
    )
    browser.get(log_url(gunicorn, task_id, "#L654321"))
    wait_until(
        lambda: [n["line"] for n in page.visible_lines() if n["hl"]] == [654321], 5, page.describe
    )
    [line] = [n for n in page.visible_lines() if n["hl"]]
    assert line["text"].startswith("line 0654321 ")
    assert page.line_elements() < 2000


def test_the_task_list_filters_pages_and_links_to_each_log(browser, server, database_url):
    prefix = f"list-{time.monotonic_ns() % 10**8}"
    for n in range(3):
        store_finished_log(database_url, f"{prefix}-{n}", 10 + n)
    gunicorn = server()
    browser.get(gunicorn.url(f"/?prefix={prefix}&limit=2"))
    root = browser.find_element(By.ID, "task-list")
    wait_until(lambda: root.get_attribute("data-state") == "complete")
    first = [
        row.get_attribute("data-task")
        for row in browser.find_elements(By.CSS_SELECTOR, "#tasks tr")
    ]
    assert len(first) == 2 and all(name.startswith(prefix) for name in first)
    browser.find_element(By.ID, "next-page").click()
    wait_until(
        lambda: "cursor=" in browser.current_url and root.get_attribute("data-state") == "complete"
    )
    second = [
        row.get_attribute("data-task")
        for row in browser.find_elements(By.CSS_SELECTOR, "#tasks tr")
    ]
    assert len(second) == 1 and set(first + second) == {f"{prefix}-{n}" for n in range(3)}
    assert browser.find_element(By.ID, "next-page").get_attribute("disabled")
    browser.back()
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#tasks tr")) == 2)

    browser.get(gunicorn.url(f"/?prefix={prefix}"))
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#tasks tr")) == 3)
    row = browser.find_element(By.CSS_SELECTOR, f'#tasks tr[data-task="{prefix}-2"]')
    cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1:3] == ["argo", "Succeeded"] and cells[5:7] == ["1", "12"]
    screenshot(browser, "task-list.png")
    row.find_element(By.TAG_NAME, "a").click()
    page = LogPage(browser, browser.current_url)
    page.wait_state("complete")
    wait_until(lambda: len(page.lines()) == 12, describe=page.describe)

    browser.get(gunicorn.url("/?phase=Bogus"))  # the API's message, in the page
    wait_until(lambda: root_state(browser) == "error")
    assert "phase" in browser.find_element(By.CSS_SELECTOR, "[data-role=message]").text


def root_state(browser):
    return browser.execute_script("return document.getElementById('task-list').dataset.state")


def test_the_search_box_reads_the_search_api_or_says_it_is_missing(browser, server, database_url):
    gunicorn = server()
    needle = f"needle{time.monotonic_ns() % 10**9}"
    task_id = f"search-{time.monotonic_ns() % 10**8}"
    store_finished_log(
        database_url, task_id, 20, line_text=lambda n: f"row {n} {needle if n == 5 else ''}\n"
    )
    browser.get(gunicorn.url("/"))
    browser.find_element(By.ID, "search-q").send_keys(needle, Keys.ENTER)
    message = browser.find_element(By.CSS_SELECTOR, "[data-role=search-message]")
    count = browser.find_element(By.CSS_SELECTOR, "[data-role=search-count]")
    wait_until(lambda: message.text or count.text not in ("", "…"))
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(gunicorn.url(f"/api/v1/search?q={needle}"))
        present = True
    except urllib.error.HTTPError as error:
        present = error.code != 404
    if not present:  # the route comes with the search branch
        assert message.text == "Search across tasks is not available on this server."
        assert not browser.find_elements(By.CSS_SELECTOR, ".hits li")
        return
    [hit] = browser.find_elements(By.CSS_SELECTOR, ".hits li")
    assert count.text == "1 line" and f"row 5 {needle}" in hit.text
    link = hit.find_element(By.TAG_NAME, "a")
    assert link.get_attribute("href").endswith("#L5") and f"q={needle}" in link.get_attribute(
        "href"
    )
    link.click()
    page = LogPage(browser)
    wait_until(
        lambda: [n["line"] for n in page.visible_lines() if n["hl"]] == [5], describe=page.describe
    )
    wait_until(lambda: page.match_count() == "1 match")


def test_token_mode_asks_once_and_keeps_the_token_for_the_session(browser, server, kube, task_id):
    gunicorn = server(TASKLOGS_AUTH="token", TASKLOGS_API_TOKEN="s3cret-token")
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "needs a token\n")
    browser.get(log_url(gunicorn, task_id))
    dialog = browser.find_element(By.ID, "token-dialog")
    wait_until(lambda: dialog.is_displayed(), describe=lambda: browser.page_source[:300])
    field = dialog.find_element(By.TAG_NAME, "input")
    field.send_keys("wrong", Keys.ENTER)
    wait_until(lambda: dialog.is_displayed(), describe=lambda: "asked again after a bad token")
    assert "token" in dialog.text.lower()
    field.send_keys("s3cret-token", Keys.ENTER)
    page = LogPage(browser)
    page.wait_state("live", timeout=15)
    wait_until(
        lambda: [n["text"] for n in page.lines()] == ["needs a token"], describe=page.describe
    )
    assert (
        browser.execute_script("return sessionStorage.getItem('tasklogs.token')") == "s3cret-token"
    )
    browser.get(gunicorn.url("/"))  # the list page reads with the same token, no question
    wait_until(lambda: root_state(browser) == "complete")
    assert not browser.find_element(By.ID, "token-dialog").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, f'#tasks tr[data-task="{task_id}"]')
    browser.execute_script("sessionStorage.clear()")


def test_what_the_api_refuses_is_said_in_the_status_bar(browser, server, task_id):
    gunicorn = server()
    for path, words in [
        (f"/ui/namespaces/argo/tasks/{task_id}", "not"),
        ("/ui/namespaces/argo/tasks/Bad_Id", "Kubernetes object name"),
        (f"/ui/namespaces/elsewhere/tasks/{task_id}", "elsewhere"),
    ]:
        page = LogPage(browser, gunicorn.url(path))
        page.wait_state("error")
        status, text = page.status()
        assert status == "error" and text.startswith("Error: ") and words in text, text


def test_all_pods_as_one_timeline_each_line_marked_with_its_step(browser, server, kube, task_id):
    wf = scenarios.workflow(kube, task_id, ["build", "test"])
    base = 1_767_322_800 * 10**9
    for n in range(6):  # interleaved in time, written pod by pod
        kube.write_log(wf.pod("build"), "main", f"build {n}\n", ts=base + (2 * n) * 10**9)
    for n in range(6):
        kube.write_log(wf.pod("test"), "main", f"test {n}\n", ts=base + (2 * n + 1) * 10**9)
    gunicorn = server()
    page = LogPage(browser, log_url(gunicorn, task_id))
    page.wait_state("live")
    wait_until(lambda: len(page.lines()) == 12, describe=page.describe)
    assert [line["text"] for line in page.lines()] == [
        f"{step} {n}" for n in range(6) for step in ("build", "test")
    ]
    steps = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-line] .step')).map(s => s.textContent)"
    )
    assert steps == [
        wf.pod(step)[len(task_id) + 1 :] for _ in range(6) for step in ("build", "test")
    ]
    assert [line["pod"] for line in page.lines()[:2]] == [wf.pod("build"), wf.pod("test")]
    kube.write_log(wf.pod("test"), "main", "test live\n")
    wait_until(lambda: page.lines()[-1]["text"] == "test live", describe=page.describe)
    assert page.lines()[-1]["pod"] == wf.pod("test")

    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "log-select")).select_by_value(f"{wf.pod('build')}/main")
    wait_until(lambda: {line["pod"] for line in page.lines()} == {wf.pod("build")})
    assert f"pod={wf.pod('build')}" in browser.current_url
    assert [line["line"] for line in page.lines()] == list(range(1, 7))

    # timestamps (UTC, then local), wrap: in the address, so a reload keeps them
    Select(browser.find_element(By.ID, "ts-mode")).select_by_value("utc")
    stamps = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-line] .ts')).map(s => s.textContent)"
    )
    assert stamps[0] == "2026-01-02 03:00:00.000Z" and stamps[1] == "2026-01-02 03:00:02.000Z"
    browser.find_element(By.ID, "wrap").click()
    assert "ts=utc" in browser.current_url and "wrap=1" in browser.current_url
    browser.refresh()
    page = LogPage(browser)
    wait_until(lambda: len(page.lines()) == 6, describe=page.describe)
    assert browser.execute_script(
        "return document.getElementById('scroller').classList.contains('wrap')"
    )
    assert texts(browser, "[data-line] .ts")[0].endswith("Z")
    page.press("t")  # utc -> off, drawn on the next frame
    wait_until(lambda: not texts(browser, "[data-line] .ts"), describe=page.describe)
    page.press("t")  # off -> local
    wait_until(lambda: texts(browser, "[data-line] .ts"), describe=page.describe)
    local = texts(browser, "[data-line] .ts")[0]
    assert len(local) == len("2026-01-02 03:00:00.000") and not local.endswith("Z")


def test_download_and_copy(browser, server, kube, task_id, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    wf = scenarios.workflow(kube, task_id)
    text = "".join(f"copy me {n} \x1b[1mbold\x1b[0m\n" for n in range(1, 41))
    kube.write_log(wf.pod(), "main", text)
    scenarios.finish(kube, wf)
    gunicorn = server()
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    browser.execute_cdp_cmd(
        "Browser.grantPermissions",
        {
            "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
            "origin": gunicorn.url("").rstrip("/"),
        },
    )
    page = LogPage(browser, log_url(gunicorn, task_id, "#L3-L4"))
    page.wait_state("complete")
    wait_until(
        lambda: [n["line"] for n in page.lines() if n["hl"]] == [3, 4], describe=page.describe
    )
    browser.find_element(By.ID, "copy").click()
    copied = wait_until(
        lambda: browser.execute_async_script(
            "navigator.clipboard.readText().then(arguments[0], () => arguments[0](''))"
        )
    )
    assert copied == "copy me 3 bold\ncopy me 4 bold\n"
    browser.find_element(By.ID, "download").click()
    [name] = wait_until(lambda: [p for p in os.listdir(downloads) if p.endswith(".log")])
    assert name == f"{task_id}.log", "the name the API's Content-Disposition gives"
    wait_until(lambda: (downloads / name).read_bytes() == kube.log_bytes(wf.pod(), "main"))


def test_narrow_screen_and_dark_theme(browser, server, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(
        wf.pod(), "main", "".join(f"\x1b[3{n % 8}mcolour {n}\x1b[0m\n" for n in range(30))
    )
    gunicorn = server()
    browser.set_window_size(400, 800)
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    try:
        page = LogPage(browser, log_url(gunicorn, task_id))
        wait_until(lambda: page.lines() and page.lines()[-1]["line"] == 30, describe=page.describe)
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 400, "nothing sticks out sideways on a narrow screen"
        background = browser.execute_script(
            "return getComputedStyle(document.body).backgroundColor"
        )
        assert background == "rgb(13, 17, 23)"
        page.screenshot("log-view-narrow-dark.png")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        browser.set_window_size(1280, 1000)


ANSI_CASES = [
    ("plain", "plain"),
    ("a\x1b[31mb\x1b[mc", "abc"),
    ("\x1b[1;4;38;5;196mx", "x"),
    ("crlf line\r", "crlf line"),
    ("50%\r100%", "100%"),
    ("abcdef\rXY", "XYcdef"),
    ("long progress\r\x1b[Kok", "ok"),
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),
    ("bell\x07 and \x1b(B charset \x1b[?1049h", "bell and  charset "),
    ("back\x08\x08CK", "baCK"),
    ("tab\tkept \u00e9\U0001f600", "tab\tkept \u00e9\U0001f600"),
    ("cut escape \x1b[", "cut escape "),
]


def test_the_ansi_parser_keeps_text_and_drops_escapes(browser, server):
    browser.get(server().url("/"))
    results = browser.execute_async_script(
        "const [cases, done] = arguments;"
        "import('/ui/static/ansi.js').then(m => done(cases.map(c => m.plainText(c))));",
        [case for case, _ in ANSI_CASES],
    )
    assert results == [expected for _, expected in ANSI_CASES]
    styles = browser.execute_async_script(
        "const done = arguments[0];"
        "import('/ui/static/ansi.js').then(m => { const el = document.createElement('div');"
        " m.renderInto(el, '\\x1b[1;31mA\\x1b[22mB\\x1b[7mC\\x1b[0m D', /D/g);"
        " done(Array.from(el.childNodes).map(n => [n.textContent, n.className || ''])); });"
    )
    assert styles == [
        ["A", "ansi-fg-1 ansi-bold"],
        ["B", "ansi-fg-1"],
        ["C", "ansi-inverse-fg ansi-bg-1"],  # red on the default: the default colour on red
        [" ", ""],
        ["D", "match"],
    ]


def test_the_status_bar_says_waiting_then_running_then_pod_deleted(browser, server, kube, task_id):
    wf = scenarios.workflow(
        kube, task_id, phase="Pending", pod_phase="Pending", container_state="waiting"
    )
    page = LogPage(browser, log_url(server(), task_id))
    page.wait_state("live")
    wait_until(lambda: page.status()[0] == "waiting", 5, page.describe)
    assert page.status()[1] == "Waiting for the container to start…"

    def started(body):
        body["status"]["phase"] = "Running"

    kube.update_workflow(task_id, started)
    kube.set_pod_phase(wf.pod(), "Running")
    kube.set_container_state(wf.pod(), "main", "running")
    kube.write_log(wf.pod(), "main", "started\n")
    wait_until(lambda: [n["text"] for n in page.lines()] == ["started"], 10, page.describe)
    wait_until(lambda: page.status()[0] == "running", 5, page.describe)
    kube.delete_pod(wf.pod())
    wait_until(lambda: page.status()[0] == "gone", 10, page.describe)
    assert page.status()[1] == "Pod deleted: what was captured is all there is."
    assert [n["text"] for n in page.lines()] == ["started"], "what was captured stays"


def test_not_allowed_in_kubernetes_mode_says_so(browser, server, kube, task_id):
    kube.add_token("token-of-nobody", "nobody")
    scenarios.workflow(kube, task_id)
    gunicorn = server(TASKLOGS_AUTH="kubernetes")
    page = LogPage(browser, log_url(gunicorn, task_id))
    dialog = browser.find_element(By.ID, "token-dialog")
    wait_until(dialog.is_displayed)
    dialog.find_element(By.TAG_NAME, "input").send_keys("token-of-nobody", Keys.ENTER)
    page.wait_state("error")
    status, words = page.status()
    assert status == "forbidden" and words.startswith("Not allowed: ") and "argo" in words
    browser.execute_script("sessionStorage.clear()")


def test_degraded_when_the_database_is_down(browser, server, kube, task_id, db_proxy, database_url):
    gunicorn = server(DATABASE_URL=db_proxy.url(database_url.rsplit("/", 1)[1]))
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "from kubernetes\n")
    db_proxy.stop()
    page = LogPage(browser, log_url(gunicorn, task_id))
    wait_until(lambda: page.status()[0] == "degraded", 15, page.describe)
    assert (
        page.status()[1]
        == "Degraded: the database is unreachable: lines come from Kubernetes alone"
    )
    assert [n["text"] for n in page.lines()] == ["from kubernetes"]


@pytest.mark.parametrize("history", ["ties", "interleaved"])
def test_all_pods_reads_older_lines_when_scrolled_to_the_top(
    browser, server, kube, task_id, history
):
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    base = 1_767_322_800 * 10**9
    if history == "ties":
        # a's 2,500 lines share one timestamp (one write), b's 1,200 come a second later: more than
        # the snapshot's 1,000 lines of each, and ties that only line ranges can page through
        kube.write_log(wf.pod("a"), "main", "".join(f"a {n}\n" for n in range(1, 2501)), ts=base)
        kube.write_log(
            wf.pod("b"), "main", "".join(f"b {n}\n" for n in range(1, 1201)), ts=base + 10**9
        )
        expected = [(wf.pod("a"), n) for n in range(1, 2501)] + [
            (wf.pod("b"), n) for n in range(1, 1201)
        ]
    else:
        # 40 rounds of 60 lines from a then 40 from b, each round a second later
        expected, counts = [], {"a": 0, "b": 0}
        for round_ in range(40):
            for step, size in (("a", 60), ("b", 40)):
                lines = range(counts[step] + 1, counts[step] + size + 1)
                counts[step] += size
                text = "".join(f"{step} {n}\n" for n in lines)
                kube.write_log(wf.pod(step), "main", text, ts=base + round_ * 10**9)
                expected += [(wf.pod(step), n) for n in lines]
    scenarios.finish(kube, wf)
    page = LogPage(browser, log_url(server(), task_id))
    page.wait_state("complete")

    def timeline():
        return browser.execute_script(
            "return window.tasklogsViewer.merged().map(r => [r.log.pod, r.line])"
        )

    wait_until(lambda: timeline() and timeline()[-1] == list(expected[-1]), describe=page.describe)
    for _ in range(20):
        if [tuple(item) for item in timeline()] == expected:
            break
        page.press(Keys.HOME)
        time.sleep(0.3)
    assert [tuple(item) for item in timeline()] == expected, "every line once, in time order"
    page.press(Keys.HOME)
    wait_until(
        lambda: page.visible_lines()[0] == {**page.visible_lines()[0], "line": 1, "text": "a 1"}
    )
    assert page.line_elements() < 100


def test_kubernetes_mode_reads_with_the_readers_own_token(browser, server, kube, task_id):
    kube.add_token("token-of-alice", "alice")
    kube.grant_log_reading("User", "alice", "argo")
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "for alice\n")
    page = LogPage(browser, log_url(server(TASKLOGS_AUTH="kubernetes"), task_id))
    dialog = browser.find_element(By.ID, "token-dialog")
    wait_until(dialog.is_displayed)
    dialog.find_element(By.TAG_NAME, "input").send_keys("token-of-alice", Keys.ENTER)
    page.wait_state("live", timeout=15)
    wait_until(lambda: [n["text"] for n in page.lines()] == ["for alice"], describe=page.describe)
    kube.write_log(wf.pod(), "main", "live for alice\n")  # the tail carries ?access_token=
    wait_until(lambda: len(page.lines()) == 2, describe=page.describe)
    browser.execute_script("sessionStorage.clear()")


def test_proxy_mode_needs_nothing_from_the_page(browser, server, kube, task_id):
    kube.grant_log_reading("User", "bob", "argo")
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "behind the proxy\n")
    gunicorn = server(TASKLOGS_AUTH="proxy", TASKLOGS_TRUSTED_PROXIES="127.0.0.1")
    browser.execute_cdp_cmd("Network.enable", {})
    # what an authenticating proxy adds to every request, the WebSocket's included
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"X-Forwarded-User": "bob"}})
    try:
        page = LogPage(browser, log_url(gunicorn, task_id))
        page.wait_state("live")
        wait_until(lambda: [n["text"] for n in page.lines()] == ["behind the proxy"])
        assert not browser.find_element(By.ID, "token-dialog").is_displayed()
        kube.write_log(wf.pod(), "main", "live\n")
        wait_until(lambda: len(page.lines()) == 2, describe=page.describe)
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        browser.execute_cdp_cmd("Network.disable", {})


def test_wrapped_long_lines_keep_the_newest_line_on_screen_while_following(
    browser, server, kube, task_id
):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(
        wf.pod(), "main", "".join(f"{n} " + "long words " * 40 + "\n" for n in range(1, 81))
    )
    page = LogPage(browser, log_url(server(), task_id, "?wrap=1"))
    page.wait_state("live")
    wait_until(
        lambda: page.visible_lines() and page.visible_lines()[-1]["line"] == 80,
        describe=page.describe,
    )
    heights = browser.execute_script(
        "return Array.from(document.querySelectorAll('#window [data-line]')).map(e => e.offsetHeight)"
    )
    assert heights and min(heights) >= 36, "each long line wraps onto two rows or more"
    kube.write_log(wf.pod(), "main", "81 " + "more words " * 40 + "\n")
    wait_until(
        lambda: page.visible_lines() and page.visible_lines()[-1]["line"] == 81,
        describe=page.describe,
    )


def test_the_server_unreachable_for_seconds_the_page_keeps_trying_and_resumes(
    browser, server, kube, task_id
):
    from testkit.tcpproxy import TcpProxy

    gunicorn = server()
    front = TcpProxy("127.0.0.1", gunicorn.port)  # "the network": cut, then back on the same port
    try:
        wf = scenarios.workflow(kube, task_id)
        kube.write_log(wf.pod(), "main", "".join(f"one {n}\n" for n in range(1, 6)))
        page = LogPage(browser, f"http://127.0.0.1:{front.port}/ui/namespaces/argo/tasks/{task_id}")
        wait_until(lambda: len(page.lines()) == 5, describe=page.describe)
        front.stop()  # every connection reset, new ones refused: the probe fails too
        kube.write_log(wf.pod(), "main", "".join(f"two {n}\n" for n in range(1, 6)))
        wait_until(lambda: page.state() == "reconnecting", 5, page.describe)
        time.sleep(3)  # several attempts fail meanwhile
        assert page.state() == "reconnecting"
        front.start()
        wait_until(lambda: page.state() == "live", 15, page.describe)
        scenarios.finish(kube, wf)
        page.wait_state("complete", timeout=15)
        lines = page.lines()
        assert [line["line"] for line in lines] == list(range(1, 11))
        assert "".join(n["text"] + "\n" for n in lines) == kube.log_bytes(wf.pod(), "main").decode()
    finally:
        front.stop()


def test_a_range_read_that_fails_says_why_and_is_read_again(
    browser, server, database_url, db_proxy, task_id
):
    store_finished_log(database_url, task_id, 5000)
    gunicorn = server(DATABASE_URL=db_proxy.url(database_url.rsplit("/", 1)[1]))
    page = LogPage(browser, log_url(gunicorn, task_id))
    page.wait_state("complete")
    wait_until(lambda: page.visible_lines() and page.visible_lines()[-1]["line"] == 5000)
    db_proxy.stop()
    page.press(Keys.HOME)  # line 1 is not in the page: a range read, which fails
    wait_until(lambda: page.status()[0] == "error", 15, page.describe)
    assert page.status()[1].startswith("Error: ") and page.status()[1].endswith("(retrying)")
    assert page.state() == "complete", "a failed read is no end of the view"
    assert all(line["pending"] for line in page.lines())
    db_proxy.start()
    wait_until(lambda: page.lines()[0]["text"].startswith("line 0000001 "), 20, page.describe)
    wait_until(lambda: page.status()[0] == "complete", 5, page.describe)


def test_a_link_to_a_line_not_written_yet_goes_there_when_it_comes(browser, server, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "".join(f"early {n}\n" for n in range(1, 11)))
    page = LogPage(browser, log_url(server(), task_id, "#L150"))
    page.wait_state("live")
    wait_until(lambda: len(page.lines()) == 10, describe=page.describe)
    kube.write_log(wf.pod(), "main", "".join(f"later {n}\n" for n in range(11, 301)))
    wait_until(
        lambda: [n["line"] for n in page.visible_lines() if n["hl"]] == [150], 10, page.describe
    )
    assert page.visible_lines()[-1]["line"] < 300, "it stays at the line: follow is paused"
