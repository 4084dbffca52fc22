"""Forced reruns give the same bytes: metrics.json and the scored files. Exit 1 if anything differs.

    .venv/bin/python bench/check_reruns.py                        # smoke: a run, then two --force reruns
    .venv/bin/python bench/check_reruns.py --profile default      # the full reproduction (three runs of it)
    .venv/bin/python bench/check_reruns.py --runs RUN_A RUN_B     # two runs already made (ids or folders)

In a scratch outputs folder (``--outputs`` to keep it) the profile runs once, then twice more
with ``--force``; the second and third runs meet a champion the run before registered, so the
promotion gate compares models on the holdout as it would on any later day. Every run's
``metrics.json`` and scored tables (parquet and CSV) are compared byte for byte with the first
run's; the sha256 of each is printed. ``tests/e2e/test_pipeline.py`` checks the same on smoke
in the test suite.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.core import paths  # noqa: E402
from utils.core.hashing import sha256_file  # noqa: E402

COMPARED = ("metrics.json", "data/leads_scored.parquet", "data/leads_scored.csv", "data/customers_scored.parquet",
            "data/customers_scored.csv")


def run(outputs: Path, profile: str, *extra: str) -> Path:
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(outputs))
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "run_all.py", "--profile", profile, "--no-progress", *extra], cwd=ROOT,
                            env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"run_all.py --profile {profile} {' '.join(extra)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    folder = (outputs / "latest").resolve()
    print(f"{folder.name}: {time.perf_counter() - started:.1f} s ({' '.join(extra) or 'first run'})", flush=True)
    return folder


def resolve(ref: str) -> Path:
    path = Path(ref)
    return path.resolve() if path.is_dir() else (paths.RUNS_DIR / ref).resolve()


def compare(first: Path, other: Path) -> list[str]:
    """The compared files that differ between two run folders (a file missing from either differs)."""
    differ = []
    for rel in COMPARED:
        a, b = first / rel, other / rel
        same = a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()
        digest = sha256_file(b)[:16] if b.is_file() else "missing"
        print(f"    {rel:32s} {digest}  {'identical' if same else 'DIFFERS'}")
        if not same:
            differ.append(rel)
    return differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--outputs", type=Path, help="outputs folder to use (default: a fresh temporary one)")
    parser.add_argument("--reruns", type=int, default=2, help="forced reruns after the first run")
    parser.add_argument("--runs", nargs=2, metavar="RUN", help="compare two existing runs instead")
    args = parser.parse_args()
    if args.runs:
        runs = [resolve(ref) for ref in args.runs]
    else:
        outputs = args.outputs or Path(tempfile.mkdtemp(prefix="lead2value-reruns-"))
        runs = [run(outputs, args.profile)] + [run(outputs, args.profile, "--force") for _ in range(args.reruns)]
    differ = []
    for other in runs[1:]:
        print(f"{runs[0].name} vs {other.name}:")
        differ += compare(runs[0], other)
    print("byte-identical" if not differ else f"NOT byte-identical: {', '.join(sorted(set(differ)))}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
