"""The ``kd`` command: ``kd train``, ``kd experiment``, ``kd sweep``, those of kdcore.commands (import-teacher, search),
plus commands other packages register under the ``kdcore.commands`` entry-point group (the dashboard adds serve,
worker)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import typing
from dataclasses import asdict
from importlib.metadata import entry_points
from pathlib import Path

from pydantic import ValidationError

from kdcore.commands import import_teacher, search
from kdcore.config import RunConfig
from kdcore.deploy.command import register as register_export
from kdcore.errors import KDError
from kdcore.presets import PRESET_TITLES, PRESETS
from kdcore.registry import KINDS, METHODS
from kdcore.studies.study import DEFAULT_MAX_RUNS
from kdcore.studies.sweep import SUMMARY, methods_with_params, parse_grid, parse_list
from kdcore.training.run_files import CHECKPOINT

# Flags whose names differ from their field's; every other flag is --field-name.
_FLAG_NAMES = {"architecture": "--arch"}
# Set per command rather than as configuration flags.
_NOT_FLAGS = ("kind", "params", "epochs")


def _flag_spec(name: str, field) -> tuple[list[str], dict]:
    """argparse arguments for one pydantic field; every default is None so that only given flags count."""
    annotation = field.annotation
    choices = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else None
    base = next((t for t in typing.get_args(annotation) if t is not type(None)), annotation)
    flag = _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
    help_text = field.description or ""
    if base is bool:
        if field.default is True:
            return [f"--no-{name.replace('_', '-')}"], dict(dest=name, action="store_false", default=None,
                                                           help=f"turn off: {help_text}" if help_text else None)
        return [flag], dict(dest=name, action="store_true", default=None, help=help_text or None)
    shown = f"{help_text} (default: {field.default})" if field.default not in (None, ..., ()) else help_text
    if choices:
        return [flag], dict(dest=name, choices=choices, default=None, help=shown or None)
    kind = base if base in (int, float) else str
    return [flag], dict(dest=name, type=kind, default=None, help=shown or None)


def _method_param_fields() -> dict[str, dict[str, object]]:
    """Each hyperparameter any method declares: ``{flag name: {method: its pydantic field}}``."""
    fields: dict[str, dict[str, object]] = {}
    for method_name, method in METHODS.items():
        for name, field in method.params.model_fields.items():
            fields.setdefault(name, {})[method_name] = field
    return fields


def _defaults_by_method(defaults: dict[str, object]) -> str:
    groups: dict[str, list[str]] = {}
    for method, default in defaults.items():
        groups.setdefault(repr(default) if not isinstance(default, bool) else "a switch", []).append(method)
    return "; ".join(f"{', '.join(methods)}: {value}" if value != "a switch" else ", ".join(methods)
                     for value, methods in groups.items())


def _help_by_method(fields: dict[str, object]) -> str:
    """One flag's help: its description and each method's default, or, where methods mean different things by
    the same name (--weight, --beta), each method's own description and default."""
    by_description: dict[str, dict[str, object]] = {}
    for method, field in fields.items():
        by_description.setdefault(field.description or "", {})[method] = field.default
    if len(by_description) == 1:
        [(description, defaults)] = by_description.items()
        return f"{description} [{_defaults_by_method(defaults)}]".strip()
    parts = []
    for description, defaults in by_description.items():
        values = set(map(repr, defaults.values()))
        shown = "" if all(isinstance(d, bool) for d in defaults.values()) else \
            f" (default {values.pop()})" if len(values) == 1 else f" (defaults {_defaults_by_method(defaults)})"
        parts.append(f"{', '.join(defaults)}: {description or 'no description'}{shown}")
    return "; ".join(parts)


