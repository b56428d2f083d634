"""The ``kd`` command: ``kd train`` and ``kd experiment``, plus commands other packages
register under the ``kdcore.commands`` entry-point group (the dashboard adds serve, worker)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from importlib.metadata import entry_points
from pathlib import Path

from pydantic import ValidationError

from kdcore.config import RunConfig
from kdcore.errors import KDError
from kdcore.registry import KINDS
from kdcore.run_files import CHECKPOINT


def _add_hyperparameters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=None, help="synthetic, cifar10, or a folder/archive name in the data dir")
    parser.add_argument("--data-dir", default=None, help="where datasets live (default: $KD_DATA_DIR or ./data)")
    parser.add_argument("--subset", type=int, default=None, help="train on N images, stratified by class")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--temperature", type=float, default=None, help="softmax temperature (kd)")
    parser.add_argument("--ce-weight", type=float, default=None, help="weight of cross-entropy (KD kinds)")
    parser.add_argument("--distill-weight", type=float, default=None, help="weight of the distillation term")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    parser.add_argument("--no-resident-data", dest="resident_data", action="store_false", default=None,
                        help="keep data on the host and normalise per batch")
    parser.add_argument("--no-cache-teacher", dest="cache_teacher", action="store_false", default=None,
                        help="run the teacher online in every step")
    parser.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false", default=None,
                        help="launch each step's kernels eagerly")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=None,
                        help="keep convolutions in NCHW layout")


_CONFIG_FIELDS = ("dataset", "subset", "epochs", "batch_size", "lr", "temperature", "ce_weight", "distill_weight",
                  "seed", "device", "resident_data", "cache_teacher", "cuda_graphs", "channels_last")


def _overrides(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in _CONFIG_FIELDS if getattr(args, name, None) is not None}


class _Progress:
    """A tqdm bar over all steps of a run, showing the last epoch's figures."""

    def __init__(self, label: str, position: int = 0):
        self.label, self.position, self.bar = label, position, None

    def on_step(self, progress) -> None:
        if self.bar is None:
            from tqdm import tqdm

            done = (progress.epoch - 1) * progress.steps
            self.bar = tqdm(total=progress.epochs * progress.steps, initial=done, desc=self.label,
                            unit="step", file=sys.stderr, dynamic_ncols=True, position=self.position)
        self.bar.update(1)

    def on_epoch(self, metrics) -> None:
        if self.bar is not None:
            self.bar.set_postfix(epoch=metrics.epoch, loss=f"{metrics.train_loss:.4f}",
                                 acc=f"{100 * metrics.test_accuracy:.2f}%", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None


def _cmd_train(args: argparse.Namespace) -> int:
    from kdcore.engine import train

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
    from kdcore.experiment import experiment_configs, format_table, run_experiment, summary_rows

    overrides = _overrides(args)
    configs = experiment_configs(overrides.pop("dataset", "cifar10"), overrides.pop("subset", None), **overrides)
    out = Path(args.out or f"runs/experiment-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.perf_counter()

    def train_with_bar(config, **kwargs):
        from kdcore.engine import train

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kd", description="Knowledge-distillation runs: train, compare, serve.")
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser("train", help="train one run")
    train_parser.add_argument("kind", choices=KINDS)
    train_parser.add_argument("--teacher", default=None, help=f"teacher {CHECKPOINT} (kd, cosine, fitnet)")
    train_parser.add_argument("--epochs", type=int, default=None)
    train_parser.add_argument("--out", default=None, help="output folder (default: runs/KIND-TIMESTAMP)")
    train_parser.add_argument("--resume", action="store_true", help=f"continue from OUT/{CHECKPOINT}")
    _add_hyperparameters(train_parser)
    train_parser.set_defaults(func=_cmd_train)

    experiment_parser = commands.add_parser("experiment", help="teacher, student, then kd, cosine and fitnet")
    experiment_parser.add_argument("--epochs", type=int, default=None, help="override every run's epochs")
    experiment_parser.add_argument("--out", default=None, help="output folder (default: runs/experiment-TIMESTAMP)")
    experiment_parser.add_argument("--sequential", action="store_true",
                                   help="on a GPU, train one run at a time instead of each phase concurrently")
    _add_hyperparameters(experiment_parser)
    experiment_parser.set_defaults(func=_cmd_experiment)

    for plugin in entry_points(group="kdcore.commands"):
        try:
            register = plugin.load()
        except ImportError:
            continue  # the dashboard's commands are optional for the training core
        register(commands)
    return parser


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
