"""Executing notebooks: what the executor does before papermill starts."""
import subprocess
import sys

from utils.core.paths import PROJECT_ROOT

SKIPPED_GRAMMAR = """
import sys
from utils.pipeline.execute import skip_iri_grammar
skip_iri_grammar()
import jsonschema, nbformat
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
nbformat.validate(nb)  # notebooks still validate
print(sys.modules["rfc3987_syntax"] is None, "iri" in jsonschema.FormatChecker().checkers)
"""


def test_the_iri_grammar_is_not_compiled_and_notebooks_still_validate():
    out = subprocess.run([sys.executable, "-c", SKIPPED_GRAMMAR], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "False"]


# --- spare kernels ------------------------------------------------------------------------------

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from utils.pipeline import catalog, execute  # noqa: E402
from utils.pipeline.catalog import Step  # noqa: E402


def notebook(folder: Path, *sources: str) -> Path:
    cells = [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
             for i, src in enumerate(sources)]
    path = folder / "tiny.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "py",
                                                                            "language": "python"}},
                                "nbformat": 4, "nbformat_minor": 5}))
    return path


class TinyStep(Step):
    """A step whose notebook is a file of the test's own."""

    def __new__(cls, path: Path):
        step = super().__new__(cls)
        object.__setattr__(step, "_path", path)
        return step

    def __init__(self, path: Path):
        super().__init__("tiny", "a test notebook")

    @property
    def notebook(self) -> Path:
        return self._path


def test_a_spare_kernel_runs_only_an_import_cell_ahead(tmp_path):
    imports = execute.warm_up_code(notebook(tmp_path, "import json\nfrom pathlib import Path", "x = 1"))
    assert imports.startswith("import json\nfrom pathlib import Path") and "configure()" in imports
    code_first = execute.warm_up_code(notebook(tmp_path, "import json\nx = json.dumps(1)", "y = 2"))
    assert "json" not in code_first and "configure()" in code_first
    assert "configure()" in execute.warm_up_code(catalog.step("03").notebook)
    assert execute.warm_up_code(catalog.step("03").notebook).startswith("import json")


def test_every_kernel_gets_sockets_of_its_own_outside_the_project():
    first, second = execute.LocalKernelManager(), execute.LocalKernelManager()
    assert first.transport == "ipc" and first.ip != second.ip
    assert Path(first.ip).is_absolute() and not Path(first.ip).is_relative_to(execute.paths.PROJECT_ROOT)


def test_a_notebook_on_a_spare_kernel_reads_as_one_on_a_fresh_kernel(tmp_path):
    step = TinyStep(notebook(tmp_path, "import json", "print(json.dumps({'spare': True}))"))
    spare = execute.SpareKernel(step, tmp_path).start()
    km = spare.take()
    assert km is not None and km.has_kernel
    try:
        out = execute.run_notebook(step, tmp_path, {}, html=False, km=km)
    finally:
        execute.shutdown(km)
    cells = json.loads(out.read_text())["cells"]
    assert [c["execution_count"] for c in cells] == [1, 2], "the silent warm-up counts no execution"
    assert "".join(cells[1]["outputs"][0]["text"]) == '{"spare": true}\n'
    assert not km.has_kernel


def test_a_discarded_spare_is_killed_at_once_from_any_thread(tmp_path):
    step = TinyStep(notebook(tmp_path, "import time"))
    spare = execute.SpareKernel(step, tmp_path).start()
    km = spare.take()
    process = km.provisioner.process
    started = time.monotonic()
    spare.discard()
    process.wait(timeout=10)
    assert time.monotonic() - started < 5 and spare.take() is None


def test_a_kernel_started_before_its_run_leaves_nothing_behind_when_discarded_at_any_moment(tmp_path, monkeypatch):
    monkeypatch.setattr(execute.paths, "OUTPUTS_DIR", tmp_path / "outputs")
    step = TinyStep(notebook(tmp_path, "import time"))
    for delay in (0.0, 0.05, 0.3, 1.0, 3.0):  # the process starting, the wait for it, the warm-up, ready
        spare = execute.SpareKernel(step, None).start()
        time.sleep(delay)
        spare.discard()
        assert not spare._thread.is_alive(), f"after {delay} s: its start still runs"
        process = getattr(getattr(spare.km, "provisioner", None), "process", None)
        assert process is None or process.poll() is not None, f"after {delay} s: the kernel lives on"
        assert not (tmp_path / "outputs" / ".kernel-logs").exists(), f"after {delay} s: its log stayed"


