"""Shared fixtures. Real public data lives outside the project; tests that need it skip cleanly."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Everything the tests generate (runs, MLflow store) goes to a scratch folder, never to outputs/.
os.environ.setdefault("LEAD2VALUE_OUTPUTS", tempfile.mkdtemp(prefix="lead2value-tests-"))

from utils.paths import PROJECT_ROOT


def shared_data_dir() -> Path:
    return Path(os.environ.get("LEAD2VALUE_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real data for checks (`LEAD2VALUE_SHARED_DATA`, else ../shared/data)."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder absent: {path} (set LEAD2VALUE_SHARED_DATA)")
    return path


@contextmanager
def scratch_mlflow_store(root: Path, experiment: str) -> Iterator[str]:
    """A throwaway SQLite MLflow store (tracking and registry) under root; the previous URIs come back after."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment(experiment, artifact_location=(root / "artifacts").as_uri()))
    try:
        yield uri
    finally:
        if mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)
        mlflow.set_registry_uri(previous)
