"""The scoring job end to end, cold: `run_all.py score` on 20,000 raw leads and 12,000 customers.

    .venv/bin/python bench/bench_scoring_job.py                      # trains smoke champions first if needed
    .venv/bin/python bench/bench_scoring_job.py --outputs /tmp/bench-outputs --repeats 3

Each repetition is a new `run_all.py score` process (Python start, imports, input checks and
the customers' feature table in the parent; kernel start, 05_scoring and its HTML copy in the
notebook), timed from outside. Prints the wall time of each, where it went (from the job's
manifest), and the share spent in model prediction (the notebook's own timings of the two
pyfunc calls). The target is at most 15 s; nothing here asserts it. Wall times grow with
whatever else runs on the machine; the CPU seconds of the job's processes (its own, its kernel's)
do much less, and are printed beside them. The champions come from a
smoke run in ``--outputs`` (trained once, before any timing, if that folder has none): their
LightGBM has the same 800 trees as a full-scale run's, so prediction costs the same.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.clv.synth import generate_clv
from utils.leads.synth import generate_new_leads


def environment(outputs: Path) -> dict[str, str]:
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(outputs))
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def ensure_champions(outputs: Path) -> None:
    if (outputs / "mlflow" / "mlflow.db").exists() and (outputs / "latest").exists():
        print(f"champions: the smoke run already in {outputs}")
        return
    print(f"champions: none in {outputs}; training them with `run_all.py --profile smoke` (not timed) ...", flush=True)
    subprocess.run([sys.executable, "run_all.py", "--profile", "smoke", "--no-progress"], cwd=ROOT,
                   env=environment(outputs), check=True, capture_output=True)


def write_inputs(folder: Path, n_leads: int, n_customers: int, seed: int) -> list[str]:
    """The job's arguments: a leads export (with its unnamed index) and the four customer files, as CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    generate_new_leads(n_leads, seed).to_csv(folder / "leads.csv")
    arguments = ["--leads", str(folder / "leads.csv")]
    for name, frame in generate_clv(n_customers, seed).items():
        frame.to_csv(folder / f"{name}.csv", index=False)
        arguments += [f"--{name.replace('_', '-')}", str(folder / f"{name}.csv")]
    return arguments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outputs", type=Path, default=Path(tempfile.gettempdir()) / "lead2value-bench-scoring-job")
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=12_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    ensure_champions(args.outputs)
    job_args = write_inputs(args.outputs / "bench-inputs", args.leads, args.customers, seed=7)
    print(f"{args.leads:,} raw leads and {args.customers:,} customers (CSV); {os.cpu_count()} CPU(s), "
          f"load average {os.getloadavg()[0]:.1f} at start (other work on the machine inflates these figures)")
    print(f"\n{'run':>4} {'wall s':>7} {'cpu s':>6} {'exit':>4} {'start+imports':>13} {'input checks':>12} "
          f"{'notebook':>8} {'prediction':>10} {'share':>6}")
    walls, shares, cpus = [], [], []
    for repeat in range(1, args.repeats + 1):
        job_id = f"bench-{int(time.time())}-{repeat}"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "run_all.py", "score", "--no-progress", "--job-id", job_id, *job_args],
                                cwd=ROOT, env=environment(args.outputs), capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if result.returncode not in (0, 4):  # 4: held on drift, still a whole job
            raise SystemExit(f"the scoring job failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
        manifest = json.loads((args.outputs / "scoring" / job_id / "manifest.json").read_text())
        prediction = sum(manifest["timings"].values())
        walls.append(wall)
        cpus.append(cpu)
        shares.append(prediction / wall)
        print(f"{repeat:>4} {wall:>7.1f} {cpu:>6.1f} {result.returncode:>4} {wall - manifest['seconds']:>13.1f} "
              f"{manifest['checks_seconds']:>12.1f} {manifest['notebook_seconds']:>8.1f} {prediction:>10.2f} "
              f"{prediction / wall:>6.1%}")
    print(f"\ncold end-to-end wall time: median {statistics.median(walls):.1f} s (min {min(walls):.1f}, "
          f"max {max(walls):.1f}) for {args.leads:,} leads and {args.customers:,} customers; target <= 15 s")
    print(f"CPU seconds of the job's processes: median {statistics.median(cpus):.1f}")
    print(f"share in model prediction: median {statistics.median(shares):.1%}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
