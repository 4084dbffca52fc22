"""Benchmark: what incremental reruns save. Prints figures; asserts nothing about time.

In a scratch outputs folder (or --outputs DIR), on the smoke profile by default:
  1. a full run (the baseline, every step executed);
  2. the same command again with nothing changed (target: under 3 s, like DVC's no-op repro);
  3. one parameter of 04_clv_model changed (target: only 04 and 05 re-execute);
  4. a full forced run, for the ratio against 3.

    python bench/bench_rerun.py                 # smoke profile
    python bench/bench_rerun.py --profile default
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def timed_run(outputs: Path, profile: str, *args: str) -> tuple[float, str]:
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(outputs))
    env.pop("MLFLOW_TRACKING_URI", None)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "run_all.py", "--profile", profile, "--no-progress", *args],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"run_all.py {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return seconds, result.stdout


def executed_steps(outputs: Path) -> list[str]:
    manifest = json.loads(((outputs / "latest").resolve() / "manifest.json").read_text())
    return [name for name, step in manifest["steps"].items() if step["status"] == "executed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--outputs", type=Path, help="outputs folder to use (default: a fresh temporary one)")
    parser.add_argument("--clv-parameter", default="rf_n_estimators=37", help="the 04_clv_model change to time")
    args = parser.parse_args()
    outputs = args.outputs or Path(tempfile.mkdtemp(prefix="lead2value-bench-"))

    full, _ = timed_run(outputs, args.profile)
    noop, noop_out = timed_run(outputs, args.profile)
    one, one_out = timed_run(outputs, args.profile, "--set", args.clv_parameter)
    one_steps = executed_steps(outputs)
    forced, _ = timed_run(outputs, args.profile, "--set", args.clv_parameter, "--force")

    print(f"profile {args.profile}, outputs {outputs}")
    print(f"full run (all steps executed)        {full:8.2f} s")
    print(f"no-op rerun (nothing changed)        {noop:8.2f} s   target < 3 s   "
          f"{'nothing to do' if 'nothing to do' in noop_out else 'NOT a no-op'}")
    print(f"one 04_clv_model parameter changed   {one:8.2f} s   executed: {', '.join(one_steps)}")
    print(f"same change, --force (all executed)  {forced:8.2f} s")
    print(f"ratios: no-op / full = {noop / full:.3f};  one-parameter / forced = {one / forced:.3f}")
    for line in one_out.splitlines():
        if line.startswith("["):
            print("   ", line)


if __name__ == "__main__":
    main()
