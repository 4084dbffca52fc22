from utils import env


def test_versions_table_lists_python_lock_and_packages():
    table = env.versions_table()
    components = set(table["component"])
    assert {"python", "lock sha256", "pandas", "pycaret"} <= components
    assert table.loc[table["component"] == "pycaret", "version"].item() == "3.3.2"


def test_missing_package_is_reported_not_raised():
    assert env.package_versions(("no-such-package-xyz",)) == {"no-such-package-xyz": "not installed"}


def test_lock_hash_is_sha256_hex():
    digest = env.lock_hash()
    assert len(digest) == 64 and int(digest, 16) >= 0
