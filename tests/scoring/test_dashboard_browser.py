"""The dashboard in a real browser: headless Chromium, driven over the DevTools protocol.

Chromium talks DevTools over a pair of pipes (``--remote-debugging-pipe``:
it reads commands on fd 3 and writes replies on fd 4, NUL-separated JSON), so
the test opens no port. Skips when no Chromium binary is found
(``apt-get install chromium``; or set ``CHROMIUM_BIN``).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from utils.scoring import dashboard
from utils.scoring import monitoring

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell")
TOP_N = 30


def chromium_binary() -> str | None:
    explicit = os.environ.get("CHROMIUM_BIN")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return next((path for path in map(shutil.which, BROWSER_NAMES) if path), None)


class DevTools:
    """A minimal DevTools client over Chromium's pipe transport."""

    def __init__(self, binary: str, profile: Path):
        to_browser_read, self._write_fd = os.pipe()
        self._read_fd, from_browser_write = os.pipe()
        # Lift the child's ends above 4 (on free fds), so placing them on 3 and 4 cannot clobber one another.
        child_read = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_write = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_browser_read, from_browser_write):
            os.close(fd)

        def place_pipes():  # runs in the child before exec; dup2 makes 3 and 4 inheritable
            os.dup2(child_read, 3)
            os.dup2(child_write, 4)

        self.process = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-extensions",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            close_fds=False,
            preexec_fn=place_pipes,  # every other fd of ours is close-on-exec already
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(child_read)
        os.close(child_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        self.session: str | None = None

    def send(self, method: str, params: dict | None = None, timeout: float = 30, browser_level: bool = False) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not browser_level:
            message["sessionId"] = self.session
        os.write(self._write_fd, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _receive(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._read_fd], [], [], remaining)[0]:
                raise TimeoutError("no reply from Chromium")
            chunk = os.read(self._read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "method" in message:
            self.events.append(message)
        return message

    def wait_for_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            found = next((e for e in self.events if e["method"] == method), None)
            if found:
                return found
            self._receive(max(deadline - time.monotonic(), 0.01))

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(json.dumps(params.get("args", []))[:500])
            elif event["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(params["entry"].get("text", "")[:500])
        return found

    def close(self):
        try:
            self.send("Browser.close", browser_level=True, timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._read_fd, self._write_fd):
            os.close(fd)


def sample_page() -> str:
    rng = np.random.default_rng(0)
    n = 400
    leads = pd.DataFrame(
        {
            "created_date": pd.date_range("2022-01-01", periods=n, freq="h"),
            "city_tier": rng.integers(1, 4, n).astype(float),
            "first_platform_c": rng.choice(["Level0", "Level3", "others"], n),
            "p_app_complete": rng.beta(2, 2, n),
            "model_name": "lead_scoring",
            "model_version": "3",
            "model_run_id": "r1",
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(200),
            "country": rng.choice(["United Kingdom", "EIRE", "France"], 200),
            "predicted_clv": rng.gamma(2, 100, 200),
        }
    )
    drift = {
        "leads": monitoring.psi_table(
            leads[["city_tier", "first_platform_c"]].iloc[:200], leads[["city_tier", "first_platform_c"]].iloc[200:]
        )
    }
    provenance = {
        "tables": {
            "leads_scored": {"model_name": "lead_scoring", "model_version": "3", "model_run_id": "r1", "rows": n}
        }
    }
    return dashboard.build_dashboard(leads, customers, provenance, top_n=TOP_N, drift=drift)


def open_page(tools: DevTools, page: Path) -> None:
    """Open ``page`` in a new tab at 1400 px wide and wait for its load event."""
    target = tools.send("Target.createTarget", {"url": "about:blank"}, browser_level=True)["targetId"]
    attached = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True}, browser_level=True)
    tools.session = attached["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        tools.send(f"{domain}.enable")
    tools.send(
        "Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 2400, "deviceScaleFactor": 1, "mobile": False}
    )
    tools.events.clear()  # only what this page itself does counts
    tools.send("Page.navigate", {"url": page.as_uri()})
    tools.wait_for_event("Page.loadEventFired")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary found (apt-get install chromium, or set CHROMIUM_BIN)")
    folder = tmp_path_factory.mktemp("browser")
    tools = DevTools(binary, folder / "profile")
    try:
        open_page(tools, dashboard.write_dashboard(sample_page(), folder / "dashboard.html"))
        yield tools, folder
    finally:
        tools.close()


def wait_until_drawn(tools: DevTools, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        check = tools.evaluate("window.dashboardSelfCheck ? window.dashboardSelfCheck() : null")
        if check and check["rendered"] == check["plotlyDivs"] > 0 or time.monotonic() > deadline:
            return check
        time.sleep(0.2)


def test_charts_render_without_console_errors_and_screenshot(browser):
    tools, folder = browser
    check = wait_until_drawn(tools)
    assert check is not None, "the page's self-check did not load: inline script failed"
    assert check["plotlyLoaded"], "plotly.js is not embedded in the page"
    assert check["charts"] == check["plotlyDivs"] == check["rendered"] >= 5
    assert check["overflowing"] == 0, "a chart is wider than its card"
    assert check["tableRows"] == check["dataRows"] == TOP_N
    shot = tools.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path = folder / "dashboard.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 20_000, "screenshot is (nearly) blank"
    assert tools.errors() == []


def test_table_sorts_and_filters(browser):
    tools, _ = browser
    wait_until_drawn(tools)
    first_column = (
        "Array.from(document.querySelectorAll('#top-leads tbody tr')).map(r => parseFloat(r.cells[0].textContent))"
    )
    scores = tools.evaluate(first_column)
    assert scores == sorted(scores, reverse=True), "the table should open sorted by score, best first"
    tools.evaluate("document.querySelector('#top-leads thead th').click()")
    assert tools.evaluate(first_column) == sorted(scores)
    rows = tools.evaluate("""(() => { const box = document.getElementById('lead-filter');
        box.value = 'Level0'; box.dispatchEvent(new Event('input'));
        return Array.from(document.querySelectorAll('#top-leads tbody tr')).map(r => r.textContent); })()""")
    assert 0 < len(rows) < TOP_N and all("Level0" in row for row in rows)
    assert tools.errors() == []


def test_the_harness_sees_script_errors(browser):
    """A check that cannot fail proves nothing: a broken page must show up as errors."""
    tools, folder = browser
    broken = folder / "broken.html"
    broken.write_text("<html><body><script>console.error('boom'); notDefinedAnywhere();</script></body></html>")
    open_page(tools, broken)
    errors = " ".join(tools.errors())
    assert "boom" in errors and "notDefinedAnywhere" in errors
