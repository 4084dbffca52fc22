import subprocess
import sys

from utils.core import contracts
from utils.core.errors import DataContractError


def test_the_message_names_the_file_the_column_and_the_problem():
    error = DataContractError("leads.csv", "city_mapped", "missing")
    assert str(error) == "leads.csv: column 'city_mapped': missing"
    assert (error.file, error.column, error.problem) == ("leads.csv", "city_mapped", "missing")
    assert str(DataContractError("leads.csv", None, "no rows")) == "leads.csv: no rows"
    assert isinstance(error, ValueError)


def test_contracts_raises_the_same_class():
    assert contracts.DataContractError is DataContractError


def test_importing_it_loads_no_pandas():
    code = "import sys, utils.core.errors; print('pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
