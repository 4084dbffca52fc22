"""JupyterLab opens on the project's venv without asking for a rebuild."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from utils.core.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_jupyterlab_does_not_ask_for_a_build():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         "--ServerApp.token=lead2value-test"],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = None
        for _ in range(90):
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token=lead2value-test", timeout=2).read()
                break
            except OSError:
                time.sleep(1)
        assert page is not None, "JupyterLab did not answer"
        config = json.loads(re.search(rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                      page, re.S).group(1))
        assert config["buildCheck"] is False and config["buildAvailable"] is False
    finally:
        server.terminate()
        server.wait(timeout=20)
