"""Headless Chromium for the browser tests (selenium), with its console and network logs readable.

Needs Debian's chromium and chromium-driver (`make test` installs them when it runs as root on Debian). Only
127.0.0.1 resolves: a page's pictures on other hosts fail at once instead of waiting on a network.
"""
from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")

needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="browser test needs Chromium and ChromeDriver: apt-get install chromium chromium-driver (make test does this as root)",
)


def chromium(width: int = 1280, height: int = 1600) -> Any:
    """A headless Chromium (selenium WebDriver) logging the console (browser) and the network (performance)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(width, height)
    return driver


class Network:
    """The requests a driver's pages sent, from Chrome's performance log (each read of the log drains it)."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.events: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """Every Network.* event logged so far (method and params), oldest first."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"].startswith("Network."):
                self.events.append(message)
        return self.events

    def requests(self, fragment: str) -> list[tuple[str, dict[str, Any]]]:
        """(request id, request) of every request sent to a URL containing fragment, oldest first."""
        return [(event["params"]["requestId"], event["params"]["request"]) for event in self.read()
                if event["method"] == "Network.requestWillBeSent" and fragment in event["params"]["request"]["url"]]

    def ended(self, fragment: str, how: str = "Network.loadingFinished") -> bool:
        """Whether a request to a URL containing fragment ended so: loadingFinished (an answer, any status) or
        loadingFailed (none: refused, blocked)."""
        ids = {request_id for request_id, _ in self.requests(fragment)}
        return any(event["method"] == how and event["params"]["requestId"] in ids for event in self.events)


def console_errors(driver: Any, ignore: tuple[str, ...] = ()) -> list[str]:
    """The console's SEVERE messages since the last read, but those containing one of `ignore`."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in ignore)]
