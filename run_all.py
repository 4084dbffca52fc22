#!/usr/bin/env python
"""Reproduce every result: run the numbered notebooks in order with papermill.

    python run_all.py                       # full-scale run (params/base.yaml)
    python run_all.py --profile smoke       # small data, under a minute
    python run_all.py --set leads_path=/data/leads.csv --set n_customers=10000
    python run_all.py --force-from 04       # re-execute 04 and everything after it
    python run_all.py --compare RUN_A RUN_B # what differs between two runs
    python run_all.py score --leads new.csv # score new leads with the champions (no training): see score --help

A scheduler runs one notebook per task (see dags/): `--begin` prints the run id, then
`--run RUN_ID --step 03_lead_model` runs one step of it, `--run RUN_ID --finish` ends it
(promotions, outputs/latest; with `--step`, after that step), and `--run RUN_ID --abandon` gives a
failed one up. `--warm-next` leaves a kernel warmed for the next step's process (utils/pipeline/handoff.py).

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

from utils.core import paths
from utils.core.errors import DataContractError
from utils.pipeline import catalog, compare, environment, execute, handoff, plan
from utils.pipeline import params as params_mod
from utils.pipeline.execute import StepFailed
from utils.pipeline.lock import RunLockedError, close_lease, open_lease, run_lock

UNCHANGED = "earlier runs, outputs/latest and the champion aliases are unchanged"
SCORE_HELP = """Score new data with the registered models, without retraining: executes 05_scoring only,
into outputs/scoring/<job_id>/ (scored parquet and CSV with each lead's id, drift tables, dashboard,
manifest.json with model versions and input hashes). outputs/scoring/latest moves only on success.

    python run_all.py score --leads new_leads.csv
    python run_all.py score --leads new_leads.csv --customers customers.csv --purchases purchases.csv
    python run_all.py score --leads new_leads.csv --transactions online_retail.parquet \\
        --set tx_customer_col=CustomerID --lead-model models:/lead_scoring/3

