"""Data contracts: every check on input data, and the error they raise."""
from __future__ import annotations


class DataContractError(ValueError):
    """Input data breaks its contract. The message names the file, the column and the problem."""

    def __init__(self, file: str, column: str | None, problem: str):
        self.file = str(file)
        self.column = column
        self.problem = problem
        where = f"column '{column}': " if column else ""
        super().__init__(f"{self.file}: {where}{problem}")
