"""Headless Chromium for the viewer's tests and bench: Debian's `chromium` driven through its own
`chromedriver` by Selenium. The paths are explicit and Selenium Manager stays offline, so no browser or
driver is ever downloaded."""

import os
import shutil

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1280, 1000)


def installed() -> bool:
    return bool(shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER))


def chrome_options(width: int = WINDOW[0], height: int = WINDOW[1]):
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


def start_chrome(width: int = WINDOW[0], height: int = WINDOW[1]):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager never fetches anything
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=chrome_options(width, height))
