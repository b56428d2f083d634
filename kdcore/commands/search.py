"""``kd search``: a hyperparameter search with early stopping, trained here, then its best configurations confirmed
over seeds (kdcore.search). Writes OUT/search.json as the search goes, the trials in OUT/trials/ and the
confirmation study (kd sweep's code) in OUT/confirmation/."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from kdcore.errors import KDError
from kdcore.registry import METHODS
from kdcore.search.confirm import (
    DEFAULT_SEEDS,
    DEFAULT_TOP_K,
    confirmation_seeds,
    confirmation_spec,
    top_configs,
    verdict,
)
from kdcore.search.cost import budget_error, estimate
from kdcore.search.optuna_setup import PRUNERS, SAMPLERS
from kdcore.search.space import DEFAULT_VALIDATION, METHOD_KEY, parse_space
from kdcore.studies.sweep import methods_with_params, parse_list
from kdcore.training.run_files import CHECKPOINT

RESULT = "search.json"
OBJECTIVE = "validation accuracy: each epoch's goes to the pruner; a trial's best epoch ranks it"


def _run(args: argparse.Namespace, recipe_of: Callable[[argparse.Namespace], dict]) -> int:
    from kdcore.search.local import SearchPlan, check_plan, run_search
    from kdcore.studies.sweep import prepare, run_sweep, significance_notes

    methods = [name for item in args.method for name in parse_list(item)]
    space = parse_space(methods, args.space)
    overrides = recipe_of(args)
    declared = {name for method in METHODS.values() for name in method.param_names()}
    fixed = {name: overrides.pop(name) for name in list(overrides) if name in declared}
    methods_with_params(methods, fixed)  # a fixed hyperparameter no searched method has is an error
    if "validation" not in overrides:
        overrides["validation"] = DEFAULT_VALIDATION
        print(f"note: trials are pruned and ranked on a validation split of {DEFAULT_VALIDATION:g} of the training "
              "images (--validation)", file=sys.stderr)
    base = {**overrides, "params": fixed}
    plan = SearchPlan(space, base, args.teacher, args.trials, args.sampler, args.prune, args.min_epochs,
                      args.search_seed, args.parallelism)
    first = check_plan(plan)
    out = Path(args.out or f"runs/search-{time.strftime('%Y%m%d-%H%M%S')}")
    seeds = confirmation_seeds(args.confirm_seeds, first.seed) if args.confirm else []
    confirm_epochs = args.confirm_epochs or first.epochs
    if args.confirm:
        # The confirmation's study, checked now (dataset, split, teacher): a search must not fail after its trials.
        prepare(_payload(confirmation_spec([first], seeds, epochs=confirm_epochs)), out / "confirmation",
                teacher_checkpoint=args.teacher, data_root=args.data_dir)
    seconds = _probe_epoch(first, out, args) if args.max_hours is not None else None
    cost = estimate(args.trials, first.epochs, args.top_k if args.confirm else 0, len(seeds), confirm_epochs,
                    references=2 if args.confirm else 0, seconds_per_epoch=seconds)
    problem = budget_error(cost, args.max_runs, args.max_hours)
    if problem:
        raise KDError(problem)
    print(f"search: {cost.text()}", file=sys.stderr)
    result: dict[str, Any] = {
        "status": "searching",
        "search": {"methods": list(space.methods), "space": space.texts(), "sampler": args.sampler,
                   "pruner": args.prune, "min_epochs": args.min_epochs, "trials": args.trials,
                   "parallelism": args.parallelism, "sampler_seed": args.search_seed, "objective": OBJECTIVE,
                   "teacher": args.teacher, "recipe": {k: v for k, v in first.to_json_dict().items()
                                                       if k not in ("kind", "params")}},
        "estimate": cost.to_json_dict(), "trials": [], "best": None, "confirmation": None}
    out.mkdir(parents=True, exist_ok=True)
    records = []

    def on_trial(record) -> None:
        if record not in records:
            records.append(record)
        if record.status != "running":
            accuracy = "–" if record.val_accuracy is None else f"{100 * record.val_accuracy:.2f}%"
            print(f"trial {record.number}: {record.status} at epoch {record.last_epoch}, validation {accuracy}, "
                  f"{_params_text(record.params)}" + (f" ({record.error})" if record.error else ""), file=sys.stderr)
        result["trials"] = [r.to_json_dict() for r in records]
        _write(out, result)

    run_search(plan, out, data_root=args.data_dir, on_trial=on_trial)
    trials = [{"status": r.status, "val_accuracy": r.val_accuracy, "config": r.config} for r in records]
    best = max((r for r in records if r.status == "completed"), key=lambda r: r.val_accuracy, default=None)
    result["best"] = None if best is None else {"number": best.number, "params": best.params,
                                                "val_accuracy": best.val_accuracy}
    if args.confirm:
        result["status"] = "confirming"
        _write(out, result)
        configs = top_configs(trials, args.top_k)
        spec = confirmation_spec(configs, seeds, epochs=confirm_epochs, name=f"confirmation of search {out.name}")
        sweep = prepare(_payload(spec), out / "confirmation", teacher_checkpoint=args.teacher,
                        data_root=args.data_dir)
        summary = run_sweep(sweep, data_root=args.data_dir, pack=args.pack,
                            on_note=lambda text: print(f"note: {text}", file=sys.stderr))
        finals: dict[str, dict[int, float]] = {}
        for run in summary["runs"]:
            if run["status"] == "completed" and run["final_accuracy"] is not None:
                finals.setdefault(run["group"], {})[run["seed"]] = run["final_accuracy"]
        held = verdict(summary["groups"], finals, configs[0])
        result["confirmation"] = {"study": summary["study"], "seeds": seeds, "epochs": confirm_epochs,
                                  "summary": str(out / "confirmation" / "summary.json"),
                                  "configs": [c.to_json_dict()["params"] | {METHOD_KEY: c.kind} for c in configs],
                                  "groups": summary["groups"], "tables": summary["tables"], "verdict": held}
        print(summary["tables"]["markdown"], end="")
        for line in significance_notes(summary["groups"]):
            print(line)
        print(held["text"])
    result["status"] = "completed"
    _write(out, result)
    counts = {status: sum(r.status == status for r in records) for status in ("completed", "pruned", "failed")}
    print(json.dumps({"search": str(out / RESULT), **counts, "best": result["best"],
                      "verdict": result["confirmation"]["verdict"]["status"] if result["confirmation"] else None}))
    return 0


def _payload(spec) -> dict:
    return spec.model_dump(mode="json", exclude_none=True)


def _probe_epoch(config, out: Path, args) -> float:
    """One epoch of the first trial's configuration, timed, for the estimate in hours."""
    from kdcore.training.engine import train

    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as folder:
        result = train(config.model_copy(update={"epochs": 1, "warmup_epochs": 0}), out_dir=folder,
                       data_root=args.data_dir, teacher_checkpoint=args.teacher if config.method.needs_teacher else None)
    return result.epochs[-1].seconds


