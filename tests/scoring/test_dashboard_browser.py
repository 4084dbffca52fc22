"""The dashboard in a real browser: headless Chromium, driven over the DevTools protocol.

Chromium talks DevTools over a pair of pipes (``--remote-debugging-pipe``:
it reads commands on fd 3 and writes replies on fd 4, NUL-separated JSON), so
the test opens no port. Skips when no Chromium binary is found
(``apt-get install chromium``; or set ``CHROMIUM_BIN``).
"""

from __future__ import annotations

import base64
import time

import numpy as np
import pandas as pd
import pytest

from tests.browser import DevTools, chromium_binary, open_page
from utils.core import drift as drift_reference
from utils.scoring import dashboard, monitoring

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

TOP_N = 30


def sample_page() -> str:
    rng = np.random.default_rng(0)
    n = 400
    leads = pd.DataFrame(
        {
            "lead_id": np.arange(1, n + 1),
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
    reference = drift_reference.build_reference(leads[["city_tier", "first_platform_c"]].iloc[:200])
    levels = monitoring.drift_thresholds(reference, 200, draws=500)
    drift = {"leads": monitoring.drift_table(reference, leads.iloc[200:], levels)}
    provenance = {
        "tables": {
            "leads_scored": {"model_name": "lead_scoring", "model_version": "3", "model_run_id": "r1", "rows": n}
        }
    }
    return dashboard.build_dashboard(leads, customers, provenance, top_n=TOP_N, drift=drift)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary found (apt-get install chromium, or set CHROMIUM_BIN)")
    folder = tmp_path_factory.mktemp("browser")
    tools = DevTools(binary, folder / "profile")
    try:
        page = folder / "dashboard.html"
        page.write_text(sample_page(), encoding="utf-8")
        open_page(tools, page)
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
    score_column = (  # the id comes first, the score second
        "Array.from(document.querySelectorAll('#top-leads tbody tr')).map(r => parseFloat(r.cells[1].textContent))"
    )
    scores = tools.evaluate(score_column)
    assert scores == sorted(scores, reverse=True), "the table should open sorted by score, best first"
    tools.evaluate("document.querySelectorAll('#top-leads thead th')[1].click()")
    assert tools.evaluate(score_column) == sorted(scores)
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
