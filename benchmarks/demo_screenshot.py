"""The screenshot of docs/demo.png: `textgan demo SOURCE` in a headless Chromium, N samples of
one seed, argmax, the 5-gram baseline ticked, the page saved as a PNG::

    python benchmarks/demo_screenshot.py runs/small-final docs/demo.png --n 10 --seed 1

Needs the demo extra, Selenium and Debian's chromium + chromium-driver (as the browser test).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from textgan.sharing.demo import free_port

# The browser driver is test support (Selenium is a dev extra), not part of the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import PageError, Server, fill, load, missing_tools, open_browser, press

WAIT_S = 180


def shoot(driver, url: str, n: int, seed: int, png: str) -> None:
    """N samples of one seed, argmax, with the 5-gram baseline; the whole page as a PNG."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    load(driver, url, WAIT_S)
    fill(driver, "#n input", str(n))
    fill(driver, "#seed textarea", str(seed))
    press(driver, "#baseline input", f"-n {n} --seed {seed}", WAIT_S)
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
    args = parser.parse_args()
    problem = missing_tools()
    if problem is not None:
        sys.exit(f"the screenshot {problem}")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    port = free_port()
    command = [sys.executable, "-m", "textgan", "demo", args.source, "--device", "cpu"]
    with tempfile.TemporaryDirectory() as logs:
        server = Server([*command, "--port", str(port)], port, Path(logs) / "demo.log", env)
        driver = None
        try:
            url = server.wait_ready(time.monotonic() + WAIT_S)
            driver = open_browser(args.width, 1000, WAIT_S)
            shoot(driver, url, args.n, args.seed, args.png)
        except PageError as err:
            sys.exit(f"textgan demo: {err}")
        finally:
            if driver is not None:
                driver.quit()
            server.stop()
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
