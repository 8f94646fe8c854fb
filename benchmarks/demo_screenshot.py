"""The screenshot of docs/demo.png: `textgan demo SOURCE` in a headless Chromium, N samples of
one seed, argmax, the 5-gram baseline ticked, the page saved as a PNG::

    python benchmarks/demo_screenshot.py runs/small-final docs/demo.png --n 10 --seed 1

Needs the demo extra, Selenium and Debian's chromium + chromium-driver (as the browser test).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import urllib.request

WAIT_S = 180


def browser(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def wait_for_page(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"textgan demo exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"textgan demo did not answer in {WAIT_S} s")


def shoot(driver, url: str, n: int, seed: int, png: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    def fill(selector: str, text: str) -> None:
        field = driver.find_element(By.CSS_SELECTOR, selector)
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.DELETE)
        field.send_keys(text, Keys.TAB)

    driver.get(url)
    WebDriverWait(driver, WAIT_S).until(lambda b: b.find_elements(By.ID, "generate"))
    fill("#n input", str(n))
    fill("#seed textarea", str(seed))
    driver.find_element(By.CSS_SELECTOR, "#baseline input").click()
    driver.find_element(By.ID, "generate").click()
    said = f"-n {n} --seed {seed}"
    WebDriverWait(driver, WAIT_S).until(
        lambda b: any(said in p.text for p in b.find_elements(By.CSS_SELECTOR, "#status p"))
    )
    WebDriverWait(driver, WAIT_S).until(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#kn5-samples li")) == n
    )
    time.sleep(1)  # the figures below the samples finish drawing
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(driver.get_window_size()["width"], height + 40)
    driver.save_screenshot(png)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a run, checkpoint, exported model or hub id")
    parser.add_argument("png", help="where the screenshot goes")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--port", type=int, default=7861)
    args = parser.parse_args()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-m", "textgan", "demo", args.source, "--device", "cpu"]
    server = subprocess.Popen([*command, "--port", str(args.port)], env=env)
    driver = None
    try:
        url = f"http://127.0.0.1:{args.port}/"
        wait_for_page(url, server)
        driver = browser(args.width, 1000)
        shoot(driver, url, args.n, args.seed, args.png)
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