Exit codes: 0 scored; 1 the notebook failed; 2 bad input or parameter (nothing written);
3 another run_all.py holds the lock; 4 HELD: drift past the fail level, scores written in the job
folder but outputs/scoring/latest unchanged; 5 no registered model to score with (train one first:
python run_all.py --profile smoke, or python run_all.py).
"""


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
    stepwise.add_argument("--finish", action="store_true",
                          help="end --run: promotions, metrics, outputs/latest (with --step: once that step is done, "
                               "in the same process)")
    stepwise.add_argument("--abandon", action="store_true", help="mark --run failed and release its lease")
    stepwise.add_argument("--warm-next", action="store_true",
                          help="with --begin or --step: leave a kernel warmed for the run's next step, for the next "
                               "process (a scheduler's next task) to claim; unclaimed, it ends itself")
    args = parser.parse_args(argv)
    actions = [flag for flag in ("step", "finish", "abandon") if getattr(args, flag)]
    if args.run and actions not in (["step"], ["finish"], ["abandon"], ["step", "finish"]):
        parser.error("--run needs one of --step, --finish, --abandon (or --step with --finish)")
    if actions and not args.run:
        parser.error(f"--{actions[0]} needs --run RUN_ID (the id --begin printed)")
    if args.warm_next and not (args.begin or args.step):
        parser.error("--warm-next goes with --begin or --step")
    return args


def parse_score_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run_all.py score", description=SCORE_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", required=True, metavar="FILE",
                        help="raw CodePro leads to score (CSV or parquet, the export's 44 columns; a target is ignored)")
    parser.add_argument("--lead-id-col", default="", metavar="COLUMN",
                        help="the column that identifies a lead; default: lead_id, else the unnamed first column, "
                             "else the row number")
    customers = parser.add_argument_group("customers to score with the CLV model (optional)")
    customers.add_argument("--customers", default="", metavar="FILE", help="customers (with --purchases)")
    customers.add_argument("--purchases", default="", metavar="FILE", help="their purchases")
    customers.add_argument("--purchase-lines", default="", metavar="FILE",
                           help="what each purchase held (needed by a CLV model that reads baskets)")
    customers.add_argument("--web-actions", default="", metavar="FILE", help="their web actions (optional)")
    customers.add_argument("--campaigns", default="", metavar="FILE", help="campaigns sent to them (optional)")
    customers.add_argument("--transactions", default="", metavar="FILE",
                           help="instead of the four files: a retailer's invoice lines (columns: --set tx_*_col=...)")
    parser.add_argument("--lead-model", default="models:/lead_scoring@champion", metavar="URI",
                        help="models:/lead_scoring/<version>, models:/lead_scoring@<alias> (default: @champion)")
    parser.add_argument("--clv-model", default="models:/clv@champion", metavar="URI", help="as --lead-model, for clv")
    parser.add_argument("--profile", default=params_mod.DEFAULT_PROFILE, help="params/<profile>.yaml for 05's parameters")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter of 05_scoring (e.g. psi_fail=0.3), a tx_*_col, or how the files "
                             "are written (csv_sep, leads_date_format, leads_dayfirst, tx_/clv_ likewise)")
    parser.add_argument("--job-id", default="", help="name of the job folder (default: date-time and a random tag)")
    parser.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an unexpected error")
    args = parser.parse_args(argv)
    if args.transactions and (args.customers or args.purchases or args.purchase_lines or args.web_actions
                              or args.campaigns):
        parser.error("give either --transactions or the customer files (--customers, --purchases, ...), not both")
    if (args.customers or args.web_actions or args.campaigns or args.purchase_lines) and not args.purchases:
        parser.error("--customers needs --purchases (the CLV features come from them)")
    if args.purchases and not args.customers:
        parser.error("--purchases needs --customers")
    return args


def score(argv: list[str]) -> int:
    """`run_all.py score ...`: the scoring job (utils/pipeline/scoring_job.py)."""
    args = parse_score_args(argv)
    # MLflow and papermill load in a second or two: only after the arguments are known to be well formed.
    from utils.pipeline import scoring_job
    from utils.scoring.predict import NoModelError

    request = scoring_job.JobRequest(
        leads=args.leads, customers=args.customers, purchases=args.purchases, purchase_lines=args.purchase_lines,
        web_actions=args.web_actions,
        campaigns=args.campaigns, transactions=args.transactions, lead_model=args.lead_model,
        clv_model=args.clv_model, lead_id_col=args.lead_id_col, profile=args.profile,
        overrides=tuple(args.overrides), progress=not args.no_progress and sys.stderr.isatty(), job_id=args.job_id)
    unchanged = "nothing was written; outputs/scoring/latest is unchanged."
    try:
        environment.check_outputs_writable()
        with run_lock():
            result = scoring_job.run_scoring_job(request)
    except params_mod.ParameterError as err:
        print(f"error: {err}\n{unchanged}", file=sys.stderr)
        return scoring_job.EXIT_BAD_INPUT
    except DataContractError as err:
        print(f"error: bad input: {err}\n{unchanged}", file=sys.stderr)
        return scoring_job.EXIT_BAD_INPUT
    except NoModelError as err:
        print(f"error: {err}\n{unchanged}", file=sys.stderr)
        return scoring_job.EXIT_NO_MODEL
    except environment.EnvironmentProblem as err:
        print(f"error: {err}\n{unchanged}", file=sys.stderr)
        return scoring_job.EXIT_BAD_INPUT
    except RunLockedError as err:
        print(f"error: {err}", file=sys.stderr)
        return scoring_job.EXIT_LOCKED
    except StepFailed as err:
        print(f"\nerror: {err}\noutputs/scoring/latest is unchanged.", file=sys.stderr)
        return scoring_job.EXIT_FAILED
    except KeyboardInterrupt:
        print("\ninterrupted: outputs/scoring/latest is unchanged.", file=sys.stderr)
        return 130
    manifest = result.manifest
    scored = f"{manifest['inputs']['leads']['rows']:,} leads"
    if "customers" in manifest["inputs"]:
        scored += f" and {manifest['inputs']['customers']['scored']:,} customers"
    if result.status == "held":
        print(f"HELD: scoring job {result.job_id} scored {scored} into {result.folder}, but drift is past the fail "
              f"level: {', '.join(manifest.get('held_because', []))}.\noutputs/scoring/latest is unchanged; look at "
              f"{result.folder / 'dashboard.html'} before using these scores.", file=sys.stderr)
    else:
        print(f"scoring job {result.job_id} succeeded in {manifest['seconds']:.1f} s: {scored} scored; "
              f"outputs/scoring/latest -> {result.folder.name}")
    return result.exit_code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        if argv[:1] == ["score"]:
            return score(argv[1:])
        return run(parse_args(argv))
    except KeyboardInterrupt:
        print(f"\ninterrupted: {UNCHANGED}.", file=sys.stderr)
        return 130
    except Exception as err:  # one line, not a traceback, unless --debug
        if debug:
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
            # The first step's notebook kernel starts (and imports) while MLflow loads and the run begins;
            # --begin --warm-next: for the process of the first step's task.
            executor = None if args.begin else first_kernel_early(planned, options)
            left = handoff.leave(catalog.STEPS[0], None) if args.begin and args.warm_next else None
            try:
                runner = load_runner()
                if args.begin:  # MLflow loads while the input check runs; the store is opened after it
                    execute.preload_module("utils.core.tracking")
                # The input check reads every user file and imports both model stacks: only where a run begins.
                from utils.pipeline.preflight import check_run

                if args.begin:
                    state = runner.begin_run(options, planned, check_inputs=check_run)
                    open_lease(state.run_id)
                    if left is not None:
                        left = handoff.assign(left, state.run)
                    print(f"run_id={state.run_id}")
                    left = None  # the next task's now
                    return 0
                # The kernels do the run's MLflow calls: this process loads MLflow only for the finish.
                tracker = None if executor is None else \
                    handoff.BackgroundTracker(preload=False, kernel=executor.tracking_kernel)
                runner.run_pipeline(options, planned, check_inputs=check_run, executor=executor, tracker=tracker)
            finally:
                if executor is not None:
                    executor.close()
                if left is not None:  # the run did not begin: no task will claim it
                    handoff.discard(left)
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


def first_kernel_early(planned: plan.Plan, options: plan.RunOptions) -> execute.PapermillExecutor | None:
    """An executor whose kernel for the first step is already starting, if that step will execute."""
    first = catalog.STEPS[0]
    if not catalog.step(first.name).reads:  # its fingerprint needs no dataset of this run
        record = plan.fingerprint_step(first, planned, {})
        if not plan.forced(first.name, options) and \
                plan.find_reusable(first.name, record.fingerprint, record.parts, planned.manifests)[0] is not None:
            return None
    executor = execute.PapermillExecutor(overlap=True, keep_last=True)
    # This kernel opens the MLflow store while it warms up: the run's MLflow calls are made in it
    # (utils.pipeline.handoff.BackgroundTracker), not in this process.
    executor.prepare(first, None, store=True)
    return executor


def stepwise(args: argparse.Namespace) -> int:
    """One step, the finish or the abandon of a run begun with --begin (in its own process)."""
    with run_lock(for_run=args.run):
        # The leased run is legitimately "running" between its processes; any other is a dead one's.
        for run_id in environment.mark_stale_runs(keep=args.run):
            print(f"marked run {run_id} killed: it was left 'running' by a run_all.py that is gone")
        # Under a scheduler every step is a process of its own. Its kernel is the one the task before
        # left warm (--warm-next), else it starts (and imports) now, while the run is read back. A
        # handed kernel has MLflow loaded: it creates, completes and ends the notebook's MLflow run, so
        # this process loads MLflow only to finish the run (in a thread) or without such a kernel. This
        # task may leave a kernel for the next one in turn.
        executor, handed, left, run_dir = None, None, None, paths.RUNS_DIR / args.run
        if args.step:
            executor = execute.PapermillExecutor(kill_when_done=True, keep_kernels=True)
            step = catalog.step(args.step)
            handed = handoff.claim(step, run_dir) if run_dir.is_dir() else None
            if handed is not None:
                executor.add_spare(step, run_dir, handoff.HandedKernel(handed))
            else:
                executor.prepare(step, run_dir)
            following = handoff.next_step(run_dir, step.name) if args.warm_next and run_dir.is_dir() else None
            left = handoff.leave(following, run_dir) if following is not None else None
        try:
            runner = load_runner()
            tracker = handoff.BackgroundTracker(handed, preload=args.finish) if executor is not None else None
            state = runner.resume_run(args.run)
            stepwise_action(runner, state, args, executor, tracker)
        except BaseException:
            if left is not None:  # the next task would not come (refused, failed, interrupted): end it now
                handoff.discard(left)
            raise
        finally:
            if executor is not None:
                executor.close()
    return 0


def stepwise_action(runner, state, args: argparse.Namespace, executor: execute.PapermillExecutor | None,
                    tracker=None) -> None:
    """What --abandon, --finish or --step does to the resumed run ``state``."""
    if args.abandon:
        runner.fail_run(state, "abandoned (run_all.py --abandon)")
        handoff.discard_all(args.run)
        close_lease(args.run)
        print(f"run {args.run} abandoned: outputs/latest and the champion aliases are unchanged.")
        return
    # A retry of "--step NN --finish" whose step is done already only finishes.
    if args.step and not (args.finish and args.step in state.records):
        runner.run_step(state, args.step, executor=executor, tracker=tracker)
    if args.finish:
        handoff.discard_all(args.run)  # kernels left for steps this run reused
        runner.finish_run(state, tracker=tracker)
        close_lease(args.run)


def load_runner():  # -> the utils.pipeline.runner module
    """The runner, once the tracking server answers (a missing server would hang MLflow for minutes;
    MLflow loads where the runner first makes a tracker)."""
    environment.probe_tracking_server()
    # MLflow's INFO lines ("Creating initial MLflow database tables...") are not the user's business.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # Not needed for --compare or a no-op.
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
    environment.skip_exit_collection()
    _quiet_interrupts()
    sys.exit(main())
