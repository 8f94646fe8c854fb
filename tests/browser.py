"""A demo page driven by a headless Chromium: what the browser test (tests/test_demo_browser.py)
and the docs' screenshot (benchmarks/demo_screenshot.py) share.

It needs Selenium (the ``dev`` extra) and the system's Chromium with its chromedriver (Debian:
``apt-get install chromium chromium-driver``); nothing is downloaded. Every wait has a deadline,
so a page that never answers is an error, not a hang. The page itself never imports this module.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUMS = ("chromium", "chromium-browser", "google-chrome")


class PageError(RuntimeError):
    """The page server exited or did not answer in time (its log's tail attached)."""


def chromium() -> str | None:
    """The system's Chromium, None when there is none."""
    return next((path for path in map(shutil.which, CHROMIUMS) if path), None)


def missing_tools() -> str | None:
    """What this machine lacks to drive the page in a browser, None when nothing."""
    for module in ("selenium", "gradio"):
        if importlib.util.find_spec(module) is None:
            return f"needs {module} (pip install -e '.[dev]')"
    if chromium() is None or shutil.which("chromedriver") is None:
        return "needs Chromium and chromedriver (apt-get install chromium chromium-driver)"
    return None


def open_browser(width: int, height: int, wait_s: float) -> Any:
    """A headless Chromium of this window size whose page loads time out after ``wait_s``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    browser = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    browser.set_page_load_timeout(wait_s)
    return browser


class Server:
    """A page server in its own process, its output in a log file."""

    def __init__(self, args: list[str], port: int, log: Path, env: dict[str, str]) -> None:
        self.url, self.log = f"http://127.0.0.1:{port}/", log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, deadline: float) -> str:
        """The page's address once it answers; PageError if the server exits or the monotonic
        ``deadline`` passes first."""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PageError(f"the server exited: {self._tail()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url, timeout=5) as reply:
                if reply.status == 200:
                    return self.url
            time.sleep(0.5)
        raise PageError(f"the server did not answer in time: {self._tail()}")

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def load(driver: Any, url: str, wait_s: float) -> None:
    """Open the page and wait until its Generate button is there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, wait_s).until(lambda b: b.find_elements(By.ID, "generate"))


def fill(driver: Any, selector: str, text: str) -> None:
    """Replace the text of the field at ``selector`` and leave it (as a person would)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(By.CSS_SELECTOR, selector)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text, Keys.TAB)


def press(driver: Any, selector: str, said: str, wait_s: float) -> list:
    """Click ``selector``, then Generate, and wait for the status messages that hold ``said``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.CSS_SELECTOR, selector).click()
    driver.find_element(By.ID, "generate").click()

    def message(browser: Any) -> list:
        found = browser.find_elements(By.CSS_SELECTOR, "#status p")
        return [p for p in found if said in p.get_attribute("textContent")]

    return WebDriverWait(driver, wait_s).until(message)