def _add_hyperparameters(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per RunConfig field and per method hyperparameter, generated from their declarations;
    ``skip``: fields the command takes in its own form (``kd sweep`` takes lists of seeds and networks)."""
    parser.add_argument("--data-dir", default=None, help="where datasets live (default: $KD_DATA_DIR or ./data)")
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="start from a named recipe; flags given beside it win: "
                        + "; ".join(f"{name}: {title}" for name, title in PRESET_TITLES.items()))
    for name, field in RunConfig.model_fields.items():
        if name not in (*_NOT_FLAGS, *skip):
            flags, options = _flag_spec(name, field)
            parser.add_argument(*flags, **options)
    group = parser.add_argument_group("method hyperparameters (each applies only to the methods named)")
    for name, fields in _method_param_fields().items():
        # A flag parses the widest of its methods' types: a float where one method's is a float, another's an int.
        widest = next((f for f in fields.values() if float in (f.annotation, *typing.get_args(f.annotation))),
                      next(iter(fields.values())))
        flags, options = _flag_spec(name, widest)
        options["help"] = _help_by_method(fields)
        group.add_argument(*flags, **options)


def _overrides(args: argparse.Namespace) -> dict:
    names = ["preset", *(n for n in RunConfig.model_fields if n not in ("kind", "params")), *_method_param_fields()]
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


class _Progress:
    """A tqdm bar over all steps of a run, showing the last epoch's figures."""

    def __init__(self, label: str, position: int = 0):
        self.label, self.position, self.bar, self.stage = label, position, None, None

    def on_step(self, progress) -> None:
        stage = getattr(progress, "stage", None)
        if self.bar is not None and stage != self.stage:
            self.close()  # a method's pre-stage ended: the main stage's epochs get a bar of their own
        if self.bar is None:
            from tqdm import tqdm

            self.stage = stage
            done = (progress.epoch - 1) * progress.steps
            self.bar = tqdm(total=progress.epochs * progress.steps, initial=done,
                            desc=f"{self.label} ({stage})" if stage else self.label,
                            unit="step", file=sys.stderr, dynamic_ncols=True, position=self.position)
        self.bar.update(1)

    def on_epoch(self, metrics) -> None:
        if self.bar is not None:
            val = {} if metrics.val_accuracy is None else {"val": f"{100 * metrics.val_accuracy:.2f}%"}
            self.bar.set_postfix(epoch=metrics.epoch, loss=f"{metrics.train_loss:.4f}", **val,
                                 acc=f"{100 * metrics.test_accuracy:.2f}%", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None


def _cmd_train(args: argparse.Namespace) -> int:
    from kdcore.training.engine import train

    config = RunConfig(kind=args.kind, **_overrides(args))
    out = Path(args.out or f"runs/{config.kind}-{time.strftime('%Y%m%d-%H%M%S')}")
    progress = _Progress(config.kind)
    try:
        result = train(config, out_dir=out, data_root=args.data_dir, teacher_checkpoint=args.teacher,
                       resume=args.resume, on_step=progress.on_step, on_epoch=progress.on_epoch)
    finally:
        progress.close()
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    summary = {k: v for k, v in asdict(result).items() if k != "epochs"}
    print(json.dumps({"kind": config.kind, **summary, "out": str(out)}))
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from kdcore.studies.experiment import (
        experiment_configs,
        experiment_study,
        format_table,
        run_experiment,
        summary_rows,
    )

    overrides = _overrides(args)
    seeds = parse_list(args.seeds) if args.seeds is not None else None
    if seeds is not None and "seed" in overrides:
        raise KDError("give --seeds or --seed, not both")
    if seeds is not None and len(seeds) > 1:
        payload = experiment_study(overrides.pop("dataset", "cifar10"), overrides.pop("subset", None), seeds,
                                   **overrides)
        return _sweep(payload, None, DEFAULT_MAX_RUNS, args.data_dir, args.out, "experiment", args.pack)
    if args.pack is not None:
        raise KDError("--pack applies to an experiment over several --seeds")
    if seeds is not None:
        overrides["seed"] = seeds[0]
    configs = experiment_configs(overrides.pop("dataset", "cifar10"), overrides.pop("subset", None), **overrides)
    out = Path(args.out or f"runs/experiment-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.perf_counter()

    def train_with_bar(config, **kwargs):
        from kdcore.training.engine import train

        progress = _Progress(config.kind, position=[c.kind for c in configs].index(config.kind))
        try:
            return train(config, on_step=progress.on_step, on_epoch=progress.on_epoch, **kwargs)
        finally:
            progress.close()

    results = run_experiment(configs, out, data_root=args.data_dir, train_fn=train_with_bar,
                             concurrent=not args.sequential)
    rows = summary_rows(results)
    total = time.perf_counter() - started
    print(format_table(rows))
    print(f"whole experiment: {total:.1f} s on {next(iter(results.values())).device}")
    (out / "summary.json").write_text(json.dumps({"runs": rows, "seconds": total}, indent=1))
    print(json.dumps({"summary": str(out / "summary.json"), "seconds": round(total, 2),
                      "accuracy": {r["kind"]: r["test_accuracy"] for r in rows}}))
    return 0


def _sweep_payload(args: argparse.Namespace) -> dict:
    """The study request the sweep's flags describe (kdcore.studies.study.StudySpec checks it)."""
    overrides = _overrides(args)
    fixed = {name: overrides.pop(name) for name in _method_param_fields() if name in overrides}
    payload = {"dataset": overrides.pop("dataset", "cifar10"), "subset": overrides.pop("subset", None),
               "methods": methods_with_params(parse_list(args.methods), fixed), "seeds": parse_list(args.seeds),
               "epochs": overrides.pop("epochs", None), "teacher_epochs": args.teacher_epochs,
               "teacher_architecture": args.teacher_arch, "teacher_per_seed": args.teacher_per_seed,
               "grid": parse_grid(args.grid), "name": args.name, **overrides}
    if args.arch is not None:
        payload["architectures"] = parse_list(args.arch)
    return payload


def _cmd_sweep(args: argparse.Namespace) -> int:
    return _sweep(_sweep_payload(args), args.teacher, args.max_runs, args.data_dir, args.out, "sweep", args.pack)


def _sweep(payload: dict, teacher: str | None, max_runs: int, data_dir: str | None, out: str | None,
           name: str, pack: int | None = None) -> int:
    """Check the study, train it here run by run with a bar each, and print its comparison table."""
    from kdcore.studies.sweep import prepare, run_sweep, significance_notes

    out_dir = Path(out or f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    sweep = prepare(payload, out_dir, teacher_checkpoint=teacher, max_runs=max_runs, data_root=data_dir)

    def bar(run, total, position=0):
        return _Progress(f"[{run.index}/{total}] {run.config.kind} seed {run.config.seed}", position)

    def note(text):
        print(f"note: {text}", file=sys.stderr)

    try:
        summary = run_sweep(sweep, data_root=data_dir, progress=bar, on_note=note, pack=pack)
    except KeyboardInterrupt:
        print(f"note: the runs finished before the interrupt are in {out_dir / SUMMARY}", file=sys.stderr)
        raise
    for text in summary["notes"]:
        note(text)
    print(summary["tables"]["markdown"], end="")
    for line in significance_notes(summary["groups"]):
        print(line)
    where = f" on {summary['device']}" if summary["device"] else ""
    print(f"whole {name}: {summary['total']} runs ({summary['completed']} completed, {summary['failed']} failed) "
          f"in {summary['seconds']:.1f} s{where}")
    print(json.dumps({"summary": str(out_dir / SUMMARY), "seconds": round(summary["seconds"], 2),
                      "runs": summary["total"], "completed": summary["completed"], "failed": summary["failed"]}))
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    """The cifar100-benchmark preset trained here: its cost first, then the teachers and one study per teacher
    network and learning rate, then the paper's table with the published values beside ours."""
    from kdcore.studies.benchmark import PAIRS, parse_benchmark
    from kdcore.studies.benchmark_run import BENCHMARK, TABLE, cost_line, given_teachers, run_benchmark

    payload = {"pairs": parse_list(args.pairs) if args.pairs else [p.key for p in PAIRS],
               "methods": parse_list(args.methods), "seeds": parse_list(args.seeds), "dataset": args.dataset,
               "subset": args.subset, "teachers": given_teachers(args.teacher), "name": args.name,
               **({"epochs": args.epochs} if args.epochs is not None else {})}
    spec = parse_benchmark(payload)
    out = Path(args.out or f"runs/benchmark-{time.strftime('%Y%m%d-%H%M%S')}")

    def bar(config, label, position=0):
        return _Progress(label, position)

    def note(text):
        print(f"note: {text}", file=sys.stderr)

    def announce(found):
        print(f"kd benchmark: {cost_line(found)}", file=sys.stderr)

    data = run_benchmark(spec, out, data_root=args.data_dir, max_runs=args.max_runs, pack=args.pack, progress=bar,
                         on_note=note, on_cost=announce)
    print(data["markdown"], end="")
    print(json.dumps({"benchmark": str(out / BENCHMARK), "table": str(out / TABLE),
                      "seconds": round(data["seconds"], 2), "runs": data["cost"]["total"]}))
    return 0


def _pack_size(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _add_pack_option(parser: argparse.ArgumentParser, when: str = "") -> None:
    parser.add_argument("--pack", type=_pack_size, default=None, metavar="N",
                        help=f"{when}train up to N runs of one network, data and recipe together, one step for all "
                        "of them, each still its own run, once its teacher has completed (default: 1 on a CPU, "
                        "where packing does not pay, 8 on a GPU; 1: one run after another)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kd", description="Knowledge-distillation runs: train, compare, serve.")
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser("train", help="train one run")
    train_parser.add_argument("kind", choices=KINDS)
    train_parser.add_argument("--teacher", default=None, help=f"teacher {CHECKPOINT} (methods that distil: "
                              + ", ".join(k for k, m in METHODS.items() if m.needs_teacher) + ")")
    train_parser.add_argument("--epochs", type=int, default=None)
    train_parser.add_argument("--out", default=None, help="output folder (default: runs/KIND-TIMESTAMP)")
    train_parser.add_argument("--resume", action="store_true", help=f"continue from OUT/{CHECKPOINT}")
    _add_hyperparameters(train_parser)
    train_parser.set_defaults(func=_cmd_train)

    experiment_parser = commands.add_parser("experiment", help="the tutorial experiment: teacher, student, then kd, cosine and fitnet")
    experiment_parser.add_argument("--epochs", type=int, default=None, help="override every run's epochs")
    experiment_parser.add_argument("--out", default=None, help="output folder (default: runs/experiment-TIMESTAMP)")
    experiment_parser.add_argument("--sequential", action="store_true",
                                   help="on a GPU, train one run at a time instead of each phase concurrently")
    experiment_parser.add_argument("--seeds", default=None, metavar="1,2,3",
                                   help="repeat the experiment over these seeds, one teacher per seed, and print "
                                   "mean ± std with significance against the student (default: one run)")
    _add_pack_option(experiment_parser, "with several --seeds, ")
    _add_hyperparameters(experiment_parser)
    experiment_parser.set_defaults(func=_cmd_experiment)

    sweep_parser = commands.add_parser(
        "sweep", help="a study: methods × grid × networks × seeds against one teacher, trained here, "
        "compared by mean ± std", description="Train a study locally, teachers first, one run after another: "
        f"each run in OUT/INDEX-METHOD-SEED/, then OUT/{SUMMARY} (runs and per-configuration statistics) and "
        "the paper table in OUT/table.md and OUT/table.tex.")
    sweep_parser.add_argument("--methods", required=True, metavar="student,kd",
                              help="methods to compare: " + ", ".join(k for k, m in METHODS.items() if not m.teaches))
    sweep_parser.add_argument("--seeds", required=True, metavar="1,2,3", help="one run per seed and configuration")
    sweep_parser.add_argument("--arch", default=None, metavar="A,B",
                              help="student networks (default: each method's own)")
    sweep_parser.add_argument("--grid", action="append", default=[], metavar="METHOD.PARAM=V1,V2",
                              help="values to sweep, e.g. kd.temperature=1,2,4 (repeatable: every combination runs)")
    sweep_parser.add_argument("--epochs", type=int, default=None, help="the students' epochs (default: each method's)")
    sweep_parser.add_argument("--teacher", default=None, metavar="CKPT",
                              help=f"distil from this teacher {CHECKPOINT} instead of training one")
    sweep_parser.add_argument("--teacher-epochs", type=int, default=None, help="epochs of the teacher the sweep trains")
    sweep_parser.add_argument("--teacher-arch", default=None, help="network of the teacher the sweep trains")
    sweep_parser.add_argument("--teacher-per-seed", action="store_true",
                              help="train one teacher per seed (default: one, with the first seed)")
    sweep_parser.add_argument("--max-runs", type=int, default=DEFAULT_MAX_RUNS,
                              help="refuse a study that expands to more runs (default: %(default)s)")
    _add_pack_option(sweep_parser)
    sweep_parser.add_argument("--name", default=None, help="a label for the study")
    sweep_parser.add_argument("--out", default=None, help="output folder (default: runs/sweep-TIMESTAMP)")
    _add_hyperparameters(sweep_parser, skip=("architecture", "seed"))
    sweep_parser.set_defaults(func=_cmd_sweep)
    import_teacher.register(commands)
    register_export(commands)
    search.register(commands, _add_hyperparameters, _overrides, _add_pack_option)

    _add_benchmark_parser(commands)
    for plugin in entry_points(group="kdcore.commands"):
        try:
            register = plugin.load()
        except ImportError:
            continue  # the dashboard's commands are optional for the training core
        register(commands)
    return parser


def _add_benchmark_parser(commands) -> None:
    from kdcore.studies.benchmark import DEFAULT_METHODS, DEFAULT_SEEDS, PAIRS, PRESET, RECIPE

    parser = commands.add_parser(
        "benchmark", help=f"the {PRESET} preset: the standard CIFAR-100 teacher→student pairs, methods × seeds at "
        f"the {RECIPE} recipe, tabulated beside the published values",
        description="Train the standard pairs here: each teacher network once (unless --teacher gives it), then "
        "one study per teacher network and learning rate (MobileNetV2 and ShuffleNet students at 0.01, as the "
        f"papers), and write OUT/benchmark.json and OUT/table.md. Pairs: {', '.join(p.key for p in PAIRS)}.")
    parser.add_argument("--pairs", default=None, metavar="T:S,T:S", help="narrow to these pairs (default: all 13)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), metavar="kd,dkd",
                        help="distilling methods; the baseline student always trains (default: %(default)s)")
    parser.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), metavar="1,2,3",
                        help="one run per seed, method and pair (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None, help=f"every run's epochs (default: the {RECIPE} 240)")
    parser.add_argument("--dataset", default="cifar100", help="default: %(default)s (synthetic100 on a CPU)")
    parser.add_argument("--subset", type=int, default=None, help="train on N images stratified by class")
    parser.add_argument("--teacher", action="append", default=[], metavar="NETWORK=CKPT",
                        help="distil from this checkpoint for that teacher network instead of training one (repeatable)")
    parser.add_argument("--data-dir", default=None, help="where datasets live (default: $KD_DATA_DIR or ./data)")
    parser.add_argument("--max-runs", type=int, default=5000, help="refuse a benchmark of more runs (default: %(default)s)")
    _add_pack_option(parser)
    parser.add_argument("--name", default=None, help="a label for the benchmark")
    parser.add_argument("--out", default=None, help="output folder (default: runs/benchmark-TIMESTAMP)")
    parser.set_defaults(func=_cmd_benchmark)


def _one_line(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "config"
        parts.append(f"{field}: {item['msg'].removeprefix('Value error, ')}")
    return "invalid configuration: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValidationError as error:
        message = _one_line(error)
    except KDError as error:
        message = str(error)
    except KeyboardInterrupt:
        print("kd: interrupted", file=sys.stderr)
        return 130
    print(f"kd: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
