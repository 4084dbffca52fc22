"""Soak test: do short processes that read a parquet file abort at interpreter exit?

Writes a small parquet file (1,000 rows: ints, floats, strings, a category, datetimes,
nullable values) into a temporary folder with ``df.to_parquet(engine="pyarrow")``, then
runs ``--n`` short child processes per variant (``--workers`` at a time, the variants
interleaved so that machine load hits them alike), each of which reads the file and exits.
Counts the children that abort (exit status 134 / SIGABRT, or ``terminate called`` in
stderr) and prints the abort rate per variant, the exit-status histogram and the wall time.

    python bench/soak_parquet_exit.py                   # 300 children with the project's reader, 300 with bare pd.read_parquet
    python bench/soak_parquet_exit.py --n 3000 --variant base --variant fs_local   # unfixed vs fixed
    python bench/soak_parquet_exit.py --variant pq_pyfile --env ARROW_DEFAULT_MEMORY_POOL=system
    python bench/soak_parquet_exit.py --variant pq_pyfile --prelude 'import pyarrow as pa; pa.set_cpu_count(1)'
    python bench/soak_parquet_exit.py --list                            # the child variants

Why it aborts (pandas 2.1 + pyarrow on CPython 3.11): for a local path, ``pd.read_parquet``
opens the file in Python and gives pyarrow the Python file object; pyarrow's dataset reader
frees what it read (buffers holding Python ``bytes``) on one of its worker threads just
after ``read_parquet`` returns. When the main thread is already finalizing the interpreter,
that worker's GIL request makes CPython call ``pthread_exit`` inside a ``noexcept`` C++
destructor, and the C++ runtime calls ``std::terminate``. Variants that hand Arrow a path
(``pq``, ``fs_local``) never abort; ``pq_pyfile`` is the fastest high-rate reproducer.

The project's readers (``utils.core.io.read_table`` and ``read_parquet``, which notebooks use
through ``step.load``) hand Arrow the path: the ``project`` variants, target 0 aborts. By default
the soak runs them beside ``base`` (bare ``pd.read_parquet``, the unfixed reader) as the baseline
measured in the same run. Exits 1 when a child of a ``project`` variant aborted (or, with only
other variants asked for, any child), 0 otherwise. Asserts nothing about time.

Written by the engineer who found the cause (their report: root cause, core dump, pyarrow
versions); see the comment on ``_LOCAL_FS`` in ``utils/core/io.py``.
"""
from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Each child runs ``python -c CODE PATH``; ``p`` is the parquet file's path.
_HEAD = "import os, sys\np = sys.argv[1]\n"
VARIANTS: dict[str, str] = {
    # What the project does today: pandas opens the file and hands pyarrow a Python file object.
    "base": "import pandas as pd\ndf = pd.read_parquet(p)\n",
    # The fix: with a pyarrow filesystem, pandas passes the path and Arrow reads the file itself.
    "fs_local": "import pandas as pd\nimport pyarrow.fs\n"
                "df = pd.read_parquet(p, filesystem=pyarrow.fs.LocalFileSystem())\n",
    # pyarrow alone: a path (native file) versus a Python file object (what pandas passes).
    "pq": "import pyarrow.parquet as pq\nt = pq.read_table(p)\n",
    "pq_pyfile": "import pyarrow.parquet as pq\nwith open(p, 'rb') as f:\n    t = pq.read_table(f)\n",
    "pq_to_pandas": "import pyarrow.parquet as pq\ndf = pq.read_table(p).to_pandas()\n",
    "import_only": "import pandas as pd\nimport pyarrow.parquet as pq\n",
    # Reader options.
    "no_threads": "import pandas as pd\ndf = pd.read_parquet(p, use_threads=False)\n",
    "no_prebuffer": "import pandas as pd\ndf = pd.read_parquet(p, pre_buffer=False)\n",
    # Other libraries before or after the read, and the exit path.
    "mlflow_first": "import mlflow\nimport pandas as pd\ndf = pd.read_parquet(p)\n",
    "then_sklearn": "import pandas as pd\ndf = pd.read_parquet(p)\nimport sklearn.ensemble\n",
    "then_lightgbm": "import pandas as pd\ndf = pd.read_parquet(p)\nimport lightgbm\n",
    "os_exit": "import pandas as pd\ndf = pd.read_parquet(p)\nsys.stdout.flush()\nos._exit(0)\n",
    # Writing only.
    "write": "import pandas as pd\ndf = pd.DataFrame({'a': range(1000), 'b': ['x'] * 1000})\n"
             "df.to_parquet(p + f'.{os.getpid()}.out', engine='pyarrow')\nos.remove(p + f'.{os.getpid()}.out')\n",
    # The project's own reader (utils.core.io after the restructuring, utils.data before it).
    "project": "from utils.core.io import read_table\ndf = read_table(p)\n",
    "project_read_parquet": "from utils.core.io import read_parquet\ndf = read_parquet(p)\n",
}


