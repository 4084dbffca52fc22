"""The machine checks before a run: writable outputs, a tracking server that answers, stale run folders."""
from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import time

import pytest

from utils.core import paths
from utils.pipeline import environment
from utils.pipeline.environment import EnvironmentProblem


def test_a_writable_outputs_folder_passes(tmp_path):
    environment.check_outputs_writable(tmp_path / "outputs")
    assert (tmp_path / "outputs").is_dir() and not list((tmp_path / "outputs").iterdir())


def test_an_outputs_folder_that_cannot_be_written_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(EnvironmentProblem, match=f"cannot write to {blocker}/outputs .*LEAD2VALUE_OUTPUTS"):
        environment.check_outputs_writable(blocker / "outputs")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_a_read_only_outputs_folder_is_refused(tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    outputs.chmod(0o500)
    try:
        with pytest.raises(EnvironmentProblem, match="Permission denied"):
            environment.check_outputs_writable(outputs)
    finally:
        outputs.chmod(0o700)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_local_stores_need_no_probe():
    environment.probe_tracking_server("sqlite:////nowhere/mlflow.db")
    environment.probe_tracking_server("file:///nowhere")


def test_a_tracking_server_that_is_not_there_fails_fast_naming_the_uri():
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(EnvironmentProblem) as caught:
        environment.probe_tracking_server(uri)
    assert time.monotonic() - started < 15
    assert uri in str(caught.value) and "unset it to track to the local store" in str(caught.value)


def test_a_server_that_never_answers_is_given_up_on(monkeypatch):
    with socket.socket() as listener:  # accepts connections, never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(EnvironmentProblem, match="did not answer within 1 s|not reachable"):
            environment.probe_tracking_server(uri, seconds=1)
        assert time.monotonic() - started < 5


class Answer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # http.server's name for it
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status, refused", [(200, False), (404, False), (401, True)])
def test_a_server_that_answers_is_there_unless_it_refuses_us(status, refused):
    handler = type("H", (Answer,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_port}"
        if refused:
            with pytest.raises(EnvironmentProblem, match="MLFLOW_TRACKING_USERNAME"):
                environment.probe_tracking_server(uri)
        else:
            environment.probe_tracking_server(uri)
    finally:
        server.shutdown()


def test_runs_left_running_by_a_dead_process_are_marked_killed(tmp_path):
    runs = tmp_path / "runs"
    for name, status, pid in (("a-running", "running", 999_999_999), ("b-done", "succeeded", 1), ("c-old", "running", None)):
        (runs / name).mkdir(parents=True)
        (runs / name / "status.json").write_text(json.dumps({"status": status, **({"pid": pid} if pid else {})}))
        (runs / name / "manifest.json").write_text(json.dumps({"run_id": name, "status": status}))
    assert environment.mark_stale_runs(runs) == ["a-running", "c-old"]
    for name in ("a-running", "c-old"):
        assert json.loads((runs / name / "status.json").read_text())["status"] == "killed"
        manifest = json.loads((runs / name / "manifest.json").read_text())
        assert manifest["status"] == "killed" and "ended without finishing" in manifest["error"]
    assert json.loads((runs / "b-done" / "status.json").read_text())["status"] == "succeeded"
    assert environment.mark_stale_runs(runs) == []


def test_the_run_a_scheduler_carries_is_not_marked(tmp_path):
    runs = tmp_path / "runs"
    (runs / "leased").mkdir(parents=True)
    (runs / "leased" / "status.json").write_text(json.dumps({"status": "running", "pid": 999_999_999}))
    assert environment.mark_stale_runs(runs, keep="leased") == []
    assert json.loads((runs / "leased" / "status.json").read_text())["status"] == "running"


def test_tracking_uri_follows_the_environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example:5000")
    assert environment.tracking_uri() == "http://example:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert environment.tracking_uri().startswith("sqlite:///")


CYCLE_WITH_A_FINALIZER = """
import sys
sys.path.insert(0, {root!r})
from utils.core import paths
from utils.pipeline import environment

class Noisy:
    def __del__(self):
        print("collected at exit", flush=True)

if {skip}:
    environment.skip_exit_collection()
a, b = Noisy(), Noisy()
a.other, b.other = b, a  # a reference cycle: only the collector frees it
del a, b
"""


@pytest.mark.parametrize("skip", [False, True])
def test_a_process_can_exit_without_the_last_full_collection(skip):
    import subprocess
    import sys

    code = CYCLE_WITH_A_FINALIZER.format(root=str(paths.PROJECT_ROOT), skip=skip)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # Without it the interpreter's shutdown collection finds the cycle and runs its finalizers.
    assert ("collected at exit" in out.stdout) is not skip
