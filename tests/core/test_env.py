import hashlib

from utils.core import env, paths


def test_versions_table_lists_python_lock_and_packages():
    table = env.versions_table()
    components = set(table["component"])
    assert {"python", "lock sha256", "pandas", "pycaret"} <= components
    assert table.loc[table["component"] == "pycaret", "version"].item() == "3.3.2"


def test_missing_package_is_reported_not_raised():
    assert env.package_versions(("no-such-package-xyz",)) == {"no-such-package-xyz": "not installed"}


def test_lock_hash_is_the_sha256_of_the_lock_file():
    assert env.lock_hash() == hashlib.sha256(paths.LOCK_FILE.read_bytes()).hexdigest()
