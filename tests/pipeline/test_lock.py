import pytest

from utils.pipeline.lock import RunLockedError, close_lease, open_lease, read_lease, run_lock


def test_second_lock_holder_is_refused_with_a_clear_message(tmp_path):
    lock = tmp_path / "run.lock"
    with run_lock(lock):
        with pytest.raises(RunLockedError, match=r"another run_all.py is running \(pid \d+"):
            with run_lock(lock):
                pass
    with run_lock(lock):  # released: a later run proceeds
        pass
    assert lock.read_text() == "", "the holder's note is cleared on release"


def test_an_open_lease_refuses_other_runs_and_admits_its_own(tmp_path):
    lock, lease = tmp_path / "run.lock", tmp_path / "run.lease"
    with run_lock(lock, lease):
        open_lease("r1", lease)
    with pytest.raises(RunLockedError, match=r"run r1 was begun with --begin .* --run r1 --abandon"):
        with run_lock(lock, lease):
            pass
    with pytest.raises(RunLockedError, match="run r1 was begun"):
        with run_lock(lock, lease, for_run="r2"):
            pass
    with run_lock(lock, lease, for_run="r1"):
        close_lease("r2", lease)  # not its lease: kept
        assert read_lease(lease)["run_id"] == "r1"
        close_lease("r1", lease)
    assert read_lease(lease) is None
    with pytest.raises(RunLockedError, match="holds no lease"):
        with run_lock(lock, lease, for_run="r1"):
            pass
    with run_lock(lock, lease):  # free again
        pass
