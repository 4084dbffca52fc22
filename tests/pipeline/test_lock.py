import pytest

from utils.pipeline.lock import RunLockedError, run_lock


def test_second_lock_holder_is_refused_with_a_clear_message(tmp_path):
    lock = tmp_path / "run.lock"
    with run_lock(lock):
        with pytest.raises(RunLockedError, match=r"another run_all.py is running \(pid \d+"):
            with run_lock(lock):
                pass
    with run_lock(lock):  # released: a later run proceeds
        pass
    assert lock.read_text() == "", "the holder's note is cleared on release"
