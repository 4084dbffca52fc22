"""Helpers shared by the tests (imported as ``tests.helpers``)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from utils.core.contracts import DataContractError
from utils.core.paths import PROJECT_ROOT


def shared_data_dir() -> Path:
    """The folder of real data for checks: ``LEAD2VALUE_SHARED_DATA``, else ../shared/data."""
    return Path(os.environ.get("LEAD2VALUE_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


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


def assert_contract_error(column, fn, *args, **kwargs) -> DataContractError:
    """Call ``fn``; it must raise a DataContractError that names ``column``. Returns the error."""
    with pytest.raises(DataContractError) as caught:
        fn(*args, **kwargs)
    assert caught.value.column == column, str(caught.value)
    return caught.value
