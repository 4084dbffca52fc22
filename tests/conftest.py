"""Shared fixtures. Real public data lives outside the project; tests that need it skip cleanly."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Everything the tests generate (runs, MLflow store) goes to a scratch folder, never to outputs/.
os.environ.setdefault("LEAD2VALUE_OUTPUTS", tempfile.mkdtemp(prefix="lead2value-tests-"))

from tests.helpers import shared_data_dir  # noqa: E402  (after LEAD2VALUE_OUTPUTS is set)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real data for checks (`LEAD2VALUE_SHARED_DATA`, else ../shared/data)."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder absent: {path} (set LEAD2VALUE_SHARED_DATA)")
    return path
