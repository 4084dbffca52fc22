"""Headless Chromium for the tests, driven over the DevTools protocol through a pair of pipes.

Chromium talks DevTools over ``--remote-debugging-pipe`` (it reads commands on fd 3 and writes
replies on fd 4, NUL-separated JSON), so a test opens no port. ``chromium_binary()`` is None
when no Chromium is found (``apt-get install chromium``, as .ci/run does; or set ``CHROMIUM_BIN``).
"""
from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell")
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


def check_pages(pages: list[Path], profile: Path) -> dict[str, dict]:
    """Open each page in headless Chromium: {page name: {"images": [loaded?...], "errors": [...]}}."""
    binary = chromium_binary()
    if binary is None:
        import pytest

        pytest.skip("no Chromium binary found (apt-get install chromium, or set CHROMIUM_BIN)")
    tools = DevTools(binary, profile)
    found = {}
    try:
        for page in pages:
            open_page(tools, page)
            images = tools.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
            found[page.name] = {"images": images, "errors": tools.errors()}
    finally:
        tools.close()
    return found