def _params_text(params: dict) -> str:
    return ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in params.items())


def _write(out: Path, result: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{RESULT}-", suffix=".tmp", dir=out)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(result, indent=1))
    os.replace(tmp, out / RESULT)


def register(commands, add_hyperparameters: Callable, recipe_of: Callable, add_pack_option: Callable) -> None:
    """``kd search``; the CLI passes how it declares and reads the recipe and hyperparameter flags (kdcore.cli
    sits above this package)."""
    parser = commands.add_parser(
        "search", help="a hyperparameter search (Optuna, pruned on validation accuracy), then its best "
        "configurations confirmed over seeds on the test set",
        description=f"Search a method's hyperparameters with Optuna, each trial a run in OUT/trials/, pruning on "
        f"per-epoch validation accuracy; then re-run the top k configurations over fresh seeds at the full epochs "
        f"with the baseline student and plain KD as references (OUT/confirmation/, kd sweep's study). OUT/{RESULT} "
        "holds the trials and the confirmation's groups. The recipe needs a validation split (--validation).")
    parser.add_argument("--method", action="append", required=True, metavar="kd[,dkd]",
                        help="the method(s) to tune; with several the method is a choice of the search too")
    parser.add_argument("--teacher", required=True, metavar="CKPT", help=f"the teacher {CHECKPOINT} to distil from")
    parser.add_argument("--space", action="append", default=[], metavar="METHOD.PARAM=SPEC",
                        help="a searched hyperparameter: LOW:HIGH (uniform), log:LOW:HIGH (log-uniform) or A,B,C "
                        "(choices), within the method's declared bounds, e.g. kd.temperature=log:1:16 (repeatable)")
    parser.add_argument("--trials", type=int, default=20, help="how many trials (default: %(default)s)")
    parser.add_argument("--parallelism", type=int, default=1,
                        help="trials training at once, each in a worker process (default: %(default)s)")
    parser.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="Optuna's sampler (default: tpe; grid "
                        "needs choices or integer ranges)")
    parser.add_argument("--prune", choices=PRUNERS, default="hyperband",
                        help="the pruning schedule on per-epoch validation accuracy (default: %(default)s)")
    parser.add_argument("--min-epochs", type=int, default=1,
                        help="no trial is pruned before this many epochs (default: %(default)s)")
    parser.add_argument("--search-seed", type=int, default=0, help="the sampler's seed (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None, help="each trial's epochs (default: the method's)")
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K,
                        help="configurations the confirmation re-runs (default: %(default)s)")
    parser.add_argument("--confirm-seeds", type=int, default=DEFAULT_SEEDS,
                        help="seeds of the confirmation, none of them the trials' (default: %(default)s)")
    parser.add_argument("--confirm-epochs", type=int, default=None,
                        help="the confirmation's epochs (default: the trials')")
    parser.add_argument("--no-confirm", dest="confirm", action="store_false", help="stop after the search")
    parser.add_argument("--max-runs", type=int, default=None,
                        help="refuse a search whose trials and confirmation runs exceed this many runs")
    parser.add_argument("--max-hours", type=float, default=None,
                        help="refuse a search estimated over this many device-hours (one epoch is timed first)")
    add_pack_option(parser, "in the confirmation, ")
    parser.add_argument("--out", default=None, help="output folder (default: runs/search-TIMESTAMP)")
    add_hyperparameters(parser)
    parser.set_defaults(func=lambda args: _run(args, recipe_of))
