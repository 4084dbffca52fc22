"""Benchmark: what the pipeline's machinery costs, and the speed targets of issue 15. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_pipeline.py                      # default profile, then the smoke profile
    .venv/bin/python bench/bench_pipeline.py --profile smoke      # the quick look (about 2 minutes)
    .venv/bin/python bench/bench_pipeline.py --skip smoke --keep /tmp/bench-pipeline

One after the other, each in a scratch outputs folder (``LEAD2VALUE_OUTPUTS``, a fresh MLflow store):

1. **plain**: the notebooks' code cells, in run order, executed by ONE plain Python process
   (``--plain``): the same ``utils`` calls with the same parameters, the datasets written the same
   way, but no papermill, no notebook kernels, no MLflow. A stand-in step context keeps the models
   in memory; what the pipeline computes around MLflow (the drift reference of every logged model,
   the gate's scoring of its holdout, the pickled model) is computed here too.
2. **pipeline**: ``run_all.py --profile P`` (every step executed). Its wall time as a ratio of
   plain's is the machinery's cost (target <= 1.15); the CPU seconds of both process trees are
   printed beside it, a figure other users of the machine disturb much less than wall time.
3. **no-op**: the same command again, nothing to do (target <= 1 s).
4. **smoke**: ``run_all.py --profile smoke`` in a fresh folder (target <= 30 s).

Peak memory: the RSS of the process and all its children, summed, sampled every 0.2 s (two
notebook kernels alive at once count twice; target <= 1.5 GB). The load average is printed
before each measurement: wall times on a busy machine are inflated, ratios measured in the
same run much less.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"ratio": 1.15, "noop_seconds": 1.0, "smoke_seconds": 30.0, "peak_mb": 1500.0}


# --- measuring a process tree -----------------------------------------------------------------


class TreeMemory:
    """Peak of the summed RSS of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            total = 0
            try:
                for process in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += process.memory_info().rss
            except psutil.Error:
                break
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} cores"


