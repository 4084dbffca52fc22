"""How fast the embedded synthetic data is made (full scale: 240,000 leads, 50,000 customers).

    .venv/bin/python bench/bench_generators.py [--repeats 3]

Prints the best wall time of each generator and its throughput; asserts nothing.
"""
from __future__ import annotations

import argparse
import time

from utils.clv.synth import generate_clv
from utils.leads.synth import generate_leads, generate_new_leads


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases = {
        "240,000 leads": (240_000, lambda: generate_leads(240_000, 42)),
        "20,000 new leads": (20_000, lambda: generate_new_leads(20_000, 42)),
        "50,000 customers (4 sources)": (50_000, lambda: generate_clv(50_000, 42)),
    }
    print(f"{'generator':32s} {'best s':>8s} {'rows/s':>12s}")
    for name, (rows, fn) in cases.items():
        seconds = best_of(args.repeats, fn)
        print(f"{name:32s} {seconds:8.2f} {rows / seconds:12,.0f}")


if __name__ == "__main__":
    main()
