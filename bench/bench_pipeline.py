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
4. **smoke**: ``run_all.py --profile smoke`` in a fresh folder, then again with ``--force``
   (a store with champions, as on any later day) (target <= 30 s).

``--repeats N`` measures plain and pipeline N times each, alternating which goes first, and
prints the fastest of each (the least disturbed) and the medians; the targets are judged on the
medians, and the smoke target on the slower of its two runs.

Peak memory (target <= 1.5 GB): the whole process tree, run_all.py itself and its kernels, sampled
every 0.2 s, as PSS (each page shared between processes, e.g. numpy's and LightGBM's libraries,
divided among them: the physical memory taken) and as summed RSS (shared pages counted in every
process: an overcount); and the kernels' peak as the run's manifest records it (RSS of a step's
kernel and the next step's spare). The load average is printed
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
    """Peaks of the memory of a process and its descendants, sampled in a thread.

    ``peak``: the summed RSS. It counts the pages the processes share (numpy's, pandas',
    LightGBM's libraries, mapped by every kernel and by run_all.py) once per process.
    ``peak_pss``: the summed PSS (each shared page divided among the processes that map it):
    the physical memory the tree takes, what the 1.5 GB target is about.
    """

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval, self.peak, self.peak_pss = pid, interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            rss = pss = 0
            try:
                for process in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        full = process.memory_full_info()
                        rss, pss = rss + full.rss, pss + full.pss
            except psutil.Error:
                break
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
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
    print(f"    {seconds:7.1f} s wall, {cpu:7.1f} s CPU, peak {memory.peak / 1e6:6.0f} MB RSS summed, "
          f"{memory.peak_pss / 1e6:6.0f} MB PSS summed", flush=True)
    return {"seconds": seconds, "cpu": cpu, "peak_mb": memory.peak / 1e6, "peak_pss_mb": memory.peak_pss / 1e6,
            "output": output}


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

    from utils.core import gate, lineage, paths, tracking
    from utils.core.files import write_json
    from utils.core.parallel import predict_in_chunks
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
        X, wrapped, reference = tracking.scored_reference(model, X_train, score_column, method, n_bins, drift_exclude)
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


def kernels_peak(manifest: dict) -> float:
    """The largest per-step peak the run's manifest records: its notebook kernels' memory, summed."""
    return max((step.get("peak_rss_mb") or 0.0) for step in manifest["steps"].values())


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default", help="profile of the plain/pipeline comparison")
    parser.add_argument("--repeats", type=int, default=1,
                        help="plain and pipeline measured this many times each, alternating which goes first")
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
    plains: list[dict] = []
    pipelines: list[dict] = []
    for repeat in range(args.repeats):
        order = ["plain", "pipeline"] if repeat % 2 == 0 else ["pipeline", "plain"]
        for kind in order:
            if kind == "plain" and "plain" not in args.skip:
                folder = scratch / f"plain-{repeat}"
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                result = measure([sys.executable, str(Path(__file__).resolve()), "--plain", "--profile", args.profile,
                                  "--out", str(folder)], folder, "plain (one process)")
                result["steps"] = json.loads((folder / "plain.json").read_text())
                plains.append(result)
            elif kind == "pipeline":
                folder = scratch / f"pipeline-{repeat}"
                shutil.rmtree(folder, ignore_errors=True)
                result = run_all(folder, args.profile, "pipeline")
                result["manifest"] = latest_manifest(folder)
                result["folder"] = folder
                pipelines.append(result)
    last = pipelines[-1]
    noop = run_all(last["folder"], args.profile, "no-op rerun") if "noop" not in args.skip else None
    if noop is not None and "nothing to do" not in noop["output"]:
        print("    warning: the rerun was not a no-op:\n" + noop["output"][-1000:])
    smoke = forced = None
    if "smoke" not in args.skip:
        folder = scratch / "smoke"
        shutil.rmtree(folder, ignore_errors=True)
        smoke = run_all(folder, "smoke", "smoke profile (fresh outputs)")
        smoke["manifest"] = latest_manifest(folder)
        forced = run_all(folder, "smoke", "smoke profile (--force, a store with champions)", "--force")
        forced["manifest"] = latest_manifest(folder)

    print(f"\nprofile {args.profile}; scratch {scratch}")
    best = min(pipelines, key=lambda r: r["seconds"])
    if plains:
        fastest = min(plains, key=lambda r: r["seconds"])
        print(f"{'step':16s} {'plain s':>9s} {'plain CPU':>10s} {'pipeline s':>11s}   (the fastest repeat of each)")
        for name, step in best["manifest"]["steps"].items():
            mine = fastest["steps"].get(name, {})
            print(f"{name:16s} {mine.get('seconds', float('nan')):9.1f} {mine.get('cpu', float('nan')):10.1f} "
                  f"{step.get('seconds', float('nan')):11.1f}")
        print(f"{'whole':16s} {fastest['seconds']:9.1f} {fastest['cpu']:10.1f} {best['seconds']:11.1f}")
        ratio = best["seconds"] / fastest["seconds"]
        median_ratio = median([r['seconds'] for r in pipelines]) / median([r['seconds'] for r in plains])
        print(f"pipeline / plain, wall: {ratio:.3f} fastest of each, {median_ratio:.3f} median (target <= "
              f"{TARGETS['ratio']}, judged on the median: {verdict(median_ratio, TARGETS['ratio'])}); CPU seconds: "
              f"{median([r['cpu'] for r in pipelines]) / median([r['cpu'] for r in plains]):.3f}")
    walls = sorted(r["seconds"] for r in pipelines)
    print(f"pipeline wall {median(walls):.1f} s median of {len(walls)} ({', '.join(f'{w:.1f}' for w in walls)})" + (
        f"; target for the default profile <= 150 s, judged on the median: {verdict(median(walls), 150)}"
        if args.profile == "default" else ""))
    kernels = max(kernels_peak(r["manifest"]) for r in pipelines + [r for r in (smoke, forced) if r])
    measured = pipelines + [r for r in (smoke, forced) if r]
    tree = max(r["peak_mb"] for r in measured)
    tree_pss = max(r["peak_pss_mb"] for r in measured)
    print(f"peak memory of the whole process tree, run_all.py and its kernels: {tree_pss:.0f} MB PSS (physical, "
          f"shared pages counted once; target <= {TARGETS['peak_mb']:.0f}: {verdict(tree_pss, TARGETS['peak_mb'])}), "
          f"{tree:.0f} MB as summed RSS (shared libraries counted in every process); the kernels alone {kernels:.0f} "
          f"MB (RSS, the manifests' per-step peak)"
          + (f"; plain process {max(r['peak_mb'] for r in plains):.0f} MB RSS" if plains else ""))
    if noop is not None:
        print(f"no-op rerun {noop['seconds']:.2f} s (target <= {TARGETS['noop_seconds']}: "
              f"{verdict(noop['seconds'], TARGETS['noop_seconds'])})")
    if smoke is not None:
        print(f"smoke profile {smoke['seconds']:.1f} s fresh, {forced['seconds']:.1f} s --force "
              f"(target <= {TARGETS['smoke_seconds']}, judged on the slower: "
              f"{verdict(max(smoke['seconds'], forced['seconds']), TARGETS['smoke_seconds'])})")
    print(f"[{load()}]")
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