class FakeSpare:
    def __init__(self, step, run, store=None, store_after=None):
        self.step, self.run, self.store, self.discarded = step, None if run is None else Path(run), store, False
        self.store_after = store_after

    def start(self):
        return self

    def discard(self):
        self.discarded = True


def test_spares_are_kept_per_step_and_given_up_past_the_memory_limit(monkeypatch, tmp_path):
    monkeypatch.setattr(execute, "SpareKernel", FakeSpare)
    executor = execute.PapermillExecutor()
    eda, cleaning = catalog.step("01"), catalog.step("02")
    executor.prepare(eda, tmp_path)
    executor.prepare(eda, tmp_path)  # the same one, not a second
    executor.prepare(cleaning, tmp_path)
    assert len(executor.spares) == 2
    first = executor.spares[("01_eda", tmp_path)]
    executor.drop(eda)
    assert first.discarded and list(executor.spares) == [("02_cleaning", tmp_path)]
    executor._watch(execute.SPARE_KERNEL_LIMIT_MB - 1)
    assert executor.spares, "under the limit the spare stays"
    executor._watch(execute.SPARE_KERNEL_LIMIT_MB + 1)
    assert not executor.spares


def test_a_spare_given_up_for_memory_starts_again_when_the_kernels_fall_back_a_few_times(monkeypatch, tmp_path):
    monkeypatch.setattr(execute, "SpareKernel", FakeSpare)
    executor = execute.PapermillExecutor()
    executor.prepare(catalog.step("04"), tmp_path)
    above = execute.SPARE_KERNEL_LIMIT_MB + 1
    little_room = execute.SPARE_KERNEL_LIMIT_MB - execute.SPARE_ROOM_MB + 1
    room = execute.SPARE_KERNEL_LIMIT_MB - execute.SPARE_ROOM_MB - 1
    for _ in range(execute.SPARE_RESTARTS):
        spare = executor.spares[("04_clv_model", tmp_path)]
        executor._watch(above)
        assert spare.discarded and not executor.spares
        executor._watch(little_room)
        assert not executor.spares, "not under the limit by the room a kernel needs: not started"
        executor._watch(room)
        again = executor.spares[("04_clv_model", tmp_path)]
        assert again is not spare and (again.step.name, again.run) == ("04_clv_model", tmp_path)
    executor._watch(above)
    executor._watch(room)
    assert not executor.spares, "a step's memory that keeps coming back: no more starts in that step"


def test_the_run_kernels_release_freed_memory_after_each_cell(tmp_path):
    assert execute.RELEASE_AFTER_EACH_CELL in execute.warm_up_code(notebook(tmp_path, "x = 1"), store=False)
    assert execute.RELEASE_AFTER_EACH_CELL in execute.warm_up_code(catalog.step("03").notebook)


def test_kernels_wait_passively_and_keep_a_fixed_thread_count(monkeypatch):
    for var in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "PYTHONHASHSEED"):
        monkeypatch.delenv(var, raising=False)
    execute.kernel_environment()
    import os

    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and os.environ["OMP_NUM_THREADS"] == "2"
    assert os.environ["PYTHONHASHSEED"] == "0"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    execute.kernel_environment()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE", "a user's own setting is kept"


def test_a_kernel_started_before_its_run_moves_its_log_in_or_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(execute.paths, "OUTPUTS_DIR", tmp_path / "outputs")
    step = TinyStep(notebook(tmp_path, "import json"))
    assert "configure()" not in execute.warm_up_code(step.notebook, store=False)
    early = execute.SpareKernel(step, None).start()
    km = early.take()
    assert km is not None and early.log.parent == tmp_path / "outputs" / ".kernel-logs"
    run = tmp_path / "outputs" / "runs" / "r1"
    early.adopt(run)
    assert early.log == run / "logs" / "tiny.kernel.log" and early.log.is_file()
    assert not (tmp_path / "outputs" / ".kernel-logs").exists()
    execute.shutdown(km)
    refused = execute.SpareKernel(step, None).start()  # the run is refused before it begins
    refused.take()
    refused.discard()
    assert not (tmp_path / "outputs" / ".kernel-logs").exists()


