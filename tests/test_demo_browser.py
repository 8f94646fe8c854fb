"""`textgan demo` and an exported Space's app.py driven by a headless Chromium: ten lines read
from the page equal `textgan sample`'s, a bad value gets its message, and the server answers
the next request.

Skipped, saying why, where Selenium, Gradio, Chromium or chromedriver is missing;
``TEXTGAN_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a failure. Both servers start at
once on free ports and are always stopped; every wait has a deadline, so a browser that fails
fails the test instead of hanging it.
"""

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from demo_helpers import SPACE_NAME, sample, tiny_run, tiny_space

from textgan.demo import free_port

REQUIRE = "TEXTGAN_REQUIRE_BROWSER"
WAIT_S = 90  # generous: a 2-core machine starts two servers and a browser at once
# Runs a Space folder's app.py as a Space would: textgan comes from that folder or not at all
# (this machine's installed textgan must not fill in a module the export left out).
SPACE_RUNNER = """
import importlib.machinery, runpy, sys

folder = sys.argv[1]


class OnlyTheSpace:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] != "textgan":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path or [folder])
        if spec is None:
            raise ModuleNotFoundError(f"{name} is not in the Space folder", name=name)
        return spec


sys.meta_path.insert(0, OnlyTheSpace)
try:
    import textgan.train
except ModuleNotFoundError:
    pass
else:
    sys.exit("the Space folder holds training code")
runpy.run_path(f"{folder}/app.py", run_name="__main__")
"""


def missing_tools() -> str | None:
    """What this machine lacks to drive a browser, None when nothing."""
    for module in ("selenium", "gradio"):
        if importlib.util.find_spec(module) is None:
            return f"needs {module} (pip install -e '.[dev]')"
    if chromium() is None or shutil.which("chromedriver") is None:
        return "needs Chromium and chromedriver (apt-get install chromium chromium-driver)"
    return None


def chromium() -> str | None:
    names = ("chromium", "chromium-browser", "google-chrome")
    return next((path for path in map(shutil.which, names) if path), None)


@pytest.fixture(scope="module")
def driver():
    problem = missing_tools()
    if problem is not None:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1 but the browser test {problem}")
        pytest.skip(f"browser test {problem}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium()  # the system's: nothing is downloaded
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    browser = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    browser.set_page_load_timeout(WAIT_S)
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    return tiny_space(tmp_path_factory)


class Server:
    """A page server in its own process, its output in a log file."""

    def __init__(self, args: list[str], port: int, log: Path, env: dict[str, str]) -> None:
        self.url, self.log = f"http://127.0.0.1:{port}/", log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, deadline: float) -> str:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url, timeout=5) as reply:
                if reply.status == 200:
                    return self.url
            time.sleep(0.5)
        pytest.fail(f"the server did not answer in {WAIT_S} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def servers(driver, run, space, tmp_path_factory):
    """The run's page (`textgan demo`) and the Space's app.py, started together."""
    logs = tmp_path_factory.mktemp("logs")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    run_port, space_port = free_port(), free_port()
    demo = [sys.executable, "-m", "textgan", "demo", str(run), "--device", "cpu"]
    runner = logs / "space_runner.py"
    runner.write_text(SPACE_RUNNER)
    started = [Server([*demo, "--port", str(run_port)], run_port, logs / "demo.log", env)]
    space_env = {**env, "GRADIO_SERVER_PORT": str(space_port)}
    command = [sys.executable, str(runner), str(space)]
    started.append(Server(command, space_port, logs / "space.log", space_env))
    try:
        deadline = time.monotonic() + WAIT_S
        yield {"run": started[0].wait_ready(deadline), "space": started[1].wait_ready(deadline)}
    finally:
        for server in started:
            server.stop()


def fill(driver, selector: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(By.CSS_SELECTOR, selector)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text, Keys.TAB)


def press(driver, selector: str, said: str) -> list:
    """Click ``selector`` (then Generate) and wait for a message that holds ``said``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.CSS_SELECTOR, selector).click()
    driver.find_element(By.ID, "generate").click()

    def message(browser):
        found = browser.find_elements(By.CSS_SELECTOR, "#status p")
        return [p for p in found if said in p.get_attribute("textContent")]

    return WebDriverWait(driver, WAIT_S).until(message)


def page_lines(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    items = driver.find_elements(By.CSS_SELECTOR, "#gan-samples li.sample")
    return [item.get_attribute("textContent") for item in items]


def drive(driver, url: str, source: list) -> None:
    """Ten lines equal `textgan sample`'s, then a bad value and a good request after it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, WAIT_S).until(lambda b: b.find_elements(By.ID, "generate"))
    fill(driver, "#n input", "10")
    fill(driver, "#seed textarea", "3")
    press(driver, "#decoding input[value='argmax']", "-n 10 --seed 3")
    lines = sample(*source, "-n", 10, "--seed", 3)
    assert page_lines(driver) == lines and len(lines) == 10

    fill(driver, "#temperature input", "-1")
    [error] = press(driver, "#decoding input[value='temperature']", "temperature must be")
    assert error.get_attribute("class") == "error" and page_lines(driver) == []

    fill(driver, "#temperature input", "0.7")
    fill(driver, "#n input", "5")
    fill(driver, "#seed textarea", "4")
    press(driver, "#decoding input[value='temperature']", "-n 5 --seed 4 --temperature 0.7")
    assert page_lines(driver) == sample(*source, "-n", 5, "--seed", 4, "--temperature", 0.7)


def test_run_page_gives_textgan_samples_in_a_browser(driver, servers, run):
    drive(driver, servers["run"], ["--run", run])
    assert "mark" in driver.find_element("id", "gan-samples").get_attribute("innerHTML")


def test_space_app_serves_the_same_page_from_its_folder(driver, servers, space):
    drive(driver, servers["space"], ["--model", space])
    heading = driver.find_element("tag name", "h1").get_attribute("textContent")
    assert heading == f"textgan: {SPACE_NAME}"
