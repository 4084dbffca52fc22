"""What a run ran on: package versions and the lock file, for the last cell of every notebook."""
from __future__ import annotations

import hashlib
import platform
import sys
from importlib import metadata

import pandas as pd

from utils.core import paths

KEY_PACKAGES = (
    "numpy", "pandas", "scikit-learn", "lightgbm", "pycaret", "mlflow",
    "papermill", "plotly", "matplotlib", "pyarrow",
)


def package_versions(packages: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    """Installed version of each package, or 'not installed'."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def lock_hash() -> str:
    """sha256 of the lock file: two runs with the same hash ran on the same pins."""
    return hashlib.sha256(paths.LOCK_FILE.read_bytes()).hexdigest()


def versions_table() -> pd.DataFrame:
    """Python, platform, lock hash and key package versions as a small table."""
    rows = {"python": sys.version.split()[0], "platform": platform.platform(), "lock sha256": lock_hash()[:12]}
    rows.update(package_versions())
    return pd.DataFrame({"component": list(rows), "version": list(rows.values())})