def test_a_notebook_waits_for_a_big_kernel_still_exiting_and_not_for_a_small_one(monkeypatch):
    import threading

    executor = execute.PapermillExecutor(overlap=True)
    release = threading.Event()
    exiting = threading.Thread(target=release.wait, daemon=True)
    exiting.start()
    executor._stopping.append(exiting)
    monkeypatch.setattr(execute, "children_rss", lambda: int((execute.SETTLE_MB - 1) * 1e6))
    executor._settle()
    assert executor._stopping == [exiting], "under the threshold nobody waits"
    monkeypatch.setattr(execute, "children_rss", lambda: int((execute.SETTLE_MB + 1) * 1e6))
    threading.Timer(0.2, release.set).start()
    executor._settle()
    assert not exiting.is_alive() and executor._stopping == []


@pytest.mark.parametrize("html", [False, True])
def test_preload_imports_papermill_and_only_with_html_nbconvert(html):
    # A fresh process: this one may have imported both already.
    code = ("import sys\nfrom utils.pipeline import execute\n"
            "assert 'papermill' not in sys.modules\n"
            f"execute.preload({html}).join()\n"
            "print('papermill' in sys.modules, 'nbconvert' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["True", str(html)]


class FakeTakenSpare(FakeSpare):
    def take(self):
        return "km"

    def adopt(self, run):
        pass


def notebooks_not_run(monkeypatch) -> list:
    """An executor that runs no notebook and loads nothing; the list it fills with each kernel it shuts
    down and whether at once (``shutdown(km, now)``)."""
    monkeypatch.setattr(execute, "preload", lambda html: None)
    monkeypatch.setattr(execute, "run_notebook", lambda *args, **kwargs: None)
    stopped: list = []
    monkeypatch.setattr(execute, "shutdown", lambda km, now=True: stopped.append((km, now)))
    return stopped


@pytest.mark.parametrize(("kill_when_done", "now"), [(False, False), (True, True)])
def test_a_one_step_process_kills_its_kernel_once_the_notebook_is_saved(monkeypatch, tmp_path, kill_when_done, now):
    monkeypatch.setattr(execute, "SpareKernel", FakeTakenSpare)
    stopped = notebooks_not_run(monkeypatch)
    executor = execute.PapermillExecutor(kill_when_done=kill_when_done)
    executor.execute(catalog.step("01"), tmp_path, {}, progress=False)
    assert stopped == [("km", now)]


def test_kept_kernels_run_on_until_the_executor_closes(monkeypatch, tmp_path):
    """keep_kernels: the caller still talks to the notebook's kernel after execute(); close() kills it."""
    monkeypatch.setattr(execute, "SpareKernel", FakeTakenSpare)
    stopped = notebooks_not_run(monkeypatch)
    executor = execute.PapermillExecutor(kill_when_done=True, keep_kernels=True)
    executor.execute(catalog.step("01"), tmp_path, {}, progress=False)
    assert stopped == [] and executor.kept == {"01_eda": "km"}
    executor.close()
    assert stopped == [("km", True)] and executor.kept == {}


def test_a_whole_run_keeps_the_last_kernel_for_its_mlflow_calls_until_the_next_notebook(monkeypatch, tmp_path):
    """keep_last: the kernel of the notebook just executed serves tracking_kernel() until the next one starts."""
    taken = iter(["km-00", "km-01"])

    class Spare(FakeSpare):
        def take(self):
            self.km = getattr(self, "km", None) or next(taken)
            return self.km

        def adopt(self, run):
            pass

    monkeypatch.setattr(execute, "SpareKernel", Spare)
    stopped = notebooks_not_run(monkeypatch)
    executor = execute.PapermillExecutor(overlap=True, keep_last=True)
    assert executor.tracking_kernel() is None, "no kernel yet: the caller's own tracker"
    executor.prepare(catalog.step("00"), tmp_path)
    assert executor.tracking_kernel() == "km-00", "before the run's first notebook: that notebook's kernel"
    executor.execute(catalog.step("00"), tmp_path, {}, progress=False)
    assert executor.tracking_kernel() == "km-00" and stopped == []
    executor.execute(catalog.step("01"), tmp_path, {}, progress=False)
    executor._settle()
    for thread in executor._stopping:
        thread.join(5)
    assert stopped == [("km-00", True)] and executor.tracking_kernel() == "km-01"
    executor.close()
    assert stopped == [("km-00", True), ("km-01", True)] and executor.tracking_kernel() is None


ORPHAN = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(200_000_000); time.sleep(60)"],
                         start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(child.pid, flush=True)
"""


def test_memory_counts_a_kernel_another_process_started_by_its_pid():
    import psutil

    # Started by a process that exits at once: like a kernel the task before left, no child of ours.
    pid = int(subprocess.run([sys.executable, "-c", ORPHAN], capture_output=True, text=True, timeout=60).stdout)
    try:
        deadline = time.monotonic() + 20
        while psutil.Process(pid).memory_info().rss < 150e6 and time.monotonic() < deadline:
            time.sleep(0.1)
        alone = execute.children_rss()
        assert execute.children_rss((pid,)) - alone >= 150e6
    finally:
        psutil.Process(pid).kill()


PRELOADED = """
import sys
from utils.pipeline import execute
assert "utils.core.tracking" not in sys.modules
execute.preload_module("utils.core.tracking").join(120)
print("utils.core.tracking" in sys.modules, "mlflow" in sys.modules)
execute.preload_module("no.such.module").join(10)  # a failure is the later import's to raise
print("ok")
"""


def test_a_module_preloads_in_the_background():
    out = subprocess.run([sys.executable, "-c", PRELOADED], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "ok"]


def test_a_kernel_waiting_for_another_to_open_the_store_does_its_imports_first_and_its_store_set_up_after(
        tmp_path, monkeypatch):
    import threading

    monkeypatch.setattr(execute.paths, "OUTPUTS_DIR", tmp_path / "outputs")
    imported, stored = tmp_path / "imported", tmp_path / "stored"
    monkeypatch.setattr(execute, "STORE_SETUP", f"open({str(stored)!r}, 'w').write('x')\n")
    # The import cell's module leaves a mark when imported (the warm-up runs a cell of imports only).
    (tmp_path / "leaves_a_mark.py").write_text(f"open({str(imported)!r}, 'w').write('x')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    step = TinyStep(notebook(tmp_path, "import leaves_a_mark"))
    opening = threading.Event()
    first = FakeSpare(step, None)
    first._thread = threading.Thread(target=opening.wait, daemon=True)  # the kernel opening the store
    first._thread.start()
    spare = execute.SpareKernel(step, None, store=True, store_after=first).start()
    try:
        deadline = time.monotonic() + 60
        while not imported.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert imported.exists(), "its imports were not done at once"
        assert not stored.exists() and spare._thread.is_alive(), "it set up the store before the other kernel"
        opening.set()
        km = spare.take()
        assert km is not None and stored.exists()
    finally:
        opening.set()
        spare.discard()


def test_a_whole_run_starts_the_second_kernel_while_it_waits_for_the_first(monkeypatch):
    class Spare(FakeSpare):
        def take(self, timeout=120):
            return f"kernel of {self.step.name}"

    monkeypatch.setattr(execute, "SpareKernel", Spare)
    data, eda = catalog.step("00"), catalog.step("01")
    executor = execute.PapermillExecutor(overlap=True)
    executor.prepare(data, None, store=True)
    assert executor.tracking_kernel() == "kernel of 00_data"
    second = executor.spares[(eda.name, None)]
    assert second.store and second.store_after is executor.spares[(data.name, None)], \
        "it opens the store only after the first kernel has"
    executor.prepare(eda, Path("/tmp/run"))  # the step before it begins: no second kernel for it
    assert sorted(executor.spares) == [(data.name, None), (eda.name, None)]
    one_step = execute.PapermillExecutor()  # a scheduler's task: its process runs one notebook
    one_step.prepare(data, None, store=True)
    one_step.tracking_kernel()
    assert list(one_step.spares) == [(data.name, None)]
