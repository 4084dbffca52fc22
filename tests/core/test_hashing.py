import hashlib

from utils.core.hashing import sha256_bytes, sha256_file


def test_sha256_of_bytes_and_files(tmp_path):
    (tmp_path / "abc.txt").write_bytes(b"abc")
    expected = hashlib.sha256(b"abc").hexdigest()
    assert sha256_bytes(b"abc") == expected and sha256_file(tmp_path / "abc.txt") == expected


def test_the_cache_skips_unchanged_files_and_rereads_changed_ones(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    cache = {}
    first = sha256_file(path, cache)
    assert len(cache) == 1
    key = next(iter(cache))
    cache[key] = "cached"  # an unchanged file (same size and mtime) is not read again
    assert sha256_file(path, cache) == "cached"
    path.write_bytes(b"two, longer")
    assert sha256_file(path, cache) == hashlib.sha256(b"two, longer").hexdigest() != first
