#!/usr/bin/env python
"""Reproduce every result: run the numbered notebooks in order with papermill.

    python run_all.py                       # full-scale run (params/base.yaml)
    python run_all.py --profile smoke       # small data, under a minute
    python run_all.py --set leads_path=/data/leads.csv --set n_customers=10000
    python run_all.py --force-from 04       # re-execute 04 and everything after it
    python run_all.py --compare RUN_A RUN_B # what differs between two runs

A scheduler runs one notebook per task (see dags/): `--begin` prints the run id, then
`--run RUN_ID --step 03_lead_model` runs one step of it, `--run RUN_ID --finish` ends it
(promotions, outputs/latest), and `--run RUN_ID --abandon` gives a failed one up.

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
from utils.pipeline.lock import RunLockedError, close_lease, open_lease, run_lock


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
    stepwise = parser.add_argument_group("one step per process (for a scheduler)")
    stepwise.add_argument("--begin", action="store_true", help="begin a run and print its id; run no step")
    stepwise.add_argument("--run", metavar="RUN_ID", help="the run begun with --begin that --step/--finish/--abandon act on")
    stepwise.add_argument("--step", metavar="NN_NAME", help="execute (or reuse) this one step of --run")
    stepwise.add_argument("--finish", action="store_true", help="end --run: promotions, metrics, outputs/latest")
    stepwise.add_argument("--abandon", action="store_true", help="mark --run failed and release its lease")
    args = parser.parse_args(argv)
    actions = [flag for flag in ("step", "finish", "abandon") if getattr(args, flag)]
    if args.run and len(actions) != 1:
        parser.error("--run needs exactly one of --step, --finish, --abandon")
    if actions and not args.run:
        parser.error(f"--{actions[0]} needs --run RUN_ID (the id --begin printed)")
    return args


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
        if args.run:
            return stepwise(args)
        with run_lock():
            planned = plan.make_plan(options)
            last = plan.up_to_date(planned, options)
            if last is not None and not args.begin:
                print(f"nothing to do: all {len(catalog.STEPS)} steps are up to date with run {last['run_id']} "
                      f"(same notebooks, parameters, inputs, utils code and lock). "
                      f"Use --force or --force-from NN to re-execute.")
                return 0
            # MLflow and papermill load in a second or two: not needed for --compare or a no-op.
            from utils.pipeline import runner

            if args.begin:
                state = runner.begin_run(options, planned)
                open_lease(state.run_id)
                print(f"run_id={state.run_id}")
                return 0
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
    except LookupError as err:  # RunNotFound, an unknown step name
        print(f"error: {err}", file=sys.stderr)
        return 2
    except StepFailed as err:
        print(f"\nerror: {err}\noutputs/latest and the champion aliases are unchanged.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: outputs/latest and the champion aliases are unchanged.", file=sys.stderr)
        return 130
    return 0


def stepwise(args: argparse.Namespace) -> int:
    """One step, the finish or the abandon of a run begun with --begin (in its own process)."""
    from utils.pipeline import runner

    with run_lock(for_run=args.run):
        state = runner.resume_run(args.run)
        if args.abandon:
            runner.fail_run(state, "abandoned (run_all.py --abandon)")
            close_lease(args.run)
            print(f"run {args.run} abandoned: outputs/latest and the champion aliases are unchanged.")
        elif args.finish:
            runner.finish_run(state)
            close_lease(args.run)
        else:
            runner.run_step(state, args.step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
