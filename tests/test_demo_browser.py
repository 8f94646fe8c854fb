"""`textgan demo` and an exported Space's app.py driven by a headless Chromium: ten lines read
from the page equal `textgan sample`'s, a bad value gets its message, and the server answers
the next request.

Skipped, saying why, where Selenium, Gradio, Chromium or chromedriver is missing;
``TEXTGAN_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a failure. Both servers start at
once on free ports and are always stopped; every wait has a deadline, so a browser that fails
fails the test instead of hanging it.
"""

import os
import sys
import time

import pytest
from browser import PageError, Server, fill, load, missing_tools, open_browser, press
from demo_helpers import ONLY_THE_SPACE, SPACE_NAME, sample, tiny_run, tiny_space

from textgan.sharing.demo import free_port

REQUIRE = "TEXTGAN_REQUIRE_BROWSER"
WAIT_S = 90  # generous: a 2-core machine starts two servers and a browser at once
# Runs a Space folder's app.py as a Space would, textgan from that folder alone.
SPACE_RUNNER = ONLY_THE_SPACE + 'runpy.run_path(f"{folder}/app.py", run_name="__main__")\n'


@pytest.fixture(scope="module")
def driver():
    problem = missing_tools()
    if problem is not None:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1 but the browser test {problem}")
        pytest.skip(f"browser test {problem}")
    browser = open_browser(1400, 1000, WAIT_S)
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    return tiny_space(tmp_path_factory)


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
        try:
            ready = [server.wait_ready(deadline) for server in started]
        except PageError as err:
            pytest.fail(str(err))
        yield dict(zip(("run", "space"), ready, strict=True))
    finally:
        for server in started:
            server.stop()


def page_lines(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    items = driver.find_elements(By.CSS_SELECTOR, "#gan-samples li.sample")
    return [item.get_attribute("textContent") for item in items]


def drive(driver, url: str, source: list) -> None:
    """Ten lines equal `textgan sample`'s, then a bad value and a good request after it."""
    load(driver, url, WAIT_S)
    fill(driver, "#n input", "10")
    fill(driver, "#seed textarea", "3")
    press(driver, "#decoding input[value='argmax']", "-n 10 --seed 3", WAIT_S)
    lines = sample(*source, "-n", 10, "--seed", 3)
    assert page_lines(driver) == lines and len(lines) == 10

    fill(driver, "#temperature input", "-1")
    [error] = press(driver, "#decoding input[value='temperature']", "temperature must be", WAIT_S)
    assert error.get_attribute("class") == "error" and page_lines(driver) == []

    fill(driver, "#temperature input", "0.7")
    fill(driver, "#n input", "5")
    fill(driver, "#seed textarea", "4")
    press(driver, "#decoding input[value='temperature']", "-n 5 --seed 4 --temperature 0.7", WAIT_S)
    assert page_lines(driver) == sample(*source, "-n", 5, "--seed", 4, "--temperature", 0.7)


def test_run_page_gives_textgan_samples_in_a_browser(driver, servers, run):
    drive(driver, servers["run"], ["--run", run])
    assert "mark" in driver.find_element("id", "gan-samples").get_attribute("innerHTML")


def test_space_app_serves_the_same_page_from_its_folder(driver, servers, space):
    drive(driver, servers["space"], ["--model", space])
    heading = driver.find_element("tag name", "h1").get_attribute("textContent")
    assert heading == f"textgan: {SPACE_NAME}"
