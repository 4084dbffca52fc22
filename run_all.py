#!/usr/bin/env python
"""Reproduce every result: run the numbered notebooks in order with papermill.

    python run_all.py                       # full-scale run (params/base.yaml)
    python run_all.py --profile smoke       # small data, under a minute
    python run_all.py --set leads_path=/data/leads.csv --set n_customers=10000
    python run_all.py --force-from 04       # re-execute 04 and everything after it
    python run_all.py --compare RUN_A RUN_B # what differs between two runs

Steps whose inputs, code and parameters did not change since a successful run are
reused, not re-executed. The steps and datasets are declared in utils/pipeline/catalog.py,
the run itself lives in utils/pipeline/runner.py.
"""
from __future__ import annotations

import argparse
import sys

from utils.core.contracts import DataContractError
from utils.pipeline import catalog, compare, plan
from utils.pipeline import params as params_mod
from utils.pipeline.execute import StepFailed
from utils.pipeline.lock import RunLockedError, run_lock


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=params_mod.DEFAULT_PROFILE,
                        help="params/<profile>.yaml over params/base.yaml ('default' = base alone; e.g. smoke)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="override one parameter (repeatable); checked against the notebooks' declarations")
    parser.add_argument("--force", action="store_true", help="re-execute every step")
    parser.add_argument("--force-from", metavar="NN", help="re-execute step NN and every later step")
    parser.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help="print what differs between two runs")
    parser.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.compare:
        try:
            print("\n".join(compare.compare_runs(*args.compare)))
        except FileNotFoundError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    options = plan.RunOptions(
        profile=args.profile, overrides=tuple(args.overrides), force=args.force,
        force_from=args.force_from, progress=not args.no_progress and sys.stderr.isatty(),
    )
    try:
        with run_lock():
            planned = plan.make_plan(options)
            last = plan.up_to_date(planned, options)
            if last is not None:
                print(f"nothing to do: all {len(catalog.STEPS)} steps are up to date with run {last['run_id']} "
                      f"(same notebooks, parameters, inputs, utils code and lock). "
                      f"Use --force or --force-from NN to re-execute.")
                return 0
            # MLflow and papermill load in a second or two: not needed for --compare or a no-op.
            from utils.pipeline import runner

            runner.run_pipeline(options, planned)
    except params_mod.ParameterError as err:
        print(f"error: {err}\nnothing was run.", file=sys.stderr)
        return 2
    except DataContractError as err:
        print(f"error: bad input: {err}\nnothing was run; earlier runs, outputs/latest and the champion aliases are unchanged.",
              file=sys.stderr)
        return 2
    except RunLockedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except StepFailed as err:
        print(f"\nerror: {err}\noutputs/latest and the champion aliases are unchanged.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: outputs/latest and the champion aliases are unchanged.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
