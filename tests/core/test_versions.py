import hashlib
import subprocess
import sys

from utils.core import paths, versions


def test_versions_of_installed_and_missing_packages():
    found = versions.package_versions(("pandas", "no-such-package-xyz"))
    assert found["no-such-package-xyz"] == "not installed" and found["pandas"][0].isdigit()
    assert set(versions.package_versions()) == set(versions.KEY_PACKAGES)


def test_lock_hash_is_the_sha256_of_the_lock_file():
    assert versions.lock_hash() == hashlib.sha256(paths.LOCK_FILE.read_bytes()).hexdigest()


def test_reading_them_loads_no_pandas():
    code = "import sys, utils.core.versions, utils.pipeline.manifest; print('pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
