"""Installed package versions and the lock's hash, without pandas: ``run_all.py``'s manifest (and
its no-op rerun, which must answer in well under a second) needs them before anything heavy."""
from __future__ import annotations

import hashlib
from importlib import metadata

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