# The project's reader, and the bare pandas call it replaced as the baseline of the same run.
DEFAULT_VARIANTS = ["project", "base"]


def make_frame(rows: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "id": np.arange(rows, dtype="int64"),
        "amount": rng.normal(100.0, 25.0, rows),
        "count": rng.integers(0, 50, rows).astype("int32"),
        "flag": rng.random(rows) < 0.3,
        "city": rng.choice(["Mumbai", "Delhi", "Pune", "Chennai", None], rows),
        "tier": pd.Categorical(rng.choice(["tier1", "tier2", "tier3"], rows)),
        "created": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 86_400 * 365, rows), unit="s"),
        "created_utc": pd.date_range("2024-01-01", periods=rows, freq="h", tz="UTC"),
        "score": pd.array(np.where(rng.random(rows) < 0.1, None, rng.integers(0, 100, rows)), dtype="Int64"),
    })


def run_child(python: str, code: str, path: str, env: dict[str, str], timeout: float) -> tuple[int | str, str]:
    try:
        done = subprocess.run([python, "-c", code, path], check=False, env=env, capture_output=True, text=True,
                              timeout=timeout, errors="replace")
    except subprocess.TimeoutExpired:
        return "timeout", ""
    status = done.returncode
    if status < 0:  # killed by a signal: report it as a shell would (SIGABRT -> 134)
        status = 128 - status
    return status, done.stderr


def is_abort(status: int | str, stderr: str) -> bool:
    return status == 134 or "terminate called" in stderr


def _head(text: str, lines: int = 12) -> str:
    return "\n        ".join(text.strip().splitlines()[:lines])