def measure(command: list[str], outputs: Path, label: str) -> dict[str, Any]:
    """Run ``command`` with LEAD2VALUE_OUTPUTS=outputs; wall and CPU seconds of its tree, peak memory."""
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(outputs))
    env.pop("MLFLOW_TRACKING_URI", None)
    print(f"{label}: {' '.join(command[1:])}   [{load()}]", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with TreeMemory(process.pid) as memory:
        output, _ = process.communicate()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        sys.exit(f"{label} failed (exit {process.returncode}):\n{output[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"    {seconds:7.1f} s wall, {cpu:7.1f} s CPU, peak {memory.peak / 1e6:6.0f} MB", flush=True)
    return {"seconds": seconds, "cpu": cpu, "peak_mb": memory.peak / 1e6, "output": output}


def run_all(outputs: Path, profile: str, label: str, *extra: str) -> dict[str, Any]:
    return measure([sys.executable, "run_all.py", "--profile", profile, "--no-progress", *extra], outputs, label)


def latest_manifest(outputs: Path) -> dict:
    return json.loads(((outputs / "latest").resolve() / "manifest.json").read_text())


# --- the plain process ------------------------------------------------------------------------


def plain(profile: str, out: Path) -> None:
    """Execute every notebook's code cells in this one process (see the module docstring); write plain.json."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("MPLBACKEND", "Agg")  # the kernels draw inline; nothing is shown here
    import cloudpickle
    import matplotlib.pyplot as plt

    from utils.core import drift, gate, lineage, paths, tracking
    from utils.core.files import write_json
    from utils.core.parallel import predict_in_chunks
    from utils.core.serving import NamedScore
    from utils.pipeline import catalog, execute
    from utils.pipeline import params as params_mod
    from utils.pipeline.steps import StepContext
    from utils.scoring import predict as predict_module

    execute.kernel_environment()  # the thread and hashing settings every kernel gets
    resolved = params_mod.resolve([s.notebook for s in catalog.STEPS], profile, [])
    run = paths.RUNS_DIR / "plain"
    run.mkdir(parents=True, exist_ok=True)
    logged: dict[str, dict] = {}  # model URI -> what log_model made of it
    served: dict[str, dict] = {}  # registered model name -> the logged model its gate record serves

    def log_model(model, X_train, score_column, *, method="predict", name="model", optional_columns=(),
                  recipe=None, n_bins=10, drift_exclude=()):
        """tracking.log_model without MLflow: scores, drift reference, signature schema, the pickle."""
        X = X_train.reset_index(drop=True)
        wrapped = NamedScore(model, score_column, method)
        scores = predict_in_chunks(lambda rows: wrapped.predict(rows)[score_column], X, model=model)
        inputs = X.drop(columns=[c for c in X.columns if c in set(drift_exclude)])
        reference = drift.build_reference(inputs.assign(**{score_column: scores}), n_bins=n_bins)
        reference["score_column"] = score_column
        schema = tracking.input_schema(X, optional_columns)
        folder = run / "models" / score_column
        folder.mkdir(parents=True, exist_ok=True)
        with tracking.pickled_by_value(), open(folder / "model.pkl", "wb") as file:
            cloudpickle.dump(wrapped, file)
        write_json(folder / tracking.DRIFT_REFERENCE_FILE, reference)
        uri = f"plain:{score_column}"
        logged[uri] = {"served": wrapped, "schema": schema, "reference": reference,
                       "metadata": {"score_column": score_column, "recipe": recipe or {}}}
        return uri

    class PlainStep(StepContext):
        """The step context without MLflow: the gate scores the holdout; no registry, no champion."""

        def register_candidate(self, dataset, model_uri, model, holdout, rule, trained_on):
            ds = self._declared(dataset, writing=True)
            predictions = predict_in_chunks(lambda rows: rule.predict(model, rows), holdout.X, model=model)
            verdict = gate.decide(lineage.source_of(self.load(ds.source)), predictions, holdout, rule, None)
            decision = {"name": ds.model, "version": "plain", "promote": verdict.promote, "rule": verdict.rule,
                        "reason": verdict.reason, "score": verdict.score, "holdout": holdout.describe(),
                        "serves": "plain", "serving": f"serving {ds.model} from this process; {verdict.reason}"}
            write_json(ds.location(self.run), decision)
            served[ds.model] = logged[model_uri]
            return decision

        def serving_model_uri(self, dataset, override=""):
            return f"plain:{self._declared(dataset, writing=False).model}"

        def serving_note(self, dataset):
            return f"serving {self._declared(dataset, writing=False).model} from this process"

    class PlainScoringModel(predict_module.ScoringModel):
        def drift_reference(self) -> dict:
            return served[self.name]["reference"]

    def load_model(uri: str):
        name = uri.removeprefix("plain:")
        entry = served[name]
        pyfunc = SimpleNamespace(predict=entry["served"].predict, metadata=SimpleNamespace(
            get_input_schema=lambda: entry["schema"], metadata=entry["metadata"], run_id=None))
        return PlainScoringModel(uri, uri, name, "plain", None, pyfunc)

    def open_step(name, namespace):
        step = catalog.step(name)
        declared = params_mod.declared_parameters(step.notebook)
        return PlainStep(step, run, {key: namespace[key] for key in declared if key in namespace}, interactive=False)

    def no_op(*args, **kwargs):
        return None

    stand_ins = {
        "open_step": open_step,
        "mlflow": SimpleNamespace(log_param=no_op, log_params=no_op, log_metric=no_op, log_metrics=no_op,
                                  set_tag=no_op, set_tags=no_op),
        "tracking": SimpleNamespace(**{**vars(tracking), "log_model": log_model}),
        "predict": SimpleNamespace(**{**vars(predict_module), "load_model": load_model}),
        "display": no_op,
    }
    timings: dict[str, dict[str, float]] = {}
    me = psutil.Process()
    with open(out / "plain_stdout.log", "w") as log, contextlib.redirect_stdout(log):
        for step in catalog.STEPS:
            namespace: dict[str, Any] = {"__name__": "__main__"}
            values = {**resolved[step.name], "run_dir": str(run), "mlflow_run_id": ""}
            cells = [c for c in json.loads(step.notebook.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
            started, cpu = time.perf_counter(), time.process_time()
            for cell in cells:
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
                exec(compile(source, f"{step.name}.ipynb", "exec"), namespace)  # noqa: S102 - the project's own notebooks
                if "parameters" in cell.get("metadata", {}).get("tags", []):
                    namespace.update(values)  # what papermill injects after the parameters cell
                namespace.update(stand_ins)
                plt.close("all")  # the inline backend closes each cell's figures
            timings[step.name] = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                                  "rss_mb": me.memory_info().rss / 1e6}
            namespace.clear()
            gc.collect()
    (out / "plain.json").write_text(json.dumps(timings, indent=1))


# --- the report -------------------------------------------------------------------------------


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default", help="profile of the plain/pipeline comparison")
    parser.add_argument("--skip", nargs="*", default=[], choices=["plain", "noop", "smoke"])
    parser.add_argument("--keep", type=Path, help="scratch folder to use and keep (default: a temporary one)")
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        plain(args.profile, args.out)
        return

    scratch = args.keep or Path(tempfile.mkdtemp(prefix="lead2value-bench-pipeline-"))
    scratch.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    if "plain" not in args.skip:
        folder = scratch / "plain"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        results["plain"] = measure([sys.executable, str(Path(__file__).resolve()), "--plain", "--profile", args.profile,
                                    "--out", str(folder)], folder, "plain (one process)")
        results["plain"]["steps"] = json.loads((folder / "plain.json").read_text())
    folder = scratch / "pipeline"
    shutil.rmtree(folder, ignore_errors=True)
    results["pipeline"] = run_all(folder, args.profile, "pipeline")
    results["pipeline"]["steps"] = latest_manifest(folder)["steps"]
    if "noop" not in args.skip:
        results["noop"] = run_all(folder, args.profile, "no-op rerun")
        if "nothing to do" not in results["noop"]["output"]:
            print("    warning: the rerun was not a no-op:\n" + results["noop"]["output"][-1000:])
    if "smoke" not in args.skip:
        smoke = scratch / "smoke"
        shutil.rmtree(smoke, ignore_errors=True)
        results["smoke"] = run_all(smoke, "smoke", "smoke profile")

    print(f"\nprofile {args.profile}; scratch {scratch}")
    pipeline = results["pipeline"]
    if "plain" in results:
        base = results["plain"]
        print(f"{'step':16s} {'plain s':>9s} {'plain CPU':>10s} {'pipeline s':>11s}")
        for name, step in pipeline["steps"].items():
            mine = base["steps"].get(name, {})
            print(f"{name:16s} {mine.get('seconds', float('nan')):9.1f} {mine.get('cpu', float('nan')):10.1f} "
                  f"{step.get('seconds', float('nan')):11.1f}")
        ratio = pipeline["seconds"] / base["seconds"]
        print(f"{'whole':16s} {base['seconds']:9.1f} {base['cpu']:10.1f} {pipeline['seconds']:11.1f}   "
              f"(pipeline CPU {pipeline['cpu']:.1f} s)")
        print(f"pipeline / plain: wall {ratio:.3f} (target <= {TARGETS['ratio']}: {verdict(ratio, TARGETS['ratio'])}), "
              f"CPU {pipeline['cpu'] / base['cpu']:.3f}")
    print(f"pipeline wall {pipeline['seconds']:.1f} s" + (" (target for the default profile <= 150 s: "
          f"{verdict(pipeline['seconds'], 150)})" if args.profile == "default" else ""))
    peaks = {k: r["peak_mb"] for k, r in results.items() if "peak_mb" in r}
    print("peak memory (MB, process tree): " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items())
          + f" (target <= {TARGETS['peak_mb']:.0f}: {verdict(max(peaks['pipeline'], peaks.get('smoke', 0)), TARGETS['peak_mb'])}"
          " for the pipeline runs)")
    if "noop" in results:
        print(f"no-op rerun {results['noop']['seconds']:.2f} s (target <= {TARGETS['noop_seconds']}: "
              f"{verdict(results['noop']['seconds'], TARGETS['noop_seconds'])})")
    if "smoke" in results:
        print(f"smoke profile {results['smoke']['seconds']:.1f} s (target <= {TARGETS['smoke_seconds']}: "
              f"{verdict(results['smoke']['seconds'], TARGETS['smoke_seconds'])})")
    print(f"[{load()}]")
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
