"""What a run ran on: package versions and the lock file, for the last cell of every notebook."""
from __future__ import annotations

import platform
import sys

import pandas as pd

from utils.core.versions import KEY_PACKAGES, lock_hash, package_versions  # noqa: F401 - also used from here


def versions_table() -> pd.DataFrame:
    """Python, platform, lock hash and key package versions as a small table."""
    rows = {"python": sys.version.split()[0], "platform": platform.platform(), "lock sha256": lock_hash()[:12]}
    rows.update(package_versions())
    return pd.DataFrame({"component": list(rows), "version": list(rows.values())})
