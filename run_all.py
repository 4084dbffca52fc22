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

Exit codes: 0 done (or nothing to do); 1 a notebook failed; 2 refused before anything
ran (a parameter, an input file, the machine: the message names it); 3 another run
holds the lock; 130 interrupted (Ctrl-C). No traceback unless --debug.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from utils.core.contracts import DataContractError
from utils.pipeline import catalog, compare, environment, plan
from utils.pipeline import params as params_mod
from utils.pipeline.execute import StepFailed
from utils.pipeline.lock import RunLockedError, close_lease, open_lease, run_lock

UNCHANGED = "earlier runs, outputs/latest and the champion aliases are unchanged"


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
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an unexpected error")
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
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {UNCHANGED}.", file=sys.stderr)
        return 130
    except Exception as err:  # one line, not a traceback, unless --debug
        if args.debug:
            raise
        print(f"error: {type(err).__name__}: {err}\n(unexpected: run again with --debug for the traceback; "
              f"{UNCHANGED})", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
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
        environment.check_outputs_writable()
        if args.run:
            return stepwise(args)
        with run_lock():
            for run_id in environment.mark_stale_runs():
                print(f"marked run {run_id} killed: it was left 'running' by a run_all.py that is gone")
            planned = plan.make_plan(options)
            for note in planned.notes:
                print(f"input path {note}")
            last = plan.up_to_date(planned, options)
            if last is not None and not args.begin:
                print(f"nothing to do: all {len(catalog.STEPS)} steps are up to date with run {last['run_id']} "
                      f"(same notebooks, parameters, inputs, utils code and lock). "
                      f"Use --force or --force-from NN to re-execute.")
                return 0
            runner = load_runner()
            if args.begin:
                state = runner.begin_run(options, planned)
                open_lease(state.run_id)
                print(f"run_id={state.run_id}")
                return 0
            runner.run_pipeline(options, planned)
    except params_mod.ParameterError as err:
        print(f"error: {err}\nnothing was run; {UNCHANGED}.", file=sys.stderr)
        return 2
    except DataContractError as err:
        print(f"error: bad input: {err}\nnothing was run; {UNCHANGED}.", file=sys.stderr)
        return 2
    except environment.EnvironmentProblem as err:
        print(f"error: {err}\nnothing was run; {UNCHANGED}.", file=sys.stderr)
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
    return 0


def stepwise(args: argparse.Namespace) -> int:
    """One step, the finish or the abandon of a run begun with --begin (in its own process)."""
    with run_lock(for_run=args.run):
        # The leased run is legitimately "running" between its processes; any other is a dead one's.
        for run_id in environment.mark_stale_runs(keep=args.run):
            print(f"marked run {run_id} killed: it was left 'running' by a run_all.py that is gone")
        runner = load_runner()
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


def load_runner():  # -> the utils.pipeline.runner module
    """The runner, once the tracking server answers (a missing server would hang MLflow for minutes)."""
    environment.probe_tracking_server()
    # MLflow's INFO lines ("Creating initial MLflow database tables...") are not the user's business.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # MLflow and papermill load in a second or two: not needed for --compare or a no-op.
    from utils.pipeline import runner

    return runner


def _quiet_interrupts() -> None:
    """Ctrl-C: one line. A second Ctrl-C while the kernel is being stopped ends the process at once."""
    def interrupted(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, again)
        # The notebook client logs the kernel it is stopping as "died": not news after a Ctrl-C.
        logging.disable(logging.CRITICAL)
        raise KeyboardInterrupt

    def again(signum: int, frame: object) -> None:
        print("\ninterrupted again: stopping at once.", file=sys.stderr, flush=True)
        os._exit(130)

    signal.signal(signal.SIGINT, interrupted)


if __name__ == "__main__":
    _quiet_interrupts()
    sys.exit(main())