def soak(arms: list[tuple[str, str, dict[str, str]]], n: int, workers: int, path: str, python: str,
         timeout: float, show: int) -> list[dict]:
    """Run ``n`` children per arm (label, code, env), the arms interleaved so machine load hits them alike."""
    tasks = [arm for _ in range(n) for arm in arms]
    start = time.perf_counter()
    results = []
    step = max(len(tasks) // 10, 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done in pool.map(lambda arm: (arm[0], *run_child(python, arm[1], path, arm[2], timeout)), tasks):
            results.append(done)
            if len(results) % step == 0 and len(results) < len(tasks):
                aborted = collections.Counter(name for name, status, err in results if is_abort(status, err))
                per_arm = ", ".join(f"{label} {aborted[label]}" for label, _, _ in arms)
                print(f"  ... {len(results)}/{len(tasks)} children, {time.perf_counter() - start:.0f} s; "
                      f"aborts so far: {per_arm}", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    print(f"{len(tasks)} children in {seconds:.1f} s ({1000.0 * seconds / len(tasks):.0f} ms/child "
          f"at {workers} workers, arms interleaved)", flush=True)
    summaries = []
    for label, _, _ in arms:
        mine = [(status, err) for name, status, err in results if name == label]
        statuses = collections.Counter(status for status, _ in mine)
        aborts = [err for status, err in mine if is_abort(status, err)]
        other = [(status, err) for status, err in mine if status != 0 and not is_abort(status, err)]
        print(f"[{label}] aborts {len(aborts)}/{n} ({100.0 * len(aborts) / n:.2f} %)  "
              f"exit statuses {dict(sorted(statuses.items(), key=str))}", flush=True)
        for err in aborts[:show]:
            print("    abort stderr: " + _head(err))
        for status, err in other[:show]:
            print(f"    exit {status} stderr: " + _head(err))
        summaries.append({"arm": label, "n": n, "aborts": len(aborts), "statuses": statuses})
    return summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="child processes per variant (default 300)")
    parser.add_argument("--workers", type=int, default=2, help="children running at once (default 2)")
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS),
                        help="child variant, repeatable (default: project and base); see --list")
    parser.add_argument("--prelude", default="",
                        help="Python code each child runs first, e.g. 'import pyarrow as pa; pa.set_cpu_count(1)'")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment variable for the children, repeatable")
    parser.add_argument("--rows", type=int, default=1000, help="rows in the parquet file (default 1000)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the children (default: this one)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a child counts as hung")
    parser.add_argument("--show", type=int, default=1, help="stderr samples printed per variant (default 1)")
    parser.add_argument("--list", action="store_true", help="print the child variants and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name, code in VARIANTS.items():
            print(f"{name}:\n    " + code.strip().replace("\n", "\n    "))
        return 0

    env = dict(os.environ)
    for item in args.env:
        key, _, value = item.partition("=")
        env[key] = value
    # The project's root on the children's path, so the project variants work from any folder.
    project_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [project_root, env.get("PYTHONPATH", "")]))

    import pandas as pd

    # The children's versions (--python and --env PYTHONPATH=... may point elsewhere than this process).
    versions = "import sys, pandas, pyarrow, numpy; print(sys.version.split()[0], pandas.__version__, " \
               "pyarrow.__version__, numpy.__version__)"
    probe = subprocess.run([args.python, "-c", versions], check=False, env=env, capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"the child interpreter cannot import pandas and pyarrow:\n{probe.stderr}", file=sys.stderr)
        return 2
    py_version, pd_version, pa_version, np_version = probe.stdout.split()
    print(f"children: python {py_version} ({args.python}), pandas {pd_version}, pyarrow {pa_version}, "
          f"numpy {np_version}; {os.cpu_count()} cores; n={args.n} workers={args.workers}"
          + (f" env {args.env}" if args.env else "") + (f" prelude {args.prelude!r}" if args.prelude else ""),
          flush=True)
    # A SIGTERM ends the soak like Ctrl-C: queued children are cancelled, the temporary folder removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="soak_parquet_") as folder:
        path = str(Path(folder, "sample.parquet"))
        frame = make_frame(args.rows)
        frame.to_parquet(path, engine="pyarrow")
        assert pd.read_parquet(path).equals(frame), "parquet round trip changed the frame"
        arms = [(variant, _HEAD + (args.prelude + "\n" if args.prelude else "") + VARIANTS[variant], env)
                for variant in args.variant or DEFAULT_VARIANTS]
        summaries = soak(arms, args.n, args.workers, path, args.python, args.timeout, args.show)
    total = sum(s["aborts"] for s in summaries)
    children = sum(s["n"] for s in summaries)
    print(f"total aborts {total}/{children}")
    ours = [s for s in summaries if s["arm"].startswith("project")] or summaries
    ours_aborts = sum(s["aborts"] for s in ours)
    print(f"aborts of {', '.join(s['arm'] for s in ours)}: {ours_aborts}/{sum(s['n'] for s in ours)} (target 0)")
    return 1 if ours_aborts else 0


if __name__ == "__main__":
    sys.exit(main())
