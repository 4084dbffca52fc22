"""The project's error for bad input data, in a module that imports nothing heavy.

``run_all.py`` catches :class:`DataContractError` on every path, its no-op rerun included,
which must not pay for pandas; :mod:`utils.core.contracts` raises it and re-exports it.
"""
from __future__ import annotations


class DataContractError(ValueError):
    """Input data breaks its contract. The message names the file, the column and the problem."""

    def __init__(self, file: str, column: str | None, problem: str):
        self.file = str(file)
        self.column = column
        self.problem = problem
        where = f"column '{column}': " if column else ""
        super().__init__(f"{self.file}: {where}{problem}")
